//! Replay: delivering stored events again, to every matching subscription or to one.
//!
//! A replay is a job stored next to the events: the API queues it, a worker's [`ReplayRunner`]
//! takes it under a lease and walks the event store (the source of truth, so a replay works after
//! the broker trimmed its streams) in store order, creating one delivery job per event and
//! subscription, paced at REPLAY_RATE events a second. Its position is saved after every batch,
//! so a replay survives a restart and resumes where it stopped; it can be cancelled at any time.
//! Replayed deliveries keep the event's id and are marked by the `x-eventflow-replay-id` header
//! and the `eventflowreplayid` CloudEvents extension.

mod pacer;
mod runner;
mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use pacer::Pacer;
pub use runner::{ReplayRunner, ReplayTasks};
pub use store::ReplayStore;

/// The HTTP header naming the replay a delivery belongs to.
pub const REPLAY_HEADER: &str = "x-eventflow-replay-id";
pub use crate::events::REPLAY_EXTENSION;

/// Where a replay is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStatus {
    /// Waiting for a worker to take it.
    Queued,
    /// A worker is creating its deliveries.
    Running,
    /// Every event of the window was handed over (or, in a dry run, counted).
    Completed,
    /// Stopped on request; deliveries not yet made were dropped.
    Cancelled,
    /// Stopped by an error that retrying would not cure.
    Failed,
}

impl ReplayStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Completed,
            Self::Cancelled,
            Self::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }

    /// True once nothing more will happen to the replay.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
}

/// How far a replay has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReplayProgress {
    /// The store sequence of the last event scanned: where the replay resumes.
    #[serde(skip)]
    pub cursor: i64,
    /// Events of the window that match its filters, so far.
    pub matched: u64,
    /// Matching events handed to at least one subscription (in a dry run: that would be).
    pub replayed: u64,
    /// Delivery jobs created, one per event and subscription (in a dry run: that would be).
    pub deliveries: u64,
}

/// A replay job, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Replay {
    /// Its id (`rpl_…`), the value of the replay header and extension on its deliveries.
    pub id: String,
    /// Where it is in its life.
    pub status: ReplayStatus,
    /// The stream whose events are replayed, such as `events:user`.
    pub stream: String,
    /// Events whose `time` is at or after this are replayed...
    pub start_time: DateTime<Utc>,
    /// ...and before this.
    pub end_time: DateTime<Utc>,
    /// Only these event types (exact, `order.*` or `*`); empty for all.
    pub event_types: Vec<String>,
    /// Only to this subscription; absent for every matching subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Only count what would be replayed.
    pub dry_run: bool,
    /// How far it has got.
    #[serde(flatten)]
    pub progress: ReplayProgress,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it completed, failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Replay {
    /// A queued replay with a new id.
    pub fn queued(
        stream: String,
        start_time: DateTime<Utc>,
        end_time: DateTime<Utc>,
        event_types: Vec<String>,
        subscription_id: Option<String>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: format!("rpl_{}", uuid::Uuid::now_v7().simple()),
            status: ReplayStatus::Queued,
            stream,
            start_time,
            end_time,
            event_types,
            subscription_id,
            dry_run,
            progress: ReplayProgress::default(),
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    /// True when an event of `event_type` is within the replay's type filter.
    pub fn selects(&self, event_type: &str) -> bool {
        self.event_types.is_empty()
            || self
                .event_types
                .iter()
                .any(|pattern| crate::delivery::pattern_matches(pattern, event_type))
    }
}

/// One page of replays, newest first.
#[derive(Debug, Clone)]
pub struct ReplayPage {
    /// The replays.
    pub replays: Vec<Replay>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_stored_names() {
        for status in [
            ReplayStatus::Queued,
            ReplayStatus::Running,
            ReplayStatus::Completed,
            ReplayStatus::Cancelled,
            ReplayStatus::Failed,
        ] {
            assert_eq!(ReplayStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ReplayStatus::parse("paused"), None);
    }

    #[test]
    fn an_empty_type_filter_selects_everything_and_patterns_select_their_types() {
        let now = Utc::now();
        let mut replay =
            Replay::queued("events:business".into(), now, now, vec![], None, false, now);
        assert!(replay.selects("order.created"));
        replay.event_types = vec!["order.*".into(), "payment.processed".into()];
        assert!(replay.selects("order.created"));
        assert!(replay.selects("payment.processed"));
        assert!(!replay.selects("payment.failed"));
    }
}
