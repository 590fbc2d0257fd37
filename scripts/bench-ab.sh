#!/usr/bin/env bash
# A/B of two eventflow release binaries in one run, alternating them round by round so that the
# machine's drift hits both alike: the webhook drain (20,000 stored events, one subscription, one
# worker process; examples/webhook_bench.rs) and the POST-to-webhook latency at each rate of
# E2E_RATES (`eventflow bench e2e` of the NEW binary against each server), with the CPU time the
# server spent on that load (less noisy than a tail latency on a shared machine) and the bytes it
# wrote to disk per event, and the share of the machine's CPU time the hypervisor took (steal: a
# run with much of it measured the host, not EventFlow). Prints each run and the medians with
# their ratio NEW/BASE.
# Usage: [E2E_RATES="200 1000"] [DRAIN=0] scripts/bench-ab.sh BASE_BIN NEW_BIN [ROUNDS] [SECONDS] [BACKENDS]
#   (default: 3 rounds, 10 s of latency load, "embedded distributed", E2E_RATES=1000, DRAIN=1)
set -euo pipefail
cd "$(dirname "$0")/.."
base_bin=$(realpath "$1")
new_bin=$(realpath "$2")
rounds="${3:-3}"
seconds="${4:-10}"
backends="${5:-embedded distributed}"
rates="${E2E_RATES:-1000}"
drain="${DRAIN:-1}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh webhook_bench
export WEBHOOK_ALLOW_PRIVATE_NETWORKS=true
url="http://127.0.0.1:$port"
runs="$dir/runs.jsonl"

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# Bytes process $1 has caused to be written to disk so far.
written_bytes() {
    awk '/^write_bytes/ {print $2}' "/proc/$1/io"
}

# The machine's CPU ticks so far: "steal total" (steal is time the hypervisor gave to others).
cpu_ticks() {
    awk '/^cpu / {total = 0; for (i = 2; i <= NF; i++) total += $i; print $9, total}' /proc/stat
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
            if [ "$drain" = 1 ]; then
                fresh_backend "$backend" "ab-drain-$side-$round"
                start serve --no-worker
                "$bench" drain --api "$url" --events 20000 --json "$dir/drain.json" \
                    --worker-cmd "API_PORT=$((port + 1)) exec $bin worker start" >/dev/null
                stop_all
                python3 - "$backend" "$side" "$round" "$dir/drain.json" >> "$runs" <<'PY'
import json, sys
backend, side, round_, drain = sys.argv[1:]
print(json.dumps({"backend": backend, "side": side, "round": int(round_),
                  "drain_per_second": json.load(open(drain))["deliveries_per_second"]}))
PY
                tail -1 "$runs"
            fi
            for rate in $rates; do
                fresh_backend "$backend" "ab-e2e-$side-$round-$rate"
                start serve
                server=${pids[-1]}
                cpu_before=$(cpu_seconds "$server")
                written_before=$(written_bytes "$server")
                ticks_before=$(cpu_ticks)
                "$new_bin" bench e2e --url "$url" --rate "$rate" --duration "$seconds" --json > "$dir/e2e.json"
                cpu_after=$(cpu_seconds "$server")
                written_after=$(written_bytes "$server")
                ticks_after=$(cpu_ticks)
                stop_all
                python3 - "$backend" "$side" "$round" "$rate" "$dir/e2e.json" \
                    "$cpu_before" "$cpu_after" "$written_before" "$written_after" \
                    "$ticks_before" "$ticks_after" >> "$runs" <<'PY'
import json, sys
(backend, side, round_, rate, e2e, cpu_before, cpu_after, written_before, written_after,
 ticks_before, ticks_after) = sys.argv[1:]
steal_before, total_before = map(int, ticks_before.split())
steal_after, total_after = map(int, ticks_after.split())
e2e = json.load(open(e2e))
delivered = max(e2e["delivered"], 1)
cpu_ms = (float(cpu_after) - float(cpu_before)) * 1000
latency = e2e["latency_ms"]
print(json.dumps({"backend": backend, "side": side, "round": int(round_),
                  f"e2e_{rate}_p50_ms": latency["p50"], f"e2e_{rate}_p99_ms": latency["p99"],
                  f"e2e_{rate}_max_ms": latency["max"],
                  f"e2e_{rate}_cpu_us_per_event": cpu_ms * 1000 / delivered,
                  f"e2e_{rate}_kb_written_per_event":
                      (int(written_after) - int(written_before)) / 1024 / delivered,
                  f"e2e_{rate}_steal_pct":
                      100 * (steal_after - steal_before) / max(total_after - total_before, 1)}))
PY
                tail -1 "$runs"
            done
        done
    done
done

python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
for backend in dict.fromkeys(r["backend"] for r in runs):
    ours = [r for r in runs if r["backend"] == backend]
    for figure in dict.fromkeys(k for r in ours for k in r if k not in ("backend", "side", "round")):
        values = {side: [r[figure] for r in ours if r["side"] == side and figure in r]
                  for side in ("base", "new")}
        median = {side: statistics.median(v) for side, v in values.items()}
        print(f"{backend} {figure}: base {median['base']:.2f}, new {median['new']:.2f}, "
              f"new/base {median['new'] / median['base']:.3f} "
              f"(medians of {len(values['new'])} runs each)")
PY
