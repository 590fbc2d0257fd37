//! [`ReplayStore`] on PostgreSQL: replay jobs next to the events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::delivery_postgres::insert_jobs;
use super::delivery_tx;
use super::postgres::bounded;
use super::replay_rows::{ReplayRow, encode_types, replay_page, stored_count};
use super::{PgStore, StoreError};
use crate::delivery::NewDelivery;
use crate::replay::{Replay, ReplayPage, ReplayProgress, ReplayStatus, ReplayStore};

/// The columns of a [`ReplayRow`], times in microseconds.
const REPLAY_FIELDS: &str = "id, status, stream, \
     (extract(epoch FROM start_time) * 1000000)::bigint AS start_us, \
     (extract(epoch FROM end_time) * 1000000)::bigint AS end_us, \
     event_types, subscription_id, dry_run, cursor, matched, replayed, deliveries, error, \
     (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, \
     (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us, \
     (extract(epoch FROM finished_at) * 1000000)::bigint AS finished_us";

#[async_trait]
impl ReplayStore for PgStore {
    async fn insert_replay(&self, replay: &Replay) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "INSERT INTO replays (id, stream, start_time, end_time, event_types, \
                 subscription_id, dry_run, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&replay.id)
            .bind(&replay.stream)
            .bind(replay.start_time)
            .bind(replay.end_time)
            .bind(encode_types(replay))
            .bind(&replay.subscription_id)
            .bind(replay.dry_run)
            .bind(replay.status.as_str())
            .bind(replay.created_at)
            .bind(replay.updated_at)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn replay(&self, id: &str) -> Result<Option<Replay>, StoreError> {
        bounded(async {
            let row: Option<ReplayRow> = sqlx::query_as(&format!(
                "SELECT {REPLAY_FIELDS} FROM replays WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
            row.map(ReplayRow::decode).transpose()
        })
        .await
    }

    async fn replays(&self, cursor: Option<&str>, limit: u32) -> Result<ReplayPage, StoreError> {
        bounded(async {
            let rows: Vec<ReplayRow> = sqlx::query_as(&format!(
                "SELECT {REPLAY_FIELDS} FROM replays WHERE $1::text IS NULL OR id < $1 \
                 ORDER BY id DESC LIMIT $2"
            ))
            .bind(cursor)
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
            replay_page(rows, limit)
        })
        .await
    }

    async fn claim_replay(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
    ) -> Result<Option<Replay>, StoreError> {
        bounded(async {
            let row: Option<ReplayRow> = sqlx::query_as(&format!(
                "UPDATE replays SET status = 'running', owner = $1, lease_until = $2, \
                     updated_at = $3 \
                 WHERE id = ( \
                     SELECT id FROM replays WHERE status IN ('queued', 'running') \
                         AND lease_until <= $3 ORDER BY created_at LIMIT 1 \
                     FOR UPDATE SKIP LOCKED) \
                 RETURNING {REPLAY_FIELDS}"
            ))
            .bind(owner)
            .bind(leased_until)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            row.map(ReplayRow::decode).transpose()
        })
        .await
    }

    async fn advance_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        jobs: &[NewDelivery],
        leased_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            let held = sqlx::query(
                "UPDATE replays SET cursor = $1, matched = $2, replayed = $3, deliveries = $4, \
                     lease_until = $5, updated_at = now() \
                 WHERE id = $6 AND owner = $7 AND status = 'running'",
            )
            .bind(progress.cursor)
            .bind(stored_count(progress.matched))
            .bind(stored_count(progress.replayed))
            .bind(stored_count(progress.deliveries))
            .bind(leased_until)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !held {
                return Ok(false);
            }
            insert_jobs(&mut tx, jobs).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn finish_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        status: ReplayStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let finished = sqlx::query(
                "UPDATE replays SET status = $1, error = $2, cursor = $3, matched = $4, \
                     replayed = $5, deliveries = $6, owner = NULL, updated_at = now(), \
                     finished_at = now() \
                 WHERE id = $7 AND owner = $8 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(error)
            .bind(progress.cursor)
            .bind(stored_count(progress.matched))
            .bind(stored_count(progress.replayed))
            .bind(stored_count(progress.deliveries))
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
            Ok(finished.rows_affected() == 1)
        })
        .await
    }

    async fn cancel_replay(&self, id: &str) -> Result<Option<Replay>, StoreError> {
        bounded(async {
            let mut tx = self.pool().begin().await?;
            let cancelled = sqlx::query(
                "UPDATE replays SET status = 'cancelled', owner = NULL, updated_at = now(), \
                     finished_at = now() \
                 WHERE id = $1 AND status IN ('queued', 'running')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if cancelled.rows_affected() == 1 {
                delivery_tx::drop_unsent_replay_jobs(&mut *tx, id).await?;
            }
            let row: Option<ReplayRow> = sqlx::query_as(&format!(
                "SELECT {REPLAY_FIELDS} FROM replays WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row.map(ReplayRow::decode).transpose()
        })
        .await
    }
}
