//! Turning what producers send into [`Event`]s: the README's simple form and the CloudEvents
//! structured and binary content modes, all validated by the same rules.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::envelope::{
    CloudEvent, Event, Metadata, Priority, REPLAY_EXTENSION, SERVER_METADATA_KEYS, SPEC_VERSION,
};
use super::fields::Fields;
use super::invalid::{InvalidEvent, Violation};
use super::routing::StreamRouter;

/// Longest event id, type or partition key accepted.
const MAX_SHORT_ATTRIBUTE: usize = 256;
/// Longest source, subject or schema URI accepted.
const MAX_LONG_ATTRIBUTE: usize = 2048;
/// Longest correlation id accepted.
pub const MAX_CORRELATION_ID: usize = 128;

/// What the request adds to each event it carries.
#[derive(Debug, Clone, Copy)]
pub struct IngestContext<'a> {
    /// Routes the event type to its stream.
    pub router: &'a StreamRouter,
    /// The request's correlation id, used when the event brings none.
    pub correlation_id: &'a str,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// The request's W3C `traceparent`, given to events that bring none of their own.
    pub traceparent: Option<&'a str>,
}

/// Parses the README's simple form: `{type, source, data, metadata, id?, subject?, time?}`.
pub fn from_simple(value: Value, ctx: IngestContext<'_>) -> Result<Event, InvalidEvent> {
    let mut fields = Fields::new(value)?;
    let draft = Draft::take(&mut fields, false);
    let metadata = fields.object("metadata");
    for key in fields.remaining_keys() {
        fields.violate(
            format!("/{key}"),
            "unknown field; extra attributes go in metadata",
        );
    }
    let producer_metadata = ProducerMetadata::from_simple(metadata, &mut fields.violations);
    finish(draft, producer_metadata, fields.violations, ctx)
}

/// Parses a CloudEvents structured-mode JSON object; members beyond the spec's are extensions.
pub fn from_structured(value: Value, ctx: IngestContext<'_>) -> Result<Event, InvalidEvent> {
    let mut fields = Fields::new(value)?;
    let mut draft = Draft::take(&mut fields, true);
    draft.extensions = std::mem::take(&mut fields.map);
    let mut violations = fields.violations;
    check_extensions(&draft.extensions, &mut violations);
    let producer_metadata = ProducerMetadata::from_extensions(&draft.extensions, &mut violations);
    finish(draft, producer_metadata, violations, ctx)
}

/// Attributes read from the request, before validation.
struct Draft {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    event_type: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    data: Option<Value>,
    data_base64: Option<String>,
    extensions: Map<String, Value>,
}

impl Draft {
    /// Takes the context attributes and data; structured mode requires `specversion` and `id`
    /// and may carry `data_base64`, the simple form fills them in.
    fn take(fields: &mut Fields, structured: bool) -> Self {
        let (specversion, id) = if structured {
            (fields.required("specversion"), fields.required("id"))
        } else {
            (fields.string("specversion"), fields.string("id"))
        };
        Self {
            specversion,
            id,
            source: fields.required("source"),
            event_type: fields.required("type"),
            subject: fields.string("subject"),
            time: fields.string("time"),
            datacontenttype: fields.string("datacontenttype"),
            dataschema: fields.string("dataschema"),
            data: fields.data("data"),
            data_base64: if structured {
                fields.string("data_base64")
            } else {
                None
            },
            extensions: Map::new(),
        }
    }
}

/// The metadata a producer may set, from either form.
#[derive(Default)]
struct ProducerMetadata {
    priority: Priority,
    partition_key: Option<String>,
    correlation_id: Option<String>,
    extra: Map<String, Value>,
}

impl ProducerMetadata {
    fn from_simple(metadata: Map<String, Value>, violations: &mut Vec<Violation>) -> Self {
        let mut result = Self::default();
        for (key, value) in metadata {
            let pointer = format!("/metadata/{key}");
            match key.as_str() {
                "priority" => result.priority = priority(&value, &pointer, violations),
                "partition_key" => {
                    result.partition_key = short_string(&value, &pointer, violations)
                }
                "correlation_id" => {
                    result.correlation_id = correlation_id(&value, &pointer, violations)
                }
                key if SERVER_METADATA_KEYS.contains(&key) => {
                    violations.push(Violation::new(pointer, "is set by EventFlow"));
                }
                _ => {
                    result.extra.insert(key, value);
                }
            }
        }
        result
    }

    fn from_extensions(extensions: &Map<String, Value>, violations: &mut Vec<Violation>) -> Self {
        let mut result = Self::default();
        if let Some(value) = extensions.get("priority") {
            result.priority = priority(value, "/priority", violations);
        }
        if let Some(value) = extensions.get("partitionkey") {
            result.partition_key = short_string(value, "/partitionkey", violations);
        }
        if let Some(value) = extensions.get("correlationid") {
            result.correlation_id = correlation_id(value, "/correlationid", violations);
        }
        result
    }
}

fn priority(value: &Value, pointer: &str, violations: &mut Vec<Violation>) -> Priority {
    match value.as_str().and_then(Priority::parse) {
        Some(priority) => priority,
        None => {
            violations.push(Violation::new(
                pointer,
                "expected one of low, normal, high, critical",
            ));
            Priority::default()
        }
    }
}

fn short_string(value: &Value, pointer: &str, violations: &mut Vec<Violation>) -> Option<String> {
    match value.as_str() {
        Some(text) if !text.is_empty() && text.len() <= MAX_SHORT_ATTRIBUTE => {
            Some(text.to_string())
        }
        _ => {
            violations.push(Violation::new(
                pointer,
                format!("expected a string of 1 to {MAX_SHORT_ATTRIBUTE} bytes"),
            ));
            None
        }
    }
}

fn correlation_id(value: &Value, pointer: &str, violations: &mut Vec<Violation>) -> Option<String> {
    match value.as_str() {
        Some(text) if is_valid_correlation_id(text) => Some(text.to_string()),
        _ => {
            violations.push(Violation::new(
                pointer,
                format!("expected 1 to {MAX_CORRELATION_ID} visible ASCII characters"),
            ));
            None
        }
    }
}

/// A correlation id must be safe to echo in a header and a log line.
pub fn is_valid_correlation_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CORRELATION_ID
        && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Validates the draft and assembles the event.
fn finish(
    draft: Draft,
    producer: ProducerMetadata,
    mut violations: Vec<Violation>,
    ctx: IngestContext<'_>,
) -> Result<Event, InvalidEvent> {
    if let Some(version) = &draft.specversion
        && version != SPEC_VERSION
    {
        violations.push(Violation::new(
            "/specversion",
            "only CloudEvents 1.0 is supported",
        ));
    }
    let id = match draft.id {
        Some(id) => bounded(&mut violations, "/id", id, MAX_SHORT_ATTRIBUTE),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let source = draft
        .source
        .map(|s| bounded(&mut violations, "/source", s, MAX_LONG_ATTRIBUTE))
        .unwrap_or_default();
    let event_type = draft
        .event_type
        .map(|t| bounded(&mut violations, "/type", t, MAX_SHORT_ATTRIBUTE))
        .unwrap_or_default();
    let subject = draft
        .subject
        .map(|s| bounded(&mut violations, "/subject", s, MAX_LONG_ATTRIBUTE));
    let time = match draft.time {
        None => ctx.received_at,
        Some(text) => match DateTime::parse_from_rfc3339(&text) {
            Ok(time) => time.with_timezone(&Utc),
            Err(err) => {
                violations.push(Violation::new(
                    "/time",
                    format!("expected an RFC 3339 timestamp: {err}"),
                ));
                ctx.received_at
            }
        },
    };
    if draft.data.is_some() && draft.data_base64.is_some() {
        violations.push(Violation::new(
            "/data_base64",
            "data and data_base64 are mutually exclusive",
        ));
    }
    if crate::operations::is_operational(&event_type) {
        violations.push(Violation::new(
            "/type",
            "eventflow.* types are reserved for EventFlow's operational events",
        ));
    }
    let datacontenttype = draft
        .datacontenttype
        .or_else(|| draft.data.is_some().then(|| "application/json".to_string()));
    if !violations.is_empty() {
        return Err(InvalidEvent(violations));
    }
    let stream = ctx.router.stream_for(&event_type).to_string();
    let mut extensions: std::collections::BTreeMap<String, Value> =
        draft.extensions.into_iter().collect();
    if let Some(traceparent) = ctx.traceparent {
        extensions
            .entry(super::trace::TRACEPARENT.to_string())
            .or_insert_with(|| traceparent.into());
    }
    Ok(Event {
        envelope: CloudEvent {
            specversion: SPEC_VERSION.to_string(),
            id,
            source,
            event_type,
            subject,
            time,
            datacontenttype,
            dataschema: draft.dataschema,
            data: draft.data,
            data_base64: draft.data_base64,
            extensions,
        },
        metadata: Metadata {
            priority: producer.priority,
            partition_key: producer.partition_key,
            correlation_id: producer
                .correlation_id
                .unwrap_or_else(|| ctx.correlation_id.to_string()),
            stream,
            sequence: None,
            received_at: ctx.received_at,
            extra: producer.extra,
        },
    })
}

/// Keeps `value` when it is 1 to `max` bytes without control characters, else records why not.
fn bounded(violations: &mut Vec<Violation>, pointer: &str, value: String, max: usize) -> String {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        violations.push(Violation::new(
            pointer,
            format!("expected 1 to {max} bytes without control characters"),
        ));
    }
    value
}

/// Extension names are 1–20 lower-case letters or digits; values are strings, integers or booleans.
fn check_extensions(extensions: &Map<String, Value>, violations: &mut Vec<Violation>) {
    for (name, value) in extensions {
        let pointer = format!("/{name}");
        let valid_name = !name.is_empty()
            && name.len() <= 20
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_name {
            violations.push(Violation::new(
                pointer,
                "unknown attribute: extension names are 1 to 20 lower-case letters or digits",
            ));
            continue;
        }
        if name == "metadata" {
            violations.push(Violation::new(
                pointer,
                "metadata is reserved for EventFlow's attributes",
            ));
            continue;
        }
        if name == REPLAY_EXTENSION {
            violations.push(Violation::new(
                pointer,
                "eventflowreplayid is set by EventFlow on replayed deliveries",
            ));
            continue;
        }
        let valid_value = matches!(value, Value::String(_) | Value::Bool(_))
            || value.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
        if !valid_value {
            violations.push(Violation::new(
                pointer,
                "extension values are strings, 32-bit integers or booleans",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(router: &StreamRouter) -> IngestContext<'_> {
        IngestContext {
            router,
            correlation_id: "req-1",
            traceparent: None,
            received_at: Utc::now(),
        }
    }

    #[test]
    fn simple_form_gets_id_time_stream_and_metadata() {
        let router = StreamRouter::new("events:default");
        let event = from_simple(
            json!({"type": "user.login", "source": "web-app",
                   "data": {"user_id": "usr_123", "ip_address": "192.168.1.1"},
                   "metadata": {"priority": "high", "partition_key": "usr_123", "tenant": "acme"}}),
            ctx(&router),
        )
        .unwrap();
        assert_eq!(event.metadata.stream, "events:user");
        assert_eq!(event.metadata.priority, Priority::High);
        assert_eq!(event.metadata.partition_key.as_deref(), Some("usr_123"));
        assert_eq!(event.metadata.correlation_id, "req-1");
        assert_eq!(event.metadata.extra["tenant"], "acme");
        assert_eq!(
            event.envelope.datacontenttype.as_deref(),
            Some("application/json")
        );
        assert!(uuid::Uuid::parse_str(&event.envelope.id).is_ok());
    }

    #[test]
    fn simple_form_reports_every_violation() {
        let router = StreamRouter::new("events:default");
        let err = from_simple(
            json!({"source": 5, "colour": "red", "metadata": {"stream": "x"}}),
            ctx(&router),
        )
        .unwrap_err();
        let pointers: Vec<_> = err.0.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/source", "/type", "/colour", "/metadata/stream"]
        );
    }

    #[test]
    fn structured_mode_requires_core_attributes_and_checks_extensions() {
        let router = StreamRouter::new("events:default");
        let err = from_structured(
            json!({"specversion": "0.3", "source": "s", "type": "t", "Bad_Name": 1, "big": 1u64 << 40}),
            ctx(&router),
        )
        .unwrap_err();
        let pointers: Vec<_> = err.0.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/id", "/Bad_Name", "/big", "/specversion"]);
    }

    #[test]
    fn structured_extensions_feed_metadata() {
        let router = StreamRouter::new("events:default");
        let event = from_structured(
            json!({"specversion": "1.0", "id": "e1", "source": "s", "type": "com.example.x",
                   "partitionkey": "k", "correlationid": "c-9", "time": "2024-01-01T00:00:00+02:00"}),
            ctx(&router),
        )
        .unwrap();
        assert_eq!(event.metadata.partition_key.as_deref(), Some("k"));
        assert_eq!(event.metadata.correlation_id, "c-9");
        assert_eq!(event.metadata.stream, "events:default");
        assert_eq!(
            event.envelope.time.to_rfc3339(),
            "2023-12-31T22:00:00+00:00"
        );
        assert_eq!(event.envelope.extensions["partitionkey"], "k");
    }
}
