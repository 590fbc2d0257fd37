//! [`DeliveryStore`]: where subscriptions, delivery jobs, attempts and dead letters are kept.
//! Both event stores implement it, in the same database as the events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AttemptPage, AttemptRecord, DeadLetter, DeadLetterPage, DeadLetterQuery, DeliveryJob,
    NewDelivery, StoredSubscription,
};
use crate::store::StoreError;

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

    /// Disables a subscription whose endpoint asked not to be called again (410 Gone).
    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<(), StoreError>;

    /// Creates the jobs whose (event, subscription) pair has none yet, each due at its `due`;
    /// returns the ids of those created (a pair seen before keeps its job).
    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<Vec<String>, StoreError>;

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
    /// with (a copy whose lease ran out, or a job requeued meanwhile, is not overwritten); returns
    /// the ids of the jobs recorded.
    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<Vec<String>, StoreError>;

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
    /// longer exists.
    async fn requeue_delivery(&self, letter: &DeadLetter) -> Result<bool, StoreError>;

    /// Entries in the dead-letter queue.
    async fn dead_letter_count(&self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` each of the finished jobs (delivered or dead-lettered) last changed
    /// before `cutoff`, the attempts made before it, the dead letters from before it and the
    /// replays that finished before it; returns how many rows went.
    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
