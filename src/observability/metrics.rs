//! Prometheus metrics: the recorder, and one function per metric so names live in one place.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::broker::Broker;
use crate::delivery::{DeliveryOrdering, DeliveryStore};
use crate::reliability::BreakerState;
use crate::store::EventStore;

const PUBLISHED: &str = "eventflow_events_published_total";
const CONSUMED: &str = "eventflow_events_consumed_total";
const FAILED: &str = "eventflow_events_failed_total";
const INVALID: &str = "eventflow_events_invalid_total";
const PROCESSING: &str = "eventflow_event_processing_seconds";
const DLQ_SIZE: &str = "eventflow_dlq_size";
const LIVE_STREAMS: &str = "eventflow_live_streams";
const BATCH_SIZE: &str = "eventflow_producer_batch_size";
const COMMIT_SECONDS: &str = "eventflow_producer_commit_seconds";
const STREAM_LENGTH: &str = "eventflow_stream_length";
const CONSUMER_LAG: &str = "eventflow_consumer_lag";
const CONSUMER_PENDING: &str = "eventflow_consumer_pending";
const BREAKER_STATE: &str = "eventflow_circuit_breaker_state";
const WEBHOOK_DELIVERIES: &str = "eventflow_webhook_deliveries_total";
const WEBHOOK_SECONDS: &str = "eventflow_webhook_delivery_seconds";
const OUTBOX_BACKLOG: &str = "eventflow_outbox_backlog";
const ORDERED_KEYS_BLOCKED: &str = "eventflow_ordered_keys_blocked";
const HTTP_REQUESTS: &str = "eventflow_http_requests_total";
const HTTP_SECONDS: &str = "eventflow_http_request_duration_seconds";

/// The `outcome` label values of webhook attempts.
pub const WEBHOOK_OUTCOMES: &[&str] = &["delivered", "retry", "dead_lettered"];

/// Histogram buckets for durations, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The outbox is counted up to this many events: the count stays cheap in an outage.
pub const OUTBOX_COUNT_CAP: u64 = 1_000_000;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(PROCESSING.into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_SIZE.into()),
                        &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.into()), LATENCY_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WEBHOOK_SECONDS.into()), LATENCY_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), LATENCY_BUCKETS)
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding application; then
            // this handle renders only what reaches it, which is still valid output.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(PUBLISHED, "Events published to the broker");
    describe_counter!(CONSUMED, "Events processed successfully by workers");
    describe_counter!(
        INVALID,
        "Events refused at ingest by the schema registry, by registered type (any other: unregistered)"
    );
    describe_counter!(
        FAILED,
        "Events whose processing failed for good (dead-lettered)"
    );
    describe_histogram!(
        PROCESSING,
        metrics::Unit::Seconds,
        "Time workers spend processing one event"
    );
    describe_gauge!(DLQ_SIZE, "Entries in the dead-letter queue");
    describe_gauge!(LIVE_STREAMS, "Live event streams (SSE clients) open");
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker of each subscription's endpoint: 0 closed, 1 open, 2 half-open"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts by outcome: delivered, retry or dead_lettered"
    );
    describe_histogram!(
        WEBHOOK_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one webhook request"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "Time from a request's arrival to its answer, by method and route template"
    );
    describe_histogram!(BATCH_SIZE, "Events per group commit");
    describe_gauge!(
        ORDERED_KEYS_BLOCKED,
        "Keys of an ordered subscription whose head has failed and holds their later events back"
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        "Stored events waiting to be handed to the broker (counted up to 1,000,000)"
    );
    describe_histogram!(
        COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time one group commit takes in the event store"
    );
    describe_gauge!(STREAM_LENGTH, "Entries in each stream");
    describe_gauge!(
        CONSUMER_LAG,
        "Entries of a stream not yet delivered to the consumer group"
    );
    describe_gauge!(
        CONSUMER_PENDING,
        "Entries delivered to the consumer group and not yet acknowledged"
    );
}

/// Exports, at zero, the series an API process counts, before its first request: ingest per
/// stream, group commits, and request durations per documented route. A series born with its
/// first increment cannot alert on `increase(…) > 0` and shows "No data" instead of 0.
pub fn register_ingest(streams: &[String], routes: &[(&'static str, String)]) {
    for stream in streams {
        counter!(PUBLISHED, "stream" => stream.clone()).increment(0);
    }
    // Registering is enough: the series renders with empty buckets.
    let _ = histogram!(BATCH_SIZE);
    let _ = histogram!(COMMIT_SECONDS);
    for (method, route) in routes {
        let _ = histogram!(HTTP_SECONDS, "method" => *method, "route" => route.clone());
    }
    gauge!(LIVE_STREAMS).increment(0.0);
    counter!(INVALID, "type" => UNREGISTERED).increment(0);
}

/// The `type` label of refused events whose type is not registered: the label's values stay
/// bounded by the registry, whatever producers send.
pub const UNREGISTERED: &str = "unregistered";

/// Counts an event the schema registry refused; `event_type` is a registered type or
/// [`UNREGISTERED`].
pub fn event_invalid(event_type: &str) {
    counter!(INVALID, "type" => event_type.to_string()).increment(1);
}

/// Exports, at zero, the series a worker counts per stream before its first event.
pub fn register_worker(streams: &[String]) {
    for stream in streams {
        counter!(CONSUMED, "stream" => stream.clone()).increment(0);
        counter!(FAILED, "stream" => stream.clone()).increment(0);
        let _ = histogram!(PROCESSING, "stream" => stream.clone());
    }
}

/// Exports, at zero, the delivery series of a subscription this process delivers to: attempts
/// by every outcome, and its breaker (closed until it opens).
pub fn register_subscription(subscription_id: &str) {
    let subscription = subscription_id.to_string();
    for outcome in WEBHOOK_OUTCOMES {
        counter!(WEBHOOK_DELIVERIES, "subscription" => subscription.clone(), "outcome" => *outcome)
            .increment(0);
    }
    let _ = histogram!(WEBHOOK_SECONDS, "subscription" => subscription.clone());
    let breaker = gauge!(BREAKER_STATE, "subscription" => subscription);
    breaker.increment(0.0);
}

/// Counts events published, given the stream of each.
pub fn events_published<'a>(streams: impl IntoIterator<Item = &'a str>) {
    let mut per_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for stream in streams {
        *per_stream.entry(stream).or_default() += 1;
    }
    for (stream, count) in per_stream {
        counter!(PUBLISHED, "stream" => stream.to_string()).increment(count);
    }
}

/// Counts one event processed successfully, and its processing time.
pub fn event_consumed(stream: &str, elapsed: Duration) {
    counter!(CONSUMED, "stream" => stream.to_string()).increment(1);
    histogram!(PROCESSING, "stream" => stream.to_string()).record(elapsed.as_secs_f64());
}

/// Counts one event dead-lettered after failing.
pub fn event_failed(stream: &str) {
    counter!(FAILED, "stream" => stream.to_string()).increment(1);
}

/// Records the size and duration of one group commit.
pub fn group_commit(events: usize, elapsed: Duration) {
    histogram!(BATCH_SIZE).record(events as f64);
    histogram!(COMMIT_SECONDS).record(elapsed.as_secs_f64());
}

/// Records the state of a subscription's circuit breaker.
pub fn circuit_breaker_state(subscription_id: &str, state: BreakerState) {
    gauge!(BREAKER_STATE, "subscription" => subscription_id.to_string()).set(state.as_metric());
}

/// Counts one webhook delivery attempt by subscription and what follows it, and times it.
pub fn webhook_attempt(subscription_id: &str, outcome: &'static str, elapsed: Duration) {
    let subscription = subscription_id.to_string();
    counter!(WEBHOOK_DELIVERIES, "subscription" => subscription.clone(), "outcome" => outcome)
        .increment(1);
    if !elapsed.is_zero() {
        histogram!(WEBHOOK_SECONDS, "subscription" => subscription).record(elapsed.as_secs_f64());
    }
}

/// Counts and times one answered HTTP request.
pub fn http_request(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    let route = route.to_string();
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// Counts a live stream opened (`1.0`) or closed (`-1.0`).
pub fn live_streams(change: f64) {
    gauge!(LIVE_STREAMS).increment(change);
}

/// Samples how many stored events wait for the broker.
pub async fn sample_outbox(store: &dyn EventStore) {
    if let Ok(waiting) = store.outbox_len(OUTBOX_COUNT_CAP).await {
        gauge!(OUTBOX_BACKLOG).set(waiting as f64);
    }
}

/// Exports the delivery series of every subscription in the store (see
/// [`register_subscription`]), so that one created since the last sample has its zeros too, and
/// samples the blocked keys of the ordered ones.
pub async fn sample_subscriptions(store: &dyn DeliveryStore) {
    let Ok(subscriptions) = store.subscriptions().await else {
        return;
    };
    let blocked = store.blocked_keys(None).await.unwrap_or_default();
    for stored in subscriptions {
        let subscription = &stored.subscription;
        register_subscription(&subscription.id);
        if subscription.ordering != DeliveryOrdering::None {
            let keys = blocked
                .iter()
                .find(|b| b.subscription_id == subscription.id)
                .map_or(0, |b| b.keys);
            gauge!(ORDERED_KEYS_BLOCKED, "subscription" => subscription.id.clone())
                .set(keys as f64);
        }
    }
}

/// Samples the size of the dead-letter queue from the store.
pub async fn sample_dead_letters(store: &dyn DeliveryStore) {
    if let Ok(size) = store.dead_letter_count().await {
        gauge!(DLQ_SIZE).set(size as f64);
    }
}

/// Samples stream length, consumer lag and pending entries from the broker.
pub async fn sample_broker(broker: &dyn Broker, group: &str, streams: &[String]) {
    for stream in streams {
        let labels = [("stream", stream.clone()), ("group", group.to_string())];
        if let Ok(length) = broker.stream_len(stream).await {
            gauge!(STREAM_LENGTH, "stream" => stream.clone()).set(length as f64);
        }
        if let Ok(lag) = broker.lag(group, stream).await {
            gauge!(CONSUMER_LAG, &labels).set(lag as f64);
        }
        if let Ok(pending) = broker.pending(group, stream).await {
            gauge!(CONSUMER_PENDING, &labels).set(pending as f64);
        }
    }
}
