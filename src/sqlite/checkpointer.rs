//! The WAL checkpointer: copies committed pages from the write-ahead log into the database file
//! on a connection of its own, so that no commit waits for it.
//!
//! By default SQLite checkpoints inside the commit that grows the WAL past 1,000 pages. That
//! commit then waits for the copy and its two fsyncs (about 5 ms on the benchmark machine, six
//! times a second at 200 events/s), and every write queued behind the single writer waits with
//! it: that was the POST-to-webhook p99 (BENCHMARKS.md, 2026-12-07 night). A PASSIVE checkpoint
//! never takes the write lock, so here one runs every [`CHECKPOINT_INTERVAL`] beside the writer,
//! and commits go on while it copies. Under a load that fills the WAL faster, the next one
//! starts as soon as the last ends. The writer keeps an automatic checkpoint at
//! [`WRITER_CHECKPOINT_PAGES`] only as a backstop, should this task be starved or gone.
//!
//! The alternative, SQLite's WAL hook (checkpoint once N pages are written), needs the raw
//! connection handle and `unsafe`; a timer bounds the WAL as well, since the WAL can only grow
//! as fast as the writer commits.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

/// The pause between two checkpoints at an ordinary load: at 1,000 events/s (about 30 pages
/// each) some 6,000 pages accumulate in it.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// WAL size (in pages) from which the next checkpoint follows the last without a pause: a
/// quarter of the writer's backstop, so that a saturating load stays clear of it.
const BUSY_WAL_PAGES: i64 = WRITER_CHECKPOINT_PAGES as i64 / 4;

/// WAL size (in pages) at which the writer checkpoints inside a commit after all: far above what
/// accumulates between two of this task's checkpoints, so it happens only if they stop.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 32_768;

/// Runs passive checkpoints on `pool` until `stop` is cancelled or the pool is closed.
pub(super) fn spawn(pool: SqlitePool, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            let started = tokio::time::Instant::now();
            let outcome: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await;
            let wal_pages = match outcome {
                Ok((_, wal_pages, copied_pages)) => {
                    tracing::trace!(
                        wal_pages,
                        copied_pages,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "WAL checkpoint"
                    );
                    wal_pages
                }
                Err(_) if pool.is_closed() => break,
                Err(err) => {
                    tracing::warn!(error = %err, "WAL checkpoint failed; the next one retries");
                    0
                }
            };
            pause = if wal_pages >= BUSY_WAL_PAGES {
                Duration::ZERO
            } else {
                CHECKPOINT_INTERVAL
            };
        }
        pool.close().await;
    });
}
