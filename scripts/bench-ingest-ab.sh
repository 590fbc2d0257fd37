#!/usr/bin/env bash
# Ingest A/B of eventflow release binaries in one run, alternating them round by round: single-event
# POSTs and batch POSTs (100 per request) of `bench.order` events with a typical ten-field schema,
# registered first where the binary has a schema registry (a binary without one takes the events
# unchecked), with the worker in the process, on the embedded default. Prints each run and the
# medians of events/s and of the server's CPU time per event (steadier than a rate on a shared
# machine), with their ratios to the first binary.
# Usage: scripts/bench-ingest-ab.sh SECONDS ROUNDS NAME=BIN [NAME=BIN...]   (needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="$1"
rounds="$2"
shift 2
port="${BENCH_PORT:-18200}"
connections="${BENCH_CONNECTIONS:-64}"
dir="$(mktemp -d)"
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
runs="$dir/runs.jsonl"
schema='{"description": "An order (benchmark)", "schema": {"type": "object",
  "required": ["order_id", "customer_id", "status", "currency", "total"],
  "properties": {"order_id": {"type": "string", "minLength": 1}, "customer_id": {"type": "string"},
    "status": {"enum": ["pending", "paid", "shipped", "cancelled"]},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "total": {"type": "number", "minimum": 0},
    "items": {"type": "integer", "minimum": 1}, "coupon": {"type": ["string", "null"]},
    "express": {"type": "boolean"}, "country": {"type": "string", "minLength": 2, "maxLength": 2},
    "created_at": {"type": "string"}}, "additionalProperties": false}}'

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
for round in $(seq "$rounds"); do
    for side in "$@"; do
        name="${side%%=*}"
        bin=$(realpath "${side#*=}")
        for mode in single batch; do
            rm -f "$dir"/eventflow.db*
            (cd "$dir" && API_HOST=127.0.0.1 API_PORT="$port" LOG_LEVEL=warn \
                DATABASE_URL="sqlite://$dir/eventflow.db" REDIS_URL= exec "$bin" serve) &
            server=$!
            for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
            registered=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
                -d "$schema" "http://127.0.0.1:$port/api/v1/event-types/bench.order")
            batch=1
            [ "$mode" = batch ] && batch=100
            cpu_before=$(cpu_seconds "$server")
            BATCH=$batch wrk -t2 -c"$connections" -d"${seconds}s" -s scripts/wrk/post_order.lua \
                "http://127.0.0.1:$port" > "$dir/wrk.txt"
            cpu_after=$(cpu_seconds "$server")
            kill "$server"
            wait "$server" 2>/dev/null || true
            python3 - "$name" "$mode" "$round" "$registered" "$dir/wrk.txt" "$seconds" \
                "$cpu_before" "$cpu_after" >> "$runs" <<'PY'
import json, re, sys
name, mode, round_, registered, wrk, seconds, cpu_before, cpu_after = sys.argv[1:]
text = open(wrk).read()
figure = lambda key: float(re.search(key + r"=([0-9.]+)", text).group(1))
events = figure("events_per_sec") * float(seconds)
print(json.dumps({"binary": name, "mode": mode, "round": int(round_), "schema": registered in ("200", "201"),
                  "events_per_sec": figure("events_per_sec"), "p99_ms": figure("latency_p99_ms"),
                  "cpu_us_per_event": (float(cpu_after) - float(cpu_before)) * 1e6 / max(events, 1),
                  "non_2xx": int(figure("non_2xx"))}))
PY
            tail -1 "$runs"
        done
    done
done
python3 - "$runs" "${1%%=*}" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
first = sys.argv[2]
for mode in ("single", "batch"):
    medians = {}
    for name in dict.fromkeys(r["binary"] for r in runs):
        of = [r for r in runs if r["binary"] == name and r["mode"] == mode]
        medians[name] = (statistics.median(r["events_per_sec"] for r in of),
                         statistics.median(r["p99_ms"] for r in of),
                         statistics.median(r["cpu_us_per_event"] for r in of), len(of))
    for name, (rate, p99, cpu, count) in medians.items():
        print(f"{mode} {name}: {rate:.0f} events/s ({rate / medians[first][0]:.3f} of {first}), "
              f"p99 {p99:.2f} ms, CPU {cpu:.1f} us/event ({cpu / medians[first][2]:.3f} of {first}) "
              f"(medians of {count} runs)")
PY
