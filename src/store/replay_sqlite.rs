//! [`ReplayStore`] on SQLite: replay jobs in the embedded file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::delivery_sqlite::insert_jobs;
use super::delivery_tx;
use super::replay_rows::{ReplayRow, encode_types, replay_page, stored_count};
use super::{SqliteStore, StoreError};
use crate::delivery::NewDelivery;
use crate::replay::{Replay, ReplayPage, ReplayProgress, ReplayStatus, ReplayStore};

/// The columns of a [`ReplayRow`].
const REPLAY_FIELDS: &str = "id, status, stream, start_us, end_us, event_types, subscription_id, \
     dry_run, cursor, matched, replayed, deliveries, error, created_us, updated_us, finished_us";

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn insert_replay(&self, replay: &Replay) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replays (id, stream, start_us, end_us, event_types, subscription_id, \
             dry_run, status, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&replay.id)
        .bind(&replay.stream)
        .bind(replay.start_time.timestamp_micros())
        .bind(replay.end_time.timestamp_micros())
        .bind(encode_types(replay))
        .bind(&replay.subscription_id)
        .bind(replay.dry_run)
        .bind(replay.status.as_str())
        .bind(replay.created_at.timestamp_micros())
        .bind(replay.updated_at.timestamp_micros())
        .execute(&self.db().writer)
        .await?;
        Ok(())
    }

    async fn replay(&self, id: &str) -> Result<Option<Replay>, StoreError> {
        let row: Option<ReplayRow> =
            sqlx::query_as(&format!("SELECT {REPLAY_FIELDS} FROM replays WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.db().reader)
                .await?;
        row.map(ReplayRow::decode).transpose()
    }

    async fn replays(&self, cursor: Option<&str>, limit: u32) -> Result<ReplayPage, StoreError> {
        let rows: Vec<ReplayRow> = sqlx::query_as(&format!(
            "SELECT {REPLAY_FIELDS} FROM replays WHERE ?1 IS NULL OR id < ?1 \
             ORDER BY id DESC LIMIT ?2"
        ))
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.db().reader)
        .await?;
        replay_page(rows, limit)
    }

    async fn claim_replay(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
    ) -> Result<Option<Replay>, StoreError> {
        let row: Option<ReplayRow> = sqlx::query_as(&format!(
            "UPDATE replays SET status = 'running', owner = ?1, lease_until_us = ?2, \
                 updated_us = ?3 \
             WHERE id = ( \
                 SELECT id FROM replays WHERE status IN ('queued', 'running') \
                     AND lease_until_us <= ?3 ORDER BY created_us LIMIT 1) \
             RETURNING {REPLAY_FIELDS}"
        ))
        .bind(owner)
        .bind(leased_until.timestamp_micros())
        .bind(now.timestamp_micros())
        .fetch_optional(&self.db().writer)
        .await?;
        row.map(ReplayRow::decode).transpose()
    }

    async fn advance_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        jobs: &[NewDelivery],
        leased_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db().writer.begin().await?;
        let held = sqlx::query(
            "UPDATE replays SET cursor = ?, matched = ?, replayed = ?, deliveries = ?, \
                 lease_until_us = ?, updated_us = ? \
             WHERE id = ? AND owner = ? AND status = 'running'",
        )
        .bind(progress.cursor)
        .bind(stored_count(progress.matched))
        .bind(stored_count(progress.replayed))
        .bind(stored_count(progress.deliveries))
        .bind(leased_until.timestamp_micros())
        .bind(Utc::now().timestamp_micros())
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
    }

    async fn finish_replay(
        &self,
        id: &str,
        owner: &str,
        progress: &ReplayProgress,
        status: ReplayStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_micros();
        let finished = sqlx::query(
            "UPDATE replays SET status = ?, error = ?, cursor = ?, matched = ?, replayed = ?, \
                 deliveries = ?, owner = NULL, updated_us = ?, finished_us = ? \
             WHERE id = ? AND owner = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(progress.cursor)
        .bind(stored_count(progress.matched))
        .bind(stored_count(progress.replayed))
        .bind(stored_count(progress.deliveries))
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.db().writer)
        .await?;
        Ok(finished.rows_affected() == 1)
    }

    async fn cancel_replay(&self, id: &str) -> Result<Option<Replay>, StoreError> {
        let now = Utc::now().timestamp_micros();
        let mut tx = self.db().writer.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE replays SET status = 'cancelled', owner = NULL, updated_us = ?1, \
                 finished_us = ?1 \
             WHERE id = ?2 AND status IN ('queued', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if cancelled.rows_affected() == 1 {
            delivery_tx::drop_unsent_replay_jobs(&mut *tx, id).await?;
        }
        let row: Option<ReplayRow> =
            sqlx::query_as(&format!("SELECT {REPLAY_FIELDS} FROM replays WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        row.map(ReplayRow::decode).transpose()
    }
}
