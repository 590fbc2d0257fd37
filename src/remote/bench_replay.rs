//! `eventflow bench replay`: how fast a replay walks stored events. It stores `--events` events
//! of its own type in batches and waits until the workers have processed them; then it times a
//! dry run of the window (the walk alone), subscribes a receiver of its own and replays the
//! window to it (the walk and a delivery job per event, while the workers deliver them). Both
//! are timed from the server's own timestamps: from the first batch seen committed to the end.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Remote;
use super::bench_receiver::BenchReceiver;

/// The event type the run stores and replays.
const EVENT_TYPE: &str = "bench.replay";
/// Events in each batch request that stores the run's events.
const SEED_BATCH: u64 = 500;
/// Longest wait for the workers to process the stored events before the replay.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// Longest a replay may take before the run gives up on it.
const REPLAY_LIMIT: Duration = Duration::from_secs(600);
/// How often the replay's progress is read.
const POLL: Duration = Duration::from_millis(50);

/// Stores `events` events, replays them and reports the replay's rate.
pub(super) async fn run(remote: &Remote, events: u64, connections: u32) -> anyhow::Result<Value> {
    // Whole seconds, one apart: the window holds exactly this run's events of the type.
    let start_time = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(1);
    let (stream, seed_seconds) = seed(remote, events, connections).await?;
    let end_time = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(2);
    settle(remote).await?;
    let window = json!({
        "stream": stream,
        "start_time": start_time,
        "end_time": end_time,
        "event_types": [EVENT_TYPE],
    });
    let dry_run = follow(remote, &json!({"dry_run": true}), &window).await?;
    let receiver = BenchReceiver::subscribe(remote, EVENT_TYPE).await?;
    let to_receiver = json!({"subscription_id": receiver.subscription_id()});
    let outcome = follow(remote, &to_receiver, &window).await;
    let delivered = receiver.delivered();
    receiver.remove(remote).await?;
    let timing = outcome?;
    let replayed = timing.finished["replayed"].as_u64().unwrap_or(0);
    if timing.finished["status"] != "completed" {
        bail!(
            "the replay ended {}: {}",
            timing.finished["status"],
            timing.finished["error"]
        );
    }
    // The window is taken from this machine's clock; the events' times from the server's.
    let matched = timing.finished["matched"].as_u64().unwrap_or(0);
    if matched != events {
        bail!(
            "the replayed window held {matched} of the {events} events stored; \
             are the clocks of this machine and the server apart?"
        );
    }
    Ok(json!({
        "kind": "replay",
        "events": events,
        "stream": stream,
        "seed_events_per_second": events as f64 / seed_seconds,
        "replay": timing.finished["id"],
        "matched": timing.finished["matched"],
        "replayed": replayed,
        "deliveries": timing.finished["deliveries"],
        "queued_seconds": timing.queued_seconds,
        "running_seconds": timing.running_seconds,
        "events_per_second": timing.events_per_second(),
        "delivered_during_replay": delivered,
        "dry_run_events_per_second": dry_run.events_per_second(),
    }))
}

/// Stores the run's events over `connections` connections; returns their stream and how long
/// storing took.
async fn seed(remote: &Remote, events: u64, connections: u32) -> anyhow::Result<(String, f64)> {
    let started = Instant::now();
    let mut batches = JoinSet::new();
    let mut first_id = None;
    let mut next = 0u64;
    while next < events || !batches.is_empty() {
        while next < events && batches.len() < connections.max(1) as usize {
            let size = SEED_BATCH.min(events - next);
            let body: Vec<Value> = (next..next + size)
                .map(|n| json!({"type": EVENT_TYPE, "source": "eventflow-bench", "data": {"n": n}}))
                .collect();
            let request = remote
                .request(reqwest::Method::POST, "api/v1/events/batch")?
                .json(&body);
            batches.spawn(async move {
                request
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Value>()
                    .await
            });
            next += size;
        }
        if let Some(done) = batches.join_next().await {
            let answer = done
                .context("a batch task failed")?
                .context("storing the run's events failed")?;
            if answer["rejected"].as_u64() != Some(0) {
                bail!("EventFlow refused part of a batch: {answer}");
            }
            remote.progress(&format!("storing the run's events: {next} of {events}"));
            first_id = first_id.or_else(|| {
                answer
                    .pointer("/results/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        }
    }
    remote.progress("");
    let seconds = started.elapsed().as_secs_f64();
    let id = first_id.context("no events were stored")?;
    let path = format!("api/v1/events/{}", eventflow::api::path_segment(&id));
    let event = remote.call(reqwest::Method::GET, &path, &[], None).await?;
    let stream = event
        .pointer("/metadata/stream")
        .and_then(Value::as_str)
        .context("the stored event names no stream")?;
    Ok((stream.to_string(), seconds))
}

/// Waits until the workers have read every stored event, so that the replay runs alone.
async fn settle(remote: &Remote) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let stats = remote
            .call(reqwest::Method::GET, "api/v1/stats", &[], None)
            .await?;
        if stats["consumer_lag"].as_u64() == Some(0) && stats["outbox_backlog"].as_u64() == Some(0)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the workers did not catch up within {SETTLE_LIMIT:?}: {stats}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How a replay went, by the server's clock.
struct ReplayTiming {
    /// The replay as it ended.
    finished: Value,
    /// From the request until a worker had committed its first batch.
    queued_seconds: f64,
    /// From the first committed batch seen to the end.
    running_seconds: f64,
    /// Events of the window walked in `running_seconds`.
    measured_events: u64,
}

impl ReplayTiming {
    /// The rate of the walk while it ran.
    fn events_per_second(&self) -> f64 {
        self.measured_events as f64 / self.running_seconds.max(1e-6)
    }
}

/// Queues a replay of `window` with `options` and follows it to its end.
async fn follow(remote: &Remote, options: &Value, window: &Value) -> anyhow::Result<ReplayTiming> {
    let mut request = window.clone();
    if let (Some(request), Some(options)) = (request.as_object_mut(), options.as_object()) {
        request.extend(options.clone());
    }
    let replay = remote
        .call(
            reqwest::Method::POST,
            "api/v1/events/replay",
            &[],
            Some(&request),
        )
        .await?;
    let path = format!(
        "api/v1/replays/{}",
        eventflow::api::path_segment(replay["id"].as_str().unwrap_or_default())
    );
    let created = timestamp(&replay["created_at"])?;
    let deadline = Instant::now() + REPLAY_LIMIT;
    // The first reading with committed progress: (when it was committed, events by then).
    let mut first_batch: Option<(DateTime<Utc>, u64)> = None;
    loop {
        let replay = remote.call(reqwest::Method::GET, &path, &[], None).await?;
        let matched = replay["matched"].as_u64().unwrap_or(0);
        let status = replay["status"].as_str().unwrap_or_default();
        remote.progress(&format!("replay {status}: {matched} events walked"));
        if let Some(finished_at) = replay.get("finished_at").filter(|v| !v.is_null()) {
            remote.progress("");
            let finished = timestamp(finished_at)?;
            // A replay whose walk was over by the first reading that saw progress (it ended
            // between two readings, or in one batch) is timed from its request.
            let (from, before) = first_batch
                .filter(|(_, before)| *before < matched)
                .unwrap_or((created, 0));
            return Ok(ReplayTiming {
                queued_seconds: seconds_between(created, from),
                running_seconds: seconds_between(from, finished),
                measured_events: matched - before,
                finished: replay,
            });
        }
        if status == "running" && matched > 0 && first_batch.is_none() {
            first_batch = Some((timestamp(&replay["updated_at"])?, matched));
        }
        if Instant::now() >= deadline {
            bail!("the replay did not end within {REPLAY_LIMIT:?}: {replay}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An RFC 3339 time from the API.
fn timestamp(value: &Value) -> anyhow::Result<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
        .with_context(|| format!("not a time: {value}"))
}

/// Seconds from `from` to `to`.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6
}
