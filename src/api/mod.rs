//! The HTTP API: routes, shared state, and the middleware every request passes.

mod auth;
mod console;
pub mod correlation;
mod dlq;
mod event_types;
mod events;
mod filters;
mod health;
mod http_metrics;
mod insights;
pub mod keys;
mod live;
mod openapi;
mod paging;
pub mod problem;
mod rate_limit;
mod replays;
mod stats;
mod subscriptions;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::broker::Broker;
use crate::delivery::{DeliveryStore, SubscriptionDirectory};
use crate::events::StreamRouter;
use crate::producer::Producer;
use crate::reliability::BreakerBoard;
use crate::replay::ReplayStore;
use crate::store::EventStore;
use problem::{ApiError, PROBLEM_JSON};

pub use auth::Access;
pub use health::Probes;
pub use openapi::{ApiDoc, documented_routes};
pub use rate_limit::RateLimiter;

/// What the endpoints share.
pub struct ApiContext {
    /// Commits events.
    pub producer: Producer,
    /// Where an operator's disable of a subscription is reported.
    pub operations: crate::operations::Operations,
    /// The schema registry's types and versions.
    pub event_types: Arc<dyn crate::schemas::EventTypeStore>,
    /// The registered types as ingest enforces them.
    pub schemas: Arc<crate::schemas::SchemaRegistry>,
    /// The insights' counts, for charts and the event types' activity.
    pub counts: Arc<dyn crate::insights::CountStore>,
    /// Answers queries.
    pub store: Arc<dyn EventStore>,
    /// Subscriptions, delivery logs and dead letters.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// Replay jobs.
    pub replays: Arc<dyn ReplayStore>,
    /// ROTATION_OVERLAP: how long a rotated-out secret keeps signing.
    pub rotation_overlap: std::time::Duration,
    /// REPLAY_MAX_WINDOW.
    pub replay_max_window: std::time::Duration,
    /// Takes retried dead letters of event handlers back.
    pub broker: Arc<dyn Broker>,
    /// This process's cache of subscriptions, refreshed on every change made here.
    pub directory: Arc<SubscriptionDirectory>,
    /// Routes event types to streams.
    pub router: StreamRouter,
    /// CONSUMER_GROUP: whose lag the stats report.
    pub consumer_group: String,
    /// This process's circuit breakers, whose state subscriptions show.
    pub breakers: BreakerBoard,
    /// One permit per live stream open, up to LIVE_STREAM_MAX_CLIENTS.
    pub live_streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled at shutdown: ends live streams, which would otherwise hold it up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// MAX_BATCH_EVENTS.
    pub max_batch_events: usize,
    /// Whether webhook URLs may lead to non-public addresses.
    pub allow_private_webhooks: bool,
}

/// Percent-encodes `text` for use as one URL path segment (RFC 3986 unreserved stay as they are).
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The complete router of an API process: API (behind `access`), web console, health, metrics,
/// OpenAPI document and docs page.
pub fn router(ctx: ApiContext, access: Access, probes: Probes, limits: RequestLimits) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/events",
            post(events::create_event).get(events::list_events),
        )
        .route("/api/v1/events/batch", post(events::create_batch))
        .route("/api/v1/events/stream", get(live::stream_events))
        .route("/api/v1/events/replay", post(replays::create_replay))
        .route("/api/v1/replays", get(replays::list_replays))
        .route("/api/v1/replays/{id}", get(replays::get_replay))
        .route("/api/v1/replays/{id}/cancel", post(replays::cancel_replay))
        .route("/api/v1/events/{event_id}", get(events::get_event))
        .route(
            "/api/v1/subscriptions",
            post(subscriptions::create_subscription).get(subscriptions::list_subscriptions),
        )
        .route(
            "/api/v1/subscriptions/{id}",
            get(subscriptions::get_subscription)
                .patch(subscriptions::update_subscription)
                .delete(subscriptions::delete_subscription),
        )
        .route(
            "/api/v1/subscriptions/{id}/secret/rotate",
            post(subscriptions::rotate_secret),
        )
        .route(
            "/api/v1/subscriptions/{id}/deliveries",
            get(subscriptions::list_deliveries),
        )
        .route("/api/v1/filters/evaluate", post(filters::evaluate))
        .route("/api/v1/event-types", get(event_types::list_event_types))
        .route(
            "/api/v1/event-types/{type}",
            get(event_types::get_event_type)
                .put(event_types::put_event_type)
                .delete(event_types::delete_event_type),
        )
        .route(
            "/api/v1/event-types/{type}/versions/{version}",
            get(event_types::get_schema_version),
        )
        .route(
            "/api/v1/event-types/{type}/validate",
            post(event_types::validate_payload),
        )
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/stats/timeseries", get(insights::timeseries))
        .route("/api/v1/dlq", get(dlq::list_dead_letters))
        .route("/api/v1/dlq/retry", post(dlq::retry_dead_letters))
        .route(
            "/api/v1/dlq/{message_id}",
            get(dlq::get_dead_letter).delete(dlq::delete_dead_letter),
        )
        .route(
            "/api/v1/dlq/{message_id}/retry",
            post(dlq::retry_dead_letter),
        )
        .with_state(Arc::new(ctx))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            auth::authorize,
        ));
    let app = Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .merge(console::routes())
        .merge(probe_routes(probes))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    with_problems_and_correlation(app, limits)
}

/// The router of a worker process: health probes and metrics.
pub fn probe_router(probes: Probes, limits: RequestLimits) -> Router {
    with_problems_and_correlation(probe_routes(probes), limits)
}

/// Health, readiness and metrics (behind METRICS_API_KEY when set).
fn probe_routes(probes: Probes) -> Router {
    let metrics_key = probes.metrics_key.clone();
    Router::new()
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route(
            "/metrics",
            get(health::metrics).layer(axum::middleware::from_fn_with_state(
                metrics_key,
                auth::authorize_metrics,
            )),
        )
        .with_state(Arc::new(probes))
}

/// What one request may use, and whether it is logged.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// MAX_BODY_BYTES: a larger body gets `413`.
    pub max_body_bytes: usize,
    /// HTTP_REQUEST_TIMEOUT: a request not received and answered in this time gets `408`, so
    /// that no request (a client trickling its body, say) holds its connection longer.
    pub timeout: std::time::Duration,
    /// ACCESS_LOG: one INFO line per answered request.
    pub access_log: bool,
}

/// What every response gets: problem+json for unknown paths and methods, `408` past the request
/// timeout, request metrics, and a correlation id (all three on the `408` too).
fn with_problems_and_correlation(router: Router, limits: RequestLimits) -> Router {
    let timeout = limits.timeout;
    router
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(axum::http::header::CONTENT_TYPE, PROBLEM_JSON)],
                r#"{"type":"urn:eventflow:problem:method-not-allowed","title":"Method not allowed","status":405,"detail":"this endpoint does not accept that method"}"#,
            )
                .into_response()
        })
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::RequestTimeout(timeout).into_response(),
                }
            },
        ))
        .layer(axum::middleware::from_fn(http_metrics::record))
        .layer(axum::middleware::from_fn_with_state(
            correlation::AccessLog(limits.access_log),
            correlation::correlate,
        ))
}
