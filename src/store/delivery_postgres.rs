//! [`DeliveryStore`] on PostgreSQL: the delivery tables next to the events.
//!
//! Statements that join growing tables or filter them on something other than their primary key
//! are not kept as prepared statements (`persistent(false)`): each is planned for the table as it
//! is now, never with a plan cached while the table was small (nothing runs ANALYZE when
//! autovacuum is off).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use super::delivery_rows::{
    AttemptRow, ClaimedRow, DEAD, DeadLetterRow, SubscriptionRow, attempt_page, dead_letter_page,
    encode_filters, encode_headers, encode_patterns, select_dead_letters,
};
use super::delivery_tx::{self, JobTables, is_plain_insert, is_plain_record};
use super::jobs_postgres::apply_attempts;
use super::postgres::bounded;
use super::shared_sql::SharedSql;
use super::{PgStore, StoreError};
use crate::delivery::{
    AttemptPage, AttemptRecord, BlockedKeys, CapacityClaim, CreatedJobs, DeadLetter,
    DeadLetterPage, DeadLetterQuery, DeliveryJob, DeliveryStore, NewDelivery, RecordedAttempts,
    StoredSubscription,
};
use crate::operations::Mark;

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, name, event_types, webhook_url, secret, enabled, \
     disabled_reason, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, \
     (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us, previous_secret, \
     (extract(epoch FROM previous_secret_until) * 1000000)::bigint AS previous_secret_until_us, \
     ordering, rate_limit, max_in_flight, \
     (extract(epoch FROM held_until) * 1000000)::bigint AS held_until_us, filters, content_mode, \
     headers FROM subscriptions";

const DEAD_LETTER_COLUMNS: &str = "SELECT seq, id, kind, event_id, event_type, stream, \
     subscription_id, delivery_id, handler, ordering_key, error, status_code, response_body, \
     attempts, (extract(epoch FROM failed_at) * 1000000)::bigint AS failed_us, payload \
     FROM dead_letters";

/// What retention deletes, oldest first, a batch at a time: finished jobs, logged attempts and
/// dead letters from before the cutoff, and replays that finished before it.
const PRUNE_DELIVERIES: [&str; 4] = [
    "DELETE FROM deliveries WHERE id IN ( \
         SELECT id FROM deliveries WHERE status <> 'pending' AND updated_at < $1 LIMIT $2)",
    "DELETE FROM delivery_attempts WHERE seq IN ( \
         SELECT seq FROM delivery_attempts WHERE attempted_at < $1 ORDER BY seq LIMIT $2)",
    "DELETE FROM dead_letters WHERE seq IN ( \
         SELECT seq FROM dead_letters WHERE failed_at < $1 ORDER BY seq LIMIT $2)",
    "DELETE FROM replays WHERE id IN ( \
         SELECT id FROM replays WHERE finished_at < $1 LIMIT $2)",
];

/// Inserts jobs in the caller's transaction (a replay's batch, an append's ordered jobs), ordered
/// ones by the rules of ordered delivery.
pub(super) async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: &[NewDelivery],
) -> Result<CreatedJobs, StoreError> {
    delivery_tx::create_jobs(conn, jobs).await
}

/// A rate or a count as its INTEGER column holds it.
fn rate_column(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Binds what a subscription's insert and update both write, as `$1` to `$15`: name,
/// event_types, webhook_url, secret, enabled, disabled_reason, updated_at, previous_secret,
/// previous_secret_until, ordering, rate_limit, max_in_flight, filters, content_mode, headers.
fn bind_settings<'q>(
    query: Query<'q, Postgres, PgArguments>,
    stored: &'q StoredSubscription,
) -> Query<'q, Postgres, PgArguments> {
    let subscription = &stored.subscription;
    query
        .bind(&subscription.name)
        .bind(encode_patterns(subscription))
        .bind(&subscription.webhook_url)
        .bind(&stored.secret)
        .bind(subscription.enabled)
        .bind(&subscription.disabled_reason)
        .bind(subscription.updated_at)
        .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
        .bind(stored.previous.as_ref().map(|p| p.until))
        .bind(subscription.ordering.as_str())
        .bind(subscription.rate_limit.map(rate_column))
        .bind(rate_column(subscription.max_in_flight))
        .bind(encode_filters(subscription))
        .bind(subscription.content_mode.as_str())
        .bind(encode_headers(subscription))
}

#[async_trait]
impl DeliveryStore for PgStore {
    async fn insert_subscription(&self, stored: &StoredSubscription) -> Result<(), StoreError> {
        bounded(async {
            let insert = sqlx::query(
                "INSERT INTO subscriptions (name, event_types, webhook_url, secret, enabled, \
                 disabled_reason, updated_at, previous_secret, previous_secret_until, ordering, \
                 rate_limit, max_in_flight, filters, content_mode, headers, id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17)",
            );
            bind_settings(insert, stored)
                .bind(&stored.subscription.id)
                .bind(stored.subscription.created_at)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<StoredSubscription>, StoreError> {
        bounded(async {
            let rows: Vec<SubscriptionRow> =
                sqlx::query_as(&format!("{SUBSCRIPTION_COLUMNS} ORDER BY created_at, id"))
                    .fetch_all(self.pool())
                    .await?;
            rows.into_iter().map(SubscriptionRow::decode).collect()
        })
        .await
    }

    async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>, StoreError> {
        bounded(async {
            let row: Option<SubscriptionRow> =
                sqlx::query_as(&format!("{SUBSCRIPTION_COLUMNS} WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
            row.map(SubscriptionRow::decode).transpose()
        })
        .await
    }

    async fn update_subscription(&self, stored: &StoredSubscription) -> Result<bool, StoreError> {
        bounded(async {
            let update = sqlx::query(
                "UPDATE subscriptions SET name = $1, event_types = $2, webhook_url = $3, \
                 secret = $4, enabled = $5, disabled_reason = $6, updated_at = $7, \
                 previous_secret = $8, previous_secret_until = $9, ordering = $10, \
                 rate_limit = $11, max_in_flight = $12, filters = $13, content_mode = $14, \
                 headers = $15 WHERE id = $16",
            );
            let result = bind_settings(update, stored)
                .bind(&stored.subscription.id)
                .execute(self.pool())
                .await?;
            Ok(result.rows_affected() > 0)
        })
        .await
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            for table in ["deliveries", "delivery_attempts"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE subscription_id = $1"))
                    .persistent(false)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let deleted = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        bounded(async {
            let changed = sqlx::query(
                "UPDATE subscriptions SET enabled = false, disabled_reason = $1, updated_at = now() \
                 WHERE id = $2 AND enabled",
            )
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await?;
            Ok(changed.rows_affected() > 0)
        })
        .await
    }

    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<CreatedJobs, StoreError> {
        bounded(async {
            // One statement is atomic by itself; ordered jobs need a transaction.
            if is_plain_insert(jobs) {
                let mut conn = self.pool().acquire().await?;
                return delivery_tx::create_jobs(&mut *conn, jobs).await;
            }
            let mut tx = self.pool().begin().await?;
            let created = delivery_tx::create_jobs(&mut *tx, jobs).await?;
            tx.commit().await?;
            Ok(created)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        bounded(async {
            let rows: Vec<ClaimedRow> = sqlx::query_as(
                "UPDATE deliveries SET next_attempt_at = $2 WHERE id IN ( \
                     SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ) RETURNING id, event_id, subscription_id, replay_id, ordering_key, attempts::bigint",
            )
            .persistent(false)
            .bind(now)
            .bind(leased_until)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
            Ok(rows.into_iter().map(ClaimedRow::decode).collect())
        })
        .await
    }

    async fn postpone(&self, jobs: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        bounded(async {
            let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
            let due: Vec<DateTime<Utc>> = jobs.iter().map(|(_, at)| *at).collect();
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = job.due \
                 FROM UNNEST($1::text[], $2::timestamptz[]) AS job(id, due) \
                 WHERE deliveries.id = job.id AND deliveries.status = 'pending'",
            )
            .persistent(false)
            .bind(&ids)
            .bind(&due)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn record_attempts(
        &self,
        attempts: &[AttemptRecord],
        successors_due: DateTime<Utc>,
    ) -> Result<RecordedAttempts, StoreError> {
        bounded(async {
            // One statement is atomic by itself; dead letters and ordered heads need a
            // transaction around it.
            if is_plain_record(attempts) {
                let moved = apply_attempts(self.pool(), attempts).await?;
                let recorded = delivery_tx::in_attempt_order(attempts, moved);
                return Ok(RecordedAttempts {
                    recorded,
                    successors: Vec::new(),
                });
            }
            let mut tx = self.pool().begin().await?;
            let recorded = delivery_tx::record_attempts(&mut *tx, attempts, successors_due).await?;
            tx.commit().await?;
            Ok(recorded)
        })
        .await
    }

    async fn release_ordering(&self, subscription_id: &str) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "UPDATE deliveries SET ordering_key = NULL, \
                     next_attempt_at = CASE status WHEN 'queued' THEN now() \
                         ELSE next_attempt_at END, \
                     status = CASE status WHEN 'queued' THEN 'pending' ELSE status END \
                 WHERE subscription_id = $1 AND status IN ('pending', 'queued') \
                     AND ordering_key IS NOT NULL",
            )
            .persistent(false)
            .bind(subscription_id)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn blocked_keys(
        &self,
        subscription_id: Option<&str>,
    ) -> Result<Vec<BlockedKeys>, StoreError> {
        bounded(async {
            let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
                "SELECT subscription_id, COUNT(*), MIN(created_at) FROM deliveries \
                 WHERE ordering_key IS NOT NULL AND status = 'pending' AND attempts > 0 \
                     AND ($1::text IS NULL OR subscription_id = $1) \
                 GROUP BY subscription_id",
            )
            .persistent(false)
            .bind(subscription_id)
            .fetch_all(self.pool())
            .await?;
            Ok(rows
                .into_iter()
                .map(|(subscription_id, keys, oldest)| BlockedKeys {
                    subscription_id,
                    keys: u64::try_from(keys).unwrap_or_default(),
                    oldest_head_since: oldest,
                })
                .collect())
        })
        .await
    }

    async fn reserve_pace(
        &self,
        subscription_id: &str,
        count: u32,
        interval: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            let interval_us = interval.num_microseconds().unwrap_or(i64::MAX);
            SharedSql::<Postgres>(&mut conn)
                .reserve_pace(subscription_id, count, interval_us, now)
                .await
        })
        .await
    }

    async fn negotiate_capacity(&self, claim: &CapacityClaim<'_>) -> Result<u32, StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            let granted = SharedSql::<Postgres>(&mut tx)
                .negotiate_capacity(claim)
                .await?;
            tx.commit().await?;
            Ok(granted)
        })
        .await
    }

    async fn release_capacity(&self, holder: &str) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            SharedSql::<Postgres>(&mut conn)
                .release_capacity(holder)
                .await
        })
        .await
    }

    async fn hold_subscription(&self, id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "UPDATE subscriptions SET held_until = GREATEST(held_until, $1) WHERE id = $2",
            )
            .bind(until)
            .bind(id)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn attempts(
        &self,
        subscription_id: &str,
        event_id: Option<&str>,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<AttemptPage, StoreError> {
        bounded(async {
            let rows: Vec<AttemptRow> = sqlx::query_as(
                "SELECT seq, delivery_id, event_id, attempt, status_code, latency_us, error, \
                 (extract(epoch FROM attempted_at) * 1000000)::bigint AS attempted_us, \
                 (extract(epoch FROM next_attempt_at) * 1000000)::bigint AS next_attempt_us \
                 FROM delivery_attempts WHERE subscription_id = $1 AND seq < $2 \
                 AND ($4::text IS NULL OR event_id = $4) ORDER BY seq DESC LIMIT $3",
            )
            .persistent(false)
            .bind(subscription_id)
            .bind(cursor.unwrap_or(i64::MAX))
            .bind(i64::from(limit) + 1)
            .bind(event_id)
            .fetch_all(self.pool())
            .await?;
            Ok(attempt_page(rows, limit))
        })
        .await
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            conn.insert_dead_letter(letter).await
        })
        .await
    }

    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<DeadLetterPage, StoreError> {
        bounded(async {
            let mut select = select_dead_letters::<Postgres>(DEAD_LETTER_COLUMNS, query);
            let rows: Vec<DeadLetterRow> = select
                .build_query_as()
                .persistent(false)
                .fetch_all(self.pool())
                .await?;
            dead_letter_page(rows, query.limit)
        })
        .await
    }

    async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        bounded(async {
            let row: Option<DeadLetterRow> =
                sqlx::query_as(&format!("{DEAD_LETTER_COLUMNS} WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
            row.map(DeadLetterRow::decode).transpose()
        })
        .await
    }

    async fn delete_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        bounded(async {
            let result = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
            Ok(result.rows_affected() > 0)
        })
        .await
    }

    async fn requeue_delivery(&self, letter: &DeadLetter) -> Result<bool, StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            let removed = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                .bind(&letter.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let requeued = sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), \
                 updated_at = now(), ordering_key = NULL WHERE id = $1 AND status = $2",
            )
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
        })
        .await
    }

    async fn raise_mark(
        &self,
        key: &str,
        count: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            SharedSql::<Postgres>(&mut conn)
                .raise_mark(key, count, now)
                .await
        })
        .await
    }

    async fn clear_mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            SharedSql::<Postgres>(&mut conn).clear_mark(key).await
        })
        .await
    }

    async fn raised_marks(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            SharedSql::<Postgres>(&mut conn).raised_marks(prefix).await
        })
        .await
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        bounded(async {
            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letters")
                .fetch_one(self.pool())
                .await?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        bounded(async {
            let mut pruned = 0;
            let mut tx = self.pool().begin().await?;
            for statement in PRUNE_DELIVERIES {
                pruned += sqlx::query(statement)
                    .persistent(false)
                    .bind(cutoff)
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(pruned)
        })
        .await
    }
}
