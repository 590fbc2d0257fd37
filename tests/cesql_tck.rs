//! Runs the official CloudEvents SQL TCK (vendored in tests/cesql-tck/, see
//! the NOTICE there) against the cesql module, and again through `POST
//! /api/v1/filters/evaluate`: every case must produce the expected value and
//! exactly the expected error kind (or no error).

mod common;

use std::path::Path;

use common::TestServer;
use eventflow::cesql::{Expression, Value};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

/// Number of cases in the vendored TCK; update when re-vendoring.
const EXPECTED_CASES: usize = 275;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    result: Option<serde_yaml_ng::Value>,
    error: Option<String>,
    event: Option<serde_yaml_ng::Value>,
    event_overrides: Option<serde_yaml_ng::Value>,
}

fn yaml_to_json_object(v: &serde_yaml_ng::Value) -> Result<Map<String, Json>, String> {
    match serde_json::to_value(v).map_err(|e| e.to_string())? {
        Json::Object(m) => Ok(m),
        other => Err(format!("event is not an object: {other}")),
    }
}

/// The input event: `event` if given, else any valid event plus overrides.
fn build_event(case: &Case) -> Result<Map<String, Json>, String> {
    let mut event = match &case.event {
        Some(e) => yaml_to_json_object(e)?,
        None => {
            let mut m = Map::new();
            for (k, v) in [
                ("specversion", "1.0"),
                ("id", "tck-event-id"),
                ("source", "/cesql/tck"),
                ("type", "io.cloudevents.cesql.tck"),
            ] {
                m.insert(k.to_owned(), Json::String(v.to_owned()));
            }
            m
        }
    };
    if let Some(o) = &case.event_overrides {
        event.extend(yaml_to_json_object(o)?);
    }
    Ok(event)
}

fn expected_value(v: &serde_yaml_ng::Value) -> Result<Value, String> {
    match v {
        serde_yaml_ng::Value::Bool(b) => Ok(Value::Boolean(*b)),
        serde_yaml_ng::Value::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::Integer)
            .ok_or_else(|| format!("result {n} is not a 32-bit integer")),
        serde_yaml_ng::Value::String(s) => Ok(Value::String(s.clone())),
        other => Err(format!("unsupported result {other:?}")),
    }
}

/// Runs one case; `Err` describes the mismatch.
fn run_case(case: &Case) -> Result<(), String> {
    let event = build_event(case)?;
    let (value, errors) = match Expression::parse(&case.expression) {
        // A parse failure yields the Boolean zero value and one parse error.
        Err(e) => (
            Value::Boolean(false),
            vec![("parse".to_owned(), e.to_string())],
        ),
        Ok(expr) => {
            let eval = expr.evaluate(&event);
            let errors = eval
                .errors
                .iter()
                .map(|e| (e.kind.as_str().to_owned(), e.to_string()))
                .collect();
            (eval.value, errors)
        }
    };
    let kinds: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    let want_kinds: Vec<&str> = case.error.iter().map(String::as_str).collect();
    if kinds != want_kinds {
        return Err(format!(
            "errors: expected {want_kinds:?}, got {:?}",
            errors.iter().map(|(_, m)| m).collect::<Vec<_>>()
        ));
    }
    if let Some(want) = &case.result {
        let want = expected_value(want)?;
        if value != want {
            return Err(format!("value: expected {want:?}, got {value:?}"));
        }
    }
    Ok(())
}

/// Every case of the vendored TCK, with the name of its suite.
fn cases() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cesql-tck");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no TCK files in {}", dir.display());
    let mut cases = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let suite: Suite = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        cases.extend(
            suite
                .tests
                .into_iter()
                .map(|case| (suite.name.clone(), case)),
        );
    }
    assert_eq!(
        cases.len(),
        EXPECTED_CASES,
        "TCK case count changed; update EXPECTED_CASES"
    );
    cases
}

/// Fails listing every case that `run` refused.
fn report(outcomes: Vec<(String, &Case, Result<(), String>)>) {
    let total = outcomes.len();
    let failures: Vec<String> = outcomes
        .into_iter()
        .filter_map(|(suite, case, outcome)| {
            outcome
                .err()
                .map(|why| format!("[{suite}] {} `{}`: {why}", case.name, case.expression))
        })
        .collect();
    println!("CESQL TCK: {}/{total} cases passed", total - failures.len());
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{} TCK case(s) failed", failures.len());
}

#[test]
fn cesql_tck() {
    let cases = cases();
    report(
        cases
            .iter()
            .map(|(suite, case)| (suite.clone(), case, run_case(case)))
            .collect(),
    );
}

/// Runs one case through the playground endpoint; `Err` describes the mismatch.
async fn run_case_through_the_api(server: &TestServer, case: &Case) -> Result<(), String> {
    let body = serde_json::json!({"expression": case.expression, "event": build_event(case)?});
    let (status, answer) = server
        .call("POST", "/api/v1/filters/evaluate", Some(&body))
        .await;
    if status != 200 {
        return Err(format!("status {status}: {answer}"));
    }
    let kind = answer["error"]["kind"].as_str();
    if kind != case.error.as_deref() {
        return Err(format!("error: expected {:?}, got {answer}", case.error));
    }
    match &case.result {
        Some(want) if answer["result"] != serde_json::to_value(want).unwrap() => {
            Err(format!("result: expected {want:?}, got {answer}"))
        }
        _ => Ok(()),
    }
}

#[tokio::test]
async fn cesql_tck_through_the_api() {
    let server = TestServer::start().await;
    let cases = cases();
    let mut outcomes = Vec::new();
    for (suite, case) in &cases {
        outcomes.push((
            suite.clone(),
            case,
            run_case_through_the_api(&server, case).await,
        ));
    }
    report(outcomes);
}
