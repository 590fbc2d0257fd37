//! The embedded SQLite file: pages of 1 KiB in a new file, a file made with another page size
//! kept as it is, and committed pages copied into the file by the checkpointer while the writer's
//! own automatic checkpoint is far from due.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use eventflow::sqlite::SqliteDb;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

async fn page_size(db: &SqliteDb) -> i64 {
    let (size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&db.writer)
        .await
        .unwrap();
    size
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn a_new_file_gets_pages_of_one_kib() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&format!("sqlite://{}/new.db", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(page_size(&db).await, 1024);
    db.close().await;
}

#[tokio::test]
async fn a_file_made_with_four_kib_pages_keeps_them_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db", dir.path().display());
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .page_size(4096)
        .journal_mode(SqliteJournalMode::Wal);
    let old = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE made_before (n INTEGER)")
        .execute(&old)
        .await
        .unwrap();
    old.close().await;

    let db = SqliteDb::open(&url).await.unwrap();
    assert_eq!(page_size(&db).await, 4096);
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(events, 0, "the schema was brought up to date");
    db.close().await;
}

#[tokio::test]
async fn committed_pages_reach_the_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let db = SqliteDb::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE filler (n INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&db.writer)
        .await
        .unwrap();
    // 1,000 commits of 1 KB each: about 2,000 WAL pages, far below the writer's own threshold
    // (32,768), so only the checkpointer can copy them into the file.
    let body = "x".repeat(1000);
    for n in 0..1000 {
        sqlx::query("INSERT INTO filler (n, body) VALUES (?, ?)")
            .bind(n)
            .bind(&body)
            .execute(&db.writer)
            .await
            .unwrap();
    }
    let mut copied = false;
    for _ in 0..250 {
        copied = file_len(&path) >= 1_000_000;
        if copied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        copied,
        "the file holds {} bytes, the WAL {} bytes",
        file_len(&path),
        file_len(&dir.path().join("busy.db-wal"))
    );
    db.close().await;
}
