//! Webhook subscriptions and delivery through the HTTP API, against a real receiver on loopback
//! that accepts, fails, hangs or answers 410: signatures, retries, the dead-letter queue, circuit
//! breakers, and a restart in the middle of a retry schedule.

mod common;

use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually, python};
use eventflow::delivery::SigningSecret;
use serde_json::{Value, json};

async fn dead_letters(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.call("GET", "/api/v1/dlq", None).await;
    assert_eq!(status, 200, "{body}");
    body["dead_letters"].as_array().unwrap().clone()
}

async fn delivery_log(server: &TestServer, subscription_id: &str) -> Vec<Value> {
    let path = format!("/api/v1/subscriptions/{subscription_id}/deliveries");
    let (status, body) = server.call("GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    body["attempts"].as_array().unwrap().clone()
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_producer_hanging_up_mid_request_leaves_no_stored_event_undelivered() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &["*"]).await;
    let ids: Vec<String> = (0..20).map(|n| format!("hangup-{n}")).collect();
    for id in &ids {
        let body = json!({"id": id, "type": "hangup.test", "source": "tests", "data": {}});
        let body = body.to_string();
        let address = server.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Hang up without waiting for the answer.
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut stored = Vec::new();
    for id in &ids {
        if server
            .call("GET", &format!("/api/v1/events/{id}"), None)
            .await
            .0
            == 200
        {
            stored.push(id.clone());
        }
    }
    assert!(!stored.is_empty(), "no event was stored");
    assert!(eventually(WAIT, || async { receiver.count() >= stored.len() }).await);
    let mut delivered: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    delivered.sort();
    stored.sort();
    assert_eq!(delivered, stored, "every stored event delivered, once");
}

#[tokio::test]
async fn subscriptions_are_managed_and_their_secret_never_shown() {
    let server = TestServer::start().await;
    let created = server
        .subscribe("http://127.0.0.1:9/hook", &["order.*"])
        .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["enabled"], true);

    let given = json!({"name": "orders", "event_types": ["order.created", "order.completed"],
                       "webhook_url": "https://example.com/webhook", "secret": "your-webhook-secret"});
    let (status, body) = server
        .call("POST", "/api/v1/subscriptions", Some(&given))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body.get("secret").is_none(),
        "a given secret is not echoed: {body}"
    );

    let (status, one) = server
        .call("GET", &format!("/api/v1/subscriptions/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(one.get("secret").is_none(), "{one}");
    let (_, list) = server.call("GET", "/api/v1/subscriptions", None).await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains("your-webhook-secret"));
    assert!(!list.to_string().contains(secret));

    let (status, changed) = server
        .call(
            "PATCH",
            &format!("/api/v1/subscriptions/{id}"),
            Some(&json!({"name": "renamed", "enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "renamed");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["event_types"], json!(["order.*"]));

    let path = format!("/api/v1/subscriptions/{id}");
    assert_eq!(server.call("DELETE", &path, None).await.0, 204);
    assert_eq!(server.call("GET", &path, None).await.0, 404);
    assert_eq!(server.call("DELETE", &path, None).await.0, 404);
    assert_eq!(server.call("PATCH", &path, Some(&json!({}))).await.0, 404);
}

#[tokio::test]
async fn invalid_subscriptions_get_clear_4xx_problems() {
    let server = TestServer::start().await;
    let base = json!({"name": "n", "event_types": ["*"], "webhook_url": "http://127.0.0.1:9/"});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("event_types", json!([])), "event_types"),
        (with("event_types", json!(["order*"])), "order*"),
        (
            with("webhook_url", json!("ftp://example.com/")),
            "http or https",
        ),
        (with("webhook_url", json!("not a url")), "webhook_url"),
        (with("name", json!("  ")), "name"),
        (with("secret", json!("whsec_not base64!")), "secret"),
        (with("extra", json!(1)), "extra"),
        (with("event_types", json!("order.*")), "event_types"),
        (with("name", json!("nul\u{0}name")), "NUL"),
    ];
    for (body, mentions) in cases {
        let (status, problem) = server
            .call("POST", "/api/v1/subscriptions", Some(&body))
            .await;
        assert_eq!(status, 422, "{body} -> {problem}");
        assert_eq!(problem["status"], 422);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(mentions),
            "{detail} should mention {mentions}"
        );
    }
    let response = server
        .client
        .post(server.url("/api/v1/subscriptions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    for path in [
        "/api/v1/dlq/%00",
        "/api/v1/dlq?event_type=a%00b",
        "/api/v1/subscriptions/x%00",
    ] {
        let (status, problem) = server.call("GET", path, None).await;
        assert_eq!(status, 400, "{path}: {problem}");
    }
}

#[tokio::test]
async fn outside_development_private_webhook_urls_are_refused() {
    let server = TestServer::start_with(&[("APP_ENV", "staging")], Vec::new()).await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://localhost:8080/hook",
    ] {
        let body = json!({"name": "n", "event_types": ["*"], "webhook_url": url});
        let (status, problem) = server
            .call("POST", "/api/v1/subscriptions", Some(&body))
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("public"),
            "{problem}"
        );
    }
    let allowed = TestServer::start_with(
        &[
            ("APP_ENV", "staging"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    allowed
        .subscribe("http://127.0.0.1:8080/hook", &["*"])
        .await;
}

#[tokio::test]
async fn matching_events_are_delivered_once_each_signed_and_correlated() {
    let server = TestServer::start().await;
    let orders = Receiver::start(Mode::Accept).await;
    let users = Receiver::start(Mode::Accept).await;
    let paused = Receiver::start(Mode::Accept).await;
    let order_sub = server.subscribe(&orders.url, &["order.*"]).await;
    server.subscribe(&users.url, &["user.signed_up"]).await;
    let paused_sub = server.subscribe(&paused.url, &["*"]).await;
    let path = format!(
        "/api/v1/subscriptions/{}",
        paused_sub["id"].as_str().unwrap()
    );
    server
        .call("PATCH", &path, Some(&json!({"enabled": false})))
        .await;

    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("x-correlation-id", "corr-42")
        .json(&json!({"type": "order.shipped", "source": "shop", "data": {"order_id": "o1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let user_id = server.post_event("user.signed_up").await;
    server.post_event("page.scrolled").await;

    assert!(eventually(WAIT, || async { orders.count() == 1 && users.count() == 1 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(orders.count(), 1, "one delivery per matching event");
    assert_eq!(users.count(), 1);
    assert_eq!(paused.count(), 0, "a disabled subscription gets nothing");

    let delivery = &orders.received()[0];
    let body = delivery.json();
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["id"], order_id.as_str());
    assert_eq!(body["type"], "order.shipped");
    assert_eq!(body["data"]["order_id"], "o1");
    assert_eq!(delivery.header("x-correlation-id"), "corr-42");
    assert_eq!(delivery.header("content-type"), "application/json");
    let webhook_id = delivery.header("webhook-id");
    assert!(webhook_id.starts_with("msg_"), "{webhook_id}");
    let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 30);
    let secret = SigningSecret::parse(order_sub["secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        delivery.header("webhook-signature"),
        secret.sign(webhook_id, timestamp, delivery.body.as_bytes())
    );
    assert_eq!(users.received()[0].json()["id"], user_id.as_str());

    let log = delivery_log(&server, order_sub["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status_code"], 204);
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["delivery_id"], webhook_id);
    assert!(log[0]["latency_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
#[ignore = "needs the Python package standardwebhooks==1.1.0: see README, Tests"]
async fn delivered_signatures_verify_with_the_standard_webhooks_library() {
    python::require_module("standardwebhooks", "standardwebhooks==1.1.0");
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let generated = server.subscribe(&receiver.url, &["user.*"]).await;
    let raw = json!({"name": "raw", "event_types": ["user.*"], "webhook_url": receiver.url,
                     "secret": "your-webhook-secret"});
    let (status, raw) = server
        .call("POST", "/api/v1/subscriptions", Some(&raw))
        .await;
    assert_eq!(status, 201);
    let secrets = [
        (
            generated["id"].clone(),
            generated["secret"].as_str().unwrap().to_string(),
            false,
        ),
        (raw["id"].clone(), "your-webhook-secret".to_string(), true),
    ];
    let response = server
        .post_json(
            "/api/v1/events",
            &json!({"type": "user.noticed", "source": "api", "data": {"user_id": "usr_1"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert!(eventually(WAIT, || async { receiver.count() == 2 }).await);
    // Outcomes are recorded in batches, a moment after the receiver answered.
    let logged = eventually(WAIT, || async {
        let mut logged = 0;
        for (id, _, _) in &secrets {
            logged += delivery_log(&server, id.as_str().unwrap()).await.len();
        }
        logged == 2
    })
    .await;
    assert!(logged, "both deliveries in the delivery logs");
    let mut deliveries = Vec::new();
    for received in receiver.received() {
        let log_id = received.header("webhook-id").to_string();
        // Which subscription it was for: the one whose log has this delivery.
        let (_, secret, raw_secret) = {
            let mut owner = None;
            for (id, secret, raw_secret) in &secrets {
                let log = delivery_log(&server, id.as_str().unwrap()).await;
                if log.iter().any(|a| a["delivery_id"] == log_id.as_str()) {
                    owner = Some((id.clone(), secret.clone(), *raw_secret));
                }
            }
            owner.expect("a subscription delivered it")
        };
        deliveries.push(json!({
            "secret": secret, "raw_secret": raw_secret, "id": log_id,
            "timestamp": received.header("webhook-timestamp").parse::<i64>().unwrap(),
            "body": received.body, "signature": received.header("webhook-signature"),
        }));
    }
    let stdout = python::run_script(
        "standardwebhooks_verify.py",
        Vec::new(),
        json!(deliveries).to_string(),
    )
    .await;
    assert!(stdout.contains("verified 2 deliveries: ok"), "{stdout}");
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_then_dead_lettered_and_retried_from_the_dlq_once() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "2"),
            ("RETRY_BASE_DELAY", "0.05"),
            ("BREAKER_FAILURE_THRESHOLD", "100"),
        ],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::Fail(500)).await;
    let subscription = server.subscribe(&receiver.url, &["*"]).await;
    let subscription_id = subscription["id"].as_str().unwrap();
    let event_id = server.post_event("invoice.sent").await;

    assert!(eventually(WAIT, || async { !dead_letters(&server).await.is_empty() }).await);
    let letters = dead_letters(&server).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["kind"], "webhook");
    assert_eq!(letter["attempts"], 3, "MAX_RETRIES=2 means three attempts");
    assert_eq!(letter["status_code"], 500);
    assert_eq!(letter["response_body"], "boom");
    assert_eq!(letter["event_id"], event_id.as_str());
    assert_eq!(letter["subscription_id"], subscription_id);
    assert_eq!(letter["event"]["type"], "invoice.sent");
    let requests = receiver.received();
    assert_eq!(requests.len(), 3);
    let webhook_id = requests[0].header("webhook-id").to_string();
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == webhook_id)
    );
    assert_eq!(letter["delivery_id"], webhook_id.as_str());

    let log = delivery_log(&server, subscription_id).await;
    let attempts: Vec<_> = log.iter().map(|a| a["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [3, 2, 1], "newest first");
    assert!(log.iter().all(|a| a["status_code"] == 500));
    assert!(log[1]["next_attempt_at"].is_string() && log[2]["next_attempt_at"].is_string());
    assert!(log[0].get("next_attempt_at").is_none());

    let letter_path = format!("/api/v1/dlq/{}", letter["id"].as_str().unwrap());
    let (status, one) = server.call("GET", &letter_path, None).await;
    assert_eq!((status, &one["id"]), (200, &letter["id"]));

    receiver.set(Mode::Accept);
    let (status, body) = server
        .call("POST", &format!("{letter_path}/retry"), None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["requeued"], 1);
    assert!(eventually(WAIT, || async { receiver.count() == 4 }).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        receiver.count(),
        4,
        "delivered exactly once after the retry"
    );
    assert_eq!(receiver.received()[3].header("webhook-id"), webhook_id);
    assert!(dead_letters(&server).await.is_empty());
    assert_eq!(
        server
            .call("POST", &format!("{letter_path}/retry"), None)
            .await
            .0,
        404
    );
    assert_eq!(server.call("DELETE", &letter_path, None).await.0, 404);

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("eventflow_events_failed_total"),
        "{metrics}"
    );
    // The recorder is shared by the tests of this binary: only presence is certain here.
    for outcome in ["delivered", "retry", "dead_lettered"] {
        let label = format!(r#"outcome="{outcome}""#);
        let present = metrics.lines().any(|line| {
            line.starts_with("eventflow_webhook_deliveries_total{") && line.contains(&label)
        });
        assert!(present, "no webhook attempts counted as {outcome}");
    }
}

#[tokio::test]
async fn dead_letters_are_paged_filtered_retried_in_bulk_and_deleted() {
    let server = TestServer::start_with(&[("MAX_RETRIES", "0")], Vec::new()).await;
    let failing = Receiver::start(Mode::Fail(400)).await;
    let other = Receiver::start(Mode::Fail(422)).await;
    let failing_sub = server.subscribe(&failing.url, &["job.*"]).await;
    server.subscribe(&other.url, &["job.*"]).await;
    for _ in 0..3 {
        server.post_event("job.failed").await;
    }
    assert!(eventually(WAIT, || async { dead_letters(&server).await.len() == 6 }).await);

    let (_, first) = server.call("GET", "/api/v1/dlq?limit=4", None).await;
    assert_eq!(first["dead_letters"].as_array().unwrap().len(), 4);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = server
        .call("GET", &format!("/api/v1/dlq?limit=4&cursor={cursor}"), None)
        .await;
    assert_eq!(second["dead_letters"].as_array().unwrap().len(), 2);
    assert!(second.get("next_cursor").is_none());
    assert_eq!(server.call("GET", "/api/v1/dlq?limit=0", None).await.0, 400);
    assert_eq!(
        server.call("GET", "/api/v1/dlq?cursor=x", None).await.0,
        400
    );
    assert_eq!(
        server.call("GET", "/api/v1/dlq?kind=other", None).await.0,
        400
    );

    let failing_id = failing_sub["id"].as_str().unwrap();
    let (_, mine) = server
        .call(
            "GET",
            &format!("/api/v1/dlq?subscription_id={failing_id}"),
            None,
        )
        .await;
    assert_eq!(mine["dead_letters"].as_array().unwrap().len(), 3);

    failing.set(Mode::Accept);
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/dlq/retry",
            Some(&json!({"subscription_id": failing_id})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["requeued"], 3);
    assert!(eventually(WAIT, || async { failing.count() == 6 }).await);
    let left = dead_letters(&server).await;
    assert_eq!(left.len(), 3);
    for letter in left {
        let path = format!("/api/v1/dlq/{}", letter["id"].as_str().unwrap());
        assert_eq!(server.call("DELETE", &path, None).await.0, 204);
    }
    assert!(dead_letters(&server).await.is_empty());
    assert_eq!(server.call("GET", "/api/v1/dlq/nope", None).await.0, 404);
}

#[tokio::test]
async fn an_endpoint_answering_410_gone_disables_its_subscription() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Fail(410)).await;
    let subscription = server.subscribe(&receiver.url, &["*"]).await;
    let path = format!(
        "/api/v1/subscriptions/{}",
        subscription["id"].as_str().unwrap()
    );
    server.post_event("thing.happened").await;
    assert!(
        eventually(WAIT, || async {
            server.call("GET", &path, None).await.1["enabled"] == false
        })
        .await
    );
    let (_, disabled) = server.call("GET", &path, None).await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{disabled}"
    );
    assert!(eventually(WAIT, || async { dead_letters(&server).await.len() == 1 }).await);
    server.post_event("thing.happened").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.count(), 1, "nothing more after 410");

    // A dead letter of a disabled subscription waits until it is enabled again.
    let letter = &dead_letters(&server).await[0];
    let retry = format!("/api/v1/dlq/{}/retry", letter["id"].as_str().unwrap());
    assert_eq!(server.call("POST", &retry, None).await.0, 409);
    receiver.set(Mode::Accept);
    let (status, enabled) = server
        .call("PATCH", &path, Some(&json!({"enabled": true})))
        .await;
    assert_eq!(status, 200);
    assert!(enabled.get("disabled_reason").is_none());
    assert_eq!(server.call("POST", &retry, None).await.0, 202);
    assert!(eventually(WAIT, || async { receiver.count() == 2 }).await);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_without_holding_back_the_others() {
    let server = TestServer::start_with(
        &[("WEBHOOK_TIMEOUT_MS", "300"), ("MAX_RETRIES", "0")],
        Vec::new(),
    )
    .await;
    let hanging = Receiver::start(Mode::Hang).await;
    let healthy = Receiver::start(Mode::Accept).await;
    let hanging_sub = server.subscribe(&hanging.url, &["*"]).await;
    server.subscribe(&healthy.url, &["*"]).await;
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        server.post_event("tick.tock").await;
    }
    assert!(eventually(WAIT, || async { healthy.count() == 5 }).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the healthy endpoint waited for the hanging one: {:?}",
        started.elapsed()
    );
    let hanging_id = hanging_sub["id"].as_str().unwrap();
    assert!(
        eventually(WAIT, || async {
            delivery_log(&server, hanging_id).await.len() == 5
        })
        .await
    );
    let log = delivery_log(&server, hanging_id).await;
    assert!(log.iter().all(|a| a["error"] == "timed out"), "{log:?}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = TestServer::start_with(
        &[("MAX_RETRIES", "3"), ("RETRY_BASE_DELAY", "0.01")],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::RetryAfter(1)).await;
    server.subscribe(&receiver.url, &["*"]).await;
    server.post_event("rate.limited").await;
    assert!(eventually(WAIT, || async { receiver.count() == 1 }).await);
    receiver.set(Mode::Accept);
    assert!(eventually(WAIT, || async { receiver.count() == 2 }).await);
    let received = receiver.received();
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, asked for 1 s"
    );
}

#[tokio::test]
async fn an_open_circuit_holds_deliveries_without_spending_attempts() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "2"),
            ("RETRY_BASE_DELAY", "0.01"),
            ("BREAKER_FAILURE_THRESHOLD", "2"),
            ("BREAKER_RECOVERY_TIMEOUT", "2"),
            ("BREAKER_HALF_OPEN_MAX_CALLS", "1"),
        ],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::Fail(503)).await;
    let subscription = server.subscribe(&receiver.url, &["*"]).await;
    let id = subscription["id"].as_str().unwrap();
    let event_id = server.post_event("breaker.test").await;
    let open = format!(r#"eventflow_circuit_breaker_state{{subscription="{id}"}} 1"#);
    assert!(eventually(WAIT, || async { server.metrics().await.contains(&open) }).await);
    let path = format!("/api/v1/subscriptions/{id}");
    assert_eq!(
        server.get_json(&path).await.1["breaker"],
        "open",
        "the API shows it"
    );
    // Two failures opened it; while it is open the retry waits instead of being attempted.
    assert_eq!(receiver.count(), 2);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.count(), 2, "a request reached an open circuit");
    receiver.set(Mode::Accept);
    assert!(
        eventually(WAIT, || async {
            delivery_log(&server, id)
                .await
                .first()
                .map(|a| a["status_code"].clone())
                == Some(json!(204))
        })
        .await
    );
    // The trial after the recovery timeout was the third and last attempt MAX_RETRIES=2 allows:
    // waiting while open spent none.
    let log = delivery_log(&server, id).await;
    assert_eq!(log.len(), 3, "{log:?}");
    let (_, of_event) = server
        .get_json(&format!("{path}/deliveries?event_id={event_id}"))
        .await;
    assert_eq!(
        of_event["attempts"].as_array().unwrap().len(),
        3,
        "{of_event}"
    );
    let (_, of_other) = server
        .get_json(&format!("{path}/deliveries?event_id=another"))
        .await;
    assert_eq!(of_other["attempts"], json!([]), "{of_other}");
    assert!(dead_letters(&server).await.is_empty());
    let closed = format!(r#"eventflow_circuit_breaker_state{{subscription="{id}"}} 0"#);
    assert!(server.metrics().await.contains(&closed));
    let (_, subscriptions) = server.get_json("/api/v1/subscriptions").await;
    assert_eq!(subscriptions["subscriptions"][0]["breaker"], "closed");
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_retry_schedule_resumes_it() {
    let mut server = TestServer::start_with(
        &[("MAX_RETRIES", "5"), ("RETRY_BASE_DELAY", "3")],
        Vec::new(),
    )
    .await;
    let receiver = Receiver::start(Mode::Fail(500)).await;
    let subscription = server.subscribe(&receiver.url, &["*"]).await;
    server.post_event("survives.restart").await;
    assert!(eventually(WAIT, || async { receiver.count() == 1 }).await);
    server.stop().await;
    receiver.set(Mode::Accept);
    server.restart().await;
    assert!(eventually(Duration::from_secs(15), || async { receiver.count() == 2 }).await);
    let received = receiver.received();
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    // The receiver can answer before the server has recorded the attempt: wait for the log.
    let attempts = || async {
        delivery_log(&server, subscription["id"].as_str().unwrap())
            .await
            .iter()
            .map(|a| (a["attempt"].clone(), a["status_code"].clone()))
            .collect::<Vec<_>>()
    };
    assert!(eventually(WAIT, || async { attempts().await.len() == 2 }).await);
    assert_eq!(
        attempts().await,
        [(json!(2), json!(204)), (json!(1), json!(500))]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 2);
}

/// A server with ROTATION_OVERLAP=2s and a subscription whose secret was rotated, with the
/// delivery made during the overlap and the one made after it: (server, receiver, rotate path,
/// old secret, new secret, during, after).
async fn deliveries_around_a_rotation() -> (
    TestServer,
    Receiver,
    String,
    String,
    String,
    common::receiver::Received,
    common::receiver::Received,
) {
    let server = TestServer::start_with(&[("ROTATION_OVERLAP", "2s")], Vec::new()).await;
    let receiver = Receiver::start(Mode::Accept).await;
    let created = server.subscribe(&receiver.url, &["user.*"]).await;
    let id = created["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap().to_string();
    let rotate = format!("/api/v1/subscriptions/{id}/secret/rotate");
    let (status, rotated) = server.call("POST", &rotate, None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    let (_, shown) = server
        .call("GET", &format!("/api/v1/subscriptions/{id}"), None)
        .await;
    assert!(
        !shown.to_string().contains("whsec_"),
        "secrets are never shown: {shown}"
    );

    // The n-th delivery of a new user event.
    let deliver = |n: usize| {
        let (server, receiver) = (&server, &receiver);
        async move {
            let event =
                json!({"type": "user.noticed", "source": "api", "data": {"user_id": "usr_1"}});
            assert_eq!(
                server.post_json("/api/v1/events", &event).await.status(),
                201
            );
            assert!(eventually(WAIT, || async { receiver.count() == n }).await);
            receiver.received()[n - 1].clone()
        }
    };
    let during = deliver(1).await;
    // After the overlap, only the new secret signs.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = deliver(2).await;
    (server, receiver, rotate, old, new, during, after)
}

#[tokio::test]
async fn a_rotated_secret_signs_next_to_the_new_one_until_its_overlap_ends() {
    let (server, _receiver, rotate, _, _, during, after) = deliveries_around_a_rotation().await;
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);

    // A given secret is used and not echoed; bad requests are problems.
    let (status, given) = server
        .call(
            "POST",
            &rotate,
            Some(&json!({"secret": "another-webhook-secret"})),
        )
        .await;
    assert_eq!(status, 200, "{given}");
    assert!(given.get("secret").is_none(), "{given}");
    // Rotating again within that overlap keeps the older secret signing, with its overlap.
    let (status, again) = server.call("POST", &rotate, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["previous_secret_until"],
        given["previous_secret_until"]
    );
    let (status, _) = server
        .call("POST", &rotate, Some(&json!({"secret": "x\u{0}y"})))
        .await;
    assert_eq!(status, 422);
    let (status, _) = server
        .call("POST", &rotate, Some(&json!({"key": "v"})))
        .await;
    assert_eq!(status, 422);
    let (status, _) = server
        .call("POST", "/api/v1/subscriptions/nope/secret/rotate", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
#[ignore = "needs the Python package standardwebhooks==1.1.0: see README, Tests"]
async fn rotated_signatures_verify_with_the_standard_webhooks_library() {
    python::require_module("standardwebhooks", "standardwebhooks==1.1.0");
    let (_server, _receiver, _, old, new, during, after) = deliveries_around_a_rotation().await;
    // During the overlap a receiver holding either secret verifies the delivery; after it,
    // the new secret does.
    let delivery = |received: &common::receiver::Received, secret: &str| {
        json!({"secret": secret, "raw_secret": false, "id": received.header("webhook-id"),
               "timestamp": received.header("webhook-timestamp").parse::<i64>().unwrap(),
               "body": received.body, "signature": received.header("webhook-signature")})
    };
    let deliveries = json!([
        delivery(&during, &old),
        delivery(&during, &new),
        delivery(&after, &new)
    ]);
    let stdout = python::run_script(
        "standardwebhooks_verify.py",
        Vec::new(),
        deliveries.to_string(),
    )
    .await;
    assert!(stdout.contains("verified 3 deliveries: ok"), "{stdout}");
}

#[tokio::test]
async fn a_traceparent_travels_from_ingest_to_the_stored_event_and_the_webhook() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &["user.*"]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let post = |header: &'static str, event: Value| {
        let request = server
            .client
            .post(server.url("/api/v1/events"))
            .header("traceparent", header)
            .header("x-correlation-id", "trace-test")
            .json(&event);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }
    };
    let event = json!({"type": "user.traced", "source": "api", "data": {"user_id": "usr_1"}});
    let stored = post(traceparent, event.clone()).await;
    assert_eq!(stored["traceparent"], traceparent, "{stored}");
    assert!(eventually(WAIT, || async { receiver.count() == 1 }).await);
    let delivered = &receiver.received()[0];
    assert_eq!(delivered.header("traceparent"), traceparent);
    assert_eq!(delivered.header("x-correlation-id"), "trace-test");
    assert_eq!(delivered.json()["traceparent"], traceparent);

    // A malformed header is ignored; an event's own trace context wins over the request's.
    let ignored = post("00-not-a-trace-01", event).await;
    assert!(ignored.get("traceparent").is_none(), "{ignored}");
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let structured = json!({"specversion": "1.0", "id": "traced-1", "source": "api",
                            "type": "user.traced", "traceparent": own, "data": {"user_id": "usr_2"}});
    let kept = server
        .client
        .post(server.url("/api/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .header("traceparent", traceparent)
        .body(structured.to_string())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(kept["traceparent"], own, "{kept}");
}

/// Redis gives entries added to two streams in the same millisecond the same id: a batch that
/// spans streams must still be processed at once, every entry of it, not left pending until
/// another consumer claims it (CLAIM_IDLE_MS, 30 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spanning_streams_reaches_every_subscription_at_once() {
    let server =
        TestServer::start_with(&[("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")], Vec::new()).await;
    let users = Receiver::start(Mode::Accept).await;
    server.subscribe(&users.url, &["user.*"]).await;
    let orders = Receiver::start(Mode::Accept).await;
    server.subscribe(&orders.url, &["order.*"]).await;
    let mut batch: Vec<Value> = (0..5)
        .map(|n| json!({"type": "user.created", "source": "t", "data": {"user_id": format!("u{n}")}}))
        .collect();
    batch.extend((0..5).map(
        |n| json!({"type": "order.created", "source": "t", "data": {"order_id": format!("o{n}")}}),
    ));
    let (status, outcome) = server
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&json!({ "events": batch })),
        )
        .await;
    assert_eq!(
        (status, outcome["accepted"].clone()),
        (200, json!(10)),
        "{outcome}"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            users.count() == 5 && orders.count() == 5
        })
        .await,
        "users {}, orders {}",
        users.count(),
        orders.count()
    );
}
