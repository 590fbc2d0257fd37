//! [`DeliveryStore`]: where subscriptions, delivery jobs, attempts and dead letters are kept.
//! Both event stores implement it, in the same database as the events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AttemptPage, AttemptRecord, CapacityClaim, CreatedJobs, DeadLetter, DeadLetterPage,
    DeadLetterQuery, DeliveryJob, NewDelivery, RecordedAttempts, StoredSubscription,
};
use crate::operations::Mark;
use crate::store::StoreError;

/// The keys of an ordered subscription held back by a failing head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedKeys {
    /// The subscription.
    pub subscription_id: String,
    /// Keys whose head has failed at least once and is not finished.
    pub keys: u64,
    /// When the oldest of those heads was created.
    pub oldest_head_since: DateTime<Utc>,
}

/// Durable state of webhook delivery and of the dead-letter queue.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Stores a new subscription.
    async fn insert_subscription(
        &self,
        subscription: &StoredSubscription,
    ) -> Result<(), StoreError>;

    /// Every subscription, oldest first.
    async fn subscriptions(&self) -> Result<Vec<StoredSubscription>, StoreError>;

    /// The subscription with this id.
    async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>, StoreError>;

    /// Replaces a stored subscription; false if it no longer exists.
    async fn update_subscription(
        &self,
        subscription: &StoredSubscription,
    ) -> Result<bool, StoreError>;

    /// Deletes a subscription with its delivery jobs and log; false if it did not exist.
    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError>;

    /// Disables a subscription whose endpoint asked not to be called again (410 Gone); true
    /// when this call disabled it (it was enabled), so that one process reports it.
    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<bool, StoreError>;

    /// Creates the jobs whose (event, subscription, replay) has none yet, each due at its `due`
    /// (a pair seen before keeps its job). A job with an ordering key queues behind the unfinished
    /// jobs of its subscription and key, and is pending only as their head. Returns what was
    /// created, and what is now pending under the caller's due times (see [`CreatedJobs`]).
    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<CreatedJobs, StoreError>;

    /// Leases up to `limit` pending jobs due at `now` to the caller until `leased_until`.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>, StoreError>;

    /// Makes jobs due again at the given times without counting an attempt (an open circuit).
    async fn postpone(&self, jobs: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;

    /// Records attempts in one transaction: each job's new state, the log and dead letters. An
    /// attempt is recorded only if its job is still pending with the attempt count it was sent
    /// with (a copy whose lease ran out, or a job requeued meanwhile, is not overwritten). A
    /// finished ordered head hands its key to the next queued job, due at `successors_due`.
    async fn record_attempts(
        &self,
        attempts: &[AttemptRecord],
        successors_due: DateTime<Utc>,
    ) -> Result<RecordedAttempts, StoreError>;

    /// Makes every unfinished job of a subscription independent (it stopped ordering): queued
    /// jobs become pending at once.
    async fn release_ordering(&self, subscription_id: &str) -> Result<(), StoreError>;

    /// For each ordered subscription (or only `subscription_id`) with keys whose head has failed
    /// at least once and is not finished: how many, and when the oldest such head was created.
    async fn blocked_keys(
        &self,
        subscription_id: Option<&str>,
    ) -> Result<Vec<BlockedKeys>, StoreError>;

    /// Reserves `count` start times `interval` apart for a subscription's rate limit, after every
    /// time reserved before by any process and not before `now`; returns the first.
    async fn reserve_pace(
        &self,
        subscription_id: &str,
        count: u32,
        interval: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError>;

    /// Records `claim` on its endpoint's capacity and returns the share it is granted (see
    /// [`super::grant_capacity`]), one negotiation per endpoint at a time.
    async fn negotiate_capacity(&self, claim: &CapacityClaim<'_>) -> Result<u32, StoreError>;

    /// Gives up every capacity claim of `holder` (a process that stops).
    async fn release_capacity(&self, holder: &str) -> Result<(), StoreError>;

    /// Holds every delivery to a subscription until `until` (its endpoint asked, with
    /// Retry-After); a later hold already set stays.
    async fn hold_subscription(&self, id: &str, until: DateTime<Utc>) -> Result<(), StoreError>;

    /// A page of a subscription's delivery log, newest first, below `cursor`; only the attempts
    /// at delivering `event_id` when given.
    async fn attempts(
        &self,
        subscription_id: &str,
        event_id: Option<&str>,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<AttemptPage, StoreError>;

    /// Adds an entry to the dead-letter queue (a no-op if one with its id exists).
    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// A page of dead letters matching the query, oldest first.
    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<DeadLetterPage, StoreError>;

    /// The dead letter with this id.
    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;

    /// Removes a dead letter; false if it did not exist.
    async fn delete_dead_letter(&self, id: &str) -> Result<bool, StoreError>;

    /// Removes a webhook dead letter and makes its delivery due now with a fresh attempt budget,
    /// in one transaction; false (and nothing changed) if the letter or its dead delivery no
    /// longer exists. A job that was an ordered head comes back unordered: its key went on
    /// without it, and it must not hold the key's later events back again.
    async fn requeue_delivery(&self, letter: &DeadLetter) -> Result<bool, StoreError>;

    /// Raises the operational mark `key` (adding `count` to it when it is raised already); true
    /// when this call raised it. Of processes raising one mark at once, exactly one gets true.
    async fn raise_mark(
        &self,
        key: &str,
        count: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Lowers the operational mark `key`, returning it when this call lowered it (exactly one of
    /// processes lowering it at once gets it).
    async fn clear_mark(&self, key: &str) -> Result<Option<Mark>, StoreError>;

    /// The keys of the raised operational marks that start with `prefix`.
    async fn raised_marks(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Entries in the dead-letter queue.
    async fn dead_letter_count(&self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` each of the finished jobs (delivered or dead-lettered) last changed
    /// before `cutoff`, the attempts made before it, the dead letters from before it and the
    /// replays that finished before it; returns how many rows went.
    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
