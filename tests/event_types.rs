//! The schema registry through the API: versions, invalid schemas and examples, enforcement at
//! ingest in every content mode and per batch item, the `dataschema` a stored event records,
//! UNKNOWN_EVENT_TYPES=reject, and a change made through one API process enforced by another.

mod common;

use std::time::Duration;

use common::process::Eventflow;
use common::services::free_port;
use common::{Api, TestServer, eventually, http_client};
use serde_json::{Value, json};

/// A typical invoice schema: four required fields, a few optional ones.
fn invoice_schema() -> Value {
    json!({
        "type": "object",
        "required": ["invoice_id", "amount", "currency", "customer"],
        "properties": {
            "invoice_id": {"type": "string", "minLength": 1},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "customer": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            "paid_at": {"type": "string"},
            "lines": {"type": "array", "items": {"type": "object"}}
        },
        "additionalProperties": false
    })
}

fn invoice(amount: Value) -> Value {
    json!({"invoice_id": "inv_1", "amount": amount, "currency": "EUR", "customer": {"id": "c1"}})
}

/// The pointers of a problem's violations.
fn pointers(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["pointer"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

async fn register(api: &Api, name: &str, body: &Value) -> (u16, Value) {
    api.call("PUT", &format!("/api/v1/event-types/{name}"), Some(body))
        .await
}

#[tokio::test]
async fn a_changed_schema_is_a_new_version_and_an_unchanged_one_is_not() {
    let server = TestServer::start().await;
    let api = server.api();
    let body = json!({"description": "An invoice was paid", "schema": invoice_schema(),
                      "examples": [invoice(json!(10))]});
    let (status, created) = register(&api, "invoice.paid", &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    assert_eq!(
        created["dataschema"],
        "/api/v1/event-types/invoice.paid/versions/1"
    );
    let (status, again) = register(&api, "invoice.paid", &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["version"], 1, "an unchanged schema makes no version");

    let mut changed = body.clone();
    changed["schema"]["properties"]["note"] = json!({"type": "string"});
    changed["deprecated"] = json!(true);
    let (status, next) = register(&api, "invoice.paid", &changed).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["version"], 2);
    assert_eq!(next["deprecated"], true);

    let (status, first) = api
        .call("GET", "/api/v1/event-types/invoice.paid/versions/1", None)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["schema"], invoice_schema());
    let (status, listed) = api.call("GET", "/api/v1/event-types", None).await;
    assert_eq!(status, 200);
    let invoice = listed["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "invoice.paid")
        .unwrap_or_else(|| panic!("invoice.paid is listed: {listed}"));
    assert_eq!(invoice["version"], 2);

    // Deleted, it is no longer enforced; its versions stay; registered again, it goes on at 3.
    let (status, _) = api
        .call("DELETE", "/api/v1/event-types/invoice.paid", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call("GET", "/api/v1/event-types/invoice.paid", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call("GET", "/api/v1/event-types/invoice.paid/versions/2", None)
        .await;
    assert_eq!(status, 200);
    let event = json!({"type": "invoice.paid", "source": "billing", "data": {"anything": true}});
    let (status, stored) = api.call("POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 201, "{stored}");
    let (status, back) = register(&api, "invoice.paid", &body).await;
    assert_eq!((status, back["version"].as_u64()), (201, Some(3)), "{back}");
}

#[tokio::test]
async fn invalid_schemas_and_examples_are_422_with_pointers() {
    let server = TestServer::start().await;
    let api = server.api();
    let (status, problem) = register(
        &api,
        "invoice.paid",
        &json!({"schema": {"type": "objekt", "properties": {"amount": {"minimum": "zero"}}}}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let pointers = pointers(&problem);
    assert!(pointers.contains(&"/schema/type"), "{problem}");
    assert!(
        pointers.contains(&"/schema/properties/amount/minimum"),
        "{problem}"
    );

    let (status, problem) = register(
        &api,
        "invoice.paid",
        &json!({"schema": invoice_schema(), "examples": [invoice(json!(1)), invoice(json!(-5))]}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/examples/1/amount",
        "{problem}"
    );
    // A reference out of the schema is never fetched.
    let (status, problem) = register(
        &api,
        "invoice.paid",
        &json!({"schema": {"$ref": "https://example.com/invoice.json"}}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = api
        .call("GET", "/api/v1/event-types/invoice.paid", None)
        .await;
    assert_eq!(status, 404, "nothing invalid was stored");
}

#[tokio::test]
async fn ingest_enforces_the_schema_in_every_content_mode_and_per_batch_item() {
    let server = TestServer::start().await;
    let api = server.api();
    let (status, _) = register(&api, "invoice.paid", &json!({"schema": invoice_schema()})).await;
    assert_eq!(status, 201);

    // Simple form: valid is stored with its version; invalid is 422 naming every violation.
    let good = json!({"type": "invoice.paid", "source": "billing", "data": invoice(json!(12.5))});
    let (status, stored) = api.call("POST", "/api/v1/events", Some(&good)).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        stored["dataschema"],
        "/api/v1/event-types/invoice.paid/versions/1"
    );
    let mut bad = invoice(json!(-1));
    bad["currency"] = json!("euro");
    bad["extra"] = json!(1);
    let (status, problem) = api
        .call(
            "POST",
            "/api/v1/events",
            Some(&json!({"type": "invoice.paid", "source": "billing", "data": bad})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let pointers = pointers(&problem);
    assert!(pointers.contains(&"/data/amount"), "{problem}");
    assert!(pointers.contains(&"/data/currency"), "{problem}");
    assert!(
        pointers.contains(&"/data/extra"),
        "additionalProperties names the member: {problem}"
    );

    // Structured mode.
    let structured = json!({"specversion": "1.0", "id": "s-1", "source": "billing",
                            "type": "invoice.paid", "data": {"invoice_id": "x"}});
    let response = server
        .post_as(
            "/api/v1/events",
            "application/cloudevents+json",
            &structured,
        )
        .await;
    assert_eq!(response.status(), 422);
    // Binary mode: the body is the data.
    let response = http_client()
        .post(server.url("/api/v1/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-1")
        .header("ce-source", "billing")
        .header("ce-type", "invoice.paid")
        .header("content-type", "application/json")
        .body(invoice(json!(3)).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = http_client()
        .post(server.url("/api/v1/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-2")
        .header("ce-source", "billing")
        .header("ce-type", "invoice.paid")
        .header("content-type", "text/plain")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "non-JSON data of a registered type");

    // A mixed batch: the valid items are stored, each invalid one is refused on its own.
    let batch = json!({"events": [
        good,
        {"type": "invoice.paid", "source": "billing", "data": {"invoice_id": "y"}},
        {"type": "other.thing", "source": "billing", "data": {"free": "form"}},
    ]});
    let (status, result) = api.call("POST", "/api/v1/events/batch", Some(&batch)).await;
    assert_eq!(status, 200, "{result}");
    let statuses: Vec<u64> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 201], "{result}");
    let missing: Vec<&str> = result["results"][1]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(
        missing,
        ["/data/amount", "/data/currency", "/data/customer"]
    );
}

#[tokio::test]
async fn a_producer_may_name_an_older_version_and_validate_without_storing() {
    let server = TestServer::start().await;
    let api = server.api();
    let loose = json!({"type": "object", "required": ["invoice_id"]});
    register(&api, "invoice.paid", &json!({"schema": loose})).await;
    register(&api, "invoice.paid", &json!({"schema": invoice_schema()})).await;

    let old_shape = json!({"invoice_id": "inv_9"});
    let latest = json!({"type": "invoice.paid", "source": "billing", "data": old_shape});
    let (status, _) = api.call("POST", "/api/v1/events", Some(&latest)).await;
    assert_eq!(status, 422, "the latest version wants more");
    let mut pinned = latest.clone();
    pinned["dataschema"] = json!("/api/v1/event-types/invoice.paid/versions/1");
    let structured = json!({"specversion": "1.0", "id": "p-1", "source": "billing",
                            "type": "invoice.paid", "data": old_shape,
                            "dataschema": "/api/v1/event-types/invoice.paid/versions/1"});
    let response = server
        .post_as(
            "/api/v1/events",
            "application/cloudevents+json",
            &structured,
        )
        .await;
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(
        stored["dataschema"],
        "/api/v1/event-types/invoice.paid/versions/1"
    );
    let mut missing = structured.clone();
    missing["id"] = json!("p-2");
    missing["dataschema"] = json!("/api/v1/event-types/invoice.paid/versions/7");
    let response = server
        .post_as("/api/v1/events", "application/cloudevents+json", &missing)
        .await;
    assert_eq!(response.status(), 422);

    let (status, verdict) = api
        .call(
            "POST",
            "/api/v1/event-types/invoice.paid/validate",
            Some(&json!({"data": old_shape})),
        )
        .await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["version"], 2);
    let (_, listed) = api
        .call("GET", "/api/v1/events?event_type=invoice.paid", None)
        .await;
    assert_eq!(
        listed["events"].as_array().unwrap().len(),
        1,
        "validate stores nothing"
    );
}

#[tokio::test]
async fn unknown_types_can_be_refused() {
    let server = TestServer::start_with(&[("UNKNOWN_EVENT_TYPES", "reject")], Vec::new()).await;
    let api = server.api();
    let event = json!({"type": "invoice.paid", "source": "billing", "data": invoice(json!(1))});
    let (status, problem) = api.call("POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/type");
    let detail = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("PUT /api/v1/event-types/invoice.paid"),
        "{detail}"
    );
    register(&api, "invoice.paid", &json!({"schema": invoice_schema()})).await;
    let (status, stored) = api.call("POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(status, 201, "{stored}");
    let broken = json!({"type": "invoice.paid", "source": "billing", "data": {}});
    let (status, _) = api.call("POST", "/api/v1/events", Some(&broken)).await;
    assert_eq!(status, 422);
    let unknown = json!({"type": "surely.unknown", "source": "billing", "data": {}});
    let (status, _) = api.call("POST", "/api/v1/events", Some(&unknown)).await;
    assert_eq!(status, 422);

    // Refusals are counted by registered type; every other type is one label value.
    let metrics = server.metrics().await;
    let refused = |label: &str| -> f64 {
        metrics
            .lines()
            .find(|line| {
                line.starts_with(&format!(
                    "eventflow_events_invalid_total{{type=\"{label}\"}}"
                ))
            })
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_default()
    };
    assert!(refused("unregistered") >= 1.0, "{metrics}");
    assert!(refused("invoice.paid") >= 1.0, "{metrics}");
    assert!(
        !metrics.contains("type=\"other.thing\""),
        "no label per unknown type"
    );
}

#[tokio::test]
async fn a_change_through_one_api_process_is_enforced_by_another_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("eventflow.db").display());
    let env = [("DATABASE_URL", database.as_str()), ("LOG_LEVEL", "error")];
    let (first_port, second_port) = (free_port(), free_port());
    let _first = Eventflow::start(dir.path(), first_port, &["serve", "--no-worker"], &env).await;
    let _second = Eventflow::start(dir.path(), second_port, &["serve", "--no-worker"], &env).await;
    let (first, second) = (Api::on_port(first_port), Api::on_port(second_port));
    let bad = json!({"type": "invoice.paid", "source": "billing", "data": {"invoice_id": "x"}});
    let (status, _) = second.call("POST", "/api/v1/events", Some(&bad)).await;
    assert_eq!(status, 201, "not registered yet");

    register(&first, "invoice.paid", &json!({"schema": invoice_schema()})).await;
    let started = std::time::Instant::now();
    let enforced = eventually(Duration::from_secs(3), || async {
        second.call("POST", "/api/v1/events", Some(&bad)).await.0 == 422
    })
    .await;
    assert!(enforced);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "enforced after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dry_run_checks_and_tells_the_version_without_saving() {
    let server = TestServer::start().await;
    let api = server.api();
    let body = json!({"schema": invoice_schema(), "examples": [invoice(json!(10))]});
    let (status, planned) = api
        .call(
            "PUT",
            "/api/v1/event-types/invoice.paid?dry_run=true",
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, planned["version"].clone()),
        (200, json!(1)),
        "{planned}"
    );
    let (status, _) = api
        .call("GET", "/api/v1/event-types/invoice.paid", None)
        .await;
    assert_eq!(status, 404, "a dry run saves nothing");

    let (status, _) = register(&api, "invoice.paid", &body).await;
    assert_eq!(status, 201);
    let mut changed = body.clone();
    changed["schema"]["required"] = json!(["invoice_id"]);
    let (status, planned) = api
        .call(
            "PUT",
            "/api/v1/event-types/invoice.paid?dry_run=true",
            Some(&changed),
        )
        .await;
    assert_eq!(
        (status, planned["version"].clone()),
        (200, json!(2)),
        "{planned}"
    );
    let broken = json!({"schema": {"type": "objekt"}});
    let (status, problem) = api
        .call(
            "PUT",
            "/api/v1/event-types/invoice.paid?dry_run=true",
            Some(&broken),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(pointers(&problem), ["/schema/type"]);
    let (_, current) = api
        .call("GET", "/api/v1/event-types/invoice.paid", None)
        .await;
    assert_eq!(current["version"], 1);
}
