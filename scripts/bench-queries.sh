#!/usr/bin/env bash
# Query benchmark: a store of EVENTS realistic events (default one million, spread over 30 days)
# on the embedded default (SQLite) and on PostgreSQL, then the list endpoint's typical queries
# against an API-only process (examples/query_bench.rs), p50 and p99 of each.
# Usage: scripts/bench-queries.sh [EVENTS] [REPEAT] [BACKENDS]
#   BACKENDS: "embedded distributed" (default); distributed uses BENCH_DATABASE (default
#   eventflow_bench, dropped and created) and Redis database BENCH_REDIS_DB (default 15, flushed).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
repeat="${2:-200}"
backends="${3:-embedded distributed}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh query_bench

for backend in $backends; do
    fresh_backend "$backend" queries
    echo "== $backend: $events events"
    "$bench" fill --events "$events"
    if [ "$backend" = distributed ]; then
        # Fresh statistics, as autovacuum would gather them on a live database.
        psql -q -h 127.0.0.1 -U postgres -d "$database" -c "VACUUM ANALYZE"
    fi
    start serve --no-worker
    "$bench" query --api "http://127.0.0.1:$port" --repeat "$repeat"
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
done
