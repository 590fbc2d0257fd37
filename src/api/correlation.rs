//! Correlation ids: taken from `X-Correlation-ID` (or generated), put on the request's log span,
//! handed to handlers, and echoed on every response. A W3C `traceparent` header is taken too:
//! its trace id goes on the span, and ingest stores it with the events of the request.
//!
//! The same middleware writes the access log: one INFO line per answered request with its
//! method, route template, status, latency, correlation id, trace id and the name of its API
//! key (never the key), unless ACCESS_LOG=false. It is the outermost layer, so the line also
//! covers requests refused by authentication, rate limits and timeouts.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;
use tracing::Instrument;

use super::auth::KeyName;
use crate::events::ingest::is_valid_correlation_id;
use crate::events::trace::{TRACEPARENT, is_valid_traceparent, trace_id};

/// The header that carries the id.
pub const X_CORRELATION_ID: &str = "x-correlation-id";

/// The correlation id of the current request.
#[derive(Debug, Clone)]
pub struct CorrelationId(
    /// The id.
    pub String,
);

/// The request's W3C `traceparent`, when it sent a well-formed one.
#[derive(Debug, Clone)]
pub struct TraceParent(
    /// The header's value.
    pub Option<String>,
);

/// ACCESS_LOG: whether each answered request gets its INFO line.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog(
    /// On (the default) or off.
    pub bool,
);

/// Middleware: assigns the id, logs the request under it, and sets the response header.
pub async fn correlate(
    State(AccessLog(access_log)): State<AccessLog>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(X_CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_correlation_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    let traceparent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_traceparent(v))
        .map(str::to_string);
    let trace = traceparent
        .as_deref()
        .and_then(trace_id)
        .map(str::to_string);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %id,
        trace_id = trace.as_deref().unwrap_or_default(),
        event_id = tracing::field::Empty,
    );
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    request.extensions_mut().insert(CorrelationId(id.clone()));
    request.extensions_mut().insert(TraceParent(traceparent));
    let started = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let status = response.status().as_u16();
    let key = response
        .extensions()
        .get::<KeyName>()
        .map(|key| key.0.as_str());
    // The access line carries its own fields rather than the request's span: the JSON format
    // would serialize the span's fields again for every line, which doubled its cost.
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (method, trace) = (method.as_str(), trace.as_deref());
    if status >= 500 {
        tracing::error!(method, route, status, latency_ms, correlation_id = %id,
                        trace_id = trace, api_key = key, "request failed");
    } else if access_log {
        tracing::info!(method, route, status, latency_ms, correlation_id = %id,
                       trace_id = trace, api_key = key, "request");
    } else {
        tracing::debug!(method, route, status, latency_ms, correlation_id = %id,
                        trace_id = trace, api_key = key, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_CORRELATION_ID, value);
    }
    response
}
