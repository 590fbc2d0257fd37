//! Operational events through the public surface: a subscription to `eventflow.*` receives what
//! happens to the other subscriptions (breaker opened and closed, dead letters, recovery,
//! disables by a 410 or an operator, a replay's end, the dead-letter queue past its threshold),
//! each once; what happens while delivering an operational event is never reported; producers
//! cannot send `eventflow.` types. The last test runs two worker processes on PostgreSQL and
//! Redis.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::ordered::subscribe_to;
use common::receiver::{Mode, Receiver};
use common::{Api, TestServer, eventually, user_created};
use serde_json::{Value, json};

/// The operational events `receiver` got, in arrival order, as (type, data).
fn operational(receiver: &Receiver) -> Vec<(String, Value)> {
    receiver
        .received()
        .iter()
        .map(|request| {
            let event = request.json();
            (
                event["type"].as_str().unwrap_or_default().to_string(),
                event["data"].clone(),
            )
        })
        .collect()
}

/// How many of `events` have `event_type`.
fn count(events: &[(String, Value)], event_type: &str) -> usize {
    events.iter().filter(|(t, _)| t == event_type).count()
}

/// The data of the first of `events` with `event_type`.
fn data_of<'a>(events: &'a [(String, Value)], event_type: &str) -> &'a Value {
    events
        .iter()
        .find(|(t, _)| t == event_type)
        .map(|(_, data)| data)
        .unwrap_or_else(|| panic!("no {event_type} in {events:?}"))
}

/// Waits until `receiver` has got exactly `expected` operational events of each type listed.
async fn wait_for(receiver: &Receiver, expected: &[(&str, usize)]) {
    let reported = || async {
        let got = operational(receiver);
        expected.iter().all(|(t, n)| count(&got, t) == *n)
    };
    assert!(
        eventually(Duration::from_secs(20), reported).await,
        "expected {expected:?}, got {:?}",
        operational(receiver)
    );
}

/// The events stored in `events:eventflow`.
async fn stored_operational(api: &Api) -> Vec<Value> {
    let (status, page) = api
        .call(
            "GET",
            "/api/v1/events?stream=events:eventflow&limit=100",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_reported_from_breaker_to_recovery() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "0"),
            ("BREAKER_FAILURE_THRESHOLD", "2"),
            ("BREAKER_RECOVERY_TIMEOUT", "1"),
            ("BREAKER_HALF_OPEN_MAX_CALLS", "1"),
            ("DLQ_ALERT_THRESHOLD", "1"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    let api = server.api();
    let operations = Receiver::start(Mode::Accept).await;
    subscribe_to(&api, "eventflow.*", &operations, json!({})).await;
    // `*` is every producer's event, not EventFlow's own.
    let everything = Receiver::start(Mode::Accept).await;
    subscribe_to(&api, "*", &everything, json!({})).await;
    let endpoint = Receiver::start(Mode::Fail(500)).await;
    let failing = subscribe_to(&api, "user.*", &endpoint, json!({})).await;

    // Two failures open the breaker; each failure is final (no retries): two dead letters.
    for n in 0..2 {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/events",
                Some(&user_created(&format!("u{n}"))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert!(eventually(Duration::from_secs(10), || async { endpoint.count() > n }).await);
    }
    wait_for(
        &operations,
        &[
            ("eventflow.subscription.breaker_opened", 1),
            ("eventflow.delivery.dead_lettered", 2),
            ("eventflow.dlq.threshold_exceeded", 1),
        ],
    )
    .await;

    // The endpoint is back: the trial delivery succeeds, closes the breaker and recovers.
    endpoint.set(Mode::Accept);
    let (status, _) = api
        .call("POST", "/api/v1/events", Some(&user_created("u2")))
        .await;
    assert_eq!(status, 201);
    wait_for(
        &operations,
        &[
            ("eventflow.subscription.breaker_closed", 1),
            ("eventflow.delivery.recovered", 1),
        ],
    )
    .await;

    let got = operational(&operations);
    assert_eq!(everything.count(), 3, "{:?}", operational(&everything));
    for (event_type, data) in &got {
        if event_type != "eventflow.dlq.threshold_exceeded" {
            assert_eq!(data["subscription"]["id"], failing, "{event_type}: {data}");
            assert_eq!(data["subscription"]["url"], endpoint.url.as_str());
        }
    }
    let letter = data_of(&got, "eventflow.delivery.dead_lettered");
    assert_eq!(letter["status_code"], 500);
    assert_eq!(letter["event_type"], "user.created");
    assert_eq!(letter["attempts"], 1);
    let recovery = data_of(&got, "eventflow.delivery.recovered");
    assert_eq!(recovery["failed_attempts"], 2, "{recovery}");
    let over = data_of(&got, "eventflow.dlq.threshold_exceeded");
    assert_eq!(over["threshold"], 1);
    assert!(over["dead_letters"].as_u64().unwrap() >= 2, "{over}");

    // They are events like any other: stored in their stream, with EventFlow as their source.
    let stored = stored_operational(&api).await;
    assert_eq!(stored.len(), got.len(), "{stored:?}");
    assert!(stored.iter().all(|event| event["source"] == "eventflow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disables_and_replays_are_reported_and_producers_cannot_send_eventflow_types() {
    let server =
        TestServer::start_with(&[("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")], Vec::new()).await;
    let api = server.api();
    let operations = Receiver::start(Mode::Accept).await;
    subscribe_to(&api, "eventflow.*", &operations, json!({})).await;
    let endpoint = Receiver::start(Mode::Accept).await;
    let subscription = subscribe_to(&api, "user.*", &endpoint, json!({})).await;

    let forged = json!({"type": "eventflow.subscription.disabled", "source": "me", "data": {}});
    let (status, problem) = api.call("POST", "/api/v1/events", Some(&forged)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/type", "{problem}");

    let (status, _) = api
        .call("POST", "/api/v1/events", Some(&user_created("u1")))
        .await;
    assert_eq!(status, 201);
    assert!(eventually(Duration::from_secs(10), || async { endpoint.count() == 1 }).await);
    let now = chrono::Utc::now();
    let replay = json!({"stream": "events:user", "subscription_id": subscription,
                        "start_time": (now - chrono::Duration::minutes(5)).to_rfc3339(),
                        "end_time": (now + chrono::Duration::seconds(1)).to_rfc3339()});
    let (status, body) = api
        .call("POST", "/api/v1/events/replay", Some(&replay))
        .await;
    assert_eq!(status, 202, "{body}");
    let replay_id = body["id"].as_str().unwrap().to_string();

    let path = format!("/api/v1/subscriptions/{subscription}");
    let (status, body) = api
        .call("PATCH", &path, Some(&json!({"enabled": false})))
        .await;
    assert_eq!(status, 200, "{body}");
    // Disabling what is already disabled is no new happening.
    let (status, _) = api
        .call("PATCH", &path, Some(&json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);

    wait_for(
        &operations,
        &[
            ("eventflow.subscription.disabled", 1),
            ("eventflow.replay.completed", 1),
        ],
    )
    .await;
    let got = operational(&operations);
    let disabled = data_of(&got, "eventflow.subscription.disabled");
    assert_eq!(disabled["disabled_by"], "operator");
    assert_eq!(disabled["subscription"]["id"], subscription);
    let completed = data_of(&got, "eventflow.replay.completed");
    assert_eq!(completed["replay"]["id"], replay_id);
    assert_eq!(completed["replay"]["matched"], 1, "{completed}");
    assert_eq!(completed["subscription"]["id"], subscription);
    // The operations subscription filters like any other: on the subject, the subscription.
    let event = operations.received()[0].json();
    assert!(event["subject"].is_string(), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_delivering_operational_events_report_nothing() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "0"),
            ("BREAKER_FAILURE_THRESHOLD", "1"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    let api = server.api();
    // The operations endpoint is gone: its first delivery disables it and is dead-lettered.
    let operations = Receiver::start(Mode::Fail(410)).await;
    let ops = subscribe_to(&api, "eventflow.*", &operations, json!({})).await;
    let endpoint = Receiver::start(Mode::Fail(410)).await;
    let gone = subscribe_to(&api, "user.*", &endpoint, json!({})).await;

    let (status, _) = api
        .call("POST", "/api/v1/events", Some(&user_created("u1")))
        .await;
    assert_eq!(status, 201);
    let both_disabled = || async {
        let mut disabled = 0;
        for id in [&ops, &gone] {
            let (_, subscription) = api
                .call("GET", &format!("/api/v1/subscriptions/{id}"), None)
                .await;
            disabled += usize::from(subscription["enabled"] == false);
        }
        disabled == 2
    };
    assert!(eventually(Duration::from_secs(15), both_disabled).await);
    // Give a loop time to show itself.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let stored = stored_operational(&api).await;
    let types: Vec<&str> = stored
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default())
        .collect();
    // About the user subscription: its disable, breaker and dead letter. About the operations
    // subscription, whose own deliveries failed the same way: nothing.
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "eventflow.subscription.disabled")
            .count(),
        1,
        "{types:?}"
    );
    assert!(
        stored
            .iter()
            .all(|event| event["data"]["subscription"]["id"] == gone.as_str()),
        "{stored:?}"
    );
    // Its deliveries under way when the first 410 came back were made; none after.
    let made = operations.count();
    assert!(
        (1..=3).contains(&made),
        "{made} deliveries to the operations endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL + Redis: see README, Tests"]
async fn a_410_is_reported_once_with_two_worker_processes() {
    let cluster = Cluster::start(&[]).await;
    let api = &cluster.api;
    let operations = Receiver::start(Mode::Accept).await;
    subscribe_to(api, "eventflow.*", &operations, json!({})).await;
    // The endpoint answers slowly, so that both workers have requests to it under way when
    // the first 410 comes back.
    let endpoint =
        Receiver::scripted(std::sync::Arc::new(|_| (410, Duration::from_millis(300)))).await;
    let gone = subscribe_to(api, "user.*", &endpoint, json!({})).await;
    Cluster::settle().await;

    let batch: Vec<Value> = (0..40).map(|n| user_created(&format!("u{n}"))).collect();
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&json!({"events": batch})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let disabled = || async {
        let (_, subscription) = api
            .call("GET", &format!("/api/v1/subscriptions/{gone}"), None)
            .await;
        subscription["enabled"] == false
    };
    assert!(eventually(Duration::from_secs(20), disabled).await);
    wait_for(&operations, &[("eventflow.subscription.disabled", 1)]).await;
    // Both workers got 410s; stragglers would arrive within a few seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(endpoint.count() >= 2, "both workers called the endpoint");
    let got = operational(&operations);
    assert_eq!(count(&got, "eventflow.subscription.disabled"), 1, "{got:?}");
    let data = data_of(&got, "eventflow.subscription.disabled");
    assert_eq!(data["disabled_by"], "endpoint");
    assert_eq!(data["subscription"]["id"], gone);
    assert_eq!(data["reason"], "the endpoint answered 410 Gone");
}
