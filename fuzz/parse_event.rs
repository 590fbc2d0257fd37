// Feeds untrusted bytes to every way EventFlow parses a producer's event: a JSON body in the
// README's simple form and as a structured CloudEvent, and a binary-mode body with CloudEvents
// headers. Any outcome is fine but a panic. Shared by the libFuzzer target
// (`fuzz_targets/parse_event.rs`) and the stable smoke test (`tests/parser_fuzz.rs`).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use eventflow::events::StreamRouter;
use eventflow::events::http_binding::structured_from_binary;
use eventflow::events::ingest::{IngestContext, from_simple, from_structured};

/// Parses `data` every way a request can carry an event.
pub fn parse_event(data: &[u8]) {
    let router = StreamRouter::new("events:default");
    let context = IngestContext {
        router: &router,
        correlation_id: "fuzz",
        received_at: chrono::DateTime::UNIX_EPOCH,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    };
    if let Ok(value) = eventflow::api::problem::parse_json(data) {
        let _ = from_simple(value.clone(), context);
        let _ = from_structured(value, context);
    }
    // Binary mode: the first line holds `name: value` headers separated by `;`, the rest is the
    // body.
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for field in head.split(|b| *b == b';') {
        let Some(colon) = field.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&field[..colon]),
            HeaderValue::from_bytes(field[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    if let Ok(value) = structured_from_binary(&headers, body) {
        let _ = from_structured(value, context);
    }
}
