//! Distributed mode under failure, with real servers: PostgreSQL cut off and restored, a Redis
//! killed and restarted, a worker process killed mid-stream. Ignored unless included: they need
//! the test services (see `common::services`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::process::Eventflow;
use common::proxy::Proxy;
use common::services::{self, PrivateRedis, free_port};
use common::{TestServer, eventually, user_created};

/// The consumer group of the workers (the default).
const GROUP: &str = "eventflow-workers";

/// `url` with its `host:port` replaced by `address`.
fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, rest) = rest.split_once('@').map_or(("", rest), |(u, r)| (u, r));
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("{scheme}://{user}{address}{path}")
}

/// The socket address of the server `url` names.
async fn address_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolvable host")
        .next()
        .expect("an address")
}

/// A PostgreSQL schema and a private Redis keeping its data in `dir`.
async fn services_in(dir: &std::path::Path) -> (String, PrivateRedis) {
    (
        services::postgres_url().await,
        PrivateRedis::start(dir).await,
    )
}

fn batch(prefix: &str, count: usize) -> Value {
    let events: Vec<Value> = (0..count)
        .map(|n| user_created(&format!("{prefix}-{n}")))
        .collect();
    json!({ "events": events })
}

/// A connection to inspect Redis as the test sees it.
async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The event ids on `stream`.
async fn stream_event_ids(url: &str, stream: &str) -> HashSet<String> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis_conn(url).await)
        .await
        .unwrap_or_default();
    reply
        .ids
        .iter()
        .filter_map(|entry| entry.get::<String>("event_id"))
        .collect()
}

/// Waits up to 30 s for `events:user` to hold exactly the events `ids`.
async fn all_on_stream(url: &str, ids: &HashSet<String>) -> bool {
    eventually(Duration::from_secs(30), || async {
        stream_event_ids(url, "events:user").await == *ids
    })
    .await
}

/// (lag, pending) of the workers' group on `stream`.
async fn group_backlog(url: &str, stream: &str) -> Option<(usize, usize)> {
    let reply: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut redis_conn(url).await)
        .await
        .ok()?;
    let group = reply.groups.into_iter().find(|g| g.name == GROUP)?;
    Some((group.lag.unwrap_or(usize::MAX), group.pending))
}

/// How many events the workers' group has recorded as processed.
async fn processed_count(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM processed_events WHERE consumer_group = $1")
            .bind(GROUP)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    count
}

async fn post_created(client: &reqwest::Client, port: u16, user: &str) -> String {
    let response = client
        .post(format!("http://127.0.0.1:{port}/api/v1/events"))
        .json(&user_created(user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{user}");
    let event: Value = response.json().await.unwrap();
    event["id"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs PostgreSQL + Redis: see README, Tests"]
async fn store_outage_answers_503_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (postgres, redis) = services_in(dir.path()).await;
    let mut proxy = Proxy::start(address_of(&postgres).await).await;
    let through_proxy = with_address(&postgres, &format!("127.0.0.1:{}", proxy.port));
    // The store is down from the start: the process still starts, and serves 503s.
    proxy.cut();
    let redis_url = redis.url();
    let server = TestServer::start_with(
        &[("DATABASE_URL", &through_proxy), ("REDIS_URL", &redis_url)],
        Vec::new(),
    )
    .await;

    for round in 0..2 {
        let response = server
            .post_json("/api/v1/events", &user_created("u1"))
            .await;
        assert_eq!(response.status(), 503, "round {round}");
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let (status, readiness) = server.get_json("/health/ready").await;
        assert_eq!(status, 503, "{readiness}");
        assert_eq!(readiness["store"]["status"], "down");
        let (status, _) = server.get_json("/api/v1/events?limit=1").await;
        assert_eq!(status, 503);

        proxy.restore().await;
        let recovered = eventually(Duration::from_secs(20), || async {
            server
                .post_json("/api/v1/events", &user_created("u2"))
                .await
                .status()
                == 201
        })
        .await;
        assert!(recovered, "round {round}: writes recover without a restart");
        let (status, readiness) = server.get_json("/health/ready").await;
        assert_eq!(status, 200, "{readiness}");
        proxy.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_ingesting_and_publishes_everything_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (postgres, mut redis) = services_in(dir.path()).await;
    let port = free_port();
    let redis_url = redis.url();
    let env = [
        ("DATABASE_URL", postgres.as_str()),
        ("REDIS_URL", redis_url.as_str()),
        ("CLAIM_IDLE_MS", "1000"),
    ];
    let _api = Eventflow::start(dir.path(), port, &["serve", "--no-worker"], &env).await;
    let worker_port = free_port();
    let _worker = Eventflow::start(dir.path(), worker_port, &["worker", "start"], &env).await;
    let client = common::http_client();
    let readiness = |port: u16| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://127.0.0.1:{port}/health/ready"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let mut ids = HashSet::new();
    for n in 0..20 {
        ids.insert(post_created(&client, port, &format!("before-{n}")).await);
    }

    redis.kill();
    for n in 0..20 {
        ids.insert(post_created(&client, port, &format!("during-{n}")).await);
    }
    let (status, ready) = readiness(port).await;
    assert_eq!(status, 200, "the API stays ready: {ready}");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["broker"]["status"], "down", "{ready}");
    let (status, ready) = readiness(worker_port).await;
    assert_eq!(
        status, 503,
        "a worker without its broker is not ready: {ready}"
    );

    redis.restart().await;
    let published = all_on_stream(&redis_url, &ids).await;
    assert!(
        published,
        "every stored event reaches the stream once Redis is back"
    );

    // The worker reconnects by itself.
    let drained = eventually(Duration::from_secs(30), || async {
        group_backlog(&redis_url, "events:user").await == Some((0, 0))
            && processed_count(&postgres).await == ids.len() as i64
    })
    .await;
    assert!(drained, "the worker processes every event");
    assert_eq!(readiness(worker_port).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_neither_stalls_ingestion_nor_loses_events() {
    let dir = tempfile::tempdir().unwrap();
    let (postgres, redis) = services_in(dir.path()).await;
    let redis_url = redis.url();
    let server = TestServer::start_with(
        &[("DATABASE_URL", &postgres), ("REDIS_URL", &redis_url)],
        Vec::new(),
    )
    .await;
    redis.freeze();
    let mut ids = HashSet::new();
    for n in 0..10 {
        let started = tokio::time::Instant::now();
        let response = server
            .post_json("/api/v1/events", &user_created(&format!("hung-{n}")))
            .await;
        assert_eq!(response.status(), 201);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ingestion waited for Redis: {:?}",
            started.elapsed()
        );
        let event: Value = response.json().await.unwrap();
        ids.insert(event["id"].as_str().unwrap().to_string());
    }
    let (status, readiness) = server.get_json("/health/ready").await;
    assert_eq!(status, 503, "this process runs a worker: {readiness}");
    assert_eq!(readiness["broker"]["status"], "down");

    redis.thaw();
    let published = all_on_stream(&redis_url, &ids).await;
    assert!(
        published,
        "every event reaches the stream once Redis answers again"
    );
    let drained = eventually(Duration::from_secs(30), || async {
        group_backlog(&redis_url, "events:user").await == Some((0, 0))
    })
    .await;
    assert!(drained, "the worker carries on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (postgres, redis) = services_in(dir.path()).await;
    let port = free_port();
    let redis_url = redis.url();
    let env = [
        ("DATABASE_URL", postgres.as_str()),
        ("REDIS_URL", redis_url.as_str()),
        ("CLAIM_IDLE_MS", "1000"),
    ];
    let _api = Eventflow::start(dir.path(), port, &["serve", "--no-worker"], &env).await;
    let mut doomed = Eventflow::spawn(dir.path(), &["worker", "start"], &env);
    let _survivors = [
        Eventflow::spawn(dir.path(), &["worker", "start"], &env),
        Eventflow::spawn(dir.path(), &["worker", "start"], &env),
    ];
    let doomed_name = format!("-{}-", doomed.pid());

    // Stream events until the doomed worker holds some unacknowledged, then kill it.
    let client = common::http_client();
    let mut conn = redis_conn(&redis_url).await;
    let mut posted = 0;
    let mut killed_holding = 0;
    for round in 0..200 {
        let response = client
            .post(format!("http://127.0.0.1:{port}/api/v1/events/batch"))
            .json(&batch(&format!("r{round}"), 100))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        posted += 100;
        for _ in 0..20 {
            let consumers: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg("events:user")
                .arg(GROUP)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            killed_holding = consumers
                .consumers
                .iter()
                .filter(|c| c.name.contains(&doomed_name))
                .map(|c| c.pending)
                .sum();
            if killed_holding > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if killed_holding > 0 {
            doomed.kill();
            break;
        }
    }
    assert!(killed_holding > 0, "the doomed worker never held entries");

    let drained = eventually(Duration::from_secs(60), || async {
        group_backlog(&redis_url, "events:user").await == Some((0, 0))
            && processed_count(&postgres).await == posted
    })
    .await;
    assert!(
        drained,
        "{killed_holding} entries held by the killed worker were claimed; {} of {posted} processed",
        processed_count(&postgres).await
    );
}
