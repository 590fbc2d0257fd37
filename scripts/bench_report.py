"""Turns the reports of scripts/bench.sh into a dated BENCHMARKS.md section: each figure next to
its ceiling from the same run, as a ratio, against the targets.

Usage: bench_report.py RESULTS_DIR COMMIT SECONDS BACKEND...
"""

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

results, commit, seconds, backends = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def load(backend, name):
    with open(os.path.join(results, f"{backend}-{name}.json")) as f:
        return json.load(f)


def mark(met):
    return "met" if met else "**missed**"


def machine():
    cores = os.cpu_count()
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    model = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                           capture_output=True, text=True).stdout.strip()
    return f"{cores} cores ({model}), {total_kb / 1048576:.0f} GiB, {platform.system()} {platform.release()}"


def drain_rows(backend):
    """The ordered-delivery drains: ordered by 1,000 keys against unordered, and 1 and 10 keys."""
    if not os.path.exists(os.path.join(results, f"{backend}-drain-unordered.json")):
        return []
    unordered = load(backend, "drain-unordered")
    ordered = load(backend, "drain-ordered-1000")
    ratio = ordered["deliveries_per_second"] / unordered["deliveries_per_second"]
    rows = [
        (f"webhook drain of {unordered['deliveries']:,} stored events over 1,000 partition keys, one worker: unordered",
         f"{unordered['deliveries_per_second']:,.0f} deliveries/s", "", "", "(the reference below)"),
        ("the same, `ordering: partition_key`",
         f"{ordered['deliveries_per_second']:,.0f} deliveries/s", "unordered drain, same run",
         f"{ratio:.2f}", f"≥ 0.50: {mark(ratio >= 0.5)}"),
    ]
    for keys in (10, 1):
        run = load(backend, f"drain-ordered-{keys}")
        rows.append((f"ordered drain of {run['deliveries']:,} events, {keys} key(s), receiver answering in 1 ms",
                     f"{run['deliveries_per_second']:,.0f} deliveries/s", "", "", "(for reference)"))
    plain = load(backend, "drain-subscriptions-10")
    every = load(backend, "drain-filtered-all-10")
    half = load(backend, "drain-filtered-10")
    every_ratio = every["deliveries_per_second"] / plain["deliveries_per_second"]
    # Events drained per second: half the deliveries per event, so deliveries/s would charge the
    # filter with the per-event work spread over fewer deliveries.
    events_per_second = lambda run: run["events"] / run["seconds"]
    half_ratio = events_per_second(half) / events_per_second(plain)
    rows += [
        (f"drain of {plain['events']:,} stored events to 10 subscriptions, no filters",
         f"{plain['deliveries_per_second']:,.0f} deliveries/s, {events_per_second(plain):,.0f} events/s",
         "", "", "(the reference below)"),
        ("the same, each subscription with a three-clause CESQL filter every event passes",
         f"{every['deliveries_per_second']:,.0f} deliveries/s", "no filters, same run",
         f"{every_ratio:.2f}", f"≥ 0.90: {mark(every_ratio >= 0.9)}"),
        ("the same, with a three-clause CESQL filter half the events pass",
         f"{half['deliveries_per_second']:,.0f} deliveries/s ({half['deliveries']:,} deliveries), "
         f"{events_per_second(half):,.0f} events/s", "no filters, same run (events/s)",
         f"{half_ratio:.2f}", f"≥ 0.90: {mark(half_ratio >= 0.9)}"),
    ]
    return rows


def e2e_row(e2e, rate, p99_target):
    """The POST-to-webhook latency at `rate` events/s, against its p99 target in ms."""
    latency = e2e["latency_ms"]
    return (f"POST to webhook receipt at {rate:,} events/s",
            f"p50 {latency['p50']:.2f}, p90 {latency['p90']:.2f}, p99 {latency['p99']:.2f}, "
            f"p99.9 {latency['p99_9']:.2f}, max {latency['max']:.1f} ms "
            f"({e2e['delivered']:,} of {e2e['sent']:,} delivered)",
            "", "", f"p99 ≤ {p99_target} ms: {mark(latency['p99'] <= p99_target)}")


def backend_section(backend):
    health = load(backend, "health")
    ingest = load(backend, "ingest")
    batch = load(backend, "batch")
    e2e = load(backend, "e2e")
    e2e_200 = load(backend, "e2e-200")
    replay = load(backend, "replay")
    ceilings = load(backend, "ceilings")
    http_ceiling = health["requests_per_second"]
    storage_ceiling = ceilings["storage"]["rows_per_second"]
    single_ratio = ingest["requests_per_second"] / http_ceiling
    batch_ratio = batch["events_per_second"] / storage_ceiling
    storage_tool = "pgbench, 8 clients" if backend == "distributed" else "examples/storage_ceiling.rs, 1 writer"
    title = "Embedded (SQLite, API and worker in one process)" if backend == "embedded" \
        else "PostgreSQL + Redis (API and worker as separate processes)"
    rows = [
        ("single-event POST, 32 connections",
         f"{ingest['requests_per_second']:,.0f} req/s (p50 {ingest['latency_ms']['p50']:.2f}, p99 {ingest['latency_ms']['p99']:.2f} ms)",
         f"GET /health/live: {http_ceiling:,.0f} req/s", f"{single_ratio:.2f}",
         f"≥ 0.50: {mark(single_ratio >= 0.5)}"),
        ("batch POST of 100 events, 16 connections",
         f"{batch['events_per_second']:,.0f} events/s (p99 {batch['latency_ms']['p99']:.1f} ms)",
         f"100-row inserts straight into the store ({storage_tool}): {storage_ceiling:,.0f} rows/s",
         f"{batch_ratio:.2f}", f"≥ 0.60: {mark(batch_ratio >= 0.6)}"),
        e2e_row(e2e_200, 200, 3 if backend == "embedded" else 5),
        e2e_row(e2e, 1000, 5 if backend == "embedded" else 10),
        (f"replay of {replay['replayed']:,} stored events to one subscription",
         f"{replay['events_per_second']:,.0f} events/s ({replay['running_seconds']:.2f} s running, "
         f"{replay['queued_seconds']:.2f} s queued; {replay['deliveries']:,} deliveries created, "
         f"{replay['delivered_during_replay']:,} of them delivered meanwhile); a dry run walks "
         f"{replay['dry_run_events_per_second']:,.0f} events/s",
         "", "", f"≥ 100,000/s: {mark(replay['events_per_second'] >= 100_000)}"),
    ]
    if backend == "embedded" and os.path.exists(os.path.join(results, "embedded-api-ingest.json")):
        api_ingest = load("embedded-api", "ingest")
        api_batch = load("embedded-api", "batch")
        api_single = api_ingest["requests_per_second"] / http_ceiling
        api_ratio = api_batch["events_per_second"] / storage_ceiling
        rows += [
            ("the same, API alone (`serve --no-worker`): single-event POST",
             f"{api_ingest['requests_per_second']:,.0f} req/s (p99 {api_ingest['latency_ms']['p99']:.2f} ms)",
             "as above", f"{api_single:.2f}", f"≥ 0.50: {mark(api_single >= 0.5)}"),
            ("the same, API alone: batch POST of 100 events",
             f"{api_batch['events_per_second']:,.0f} events/s (p99 {api_batch['latency_ms']['p99']:.1f} ms)",
             "as above", f"{api_ratio:.2f}", f"≥ 0.60: {mark(api_ratio >= 0.6)}"),
        ]
    rows += drain_rows(backend)
    with open(os.path.join(results, f"{backend}-rss.txt")) as f:
        for line in f:
            name, kb = line.rsplit(" ", 1)
            mb = int(kb) / 1024
            rows.append((f"peak RSS of `{name}`", f"{mb:.0f} MB", "", "", f"< 100 MB: {mark(mb < 100)}"))
    if "broker_xadd_per_second" in ceilings:
        rows.append(("broker ceiling: redis-benchmark XADD, 16 clients",
                     f"{ceilings['broker_xadd_per_second']:,.0f} entries/s", "", "", "(for reference)"))
    lines = [f"### {title}", "", "| | figure | ceiling, same run | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


now = datetime.now(timezone.utc)
parts = [
    f"## {now:%Y-%m-%d} — the benchmark suite against its ceilings",
    "",
    f"- **Machine**: {machine()}; load generator (`eventflow bench`) on the same machine.",
    f"- **Command**: `scripts/bench.sh {seconds}` on commit `{commit}`, {now:%H:%M} UTC; release build.",
    "",
]
for backend in backends:
    parts += [backend_section(backend), ""]
print("\n".join(parts))
