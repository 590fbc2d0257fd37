//! Subscription filters through the HTTP API, against a real receiver on loopback: which events a
//! filtered subscription gets, what an invalid filter is answered, and a replay applying the
//! filters as they are when it runs.

mod common;

use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually};
use serde_json::{Value, json};

/// Creates a subscription of `receiver` to `shop.*` with `filters`; returns its id.
async fn subscribe(server: &TestServer, receiver: &Receiver, filters: Value) -> String {
    let body = json!({"name": "filtered", "event_types": ["shop.*"], "webhook_url": receiver.url,
                      "filters": filters});
    let (status, created) = server
        .call("POST", "/api/v1/subscriptions", Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["filters"], filters, "shown as given");
    created["id"].as_str().unwrap().to_string()
}

/// Posts a `shop.checkout` event about `subject` with `total`; returns its id.
async fn post(server: &TestServer, subject: &str, total: i64) -> String {
    let event = json!({"type": "shop.checkout", "source": "/shop", "subject": subject,
                       "data": {"total": total, "customer": {"tier": "gold"}}});
    let (status, stored) = server.call("POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 201, "{stored}");
    stored["id"].as_str().unwrap().to_string()
}

/// The event ids the receiver got, in arrival order.
fn received_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|request| request.json()["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn only_events_passing_every_filter_are_delivered() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let filters = json!([
        {"prefix": {"subject": "eu-"}},
        {"any": [{"sql": "data.total > 100"}, {"exact": {"data.customer.tier": "platinum"}}]},
        {"not": {"suffix": {"subject": "-test"}}}
    ]);
    let id = subscribe(&server, &receiver, filters).await;
    let big_eu = post(&server, "eu-1", 150).await;
    post(&server, "eu-2", 50).await;
    post(&server, "us-1", 500).await;
    post(&server, "eu-3-test", 500).await;
    let also = post(&server, "eu-4", 101).await;
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 2 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = received_ids(&receiver);
    got.sort();
    let mut expected = vec![big_eu, also];
    expected.sort();
    assert_eq!(got, expected);

    // Without filters, every event of the subscribed types goes out again.
    let path = format!("/api/v1/subscriptions/{id}");
    let (status, changed) = server
        .call("PATCH", &path, Some(&json!({"filters": []})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["filters"], json!([]));
    post(&server, "us-2", 1).await;
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 3 }).await);
}

#[tokio::test]
async fn invalid_filters_are_refused_with_a_pointer_and_never_stored() {
    let server = TestServer::start().await;
    let base = json!({"name": "f", "event_types": ["*"], "webhook_url": "http://127.0.0.1:9/"});
    for (filters, pointer, mentions) in [
        (
            json!([{"regex": {"type": "x"}}]),
            "/filters/0",
            "unsupported filter dialect",
        ),
        (
            json!([{"sql": "type = "}]),
            "/filters/0/sql",
            "at character",
        ),
        (
            json!([{"exact": {"type": 7}}]),
            "/filters/0/exact/type",
            "non-empty string",
        ),
        (
            json!([{"all": [{"exact": {"type": "a"}}, {"any": []}]}]),
            "/filters/0/all/1/any",
            "non-empty array",
        ),
        (
            json!([{"exact": {"type": "a"}}, "sql"]),
            "/filters/1",
            "exactly one dialect",
        ),
    ] {
        let mut body = base.clone();
        body["filters"] = filters.clone();
        let (status, problem) = server
            .call("POST", "/api/v1/subscriptions", Some(&body))
            .await;
        assert_eq!(status, 422, "{filters} → {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(mentions),
            "{problem}"
        );
    }
    let (_, listed) = server.call("GET", "/api/v1/subscriptions", None).await;
    assert_eq!(listed["subscriptions"], json!([]), "nothing was stored");

    let (status, created) = server
        .call("POST", "/api/v1/subscriptions", Some(&base))
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/subscriptions/{}", created["id"].as_str().unwrap());
    let bad = json!({"filters": [{"sql": "subject LIKE"}]});
    let (status, problem) = server.call("PATCH", &path, Some(&bad)).await;
    assert_eq!(status, 422, "{problem}");
    let (_, shown) = server.call("GET", &path, None).await;
    assert_eq!(shown["filters"], json!([]), "unchanged");
}

#[tokio::test]
async fn a_replay_applies_the_filters_as_they_are_when_it_runs() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let id = subscribe(&server, &receiver, json!([{"exact": {"subject": "eu-1"}}])).await;
    let first = post(&server, "eu-1", 10).await;
    let second = post(&server, "us-1", 10).await;
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 1 }).await);
    assert_eq!(received_ids(&receiver), [first.as_str()]);

    let path = format!("/api/v1/subscriptions/{id}");
    let only_us = json!({"filters": [{"exact": {"subject": "us-1"}}]});
    assert_eq!(server.call("PATCH", &path, Some(&only_us)).await.0, 200);
    let (_, event) = server
        .call("GET", &format!("/api/v1/events/{second}"), None)
        .await;
    let now = chrono::Utc::now();
    let window = json!({"stream": event["metadata"]["stream"],
                        "start_time": now - chrono::Duration::hours(1),
                        "end_time": now + chrono::Duration::minutes(1), "subscription_id": id});
    let (status, replay) = server
        .call("POST", "/api/v1/events/replay", Some(&window))
        .await;
    assert_eq!(status, 202, "{replay}");
    assert!(eventually(Duration::from_secs(10), || async { receiver.count() == 2 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_ids(&receiver), [first, second]);
}

#[tokio::test]
async fn the_playground_evaluates_filters_and_refuses_only_malformed_requests() {
    let server = TestServer::start().await;
    let event = json!({"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "shop.checkout",
                       "subject": "eu-1", "data": {"total": 150, "customer": {"tier": "gold"}}});
    let evaluate = |body: Value| {
        let server = &server;
        async move {
            server
                .call("POST", "/api/v1/filters/evaluate", Some(&body))
                .await
        }
    };
    for (filters, matches) in [
        (
            json!([{"prefix": {"subject": "eu-"}}, {"sql": "data.total > 100"}]),
            true,
        ),
        (
            json!([{"exact": {"data.customer.tier": "platinum"}}]),
            false,
        ),
        (
            json!([{"not": {"exact": {"data.customer.tier": "platinum"}}}]),
            true,
        ),
        (json!([]), true),
    ] {
        let (status, answer) = evaluate(json!({"filters": filters, "event": event})).await;
        assert_eq!(
            (status, &answer),
            (200, &json!({"matches": matches})),
            "{filters}"
        );
    }
    let (status, answer) = evaluate(json!({"expression": "data.total * 2", "event": event})).await;
    assert_eq!(
        (status, answer),
        (200, json!({"result": 300, "error": null}))
    );
    let (status, answer) = evaluate(json!({"expression": "nope + 1", "event": event})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["error"]["kind"], "missingAttribute", "{answer}");

    for (body, pointer) in [
        (
            json!({"expression": "true", "event": {"id": "x"}}),
            "/event/specversion",
        ),
        (
            json!({"expression": "true", "filters": [], "event": event}),
            "",
        ),
        (
            json!({"filters": [{"regex": {}}], "event": event}),
            "/filters/0",
        ),
    ] {
        let (status, problem) = evaluate(body.clone()).await;
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let (status, problem) = evaluate(json!({"expression": "true"})).await;
    assert_eq!(status, 422, "a missing event: {problem}");
}
