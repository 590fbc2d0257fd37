//! The broker: streams with consumer groups, shaped after Redis Streams (XADD, XREADGROUP, XACK,
//! XAUTOCLAIM) so that every implementation offers the same at-least-once semantics.

mod embedded;
mod redis_streams;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::events::Event;

pub use embedded::EmbeddedBroker;
pub use redis_streams::RedisBroker;

/// Any error from a broker backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached: retry later.
    #[error("broker unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The consumer group does not exist on this stream (call `ensure_group` first).
    #[error("no consumer group {group} on stream {stream}")]
    NoGroup {
        /// The stream asked for.
        stream: String,
        /// The missing group.
        group: String,
    },
    /// The broker refused the operation.
    #[error("broker error: {0}")]
    Backend(#[source] BoxError),
}

/// An entry's id within its stream, as the broker assigned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(
    /// The id as the broker writes it.
    pub String,
);

/// What travels on a stream: enough to route and order it, and the event itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// The stream, such as `events:user`.
    pub stream: String,
    /// The event id (for logs and idempotency without decoding the payload).
    pub event_id: String,
    /// Ordering key, when the event has one.
    pub partition_key: Option<String>,
    /// The event's position in the event store, when it came from there.
    pub sequence: Option<i64>,
    /// The event as JSON.
    pub payload: String,
}

impl StreamMessage {
    /// The message that carries `event` on its stream.
    pub fn for_event(event: &Event) -> Result<Self, serde_json::Error> {
        Ok(Self {
            stream: event.metadata.stream.clone(),
            event_id: event.id().to_string(),
            partition_key: event.metadata.partition_key.clone(),
            sequence: event.metadata.sequence,
            payload: serde_json::to_string(event)?,
        })
    }
}

/// An entry handed to a consumer, pending until acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The entry id.
    pub entry_id: EntryId,
    /// The entry.
    pub message: StreamMessage,
    /// How many times it has been delivered, this time included.
    pub delivery_count: u32,
}

/// Streams with consumer groups and at-least-once delivery.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Appends messages to their streams (XADD), in order; returns their entry ids.
    async fn publish(&self, messages: &[StreamMessage]) -> Result<Vec<EntryId>, BrokerError>;

    /// Creates `group` on `stream` reading from the start, if it does not exist (XGROUP CREATE … 0 MKSTREAM).
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BrokerError>;

    /// Delivers up to `count` new entries per stream to `consumer`, waiting up to `block` for
    /// some to arrive (XREADGROUP … BLOCK … STREAMS … >).
    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        streams: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BrokerError>;

    /// Acknowledges entries of `stream` (XACK); returns how many were pending.
    async fn ack(&self, group: &str, stream: &str, ids: &[EntryId]) -> Result<u64, BrokerError>;

    /// Takes over up to `count` entries pending longer than `min_idle` on `stream` (XAUTOCLAIM),
    /// counting a new delivery for each.
    async fn claim_idle(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BrokerError>;

    /// Up to `count` entries of `stream` after `after` (from the start when `None`), without
    /// delivering them to anyone (XRANGE): for inspecting streams such as the dead-letter queue.
    async fn range(
        &self,
        stream: &str,
        after: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<(EntryId, StreamMessage)>, BrokerError>;

    /// Entries in `stream` (XLEN).
    async fn stream_len(&self, stream: &str) -> Result<u64, BrokerError>;

    /// Entries of `stream` not yet delivered to `group`.
    async fn lag(&self, group: &str, stream: &str) -> Result<u64, BrokerError>;

    /// Entries of `stream` delivered to `group` and not yet acknowledged (XPENDING).
    async fn pending(&self, group: &str, stream: &str) -> Result<u64, BrokerError>;

    /// Removes `consumer` from `group` on `stream` if it holds no pending entries (XGROUP
    /// DELCONSUMER), so that the group does not collect the names of stopped processes; returns
    /// whether it was removed. Entries still pending stay, to be claimed by others.
    async fn leave_group(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
    ) -> Result<bool, BrokerError>;

    /// Removes entries of `stream` that retention no longer keeps: Redis drops the entries added
    /// before `cutoff` (XTRIM MINID); the embedded broker, whose entries mirror the store in the
    /// same file, drops up to `limit` of the oldest entries whose events were pruned (and that
    /// are not pending). Returns how many went.
    async fn trim(
        &self,
        stream: &str,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, BrokerError>;

    /// Checks that the broker answers.
    async fn ping(&self) -> Result<(), BrokerError>;
}
