//! `GET /api/v1/stats/timeseries`: counts per minute or per hour, by event type or by
//! subscription, for charts. The counts are kept as events and attempts happen
//! ([`crate::insights`]), so a chart of a day reads at most a day of buckets, whatever the size
//! of the events table.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiContext;
use super::problem::{ApiError, ApiQuery, Problem};
use crate::insights::{Interval, Metric, Series, parse_since, series};

/// What to chart.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesParams {
    /// `events` or `invalid` (by type), `deliveries` or `delivery_failures` (by subscription),
    /// or `dlq_size` (the dead-letter queue's size, sampled every minute; key `dlq`).
    metric: String,
    /// `type` for events and invalid, `subscription` for deliveries, `queue` for dlq_size (the
    /// default is the one the metric has).
    group_by: Option<String>,
    /// Bucket width: `1m` (default, kept 48 h) or `1h` (kept 31 days).
    interval: Option<String>,
    /// From when: RFC 3339, or a span back from now such as `90m`, `24h`, `7d` (default 60
    /// buckets back).
    since: Option<String>,
}

/// Counts over time, one series per key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    /// The metric charted.
    metric: &'static str,
    /// What its keys are: `type`, `subscription` or `queue`.
    group_by: &'static str,
    /// The bucket width.
    interval: &'static str,
    /// The start of the first bucket asked for.
    since: DateTime<Utc>,
    /// One per type or subscription with anything counted, by key.
    series: Vec<Series>,
}

/// Counts per minute or hour, by type or subscription, kept at write time.
#[utoipa::path(
    get, path = "/api/v1/stats/timeseries", tag = "health",
    params(TimeseriesParams),
    responses(
        (status = 200, description = "The series", body = Timeseries),
        (status = 400, description = "An unknown metric, grouping or interval, or a start the interval does not reach", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn timeseries(
    State(ctx): State<Arc<ApiContext>>,
    ApiQuery(params): ApiQuery<TimeseriesParams>,
) -> Result<Json<Timeseries>, ApiError> {
    let metric = Metric::parse(&params.metric).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "metric must be one of {}",
            Metric::ALL.map(Metric::as_str).join(", ")
        ))
    })?;
    if let Some(group_by) = params.group_by.as_deref()
        && group_by != metric.grouped_by()
    {
        return Err(ApiError::BadRequest(format!(
            "{} are counted by {}, not by {group_by}",
            metric.as_str(),
            metric.grouped_by()
        )));
    }
    let interval = match params.interval.as_deref() {
        None => Interval::Minute,
        Some(name) => Interval::parse(name)
            .ok_or_else(|| ApiError::BadRequest("interval must be 1m or 1h".into()))?,
    };
    let now = Utc::now();
    let since = match params.since.as_deref() {
        None => now - interval.width() * 60,
        Some(text) => parse_since(text, now).ok_or_else(|| {
            ApiError::BadRequest(
                "since must be an RFC 3339 time or a span such as 90m, 24h or 7d".into(),
            )
        })?,
    };
    let reach = chrono::Duration::from_std(interval.retention()).unwrap_or_default();
    if since < now - reach {
        let hint = match interval {
            Interval::Minute => ", or use interval=1h",
            Interval::Hour => "",
        };
        return Err(ApiError::BadRequest(format!(
            "buckets of {} are kept {} hours: start later{hint}",
            interval.as_str(),
            reach.num_hours()
        )));
    }
    let rows = ctx.counts.counts(metric, interval, since).await?;
    Ok(Json(Timeseries {
        metric: metric.as_str(),
        group_by: metric.grouped_by(),
        interval: interval.as_str(),
        since: DateTime::from_timestamp_micros(interval.bucket_of(since)).unwrap_or(since),
        series: series(rows),
    }))
}
