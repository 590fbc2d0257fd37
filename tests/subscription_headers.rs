//! Static request headers on a subscription, through the HTTP API against a real receiver: sent
//! with every delivery, shown by name only, never in a log line, and refused when EventFlow sets
//! that header itself or HTTP forbids it.

mod common;

use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually};
use serde_json::json;

/// Posts a `user.created` event.
async fn post_user_created(server: &TestServer) {
    let response = server
        .post_json("/api/v1/events", &common::user_created("usr_1"))
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn static_headers_reach_the_receiver_and_only_their_names_are_shown() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let body = json!({"name": "with headers", "event_types": ["user.*"], "webhook_url": receiver.url,
                      "headers": {"Authorization": "Bearer rcv_s3cret", "X-Tenant": "acme"}});
    let (status, created) = server
        .call("POST", "/api/v1/subscriptions", Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["headers"], json!(["Authorization", "X-Tenant"]));
    assert!(!created.to_string().contains("rcv_s3cret"), "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    post_user_created(&server).await;
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 1 }).await);
    let request = &receiver.received()[0];
    assert_eq!(request.header("authorization"), "Bearer rcv_s3cret");
    assert_eq!(request.header("x-tenant"), "acme");
    assert!(!request.header("webhook-signature").is_empty());

    let path = format!("/api/v1/subscriptions/{id}");
    let (_, listed) = server.call("GET", "/api/v1/subscriptions", None).await;
    assert!(!listed.to_string().contains("rcv_s3cret"), "{listed}");
    let (status, changed) = server
        .call("PATCH", &path, Some(&json!({"headers": {}})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["headers"], json!([]));
    post_user_created(&server).await;
    assert!(eventually(Duration::from_secs(5), || async { receiver.count() == 2 }).await);
    assert_eq!(receiver.received()[1].header("authorization"), "");
}

#[tokio::test]
async fn headers_eventflow_sets_or_http_forbids_are_refused() {
    let server = TestServer::start().await;
    for (name, value) in [
        ("Host", "evil.example"),
        ("Content-Type", "text/plain"),
        ("webhook-signature", "v1,forged"),
        ("ce-id", "forged"),
        ("Transfer-Encoding", "chunked"),
        ("Bad Name", "x"),
        ("X-Injected", "a\r\nX-Other: b"),
    ] {
        let body = json!({"name": "h", "event_types": ["*"], "webhook_url": "http://127.0.0.1:9/",
                          "headers": {name: value}});
        let (status, problem) = server
            .call("POST", "/api/v1/subscriptions", Some(&body))
            .await;
        assert_eq!(status, 422, "{name} → {problem}");
        assert_eq!(
            problem["errors"][0]["pointer"],
            format!("/headers/{name}"),
            "{problem}"
        );
    }
    let (_, listed) = server.call("GET", "/api/v1/subscriptions", None).await;
    assert_eq!(listed["subscriptions"], json!([]));
}
