//! Correlation ids: taken from `X-Correlation-ID` (or generated), put on the request's log span,
//! handed to handlers, and echoed on every response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;
use tracing::Instrument;

use crate::events::ingest::is_valid_correlation_id;

/// The header that carries the id.
pub const X_CORRELATION_ID: &str = "x-correlation-id";

/// The correlation id of the current request.
#[derive(Debug, Clone)]
pub struct CorrelationId(
    /// The id.
    pub String,
);

/// Middleware: assigns the id, logs the request under it, and sets the response header.
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(X_CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_correlation_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %id,
        event_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        let latency_us = started.elapsed().as_micros() as u64;
        if status >= 500 {
            tracing::error!(status, latency_us, "request failed");
        } else {
            tracing::debug!(status, latency_us, "request completed");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_CORRELATION_ID, value);
    }
    response
}
