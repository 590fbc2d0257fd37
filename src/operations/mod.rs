//! Operational events: CloudEvents EventFlow publishes about itself into `events:eventflow`, so
//! that subscribing to `eventflow.*` gives operational webhooks (a subscription disabled, a
//! breaker opened, a delivery dead-lettered, …), filterable like any other event.
//!
//! They are stored, listed, replayed and delivered like producers' events, through the same
//! producer. Two rules keep them honest:
//!
//! - **Once across processes.** A happening that several worker processes may each see (a
//!   breaker opening in each, the dead-letter queue crossing its threshold) is a *mark* in the
//!   store, a row while the condition holds: only the process whose statement raised the mark
//!   publishes its start, and only the one that lowered it publishes its end. Happenings that
//!   are one store change already (a disable, a dead letter, a replay's end) are reported by the
//!   process that made the change. Each event's id is derived from what happened, so that a
//!   report made twice (a retried write) is stored once: the event store is idempotent on ids.
//!   The alternative, one leader process reporting for all, would need an election and would
//!   still have to learn every process's breakers.
//! - **No loops.** What happens while delivering an operational event (its receiver failing, a
//!   410, a breaker opening on it) is reported by nothing but logs and metrics.
//!
//! Reports are best effort: they are queued for a reporter task and published after the change
//! they describe is durable, so a process that dies in between loses the report, never the
//! change. Producers cannot send `eventflow.` types: ingest reserves them.

mod dead_letter_watch;
mod event;
mod reporter;

pub use dead_letter_watch::watch_dead_letters;
pub use event::{DisabledBy, OperationalEvent, is_operational};
pub use reporter::{Operations, RecordedBatch, ReporterTask};

use chrono::{DateTime, Utc};

pub use crate::events::routing::OPERATIONS_STREAM;

/// The `source` of every operational event.
pub const OPERATIONS_SOURCE: &str = "eventflow";

/// A condition raised in the store, as the process that lowered it got it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// When the condition began.
    pub raised_at: DateTime<Utc>,
    /// Occurrences counted while it held (failed attempts, processes that raised it).
    pub count: u64,
}
