//! [`ReplayStore`]: where replay jobs and their progress are kept, next to the events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Replay, ReplayPage, ReplayProgress, ReplayStatus};
use crate::delivery::NewDelivery;
use crate::store::StoreError;

/// Durable replay jobs. A running replay is leased to one owner (a process's runner) and only
/// that owner may record its progress; a lease that runs out lets another owner take it over.
#[async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    /// Stores a new replay.
    async fn insert_replay(&self, replay: &Replay) -> Result<(), StoreError>;

    /// The replay with this id.
    async fn replay(&self, id: &str) -> Result<Option<Replay>, StoreError>;

    /// A page of replays, newest first, after `cursor` (a previous page's `next_cursor`).
    async fn replays(&self, cursor: Option<&str>, limit: u32) -> Result<ReplayPage, StoreError>;

    /// Leases the oldest replay that is queued, or running with its lease run out, to `owner`
    /// until `leased_until`, and marks it running.
    async fn claim_replay(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
    ) -> Result<Option<Replay>, StoreError>;

    /// Records a batch of a replay `owner` runs, in one transaction: its new progress, its lease
    /// extended to `leased_until`, and its delivery jobs (those whose event, subscription and
    /// replay have none yet). False, and nothing recorded, when `owner` no longer runs it (it was
    /// cancelled, or taken over): a cancelled replay never creates another delivery.
    async fn advance_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        jobs: &[NewDelivery],
        leased_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Ends a replay `owner` runs as completed or failed (with `error`), with its final progress;
    /// false when `owner` no longer runs it.
    async fn finish_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        status: ReplayStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Cancels a replay that has not finished and drops its deliveries not yet made, in one
    /// transaction; returns the replay as it is then (`None` if there is no such replay).
    async fn cancel_replay(&self, id: &str) -> Result<Option<Replay>, StoreError>;
}
