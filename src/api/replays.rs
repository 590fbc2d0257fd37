//! Replays: `POST /api/v1/events/replay` queues one; `/api/v1/replays` shows and cancels them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{ApiError, ApiPath, ApiQuery, Problem, RawBody, decode_json};
use super::{ApiContext, paging, path_segment};
use crate::delivery::validate_patterns;
use crate::replay::{Replay, ReplayStatus};

/// What to replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The stream whose events are replayed, such as `events:user`.
    stream: String,
    /// Events whose `time` is at or after this (RFC 3339)...
    start_time: DateTime<Utc>,
    /// ...and before this; the window may be at most REPLAY_MAX_WINDOW long.
    end_time: DateTime<Utc>,
    /// Only these event types: exact (`order.created`), a prefix (`order.*`), or `*`.
    event_types: Option<Vec<String>>,
    /// Only to this subscription (which must be enabled); by default to every enabled
    /// subscription matching each event.
    subscription_id: Option<String>,
    /// Only count what would be replayed (default false).
    dry_run: Option<bool>,
}

/// A page of replays.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayList {
    /// Newest first.
    replays: Vec<Replay>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Paging of the replay list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Queues a replay of a stream's events in a time window, to every matching subscription or to
/// one. Each event keeps its id; its deliveries carry the `x-eventflow-replay-id` header and the
/// `eventflowreplayid` CloudEvents extension. A worker runs it at REPLAY_RATE events a second.
#[utoipa::path(
    post, path = "/api/v1/events/replay", tag = "replays",
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Queued; follow it at the Location", body = Replay),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid replay: unknown stream or subscription, end before start, window too long", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_replay(
    State(ctx): State<Arc<ApiContext>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: ReplayRequest = decode_json(&body)?;
    validate(&ctx, &request).await?;
    let replay = Replay::queued(
        request.stream,
        request.start_time,
        request.end_time,
        request.event_types.unwrap_or_default(),
        request.subscription_id,
        request.dry_run.unwrap_or(false),
        // To the microsecond the store keeps.
        Utc::now().trunc_subsecs(6),
    );
    ctx.replays.insert_replay(&replay).await?;
    tracing::info!(replay = %replay.id, stream = %replay.stream, dry_run = replay.dry_run, "replay queued");
    let location = format!("/api/v1/replays/{}", path_segment(&replay.id));
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(replay),
    )
        .into_response())
}

/// Lists replays, newest first.
#[utoipa::path(
    get, path = "/api/v1/replays", tag = "replays", params(ReplayListParams),
    responses(
        (status = 200, description = "A page of replays", body = ReplayList),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_replays(
    State(ctx): State<Arc<ApiContext>>,
    ApiQuery(params): ApiQuery<ReplayListParams>,
) -> Result<Json<ReplayList>, ApiError> {
    let limit = paging::limit(params.limit)?;
    let page = ctx.replays.replays(params.cursor.as_deref(), limit).await?;
    Ok(Json(ReplayList {
        replays: page.replays,
        next_cursor: page.next_cursor,
    }))
}

/// One replay: its status and how far it has got.
#[utoipa::path(
    get, path = "/api/v1/replays/{id}", tag = "replays",
    params(("id" = String, Path, description = "Replay id")),
    responses(
        (status = 200, description = "The replay", body = Replay),
        (status = 404, description = "No such replay", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_replay(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Replay>, ApiError> {
    let replay = ctx.replays.replay(&id).await?;
    replay.map(Json).ok_or_else(|| not_found(&id))
}

/// Cancels a queued or running replay: it creates no more deliveries, and those it created that
/// have not been made are dropped. Cancelling a cancelled replay changes nothing.
#[utoipa::path(
    post, path = "/api/v1/replays/{id}/cancel", tag = "replays",
    params(("id" = String, Path, description = "Replay id")),
    responses(
        (status = 200, description = "The cancelled replay", body = Replay),
        (status = 404, description = "No such replay", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The replay already completed or failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_replay(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Replay>, ApiError> {
    let replay = ctx
        .replays
        .cancel_replay(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if replay.status != ReplayStatus::Cancelled {
        return Err(ApiError::Conflict(format!(
            "replay {id} already {}",
            replay.status.as_str()
        )));
    }
    tracing::info!(replay = %id, "replay cancelled");
    Ok(Json(replay))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no replay with id {id:?}"))
}

/// Checks the stream, the window, the type filter and the subscription of a replay request.
async fn validate(ctx: &ApiContext, request: &ReplayRequest) -> Result<(), ApiError> {
    let streams = ctx.router.all_streams();
    if !streams.contains(&request.stream) {
        return Err(ApiError::Invalid(format!(
            "stream: unknown stream {:?}; the streams are {}",
            request.stream,
            streams.join(", ")
        )));
    }
    if request.end_time <= request.start_time {
        return Err(ApiError::Invalid(
            "end_time must be after start_time".into(),
        ));
    }
    let window = (request.end_time - request.start_time)
        .to_std()
        .unwrap_or(std::time::Duration::MAX);
    if window > ctx.replay_max_window {
        return Err(ApiError::Invalid(format!(
            "the window from start_time to end_time is longer than REPLAY_MAX_WINDOW ({} s); \
             split the replay",
            ctx.replay_max_window.as_secs()
        )));
    }
    if let Some(patterns) = &request.event_types {
        validate_patterns(patterns).map_err(ApiError::Invalid)?;
    }
    if let Some(id) = &request.subscription_id {
        if id.contains('\0') {
            return Err(ApiError::Invalid(
                "subscription_id must not contain NUL characters".into(),
            ));
        }
        let subscription = ctx
            .deliveries
            .subscription(id)
            .await?
            .ok_or_else(|| ApiError::Invalid(format!("subscription_id: no subscription {id:?}")))?
            .subscription;
        if !subscription.enabled {
            return Err(ApiError::Invalid(format!(
                "subscription_id: subscription {id:?} is paused; enable it first"
            )));
        }
    }
    Ok(())
}
