#!/usr/bin/env bash
# A/B of two eventflow release binaries in one run, alternating them round by round so that the
# machine's drift hits both alike: the webhook drain (20,000 stored events, one subscription, one
# worker process; examples/webhook_bench.rs) and the POST-to-webhook latency at 1,000 events/s
# (`eventflow bench e2e` of the NEW binary against each server), with the CPU time the server
# spent on that load (less noisy than a tail latency on a shared machine). Prints each run and
# the medians with their ratio NEW/BASE.
# Usage: scripts/bench-ab.sh BASE_BIN NEW_BIN [ROUNDS] [SECONDS] [BACKENDS]
#   (default: 3 rounds, 10 s of latency load, "embedded distributed")
set -euo pipefail
cd "$(dirname "$0")/.."
base_bin=$(realpath "$1")
new_bin=$(realpath "$2")
rounds="${3:-3}"
seconds="${4:-10}"
backends="${5:-embedded distributed}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh webhook_bench
export WEBHOOK_ALLOW_PRIVATE_NETWORKS=true
url="http://127.0.0.1:$port"
runs="$dir/runs.jsonl"

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# Stops what `start` started.
stop_all() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}

for backend in $backends; do
    for round in $(seq "$rounds"); do
        for side in base new; do
            if [ "$side" = base ]; then bin=$base_bin; else bin=$new_bin; fi
            fresh_backend "$backend" "ab-drain-$side-$round"
            start serve --no-worker
            "$bench" drain --api "$url" --events 20000 --json "$dir/drain.json" \
                --worker-cmd "API_PORT=$((port + 1)) exec $bin worker start" >/dev/null
            stop_all
            fresh_backend "$backend" "ab-e2e-$side-$round"
            start serve
            cpu_before=$(cpu_seconds "${pids[-1]}")
            "$new_bin" bench e2e --url "$url" --rate 1000 --duration "$seconds" --json > "$dir/e2e.json"
            cpu_after=$(cpu_seconds "${pids[-1]}")
            stop_all
            python3 - "$backend" "$side" "$round" "$dir/drain.json" "$dir/e2e.json" \
                "$cpu_before" "$cpu_after" >> "$runs" <<'PY'
import json, sys
backend, side, round_, drain, e2e, cpu_before, cpu_after = sys.argv[1:]
drain, e2e = json.load(open(drain)), json.load(open(e2e))
cpu_ms = (float(cpu_after) - float(cpu_before)) * 1000
print(json.dumps({"backend": backend, "side": side, "round": int(round_),
                  "drain_per_second": drain["deliveries_per_second"],
                  "e2e_p99_ms": e2e["latency_ms"]["p99"], "e2e_p50_ms": e2e["latency_ms"]["p50"],
                  "e2e_cpu_us_per_event": cpu_ms * 1000 / max(e2e["delivered"], 1)}))
PY
            tail -1 "$runs"
        done
    done
done

python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
for backend in dict.fromkeys(r["backend"] for r in runs):
    for figure in ("drain_per_second", "e2e_p50_ms", "e2e_p99_ms", "e2e_cpu_us_per_event"):
        median = {side: statistics.median(r[figure] for r in runs
                                          if r["backend"] == backend and r["side"] == side)
                  for side in ("base", "new")}
        count = sum(1 for r in runs if r["backend"] == backend and r["side"] == "new")
        print(f"{backend} {figure}: base {median['base']:.2f}, new {median['new']:.2f}, "
              f"new/base {median['new'] / median['base']:.3f} (medians of {count} runs each)")
PY
