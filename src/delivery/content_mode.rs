//! How a delivery carries its event, per the CloudEvents HTTP protocol binding: the structured
//! JSON format as `application/json` (EventFlow's default, what plain webhook receivers expect)
//! or as `application/cloudevents+json`, or the binary mode, where the context attributes travel
//! as `ce-*` headers and the body is the event's data alone.
//!
//! Every mode carries EventFlow's extension attributes (`partitionkey`, `priority`,
//! `correlationid`, and `traceparent` and `eventflowreplayid` where they apply), so a receiver
//! sees the event as EventFlow holds it. The Standard Webhooks signature covers the body sent,
//! whatever the mode.

use std::sync::OnceLock;

use axum::body::Bytes;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::events::http_binding::is_json_media_type;
use crate::events::{CloudEvent, Event};

/// The media type of the JSON event format.
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// How deliveries to a subscription carry the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    /// The structured CloudEvent as `application/json`.
    #[default]
    Json,
    /// The structured CloudEvent as `application/cloudevents+json`.
    Structured,
    /// `ce-*` headers, the data as the body, `datacontenttype` as `Content-Type`.
    Binary,
}

impl ContentMode {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Structured => "structured",
            Self::Binary => "binary",
        }
    }

    /// The mode a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "structured" => Some(Self::Structured),
            "binary" => Some(Self::Binary),
            _ => None,
        }
    }
}

/// An event encoded once: the structured body at once, the binary mode's parts the first time a
/// binary subscription needs them (most subscriptions never do, and the dispatcher encodes every
/// event it sends).
#[derive(Debug)]
pub struct EncodedEvent {
    /// The CloudEvent in its JSON format, extensions included.
    structured: Bytes,
    /// The binary mode's parts, derived from `structured` on first use.
    binary: OnceLock<Binary>,
}

/// The binary mode of an event.
#[derive(Debug)]
struct Binary {
    /// The `ce-*` headers, values percent-encoded.
    headers: Vec<(String, String)>,
    /// The `Content-Type`.
    content_type: String,
    /// The data alone.
    body: Bytes,
}

/// What one request of a delivery sends: its media type, extra headers and body.
pub struct Encoding<'a> {
    /// The `Content-Type`.
    pub content_type: &'a str,
    /// The `ce-*` headers (binary mode only).
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: Bytes,
}

impl EncodedEvent {
    /// Encodes `envelope` (the event's CloudEvent, possibly marked as replayed) of `event`.
    pub fn of(event: &Event, envelope: &CloudEvent) -> Result<Self, serde_json::Error> {
        let mut attributes = match serde_json::to_value(envelope)? {
            Value::Object(attributes) => attributes,
            _ => Map::new(),
        };
        let metadata = &event.metadata;
        if let Some(key) = &metadata.partition_key {
            attributes.insert("partitionkey".into(), key.clone().into());
        }
        attributes.insert("priority".into(), serde_json::to_value(metadata.priority)?);
        attributes.insert(
            "correlationid".into(),
            metadata.correlation_id.clone().into(),
        );
        Ok(Self {
            structured: Bytes::from(serde_json::to_vec(&attributes)?),
            binary: OnceLock::new(),
        })
    }

    /// What a delivery in `mode` sends.
    pub fn encoding(&self, mode: ContentMode) -> Encoding<'_> {
        match mode {
            ContentMode::Json => Encoding {
                content_type: "application/json",
                headers: &[],
                body: self.structured.clone(),
            },
            ContentMode::Structured => Encoding {
                content_type: CLOUDEVENTS_JSON,
                headers: &[],
                body: self.structured.clone(),
            },
            ContentMode::Binary => {
                let binary = self.binary.get_or_init(|| Binary::of(&self.structured));
                Encoding {
                    content_type: &binary.content_type,
                    headers: &binary.headers,
                    body: binary.body.clone(),
                }
            }
        }
    }
}

impl Binary {
    /// The binary mode of the structured event `structured` (JSON EventFlow wrote itself).
    fn of(structured: &[u8]) -> Self {
        let attributes: Map<String, Value> = serde_json::from_slice(structured).unwrap_or_default();
        let text = |name: &str| attributes.get(name).and_then(Value::as_str);
        let (content_type, body) = match (text("data_base64"), attributes.get("data")) {
            (Some(encoded), _) => (
                text("datacontenttype").unwrap_or("application/octet-stream"),
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap_or_else(|_| encoded.as_bytes().to_vec()),
            ),
            (None, data) => {
                let media = text("datacontenttype").unwrap_or("application/json");
                let body = match data {
                    None => Vec::new(),
                    // Text under a media type that is not JSON is sent as the text itself.
                    Some(Value::String(text)) if !is_json_media_type(media) => {
                        text.clone().into_bytes()
                    }
                    Some(data) => data.to_string().into_bytes(),
                };
                (media, body)
            }
        };
        let headers = attributes
            .iter()
            .filter(|(name, _)| {
                !matches!(name.as_str(), "data" | "data_base64" | "datacontenttype")
            })
            .map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (format!("ce-{name}"), percent_encode(&text))
            })
            .collect();
        Self {
            headers,
            content_type: content_type.to_string(),
            body: Bytes::from(body),
        }
    }
}

/// Percent-encodes a header value as the HTTP binding asks: every byte outside printable ASCII,
/// and space, `"` and `%`.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_escape_what_the_binding_says() {
        assert_eq!(percent_encode("usr_1/a:b"), "usr_1/a:b");
        assert_eq!(percent_encode("a b\"c%"), "a%20b%22c%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
