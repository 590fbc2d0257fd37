//! The contract of `EventTypeStore`: types with their latest version, every version kept (also
//! after the type is deleted), and one writer of a version.

use chrono::Utc;
use eventflow::schemas::EventTypeSpec;
use serde_json::json;

use crate::Backend;

fn spec(schema: serde_json::Value) -> EventTypeSpec {
    serde_json::from_value(
        json!({"schema": schema, "description": "an invoice was paid",
                                  "examples": [{"id": "inv_1"}]}),
    )
    .unwrap()
}

async fn event_types_keep_their_versions(backend: Backend) {
    let store = &backend.event_types;
    let name = backend.name;
    let v1 = json!({"type": "object", "required": ["id"]});
    let (first, new) = spec(v1.clone()).apply("invoice.paid", None, 0, Utc::now());
    assert!(new);
    store.save_event_type(&first, true).await.unwrap();
    let stored = store.event_type("invoice.paid").await.unwrap().unwrap();
    assert_eq!(stored.schema, v1, "{name}");
    assert_eq!(stored.examples, vec![json!({"id": "inv_1"})], "{name}");
    assert_eq!(stored.description.as_deref(), Some("an invoice was paid"));
    assert_eq!(store.latest_version("invoice.paid").await.unwrap(), 1);
    assert_eq!(store.latest_version("never.seen").await.unwrap(), 0);

    let v2 = json!({"type": "object"});
    let (second, new) = spec(v2.clone()).apply("invoice.paid", Some(&stored), 1, Utc::now());
    assert!(new);
    store.save_event_type(&second, true).await.unwrap();
    // The same version written again by another process is refused, and changes nothing.
    assert!(
        store.save_event_type(&second, true).await.is_err(),
        "{name}"
    );
    let listed = store.event_types().await.unwrap();
    assert_eq!(listed.len(), 1, "{name}");
    assert_eq!((listed[0].version, &listed[0].schema), (2, &v2), "{name}");
    assert_eq!(
        store
            .schema_version("invoice.paid", 1)
            .await
            .unwrap()
            .unwrap()
            .schema,
        v1,
        "{name}"
    );

    assert!(store.delete_event_type("invoice.paid").await.unwrap());
    assert!(!store.delete_event_type("invoice.paid").await.unwrap());
    assert!(store.event_type("invoice.paid").await.unwrap().is_none());
    assert!(
        store
            .schema_version("invoice.paid", 2)
            .await
            .unwrap()
            .is_some(),
        "{name}"
    );
    assert_eq!(
        store.latest_version("invoice.paid").await.unwrap(),
        2,
        "{name}"
    );
}

contract_tests!(event_types_keep_their_versions);
