//! The real binary under load: SIGKILL loses no acknowledged event, the outbox publishes what
//! the crash left behind, and SIGTERM drains in-flight requests and exits 0.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventflow::broker::{Broker, EmbeddedBroker};
use eventflow::events::StreamRouter;
use eventflow::sqlite::SqliteDb;
use eventflow::store::{EventStore, SqliteStore};
use serde_json::json;

mod common;
use common::process::Eventflow;
use common::services::free_port;

/// Starts `eventflow serve` on the embedded backends in `dir` and waits until it answers.
async fn start(dir: &Path, port: u16) -> Eventflow {
    // Entries the killed worker left pending are claimed after a second.
    let env = [
        ("DATABASE_URL", "sqlite://eventflow.db"),
        ("CLAIM_IDLE_MS", "1000"),
    ];
    Eventflow::start(dir, port, &["serve"], &env).await
}

/// POSTs events from `connections` tasks until `stop`, collecting the ids acknowledged with 201.
fn flood(
    port: u16,
    connections: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..connections)
        .map(|task| {
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let client = common::http_client();
                let url = format!("http://127.0.0.1:{port}/api/v1/events");
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({"type": "user.login", "source": "crash-test",
                                      "data": {"user_id": format!("u{task}-{n}")},
                                      "metadata": {"partition_key": format!("u{task}")}});
                    match client.post(&url).json(&body).send().await {
                        Ok(response) if response.status() == 201 => {
                            let event: serde_json::Value =
                                response.json().await.unwrap_or_default();
                            if let Some(id) = event["id"].as_str() {
                                acked.lock().unwrap().push(id.to_string());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            })
        })
        .collect()
}

async fn assert_all_stored(port: u16, ids: &[String]) {
    let client = common::http_client();
    for id in ids {
        let response = client
            .get(format!("http://127.0.0.1:{port}/api/v1/events/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged event {id} is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_to_sigkill_or_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();

    // Phase 1: flood, then SIGKILL mid-stream.
    let mut server = start(dir.path(), port).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = flood(port, 16, stop.clone(), acked.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let killed_acked = acked.lock().unwrap().clone();
    assert!(
        killed_acked.len() > 100,
        "only {} events acknowledged before the kill",
        killed_acked.len()
    );

    // Phase 2: restart; every acknowledged event is there and the outbox publishes the rest.
    let mut server = start(dir.path(), port).await;
    assert_all_stored(port, &killed_acked).await;
    let db = SqliteDb::open(&format!("sqlite://{}/eventflow.db", dir.path().display()))
        .await
        .unwrap();
    let store = SqliteStore::new(db.clone());
    let broker = EmbeddedBroker::new(db);
    let streams = StreamRouter::new("events:default").all_streams();
    let mut backlog = (0, 0, 0);
    for _ in 0..600 {
        backlog = (store.unpublished(1).await.unwrap().len() as u64, 0, 0);
        for stream in &streams {
            backlog.1 += broker.lag("eventflow-workers", stream).await.unwrap();
            backlog.2 += broker.pending("eventflow-workers", stream).await.unwrap();
        }
        if backlog == (0, 0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        backlog,
        (0, 0, 0),
        "(unpublished, undelivered, unacknowledged) after the restart"
    );
    assert!(broker.stream_len("events:user").await.unwrap() >= killed_acked.len() as u64);

    // Phase 3: flood, then SIGTERM: the process drains and exits 0.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = flood(port, 16, stop.clone(), acked.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.signal("TERM");
    let status = server
        .exit_status(Duration::from_secs(20))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "graceful shutdown exit status: {status}");
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let termed_acked = acked.lock().unwrap().clone();
    assert!(!termed_acked.is_empty());

    let _server = start(dir.path(), port).await;
    assert_all_stored(port, &termed_acked).await;
}
