//! `eventflow bench ingest|batch|e2e|replay`: load against a running EventFlow, closed loop (each connection
//! sends its next request when the last is answered) or open loop at `--rate` requests a second
//! (latency counted from when each request was due, so a stalled server is not hidden). Latency
//! percentiles come from an HDR histogram; errors are counted by status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Remote;
use crate::cli::{BenchArgs, BenchKind};

/// What `bench health` requests: the cheapest answer the server has, its HTTP ceiling.
const PROBE_PATH: &str = "health/live";

/// Longest latency recorded, in microseconds (a minute).
pub(super) const MAX_LATENCY_US: u64 = 60_000_000;

/// What one connection saw.
struct Tally {
    latencies: Histogram<u64>,
    /// Answers by status (`0` when there was none).
    statuses: BTreeMap<u16, u64>,
}

/// `eventflow bench …`
pub async fn bench(remote: &Remote, args: BenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration.max(1));
    let (path, events_per_request) = match args.kind {
        BenchKind::Health => (PROBE_PATH, 0),
        BenchKind::Ingest => ("api/v1/events", 1),
        BenchKind::Batch => ("api/v1/events/batch", args.batch_size.max(1)),
        BenchKind::E2e => {
            let rate = args.rate.unwrap_or(1000);
            let report = super::bench_e2e::run(remote, duration, rate).await?;
            remote.print(&report, describe_e2e);
            return Ok(());
        }
        BenchKind::Replay => {
            let report = super::bench_replay::run(remote, args.events, args.connections).await?;
            remote.print(&report, describe_replay);
            return Ok(());
        }
    };
    let remote = Arc::new(remote.clone());
    let connections = args.connections.max(1);
    let started = Instant::now();
    let deadline = started + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(show_progress(
        remote.clone(),
        sent.clone(),
        started,
        deadline,
    ));
    let mut tasks = Vec::new();
    for connection in 0..connections {
        // Open loop: the connections share the rate, each on its own schedule.
        let interval = args
            .rate
            .map(|rate| Duration::from_secs_f64(f64::from(connections) / f64::from(rate.max(1))));
        let first = started
            + interval
                .unwrap_or_default()
                .mul_f64(f64::from(connection) / f64::from(connections));
        tasks.push(tokio::spawn(connection_loop(
            remote.clone(),
            path,
            events_per_request,
            first,
            interval,
            deadline,
            sent.clone(),
        )));
    }
    let mut latencies = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for task in tasks {
        let tally = task.await.context("a load task failed")??;
        latencies.add(&tally.latencies)?;
        for (status, count) in tally.statuses {
            *statuses.entry(status).or_default() += count;
        }
    }
    progress.abort();
    let seconds = started.elapsed().as_secs_f64();
    let requests: u64 = statuses.values().sum();
    let ok: u64 = statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, count)| count)
        .sum();
    let report = json!({
        "kind": format!("{:?}", args.kind).to_lowercase(),
        "connections": connections,
        "rate": args.rate,
        "seconds": seconds,
        "requests": requests,
        "requests_per_second": requests as f64 / seconds,
        "events_per_second": (ok * events_per_request as u64) as f64 / seconds,
        "latency_ms": latency_report(&latencies),
        "errors": statuses.iter().filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, c)| (if *s == 0 { "no answer".to_string() } else { s.to_string() }, json!(c)))
            .collect::<serde_json::Map<String, Value>>(),
    });
    remote.print(&report, describe);
    Ok(())
}

/// Percentiles of `latencies` (microseconds) in milliseconds.
pub(super) fn latency_report(latencies: &Histogram<u64>) -> Value {
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    json!({"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p99_9": ms(0.999),
           "max": latencies.max() as f64 / 1000.0})
}

/// Sends requests until `deadline`: back to back, or one per `interval` from `first`.
async fn connection_loop(
    remote: Arc<Remote>,
    path: &'static str,
    events_per_request: usize,
    first: Instant,
    interval: Option<Duration>,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally {
        latencies: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
        statuses: BTreeMap::new(),
    };
    let mut due = first;
    let mut n: u64 = 0;
    loop {
        if interval.is_some() {
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due).await;
        } else if Instant::now() >= deadline {
            break;
        }
        let started = if interval.is_some() {
            due
        } else {
            Instant::now()
        };
        let request = match events_per_request {
            0 => remote.request(reqwest::Method::GET, path)?,
            1 => remote.request(reqwest::Method::POST, path)?.json(&event(n)),
            _ => {
                let batch: Vec<Value> = (0..events_per_request)
                    .map(|i| event(n * 1000 + i as u64))
                    .collect();
                remote.request(reqwest::Method::POST, path)?.json(&batch)
            }
        };
        let status = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer: a response is complete only when its body has arrived.
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        };
        let latency = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally
            .latencies
            .saturating_record(latency.clamp(1, MAX_LATENCY_US));
        *tally.statuses.entry(status).or_default() += 1;
        sent.fetch_add(1, Ordering::Relaxed);
        n += 1;
        if let Some(interval) = interval {
            due += interval;
        }
    }
    Ok(tally)
}

/// A small event of a type outside the known families (no payload schema to satisfy).
fn event(n: u64) -> Value {
    json!({"type": "bench.event", "source": "eventflow-bench", "data": {"n": n}})
}

/// The running count, once a second, on a terminal.
async fn show_progress(
    remote: Arc<Remote>,
    sent: Arc<AtomicU64>,
    started: Instant,
    deadline: Instant,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < deadline {
        tick.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        let count = sent.load(Ordering::Relaxed);
        remote.progress(&format!(
            "{seconds:.0}s: {count} requests ({:.0}/s)",
            count as f64 / seconds
        ));
    }
    remote.progress("");
}

/// One line of latency percentiles.
fn latency_line(latency: &Value) -> String {
    let ms = |q: &str| latency[q].as_f64().unwrap_or_default();
    format!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
        ms("p50"),
        ms("p90"),
        ms("p99"),
        ms("p99_9"),
        ms("max"),
    )
}

/// The end-to-end report for people.
fn describe_e2e(report: &Value) -> String {
    format!(
        "{} events sent at {}/s, {} accepted, {} delivered; POST to webhook receipt:\n",
        report["sent"], report["rate"], report["accepted"], report["delivered"]
    ) + &latency_line(&report["latency_ms"])
}

/// The replay report for people.
fn describe_replay(report: &Value) -> String {
    let number = |key: &str| report[key].as_f64().unwrap_or_default();
    format!(
        "{} events stored ({:.0}/s) and replayed in {:.2}s after {:.2}s queued: {:.0} events/s; \
         {} deliveries created, {} received during the replay; a dry run walked {:.0} events/s\n",
        report["events"],
        number("seed_events_per_second"),
        number("running_seconds"),
        number("queued_seconds"),
        number("events_per_second"),
        report["deliveries"],
        report["delivered_during_replay"],
        number("dry_run_events_per_second"),
    )
}

/// The report for people.
fn describe(report: &Value) -> String {
    let mut out = format!(
        "{} requests in {:.1}s over {} connections: {:.0} requests/s, {:.0} events/s\n",
        report["requests"],
        report["seconds"].as_f64().unwrap_or_default(),
        report["connections"],
        report["requests_per_second"].as_f64().unwrap_or_default(),
        report["events_per_second"].as_f64().unwrap_or_default(),
    );
    out += &latency_line(&report["latency_ms"]);
    match report["errors"].as_object() {
        Some(errors) if !errors.is_empty() => {
            for (status, count) in errors {
                out += &format!("errors {status}: {count}\n");
            }
        }
        _ => out += "errors: none\n",
    }
    out
}
