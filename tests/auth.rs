//! Access control through the HTTP API and the binary: API keys with scopes, 401 and 403 as
//! problems, open health probes, METRICS_API_KEY, rate limits per key, production refusing to
//! run open, the CLI sending its key, and no key or webhook secret ever in a log line.

mod common;

use std::time::Duration;

use common::services::free_port;
use common::{TestServer, user_created};
use serde_json::{Value, json};

const KEYS: &str = "shop=sk_shop_7f3a9c[events:write],reader=sk_read_2b8d4e[events:read],\
                    ops=sk_ops_9c1f5a[admin],all=sk_all_4e6b2d";

/// Sends `method path` with `key` as `Authorization: Bearer` (or none); returns status, headers
/// and JSON body.
async fn call_as(
    server: &TestServer,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn each_key_may_do_what_its_scopes_allow_and_nothing_more() {
    let server = TestServer::start_with(&[("API_KEYS", KEYS)], Vec::new()).await;
    let event = user_created("usr_1");
    let subscription =
        json!({"name": "n", "event_types": ["*"], "webhook_url": "https://example.com/h"});
    let event_type = json!({"schema": {"type": "object"}});
    let payload = json!({"data": {}});

    let (status, headers, problem) =
        call_as(&server, None, "POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{problem}"
    );
    let (status, _, problem) =
        call_as(&server, Some("sk_guess"), "GET", "/api/v1/events", None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        !problem.to_string().contains("sk_guess"),
        "the key is not echoed: {problem}"
    );

    let cases = [
        (
            "sk_shop_7f3a9c",
            "POST",
            "/api/v1/events",
            Some(&event),
            201,
        ),
        ("sk_shop_7f3a9c", "GET", "/api/v1/events", None, 403),
        ("sk_shop_7f3a9c", "GET", "/api/v1/subscriptions", None, 403),
        ("sk_shop_7f3a9c", "GET", "/api/v1/events/stream", None, 403),
        ("sk_shop_7f3a9c", "GET", "/api/v1/stats", None, 403),
        ("sk_read_2b8d4e", "GET", "/api/v1/stats", None, 200),
        ("sk_read_2b8d4e", "GET", "/api/v1/events", None, 200),
        (
            "sk_read_2b8d4e",
            "POST",
            "/api/v1/events/batch",
            Some(&json!([event])),
            403,
        ),
        ("sk_read_2b8d4e", "GET", "/api/v1/dlq", None, 403),
        (
            "sk_ops_9c1f5a",
            "POST",
            "/api/v1/subscriptions",
            Some(&subscription),
            201,
        ),
        ("sk_ops_9c1f5a", "GET", "/api/v1/replays", None, 200),
        ("sk_ops_9c1f5a", "GET", "/api/v1/events", None, 403),
        ("sk_all_4e6b2d", "GET", "/api/v1/events", None, 200),
        ("sk_all_4e6b2d", "GET", "/api/v1/dlq", None, 200),
        // Changing the schema registry is an operator's; reading it and validating a reader's.
        (
            "sk_read_2b8d4e",
            "PUT",
            "/api/v1/event-types/invoice.paid",
            Some(&event_type),
            403,
        ),
        (
            "sk_ops_9c1f5a",
            "PUT",
            "/api/v1/event-types/invoice.paid",
            Some(&event_type),
            201,
        ),
        ("sk_read_2b8d4e", "GET", "/api/v1/event-types", None, 200),
        (
            "sk_read_2b8d4e",
            "POST",
            "/api/v1/event-types/invoice.paid/validate",
            Some(&payload),
            200,
        ),
        (
            "sk_shop_7f3a9c",
            "DELETE",
            "/api/v1/event-types/invoice.paid",
            None,
            403,
        ),
    ];
    for (key, method, path, body, expected) in cases {
        let (status, _, answer) = call_as(&server, Some(key), method, path, body).await;
        assert_eq!(status, expected, "{key} {method} {path}: {answer}");
        if status == 403 {
            let detail = answer["detail"].as_str().unwrap();
            assert!(
                detail.contains("scope") && !detail.contains(key),
                "{detail}"
            );
        }
    }
    // The live stream opens with a reading key (its body never ends: only the status is read);
    // the console's page itself holds no data and needs no key.
    let stream = server
        .client
        .get(server.url("/api/v1/events/stream"))
        .bearer_auth("sk_read_2b8d4e")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("EventFlow console"));
    // X-API-Key works as well as a bearer token.
    let response = server
        .client
        .get(server.url("/api/v1/events"))
        .header("x-api-key", "sk_read_2b8d4e")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The API's description says how keys are sent.
    let (_, _, document) = call_as(&server, None, "GET", "/openapi.json", None).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key", "{schemes}");
    // Probes, metrics (no METRICS_API_KEY here) and the API's description stay open.
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
    ] {
        let (status, _, _) = call_as(&server, None, "GET", path, None).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn metrics_ask_for_their_own_key_when_one_is_set() {
    let server = TestServer::start_with(&[("METRICS_API_KEY", "mk_5d2c8e")], Vec::new()).await;
    let (status, _, _) = call_as(&server, None, "GET", "/metrics", None).await;
    assert_eq!(status, 401);
    let (status, _, _) = call_as(&server, Some("sk_other"), "GET", "/metrics", None).await;
    assert_eq!(status, 401);
    let response = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth("mk_5d2c8e")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("# TYPE"));
    // Without API_KEYS the API itself stays open (development).
    let (status, _, _) = call_as(&server, None, "GET", "/api/v1/events", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_key_is_limited_to_its_rate_with_retry_after() {
    let server = TestServer::start_with(
        &[
            ("API_KEYS", KEYS),
            ("RATE_LIMIT_PER_SEC", "1"),
            ("RATE_LIMIT_BURST", "3"),
        ],
        Vec::new(),
    )
    .await;
    let list_events = |key| call_as(&server, Some(key), "GET", "/api/v1/events", None);
    for _ in 0..3 {
        assert_eq!(list_events("sk_read_2b8d4e").await.0, 200);
    }
    let (status, headers, problem) = list_events("sk_read_2b8d4e").await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another key has its own budget; the limited one gets a token back after Retry-After.
    assert_eq!(list_events("sk_all_4e6b2d").await.0, 200);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(list_events("sk_read_2b8d4e").await.0, 200);
}

#[test]
fn production_refuses_to_start_without_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .arg("serve")
        .current_dir(dir.path())
        .env("APP_ENV", "production")
        .env_remove("API_KEYS")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("API_PORT", "0")
        .output()
        .unwrap();
    // Exit status 2, as for every invalid configuration, with one line naming the variable.
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("API_KEYS") && stderr.contains("APP_ENV=production"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_cli_sends_its_key_and_no_key_or_secret_reaches_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("eventflow.log")).unwrap();
    let database = format!("sqlite://{}/eventflow.db", dir.path().display());
    let env = [
        ("API_KEYS", KEYS),
        ("API_PORT", &port.to_string()),
        ("API_HOST", "127.0.0.1"),
        ("DATABASE_URL", &database),
        ("LOG_LEVEL", "debug"),
        ("LOG_FORMAT", "json"),
    ];
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .arg("serve")
        .envs(env)
        .env_remove("REDIS_URL")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = common::http_client();
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            client
                .get(format!("{base}/health/live"))
                .send()
                .await
                .is_ok()
        })
        .await
    );
    let secret = "whsec_bG9nLWdyZXAtc2VjcmV0LXZhbHVl";
    let subscription = json!({"name": "n", "event_types": ["*"], "webhook_url": "http://127.0.0.1:9/h",
                              "secret": secret});
    for (key, method, path, body) in [
        (
            "sk_ops_9c1f5a",
            "POST",
            "/api/v1/subscriptions",
            Some(subscription.clone()),
        ),
        (
            "sk_shop_7f3a9c",
            "POST",
            "/api/v1/events",
            Some(user_created("usr_9")),
        ),
        ("sk_wrong_0a0a0a", "GET", "/api/v1/events", None),
        ("sk_shop_7f3a9c", "GET", "/api/v1/subscriptions", None),
    ] {
        let mut request = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap();
    }

    // The CLI sends --api-key, or the first full-access key of API_KEYS; without one it fails.
    let cli = |args: Vec<&'static str>, env: Vec<(&'static str, &'static str)>| {
        let base = base.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_eventflow"))
                .args(args)
                .args(["--url", &base])
                .env_remove("API_KEYS")
                .env_remove("EVENTFLOW_API_KEY")
                .envs(env)
                .output()
                .await
                .unwrap()
        }
    };
    let flagged = cli(
        vec!["events", "list", "--api-key", "sk_read_2b8d4e"],
        vec![],
    )
    .await;
    assert!(
        flagged.status.success(),
        "{}",
        String::from_utf8_lossy(&flagged.stderr)
    );
    let from_env = cli(vec!["dlq", "list"], vec![("API_KEYS", KEYS)]).await;
    assert!(
        from_env.status.success(),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );
    let from_variable = cli(
        vec!["replay", "list"],
        vec![("EVENTFLOW_API_KEY", "sk_ops_9c1f5a")],
    )
    .await;
    assert!(
        from_variable.status.success(),
        "{}",
        String::from_utf8_lossy(&from_variable.stderr)
    );
    let without = cli(vec!["events", "list"], vec![]).await;
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("401"));

    // Stop gracefully, then read every line the server logged.
    let pid = server.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .unwrap()
        .unwrap();
    let logged = std::fs::read_to_string(dir.path().join("eventflow.log")).unwrap();
    assert!(logged.lines().count() > 5, "the server logged: {logged}");
    for needle in [
        "sk_shop_7f3a9c",
        "sk_read_2b8d4e",
        "sk_ops_9c1f5a",
        "sk_all_4e6b2d",
        "sk_wrong_0a0a0a",
        secret,
        "bG9nLWdyZXAtc2VjcmV0",
    ] {
        assert!(!logged.contains(needle), "{needle} appears in the logs");
    }
}
