//! The CloudEvents HTTP binding's binary content mode: `ce-*` headers carry the attributes and
//! the body is the data. Ingest rebuilds the structured form from it, so that every content mode
//! is validated by the same rules.

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{Map, Value};

/// A binary-mode body that does not match its declared JSON content type.
#[derive(Debug, thiserror::Error)]
#[error("body is not valid JSON: {0}")]
pub struct MalformedData(#[from] serde_json::Error);

/// Rebuilds the structured-mode JSON of a binary-mode request (`ce-*` headers, body as data).
pub fn structured_from_binary(headers: &HeaderMap, body: &[u8]) -> Result<Value, MalformedData> {
    let mut object = Map::new();
    for (name, value) in headers {
        if let Some(attribute) = name.as_str().strip_prefix("ce-") {
            let text = percent_decode(&String::from_utf8_lossy(value.as_bytes()));
            object.insert(attribute.to_string(), Value::String(text));
        }
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !body.is_empty() {
        match content_type.as_deref() {
            Some(ct) if !is_json_media_type(ct) => match std::str::from_utf8(body) {
                Ok(text) if ct.starts_with("text/") => {
                    object.insert("data".into(), Value::String(text.to_string()));
                }
                _ => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
                    object.insert("data_base64".into(), Value::String(encoded));
                }
            },
            _ => {
                object.insert("data".into(), serde_json::from_slice(body)?);
            }
        }
    }
    if let Some(ct) = content_type {
        object.insert("datacontenttype".into(), Value::String(ct));
    }
    Ok(Value::Object(object))
}

/// True for `application/json`, `text/json` and any `+json` media type.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = media_essence(content_type);
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// The media type without parameters, lower-cased: `Application/JSON; charset=utf-8` →
/// `application/json`.
pub fn media_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes `%XX` escapes as the CloudEvents HTTP binding asks for header values.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::StreamRouter;
    use crate::events::ingest::{IngestContext, from_structured};
    use serde_json::json;

    #[test]
    fn binary_mode_maps_headers_and_body() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0".parse().unwrap());
        headers.insert("ce-id", "b1".parse().unwrap());
        headers.insert("ce-source", "%2Fsensors%2F1".parse().unwrap());
        headers.insert("ce-type", "page.view".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let value = structured_from_binary(&headers, br#"{"url": "/home"}"#).unwrap();
        let router = StreamRouter::new("events:default");
        let event = from_structured(
            value,
            IngestContext {
                router: &router,
                correlation_id: "req-1",
                traceparent: None,
                received_at: chrono::Utc::now(),
            },
        )
        .unwrap();
        assert_eq!(event.envelope.source, "/sensors/1");
        assert_eq!(event.envelope.data, Some(json!({"url": "/home"})));

        headers.insert("content-type", "application/octet-stream".parse().unwrap());
        headers.insert("ce-type", "com.example.blob".parse().unwrap());
        let value = structured_from_binary(&headers, &[0xff, 0x00]).unwrap();
        assert_eq!(value["data_base64"], "/wA=");
    }
}
