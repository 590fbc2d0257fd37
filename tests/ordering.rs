//! Ordered delivery through the HTTP API, against real receivers on loopback: per-key order at
//! the endpoint with a flaky receiver, blocking per key, a dead-lettered head releasing its key,
//! and what PATCH and the dead-letter queue do to order.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::ordered::{
    FLAKY_RECEIVER_SETTINGS, delivered, flaky, inversions, post_rounds, step, subscribe,
};
use common::receiver::{Mode, Received, Receiver};
use common::{TestServer, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_subscription_sees_every_key_in_order_from_a_flaky_receiver() {
    let server = TestServer::start_with(&FLAKY_RECEIVER_SETTINGS, Vec::new()).await;
    let accepted_ordered = Arc::default();
    let accepted_unordered = Arc::default();
    let ordered = Receiver::scripted(flaky(Arc::clone(&accepted_ordered))).await;
    let unordered = Receiver::scripted(flaky(Arc::clone(&accepted_unordered))).await;
    subscribe(
        &server.api(),
        &ordered,
        json!({"ordering": "partition_key"}),
    )
    .await;
    subscribe(&server.api(), &unordered, json!({})).await;
    let (keys, rounds) = (100, 50);
    post_rounds(&server.api(), keys, rounds).await;

    let all = keys * rounds;
    let complete = |receiver: &Receiver, accepted: &Arc<std::sync::Mutex<HashSet<String>>>| {
        delivered(&receiver.received(), &accepted.lock().unwrap()).len() == all
    };
    assert!(
        eventually(Duration::from_secs(90), || async {
            complete(&ordered, &accepted_ordered) && complete(&unordered, &accepted_unordered)
        })
        .await,
        "ordered: {} of {all}, unordered: {} of {all}",
        delivered(&ordered.received(), &accepted_ordered.lock().unwrap()).len(),
        delivered(&unordered.received(), &accepted_unordered.lock().unwrap()).len(),
    );
    assert_eq!(
        inversions(&ordered.received()),
        0,
        "per-key order at the endpoint"
    );
    // The same traffic without ordering overtakes itself (retries, concurrent requests).
    assert!(inversions(&unordered.received()) > 0);
    let (_, dlq) = server.call("GET", "/api/v1/dlq", None).await;
    assert_eq!(dlq["dead_letters"], json!([]), "{dlq}");
}

#[tokio::test]
async fn a_failing_key_holds_back_only_itself_and_its_dead_head_releases_it() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "2"),
            ("RETRY_BASE_DELAY", "0.3"),
            ("RETRY_MAX_DELAY", "0.3"),
        ],
        Vec::new(),
    )
    .await;
    // Key k0's first event fails until told otherwise; everything else is accepted.
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let receiver = Receiver::scripted({
        let failing = failing.clone();
        Arc::new(move |request: &Received| {
            let fail = step(request) == ("k0".to_string(), 0)
                && failing.load(std::sync::atomic::Ordering::SeqCst);
            (if fail { 500 } else { 204 }, Duration::ZERO)
        })
    })
    .await;
    let id = subscribe(
        &server.api(),
        &receiver,
        json!({"ordering": "partition_key"}),
    )
    .await;
    post_rounds(&server.api(), 3, 3).await;

    let of_key = |key: &str| -> Vec<u64> {
        receiver
            .received()
            .iter()
            .map(step)
            .filter(|(k, _)| k == key)
            .map(|(_, n)| n)
            .collect()
    };
    // The other keys are delivered in full while k0's head is retried.
    assert!(
        eventually(Duration::from_secs(5), || async {
            of_key("k1") == [0, 1, 2] && of_key("k2") == [0, 1, 2]
        })
        .await
    );
    assert!(of_key("k0").iter().all(|n| *n == 0), "{:?}", of_key("k0"));
    let path = format!("/api/v1/subscriptions/{id}");
    let (_, shown) = server.call("GET", &path, None).await;
    assert_eq!(shown["ordering"], "partition_key", "{shown}");
    assert_eq!(shown["ordering_status"]["blocked_keys"], 1, "{shown}");
    assert!(
        shown["ordering_status"]["oldest_blocked_head_age_seconds"]
            .as_f64()
            .unwrap()
            >= 0.0
    );

    // Three attempts (MAX_RETRIES 2), then the dead letter says which key's sequence it broke,
    // and k0 goes on with its next event.
    let dead = eventually(Duration::from_secs(5), || async {
        let (_, dlq) = server.call("GET", "/api/v1/dlq", None).await;
        dlq["dead_letters"].as_array().unwrap().len() == 1
    })
    .await;
    assert!(dead);
    assert!(
        eventually(Duration::from_secs(5), || async {
            of_key("k0") == [0, 0, 0, 1, 2]
        })
        .await,
        "{:?}",
        of_key("k0")
    );
    let (_, dlq) = server.call("GET", "/api/v1/dlq", None).await;
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["ordering_key"], "k0", "{letter}");
    assert_eq!(letter["event"]["data"]["n"], 0, "{letter}");
    let (_, shown) = server.call("GET", &path, None).await;
    assert_eq!(shown["ordering_status"]["blocked_keys"], 0, "{shown}");

    // Retried from the dead-letter queue, the head is delivered late, out of order.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let retry = format!("/api/v1/dlq/{}/retry", letter["id"].as_str().unwrap());
    assert_eq!(server.call("POST", &retry, None).await.0, 202);
    assert!(
        eventually(Duration::from_secs(5), || async {
            of_key("k0") == [0, 0, 0, 1, 2, 0]
        })
        .await,
        "{:?}",
        of_key("k0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_into_an_ordered_subscription_keeps_each_key_in_order() {
    let server = TestServer::start_with(&FLAKY_RECEIVER_SETTINGS, Vec::new()).await;
    let accepted = Arc::default();
    let receiver = Receiver::scripted(flaky(Arc::clone(&accepted))).await;
    let id = subscribe(
        &server.api(),
        &receiver,
        json!({"ordering": "partition_key"}),
    )
    .await;
    let (keys, rounds) = (10, 20);
    post_rounds(&server.api(), keys, rounds).await;
    let all = keys * rounds;
    let live_done = eventually(Duration::from_secs(30), || async {
        delivered(&receiver.received(), &accepted.lock().unwrap()).len() == all
    })
    .await;
    assert!(live_done);

    let (_, listed) = server
        .call("GET", "/api/v1/events?limit=1&event_type=ordering.*", None)
        .await;
    let stream = listed["events"][0]["metadata"]["stream"].clone();
    let now = chrono::Utc::now();
    let window = json!({"stream": stream, "start_time": now - chrono::Duration::hours(1),
                        "end_time": now + chrono::Duration::minutes(1), "subscription_id": id});
    let (status, replay) = server
        .call("POST", "/api/v1/events/replay", Some(&window))
        .await;
    assert_eq!(status, 202, "{replay}");
    let replay_id = replay["id"].as_str().unwrap().to_string();
    let replayed = || -> Vec<Received> {
        receiver
            .received()
            .into_iter()
            .filter(|request| request.header("x-eventflow-replay-id") == replay_id)
            .collect()
    };
    let replay_done = eventually(Duration::from_secs(30), || async {
        delivered(&replayed(), &accepted.lock().unwrap()).len() == all
    })
    .await;
    assert!(replay_done, "{} of {all} replayed", replayed().len());
    assert_eq!(inversions(&replayed()), 0, "per-key order of the replay");
}

#[tokio::test]
async fn switching_ordering_off_releases_every_waiting_delivery() {
    let server = TestServer::start_with(
        &[("MAX_RETRIES", "10"), ("RETRY_BASE_DELAY", "5")],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::Fail(500)).await;
    let id = subscribe(
        &server.api(),
        &receiver,
        json!({"ordering": "partition_key"}),
    )
    .await;
    post_rounds(&server.api(), 1, 4).await;
    // Only the head is tried; the three behind it wait.
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 1 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);

    receiver.set(Mode::Accept);
    let path = format!("/api/v1/subscriptions/{id}");
    let (status, changed) = server
        .call("PATCH", &path, Some(&json!({"ordering": "none"})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["ordering"], "none");
    // The waiting three go out at once, without waiting for the head's retry.
    assert!(eventually(Duration::from_secs(3), || async { receiver.count() == 4 }).await);
    let steps: HashSet<u64> = receiver.received()[1..].iter().map(|r| step(r).1).collect();
    assert_eq!(steps, HashSet::from([1, 2, 3]));
}

#[tokio::test]
async fn ordering_and_pace_fields_are_validated() {
    let server = TestServer::start().await;
    let base = json!({"name": "n", "event_types": ["*"], "webhook_url": "http://127.0.0.1:9/"});
    for (field, value, mentions) in [
        ("ordering", json!("fifo"), "ordering"),
        ("rate_limit", json!(0), "rate_limit"),
        ("rate_limit", json!(-1), "rate_limit"),
        ("max_in_flight", json!(0), "max_in_flight"),
        ("max_in_flight", json!(100_000), "max_in_flight"),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, problem) = server
            .call("POST", "/api/v1/subscriptions", Some(&body))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(mentions),
            "{problem}"
        );
    }
    let (status, created) = server
        .call("POST", "/api/v1/subscriptions", Some(&base))
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["ordering"], "none");
    assert_eq!(created["max_in_flight"], 32);
    assert!(created.get("rate_limit").is_none(), "{created}");
    let path = format!("/api/v1/subscriptions/{}", created["id"].as_str().unwrap());
    let (_, limited) = server
        .call("PATCH", &path, Some(&json!({"rate_limit": 50})))
        .await;
    assert_eq!(limited["rate_limit"], 50, "{limited}");
    let (_, unlimited) = server
        .call("PATCH", &path, Some(&json!({"rate_limit": null})))
        .await;
    assert!(unlimited.get("rate_limit").is_none(), "{unlimited}");
}
