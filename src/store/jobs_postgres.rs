//! [`JobTables`] on PostgreSQL: each step's statement over the `deliveries` table, batches passed
//! as typed arrays. Transactions that touch the same ordering keys are serialized by advisory
//! locks: READ COMMITTED alone would let two of them each see a key without a head and both give
//! it one.
//!
//! Statements that join growing tables are not kept as prepared statements
//! (`persistent(false)`; see `delivery_postgres`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres};

use super::StoreError;
use super::delivery_rows::{ClaimedRow, KeyStateRow, key_state, live_or_replay, next_state};
use super::delivery_tx::JobTables;
use super::shared_sql::SharedSql;
use crate::delivery::{AttemptRecord, DeadLetter, DeliveryJob, KeyState, NewDelivery, OrderingKey};

/// The columns of a job as the dispatcher takes it.
const CLAIMED: &str = "deliveries.id, deliveries.event_id, deliveries.subscription_id, \
     deliveries.replay_id, deliveries.ordering_key, deliveries.attempts::bigint";

/// Moves each job still pending with the attempt count it was sent with to its new state, and
/// logs those attempts in their order (given as arrays); returns the ids of the jobs moved.
pub(super) const RECORD_ATTEMPTS: &str = "
WITH attempt AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[],
                         $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::int[])
        WITH ORDINALITY
        AS a(delivery_id, subscription_id, event_id, attempt, status_code, latency_us, error,
             attempted_at, next_attempt_at, status, previous_attempts, ord)
), moved AS (
    UPDATE deliveries SET status = attempt.status, attempts = attempt.attempt,
        next_attempt_at = COALESCE(attempt.next_attempt_at, attempt.attempted_at),
        last_status = attempt.status_code, last_error = attempt.error,
        updated_at = attempt.attempted_at
    FROM attempt
    WHERE deliveries.id = attempt.delivery_id AND deliveries.status = 'pending'
        AND deliveries.attempts = attempt.previous_attempts
    RETURNING deliveries.id
)
INSERT INTO delivery_attempts (delivery_id, subscription_id, event_id, attempt, status_code,
                               latency_us, error, attempted_at, next_attempt_at)
SELECT delivery_id, subscription_id, event_id, attempt, status_code, latency_us, error,
       attempted_at, next_attempt_at
FROM attempt JOIN moved ON moved.id = attempt.delivery_id
ORDER BY attempt.ord
RETURNING delivery_id";

/// The attempts as one array per column, in the order of [`RECORD_ATTEMPTS`]'s parameters.
#[derive(Default)]
struct AttemptColumns<'a> {
    delivery_id: Vec<&'a str>,
    subscription_id: Vec<&'a str>,
    event_id: Vec<&'a str>,
    attempt: Vec<i32>,
    status_code: Vec<Option<i32>>,
    latency_us: Vec<i64>,
    error: Vec<Option<&'a str>>,
    attempted_at: Vec<DateTime<Utc>>,
    next_attempt_at: Vec<Option<DateTime<Utc>>>,
    status: Vec<&'static str>,
    previous_attempts: Vec<i32>,
}

impl<'a> AttemptColumns<'a> {
    fn of(records: &'a [AttemptRecord]) -> Self {
        let mut columns = Self::default();
        for record in records {
            let (status, due) = next_state(&record.next);
            columns.delivery_id.push(&record.job.id);
            columns.subscription_id.push(&record.job.subscription_id);
            columns.event_id.push(&record.job.event_id);
            columns
                .attempt
                .push(i32::try_from(record.attempt).unwrap_or(i32::MAX));
            columns.status_code.push(record.status_code.map(i32::from));
            columns
                .latency_us
                .push(i64::try_from(record.latency.as_micros()).unwrap_or(i64::MAX));
            columns.error.push(record.error.as_deref());
            columns.attempted_at.push(record.attempted_at);
            columns.next_attempt_at.push(due);
            columns.status.push(status);
            columns
                .previous_attempts
                .push(i32::try_from(record.job.attempts).unwrap_or(i32::MAX));
        }
        columns
    }
}

/// Runs [`RECORD_ATTEMPTS`] on `conn` (a connection of the pool, or a transaction).
pub(super) async fn apply_attempts<'c, E>(
    executor: E,
    attempts: &[AttemptRecord],
) -> Result<Vec<String>, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    let columns = AttemptColumns::of(attempts);
    let moved: Vec<(String,)> = sqlx::query_as(RECORD_ATTEMPTS)
        .persistent(false)
        .bind(&columns.delivery_id)
        .bind(&columns.subscription_id)
        .bind(&columns.event_id)
        .bind(&columns.attempt)
        .bind(&columns.status_code)
        .bind(&columns.latency_us)
        .bind(&columns.error)
        .bind(&columns.attempted_at)
        .bind(&columns.next_attempt_at)
        .bind(&columns.status)
        .bind(&columns.previous_attempts)
        .fetch_all(executor)
        .await?;
    Ok(moved.into_iter().map(|(id,)| id).collect())
}

/// The keys as two arrays: subscriptions and partition keys.
fn key_columns(keys: &[OrderingKey]) -> (Vec<&str>, Vec<&str>) {
    keys.iter()
        .map(|key| (key.subscription_id.as_str(), key.key.as_str()))
        .unzip()
}

#[async_trait]
impl JobTables for PgConnection {
    async fn lock_keys(&mut self, keys: &[OrderingKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (subscriptions, keys) = key_columns(keys);
        // In one order (of the hashes) in every transaction, so that none waits in a circle.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(lock) FROM ( \
                 SELECT DISTINCT hashtextextended(s || '/' || k, 0) AS lock \
                 FROM UNNEST($1::text[], $2::text[]) AS key(s, k) ORDER BY lock) AS locks",
        )
        .bind(&subscriptions)
        .bind(&keys)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn insert_jobs(
        &mut self,
        jobs: &[NewDelivery],
        statuses: &[&'static str],
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<&str> = jobs.iter().map(|job| job.id.as_str()).collect();
        let events: Vec<&str> = jobs.iter().map(|job| job.event_id.as_str()).collect();
        let subscriptions: Vec<&str> = jobs
            .iter()
            .map(|job| job.subscription_id.as_str())
            .collect();
        let due: Vec<DateTime<Utc>> = jobs.iter().map(|job| job.due).collect();
        let replays: Vec<&str> = jobs
            .iter()
            .map(|job| live_or_replay(job.replay_id.as_deref()))
            .collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|job| job.ordering_key.as_deref()).collect();
        let created: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO deliveries (id, event_id, subscription_id, replay_id, ordering_key, \
                 status, attempts, next_attempt_at, created_at, updated_at) \
             SELECT id, event_id, subscription_id, replay_id, ordering_key, status, 0, due, \
                 now(), now() \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], \
                         $6::text[], $7::text[]) WITH ORDINALITY \
                 AS job(id, event_id, subscription_id, due, replay_id, ordering_key, status, ord) \
             ORDER BY ord \
             ON CONFLICT (event_id, subscription_id, replay_id) DO NOTHING RETURNING id",
        )
        .bind(&ids)
        .bind(&events)
        .bind(&subscriptions)
        .bind(&due)
        .bind(&replays)
        .bind(&keys)
        .bind(statuses)
        .fetch_all(&mut *self)
        .await?;
        Ok(created.into_iter().map(|(id,)| id).collect())
    }

    async fn claim_jobs(
        &mut self,
        jobs: &[&NewDelivery],
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let events: Vec<&str> = jobs.iter().map(|job| job.event_id.as_str()).collect();
        let subscriptions: Vec<&str> = jobs
            .iter()
            .map(|job| job.subscription_id.as_str())
            .collect();
        let replays: Vec<&str> = jobs
            .iter()
            .map(|job| live_or_replay(job.replay_id.as_deref()))
            .collect();
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "UPDATE deliveries SET next_attempt_at = $4 \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS job(event_id, subscription_id, \
                                                                 replay_id) \
             WHERE deliveries.event_id = job.event_id \
                 AND deliveries.subscription_id = job.subscription_id \
                 AND deliveries.replay_id = job.replay_id \
                 AND deliveries.status = 'pending' AND deliveries.next_attempt_at <= $5 \
             RETURNING {CLAIMED}"
        ))
        .persistent(false)
        .bind(&events)
        .bind(&subscriptions)
        .bind(&replays)
        .bind(due)
        .bind(now)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(ClaimedRow::decode).collect())
    }

    async fn key_states(&mut self, keys: &[OrderingKey]) -> Result<Vec<KeyState>, StoreError> {
        let (subscriptions, names) = key_columns(keys);
        let rows: Vec<KeyStateRow> = sqlx::query_as(
            "SELECT key.s, key.k, head.id, next.id \
             FROM UNNEST($1::text[], $2::text[]) AS key(s, k) \
             LEFT JOIN LATERAL ( \
                 SELECT id FROM deliveries WHERE subscription_id = key.s \
                     AND ordering_key = key.k AND status = 'pending' LIMIT 1) AS head ON true \
             LEFT JOIN LATERAL ( \
                 SELECT id FROM deliveries WHERE subscription_id = key.s \
                     AND ordering_key = key.k AND status = 'queued' ORDER BY seq LIMIT 1 \
             ) AS next ON true",
        )
        .persistent(false)
        .bind(&subscriptions)
        .bind(&names)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(key_state).collect())
    }

    async fn make_heads(
        &mut self,
        heads: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, due): (Vec<&str>, Vec<DateTime<Utc>>) =
            heads.iter().map(|(id, due)| (id.as_str(), *due)).unzip();
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = head.due, \
                 updated_at = now() \
             FROM UNNEST($1::text[], $2::timestamptz[]) AS head(id, due) \
             WHERE deliveries.id = head.id AND deliveries.status = 'queued' \
             RETURNING {CLAIMED}"
        ))
        .persistent(false)
        .bind(&ids)
        .bind(&due)
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(ClaimedRow::decode).collect())
    }

    async fn apply_attempts(
        &mut self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<String>, StoreError> {
        apply_attempts(&mut *self, attempts).await
    }

    async fn insert_dead_letter(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dead_letters (id, kind, event_id, event_type, stream, subscription_id, \
             delivery_id, handler, ordering_key, error, status_code, response_body, attempts, \
             failed_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&letter.id)
        .bind(letter.kind.as_str())
        .bind(&letter.event_id)
        .bind(&letter.event_type)
        .bind(&letter.stream)
        .bind(&letter.subscription_id)
        .bind(&letter.delivery_id)
        .bind(&letter.handler)
        .bind(&letter.ordering_key)
        .bind(&letter.error)
        .bind(letter.status_code.map(i32::from))
        .bind(&letter.response_body)
        .bind(i32::try_from(letter.attempts).unwrap_or(i32::MAX))
        .bind(letter.failed_at)
        .bind(letter.event.to_string())
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn queued_keys_of_replay(
        &mut self,
        replay_id: &str,
    ) -> Result<Vec<OrderingKey>, StoreError> {
        SharedSql::<Postgres>(self)
            .queued_keys_of_replay(replay_id)
            .await
    }

    async fn delete_unsent_replay_jobs(&mut self, replay_id: &str) -> Result<(), StoreError> {
        SharedSql::<Postgres>(self)
            .delete_unsent_replay_jobs(replay_id)
            .await
    }
}
