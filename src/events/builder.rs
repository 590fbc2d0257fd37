//! The event factory: building valid events in Rust, for in-process producers and tests.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::catalog::KnownPayload;
use super::envelope::{Event, Priority};
use super::ingest::{IngestContext, from_simple};
use super::invalid::{InvalidEvent, Violation};
use super::routing::StreamRouter;

/// Builds an [`Event`] step by step; `build` applies exactly the validation of the HTTP API.
///
/// ```
/// use eventflow::events::{EventBuilder, Priority, StreamRouter, catalog::UserCreated};
///
/// let router = StreamRouter::new("events:default");
/// let event = EventBuilder::typed("signup-service", &UserCreated {
///         user_id: "usr_1".into(),
///         email: Some("ada@example.com".into()),
///         username: None,
///         full_name: None,
///         plan: None,
///     })
///     .partition_key("usr_1")
///     .priority(Priority::High)
///     .build(&router)
///     .unwrap();
/// assert_eq!(event.event_type(), "user.created");
/// assert_eq!(event.metadata.stream, "events:user");
/// ```
#[derive(Debug, Clone)]
pub struct EventBuilder {
    fields: Map<String, Value>,
    metadata: Map<String, Value>,
    payload_error: Option<String>,
}

impl EventBuilder {
    /// An event of a known type, its payload checked by the type system.
    pub fn typed<P: KnownPayload>(source: impl Into<String>, payload: &P) -> Self {
        match serde_json::to_value(payload) {
            Ok(data) => Self::new(P::EVENT_TYPE, source, data),
            Err(err) => {
                let mut builder = Self::new(P::EVENT_TYPE, source, Value::Null);
                builder.payload_error = Some(err.to_string());
                builder
            }
        }
    }

    /// An event of any type with JSON data (known types are still validated at `build`).
    pub fn new(event_type: impl Into<String>, source: impl Into<String>, data: Value) -> Self {
        let mut fields = Map::new();
        fields.insert("type".into(), Value::String(event_type.into()));
        fields.insert("source".into(), Value::String(source.into()));
        fields.insert("data".into(), data);
        Self {
            fields,
            metadata: Map::new(),
            payload_error: None,
        }
    }

    /// Sets the id (default: a new UUIDv7).
    pub fn id(self, id: impl Into<String>) -> Self {
        self.field("id", id.into())
    }

    /// Sets the subject.
    pub fn subject(self, subject: impl Into<String>) -> Self {
        self.field("subject", subject.into())
    }

    /// Sets the time the event happened (default: now).
    pub fn time(self, time: DateTime<Utc>) -> Self {
        self.field("time", time.to_rfc3339())
    }

    /// Orders this event after earlier ones with the same key.
    pub fn partition_key(self, key: impl Into<String>) -> Self {
        self.meta("partition_key", Value::String(key.into()))
    }

    /// Sets the priority (default: normal).
    pub fn priority(self, priority: Priority) -> Self {
        let name = serde_json::to_value(priority).unwrap_or(Value::Null);
        self.meta("priority", name)
    }

    /// Ties the event to a request or workflow (default: a new id).
    pub fn correlation_id(self, id: impl Into<String>) -> Self {
        self.meta("correlation_id", Value::String(id.into()))
    }

    /// Adds free-form metadata.
    pub fn metadata(self, key: impl Into<String>, value: Value) -> Self {
        self.meta(key, value)
    }

    /// Validates and assembles the event.
    pub fn build(self, router: &StreamRouter) -> Result<Event, InvalidEvent> {
        if let Some(err) = self.payload_error {
            return Err(InvalidEvent(vec![Violation::new("/data", err)]));
        }
        let mut fields = self.fields;
        fields.insert("metadata".into(), Value::Object(self.metadata));
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let ctx = IngestContext {
            router,
            correlation_id: &correlation_id,
            received_at: Utc::now(),
            traceparent: None,
        };
        from_simple(Value::Object(fields), ctx)
    }

    fn field(mut self, key: &str, value: String) -> Self {
        self.fields.insert(key.into(), Value::String(value));
        self
    }

    fn meta(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }
}
