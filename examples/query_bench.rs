//! Query benchmark: a store of realistic events (the demo's stories, spread over 30 days), and
//! the list endpoint's typical queries timed against a running EventFlow.
//!
//! ```text
//! query_bench fill  --events N            # into DATABASE_URL (and REDIS_URL), as `serve` would
//! query_bench query --api URL [--repeat N]
//! ```
//!
//! `fill` appends straight to the store in batches of 1,000 (marking them published, so no
//! outbox backlog runs during the queries), and counts them through the insights' tally as
//! `serve` would, with one delivery per event to one of three subscriptions (one in fifty
//! failing), then drops the minute buckets older than their retention as the flusher does. `query` picks its filter values from an event in the
//! middle of the store, runs each query `--repeat` times one after the other, and prints p50 and
//! p99 per query. Used by `scripts/bench-queries.sh`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use eventflow::app::Backends;
use eventflow::config::Config;
use eventflow::events::StreamRouter;
use eventflow::events::ingest::{IngestContext, from_simple};
use eventflow::insights::{Interval, Metric, Tally};
use eventflow::store::AppendOutcome;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Events appended at once.
const BATCH: usize = 1000;
/// How far back the events go.
const HISTORY: Duration = Duration::from_secs(30 * 86_400);
/// The subscriptions the counted deliveries go to.
const SUBSCRIPTIONS: [&str; 3] = ["sub_crm", "sub_billing", "sub_analytics"];

async fn fill(events: usize) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let backends = Backends::open(&config).await?;
    backends.upgrade_schema().await?;
    let router = StreamRouter::new(config.default_stream.clone());
    let stop_counting = CancellationToken::new();
    let (counts, flusher) = Tally::spawn(backends.counts.clone(), stop_counting.clone());
    let started = Instant::now();
    let oldest = Utc::now() - HISTORY;
    let step = HISTORY.as_secs_f64() / events as f64;
    for (chunk, first) in (0..events).step_by(BATCH).enumerate() {
        let count = BATCH.min(events - first);
        let mut batch = Vec::with_capacity(count);
        // A story per chunk: its users are new, their journeys coherent.
        for (n, mut value) in eventflow::demo::events(count, chunk as u64 + 1)
            .into_iter()
            .enumerate()
        {
            let index = first + n;
            let time =
                oldest + chrono::Duration::from_std(Duration::from_secs_f64(step * index as f64))?;
            value["time"] = Value::from(time.to_rfc3339());
            // What the event is about: its user, when it has one.
            if let Some(user) = value["data"]["user_id"].as_str() {
                value["subject"] = Value::from(user.to_string());
            }
            let correlation_id = format!("req-{}", index / 5);
            let context = IngestContext {
                router: &router,
                correlation_id: &correlation_id,
                received_at: time,
                traceparent: None,
            };
            batch.push(from_simple(value, context)?);
        }
        count_as_served(&counts, &batch, first);
        let outcomes = backends.store.append(batch).await?;
        let sequences: Vec<i64> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                AppendOutcome::Created(event) => event.metadata.sequence,
                _ => None,
            })
            .collect();
        backends.store.mark_published(&sequences).await?;
        if chunk % 100 == 99 {
            eprintln!("{} events stored", first + count);
        }
    }
    stop_counting.cancel();
    flusher.finished().await;
    let kept = chrono::Duration::from_std(Interval::Minute.retention())?;
    backends
        .counts
        .prune_counts(Interval::Minute, Utc::now() - kept)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "stored {events} events in {seconds:.0} s ({:.0} events/s)",
        events as f64 / seconds
    );
    backends.close().await;
    Ok(())
}

/// Counts a batch as `serve` would: the events by type, and one delivery attempt each.
fn count_as_served(counts: &Tally, batch: &[eventflow::events::Event], first: usize) {
    let at = |event: &eventflow::events::Event| event.metadata.received_at;
    counts.add(
        Metric::Events,
        batch
            .iter()
            .map(|e| (e.envelope.event_type.as_str(), at(e))),
    );
    for (metric, failed) in [
        (Metric::Deliveries, false),
        (Metric::DeliveryFailures, true),
    ] {
        counts.add(
            metric,
            batch
                .iter()
                .enumerate()
                .filter(|(n, _)| ((first + n) % 50 == 49) == failed)
                .map(|(n, e)| (SUBSCRIPTIONS[(first + n) % SUBSCRIPTIONS.len()], at(e))),
        );
    }
}

/// GETs `path` `repeat` times; returns the latencies, sorted, and the last answer.
async fn timed_gets(
    client: &reqwest::Client,
    api: &str,
    path: &str,
    repeat: usize,
) -> anyhow::Result<(Vec<Duration>, Value)> {
    let mut latencies = Vec::with_capacity(repeat);
    let mut last = Value::Null;
    for _ in 0..repeat {
        let started = Instant::now();
        let response = client.get(format!("{api}{path}")).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        // The answer's latency ends with its last byte; reading it is the client's own time.
        latencies.push(started.elapsed());
        last = serde_json::from_slice(&body)?;
        if !status.is_success() {
            bail!("{path}: {status} {last}");
        }
    }
    latencies.sort_unstable();
    Ok((latencies, last))
}

/// Events in a page, points in a timeseries, types in the registry; 1 for one event.
fn answer_size(answer: &Value) -> usize {
    if let Some(series) = answer["series"].as_array() {
        return series
            .iter()
            .filter_map(|s| s["points"].as_array())
            .map(Vec::len)
            .sum();
    }
    ["events", "event_types"]
        .iter()
        .find_map(|list| answer[*list].as_array().map(Vec::len))
        .unwrap_or(1)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

async fn query(api: &str, repeat: usize) -> anyhow::Result<()> {
    eventflow::delivery::install_crypto_provider();
    let client = reqwest::Client::new();
    let newest = client
        .get(format!("{api}/api/v1/events?limit=1"))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let top = newest["events"][0]["metadata"]["sequence"]
        .as_i64()
        .context("an empty store")?;
    let middle = client
        .get(format!("{api}/api/v1/events?limit=1&cursor={}", top / 2))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let sample = &middle["events"][0];
    let text = |pointer: &str| {
        sample
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (source, subject, correlation, time) = (
        text("/source"),
        text("/subject"),
        text("/metadata/correlation_id"),
        text("/time"),
    );
    let at: chrono::DateTime<Utc> = time.parse()?;
    let hour_later =
        (at + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let queries = [
        ("newest page", "/api/v1/events?limit=50".to_string()),
        (
            "exact type",
            "/api/v1/events?limit=50&event_type=order.created".into(),
        ),
        (
            "type prefix",
            "/api/v1/events?limit=50&event_type=payment.*".into(),
        ),
        (
            "stream",
            "/api/v1/events?limit=50&stream=events:analytics".into(),
        ),
        ("source", format!("/api/v1/events?limit=50&source={source}")),
        (
            "subject (one user)",
            format!("/api/v1/events?limit=50&subject={subject}"),
        ),
        (
            "correlation id",
            format!("/api/v1/events?limit=50&correlation_id={correlation}"),
        ),
        (
            "one hour",
            format!("/api/v1/events?limit=50&start_time={at}&end_time={hour_later}"),
        ),
        (
            "type in one hour",
            format!(
                "/api/v1/events?limit=50&event_type=page.view&start_time={at}&end_time={hour_later}"
            ),
        ),
        (
            "page at offset 5000",
            "/api/v1/events?limit=50&offset=5000".into(),
        ),
        ("by id", format!("/api/v1/events/{}", text("/id"))),
        (
            "timeseries: events by type, 1m, last hour",
            "/api/v1/stats/timeseries?metric=events&interval=1m&since=60m".into(),
        ),
        (
            "timeseries: events by type, 1h, last 24 h",
            "/api/v1/stats/timeseries?metric=events&interval=1h&since=24h".into(),
        ),
        (
            "timeseries: deliveries by subscription, 1m, last hour",
            "/api/v1/stats/timeseries?metric=deliveries&interval=1m&since=60m".into(),
        ),
        (
            "timeseries: events by type, 1h, last 7 days",
            "/api/v1/stats/timeseries?metric=events&interval=1h&since=7d".into(),
        ),
        (
            "timeseries: events by type, 1m, last 24 h",
            "/api/v1/stats/timeseries?metric=events&interval=1m&since=24h".into(),
        ),
        ("event types with counts", "/api/v1/event-types".into()),
    ];
    println!("| query | p50 ms | p99 ms | events (or points, or types) in the answer |");
    println!("|---|---|---|---|");
    for (name, path) in &queries {
        let (latencies, last) = timed_gets(&client, api, path, repeat).await?;
        let found = answer_size(&last);
        println!(
            "| {name} | {:.2} | {:.2} | {found} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    // Keyset paging deep into a filter: the 21st page of one type, following next_cursor.
    let first_page = "/api/v1/events?limit=50&event_type=order.created".to_string();
    let mut path = first_page.clone();
    for _ in 0..20 {
        let (_, page) = timed_gets(&client, api, &path, 1).await?;
        let Some(cursor) = page["next_cursor"].as_str() else {
            println!("(fewer than 21 pages of order.created: no deep-paging figure)");
            return Ok(());
        };
        path = format!("{first_page}&cursor={cursor}");
    }
    let (latencies, _) = timed_gets(&client, api, &path, repeat).await?;
    println!(
        "| exact type, 21st page by cursor | {:.2} | {:.2} | 50 |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().context("mode: fill or query")?;
    let (mut events, mut api, mut repeat) = (1_000_000, "http://127.0.0.1:8000".to_string(), 200);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => events = value.parse()?,
            "--api" => api = value,
            "--repeat" => repeat = value.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    match mode.as_str() {
        "fill" => fill(events).await,
        "query" => query(&api, repeat).await,
        other => bail!("unknown mode {other}: fill or query"),
    }
}
