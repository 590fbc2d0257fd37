//! [`JobTables`] on SQLite: each step's statement over the `deliveries` table, batches passed as
//! one JSON array. Keys need no lock: the single writer runs one transaction at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::StoreError;
use super::delivery_rows::{ClaimedRow, KeyStateRow, key_state, live_or_replay, next_state};
use super::delivery_tx::JobTables;
use super::shared_sql::SharedSql;
use crate::delivery::{AttemptRecord, DeadLetter, DeliveryJob, KeyState, NewDelivery, OrderingKey};

/// Jobs per INSERT statement: well under SQLite's bound-parameter limit.
pub(super) const INSERT_CHUNK: usize = 1000;

/// The columns of a job as the dispatcher takes it.
const CLAIMED: &str = "deliveries.id, deliveries.event_id, deliveries.subscription_id, \
     deliveries.replay_id, deliveries.ordering_key, deliveries.attempts";

/// Keys as the JSON array the statements unpack.
fn keys_json(keys: &[OrderingKey]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|key| serde_json::json!({"s": key.subscription_id, "k": key.key}))
        .collect();
    serde_json::Value::from(keys).to_string()
}

/// One attempt as a JSON object, for the batch statements of `apply_attempts`.
fn attempt_row(record: &AttemptRecord) -> serde_json::Value {
    let (status, due) = next_state(&record.next);
    serde_json::json!({
        "id": record.job.id,
        "subscription": record.job.subscription_id,
        "event": record.job.event_id,
        "attempt": record.attempt,
        "previous": record.job.attempts,
        "code": record.status_code,
        "latency": i64::try_from(record.latency.as_micros()).unwrap_or(i64::MAX),
        "error": record.error,
        "at": record.attempted_at.timestamp_micros(),
        "due": due.map(|at| at.timestamp_micros()),
        "status": status,
    })
}

/// Inserts one chunk of jobs whose (event, subscription, replay) has none; returns their ids.
async fn insert_chunk(
    conn: &mut SqliteConnection,
    jobs: &[NewDelivery],
    statuses: &[&'static str],
) -> Result<Vec<String>, StoreError> {
    let now = Utc::now().timestamp_micros();
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO deliveries (id, event_id, subscription_id, replay_id, ordering_key, status, \
         attempts, next_attempt_us, created_us, updated_us) ",
    );
    insert.push_values(jobs.iter().zip(statuses), |mut row, (job, status)| {
        row.push_bind(&job.id)
            .push_bind(&job.event_id)
            .push_bind(&job.subscription_id)
            .push_bind(live_or_replay(job.replay_id.as_deref()))
            .push_bind(&job.ordering_key)
            .push_bind(*status)
            .push_bind(0)
            .push_bind(job.due.timestamp_micros())
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(" ON CONFLICT (event_id, subscription_id, replay_id) DO NOTHING RETURNING id");
    let ids: Vec<(String,)> = insert.build_query_as().fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

#[async_trait]
impl JobTables for SqliteConnection {
    async fn lock_keys(&mut self, _keys: &[OrderingKey]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_jobs(
        &mut self,
        jobs: &[NewDelivery],
        statuses: &[&'static str],
    ) -> Result<Vec<String>, StoreError> {
        let mut created = Vec::with_capacity(jobs.len());
        for (chunk, statuses) in jobs.chunks(INSERT_CHUNK).zip(statuses.chunks(INSERT_CHUNK)) {
            created.extend(insert_chunk(self, chunk, statuses).await?);
        }
        Ok(created)
    }

    async fn claim_jobs(
        &mut self,
        jobs: &[&NewDelivery],
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let pairs: Vec<serde_json::Value> = jobs
            .iter()
            .map(|job| {
                serde_json::json!({"e": job.event_id, "s": job.subscription_id,
                                   "r": live_or_replay(job.replay_id.as_deref())})
            })
            .collect();
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "UPDATE deliveries SET next_attempt_us = ?1 \
             WHERE status = 'pending' AND next_attempt_us <= ?2 \
                 AND (event_id, subscription_id, replay_id) IN ( \
                     SELECT value ->> 'e', value ->> 's', value ->> 'r' FROM json_each(?3)) \
             RETURNING {CLAIMED}"
        ))
        .bind(due.timestamp_micros())
        .bind(now.timestamp_micros())
        .bind(serde_json::Value::from(pairs).to_string())
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(ClaimedRow::decode).collect())
    }

    async fn key_states(&mut self, keys: &[OrderingKey]) -> Result<Vec<KeyState>, StoreError> {
        let rows: Vec<KeyStateRow> = sqlx::query_as(
            "SELECT k.value ->> 's', k.value ->> 'k', \
                 (SELECT id FROM deliveries WHERE subscription_id = k.value ->> 's' \
                      AND ordering_key = k.value ->> 'k' AND status = 'pending' LIMIT 1), \
                 (SELECT id FROM deliveries WHERE subscription_id = k.value ->> 's' \
                      AND ordering_key = k.value ->> 'k' AND status = 'queued' \
                      ORDER BY rowid LIMIT 1) \
             FROM json_each(?) AS k",
        )
        .bind(keys_json(keys))
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
        let heads: Vec<serde_json::Value> = heads
            .iter()
            .map(|(id, due)| serde_json::json!({"id": id, "due": due.timestamp_micros()}))
            .collect();
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "UPDATE deliveries SET status = 'pending', next_attempt_us = h.due, updated_us = ?1 \
             FROM (SELECT value ->> 'id' AS id, value ->> 'due' AS due FROM json_each(?2)) AS h \
             WHERE deliveries.id = h.id AND deliveries.status = 'queued' \
             RETURNING {CLAIMED}"
        ))
        .bind(Utc::now().timestamp_micros())
        .bind(serde_json::Value::from(heads).to_string())
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(ClaimedRow::decode).collect())
    }

    async fn apply_attempts(
        &mut self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<String>, StoreError> {
        // The batch travels as one JSON array: two statements, whatever its size.
        let rows: Vec<serde_json::Value> = attempts.iter().map(attempt_row).collect();
        let moved: Vec<(String,)> = sqlx::query_as(
            "UPDATE deliveries SET status = a.status, attempts = a.attempt, \
                 next_attempt_us = COALESCE(a.due, a.at), last_status = a.code, \
                 last_error = a.error, updated_us = a.at \
             FROM (SELECT value ->> 'id' AS id, value ->> 'status' AS status, \
                          value ->> 'attempt' AS attempt, value ->> 'due' AS due, \
                          value ->> 'at' AS at, value ->> 'code' AS code, \
                          value ->> 'error' AS error, value ->> 'previous' AS previous \
                   FROM json_each(?)) AS a \
             WHERE deliveries.id = a.id AND deliveries.status = 'pending' \
                 AND deliveries.attempts = a.previous \
             RETURNING deliveries.id",
        )
        .bind(serde_json::Value::from(rows.clone()).to_string())
        .fetch_all(&mut *self)
        .await?;
        let recorded: Vec<String> = moved.into_iter().map(|(id,)| id).collect();
        let logged: Vec<serde_json::Value> = rows
            .into_iter()
            .filter(|row| recorded.iter().any(|id| row["id"] == id.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, subscription_id, event_id, attempt, \
                 status_code, latency_us, error, attempted_us, next_attempt_us) \
             SELECT value ->> 'id', value ->> 'subscription', value ->> 'event', \
                 value ->> 'attempt', value ->> 'code', value ->> 'latency', value ->> 'error', \
                 value ->> 'at', value ->> 'due' \
             FROM json_each(?)",
        )
        .bind(serde_json::Value::from(logged).to_string())
        .execute(&mut *self)
        .await?;
        Ok(recorded)
    }

    async fn insert_dead_letter(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dead_letters (id, kind, event_id, event_type, stream, subscription_id, \
             delivery_id, handler, ordering_key, error, status_code, response_body, attempts, \
             failed_us, payload) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
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
        .bind(i64::from(letter.attempts))
        .bind(letter.failed_at.timestamp_micros())
        .bind(letter.event.to_string())
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn queued_keys_of_replay(
        &mut self,
        replay_id: &str,
    ) -> Result<Vec<OrderingKey>, StoreError> {
        SharedSql::<Sqlite>(self)
            .queued_keys_of_replay(replay_id)
            .await
    }

    async fn delete_unsent_replay_jobs(&mut self, replay_id: &str) -> Result<(), StoreError> {
        SharedSql::<Sqlite>(self)
            .delete_unsent_replay_jobs(replay_id)
            .await
    }
}
