//! `GET /api/v1/stats`: the headline figures of a deployment as JSON, for the console and for
//! scripts that want them without reading Prometheus text.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiContext;
use super::problem::{ApiError, Problem};
use crate::observability::metrics::OUTBOX_COUNT_CAP;

/// Headline figures, read when asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Events this API process has stored since it started: the ingest rate is its change
    /// between two readings.
    pub events_ingested_total: u64,
    /// Stream entries the consumer group has not read yet, over every stream; null when the
    /// broker cannot say.
    pub consumer_lag: Option<u64>,
    /// Entries in the dead-letter queue.
    pub dlq_size: u64,
    /// Stored events waiting to be handed to the broker (counted up to a million).
    pub outbox_backlog: u64,
}

/// The headline figures: ingest counter, consumer lag, dead letters and outbox backlog.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "health",
    responses(
        (status = 200, description = "The figures", body = Stats),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stats(State(ctx): State<Arc<ApiContext>>) -> Result<Json<Stats>, ApiError> {
    let mut consumer_lag = Some(0);
    for stream in ctx.router.all_streams() {
        let lag = ctx.broker.lag(&ctx.consumer_group, &stream).await.ok();
        consumer_lag = consumer_lag.zip(lag).map(|(total, lag)| total + lag);
    }
    Ok(Json(Stats {
        events_ingested_total: ctx.producer.stored_total(),
        consumer_lag,
        dlq_size: ctx.deliveries.dead_letter_count().await?,
        outbox_backlog: ctx.store.outbox_len(OUTBOX_COUNT_CAP).await?,
    }))
}
