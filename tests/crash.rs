//! The real binary under load: SIGKILL loses no acknowledged event, the outbox publishes what
//! the crash left behind, and SIGTERM drains in-flight requests and exits 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventflow::broker::{Broker, EmbeddedBroker};
use eventflow::events::StreamRouter;
use eventflow::sqlite::SqliteDb;
use eventflow::store::{EventStore, SqliteStore};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process that is killed when dropped, so a failing test leaves nothing running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts `eventflow serve` in `dir` and waits until it answers.
async fn start(dir: &Path, port: u16) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .arg("serve")
        .current_dir(dir)
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", "sqlite://eventflow.db")
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        // Entries the killed worker left pending are claimed after a second.
        .env("CLAIM_IDLE_MS", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("eventflow starts");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/health/live"))
            .send()
            .await
            .is_ok()
        {
            return Server(child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().ok();
    child.wait().ok();
    panic!("eventflow did not come up on port {port}");
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
                let client = reqwest::Client::new();
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

async fn exit_status(server: &mut Server, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn assert_all_stored(port: u16, ids: &[String]) {
    let client = reqwest::Client::new();
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
    server.0.kill().unwrap();
    server.0.wait().unwrap();
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
    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = exit_status(&mut server, Duration::from_secs(20))
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
