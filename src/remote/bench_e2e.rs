//! `eventflow bench e2e`: POST-to-webhook latency. It runs a webhook receiver of its own,
//! subscribes it, sends events at `--rate` (open loop), and times each event from its POST to its
//! delivery; then removes the subscription.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Remote;
use super::bench::{MAX_LATENCY_US, latency_report};

/// How long deliveries still under way are waited for after the last POST.
const DRAIN: Duration = Duration::from_secs(5);
/// The event type the run sends and subscribes to.
const EVENT_TYPE: &str = "bench.e2e";

/// Microseconds since the epoch: comparable between sender and receiver on one machine.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Records the POST-to-receipt latency of each delivery.
async fn receive(State(latencies): State<Arc<Mutex<Histogram<u64>>>>, body: Bytes) -> StatusCode {
    let received = now_us();
    if let Some(sent) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| event.pointer("/data/sent_us").and_then(Value::as_u64))
        && let Ok(mut latencies) = latencies.lock()
    {
        latencies.saturating_record(received.saturating_sub(sent).clamp(1, MAX_LATENCY_US));
    }
    StatusCode::NO_CONTENT
}

/// Runs the end-to-end benchmark for `duration` at `rate` events a second.
pub(super) async fn run(remote: &Remote, duration: Duration, rate: u32) -> anyhow::Result<Value> {
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        MAX_LATENCY_US,
        3,
    )?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new()
        .fallback(receive)
        .with_state(latencies.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let name = format!("eventflow-bench-{}", uuid::Uuid::now_v7().simple());
    let subscription = json!({"name": name, "event_types": [EVENT_TYPE], "webhook_url": url});
    let created = remote
        .call(reqwest::Method::POST, "api/v1/subscriptions", &[], Some(&subscription))
        .await
        .context("cannot subscribe the benchmark's receiver (a server outside APP_ENV=development needs WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)")?;
    let subscription_id = created["id"].as_str().unwrap_or_default().to_string();
    // A moment for every worker to see the new subscription.
    tokio::time::sleep(Duration::from_millis(1500)).await;

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
    while Instant::now() < drain_until {
        let delivered = latencies.lock().map_or(0, |l| l.len());
        if delivered >= accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = format!(
        "api/v1/subscriptions/{}",
        eventflow::api::path_segment(&subscription_id)
    );
    remote
        .call(reqwest::Method::DELETE, &path, &[], None)
        .await?;
    receiver.abort();
    let latencies = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("the receiver failed"))?
        .clone();
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
