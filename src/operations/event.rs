//! The operational events themselves: their types, their data, and their ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{OPERATIONS_SOURCE, OPERATIONS_STREAM};
use crate::delivery::{DeadLetter, Subscription};
use crate::events::{CloudEvent, Event, Metadata, Priority, SPEC_VERSION};
use crate::replay::{Replay, ReplayProgress, ReplayStatus};

/// The prefix every operational event type has, and producers may not use.
const TYPE_PREFIX: &str = "eventflow.";

const SUBSCRIPTION_DISABLED: &str = "eventflow.subscription.disabled";
const BREAKER_OPENED: &str = "eventflow.subscription.breaker_opened";
const BREAKER_CLOSED: &str = "eventflow.subscription.breaker_closed";
const DEAD_LETTERED: &str = "eventflow.delivery.dead_lettered";
const RECOVERED: &str = "eventflow.delivery.recovered";
const REPLAY_COMPLETED: &str = "eventflow.replay.completed";
const REPLAY_FAILED: &str = "eventflow.replay.failed";
const DLQ_THRESHOLD_EXCEEDED: &str = "eventflow.dlq.threshold_exceeded";

/// Namespace of the name-based (v5) ids of operational events.
const ID_NAMESPACE: uuid::Uuid = uuid::uuid!("6f0d3c2e-5d1b-4c8e-9a57-0e3f1c9b7a11");

/// Whether `event_type` is one of EventFlow's own (reserved at ingest, never reported on).
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with(TYPE_PREFIX)
}

/// Who disabled a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledBy {
    /// Its endpoint answered 410 Gone.
    Endpoint,
    /// An operator, through the API.
    Operator,
}

/// One happening, ready to be published.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationalEvent {
    event_type: &'static str,
    /// Names the happening: the same happening reported twice gets the same event id.
    happening: String,
    /// The subscription it is about, as the CloudEvents `subject`.
    subject: Option<String>,
    data: Map<String, Value>,
}

impl OperationalEvent {
    fn new(event_type: &'static str, happening: String, reason: String) -> Self {
        let mut data = Map::new();
        data.insert("reason".into(), reason.into());
        Self {
            event_type,
            happening,
            subject: None,
            data,
        }
    }

    /// Names `subscription` in the data (id, name, URL) and as the subject.
    fn about(mut self, subscription: &Subscription) -> Self {
        self.subject = Some(subscription.id.clone());
        self.data.insert(
            "subscription".into(),
            json!({"id": subscription.id, "name": subscription.name, "url": subscription.webhook_url}),
        );
        self
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.data.insert(key.into(), value);
        self
    }

    /// `eventflow.subscription.disabled`: it receives nothing until it is enabled again;
    /// `happening` tells this disable from later ones (the delivery answered 410, or the time).
    pub fn subscription_disabled(
        subscription: &Subscription,
        by: DisabledBy,
        reason: &str,
        happening: &str,
    ) -> Self {
        let by = match by {
            DisabledBy::Endpoint => "endpoint",
            DisabledBy::Operator => "operator",
        };
        Self::new(
            SUBSCRIPTION_DISABLED,
            format!("disabled/{}/{happening}", subscription.id),
            reason.to_string(),
        )
        .about(subscription)
        .with("disabled_by", by.into())
    }

    /// `eventflow.subscription.breaker_opened`: deliveries to it wait, without spending
    /// attempts, for `recovery` before trial deliveries go out.
    pub fn breaker_opened(
        subscription: &Subscription,
        failure_threshold: u32,
        recovery: Duration,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            BREAKER_OPENED,
            format!(
                "breaker_opened/{}/{}",
                subscription.id,
                at.timestamp_micros()
            ),
            format!("{failure_threshold} consecutive deliveries failed"),
        )
        .about(subscription)
        .with("failure_threshold", failure_threshold.into())
        .with("retry_in_seconds", recovery.as_secs().into())
    }

    /// `eventflow.subscription.breaker_closed`: trial deliveries succeeded after it was open
    /// since `opened_at`.
    pub fn breaker_closed(subscription: &Subscription, opened_at: DateTime<Utc>) -> Self {
        let open_for = (Utc::now() - opened_at).num_milliseconds().max(0) as f64 / 1000.0;
        Self::new(
            BREAKER_CLOSED,
            format!(
                "breaker_closed/{}/{}",
                subscription.id,
                opened_at.timestamp_micros()
            ),
            "trial deliveries succeeded".to_string(),
        )
        .about(subscription)
        .with("opened_at", opened_at.to_rfc3339().into())
        .with("open_seconds", open_for.into())
    }

    /// `eventflow.delivery.dead_lettered`: a delivery gave up and waits in the dead-letter queue.
    pub fn dead_lettered(subscription: &Subscription, letter: &DeadLetter) -> Self {
        Self::new(
            DEAD_LETTERED,
            format!("dead_lettered/{}", letter.id),
            letter.error.clone(),
        )
        .about(subscription)
        .with("dead_letter_id", letter.id.clone().into())
        .with("delivery_id", letter.delivery_id.clone().into())
        .with("event_id", letter.event_id.clone().into())
        .with("event_type", letter.event_type.clone().into())
        .with("attempts", letter.attempts.into())
        .with("status_code", letter.status_code.into())
    }

    /// `eventflow.delivery.recovered`: the first delivery that succeeded after `failed_attempts`
    /// failures, the first of them at `failing_since`.
    pub fn recovered(
        subscription: &Subscription,
        failed_attempts: u64,
        failing_since: DateTime<Utc>,
    ) -> Self {
        Self::new(
            RECOVERED,
            format!(
                "recovered/{}/{}",
                subscription.id,
                failing_since.timestamp_micros()
            ),
            format!("delivered again after {failed_attempts} failed attempts"),
        )
        .about(subscription)
        .with("failed_attempts", failed_attempts.into())
        .with("failing_since", failing_since.to_rfc3339().into())
    }

    /// `eventflow.replay.completed` or `eventflow.replay.failed`, with the replay's counts.
    pub fn replay_finished(
        replay: &Replay,
        progress: &ReplayProgress,
        status: ReplayStatus,
        error: Option<&str>,
        subscription: Option<&Subscription>,
    ) -> Self {
        let (event_type, reason) = match (status, error) {
            (ReplayStatus::Failed, error) => (
                REPLAY_FAILED,
                error.unwrap_or("the replay failed").to_string(),
            ),
            _ => (REPLAY_COMPLETED, "every event was walked".to_string()),
        };
        let event = Self::new(event_type, format!("replay/{}", replay.id), reason).with(
            "replay",
            json!({"id": replay.id, "stream": replay.stream, "dry_run": replay.dry_run,
                   "matched": progress.matched, "replayed": progress.replayed,
                   "deliveries": progress.deliveries}),
        );
        match subscription {
            Some(subscription) => event.about(subscription),
            None => event,
        }
    }

    /// `eventflow.dlq.threshold_exceeded`: the dead-letter queue holds more than `threshold`.
    pub fn dead_letters_over_threshold(
        dead_letters: u64,
        threshold: u64,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            DLQ_THRESHOLD_EXCEEDED,
            format!("dlq_threshold/{}", at.timestamp_micros()),
            format!("the dead-letter queue holds {dead_letters} entries, more than {threshold}"),
        )
        .with("dead_letters", dead_letters.into())
        .with("threshold", threshold.into())
    }

    /// The event type.
    pub fn event_type(&self) -> &'static str {
        self.event_type
    }

    /// The event id: a name-based UUID of the happening.
    pub fn id(&self) -> String {
        uuid::Uuid::new_v5(&ID_NAMESPACE, self.happening.as_bytes()).to_string()
    }

    /// The event to store, received now; its partition key is the subscription, so an ordered
    /// operations subscription receives one subscription's events in order.
    pub fn into_event(self) -> Event {
        let now = Utc::now();
        let id = self.id();
        Event {
            envelope: CloudEvent {
                specversion: SPEC_VERSION.to_string(),
                id: id.clone(),
                source: OPERATIONS_SOURCE.to_string(),
                event_type: self.event_type.to_string(),
                subject: self.subject.clone(),
                time: now,
                datacontenttype: Some("application/json".to_string()),
                dataschema: None,
                data: Some(Value::Object(self.data)),
                data_base64: None,
                extensions: Default::default(),
            },
            metadata: Metadata {
                priority: Priority::High,
                partition_key: self.subject,
                correlation_id: id,
                stream: OPERATIONS_STREAM.to_string(),
                sequence: None,
                received_at: now,
                extra: Map::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_happening_gets_the_same_id_and_another_a_new_one() {
        let at = Utc::now();
        let first = OperationalEvent::dead_letters_over_threshold(12, 10, at);
        let again = OperationalEvent::dead_letters_over_threshold(13, 10, at);
        let later = OperationalEvent::dead_letters_over_threshold(
            12,
            10,
            at + chrono::Duration::seconds(1),
        );
        assert_eq!(first.id(), again.id());
        assert_ne!(first.id(), later.id());
        let event = first.into_event();
        assert_eq!(event.metadata.stream, OPERATIONS_STREAM);
        assert_eq!(event.envelope.data.as_ref().unwrap()["dead_letters"], 12);
        assert!(is_operational(event.event_type()));
    }
}
