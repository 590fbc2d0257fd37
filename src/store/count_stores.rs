//! [`CountStore`] on both stores: connection handling only; the statements are in
//! [`super::counts_sql`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Sqlite};

use super::counts_sql::CountSql;
use super::postgres::bounded;
use super::{PgStore, SqliteStore, StoreError};
use crate::insights::{CountDelta, CountStore, Interval, Metric};

#[async_trait]
impl CountStore for SqliteStore {
    async fn add_counts(&self, deltas: &[CountDelta]) -> Result<(), StoreError> {
        let mut tx = self.db().writer.begin().await?;
        CountSql::<Sqlite>(&mut tx).add(deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn counts(
        &self,
        metric: Metric,
        interval: Interval,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, u64)>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        CountSql::<Sqlite>(&mut conn)
            .buckets(metric, interval, since)
            .await
    }

    async fn totals(
        &self,
        metric: Metric,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        CountSql::<Sqlite>(&mut conn).totals(metric, since).await
    }

    async fn prune_counts(
        &self,
        interval: Interval,
        before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        CountSql::<Sqlite>(&mut conn).prune(interval, before).await
    }
}

#[async_trait]
impl CountStore for PgStore {
    async fn add_counts(&self, deltas: &[CountDelta]) -> Result<(), StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            CountSql::<Postgres>(&mut tx).add(deltas).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn counts(
        &self,
        metric: Metric,
        interval: Interval,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, u64)>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            CountSql::<Postgres>(&mut conn)
                .buckets(metric, interval, since)
                .await
        })
        .await
    }

    async fn totals(
        &self,
        metric: Metric,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, u64>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            CountSql::<Postgres>(&mut conn).totals(metric, since).await
        })
        .await
    }

    async fn prune_counts(
        &self,
        interval: Interval,
        before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            CountSql::<Postgres>(&mut conn)
                .prune(interval, before)
                .await
        })
        .await
    }
}
