//! `eventflow bench e2e`: POST-to-webhook latency. It runs a webhook receiver of its own,
//! subscribes it, sends events at `--rate` (open loop), and times each event from its POST to its
//! delivery; then removes the subscription.

use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Remote;
use super::bench::latency_report;
use super::bench_receiver::{BenchReceiver, now_us};

/// How long deliveries still under way are waited for after the last POST.
const DRAIN: Duration = Duration::from_secs(5);
/// The event type the run sends and subscribes to.
const EVENT_TYPE: &str = "bench.e2e";

/// Runs the end-to-end benchmark for `duration` at `rate` events a second.
pub(super) async fn run(remote: &Remote, duration: Duration, rate: u32) -> anyhow::Result<Value> {
    let receiver = BenchReceiver::subscribe(remote, EVENT_TYPE).await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let deadline = started + duration;
    let mut sends = tokio::task::JoinSet::new();
    let mut due = started;
    let mut sent = 0u64;
    while due < deadline {
        tokio::time::sleep_until(due).await;
        let event = json!({"type": EVENT_TYPE, "source": "eventflow-bench",
                           "data": {"n": sent, "sent_us": now_us()}});
        let request = remote
            .request(reqwest::Method::POST, "api/v1/events")?
            .json(&event);
        sends.spawn(async move { request.send().await.map(|r| r.status().is_success()) });
        sent += 1;
        due += interval;
    }
    let mut accepted = 0u64;
    while let Some(outcome) = sends.join_next().await {
        accepted += u64::from(matches!(outcome, Ok(Ok(true))));
    }
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until && receiver.delivered() < accepted {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latencies = receiver.latencies()?;
    receiver.remove(remote).await?;
    if accepted == 0 {
        bail!("EventFlow accepted none of the {sent} events");
    }
    Ok(json!({
        "kind": "e2e",
        "rate": rate,
        "seconds": duration.as_secs_f64(),
        "sent": sent,
        "accepted": accepted,
        "delivered": latencies.len(),
        "latency_ms": latency_report(&latencies),
    }))
}
