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
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh webhook_bench

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
