//! Replay through the HTTP API, against a real webhook receiver: a window of a stream delivered
//! again (marked, with the same event ids), dry runs, bad requests, pacing and cancelling, and a
//! restart in the middle of a replay.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
/// The window most tests replay: the first day of 2024.
const START: &str = "2024-01-01T00:00:00Z";
const END: &str = "2024-01-02T00:00:00Z";

/// Stores events of `event_type` at `time` (one per id); returns their ids.
async fn post_at(server: &TestServer, event_type: &str, time: &str, count: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count)
        .map(|n| {
            let order = format!("{}-{n}", uuid::Uuid::now_v7().simple());
            json!({"type": event_type, "source": "shop", "time": time,
                   "data": {"order_id": order}})
        })
        .collect();
    let response = server
        .post_json("/api/v1/events/batch", &json!(events))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], count, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Queues a replay; returns it as the API answered (202).
async fn replay(server: &TestServer, request: Value) -> Value {
    let (status, body) = server
        .call("POST", "/api/v1/events/replay", Some(&request))
        .await;
    assert_eq!(status, 202, "{body}");
    body
}

/// The replay with `id` once it has finished.
async fn finished(server: &TestServer, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = server
            .call("GET", &format!("/api/v1/replays/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        if ["completed", "cancelled", "failed"].contains(&body["status"].as_str().unwrap()) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replay did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deliveries `receiver` got for replay `replay_id`, by event id.
fn replayed_by_event(receiver: &Receiver, replay_id: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in receiver.received() {
        if request.header("x-eventflow-replay-id") == replay_id {
            let id = request.json()["id"].as_str().unwrap().to_string();
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_replay_delivers_the_window_again_marked_and_with_the_same_event_ids() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &["order.*"]).await;
    let in_window = post_at(&server, "order.created", "2024-01-01T10:00:00Z", 3).await;
    post_at(&server, "order.created", "2024-01-03T10:00:00Z", 1).await;
    // In the window and on the stream, but no subscription wants it.
    post_at(&server, "payment.refunded", "2024-01-01T11:00:00Z", 1).await;
    assert!(eventually(WAIT, || async { receiver.count() == 4 }).await);

    let queued = replay(
        &server,
        json!({"stream": "events:business", "start_time": START, "end_time": END}),
    )
    .await;
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap();
    assert!(id.starts_with("rpl_"), "{queued}");
    let done = finished(&server, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (&done["matched"], &done["replayed"], &done["deliveries"]),
        (&json!(4), &json!(3), &json!(3)),
        "{done}"
    );
    assert!(eventually(WAIT, || async { receiver.count() == 7 }).await);

    let replayed = replayed_by_event(&receiver, id);
    let mut ids: Vec<_> = replayed.keys().cloned().collect();
    ids.sort();
    let mut expected = in_window.clone();
    expected.sort();
    assert_eq!(
        ids, expected,
        "each event of the window once, with its own id"
    );
    let received = receiver.received();
    let live_ids: Vec<&str> = received[..4]
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    for request in &received[4..] {
        let body = request.json();
        assert_eq!(
            body["eventflowreplayid"], id,
            "the CloudEvents extension names the replay"
        );
        assert!(
            !live_ids.contains(&request.header("webhook-id")),
            "a replayed delivery is a new delivery"
        );
    }
    // Nothing more comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 7);
}

#[tokio::test]
async fn a_dry_run_counts_what_a_filtered_replay_to_one_subscription_would_send() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let other = Receiver::start(Mode::Accept).await;
    let subscription = server.subscribe(&receiver.url, &["order.*"]).await;
    server.subscribe(&other.url, &["*"]).await;
    post_at(&server, "order.created", "2024-01-01T10:00:00Z", 2).await;
    post_at(&server, "order.updated", "2024-01-01T10:00:00Z", 1).await;
    assert!(
        eventually(WAIT, || async {
            receiver.count() == 3 && other.count() == 3
        })
        .await
    );

    let request = json!({"stream": "events:business", "start_time": START, "end_time": END,
                         "event_types": ["order.created"], "dry_run": true,
                         "subscription_id": subscription["id"]});
    let queued = replay(&server, request).await;
    let done = finished(&server, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["dry_run"], true);
    assert_eq!(
        (&done["matched"], &done["replayed"], &done["deliveries"]),
        (&json!(2), &json!(2), &json!(2)),
        "{done}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (receiver.count(), other.count()),
        (3, 3),
        "a dry run sends nothing"
    );

    let (status, list) = server.call("GET", "/api/v1/replays?limit=10", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["replays"][0]["id"], queued["id"]);
}

#[tokio::test]
async fn bad_replay_requests_are_problems_naming_the_fault() {
    let server = TestServer::start_with(&[("REPLAY_MAX_WINDOW", "1h")], Vec::new()).await;
    let paused = server.subscribe("http://127.0.0.1:9/hook", &["*"]).await;
    let paused_id = paused["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/subscriptions/{paused_id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let hour = |end: &str| json!({"stream": "events:user", "start_time": "2024-01-01T00:00:00Z", "end_time": end});
    let cases = [
        (
            json!({"stream": "events:nope", "start_time": START, "end_time": "2024-01-01T00:30:00Z"}),
            422,
            "unknown stream",
        ),
        (
            hour("2023-12-31T23:00:00Z"),
            422,
            "end_time must be after start_time",
        ),
        (
            hour("2024-01-01T00:00:00Z"),
            422,
            "end_time must be after start_time",
        ),
        (hour("2024-01-01T01:00:01Z"), 422, "REPLAY_MAX_WINDOW"),
        (
            json!({"stream": "events:user", "start_time": "yesterday", "end_time": END}),
            422,
            "start_time",
        ),
        (
            json!({"stream": "events:user", "start_time": START}),
            422,
            "end_time",
        ),
        (
            json!({"stream": "events:user", "start_time": START, "end_time": "2024-01-01T00:30:00Z", "speed": 2}),
            422,
            "speed",
        ),
        (
            json!({"stream": "events:user", "start_time": START, "end_time": "2024-01-01T00:30:00Z", "event_types": []}),
            422,
            "event_types",
        ),
        (
            json!({"stream": "events:user", "start_time": START, "end_time": "2024-01-01T00:30:00Z", "subscription_id": "nope"}),
            422,
            "no subscription",
        ),
        (
            json!({"stream": "events:user", "start_time": START, "end_time": "2024-01-01T00:30:00Z", "subscription_id": "a\u{0}b"}),
            422,
            "NUL",
        ),
        (
            json!({"stream": "events:user", "start_time": START, "end_time": "2024-01-01T00:30:00Z", "subscription_id": paused_id}),
            422,
            "paused",
        ),
    ];
    for (request, status, detail) in cases {
        let (got, body) = server
            .call("POST", "/api/v1/events/replay", Some(&request))
            .await;
        assert_eq!(got, status, "{request} → {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{request} → {body}"
        );
    }
    // Only EventFlow marks deliveries as replays.
    let marked = json!({"specversion": "1.0", "id": "m-1", "source": "tests", "type": "user.x",
                        "eventflowreplayid": "rpl_forged"});
    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(marked.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let malformed = server
        .client
        .post(server.url("/api/v1/events/replay"))
        .header("content-type", "application/json")
        .body("{\"stream\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    for (method, path) in [
        ("GET", "/api/v1/replays/rpl_nope"),
        ("POST", "/api/v1/replays/rpl_nope/cancel"),
    ] {
        let (status, body) = server.call(method, path, None).await;
        assert_eq!(status, 404, "{method} {path} → {body}");
    }
    let (status, body) = server.call("GET", "/api/v1/replays?limit=0", None).await;
    assert_eq!(status, 400, "{body}");
}

/// A server replaying at `rate` the day of `orders` order events it delivered live, once the
/// receiver got `at_least` of the replayed ones; returns the server, the receiver, the event
/// ids and the replay's id.
async fn replay_under_way(
    rate: &str,
    orders: usize,
    at_least: usize,
) -> (TestServer, Receiver, Vec<String>, String) {
    let server = TestServer::start_with(&[("REPLAY_RATE", rate)], Vec::new()).await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &["order.*"]).await;
    let ids = post_at(&server, "order.created", "2024-01-01T10:00:00Z", orders).await;
    assert!(eventually(WAIT, || async { receiver.count() == orders }).await);
    let queued = replay(
        &server,
        json!({"stream": "events:business", "start_time": START, "end_time": END}),
    )
    .await;
    let id = queued["id"].as_str().unwrap().to_string();
    let started = eventually(WAIT, || async {
        replayed_by_event(&receiver, &id).len() >= at_least
    })
    .await;
    assert!(started, "the replay did not start");
    (server, receiver, ids, id)
}

#[tokio::test]
async fn a_paced_replay_can_be_cancelled_and_its_unsent_deliveries_are_dropped() {
    // Paced at 10 events a second: some arrive, far from all.
    let (server, receiver, _, id) = replay_under_way("10", 100, 5).await;
    let (status, cancelled) = server
        .call("POST", &format!("/api/v1/replays/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let at_cancel = cancelled["replayed"].as_u64().unwrap();
    assert!(at_cancel < 100, "{cancelled}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = replayed_by_event(&receiver, &id);
    assert!(
        sent.len() as u64 <= at_cancel,
        "nothing is created after the cancel: {} sent, {at_cancel} replayed at cancel",
        sent.len()
    );
    assert!(sent.values().all(|n| *n == 1), "none twice");
    let (_, after) = server
        .call("GET", &format!("/api/v1/replays/{id}"), None)
        .await;
    assert_eq!(
        (after["status"].as_str(), after["replayed"].as_u64()),
        (Some("cancelled"), Some(at_cancel))
    );

    // Cancelling again changes nothing; a completed replay cannot be cancelled.
    let (status, _) = server
        .call("POST", &format!("/api/v1/replays/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200);
    let dry = replay(
        &server,
        json!({"stream": "events:business", "start_time": START, "end_time": END, "dry_run": true}),
    )
    .await;
    let dry_id = dry["id"].as_str().unwrap();
    finished(&server, dry_id).await;
    let (status, body) = server
        .call("POST", &format!("/api/v1/replays/{dry_id}/cancel"), None)
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_replay_interrupted_by_a_restart_resumes_and_sends_each_event_once() {
    let (mut server, receiver, ids, id) = replay_under_way("20", 60, 10).await;
    server.stop().await;
    let during = replayed_by_event(&receiver, &id).len();
    assert!(during < 60, "stopped in the middle: {during} of 60 sent");

    server.restart().await;
    let done = finished(&server, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (&done["matched"], &done["replayed"]),
        (&json!(60), &json!(60)),
        "{done}"
    );
    assert!(
        eventually(WAIT, || async {
            replayed_by_event(&receiver, &id).len() == 60
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = replayed_by_event(&receiver, &id);
    let mut sent_ids: Vec<_> = sent.keys().cloned().collect();
    sent_ids.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(sent_ids, expected);
    assert!(sent.values().all(|n| *n == 1), "none twice: {sent:?}");
}
