#!/usr/bin/env bash
# The benchmark suite: `eventflow bench` against the embedded default and against PostgreSQL +
# Redis (API and worker as separate processes), each figure next to a ceiling measured in the
# same run on this machine: the server's own GET /health/live (HTTP ceiling, by the same load
# generator), batches of 100 rows inserted straight into the store (storage ceiling: SQLite by
# examples/storage_ceiling.rs, PostgreSQL by pgbench) and redis-benchmark XADD (the broker). It
# writes a dated section at the top of BENCHMARKS.md (BENCH_WRITE=0: only prints it), with the
# peak RSS of every EventFlow process, and webhook drains by one worker process, unordered and
# ordered by partition key (examples/webhook_bench.rs).
# Usage: scripts/bench.sh [SECONDS] [BACKENDS]   (default: 10 "embedded distributed"; needs psql,
# pgbench, redis-benchmark and redis-cli for distributed)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
backends="${2:-embedded distributed}"
. scripts/bench-lib.sh storage_ceiling webhook_bench
results="$dir/results"
mkdir -p "$results"
url="http://127.0.0.1:$port"
# Replays unpaced (the default paces them at 1,000 events/s); the benchmark's own webhook
# receiver listens on loopback.
export REPLAY_RATE=0 WEBHOOK_ALLOW_PRIVATE_NETWORKS=true

# Drains stored events with one worker process (examples/webhook_bench.rs) for each
# "NAME SUBSCRIPTIONS ORDERING KEYS RECEIVER_DELAY_MS EVENTS [--filter half|all]" on stdin, into
# $results/$backend-drain-NAME.json.
drains() {
    while read -r name subscriptions ordering keys delay events filter; do
        filter=${filter:+--filter $filter}
        fresh_backend "$backend" "drain-$name"
        start serve --no-worker
        # shellcheck disable=SC2086 # $filter is one flag or none
        "$examples_dir/webhook_bench" drain --api "$url" --subscriptions "$subscriptions" \
            --events "$events" --ordering "$ordering" $filter \
            --keys "$keys" --receiver-delay-ms "$delay" --json "$results/$backend-drain-$name.json" \
            --worker-cmd "API_PORT=$((port + 1)) exec $bin worker start" >/dev/null
        echo "  drain $name: $(cat "$results/$backend-drain-$name.json")"
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
        pids=()
    done
}

# Runs `eventflow bench KIND ARGS…` and keeps its report as $results/$backend-KIND.json.
run_bench() {
    local kind=$1
    shift
    "$bin" bench "$kind" --url "$url" --json "$@" > "$results/$backend-$kind.json"
    echo "  $kind: $(cat "$results/$backend-$kind.json")"
}

# Waits until the workers have read everything stored, so that the next figure runs alone.
settle() {
    for _ in $(seq 1200); do
        curl -sf "$url/api/v1/stats" | python3 -c \
            'import json, sys; s = json.load(sys.stdin); sys.exit(0 if s["consumer_lag"] == 0 and s["outbox_backlog"] == 0 else 1)' \
            && return
        sleep 0.25
    done
    echo "the workers did not catch up" >&2
    exit 1
}

# Storage and broker ceilings of $backend, into $results/$backend-ceilings.json.
ceilings() {
    if [ "$backend" = embedded ]; then
        local rows
        rows=$("$bench" "sqlite://$dir/ceiling.db" "$seconds")
        echo "{\"storage\": $rows}" > "$results/$backend-ceilings.json"
    else
        # The events table as EventFlow creates it (columns, keys and indexes), empty.
        psql -q -h 127.0.0.1 -U postgres -d "$database" -c "CREATE TABLE ceiling_events (LIKE events INCLUDING ALL)"
        cat > "$dir/insert.sql" <<'SQL'
INSERT INTO ceiling_events (id, source, type, stream, time, correlation_id, body)
SELECT id, 'eventflow-bench', 'bench.event', 'events:default', now(), id,
       jsonb_build_object('specversion', '1.0', 'id', id, 'source', 'eventflow-bench', 'type', 'bench.event',
                          'time', now(), 'data', jsonb_build_object('n', n),
                          'metadata', jsonb_build_object('priority', 'normal', 'correlation_id', id, 'stream', 'events:default'))
FROM (SELECT gen_random_uuid()::text AS id, n FROM generate_series(1, 100) AS n) AS batch;
SQL
        local tps xadd
        tps=$(pgbench -n -h 127.0.0.1 -U postgres -c 8 -j 2 -T "$seconds" -f "$dir/insert.sql" "$database" 2>/dev/null \
            | awk '/^tps/ {print $3; exit}')
        psql -q -h 127.0.0.1 -U postgres -d "$database" -c "DROP TABLE ceiling_events"
        xadd=$(redis-benchmark -h 127.0.0.1 -p 6379 --dbnum "$redis_db" -c 16 -n 300000 --csv \
            XADD eventflow:ceiling MAXLEN '~' 100000 '*' payload "$(printf '%0300d' 0)" \
            | awk -F'"' 'NR == 2 {print $4}')
        redis-cli -n "$redis_db" DEL eventflow:ceiling >/dev/null
        echo "{\"storage\": {\"rows_per_second\": $(python3 -c "print($tps * 100)"), \"tool\": \"pgbench\"}, \"broker_xadd_per_second\": $xadd}" \
            > "$results/$backend-ceilings.json"
    fi
    echo "  ceilings: $(cat "$results/$backend-ceilings.json")"
}

# The peak resident memory of process $1 (named $2), in kB, added to $results/$backend-rss.txt.
peak_rss() {
    echo "$2 $(awk '/VmHWM/ {print $2}' "/proc/$1/status")" >> "$results/$backend-rss.txt"
}

for backend in $backends; do
    echo "== $backend"
    fresh_backend "$backend" "suite-$backend"
    ceilings
    processes=()
    if [ "$backend" = embedded ]; then
        start serve
        processes+=("${pids[-1]}:serve (API and worker)")
    else
        start serve --no-worker
        processes+=("${pids[-1]}:serve --no-worker")
        API_PORT=$((port + 1)) "$bin" worker start &
        pids+=($!)
        processes+=("${pids[-1]}:worker start")
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 1))/health/ready" >/dev/null && break; sleep 0.1; done
    fi
    run_bench health --connections 32 --duration "$seconds"
    run_bench ingest --connections 32 --duration "$seconds"
    run_bench batch --connections 16 --batch-size 100 --duration "$seconds"
    settle
    run_bench e2e --rate 200 --duration "$seconds"
    mv "$results/$backend-e2e.json" "$results/$backend-e2e-200.json"
    run_bench e2e --rate 1000 --duration "$seconds"
    run_bench replay --events 100000 --connections 4
    for process in "${processes[@]}"; do
        peak_rss "${process%%:*}" "${process#*:}"
        kill "${process%%:*}"
    done
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
    # Ordered delivery: the same 20,000 events over 1,000 partition keys drained unordered and
    # ordered by key, then one and ten keys against a receiver that takes 1 ms to answer.
    # Filters: 10 subscriptions, without filters, and with a three-clause CESQL filter that every
    # event passes (the filter's cost alone), then one that half of them pass.
    drains <<'RUNS'
unordered 1 none 1000 0 20000
ordered-1000 1 partition_key 1000 0 20000
ordered-10 1 partition_key 10 1 10000
ordered-1 1 partition_key 1 1 1000
subscriptions-10 10 none 0 0 10000
filtered-all-10 10 none 0 0 10000 all
filtered-10 10 none 0 0 10000 half
RUNS
    if [ "$backend" = embedded ]; then
        # Ingest again with the API alone (`serve --no-worker`): what the worker in the same
        # process costs the API, on the same two cores and the same single SQLite writer.
        echo "== embedded, API only"
        fresh_backend embedded suite-api-only
        start serve --no-worker
        backend=embedded-api run_bench ingest --connections 32 --duration "$seconds"
        backend=embedded-api run_bench batch --connections 16 --batch-size 100 --duration "$seconds"
        kill "${pids[-1]}"
        wait "${pids[@]}" 2>/dev/null || true
        pids=()
    fi
done

section=$(python3 scripts/bench_report.py "$results" "$(git rev-parse --short HEAD)" "$seconds" $backends)
echo "$section"
if [ "${BENCH_WRITE:-1}" = 1 ]; then
    python3 - "$section" <<'PY'
import sys
path = "BENCHMARKS.md"
text = open(path).read()
head, sep, rest = text.partition("\n## ")
open(path, "w").write(head.rstrip("\n") + "\n\n" + sys.argv[1].strip() + "\n\n## " + rest)
PY
    echo "written to BENCHMARKS.md"
fi
