//! The embedded SQLite file: committed pages are copied into the file by the checkpointer while
//! the writer's own automatic checkpoint is far from due.

use std::path::Path;
use std::time::Duration;

use eventflow::sqlite::SqliteDb;

mod common;
use common::eventually;

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
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
    // 1,000 commits of 1 KB each: one or two WAL pages each, far below the writer's own threshold
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
    let copied = eventually(Duration::from_secs(5), || {
        let path = path.clone();
        async move { file_len(&path) >= 1_000_000 }
    })
    .await;
    assert!(
        copied,
        "the file holds {} bytes, the WAL {} bytes",
        file_len(&path),
        file_len(&dir.path().join("busy.db-wal"))
    );
    db.close().await;
}
