//! The CloudEvents 1.0 envelope and the attributes EventFlow adds to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The CloudEvents extension attribute naming the replay a delivered event belongs to: EventFlow
/// sets it on replayed deliveries, producers may not.
pub const REPLAY_EXTENSION: &str = "eventflowreplayid";

/// The only CloudEvents version EventFlow speaks.
pub const SPEC_VERSION: &str = "1.0";

/// A CloudEvents 1.0 event in its JSON format: context attributes, data and extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CloudEvent {
    /// Always "1.0".
    pub specversion: String,
    /// Unique per source; EventFlow fills a UUIDv7 when the producer gives none.
    pub id: String,
    /// URI-reference naming the producer.
    pub source: String,
    /// Event type, such as `user.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// What the event is about, within the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it happened; EventFlow fills the receive time when absent.
    pub time: DateTime<Utc>,
    /// Media type of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// Schema that `data` adheres to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// The payload, when it is JSON or text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The payload, base64-encoded, when it is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Extension attributes (lower-case alphanumeric names; string, integer or boolean values).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: BTreeMap<String, Value>,
}

/// How urgent an event is, as the producer sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background information.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Should be handled promptly.
    High,
    /// Needs attention now.
    Critical,
}

impl Priority {
    /// Parses the lower-case name used on the wire.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "low" => Some(Self::Low),
            "normal" => Some(Self::Normal),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// What EventFlow knows about an event beyond the CloudEvent itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metadata {
    /// Producer-given urgency.
    pub priority: Priority,
    /// Events sharing a partition key are processed in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Ties the event to the request (and logs, deliveries) that carried it.
    pub correlation_id: String,
    /// The broker stream the event travels on, such as `events:user`.
    pub stream: String,
    /// Position in the event store, assigned at commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// When EventFlow received the event.
    pub received_at: DateTime<Utc>,
    /// Any other metadata the producer sent, kept as given.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// Metadata keys EventFlow sets itself; a producer may not send them.
pub const SERVER_METADATA_KEYS: &[&str] = &["stream", "sequence", "received_at"];

/// An event as EventFlow stores, streams and returns it: a CloudEvent plus its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// The CloudEvent, flattened into the top level.
    #[serde(flatten)]
    pub envelope: CloudEvent,
    /// EventFlow's attributes.
    pub metadata: Metadata,
}

impl Event {
    /// The event id.
    pub fn id(&self) -> &str {
        &self.envelope.id
    }

    /// The event type.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// The W3C `traceparent` the event carries (its distributed-tracing extension), if well
    /// formed.
    pub fn traceparent(&self) -> Option<&str> {
        self.envelope
            .extensions
            .get(super::trace::TRACEPARENT)
            .and_then(serde_json::Value::as_str)
            .filter(|value| super::trace::is_valid_traceparent(value))
    }
}
