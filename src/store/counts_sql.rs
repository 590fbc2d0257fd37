//! The insight counts' statements, the same in SQLite and PostgreSQL and so written once,
//! generic over the database (both have `ON CONFLICT … DO UPDATE` and `excluded`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::StoreError;
use crate::insights::{CountDelta, Interval, Metric, total_ranges};

const ADD: &str = "INSERT INTO counts (metric, granularity, bucket_us, subject, total) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (metric, granularity, bucket_us, subject) \
     DO UPDATE SET total = counts.total + excluded.total";

const SET: &str = "INSERT INTO counts (metric, granularity, bucket_us, subject, total) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (metric, granularity, bucket_us, subject) DO UPDATE SET total = excluded.total";

/// One row per subject, its buckets as `start:total` pairs joined by commas: a chart of a day by
/// minute is some 15,000 buckets, and a driver row costs far more than the text of one (sqlx's
/// SQLite driver hands each row over from its thread, some 10 µs apiece).
const SELECT_BUCKETS: &str = "SELECT subject, \
         string_agg(CAST(bucket_us AS TEXT) || ':' || CAST(total AS TEXT), ',') FROM counts \
     WHERE metric = $1 AND granularity = $2 AND bucket_us >= $3 GROUP BY subject";

/// The sum per subject over three bucket ranges (see [`crate::insights::total_ranges`]), each
/// its own range of the primary key. Written as one `WHERE` with three `OR`ed ranges, SQLite
/// searches by the metric alone and reads every bucket of it, both granularities over their
/// whole retention (some 55,000 rows for 15 types).
const SELECT_TOTALS: &str = "SELECT subject, CAST(SUM(total) AS BIGINT) FROM ( \
         SELECT subject, total FROM counts \
             WHERE metric = $1 AND granularity = $2 AND bucket_us >= $3 AND bucket_us < $4 \
         UNION ALL SELECT subject, total FROM counts \
             WHERE metric = $1 AND granularity = $5 AND bucket_us >= $6 AND bucket_us < $7 \
         UNION ALL SELECT subject, total FROM counts \
             WHERE metric = $1 AND granularity = $8 AND bucket_us >= $9 AND bucket_us < $10) \
     AS ranges GROUP BY subject";

const PRUNE: &str = "DELETE FROM counts WHERE granularity = $1 AND bucket_us < $2";

/// The counts' statements, run on one connection of database `DB` (in the caller's transaction
/// when it has one).
pub(super) struct CountSql<'c, DB: Database>(pub &'c mut DB::Connection);

impl<DB> CountSql<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Adds each delta to its bucket (a gauge's replaces the bucket's value).
    pub(super) async fn add(self, deltas: &[CountDelta]) -> Result<(), StoreError> {
        for delta in deltas {
            let statement = if delta.metric.is_gauge() { SET } else { ADD };
            sqlx::query::<DB>(statement)
                .bind(delta.metric.as_str())
                .bind(delta.interval.as_str())
                .bind(delta.bucket_us)
                .bind(delta.key.as_str())
                .bind(i64::try_from(delta.count).unwrap_or(i64::MAX))
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    /// The buckets from the one holding `since`.
    pub(super) async fn buckets(
        self,
        metric: Metric,
        interval: Interval,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64, u64)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as::<DB, (String, String)>(SELECT_BUCKETS)
            .bind(metric.as_str())
            .bind(interval.as_str())
            .bind(interval.bucket_of(since))
            .fetch_all(&mut *self.0)
            .await?;
        let mut buckets = Vec::new();
        for (key, joined) in rows {
            for pair in joined.split(',') {
                let parsed = pair
                    .split_once(':')
                    .and_then(|(start, total)| Some((start.parse().ok()?, total.parse().ok()?)));
                let Some((start, total)) = parsed else {
                    return Err(StoreError::Corrupt {
                        id: key,
                        reason: format!("unreadable count bucket {pair:?}"),
                    });
                };
                buckets.push((key.clone(), start, total));
            }
        }
        Ok(buckets)
    }

    /// Totals per subject from the minute holding `since` to now.
    pub(super) async fn totals(
        self,
        metric: Metric,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut query = sqlx::query_as::<DB, (String, i64)>(SELECT_TOTALS).bind(metric.as_str());
        for range in total_ranges(since, Utc::now()) {
            query = query
                .bind(range.interval.as_str())
                .bind(range.from_us)
                .bind(range.until_us);
        }
        let rows: Vec<(String, i64)> = query.fetch_all(&mut *self.0).await?;
        Ok(rows
            .into_iter()
            .map(|(key, total)| (key, u64::try_from(total).unwrap_or_default()))
            .collect())
    }

    /// Drops the buckets of `interval` that start before `before`.
    pub(super) async fn prune(
        self,
        interval: Interval,
        before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query::<DB>(PRUNE)
            .bind(interval.as_str())
            .bind(before.timestamp_micros())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}
