//! Metrics as Prometheus reads them: `promtool check metrics` on a busy process's /metrics, the
//! contract names present, routes labelled by template; the shipped dashboards and alert rules
//! use only metric names the code exports (and pass `promtool check rules`); the compose file is
//! valid by the compose-spec parser and deploys what the stack needs.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually, user_created};

/// True when promtool runs; otherwise the check is skipped, or fails under
/// EVENTFLOW_REQUIRE_SERVICES=1 (`.ci/run` installs the Debian package `prometheus`).
fn has_promtool() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    common::services::tool_available(found, "promtool", "apt-get install prometheus")
}

/// Runs `promtool ARGS`, feeding `stdin`; fails the test with its output unless it succeeds.
fn promtool(args: &[&str], stdin: &str) {
    use std::io::Write;
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

#[tokio::test]
async fn a_busy_process_exports_the_contract_metrics_in_valid_prometheus_format() {
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
    if has_promtool() {
        promtool(&["check", "metrics"], &text);
    }
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
    if has_promtool() {
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
}

#[tokio::test]
async fn the_compose_stack_is_valid_and_complete() {
    if !common::python::has_module("compose_spec", "compose-spec==0.2.1")
        || !common::python::has_module("yaml", "pyyaml")
    {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR").to_string();
    let stdout = common::python::run_script("compose_check.py", vec![root], String::new()).await;
    assert!(stdout.contains("6 services valid"), "{stdout}");
}
