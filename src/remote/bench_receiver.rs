//! The webhook receiver of `eventflow bench e2e` and `bench replay`: it listens on loopback, is
//! subscribed to one event type for the run, counts what arrives and times events that carry
//! the moment they were sent; the subscription is removed afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::Remote;
use super::bench::MAX_LATENCY_US;

/// Microseconds since the epoch: comparable between sender and receiver on one machine.
pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What the receiver has seen.
struct Receipts {
    /// Deliveries received.
    count: AtomicU64,
    /// Send-to-receipt latency of deliveries whose event's data has `sent_us`.
    latencies: Mutex<Histogram<u64>>,
}

/// A receiver subscribed for the run; [`BenchReceiver::remove`] unsubscribes it.
pub(super) struct BenchReceiver {
    subscription_id: String,
    receipts: Arc<Receipts>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Counts a delivery and records its latency when the event says when it was sent.
async fn receive(State(receipts): State<Arc<Receipts>>, body: Bytes) -> StatusCode {
    let received = now_us();
    receipts.count.fetch_add(1, Ordering::Relaxed);
    if let Some(sent) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| event.pointer("/data/sent_us").and_then(Value::as_u64))
        && let Ok(mut latencies) = receipts.latencies.lock()
    {
        latencies.saturating_record(received.saturating_sub(sent).clamp(1, MAX_LATENCY_US));
    }
    StatusCode::NO_CONTENT
}

impl BenchReceiver {
    /// Starts a receiver and subscribes it to `event_type`.
    pub(super) async fn subscribe(remote: &Remote, event_type: &str) -> anyhow::Result<Self> {
        let receipts = Arc::new(Receipts {
            count: AtomicU64::new(0),
            latencies: Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let app = Router::new().fallback(receive).with_state(receipts.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let name = format!("eventflow-bench-{}", uuid::Uuid::now_v7().simple());
        let subscription = json!({"name": name, "event_types": [event_type], "webhook_url": url});
        let created = remote
            .call(reqwest::Method::POST, "api/v1/subscriptions", &[], Some(&subscription))
            .await
            .context("cannot subscribe the benchmark's receiver (a server outside APP_ENV=development needs WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)")?;
        // A moment for every worker to see the new subscription.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(Self {
            subscription_id: created["id"].as_str().unwrap_or_default().to_string(),
            receipts,
            server,
        })
    }

    /// The subscription's id.
    pub(super) fn subscription_id(&self) -> &str {
        &self.subscription_id
    }

    /// Deliveries received so far.
    pub(super) fn delivered(&self) -> u64 {
        self.receipts.count.load(Ordering::Relaxed)
    }

    /// The latencies recorded so far.
    pub(super) fn latencies(&self) -> anyhow::Result<Histogram<u64>> {
        self.receipts
            .latencies
            .lock()
            .map(|latencies| latencies.clone())
            .map_err(|_| anyhow::anyhow!("the receiver failed"))
    }

    /// Unsubscribes and stops the receiver.
    pub(super) async fn remove(self, remote: &Remote) -> anyhow::Result<()> {
        let path = format!(
            "api/v1/subscriptions/{}",
            eventflow::api::path_segment(&self.subscription_id)
        );
        let removed = remote.call(reqwest::Method::DELETE, &path, &[], None).await;
        self.server.abort();
        removed.map(|_| ())
    }
}
