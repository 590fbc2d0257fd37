//! The HTTP API: routes, shared state, and the middleware every request passes.

pub mod correlation;
mod events;
mod health;
mod openapi;
pub mod problem;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::broker::Broker;
use crate::events::StreamRouter;
use crate::producer::Producer;
use crate::store::EventStore;
use problem::{ApiError, PROBLEM_JSON};

pub use openapi::ApiDoc;

/// What request handlers share.
pub struct ApiContext {
    /// APP_NAME, for /health.
    pub app_name: String,
    /// APP_ENV, for /health.
    pub app_env: crate::config::AppEnv,
    /// Commits events.
    pub producer: Producer,
    /// Answers queries.
    pub store: Arc<dyn EventStore>,
    /// Checked by readiness.
    pub broker: Arc<dyn Broker>,
    /// Routes event types to streams.
    pub router: StreamRouter,
    /// Renders /metrics.
    pub metrics: PrometheusHandle,
    /// MAX_BATCH_EVENTS.
    pub max_batch_events: usize,
    /// Whether this process also runs a worker (readiness then needs the broker).
    pub runs_worker: bool,
}

/// The complete router: API, health, metrics, OpenAPI document and docs page.
pub fn router(ctx: ApiContext, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/events",
            post(events::create_event).get(events::list_events),
        )
        .route("/api/v1/events/batch", post(events::create_batch))
        .route("/api/v1/events/{event_id}", get(events::get_event))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .with_state(Arc::new(ctx));
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(axum::http::header::CONTENT_TYPE, PROBLEM_JSON)],
                r#"{"type":"urn:eventflow:problem:method-not-allowed","title":"Method not allowed","status":405,"detail":"this endpoint does not accept that method"}"#,
            )
                .into_response()
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(correlation::correlate))
}
