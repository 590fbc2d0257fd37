//! The 15 built-in event types: registered at first start as version 1, and their JSON Schemas
//! accept and refuse exactly what the typed validation did before them. That validation
//! deserialized `data` into the payload structs of `eventflow::events::catalog`, which remain the
//! Rust event factory, so the structs are the judge here: every case is a built-in example with
//! one member removed, replaced by a value of another kind, or joined by an unknown one, and
//! whatever serde says of it, ingest must say too (through the library and through the API).
//!
//! One difference is known and kept: serde refuses `5.0` for an unsigned integer member
//! (`page.view`'s `duration_ms`), while JSON Schema counts 5.0 as the integer 5. It is tested
//! below as accepted.

mod common;

use common::TestServer;
use eventflow::events::catalog::*;
use eventflow::schemas::{built_in_types, compile, violations};
use serde_json::{Value, json};

/// Whether the payload struct of `event_type` takes `data`, as the typed validation did.
fn typed_validation_accepts(event_type: &str, data: &Value) -> bool {
    macro_rules! deserializes {
        ($($name:literal => $payload:ty),* $(,)?) => {
            match event_type {
                $($name => serde_json::from_value::<$payload>(data.clone()).is_ok(),)*
                other => panic!("{other} is not a built-in type"),
            }
        };
    }
    deserializes! {
        "user.created" => UserCreated,
        "user.updated" => UserUpdated,
        "user.deleted" => UserDeleted,
        "user.login" => UserLogin,
        "user.logout" => UserLogout,
        "system.health_check" => SystemHealthCheck,
        "system.error" => SystemError,
        "system.config_changed" => SystemConfigChanged,
        "order.created" => OrderCreated,
        "order.updated" => OrderUpdated,
        "payment.completed" => PaymentCompleted,
        "notification.sent" => NotificationSent,
        "page.view" => PageView,
        "feature.used" => FeatureUsed,
        "conversion.tracked" => ConversionTracked,
    }
}

/// Values of every JSON kind, including the edge cases of the typed validation (empty and blank
/// strings, negative and fractional numbers).
fn replacements() -> Vec<Value> {
    vec![
        Value::Null,
        json!(""),
        json!("   "),
        json!("text"),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(18446744073709551616.0),
        json!(true),
        json!({}),
        json!({"nested": 1}),
        json!([]),
        json!(["item"]),
    ]
}

/// Every case for one type, derived from its example: (description, data).
fn cases(example: &Value) -> Vec<(String, Value)> {
    let members = example.as_object().expect("examples are objects");
    let mut cases = vec![
        ("the example".to_string(), example.clone()),
        ("no data".to_string(), Value::Null),
        ("an array".to_string(), json!([example.clone()])),
        ("an empty object".to_string(), json!({})),
    ];
    let mut unknown = members.clone();
    unknown.insert("colour".into(), json!("red"));
    cases.push(("an unknown member".into(), Value::Object(unknown)));
    for name in members.keys() {
        let mut without = members.clone();
        without.remove(name);
        cases.push((format!("without {name}"), Value::Object(without)));
        for value in replacements() {
            let mut changed = members.clone();
            changed.insert(name.clone(), value.clone());
            cases.push((format!("{name} = {value}"), Value::Object(changed)));
        }
    }
    cases
}

/// Every (type, case, data, typed verdict) of the built-in types.
fn matrix() -> Vec<(String, String, Value, bool)> {
    let mut all = Vec::new();
    for (name, spec) in built_in_types() {
        for (case, data) in cases(&spec.examples[0]) {
            let accepted = typed_validation_accepts(&name, &data);
            all.push((name.clone(), case, data, accepted));
        }
    }
    all
}

#[test]
fn the_built_in_schemas_accept_and_refuse_what_the_typed_validation_did() {
    let mut refused = 0;
    for (name, spec) in built_in_types() {
        let validator = compile(&spec.schema).expect("a built-in schema compiles");
        for (case, data) in cases(&spec.examples[0]) {
            let typed = typed_validation_accepts(&name, &data);
            let broken = violations(&validator, &data);
            assert_eq!(
                broken.is_empty(),
                typed,
                "{name}, {case}: typed validation {}, schema {broken:?}",
                if typed { "accepts" } else { "refuses" }
            );
            refused += usize::from(!typed);
        }
    }
    // The matrix exercises both verdicts, many times over.
    assert!(refused > 300, "{refused}");
}

#[test]
fn a_whole_number_written_with_a_fraction_is_the_one_known_difference() {
    let spec = &built_in_types()["page.view"];
    let validator = compile(&spec.schema).unwrap();
    let data = json!({"url": "/", "duration_ms": 5.0});
    assert!(!typed_validation_accepts("page.view", &data));
    assert!(violations(&validator, &data).is_empty());
}

#[tokio::test]
async fn the_built_in_types_are_registered_at_first_start_and_enforced_at_ingest() {
    let server = TestServer::start().await;
    let api = server.api();
    let (status, list) = api.call("GET", "/api/v1/event-types", None).await;
    assert_eq!(status, 200, "{list}");
    let registered: Vec<&str> = list["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert_eq!(registered.len(), KNOWN_TYPES.len(), "{registered:?}");
    for (name, spec) in built_in_types() {
        let (status, found) = api
            .call("GET", &format!("/api/v1/event-types/{name}"), None)
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["version"], 1);
        assert_eq!(found["schema"], spec.schema);
    }

    // Every case through the batch endpoint: each item answers as the typed validation did.
    let matrix = matrix();
    for chunk in matrix.chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|(name, _, data, _)| json!({"type": name, "source": "parity", "data": data}))
            .collect();
        let (status, outcome) = api
            .call(
                "POST",
                "/api/v1/events/batch",
                Some(&json!({ "events": events })),
            )
            .await;
        assert_eq!(status, 200, "{outcome}");
        for ((name, case, _, accepted), result) in
            chunk.iter().zip(outcome["results"].as_array().unwrap())
        {
            let expected = if *accepted { 201 } else { 422 };
            assert_eq!(result["status"], expected, "{name}, {case}: {result}");
        }
    }
}

#[tokio::test]
async fn a_built_in_type_changes_and_is_deleted_like_any_other_and_stays_so_after_a_restart() {
    let mut server = TestServer::start().await;
    let api = server.api();
    let (status, _) = api
        .call("DELETE", "/api/v1/event-types/page.view", None)
        .await;
    assert_eq!(status, 204);
    let mut spec = built_in_types()["user.login"].schema.clone();
    spec["required"] = json!(["user_id", "method"]);
    let (status, changed) = api
        .call(
            "PUT",
            "/api/v1/event-types/user.login",
            Some(&json!({ "schema": spec })),
        )
        .await;
    assert_eq!(
        (status, changed["version"].clone()),
        (200, json!(2)),
        "{changed}"
    );
    server.stop().await;

    server.restart().await;
    let api = server.api();
    let (status, _) = api.call("GET", "/api/v1/event-types/page.view", None).await;
    assert_eq!(status, 404, "a deleted built-in type stays deleted");
    let (_, login) = api
        .call("GET", "/api/v1/event-types/user.login", None)
        .await;
    assert_eq!(login["version"], 2);
    let (status, refused) = api
        .call(
            "POST",
            "/api/v1/events",
            Some(&json!({"type": "user.login", "source": "t", "data": {"user_id": "u1"}})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["pointer"], "/data/method");
}
