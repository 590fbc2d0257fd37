//! A PostgreSQL server that another application has filled to `max_connections` costs EventFlow
//! throughput, never seconds of silence: EventFlow works on with the connections it holds.
//!
//! This binary holds every free connection slot of the shared server while it runs, so it has a
//! single test and no other test binary runs beside it (`cargo test` runs binaries one at a time).

mod common;

use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::services::{self, PrivateRedis};
use common::{TestServer, eventually};
use serde_json::json;
use sqlx::Connection;
use tokio::time::Instant;

/// Events sent while the server is full.
const EVENTS: usize = 400;
/// Producers posting at once.
const PRODUCERS: usize = 8;
/// The longest a POST, or a pause between two receipts, may take while the server is full.
const LONGEST_SILENCE: Duration = Duration::from_secs(1);
/// Most connections the filler opens, whatever the server's `max_connections`.
const MOST_FILLER_CONNECTIONS: usize = 1000;

/// The type of every event sent.
const EVENT_TYPE: &str = "saturation.tick";

/// The `n`th event sent.
fn tick(n: usize) -> serde_json::Value {
    json!({"type": EVENT_TYPE, "source": "saturation-test", "data": {"n": n}})
}

/// The connections EventFlow holds now (its `application_name`).
async fn eventflow_connections(admin: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'eventflow'")
        .fetch_one(admin)
        .await
        .expect("count EventFlow's connections")
}

/// Opens connections to `url` until the server refuses one for want of slots.
async fn fill(url: &str) -> Vec<sqlx::PgConnection> {
    let mut held = Vec::new();
    while held.len() < MOST_FILLER_CONNECTIONS {
        match sqlx::PgConnection::connect(url).await {
            Ok(conn) => held.push(conn),
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("53300") => {
                return held;
            }
            Err(err) => panic!("unexpected error while filling the server: {err}"),
        }
    }
    panic!("the server took {MOST_FILLER_CONNECTIONS} connections without refusing one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgres_costs_throughput_not_seconds_of_silence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = PrivateRedis::start(dir.path()).await;
    let database_url = services::postgres_url().await;
    let redis_url = redis.url();
    let server = TestServer::start_with(
        &[
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis_url),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &[EVENT_TYPE]).await;
    let (status, answer) = server.call("POST", "/api/v1/events", Some(&tick(0))).await;
    assert_eq!(status, 201, "{answer}");
    assert!(
        eventually(Duration::from_secs(20), || async { receiver.count() == 1 }).await,
        "the first event is delivered"
    );

    // EventFlow opens its pool as it starts; the other application then takes every slot left.
    let mut admin = sqlx::PgConnection::connect(&database_url)
        .await
        .expect("connect");
    let mut held = 0;
    for _ in 0..100 {
        let now = eventflow_connections(&mut admin).await;
        if now > 0 && now == held {
            break;
        }
        held = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.close().await.ok();
    let filler = fill(&database_url).await;
    assert!(!filler.is_empty(), "the filler took the free slots");

    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for producer in 0..PRODUCERS {
        let api = server.api();
        producers.spawn(async move {
            let mut slowest = Duration::ZERO;
            for n in (producer..EVENTS).step_by(PRODUCERS) {
                let body = tick(n + 1);
                let sent = Instant::now();
                let (status, answer) = api.call("POST", "/api/v1/events", Some(&body)).await;
                assert_eq!(status, 201, "POST {n} while the server is full: {answer}");
                slowest = slowest.max(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slowest
        });
    }
    let mut slowest_post = Duration::ZERO;
    while let Some(slowest) = producers.join_next().await {
        slowest_post = slowest_post.max(slowest.expect("a producer finishes"));
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            receiver.count() == EVENTS + 1
        })
        .await,
        "every event is delivered while the server is full: {} of {}",
        receiver.count() - 1,
        EVENTS
    );
    // The longest pause between two receipts (or from the start to the first) is the silence a
    // receiver saw.
    let mut arrivals: Vec<Instant> = receiver
        .received()
        .iter()
        .map(|received| received.at)
        .filter(|at| *at >= started)
        .collect();
    arrivals.sort();
    let longest_pause = std::iter::once(started)
        .chain(arrivals.iter().copied())
        .zip(arrivals.iter().copied())
        .map(|(before, after)| after - before)
        .max()
        .unwrap_or_default();
    let taken = filler.len();
    drop(filler);

    println!(
        "EventFlow held {held} connections; the filler took {taken}; slowest POST \
         {slowest_post:?}, longest pause between receipts {longest_pause:?}"
    );
    assert!(
        slowest_post < LONGEST_SILENCE,
        "a POST took {slowest_post:?} while the server was full"
    );
    assert!(
        longest_pause < LONGEST_SILENCE,
        "the receiver heard nothing for {longest_pause:?} while the server was full"
    );
}
