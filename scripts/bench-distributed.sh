#!/usr/bin/env bash
# Distributed-mode benchmark on PostgreSQL + Redis: single-event POSTs and batch POSTs (100 events
# a request) against an API-only process, then the rate at which one and then two worker
# processes drain the stream that ingest left behind.
# Usage: scripts/bench-distributed.sh [DURATION_SECONDS] [CONNECTIONS]   (needs wrk, psql, redis-cli)
# BENCH_DATABASE (default eventflow_bench) is dropped and created again; BENCH_REDIS_DB (default
# 15) of the local Redis is flushed.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30}"
connections="${2:-64}"
port="${BENCH_PORT:-18000}"
database="${BENCH_DATABASE:-eventflow_bench}"
redis_db="${BENCH_REDIS_DB:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eventflow-target}"
export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$database"
export REDIS_URL="redis://127.0.0.1:6379/$redis_db"
export LOG_LEVEL=warn API_HOST=127.0.0.1
bin="$CARGO_TARGET_DIR/release/eventflow"

cargo build --release --quiet
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" -c "CREATE DATABASE $database"
redis-cli -n "$redis_db" FLUSHDB >/dev/null
if [ -n "${BENCH_AUTO_EXPLAIN:-}" ]; then
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "ALTER DATABASE $database SET session_preload_libraries = 'auto_explain'" \
        -c "ALTER DATABASE $database SET auto_explain.log_min_duration = '20ms'"
fi
"$bin" db upgrade >/dev/null

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
API_PORT="$port" "$bin" serve --no-worker &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "postgres: $(psql -h 127.0.0.1 -U postgres -tAc 'SHOW server_version'), redis: $(redis-server --version | awk '{print $3}')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

echo "== POST /api/v1/events (one event per request), ${connections} connections, ${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/wrk/post_event.lua "http://127.0.0.1:$port" \
    | grep -E "Requests/sec|latency_p|non_2xx"

echo "== POST /api/v1/events/batch (100 events per request), 16 connections, ${duration}s"
wrk -t2 -c16 -d"${duration}s" --latency -s scripts/wrk/post_batch.lua "http://127.0.0.1:$port" \
    | grep -E "Requests/sec|events_per_sec|latency_p|non_2xx"

# Wait until the outbox has published everything stored.
for _ in $(seq 600); do
    left=$(psql -h 127.0.0.1 -U postgres -d "$database" -tAc "SELECT count(*) FROM outbox")
    [ "$left" = 0 ] && break
    sleep 0.5
done
stored=$(psql -h 127.0.0.1 -U postgres -d "$database" -tAc "SELECT count(*) FROM events")
backlog=$(redis-cli -n "$redis_db" XLEN events:user)
echo "stored: $stored events; on events:user: $backlog entries (STREAM_MAX_LEN trims the stream, not the store)"

# Drains the stream with N workers of a fresh consumer group; prints the rate.
drain() {
    local workers=$1 group="bench-$1" started finished lag pending ticks=0
    started=$(date +%s.%N)
    local worker_pids=()
    for n in $(seq "$workers"); do
        CONSUMER_GROUP="$group" API_PORT=0 "$bin" worker start &
        worker_pids+=($!)
        pids+=($!)
    done
    while :; do
        sleep 0.2
        read -r lag pending < <(redis-cli -n "$redis_db" --raw XINFO GROUPS events:user 2>/dev/null \
            | awk -v g="$group" 'prev == "name" {group = $0} group == g && prev == "lag" {lag = $0}
                                 group == g && prev == "pending" {pending = $0} {prev = $0}
                                 END {print lag, pending}')
        [ "${lag:-1}" = 0 ] && [ "${pending:-1}" = 0 ] && break
        ticks=$((ticks + 1))
        [ $((ticks % 25)) = 0 ] && echo "   ... lag ${lag:-?}, pending ${pending:-?} after $((ticks / 5)) s"
    done
    finished=$(date +%s.%N)
    kill "${worker_pids[@]}"
    wait "${worker_pids[@]}" 2>/dev/null || true
    awk -v n="$backlog" -v s="$started" -v f="$finished" -v w="$workers" \
        'BEGIN {printf "%d worker(s): %d entries in %.2f s = %.0f events/s (including start-up)\n", w, n, f - s, n / (f - s)}'
}
echo "== drain of events:user"
drain 1
drain 2
