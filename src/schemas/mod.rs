//! Event types as a contract: a registry of JSON Schemas (draft 2020-12) for the `data` of each
//! event type, versioned, and enforced at ingest.
//!
//! A type is registered (and changed) with a PUT of its schema; a changed schema is a new
//! version, an unchanged one is not, so a deployment that applies its types on every start
//! creates no versions. Every event of a registered type is checked against the latest version
//! and records the version's URL as its CloudEvents `dataschema`; an event that names one of our
//! versions in `dataschema` is checked against that version instead, so a producer can move to a
//! new version when it is ready. Versions are kept when a type is deleted: stored events keep
//! naming the version they were checked against.
//!
//! The original system's 15 types are registered at first start ([`register_built_in`]).
//!
//! Schemas are compiled once per version and cached by every process ([`SchemaRegistry`]);
//! references are resolved only within the schema itself (no file or network fetches: a schema
//! given to the API must not make the server fetch URLs).

mod built_in;
mod registration;
mod registry;
mod store;

pub use built_in::{built_in_types, register_built_in};
pub use registration::{RegisterError, Registered, prepare, register};
pub use registry::{CheckError, SchemaRegistry, UnknownTypes};
pub use store::EventTypeStore;

use chrono::{DateTime, Utc};
use jsonschema::error::ValidationErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::events::Violation;

/// Longest description accepted.
const MAX_DESCRIPTION: usize = 4096;
/// Most examples a type may carry.
const MAX_EXAMPLES: usize = 20;
/// Longest event type name (as at ingest).
const MAX_TYPE_LEN: usize = 256;

/// What a PUT of an event type declares.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeSpec {
    /// What the events of this type mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema (draft 2020-12) for the events' `data`: an object, or `true`/`false`.
    #[schema(value_type = serde_json::Value)]
    pub schema: Value,
    /// Example payloads; each must satisfy the schema.
    #[serde(default)]
    #[schema(value_type = Vec<serde_json::Value>)]
    pub examples: Vec<Value>,
    /// Still accepted, but producers should move away from it.
    #[serde(default)]
    pub deprecated: bool,
}

/// A registered event type, with its latest schema version.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventType {
    /// The CloudEvents `type`.
    #[serde(rename = "type")]
    pub name: String,
    /// What the events of this type mean.
    pub description: Option<String>,
    /// The latest schema version, from 1.
    pub version: u32,
    /// The latest version's JSON Schema.
    #[schema(value_type = serde_json::Value)]
    pub schema: Value,
    /// Example payloads.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub examples: Vec<Value>,
    /// Still accepted, but producers should move away from it.
    pub deprecated: bool,
    /// The URL of the latest version, as events checked against it carry in `dataschema`.
    pub dataschema: String,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One version of a type's schema.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SchemaVersion {
    /// The CloudEvents `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its number, from 1.
    pub version: u32,
    /// The JSON Schema.
    #[schema(value_type = serde_json::Value)]
    pub schema: Value,
    /// Its URL, as events checked against it carry in `dataschema`.
    pub dataschema: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// The URL of a version, as events carry it in `dataschema`.
pub fn schema_url(event_type: &str, version: u32) -> String {
    format!("/api/v1/event-types/{event_type}/versions/{version}")
}

/// The type and version a `dataschema` names, when it is one of our version URLs (the path
/// alone, or an absolute URL whose path it is).
pub fn parse_schema_url(dataschema: &str) -> Option<(&str, u32)> {
    let path = match dataschema.find("://") {
        Some(scheme_end) => {
            let after = &dataschema[scheme_end + 3..];
            &after[after.find('/')?..]
        }
        None => dataschema,
    };
    let rest = path.strip_prefix("/api/v1/event-types/")?;
    let (event_type, version) = rest.rsplit_once("/versions/")?;
    Some((event_type, version.parse().ok().filter(|v| *v > 0)?))
}

/// Compiles a JSON Schema, or says where it breaks the draft 2020-12 meta-schema (pointers
/// under `/schema`).
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, Vec<Violation>> {
    let meta = jsonschema::draft202012::meta::validator();
    let broken: Vec<Violation> = meta
        .iter_errors(schema)
        .map(|err| Violation::new(format!("/schema{}", err.instance_path()), err.to_string()))
        .collect();
    if !broken.is_empty() {
        return Err(broken);
    }
    jsonschema::draft202012::options()
        .build(schema)
        .map_err(|err| vec![Violation::new("/schema", err.to_string())])
}

/// Every way `data` breaks the schema, as pointers into the event (`/data/...`). A missing
/// required member and an unexpected one are pointed at themselves, not at their object, so a
/// producer sees which member to add or remove.
pub fn violations(validator: &jsonschema::Validator, data: &Value) -> Vec<Violation> {
    // Nearly every event is valid: the check that stops at nothing to report allocates nothing.
    if validator.is_valid(data) {
        return Vec::new();
    }
    let mut found = Vec::new();
    for err in validator.iter_errors(data) {
        let at = format!("/data{}", err.instance_path());
        match err.kind() {
            ValidationErrorKind::Required {
                property: Value::String(member),
            } => found.push(Violation::new(member_pointer(&at, member), err.to_string())),
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                found.extend(unexpected.iter().map(|member| {
                    Violation::new(
                        member_pointer(&at, member),
                        format!("{member} is not a member this schema allows"),
                    )
                }));
            }
            _ => found.push(Violation::new(at, err.to_string())),
        }
    }
    found
}

/// The pointer to `member` of the object at `object`.
fn member_pointer(object: &str, member: &str) -> String {
    format!("{object}/{}", member.replace('~', "~0").replace('/', "~1"))
}

impl EventTypeSpec {
    /// Checks the name, the schema and the examples; every problem, as pointers into the request
    /// (the name's at `/type`).
    pub fn check(&self, name: &str) -> Result<jsonschema::Validator, Vec<Violation>> {
        let mut problems = Vec::new();
        if name.is_empty() || name.len() > MAX_TYPE_LEN || name.chars().any(char::is_control) {
            problems.push(Violation::new(
                "/type",
                format!("expected 1 to {MAX_TYPE_LEN} bytes without control characters"),
            ));
        }
        if crate::operations::is_operational(name) {
            problems.push(Violation::new(
                "/type",
                "eventflow.* types are EventFlow's operational events",
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION)
        {
            problems.push(Violation::new(
                "/description",
                format!("at most {MAX_DESCRIPTION} bytes"),
            ));
        }
        if self.examples.len() > MAX_EXAMPLES {
            problems.push(Violation::new(
                "/examples",
                format!("at most {MAX_EXAMPLES} examples"),
            ));
        }
        let validator = match compile(&self.schema) {
            Ok(validator) => validator,
            Err(broken) => {
                problems.extend(broken);
                return Err(problems);
            }
        };
        for (index, example) in self.examples.iter().enumerate() {
            problems.extend(violations(&validator, example).into_iter().map(|v| {
                let path = v.pointer.strip_prefix("/data").unwrap_or_default();
                Violation::new(format!("/examples/{index}{path}"), v.detail)
            }));
        }
        if problems.is_empty() {
            Ok(validator)
        } else {
            Err(problems)
        }
    }

    /// The type this declaration makes of `previous` (the type as registered, if it is) at
    /// `now`: a new version only when the schema changed; `latest` is the highest version ever
    /// registered (versions outlive a deleted type). Returns the type and whether its version
    /// is new.
    pub fn apply(
        self,
        name: &str,
        previous: Option<&EventType>,
        latest: u32,
        now: DateTime<Utc>,
    ) -> (EventType, bool) {
        let unchanged = previous.filter(|p| p.schema == self.schema);
        let version = match unchanged {
            Some(previous) => previous.version,
            None => latest + 1,
        };
        let event_type = EventType {
            name: name.to_string(),
            description: self.description,
            version,
            schema: self.schema,
            examples: self.examples,
            deprecated: self.deprecated,
            dataschema: schema_url(name, version),
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        };
        (event_type, unchanged.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(schema: Value) -> EventTypeSpec {
        EventTypeSpec {
            description: None,
            schema,
            examples: Vec::new(),
            deprecated: false,
        }
    }

    #[test]
    fn a_new_schema_is_a_new_version_and_the_same_one_is_not() {
        let now = Utc::now();
        let schema = json!({"type": "object", "required": ["id"]});
        let (first, new) = spec(schema.clone()).apply("invoice.paid", None, 0, now);
        assert_eq!((first.version, new), (1, true));
        let (same, new) = spec(schema).apply("invoice.paid", Some(&first), 1, now);
        assert_eq!((same.version, new), (1, false));
        let (next, new) =
            spec(json!({"type": "object"})).apply("invoice.paid", Some(&same), 1, now);
        assert_eq!((next.version, new), (2, true));
        assert_eq!(
            next.dataschema,
            "/api/v1/event-types/invoice.paid/versions/2"
        );
        assert_eq!(next.created_at, first.created_at);
    }

    #[test]
    fn broken_schemas_and_examples_are_named_by_pointer() {
        let broken = spec(json!({"type": "objekt", "properties": {"n": {"minimum": "x"}}}));
        let problems = broken.check("invoice.paid").unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert!(pointers.contains(&"/schema/type"), "{problems:?}");
        assert!(
            pointers.contains(&"/schema/properties/n/minimum"),
            "{problems:?}"
        );

        let mut with_examples =
            spec(json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
        with_examples.examples = vec![json!({"n": 1}), json!({"n": "one"})];
        let problems = with_examples.check("invoice.paid").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].pointer, "/examples/1/n");
    }

    #[test]
    fn only_our_version_urls_name_a_version() {
        assert_eq!(
            parse_schema_url("/api/v1/event-types/invoice.paid/versions/3"),
            Some(("invoice.paid", 3))
        );
        assert_eq!(
            parse_schema_url("https://events.example.com/api/v1/event-types/a.b/versions/1"),
            Some(("a.b", 1))
        );
        assert_eq!(
            parse_schema_url("https://example.com/schemas/invoice.json"),
            None
        );
        assert_eq!(parse_schema_url("/api/v1/event-types/a/versions/0"), None);
    }
}
