//! [`DeliveryStore`] on PostgreSQL: the delivery tables next to the events.
//!
//! Statements that join growing tables or filter them on something other than their primary key
//! are not kept as prepared statements (`persistent(false)`): each is planned for the table as it
//! is now, never with a plan cached while the table was small (nothing runs ANALYZE when
//! autovacuum is off).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres};

use super::delivery_rows::{
    AttemptRow, ClaimedRow, DEAD, DeadLetterRow, PENDING, SubscriptionRow, attempt_page,
    dead_letter_page, encode_patterns, live_or_replay, next_state, select_dead_letters,
};
use super::postgres::bounded;
use super::{PgStore, StoreError};
use crate::delivery::{
    AttemptPage, AttemptRecord, DeadLetter, DeadLetterPage, DeadLetterQuery, DeliveryJob,
    DeliveryStore, NewDelivery, NextStep, StoredSubscription,
};

const SUBSCRIPTION_COLUMNS: &str = "SELECT id, name, event_types, webhook_url, secret, enabled, \
     disabled_reason, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, \
     (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us, previous_secret, \
     (extract(epoch FROM previous_secret_until) * 1000000)::bigint AS previous_secret_until_us \
     FROM subscriptions";

const DEAD_LETTER_COLUMNS: &str = "SELECT seq, id, kind, event_id, event_type, stream, \
     subscription_id, delivery_id, handler, error, status_code, response_body, attempts, \
     (extract(epoch FROM failed_at) * 1000000)::bigint AS failed_us, payload FROM dead_letters";

/// Moves each job still pending with the attempt count it was sent with to its new state, and logs
/// those attempts (given as arrays); returns the ids of the jobs moved.
const RECORD_ATTEMPTS: &str = "
WITH attempt AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[],
                         $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::int[])
        AS a(delivery_id, subscription_id, event_id, attempt, status_code, latency_us, error,
             attempted_at, next_attempt_at, status, previous_attempts)
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
RETURNING delivery_id";

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

/// Inserts the jobs whose (event, subscription, replay) has none yet; returns their ids.
pub(super) async fn insert_jobs(
    conn: &mut PgConnection,
    jobs: &[NewDelivery],
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
    let created: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO deliveries (id, event_id, subscription_id, replay_id, status, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT id, event_id, subscription_id, replay_id, $4, 0, due, now(), now() \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $5::timestamptz[], $6::text[]) \
             AS job(id, event_id, subscription_id, due, replay_id) \
         ON CONFLICT (event_id, subscription_id, replay_id) DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&events)
    .bind(&subscriptions)
    .bind(PENDING)
    .bind(&due)
    .bind(&replays)
    .fetch_all(&mut *conn)
    .await?;
    Ok(created.into_iter().map(|(id,)| id).collect())
}

async fn insert_dead_letter(
    conn: &mut PgConnection,
    letter: &DeadLetter,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (id, kind, event_id, event_type, stream, subscription_id, \
         delivery_id, handler, error, status_code, response_body, attempts, failed_at, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
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
    .bind(&letter.error)
    .bind(letter.status_code.map(i32::from))
    .bind(&letter.response_body)
    .bind(i32::try_from(letter.attempts).unwrap_or(i32::MAX))
    .bind(letter.failed_at)
    .bind(letter.event.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

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

#[async_trait]
impl DeliveryStore for PgStore {
    async fn insert_subscription(&self, stored: &StoredSubscription) -> Result<(), StoreError> {
        bounded(async {
            let subscription = &stored.subscription;
            sqlx::query(
                "INSERT INTO subscriptions (id, name, event_types, webhook_url, secret, enabled, \
                 disabled_reason, created_at, updated_at, previous_secret, previous_secret_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&subscription.id)
            .bind(&subscription.name)
            .bind(encode_patterns(subscription))
            .bind(&subscription.webhook_url)
            .bind(&stored.secret)
            .bind(subscription.enabled)
            .bind(&subscription.disabled_reason)
            .bind(subscription.created_at)
            .bind(subscription.updated_at)
            .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
            .bind(stored.previous.as_ref().map(|p| p.until))
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
            let subscription = &stored.subscription;
            let result = sqlx::query(
                "UPDATE subscriptions SET name = $1, event_types = $2, webhook_url = $3, \
                 secret = $4, enabled = $5, disabled_reason = $6, updated_at = $7, \
                 previous_secret = $8, previous_secret_until = $9 WHERE id = $10",
            )
            .bind(&subscription.name)
            .bind(encode_patterns(subscription))
            .bind(&subscription.webhook_url)
            .bind(&stored.secret)
            .bind(subscription.enabled)
            .bind(&subscription.disabled_reason)
            .bind(subscription.updated_at)
            .bind(stored.previous.as_ref().map(|p| p.secret.as_str()))
            .bind(stored.previous.as_ref().map(|p| p.until))
            .bind(&subscription.id)
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

    async fn disable_subscription(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "UPDATE subscriptions SET enabled = false, disabled_reason = $1, updated_at = now() \
                 WHERE id = $2",
            )
            .bind(reason)
            .bind(id)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn create_deliveries(&self, jobs: &[NewDelivery]) -> Result<Vec<String>, StoreError> {
        bounded(async {
            let mut conn = self.pool().acquire().await?;
            insert_jobs(&mut conn, jobs).await
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
                 ) RETURNING id, event_id, subscription_id, replay_id, attempts::bigint",
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

    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<Vec<String>, StoreError> {
        bounded(async {
            let columns = AttemptColumns::of(attempts);
            let statement = sqlx::query_as::<_, (String,)>(RECORD_ATTEMPTS)
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
                .bind(&columns.previous_attempts);
            // One statement is atomic by itself; dead letters need a transaction around both.
            let dead = |record: &AttemptRecord| matches!(record.next, NextStep::DeadLetter(_));
            if !attempts.iter().any(dead) {
                let moved = statement.fetch_all(self.pool()).await?;
                return Ok(moved.into_iter().map(|(id,)| id).collect());
            }
            let mut tx = self.pool().begin().await?;
            let moved = statement.fetch_all(&mut *tx).await?;
            let recorded: Vec<String> = moved.into_iter().map(|(id,)| id).collect();
            for record in attempts {
                if let NextStep::DeadLetter(letter) = &record.next
                    && recorded.contains(&record.job.id)
                {
                    insert_dead_letter(&mut tx, letter).await?;
                }
            }
            tx.commit().await?;
            Ok(recorded)
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
            insert_dead_letter(&mut conn, letter).await
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
                 updated_at = now() WHERE id = $1 AND status = $2",
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
