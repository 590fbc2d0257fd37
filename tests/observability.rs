//! Metrics as Prometheus reads them: `promtool check metrics` on a busy process's /metrics, the
//! contract names present, routes labelled by template; the shipped dashboards and alert rules
//! use only metric names the code exports (and pass `promtool check rules`); the compose file is
//! valid by the compose-spec parser and deploys what the stack needs.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::Eventflow;
use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually, user_created};

/// Runs `promtool ARGS`, feeding `stdin`; fails the test with its output unless it succeeds.
fn promtool(args: &[&str], stdin: &str) {
    use std::io::Write;
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    common::services::require_tool(found, "promtool", "apt-get install prometheus");
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A process that has stored, listed and failed to deliver an event, with its `/metrics` text
/// once the dead letter is sampled, and the event's id.
async fn busy_process_metrics() -> (TestServer, String, String) {
    let server = TestServer::start_with(&[("MAX_RETRIES", "0")], Vec::new()).await;
    let failing = Receiver::start(Mode::Fail(500)).await;
    server.subscribe(&failing.url, &["user.*"]).await;
    let response = server
        .post_json("/api/v1/events", &user_created("usr_metrics"))
        .await;
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .call("GET", &format!("/api/v1/events/{id}"), None)
        .await;
    server.call("GET", "/api/v1/events?limit=5", None).await;
    server.call("GET", "/no/such/path", None).await;
    // The delivery fails at once into the dead-letter queue, which workers sample every 5 s.
    let sampled = eventually(Duration::from_secs(15), || async {
        server.metrics().await.contains("eventflow_dlq_size 1")
    })
    .await;
    let text = server.metrics().await;
    assert!(sampled, "{text}");
    (server, text, id)
}

#[tokio::test]
async fn a_busy_process_exports_the_contract_metrics_labelled_by_template() {
    let (_server, text, id) = busy_process_metrics().await;
    for name in [
        "eventflow_events_published_total",
        "eventflow_events_consumed_total",
        "eventflow_events_failed_total",
        "eventflow_event_processing_seconds_bucket",
        "eventflow_dlq_size",
        "eventflow_circuit_breaker_state",
        "eventflow_http_requests_total",
        "eventflow_http_request_duration_seconds_bucket",
        "eventflow_webhook_deliveries_total",
        "eventflow_consumer_lag",
        "eventflow_stream_length",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(
        text.contains(r#"route="/api/v1/events/{event_id}""#),
        "routes by template"
    );
    assert!(text.contains(r#"route="unmatched""#));
    assert!(!text.contains(&id), "no event id in a label");
}

#[tokio::test]
#[ignore = "needs promtool (apt-get install prometheus): see README, Tests"]
async fn promtool_accepts_the_metrics_of_a_busy_process() {
    let (_server, text, _) = busy_process_metrics().await;
    promtool(&["check", "metrics"], &text);
}

/// Metric names in `text`, without the suffixes Prometheus adds to histograms.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("eventflow_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(base.to_string());
    }
    names
}

#[test]
fn dashboards_and_alerts_use_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let exported =
        metric_names(&std::fs::read_to_string(root.join("src/observability/metrics.rs")).unwrap());
    assert!(exported.len() >= 10, "{exported:?}");
    let dashboards = root.join("deploy/grafana/dashboards");
    let mut files = 0;
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let panels = dashboard["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{}", path.display());
        for panel in panels {
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{}: {}",
                path.display(),
                panel["title"]
            );
            for target in targets {
                let expr = target["expr"].as_str().unwrap();
                let used = metric_names(expr);
                assert!(!used.is_empty() || expr.contains("up{"), "{expr}");
                for name in used {
                    assert!(
                        exported.contains(&name),
                        "{}: {name} is not exported",
                        path.display()
                    );
                }
            }
        }
        files += 1;
    }
    assert_eq!(files, 4, "four dashboards");
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    for name in metric_names(&alerts) {
        assert!(
            exported.contains(&name),
            "alerts.yml: {name} is not exported"
        );
    }
}

#[test]
#[ignore = "needs promtool (apt-get install prometheus): see README, Tests"]
fn promtool_accepts_the_alert_rules_and_the_scrape_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], "");
    // The compose stack mounts the rules at /etc/prometheus; check the config with them here.
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .unwrap()
        .replace(
            "/etc/prometheus/alerts.yml",
            &root
                .join("deploy/prometheus/alerts.yml")
                .display()
                .to_string(),
        );
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    promtool(&["check", "config", path.to_str().unwrap()], "");
}

#[tokio::test]
#[ignore = "needs the Python packages compose-spec==0.2.1 and pyyaml: see README, Tests"]
async fn the_compose_stack_is_valid_and_complete() {
    common::python::require_module("compose_spec", "compose-spec==0.2.1");
    common::python::require_module("yaml", "pyyaml");
    let root = env!("CARGO_MANIFEST_DIR").to_string();
    let stdout = common::python::run_script("compose_check.py", vec![root], String::new()).await;
    assert!(stdout.contains("6 services valid"), "{stdout}");
}

/// The `/metrics` text of a `serve` process that has done nothing yet, started on a store that
/// holds one subscription (made by an earlier process), once its worker has sampled.
async fn idle_process_metrics(dir: &std::path::Path) -> (String, String) {
    let port = common::services::free_port();
    let database = format!("sqlite://{}/eventflow.db", dir.display());
    let env = [("DATABASE_URL", database.as_str())];
    let client = common::http_client();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = Eventflow::start(dir, port, &["serve"], &env).await;
    let subscription = serde_json::json!({"name": "n", "event_types": ["*"],
                                          "webhook_url": "http://127.0.0.1:9/hook"});
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/subscriptions"))
        .json(&subscription)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    first.signal("TERM");
    assert!(first.exit_status(Duration::from_secs(20)).await.is_some());

    let _idle = Eventflow::start(dir, port, &["serve"], &env).await;
    let expected = format!(r#"eventflow_circuit_breaker_state{{subscription="{id}"}} 0"#);
    let metrics = || async {
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    };
    let sampled = eventually(Duration::from_secs(10), || async {
        metrics().await.contains(&expected)
    })
    .await;
    let text = metrics().await;
    assert!(sampled, "{text}");
    (text, id)
}

#[tokio::test]
async fn an_idle_process_exports_every_series_it_knows_the_labels_of_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (text, subscription) = idle_process_metrics(dir.path()).await;
    let mut expected: Vec<String> = Vec::new();
    for stream in ["events:user", "events:business", "events:default"] {
        for counter in [
            "eventflow_events_published_total",
            "eventflow_events_consumed_total",
            "eventflow_events_failed_total",
        ] {
            expected.push(format!(r#"{counter}{{stream="{stream}"}} 0"#));
        }
        expected.push(format!(
            r#"eventflow_event_processing_seconds_count{{stream="{stream}"}} 0"#
        ));
    }
    for outcome in ["delivered", "retry", "dead_lettered"] {
        expected.push(format!(
            r#"eventflow_webhook_deliveries_total{{subscription="{subscription}",outcome="{outcome}"}} 0"#
        ));
    }
    expected.extend(
        [
            r#"eventflow_http_request_duration_seconds_count{method="POST",route="/api/v1/events"} 0"#,
            r#"eventflow_http_request_duration_seconds_count{method="GET",route="/api/v1/events/{event_id}"} 0"#,
            "eventflow_producer_batch_size_count 0",
            "eventflow_producer_commit_seconds_count 0",
            "eventflow_live_streams 0",
        ]
        .map(String::from),
    );
    for series in expected {
        assert!(text.contains(&series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
#[ignore = "needs promtool (apt-get install prometheus): see README, Tests"]
async fn promtool_accepts_the_metrics_of_an_idle_process() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = idle_process_metrics(dir.path()).await;
    promtool(&["check", "metrics"], &text);
}

/// The JSON log lines of `serve` with `env` after a POST of the README's login example with
/// `X-Correlation-ID: checkout-7f3a` and the key `shop`, and a GET of that event, once its
/// delivery to a subscription whose endpoint refuses connections has failed (or 5 s passed).
async fn log_after_requests(env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let port = common::services::free_port();
    let log_path = dir.path().join("eventflow.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let database = format!("sqlite://{}/eventflow.db", dir.path().display());
    let mut all_env = vec![
        ("DATABASE_URL", database.as_str()),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
        ("API_KEYS", "shop=sk_shop_1f3e5d"),
    ];
    all_env.extend_from_slice(env);
    let mut server =
        Eventflow::start_logging_to(dir.path(), port, &["serve"], &all_env, log.into()).await;
    let client = common::http_client();
    let refusing = serde_json::json!({"name": "n", "event_types": ["user.*"],
                                      "webhook_url": "http://127.0.0.1:9/hook"});
    let subscribed = client
        .post(format!("http://127.0.0.1:{port}/api/v1/subscriptions"))
        .bearer_auth("sk_shop_1f3e5d")
        .json(&refusing)
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);
    let login = serde_json::json!({"type": "user.login", "source": "web-app",
        "data": {"user_id": "usr_123"}, "metadata": {"partition_key": "usr_123"}});
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/api/v1/events"))
        .bearer_auth("sk_shop_1f3e5d")
        .header("x-correlation-id", "checkout-7f3a")
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let response = client
        .get(format!("http://127.0.0.1:{port}/api/v1/events/{id}"))
        .bearer_auth("sk_shop_1f3e5d")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually(Duration::from_secs(5), || async {
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("webhook delivery failed")
    })
    .await;
    server.signal("TERM");
    assert!(server.exit_status(Duration::from_secs(20)).await.is_some());
    std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn every_request_leaves_one_access_log_line_with_its_correlation_id_and_key_name() {
    let lines = log_after_requests(&[]).await;
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| {
            line["message"] == "request" && line["route"].as_str().unwrap().starts_with("/api/")
        })
        .collect();
    assert_eq!(access.len(), 3, "{lines:#?}");
    let post = access[1];
    assert_eq!(post["level"], "INFO", "{post}");
    assert_eq!(post["route"], "/api/v1/events", "{post}");
    assert_eq!(post["status"], 201, "{post}");
    assert_eq!(post["api_key"], "shop", "{post}");
    assert!(post["latency_ms"].as_f64().unwrap() > 0.0, "{post}");
    assert_eq!(post["method"], "POST", "{post}");
    assert_eq!(post["correlation_id"], "checkout-7f3a", "{post}");
    assert_eq!(
        access[2]["route"], "/api/v1/events/{event_id}",
        "{}",
        access[2]
    );
    let failed = lines
        .iter()
        .find(|line| line["message"] == "webhook delivery failed; retrying")
        .expect("a WARN line for the failed delivery");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(
        failed["span"]["correlation_id"], "checkout-7f3a",
        "{failed}"
    );
    let all = serde_json::Value::from(lines.clone()).to_string();
    assert!(!all.contains("sk_shop_1f3e5d"), "a key reached the log");
}

#[tokio::test]
async fn access_log_false_turns_the_access_log_off() {
    let lines = log_after_requests(&[("ACCESS_LOG", "false")]).await;
    assert!(
        lines.iter().all(|line| line["message"] != "request"),
        "{lines:#?}"
    );
}
