#!/usr/bin/env bash
# Webhook delivery benchmark, on the embedded default (SQLite) and on PostgreSQL + Redis:
#  - drain: events are posted to an API-only process first, then one worker process starts and
#    delivers them to a local receiver (examples/webhook_bench.rs) with 1 and 10 subscriptions;
#    the rate is deliveries per second from the first to the last delivery;
#  - latency: `serve` (API and worker in one process) gets single-event POSTs at 1,000 events/s,
#    and the receiver times each POST to its delivery.
# Usage: scripts/bench-webhooks.sh [EVENTS] [LATENCY_SECONDS] [BACKENDS]
#   BACKENDS: "embedded distributed" (default); distributed uses BENCH_DATABASE (default
#   eventflow_bench, dropped and created) and Redis database BENCH_REDIS_DB (default 15, flushed).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-20000}"
seconds="${2:-20}"
backends="${3:-embedded distributed}"
port="${BENCH_PORT:-18100}"
database="${BENCH_DATABASE:-eventflow_bench}"
redis_db="${BENCH_REDIS_DB:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eventflow-target}"
export LOG_LEVEL=warn API_HOST=127.0.0.1
bin="$CARGO_TARGET_DIR/release/eventflow"
bench="$CARGO_TARGET_DIR/release/examples/webhook_bench"
cargo build --release --quiet --bin eventflow --example webhook_bench
dir="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

# Points DATABASE_URL and REDIS_URL at a fresh store and broker of backend $1 named $2.
fresh_backend() {
    if [ "$1" = embedded ]; then
        export DATABASE_URL="sqlite://$dir/$2.db" REDIS_URL=
    else
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" \
            -c "CREATE DATABASE $database"
        redis-cli -n "$redis_db" FLUSHDB >/dev/null
        export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$database"
        export REDIS_URL="redis://127.0.0.1:6379/$redis_db"
        "$bin" db upgrade >/dev/null
    fi
}

# Starts `eventflow $*` on $port in the background and waits until it answers.
start() {
    API_PORT="$port" "$bin" "$@" &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && return; sleep 0.1; done
    echo "eventflow did not start" >&2
    exit 1
}

for backend in $backends; do
    for subscriptions in 1 10; do
        fresh_backend "$backend" "drain-$subscriptions"
        echo "== $backend: drain $events events to $subscriptions subscription(s), one worker process"
        start serve --no-worker
        "$bench" drain --api "http://127.0.0.1:$port" --subscriptions "$subscriptions" \
            --events "$events" --worker-cmd "API_PORT=$((port + 1)) exec $bin worker start"
        kill "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
        pids=()
    done
    fresh_backend "$backend" latency
    echo "== $backend: POST-to-delivery latency at 1000 events/s for ${seconds}s, serve (API + worker)"
    start serve
    "$bench" latency --api "http://127.0.0.1:$port" --rate 1000 --duration "$seconds"
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
done
