//! [`DeliveryStore`] on SQLite: the delivery tables in the embedded file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

use super::delivery_rows::{
    AttemptRow, ClaimedRow, DEAD, DeadLetterRow, SubscriptionRow, attempt_page, dead_letter_page,
    encode_filters, encode_headers, encode_patterns, from_micros, select_dead_letters,
};
use super::delivery_tx::{self, JobTables, is_plain_insert};
use super::jobs_sqlite::INSERT_CHUNK;
use super::shared_sql::SharedSql;
use super::{SqliteStore, StoreError};
use crate::delivery::{
    AttemptPage, AttemptRecord, BlockedKeys, CapacityClaim, CreatedJobs, DeadLetter,
    DeadLetterPage, DeadLetterQuery, DeliveryJob, DeliveryStore, NewDelivery, RecordedAttempts,
    StoredSubscription,
};
use crate::operations::Mark;

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

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, name, event_types, webhook_url, secret, enabled, \
     disabled_reason, created_us, updated_us, previous_secret, previous_secret_until_us, ordering, \
     rate_limit, max_in_flight, held_until_us, filters, content_mode, headers \
     FROM subscriptions";

const DEAD_LETTER_COLUMNS: &str = "SELECT seq, id, kind, event_id, event_type, stream, \
     subscription_id, delivery_id, handler, ordering_key, error, status_code, response_body, \
     attempts, failed_us, payload FROM dead_letters";

/// Inserts jobs in the caller's transaction (a replay's batch), ordered ones by the rules of
/// ordered delivery.
pub(super) async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: &[NewDelivery],
) -> Result<CreatedJobs, StoreError> {
    delivery_tx::create_jobs(conn, jobs).await
}

/// Binds what a subscription's insert and update both write, in this order: name, event_types,
/// webhook_url, secret, enabled, disabled_reason, updated_us, previous_secret,
/// previous_secret_until_us, ordering, rate_limit, max_in_flight, filters, content_mode,
/// headers.
fn bind_settings<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    stored: &'q StoredSubscription,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let subscription = &stored.subscription;
    query
        .bind(&subscription.name)
        .bind(encode_patterns(subscription))
        .bind(&subscription.webhook_url)
        .bind(&stored.secret)
        .bind(subscription.enabled)
        .bind(&subscription.disabled_reason)
        .bind(subscription.updated_at.timestamp_micros())
        .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
        .bind(stored.previous.as_ref().map(|p| p.until.timestamp_micros()))
        .bind(subscription.ordering.as_str())
        .bind(subscription.rate_limit.map(i64::from))
        .bind(i64::from(subscription.max_in_flight))
        .bind(encode_filters(subscription))
        .bind(subscription.content_mode.as_str())
        .bind(encode_headers(subscription))
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn insert_subscription(&self, stored: &StoredSubscription) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT INTO subscriptions (name, event_types, webhook_url, secret, enabled, \
             disabled_reason, updated_us, previous_secret, previous_secret_until_us, ordering, \
             rate_limit, max_in_flight, filters, content_mode, headers, id, created_us) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        bind_settings(insert, stored)
            .bind(&stored.subscription.id)
            .bind(stored.subscription.created_at.timestamp_micros())
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
        let update = sqlx::query(
            "UPDATE subscriptions SET name = ?, event_types = ?, webhook_url = ?, secret = ?, \
             enabled = ?, disabled_reason = ?, updated_us = ?, previous_secret = ?, \
             previous_secret_until_us = ?, ordering = ?, rate_limit = ?, max_in_flight = ?, \
             filters = ?, content_mode = ?, headers = ? WHERE id = ?",
        );
        let result = bind_settings(update, stored)
            .bind(&stored.subscription.id)
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

    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE subscriptions SET enabled = 0, disabled_reason = ?, updated_us = ? \
             WHERE id = ? AND enabled = 1",
        )
        .bind(reason)
        .bind(Utc::now().timestamp_micros())
        .bind(id)
        .execute(&self.db().writer)
        .await?;
        Ok(changed.rows_affected() > 0)
    }

    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<CreatedJobs, StoreError> {
        // One statement commits on its own; more share a transaction.
        if is_plain_insert(jobs) && jobs.len() <= INSERT_CHUNK {
            let mut conn = self.db().writer.acquire().await?;
            return delivery_tx::create_jobs(&mut *conn, jobs).await;
        }
        let mut tx = self.db().writer.begin().await?;
        let created = delivery_tx::create_jobs(&mut *tx, jobs).await?;
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
             ) RETURNING id, event_id, subscription_id, replay_id, ordering_key, attempts",
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

    async fn record_attempts(
        &self,
        attempts: &[AttemptRecord],
        successors_due: DateTime<Utc>,
    ) -> Result<RecordedAttempts, StoreError> {
        let mut tx = self.db().writer.begin().await?;
        let recorded = delivery_tx::record_attempts(&mut *tx, attempts, successors_due).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn release_ordering(&self, subscription_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET ordering_key = NULL, \
                 next_attempt_us = CASE status WHEN 'queued' THEN ?1 ELSE next_attempt_us END, \
                 status = CASE status WHEN 'queued' THEN 'pending' ELSE status END \
             WHERE subscription_id = ?2 AND status IN ('pending', 'queued') \
                 AND ordering_key IS NOT NULL",
        )
        .bind(Utc::now().timestamp_micros())
        .bind(subscription_id)
        .execute(&self.db().writer)
        .await?;
        Ok(())
    }

    async fn blocked_keys(
        &self,
        subscription_id: Option<&str>,
    ) -> Result<Vec<BlockedKeys>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT subscription_id, COUNT(*), MIN(created_us) FROM deliveries \
             WHERE ordering_key IS NOT NULL AND status = 'pending' AND attempts > 0 \
                 AND (?1 IS NULL OR subscription_id = ?1) \
             GROUP BY subscription_id",
        )
        .bind(subscription_id)
        .fetch_all(&self.db().reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(subscription_id, keys, oldest)| BlockedKeys {
                subscription_id,
                keys: u64::try_from(keys).unwrap_or_default(),
                oldest_head_since: from_micros(oldest),
            })
            .collect())
    }

    async fn reserve_pace(
        &self,
        subscription_id: &str,
        count: u32,
        interval: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        let interval_us = interval.num_microseconds().unwrap_or(i64::MAX);
        SharedSql::<Sqlite>(&mut conn)
            .reserve_pace(subscription_id, count, interval_us, now)
            .await
    }

    async fn negotiate_capacity(&self, claim: &CapacityClaim<'_>) -> Result<u32, StoreError> {
        let mut tx = self.db().writer.begin().await?;
        let granted = SharedSql::<Sqlite>(&mut tx)
            .negotiate_capacity(claim)
            .await?;
        tx.commit().await?;
        Ok(granted)
    }

    async fn release_capacity(&self, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        SharedSql::<Sqlite>(&mut conn)
            .release_capacity(holder)
            .await
    }

    async fn hold_subscription(&self, id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE subscriptions SET held_until_us = MAX(held_until_us, ?) WHERE id = ?")
            .bind(until.timestamp_micros())
            .bind(id)
            .execute(&self.db().writer)
            .await?;
        Ok(())
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
        conn.insert_dead_letter(letter).await
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
             updated_us = ?, ordering_key = NULL WHERE id = ? AND status = ?",
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

    async fn raise_mark(
        &self,
        key: &str,
        count: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        SharedSql::<Sqlite>(&mut conn)
            .raise_mark(key, count, now)
            .await
    }

    async fn clear_mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        let mut conn = self.db().writer.acquire().await?;
        SharedSql::<Sqlite>(&mut conn).clear_mark(key).await
    }

    async fn raised_marks(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.db().reader.acquire().await?;
        SharedSql::<Sqlite>(&mut conn).raised_marks(prefix).await
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
