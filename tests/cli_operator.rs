//! The operator commands against a running EventFlow: `events get|list`, `dlq
//! list|show|retry|delete`, `replay` and `demo`, as tables and as JSON, with one-line errors and a
//! non-zero exit.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{TestServer, eventually, user_created};
use serde_json::{Value, json};

/// Runs `eventflow ARGS --url SERVER` (without blocking the runtime that serves the server).
async fn eventflow(server: &TestServer, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .args(args)
        .args(["--url", &server.base])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn events_are_listed_as_a_table_or_json_and_fetched_by_id() {
    let server = TestServer::start().await;
    for user in ["usr_1", "usr_2", "usr_3"] {
        server
            .post_json("/api/v1/events", &user_created(user))
            .await;
    }
    let table = stdout(&eventflow(&server, &["events", "list", "--limit", "2"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SEQ") && lines[0].contains("TYPE"),
        "{table}"
    );
    assert_eq!(
        lines.len(),
        4,
        "header, two rows, the next-page hint: {table}"
    );
    assert!(lines[1].contains("user.created"), "{table}");
    assert!(lines[3].starts_with("more: --cursor "), "{table}");

    let json: Value = serde_json::from_str(&stdout(
        &eventflow(
            &server,
            &["events", "list", "--json", "--event-type", "user.*"],
        )
        .await,
    ))
    .unwrap();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let id = events[0]["id"].as_str().unwrap();
    let one: Value =
        serde_json::from_str(&stdout(&eventflow(&server, &["events", "get", id]).await)).unwrap();
    assert_eq!(one["id"], id);

    let missing = eventflow(&server, &["events", "get", "no-such-event"]).await;
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");
}

#[tokio::test]
async fn dead_letters_are_listed_shown_retried_and_deleted() {
    let server = TestServer::start_with(&[("MAX_RETRIES", "0")], Vec::new()).await;
    let receiver = Receiver::start(Mode::Fail(500)).await;
    let body = json!({"name": "n", "event_types": ["*"], "webhook_url": receiver.url});
    server
        .call("POST", "/api/v1/subscriptions", Some(&body))
        .await;
    for _ in 0..2 {
        server
            .post_json("/api/v1/events", &user_created("usr_9"))
            .await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            server.call("GET", "/api/v1/dlq", None).await.1["dead_letters"]
                .as_array()
                .is_some_and(|letters| letters.len() == 2)
        })
        .await
    );
    let table = stdout(&eventflow(&server, &["dlq", "list"]).await);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("webhook") && table.contains("500"),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&stdout(
        &eventflow(&server, &["dlq", "list", "--json"]).await,
    ))
    .unwrap();
    let ids: Vec<&str> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    let shown = stdout(&eventflow(&server, &["dlq", "show", ids[0]]).await);
    assert!(shown.contains("\"status_code\": 500"), "{shown}");

    receiver.set(Mode::Accept);
    let retried = stdout(&eventflow(&server, &["dlq", "retry", ids[0]]).await);
    assert!(retried.contains("back in processing"), "{retried}");
    assert!(eventually(Duration::from_secs(10), || async { receiver.count() == 3 }).await);
    let deleted = stdout(&eventflow(&server, &["dlq", "delete", ids[1]]).await);
    assert!(deleted.contains("deleted"), "{deleted}");
    assert_eq!(
        stdout(&eventflow(&server, &["dlq", "list"]).await),
        "(none)\n"
    );
    let again = eventflow(&server, &["dlq", "delete", ids[1]]).await;
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_eventflow"))
        .args(["dlq", "list", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach EventFlow at http://127.0.0.1:9/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_sends_coherent_events_of_every_known_type() {
    let server = TestServer::start().await;
    let summary: Value = serde_json::from_str(&stdout(
        &eventflow(&server, &["demo", "--count", "300", "--json"]).await,
    ))
    .unwrap();
    assert_eq!(summary["sent"], 300);
    assert_eq!(summary["refused"], 0, "every demo event is valid");
    assert_eq!(summary["types"], 15);
    assert_eq!(
        summary["registered"],
        json!([]),
        "registered at first start"
    );
    let (_, page) = server.call("GET", "/api/v1/events?limit=1000", None).await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 300);
    // Coherent: every payment belongs to an order created before it.
    let orders: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "order.created")
        .map(|e| &e["data"]["order_id"])
        .collect();
    let payments: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "payment.completed")
        .map(|e| &e["data"]["order_id"])
        .collect();
    assert!(!payments.is_empty());
    assert!(payments.iter().all(|order| orders.contains(order)));

    // A type an operator deleted is registered again; one an operator changed stays changed.
    let (status, _) = server
        .call("DELETE", "/api/v1/event-types/page.view", None)
        .await;
    assert_eq!(status, 204);
    let (_, login) = server
        .call("GET", "/api/v1/event-types/user.login", None)
        .await;
    let mut schema = login["schema"].clone();
    schema["required"] = json!(["user_id", "method"]);
    let (status, _) = server
        .call(
            "PUT",
            "/api/v1/event-types/user.login",
            Some(&json!({ "schema": schema })),
        )
        .await;
    assert_eq!(status, 200);
    let paced = stdout(&eventflow(&server, &["demo", "--count", "20", "--rate", "200"]).await);
    assert!(
        paced.starts_with("registered page.view; sent 20 events of "),
        "{paced}"
    );
    let (status, view) = server
        .call("GET", "/api/v1/event-types/page.view", None)
        .await;
    assert_eq!((status, view["version"].clone()), (200, json!(2)), "{view}");
    let (_, login) = server
        .call("GET", "/api/v1/event-types/user.login", None)
        .await;
    assert_eq!(login["version"], 2, "the operator's change stays");
}

#[tokio::test]
async fn replay_follows_a_replay_to_its_end_and_lists_shows_and_cancels() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    server.subscribe(&receiver.url, &["user.*"]).await;
    for user in ["usr_1", "usr_2"] {
        server
            .post_json("/api/v1/events", &user_created(user))
            .await;
    }
    assert!(eventually(Duration::from_secs(10), || async { receiver.count() == 2 }).await);

    // Followed to its end, then shown as a summary.
    let summary = stdout(
        &eventflow(
            &server,
            &["replay", "--stream", "events:user", "--since", "1h"],
        )
        .await,
    );
    assert!(
        summary.starts_with("replay rpl_") && summary.contains(" completed"),
        "{summary}"
    );
    assert!(summary.contains("matched     2"), "{summary}");
    assert!(eventually(Duration::from_secs(10), || async { receiver.count() == 4 }).await);

    // A dry run, for scripts.
    let args = [
        "replay",
        "--json",
        "--stream",
        "events:user",
        "--since",
        "1h",
        "--until",
        "now",
        "--event-type",
        "user.created",
        "--dry-run",
    ];
    let dry: Value = serde_json::from_str(&stdout(&eventflow(&server, &args).await)).unwrap();
    assert_eq!(
        (&dry["status"], &dry["dry_run"], &dry["matched"]),
        (&json!("completed"), &json!(true), &json!(2)),
        "{dry}"
    );

    let list = stdout(&eventflow(&server, &["replay", "list"]).await);
    assert!(
        list.lines().next().unwrap().starts_with("ID") && list.lines().count() == 3,
        "{list}"
    );
    let id = dry["id"].as_str().unwrap();
    let shown = stdout(&eventflow(&server, &["replay", "show", id]).await);
    assert!(
        shown.contains("(dry run)") && shown.contains("types       user.created"),
        "{shown}"
    );

    // Queued without following, then cancelled (or already done: a 409 in one line).
    let args = [
        "replay",
        "--json",
        "--detach",
        "--stream",
        "events:user",
        "--since",
        "2024-01-01T00:00:00Z",
        "--until",
        "2024-01-02T00:00:00Z",
    ];
    let queued: Value = serde_json::from_str(&stdout(&eventflow(&server, &args).await)).unwrap();
    let cancel = eventflow(
        &server,
        &["replay", "cancel", queued["id"].as_str().unwrap()],
    )
    .await;
    let answer = String::from_utf8_lossy(if cancel.status.success() {
        &cancel.stdout
    } else {
        &cancel.stderr
    })
    .to_string();
    assert!(
        answer.contains("cancelled") || answer.contains("409"),
        "{answer}"
    );

    // A refused request is one line and exit 1.
    let refused = eventflow(
        &server,
        &["replay", "--stream", "events:nope", "--since", "1h"],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(error.trim().lines().count(), 1, "{error}");
    assert!(
        error.contains("422") && error.contains("unknown stream"),
        "{error}"
    );
    let bad_time = eventflow(
        &server,
        &["replay", "--stream", "events:user", "--since", "last week"],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&bad_time.stderr).contains("--since"),
        "bad time named"
    );
}

/// Runs `eventflow bench ARGS --json --duration 1` against `server`; returns its report.
async fn bench_report(server: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend(["--json", "--duration", "1"]);
    serde_json::from_str(&stdout(&eventflow(server, &all).await)).unwrap()
}

#[tokio::test]
async fn bench_loads_the_api_and_reports_rates_percentiles_and_errors() {
    let server = TestServer::start().await;
    let report = bench_report(&server, &["ingest", "--connections", "2"]).await;
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 10, "{report}");
    assert_eq!(report["errors"], json!({}), "{report}");
    let latency = &report["latency_ms"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        latency["p50"].as_f64() <= latency["p99"].as_f64(),
        "{report}"
    );
    assert!(
        latency["p99"].as_f64() <= latency["max"].as_f64(),
        "{report}"
    );
    let (_, page) = server.call("GET", "/api/v1/events?limit=1", None).await;
    assert_eq!(
        page["events"][0]["type"], "bench.event",
        "the events were stored"
    );

    // Open loop: 20 batch requests a second for a second, 10 events each.
    let report = bench_report(&server, &["batch", "--rate", "20", "--batch-size", "10"]).await;
    let requests = report["requests"].as_u64().unwrap();
    assert!((15..=21).contains(&requests), "{report}");
    assert!(
        report["events_per_second"].as_f64().unwrap() > 100.0,
        "{report}"
    );

    // End to end: each event timed from its POST to its webhook delivery.
    let report = bench_report(&server, &["e2e", "--rate", "50"]).await;
    assert_eq!(report["sent"], 50, "{report}");
    assert_eq!(report["delivered"], report["accepted"], "{report}");
    assert!(
        report["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let (_, subscriptions) = server.call("GET", "/api/v1/subscriptions", None).await;
    assert_eq!(
        subscriptions["subscriptions"],
        json!([]),
        "the run cleans up"
    );

    // A replay of events stored for it, by a server that does not pace replays.
    let unpaced = TestServer::start_with(&[("REPLAY_RATE", "0")], Vec::new()).await;
    let report = bench_report(&unpaced, &["replay", "--events", "1200"]).await;
    assert_eq!(report["matched"], 1200, "{report}");
    assert_eq!(report["replayed"], 1200, "{report}");
    assert_eq!(
        report["deliveries"], 1200,
        "one job each for the run's receiver: {report}"
    );
    assert!(
        report["events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["running_seconds"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["dry_run_events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let (_, subscriptions) = unpaced.call("GET", "/api/v1/subscriptions", None).await;
    assert_eq!(
        subscriptions["subscriptions"],
        json!([]),
        "the run cleans up"
    );

    // A refused request is counted by its status.
    let keyed = TestServer::start_with(&[("API_KEYS", "right-key")], Vec::new()).await;
    let report = bench_report(&keyed, &["ingest", "--api-key", "wrong"]).await;
    assert!(report["errors"]["401"].as_u64().unwrap() > 0, "{report}");
}

#[tokio::test]
async fn types_are_applied_from_yaml_listed_and_shown() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("types.yaml");
    let declare = |amount_type: &str| {
        format!(
            "event_types:\n\
             - type: invoice.paid\n  description: An invoice was paid\n  schema:\n    type: object\n    required: [invoice_id]\n    properties:\n      invoice_id: {{type: string}}\n      amount: {{type: {amount_type}}}\n\
             - type: invoice.voided\n  schema: {{type: object}}\n"
        )
    };
    std::fs::write(&file, declare("number")).unwrap();
    let path = file.to_str().unwrap();
    let applied = stdout(&eventflow(&server, &["types", "apply", path]).await);
    assert_eq!(
        applied,
        "invoice.paid: version 1\ninvoice.voided: version 1\n"
    );
    // Applying the same file again (every deploy) makes no version.
    let again = stdout(&eventflow(&server, &["types", "apply", path]).await);
    assert_eq!(again, applied);
    std::fs::write(&file, declare("integer")).unwrap();
    let changed = stdout(&eventflow(&server, &["types", "apply", path]).await);
    assert_eq!(
        changed,
        "invoice.paid: version 2\ninvoice.voided: version 1\n"
    );

    let table = stdout(&eventflow(&server, &["types", "list"]).await);
    assert!(table.starts_with("TYPE"), "{table}");
    assert!(
        table.contains("invoice.paid") && table.contains("invoice.voided"),
        "{table}"
    );
    let shown: Value = serde_json::from_str(&stdout(
        &eventflow(&server, &["types", "show", "invoice.paid"]).await,
    ))
    .unwrap();
    assert_eq!(shown["schema"]["properties"]["amount"]["type"], "integer");
    assert_eq!(shown["description"], "An invoice was paid");

    std::fs::write(&file, "- type: broken.thing\n  schema: {type: objekt}\n").unwrap();
    let refused = eventflow(&server, &["types", "apply", path]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("/schema/type"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
