//! Retention through the CLI and the background task: events stored longer ago than
//! RETENTION_DAYS go, with what refers to them; recent ones stay (whatever their own time);
//! `--dry-run` only counts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestServer, eventually};
use eventflow::sqlite::SqliteDb;
use serde_json::json;

/// Posts an event with the given id, whose own time is `days_ago` days back.
async fn post_dated(server: &TestServer, id: &str, days_ago: i64) {
    let time = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let event = json!({"id": id, "type": "audit.logged", "source": "tests", "time": time.to_rfc3339(),
                       "data": {"n": 1}});
    let response = server.post_json("/api/v1/events", &event).await;
    assert_eq!(response.status(), 201);
}

/// Makes the events `ids` of the stopped server's SQLite file look stored `days_ago` days back,
/// as if that much time had passed.
async fn age(server: &TestServer, ids: &[&str], days_ago: i64) {
    let stored = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let db = SqliteDb::open(&server.database_url).await.unwrap();
    for id in ids {
        sqlx::query("UPDATE events SET stored_us = ? WHERE id = ?")
            .bind(stored.timestamp_micros())
            .bind(id)
            .execute(&db.writer)
            .await
            .unwrap();
    }
    db.close().await;
}

/// Runs `eventflow db prune ARGS` on the test server's store.
fn db_prune(server: &TestServer, retention_days: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .args(["db", "prune"])
        .args(args)
        .env("DATABASE_URL", &server.database_url)
        .env("RETENTION_DAYS", retention_days)
        .env("LOG_LEVEL", "warn")
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn stored(server: &TestServer, id: &str) -> bool {
    server
        .call("GET", &format!("/api/v1/events/{id}"), None)
        .await
        .0
        == 200
}

/// A stopped server on SQLite holding two events stored 40 and 31 days ago, one stored now with
/// a time 400 days back (imported history), and one stored 29 days ago.
async fn aged_server() -> Option<TestServer> {
    if common::distributed() {
        return None;
    }
    let mut server = TestServer::start_with(&[("RETENTION_DAYS", "0")], Vec::new()).await;
    for id in ["old-1", "old-2", "recent"] {
        post_dated(&server, id, 0).await;
    }
    post_dated(&server, "imported", 400).await;
    server.stop().await;
    age(&server, &["old-1"], 40).await;
    age(&server, &["old-2"], 31).await;
    age(&server, &["recent"], 29).await;
    Some(server)
}

#[tokio::test]
async fn db_prune_deletes_what_retention_no_longer_keeps_and_dry_run_only_counts() {
    let Some(mut server) = aged_server().await else {
        return;
    };
    let off = db_prune(&server, "0", &[]);
    assert!(off.contains("nothing to prune"), "{off}");
    let dry = db_prune(&server, "30", &["--dry-run"]);
    assert!(dry.contains("2 events from before"), "{dry}");
    assert!(dry.contains("dry run"), "{dry}");
    let done = db_prune(&server, "30", &[]);
    assert!(done.contains("deleted 2 events"), "{done}");
    let again = db_prune(&server, "30", &[]);
    assert!(again.contains("deleted 0 events"), "{again}");

    server.restart().await;
    assert!(!stored(&server, "old-1").await);
    assert!(!stored(&server, "old-2").await);
    assert!(stored(&server, "recent").await);
    assert!(stored(&server, "imported").await, "kept: stored now");
}

#[tokio::test]
async fn workers_prune_old_events_in_the_background() {
    let Some(mut server) = aged_server().await else {
        return;
    };
    server.config_mut().retention = Some(Duration::from_secs(7 * 86_400));
    server.restart().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !stored(&server, "old-2").await
        })
        .await
    );
    assert!(!stored(&server, "old-1").await);
    assert!(!stored(&server, "recent").await, "29 days is more than 7");
    assert!(stored(&server, "imported").await);
}
