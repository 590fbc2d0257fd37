#!/usr/bin/env bash
# Ingest benchmark on the embedded default: single-event POSTs with keep-alive, against the same
# run's GET /health/live ceiling, with the server's RSS idle and under load.
# Usage: scripts/bench-ingest.sh [DURATION_SECONDS] [CONNECTIONS]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30}"
connections="${2:-64}"
port="${BENCH_PORT:-18000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eventflow-target}"

cargo build --release --quiet
workdir="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$workdir"' EXIT
(cd "$workdir" && API_PORT="$port" LOG_LEVEL=warn exec "$CARGO_TARGET_DIR/release/eventflow" serve) &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$server/status"; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "rss idle: $(rss)"

echo "== ceiling: GET /health/live, ${connections} connections, ${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$port/health/live" | grep -E "Requests/sec|50%|99%"

echo "== POST /api/v1/events (one event per request), ${connections} connections, ${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/wrk/post_event.lua "http://127.0.0.1:$port" &
load=$!
sleep "$((duration / 2))"
echo "rss under load: $(rss)"
wait "$load"
sleep 2
echo "rss after load: $(rss)"
stored=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^eventflow_events_published_total/ {s += $2} END {print s}')
consumed=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^eventflow_events_consumed_total/ {s += $2} END {print s}')
echo "published to the broker: $stored, consumed by the worker: $consumed"
