//! [`DeliveryStore`] on SQLite: the delivery tables in the embedded file.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::delivery_rows::{
    AttemptRow, ClaimedRow, DEAD, DeadLetterRow, PENDING, SubscriptionRow, attempt_page,
    dead_letter_page, encode_patterns, live_or_replay, next_state, select_dead_letters,
};
use super::{SqliteStore, StoreError};
use crate::delivery::{
    AttemptPage, AttemptRecord, DeadLetter, DeadLetterPage, DeadLetterQuery, DeliveryJob,
    DeliveryStore, NewDelivery, NextStep, StoredSubscription,
};

/// What retention deletes, oldest first, a batch at a time: finished jobs, logged attempts and
/// dead letters from before the cutoff, and replays that finished before it.
const PRUNE_DELIVERIES: [&str; 4] = [
    "DELETE FROM deliveries WHERE id IN ( \
         SELECT id FROM deliveries WHERE status != 'pending' AND updated_us < ?1 LIMIT ?2)",
    "DELETE FROM delivery_attempts WHERE seq IN ( \
         SELECT seq FROM delivery_attempts WHERE attempted_us < ?1 ORDER BY seq LIMIT ?2)",
    "DELETE FROM dead_letters WHERE seq IN ( \
         SELECT seq FROM dead_letters WHERE failed_us < ?1 ORDER BY seq LIMIT ?2)",
    "DELETE FROM replays WHERE id IN ( \
         SELECT id FROM replays WHERE finished_us < ?1 LIMIT ?2)",
];

/// Jobs per INSERT statement: well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 1000;

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, name, event_types, webhook_url, secret, enabled, \
     disabled_reason, created_us, updated_us, previous_secret, previous_secret_until_us \
     FROM subscriptions";

const DEAD_LETTER_COLUMNS: &str = "SELECT seq, id, kind, event_id, event_type, stream, \
     subscription_id, delivery_id, handler, error, status_code, response_body, attempts, \
     failed_us, payload FROM dead_letters";

async fn insert_dead_letter(
    conn: &mut SqliteConnection,
    letter: &DeadLetter,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (id, kind, event_id, event_type, stream, subscription_id, \
         delivery_id, handler, error, status_code, response_body, attempts, failed_us, payload) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&letter.id)
    .bind(letter.kind.as_str())
    .bind(&letter.event_id)
    .bind(&letter.event_type)
    .bind(&letter.stream)
    .bind(&letter.subscription_id)
    .bind(&letter.delivery_id)
    .bind(&letter.handler)
    .bind(&letter.error)
    .bind(letter.status_code.map(i32::from))
    .bind(&letter.response_body)
    .bind(i64::from(letter.attempts))
    .bind(letter.failed_at.timestamp_micros())
    .bind(letter.event.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts the jobs whose (event, subscription, replay) has none yet, a chunk per statement (in
/// the caller's transaction); returns their ids.
pub(super) async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: &[NewDelivery],
) -> Result<Vec<String>, StoreError> {
    let mut created = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(INSERT_CHUNK) {
        created.extend(insert_job_chunk(conn, chunk).await?);
    }
    Ok(created)
}

/// Inserts the jobs of one chunk whose (event, subscription, replay) has none; returns their ids.
async fn insert_job_chunk(
    conn: &mut SqliteConnection,
    jobs: &[NewDelivery],
) -> Result<Vec<String>, StoreError> {
    let now = Utc::now().timestamp_micros();
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO deliveries (id, event_id, subscription_id, replay_id, status, attempts, \
         next_attempt_us, created_us, updated_us) ",
    );
    insert.push_values(jobs, |mut row, job| {
        row.push_bind(&job.id)
            .push_bind(&job.event_id)
            .push_bind(&job.subscription_id)
            .push_bind(live_or_replay(job.replay_id.as_deref()))
            .push_bind(PENDING)
            .push_bind(0)
            .push_bind(job.due.timestamp_micros())
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(" ON CONFLICT (event_id, subscription_id, replay_id) DO NOTHING RETURNING id");
    let ids: Vec<(String,)> = insert.build_query_as().fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// One attempt as a JSON object, for the batch statements of `record_attempts`.
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

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn insert_subscription(&self, stored: &StoredSubscription) -> Result<(), StoreError> {
        let subscription = &stored.subscription;
        sqlx::query(
            "INSERT INTO subscriptions (id, name, event_types, webhook_url, secret, enabled, \
             disabled_reason, created_us, updated_us, previous_secret, previous_secret_until_us) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&subscription.id)
        .bind(&subscription.name)
        .bind(encode_patterns(subscription))
        .bind(&subscription.webhook_url)
        .bind(&stored.secret)
        .bind(subscription.enabled)
        .bind(&subscription.disabled_reason)
        .bind(subscription.created_at.timestamp_micros())
        .bind(subscription.updated_at.timestamp_micros())
        .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
        .bind(stored.previous.as_ref().map(|p| p.until.timestamp_micros()))
        .execute(&self.db().writer)
        .await?;
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<StoredSubscription>, StoreError> {
        let rows: Vec<SubscriptionRow> =
            sqlx::query_as(&format!("{SUBSCRIPTION_COLUMNS} ORDER BY created_us, id"))
                .fetch_all(&self.db().reader)
                .await?;
        rows.into_iter().map(SubscriptionRow::decode).collect()
    }

    async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>, StoreError> {
        let row: Option<SubscriptionRow> =
            sqlx::query_as(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.db().reader)
                .await?;
        row.map(SubscriptionRow::decode).transpose()
    }

    async fn update_subscription(&self, stored: &StoredSubscription) -> Result<bool, StoreError> {
        let subscription = &stored.subscription;
        let result = sqlx::query(
            "UPDATE subscriptions SET name = ?, event_types = ?, webhook_url = ?, secret = ?, \
             enabled = ?, disabled_reason = ?, updated_us = ?, previous_secret = ?, \
             previous_secret_until_us = ? WHERE id = ?",
        )
        .bind(&subscription.name)
        .bind(encode_patterns(subscription))
        .bind(&subscription.webhook_url)
        .bind(&stored.secret)
        .bind(subscription.enabled)
        .bind(&subscription.disabled_reason)
        .bind(subscription.updated_at.timestamp_micros())
        .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
        .bind(stored.previous.as_ref().map(|p| p.until.timestamp_micros()))
        .bind(&subscription.id)
        .execute(&self.db().writer)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.db().writer.begin().await?;
        for table in ["deliveries", "delivery_attempts"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE subscription_id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subscriptions SET enabled = 0, disabled_reason = ?, updated_us = ? WHERE id = ?",
        )
        .bind(reason)
        .bind(Utc::now().timestamp_micros())
        .bind(id)
        .execute(&self.db().writer)
        .await?;
        Ok(())
    }

    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<Vec<String>, StoreError> {
        // One statement commits on its own; more chunks share a transaction.
        if jobs.len() <= INSERT_CHUNK {
            let mut conn = self.db().writer.acquire().await?;
            return insert_job_chunk(&mut conn, jobs).await;
        }
        let mut tx = self.db().writer.begin().await?;
        let created = insert_jobs(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let rows: Vec<ClaimedRow> = sqlx::query_as(
            "UPDATE deliveries SET next_attempt_us = ? WHERE id IN ( \
                 SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_us <= ? \
                 ORDER BY next_attempt_us LIMIT ? \
             ) RETURNING id, event_id, subscription_id, replay_id, attempts",
        )
        .bind(leased_until.timestamp_micros())
        .bind(now.timestamp_micros())
        .bind(i64::from(limit))
        .fetch_all(&self.db().writer)
        .await?;
        Ok(rows.into_iter().map(ClaimedRow::decode).collect())
    }

    async fn postpone(&self, jobs: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut tx = self.db().writer.begin().await?;
        for (id, due) in jobs {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_us = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(due.timestamp_micros())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<Vec<String>, StoreError> {
        // The batch travels as one JSON array: two statements, whatever its size.
        let rows: Vec<serde_json::Value> = attempts.iter().map(attempt_row).collect();
        let mut tx = self.db().writer.begin().await?;
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
        .fetch_all(&mut *tx)
        .await?;
        let recorded: HashSet<String> = moved.into_iter().map(|(id,)| id).collect();
        let logged: Vec<serde_json::Value> = rows
            .into_iter()
            .filter(|row| recorded.contains(row["id"].as_str().unwrap_or_default()))
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
        .execute(&mut *tx)
        .await?;
        for record in attempts {
            if let NextStep::DeadLetter(letter) = &record.next
                && recorded.contains(&record.job.id)
            {
                insert_dead_letter(&mut tx, letter).await?;
            }
        }
        tx.commit().await?;
        Ok(attempts
            .iter()
            .filter(|record| recorded.contains(&record.job.id))
            .map(|record| record.job.id.clone())
            .collect())
    }

    async fn attempts(
        &self,
        subscription_id: &str,
        event_id: Option<&str>,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<AttemptPage, StoreError> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT seq, delivery_id, event_id, attempt, status_code, latency_us, error, \
             attempted_us, next_attempt_us FROM delivery_attempts \
             WHERE subscription_id = ? AND (? IS NULL OR event_id = ?) AND seq < ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(subscription_id)
        .bind(event_id)
        .bind(event_id)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.db().reader)
        .await?;
        Ok(attempt_page(rows, limit))
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        insert_dead_letter(&mut conn, letter).await
    }

    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<DeadLetterPage, StoreError> {
        let mut select = select_dead_letters::<Sqlite>(DEAD_LETTER_COLUMNS, query);
        let rows: Vec<DeadLetterRow> = select.build_query_as().fetch_all(&self.db().reader).await?;
        dead_letter_page(rows, query.limit)
    }

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let row: Option<DeadLetterRow> =
            sqlx::query_as(&format!("{DEAD_LETTER_COLUMNS} WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.db().reader)
                .await?;
        row.map(DeadLetterRow::decode).transpose()
    }

    async fn delete_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM dead_letters WHERE id = ?")
            .bind(id)
            .execute(&self.db().writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn requeue_delivery(&self, letter: &DeadLetter) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_micros();
        let mut tx = self.db().writer.begin().await?;
        let removed = sqlx::query("DELETE FROM dead_letters WHERE id = ?")
            .bind(&letter.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let requeued = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_us = ?, \
             updated_us = ? WHERE id = ? AND status = ?",
        )
        .bind(now)
        .bind(now)
        .bind(&letter.delivery_id)
        .bind(DEAD)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 || requeued == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(&self.db().reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut pruned = 0;
        let mut tx = self.db().writer.begin().await?;
        for statement in PRUNE_DELIVERIES {
            pruned += sqlx::query(statement)
                .bind(cutoff.timestamp_micros())
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(pruned)
    }
}
