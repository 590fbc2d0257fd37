//! Delivery jobs (one per event and subscription) and the record of each attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{DeadLetter, Subscription};
use crate::events::Event;

/// A job to create when an event matches a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The delivery id: the `webhook-id` header of every attempt.
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// When it is due: now for any process, or the end of the lease of the process that sends it
    /// at once.
    pub due: DateTime<Utc>,
    /// The replay it belongs to; `None` for live delivery.
    pub replay_id: Option<String>,
    /// The partition key it is ordered by, on an ordered subscription; `None` for a job that goes
    /// out independently.
    pub ordering_key: Option<String>,
}

impl NewDelivery {
    /// A job delivering `event_id` to `subscription_id` from `due` on, with a new id.
    pub fn new(event_id: &str, subscription_id: &str, due: DateTime<Utc>) -> Self {
        Self {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            event_id: event_id.to_string(),
            subscription_id: subscription_id.to_string(),
            due,
            replay_id: None,
            ordering_key: None,
        }
    }

    /// The job delivering `event` to `subscription` from `due` on: ordered by the event's
    /// partition key when the subscription orders by it.
    pub fn of(event: &Event, subscription: &Subscription, due: DateTime<Utc>) -> Self {
        let job = Self::new(event.id(), &subscription.id, due);
        match super::ordering_key(subscription, event) {
            Some(key) => job.ordered_by(key),
            None => job,
        }
    }

    /// The same job, ordered behind the unfinished jobs of its subscription with `key`.
    pub fn ordered_by(self, key: &str) -> Self {
        Self {
            ordering_key: Some(key.to_string()),
            ..self
        }
    }

    /// The same job as part of replay `replay_id`.
    pub fn for_replay(self, replay_id: &str) -> Self {
        Self {
            replay_id: Some(replay_id.to_string()),
            ..self
        }
    }

    /// The job as the dispatcher sends it, before any attempt.
    pub fn into_job(self) -> DeliveryJob {
        DeliveryJob {
            id: self.id,
            event_id: self.event_id,
            subscription_id: self.subscription_id,
            replay_id: self.replay_id,
            ordering_key: self.ordering_key,
            attempts: 0,
        }
    }
}

/// A pending job, claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    /// The delivery id (`webhook-id`).
    pub id: String,
    /// The event.
    pub event_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The replay it belongs to; `None` for live delivery.
    pub replay_id: Option<String>,
    /// The partition key it is ordered by (it is its key's head); `None` when unordered.
    pub ordering_key: Option<String>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What creating jobs came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatedJobs {
    /// The ids of the jobs created (a pair seen before keeps its job and is not here).
    pub created: Vec<String>,
    /// The jobs now pending with the caller's due time, to send when that is a lease: the new
    /// unordered jobs, the new heads of their keys, and heads created earlier (as the event was
    /// stored) that were due.
    pub ready: Vec<DeliveryJob>,
}

/// What recording attempts came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedAttempts {
    /// The ids of the jobs whose attempt was recorded.
    pub recorded: Vec<String>,
    /// The jobs that became the heads of their keys because the head before them finished, due
    /// at the time given.
    pub successors: Vec<DeliveryJob>,
}

/// What happens to a job after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    /// The endpoint accepted it: done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// No more attempts: into the dead-letter queue.
    DeadLetter(Box<DeadLetter>),
}

/// One attempt and its consequence, as the dispatcher records it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// The job.
    pub job: DeliveryJob,
    /// Which attempt this was (1 for the first).
    pub attempt: u32,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<u16>,
    /// How long the attempt took.
    pub latency: Duration,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// What comes next.
    pub next: NextStep,
}

/// One attempt as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// The delivery (its `webhook-id`).
    pub delivery_id: String,
    /// The event delivered.
    pub event_id: String,
    /// Which attempt of the delivery (1 for the first).
    pub attempt: u32,
    /// The HTTP status, when the endpoint answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Time from sending the request to the end of the response, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// When the next attempt is due, if the delivery was retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One page of the delivery log, newest first.
#[derive(Debug, Clone)]
pub struct AttemptPage {
    /// The attempts.
    pub attempts: Vec<DeliveryAttempt>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}
