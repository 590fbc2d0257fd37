//! [`CountStore`]: where the tallies of every process add up. Both event stores implement it,
//! in the same database as the events.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CountDelta, Interval, Metric};
use crate::store::StoreError;

/// Durable counts by (metric, key, bucket).
#[async_trait]
pub trait CountStore: Send + Sync + 'static {
    /// Adds every delta to its bucket, in one transaction.
    async fn add_counts(&self, deltas: &[CountDelta]) -> Result<(), StoreError>;

    /// The buckets of `metric` at `interval` from the one holding `since`: (key, bucket start in
    /// microseconds, count).
    async fn counts(
        &self,
        metric: Metric,
        interval: Interval,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, u64)>, StoreError>;

    /// The total of `metric` per key from the minute holding `since` on.
    async fn totals(
        &self,
        metric: Metric,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, u64>, StoreError>;

    /// Drops the buckets of `interval` that start before `before`.
    async fn prune_counts(
        &self,
        interval: Interval,
        before: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}
