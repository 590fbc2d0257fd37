//! The delivery statements whose SQL is the same in SQLite and PostgreSQL, written once, generic
//! over the database: the shared pace of each endpoint (the rate limit's next free start time,
//! and the requests in flight each process may have; both tables have the same columns in the
//! two databases, times in microseconds), the queries of a cancelled replay's jobs, and the
//! operational marks that make each happening reported once. What to
//! grant is decided by [`crate::delivery::grant_capacity`].

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::StoreError;
use crate::delivery::{CapacityClaim, CapacityHolder, OrderingKey, grant_capacity};
use crate::operations::Mark;

/// Reserves `count` starts spaced by `interval_us` at or after `now_us`, after every start
/// reserved before; returns the first. The upsert is atomic in both databases, so processes
/// reserving at once get runs that do not overlap.
const RESERVE: &str = "INSERT INTO delivery_pace (subscription_id, next_us) VALUES ($1, $2 + $3) \
     ON CONFLICT (subscription_id) DO UPDATE SET next_us = \
         (CASE WHEN delivery_pace.next_us > $2 THEN delivery_pace.next_us ELSE $2 END) + $3 \
     RETURNING next_us - $3";

/// Touches the subscription's pace row, creating it if need be: a row lock in PostgreSQL, the
/// write lock in SQLite, held until the transaction ends. Negotiations of one endpoint's
/// capacity so run one at a time.
const LOCK: &str = "INSERT INTO delivery_pace (subscription_id, next_us) VALUES ($1, 0) \
     ON CONFLICT (subscription_id) DO UPDATE SET next_us = delivery_pace.next_us";

/// The other processes' live claims on an endpoint's capacity.
const OTHERS: &str = "SELECT held, wanted FROM delivery_capacity \
     WHERE subscription_id = $1 AND holder <> $2 AND lease_until_us > $3";

/// Records what a process holds and wants, until its lease runs out.
const SET: &str = "INSERT INTO delivery_capacity \
         (subscription_id, holder, held, wanted, lease_until_us) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (subscription_id, holder) DO UPDATE SET held = $3, wanted = $4, \
         lease_until_us = $5";

/// Forgets every claim of a process that stops.
const RELEASE: &str = "DELETE FROM delivery_capacity WHERE holder = $1";

/// The keys of a replay's queued jobs.
const QUEUED_KEYS_OF_REPLAY: &str = "SELECT DISTINCT subscription_id, ordering_key FROM deliveries \
     WHERE replay_id = $1 AND status = 'queued' AND ordering_key IS NOT NULL";

/// A replay's jobs not yet sent: queued ones, and pending unordered ones (an ordered head may be
/// on its way; it stays).
const DELETE_UNSENT_REPLAY_JOBS: &str = "DELETE FROM deliveries WHERE replay_id = $1 \
     AND (status = 'queued' OR (status = 'pending' AND ordering_key IS NULL))";

/// Raises a mark, or adds to the count of one raised already; the count it returns equals the
/// count added only when this statement raised it.
const RAISE_MARK: &str = "INSERT INTO operational_marks (key, raised_us, count) VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET count = operational_marks.count + $3 RETURNING count";

/// Lowers a mark: only the statement that deletes the row gets it back.
const CLEAR_MARK: &str = "DELETE FROM operational_marks WHERE key = $1 RETURNING raised_us, count";

/// The keys of the raised marks under a prefix.
const RAISED_MARKS: &str = "SELECT key FROM operational_marks WHERE key LIKE $1";

/// The shared statements, run on one connection of database `DB` (in the caller's transaction
/// when it has one).
pub(super) struct SharedSql<'c, DB: Database>(pub &'c mut DB::Connection);

impl<DB> SharedSql<'_, DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The first of `count` starts reserved `interval_us` apart for `subscription_id`.
    pub(super) async fn reserve_pace(
        self,
        subscription_id: &str,
        count: u32,
        interval_us: i64,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let span = interval_us.saturating_mul(i64::from(count));
        let (first,): (i64,) = sqlx::query_as::<DB, (i64,)>(RESERVE)
            .bind(subscription_id)
            .bind(now.timestamp_micros())
            .bind(span)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(DateTime::from_timestamp_micros(first).unwrap_or(now))
    }

    /// Negotiates `claim` in the caller's transaction: locks the endpoint, reads the others' live
    /// claims, and records what [`grant_capacity`] gives; returns that.
    pub(super) async fn negotiate_capacity(
        self,
        claim: &CapacityClaim<'_>,
    ) -> Result<u32, StoreError> {
        sqlx::query::<DB>(LOCK)
            .bind(claim.subscription_id)
            .execute(&mut *self.0)
            .await?;
        let others: Vec<(i64, i64)> = sqlx::query_as::<DB, (i64, i64)>(OTHERS)
            .bind(claim.subscription_id)
            .bind(claim.holder)
            .bind(claim.now.timestamp_micros())
            .fetch_all(&mut *self.0)
            .await?;
        let others: Vec<CapacityHolder> = others
            .into_iter()
            .map(|(held, wanted)| CapacityHolder {
                held: u32::try_from(held).unwrap_or_default(),
                wanted: u32::try_from(wanted).unwrap_or_default(),
            })
            .collect();
        let granted = grant_capacity(claim, &others);
        sqlx::query::<DB>(SET)
            .bind(claim.subscription_id)
            .bind(claim.holder)
            .bind(i64::from(granted.max(claim.in_use)))
            .bind(i64::from(claim.wanted))
            .bind(claim.lease_until.timestamp_micros())
            .execute(&mut *self.0)
            .await?;
        Ok(granted)
    }

    /// Forgets `holder`'s claims.
    pub(super) async fn release_capacity(self, holder: &str) -> Result<(), StoreError> {
        sqlx::query::<DB>(RELEASE)
            .bind(holder)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// The keys of `replay_id`'s queued jobs.
    pub(super) async fn queued_keys_of_replay(
        self,
        replay_id: &str,
    ) -> Result<Vec<OrderingKey>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as::<DB, (String, String)>(QUEUED_KEYS_OF_REPLAY)
                .bind(replay_id)
                .fetch_all(&mut *self.0)
                .await?;
        Ok(OrderingKey::of_jobs(
            rows.iter().map(|(s, k)| (s.as_str(), Some(k.as_str()))),
        ))
    }

    /// Raises `key` at `now` with `count` occurrences; true when this call raised it.
    pub(super) async fn raise_mark(
        self,
        key: &str,
        count: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let (total,): (i64,) = sqlx::query_as::<DB, (i64,)>(RAISE_MARK)
            .bind(key)
            .bind(now.timestamp_micros())
            .bind(count)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(total == count)
    }

    /// Lowers `key`, returning the mark when this call lowered it.
    pub(super) async fn clear_mark(self, key: &str) -> Result<Option<Mark>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as::<DB, (i64, i64)>(CLEAR_MARK)
            .bind(key)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row.map(|(raised_us, count)| Mark {
            raised_at: DateTime::from_timestamp_micros(raised_us).unwrap_or_default(),
            count: u64::try_from(count).unwrap_or_default(),
        }))
    }

    /// The raised marks whose key starts with `prefix` (which holds no `%` or `_`).
    pub(super) async fn raised_marks(self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{prefix}%");
        let rows: Vec<(String,)> = sqlx::query_as::<DB, (String,)>(RAISED_MARKS)
            .bind(pattern.as_str())
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }

    /// Deletes `replay_id`'s jobs not yet sent.
    pub(super) async fn delete_unsent_replay_jobs(self, replay_id: &str) -> Result<(), StoreError> {
        sqlx::query::<DB>(DELETE_UNSENT_REPLAY_JOBS)
            .bind(replay_id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}
