//! The embedded SQLite file shared by the event store and the embedded broker.
//!
//! SQLite admits one writer at a time; a single writer connection lets writes queue in the pool
//! instead of spinning on the file lock, while a pool of read-only connections serves queries
//! concurrently (WAL mode). A third connection moves the WAL into the file
//! (`sqlite/checkpointer.rs`).

mod checkpointer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Read-only connections kept for queries.
const READERS: u32 = 4;

/// True for SQLITE_BUSY and its extended codes: another process held the write lock longer
/// than the busy timeout, which is worth retrying.
pub fn is_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// Handles to one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// The single connection that writes.
    pub writer: SqlitePool,
    /// Read-only connections for queries.
    pub reader: SqlitePool,
    /// The checkpointer's connection, closed first on [`SqliteDb::close`].
    checkpointer: SqlitePool,
    /// Stops the checkpointer when the last handle is dropped without a close.
    _checkpointer_stop: Arc<DropGuard>,
}

/// A pool of `connections` to the embedded file. Its connections cannot go stale, so none is
/// pinged before use.
fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
}

impl SqliteDb {
    /// Opens (creating if needed) the file named by a `sqlite://PATH` URL and brings its schema up
    /// to date.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        // WAL with synchronous=NORMAL survives a process crash (kill -9) without losing commits.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let writer = pool_options(1)
            .connect_with(options.clone().pragma(
                "wal_autocheckpoint",
                checkpointer::WRITER_CHECKPOINT_PAGES.to_string(),
            ))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = pool_options(READERS)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = pool_options(1).connect_with(options).await?;
        let stop = CancellationToken::new();
        checkpointer::spawn(checkpointer.clone(), stop.clone());
        Ok(Self {
            writer,
            reader,
            checkpointer,
            _checkpointer_stop: Arc::new(stop.drop_guard()),
        })
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}
