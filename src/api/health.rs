//! Health probes for orchestrators and the Prometheus scrape endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::keys::ApiKeys;
use crate::broker::Broker;
use crate::config::AppEnv;
use crate::store::EventStore;

/// Longest a dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probes look at.
pub struct Probes {
    /// APP_NAME, for /health.
    pub app_name: String,
    /// APP_ENV, for /health.
    pub app_env: AppEnv,
    /// Checked by readiness.
    pub store: Arc<dyn EventStore>,
    /// Checked by readiness.
    pub broker: Arc<dyn Broker>,
    /// Renders /metrics.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether this process runs a worker: readiness then needs the broker too.
    pub runs_worker: bool,
    /// The token /metrics asks for (METRICS_API_KEY); none leaves it open.
    pub metrics_key: Arc<ApiKeys>,
}

/// The process's basic facts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    /// APP_NAME.
    pub service: String,
    /// APP_ENV.
    pub environment: &'static str,
    /// EventFlow version.
    pub version: &'static str,
}

/// Basic health: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(State(ctx): State<Arc<Probes>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        service: ctx.app_name.clone(),
        environment: ctx.app_env.as_str(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub async fn live(state: State<Arc<Probes>>) -> Json<Health> {
    health(state).await
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Component {
    /// `up` or `down`.
    pub status: &'static str,
    /// How long the check took.
    pub latency_ms: f64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness with each dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (working without an optional part) or `unavailable`.
    pub status: &'static str,
    /// The event store.
    pub store: Component,
    /// The broker.
    pub broker: Component,
}

/// Readiness: 200 while what this process's role needs is reachable, else 503.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready (or degraded: the API works without the broker)", body = Readiness),
        (status = 503, description = "A required dependency is down", body = Readiness),
    )
)]
pub async fn ready(State(ctx): State<Arc<Probes>>) -> impl IntoResponse {
    let store = check(async { ctx.store.ping().await.map_err(|e| e.to_string()) }).await;
    let broker = check(async { ctx.broker.ping().await.map_err(|e| e.to_string()) }).await;
    let store_up = store.error.is_none();
    let broker_up = broker.error.is_none();
    // The API needs the store (the outbox covers a broker outage); a worker needs both (the
    // store holds what the group has processed).
    let status = match (store_up, broker_up) {
        (true, true) => "ready",
        (true, false) if !ctx.runs_worker => "degraded",
        _ => "unavailable",
    };
    let code = if status == "unavailable" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(Readiness {
            status,
            store,
            broker,
        }),
    )
}

async fn check(probe: impl Future<Output = Result<(), String>>) -> Component {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")));
    Component {
        status: if outcome.is_ok() { "up" } else { "down" },
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: outcome.err(),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(ctx): State<Arc<Probes>>) -> impl IntoResponse {
    ctx.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ctx.metrics.render(),
    )
}
