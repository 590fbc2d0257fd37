//! Webhook delivery benchmark: a receiver of its own, subscriptions pointing at it, events posted
//! to a running EventFlow, and the deliveries timed at the receiver.
//!
//! ```text
//! webhook_bench drain   --api URL [--subscriptions N] [--events N] [--worker-cmd CMD]
//!                       [--ordering none|partition_key] [--keys N] [--receiver-delay-ms MS]
//!                       [--filter half|all] [--json FILE]
//! webhook_bench latency --api URL [--rate EVENTS_PER_SEC] [--duration SECONDS]
//! ```
//!
//! `drain` posts the events first (in batches of 100), then runs `--worker-cmd` (a shell command
//! that starts the worker processes) and reports how fast the deliveries arrive. With `--keys N`
//! the events carry N partition keys in turn, and `--ordering partition_key` makes the
//! subscriptions ordered by them; `--filter half` gives every subscription a three-clause CESQL
//! filter that half the events pass, `--filter all` one that every event passes (the filter's
//! cost alone); the receiver answers after `--receiver-delay-ms`; `--json`
//! also writes the figures to a file (for `scripts/bench.sh`). `latency` posts
//! single events at a fixed rate (open loop) to one subscription and reports the time from each
//! POST to its delivery. Used by `scripts/bench-webhooks.sh`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// What the receiver saw.
#[derive(Default)]
struct Tally {
    deliveries: AtomicU64,
    first_at: Mutex<Option<Instant>>,
    last_at: Mutex<Option<Instant>>,
    /// POST-to-delivery latencies in microseconds (latency mode).
    latencies_us: Mutex<Vec<u64>>,
    /// How long the receiver takes to answer.
    delay: Duration,
}

/// Nanoseconds since the epoch, comparable between the poster and the receiver.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn receive(State(tally): State<Arc<Tally>>, body: Bytes) -> StatusCode {
    if !tally.delay.is_zero() {
        tokio::time::sleep(tally.delay).await;
    }
    let now = Instant::now();
    let received_ns = now_ns();
    if let Ok(event) = serde_json::from_slice::<Value>(&body)
        && let Some(sent_ns) = event.pointer("/data/sent_ns").and_then(Value::as_u64)
    {
        let latency = received_ns.saturating_sub(sent_ns) / 1000;
        tally.latencies_us.lock().unwrap().push(latency);
    }
    tally.first_at.lock().unwrap().get_or_insert(now);
    *tally.last_at.lock().unwrap() = Some(now);
    tally.deliveries.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

struct Options {
    mode: String,
    api: String,
    subscriptions: usize,
    events: usize,
    rate: u64,
    duration: u64,
    worker_cmd: Option<String>,
    ordering: String,
    keys: usize,
    receiver_delay: Duration,
    filter: Option<String>,
    json: Option<String>,
}

/// The filter of `--filter half`: three clauses, true for the events with an even `n`.
const HALF_FILTER: &str = "type = 'bench.tick' AND source = 'bench' AND data.n % 2 = 0";
/// The filter of `--filter all`: three clauses, true for every event.
const ALL_FILTER: &str = "type = 'bench.tick' AND source = 'bench' AND data.n >= 0";

fn options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        mode: args.next().context("mode: drain or latency")?,
        api: "http://127.0.0.1:8000".into(),
        subscriptions: 1,
        events: 20_000,
        rate: 1000,
        duration: 10,
        worker_cmd: None,
        ordering: "none".into(),
        keys: 0,
        receiver_delay: Duration::ZERO,
        filter: None,
        json: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--api" => options.api = value,
            "--subscriptions" => options.subscriptions = value.parse()?,
            "--events" => options.events = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            "--duration" => options.duration = value.parse()?,
            "--worker-cmd" => options.worker_cmd = Some(value),
            "--ordering" => options.ordering = value,
            "--keys" => options.keys = value.parse()?,
            "--receiver-delay-ms" => {
                options.receiver_delay = Duration::from_millis(value.parse()?);
            }
            "--json" => options.json = Some(value),
            "--filter" if value == "half" || value == "all" => options.filter = Some(value),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    eventflow::delivery::install_crypto_provider();
    let client = reqwest::Client::new();
    let tally = Arc::new(Tally {
        delay: options.receiver_delay,
        ..Tally::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new().fallback(receive).with_state(tally.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    for n in 0..options.subscriptions {
        let mut body =
            json!({"name": format!("bench-{n}"), "event_types": ["bench.*"], "webhook_url": url});
        // Only when asked for: a server from before ordered delivery refuses the field.
        if options.ordering != "none" {
            body["ordering"] = json!(options.ordering);
        }
        match options.filter.as_deref() {
            Some("half") => body["filters"] = json!([{ "sql": HALF_FILTER }]),
            Some(_) => body["filters"] = json!([{ "sql": ALL_FILTER }]),
            None => {}
        }
        let response = client
            .post(format!("{}/api/v1/subscriptions", options.api))
            .json(&body)
            .send()
            .await?;
        if response.status() != 201 {
            bail!("subscribing failed: {}", response.text().await?);
        }
    }
    match options.mode.as_str() {
        "drain" => drain(&options, &client, &tally).await,
        "latency" => latency(&options, &client, &tally).await,
        other => bail!("unknown mode {other}"),
    }
}

/// Posts every event, starts the workers, and times the deliveries.
async fn drain(options: &Options, client: &reqwest::Client, tally: &Tally) -> anyhow::Result<()> {
    let batches: Vec<Value> = (0..options.events)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|chunk| {
            json!(
                chunk
                    .iter()
                    .map(|n| {
                        let mut event = json!({"type": "bench.tick", "source": "bench",
                                               "data": {"n": n}});
                        if options.keys > 0 {
                            let key = format!("key-{}", n % options.keys);
                            event["metadata"] = json!({"partition_key": key});
                        }
                        event
                    })
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let posted = Instant::now();
    for batch in batches {
        let response = client
            .post(format!("{}/api/v1/events/batch", options.api))
            .json(&batch)
            .send()
            .await?;
        if response.status() != 200 {
            bail!("posting failed: {}", response.status());
        }
    }
    println!(
        "posted {} events in {:.1}s",
        options.events,
        posted.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut worker = match &options.worker_cmd {
        Some(cmd) => Some(
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .spawn()?,
        ),
        None => None,
    };
    let matching = if options.filter.as_deref() == Some("half") {
        options.events.div_ceil(2)
    } else {
        options.events
    };
    let expected = (matching * options.subscriptions) as u64;
    while tally.deliveries.load(Ordering::Relaxed) < expected {
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {} of {expected} deliveries arrived",
                tally.deliveries.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = tally.first_at.lock().unwrap().unwrap_or(started);
    let last = tally.last_at.lock().unwrap().unwrap_or(started);
    let spread = (last - first).as_secs_f64();
    let per_second = expected as f64 / spread;
    if let Some(path) = &options.json {
        let report = json!({"deliveries": expected, "subscriptions": options.subscriptions,
                            "ordering": options.ordering, "keys": options.keys,
                            "filter": options.filter, "events": options.events,
                            "receiver_delay_ms": options.receiver_delay.as_secs_f64() * 1000.0,
                            "deliveries_per_second": per_second, "seconds": spread});
        std::fs::write(path, report.to_string())?;
    }
    println!(
        "{expected} deliveries ({} subscriptions): {:.0} deliveries/s from first to last delivery ({:.2}s), {:.0}/s including worker start-up ({:.2}s)",
        options.subscriptions,
        per_second,
        spread,
        expected as f64 / (last - started).as_secs_f64(),
        (last - started).as_secs_f64(),
    );
    if let Some(worker) = worker.as_mut() {
        let _ = worker.kill().await;
    }
    Ok(())
}

/// Posts single events at a fixed rate and reports POST-to-delivery latency.
async fn latency(options: &Options, client: &reqwest::Client, tally: &Tally) -> anyhow::Result<()> {
    let total = options.rate * options.duration;
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let started = tokio::time::Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..total {
        tokio::time::sleep_until(started + interval * n as u32).await;
        let client = client.clone();
        let url = format!("{}/api/v1/events", options.api);
        sends.spawn(async move {
            let event = json!({"type": "bench.tick", "source": "bench",
                               "data": {"n": n, "sent_ns": now_ns()}});
            client
                .post(url)
                .json(&event)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let mut failed = 0;
    while let Some(sent) = sends.join_next().await {
        if !matches!(sent, Ok(Ok(201))) {
            failed += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while tally.deliveries.load(Ordering::Relaxed) < total - failed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = tally.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default() as f64
            / 1000.0
    };
    println!(
        "{} events at {}/s for {}s ({} failed posts): {} delivered; POST-to-delivery p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total,
        options.rate,
        options.duration,
        failed,
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        latencies.last().copied().unwrap_or_default() as f64 / 1000.0,
    );
    Ok(())
}
