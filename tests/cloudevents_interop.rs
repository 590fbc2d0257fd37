//! Interoperability with an independent CloudEvents implementation: the Python SDK sends
//! structured and binary events and reads back what EventFlow stored
//! (`tests/interop/cloudevents_sdk.py`), and parses what EventFlow delivers in each content mode,
//! whose signatures the Standard Webhooks library verifies (`tests/interop/cloudevents_receive.py`).
//! Ignored unless included, since it needs the Python packages.

mod common;

use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually, python};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python package cloudevents==2.2.0: see README, Tests"]
async fn python_cloudevents_sdk_interoperates() {
    python::require_module("cloudevents.core.bindings.http", "cloudevents==2.2.0");
    let server = TestServer::start().await;
    let stdout = python::run_script(
        "cloudevents_sdk.py",
        vec![server.base.clone()],
        String::new(),
    )
    .await;
    assert!(stdout.contains("cloudevents interop: ok"), "{stdout}");
}

/// Subscribes `receiver` to `user.*` in `mode` with a known secret.
async fn subscribe_in(server: &TestServer, receiver: &Receiver, mode: &str) {
    let body = json!({"name": mode, "event_types": ["user.*"], "webhook_url": receiver.url,
                      "secret": SECRET, "content_mode": mode});
    let (status, created) = server
        .call("POST", "/api/v1/subscriptions", Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["content_mode"], mode, "{created}");
}

/// The signing secret of the content-mode test's subscriptions.
const SECRET: &str = "whsec_dGVzdCBzZWNyZXQgb2YgdGhlIGludGVyb3AgdGVzdA==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python packages cloudevents==2.2.0 and standardwebhooks==1.1.0: see README, Tests"]
async fn every_content_mode_parses_with_the_python_sdk_and_verifies() {
    python::require_module("cloudevents.core.bindings.http", "cloudevents==2.2.0");
    python::require_module("standardwebhooks", "standardwebhooks==1.1.0");
    let server = TestServer::start().await;
    let receivers = [
        Receiver::start(Mode::Accept).await,
        Receiver::start(Mode::Accept).await,
        Receiver::start(Mode::Accept).await,
    ];
    for (receiver, mode) in receivers.iter().zip(["json", "structured", "binary"]) {
        subscribe_in(&server, receiver, mode).await;
    }
    let event = json!({"type": "user.login", "source": "auth-service", "subject": "usr_123",
                       "data": {"user_id": "usr_123", "method": "passkey"},
                       "metadata": {"priority": "high", "partition_key": "usr_123"}});
    let (status, stored) = server.call("POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 201, "{stored}");
    let all_delivered = eventually(Duration::from_secs(10), || async {
        receivers.iter().all(|receiver| receiver.count() == 1)
    })
    .await;
    assert!(all_delivered);
    let deliveries: Vec<Value> = receivers
        .iter()
        .map(|receiver| {
            let request = &receiver.received()[0];
            json!({"secret": SECRET, "headers": request.headers, "body": request.body})
        })
        .collect();
    let stdout = python::run_script(
        "cloudevents_receive.py",
        Vec::new(),
        json!(deliveries).to_string(),
    )
    .await;
    let parsed: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(parsed.len(), 3, "{stdout}");
    let content_types = [
        "application/json",
        "application/cloudevents+json",
        "application/json",
    ];
    for (event, content_type) in parsed.iter().zip(content_types) {
        assert_eq!(event["content_type"], content_type, "{event}");
        let attributes = &event["attributes"];
        assert_eq!(attributes["id"], stored["id"], "{event}");
        assert_eq!(attributes["type"], "user.login", "{event}");
        assert_eq!(attributes["subject"], "usr_123", "{event}");
        assert_eq!(attributes["partitionkey"], "usr_123", "{event}");
        assert_eq!(attributes["priority"], "high", "{event}");
        assert_eq!(
            attributes["correlationid"], stored["metadata"]["correlation_id"],
            "{event}"
        );
        assert_eq!(
            event["data"],
            json!({"user_id": "usr_123", "method": "passkey"}),
            "{event}"
        );
    }
    let binary = &receivers[2].received()[0];
    assert_eq!(binary.header("ce-id"), stored["id"].as_str().unwrap());
    assert_eq!(
        binary.json(),
        json!({"user_id": "usr_123", "method": "passkey"})
    );
}
