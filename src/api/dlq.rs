//! `/api/v1/dlq`: the dead-letter queue — list, inspect, retry (one or by filter) and delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiContext;
use super::paging;
use super::problem::{ApiError, ApiPath, ApiQuery, Problem, RawBody, decode_optional_json};
use crate::broker::StreamMessage;
use crate::delivery::{DeadLetter, DeadLetterKind, DeadLetterQuery};
use crate::observability::metrics;

/// Most dead letters one bulk retry puts back.
const MAX_BULK: u32 = 10_000;

/// Filters and paging of the dead-letter list.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    /// Only `webhook` deliveries or `handler` failures.
    kind: Option<DeadLetterKind>,
    /// Only deliveries to this subscription.
    subscription_id: Option<String>,
    /// Only events of this exact type.
    event_type: Option<String>,
    /// Page size, 1 to 1000 (default 100); for a bulk retry, how many to retry (default and most
    /// 10000).
    limit: Option<u32>,
    /// `next_cursor` of a previous page: start after it.
    cursor: Option<String>,
}

/// A page of dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Oldest first.
    dead_letters: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// What a retry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// Dead letters put back into processing.
    requeued: u64,
}

/// Lists dead letters, oldest first: webhook deliveries that used up their attempts and events
/// whose processing failed for good, with the error, attempts and the event.
#[utoipa::path(
    get, path = "/api/v1/dlq", tag = "dead letters", params(DeadLetterFilter),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterList),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_dead_letters(
    State(ctx): State<Arc<ApiContext>>,
    ApiQuery(filter): ApiQuery<DeadLetterFilter>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let query = DeadLetterQuery {
        limit: paging::limit(filter.limit)?,
        ..query_of(filter)?
    };
    let page = ctx.deliveries.dead_letters(&query).await?;
    Ok(Json(DeadLetterList {
        dead_letters: page.letters,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// One dead letter.
#[utoipa::path(
    get, path = "/api/v1/dlq/{message_id}", tag = "dead letters",
    params(("message_id" = String, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetter),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_dead_letter(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(find(&ctx, &id).await?))
}

/// Puts a dead letter back into processing: a webhook delivery is scheduled again with a fresh
/// attempt budget (same webhook-id); a failed event goes back on its stream.
#[utoipa::path(
    post, path = "/api/v1/dlq/{message_id}/retry", tag = "dead letters",
    params(("message_id" = String, Path, description = "Dead letter id")),
    responses(
        (status = 202, description = "Back in processing", body = Requeued),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its subscription is gone or disabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store or broker unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_dead_letter(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let letter = find(&ctx, &id).await?;
    if !requeue(&ctx, &letter).await? {
        // Taken by a concurrent retry, or its delivery is gone.
        return Err(not_found(&id));
    }
    metrics::sample_dead_letters(ctx.deliveries.as_ref()).await;
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued: 1 })))
}

/// Puts back every dead letter matching the filter (up to `limit`); letters whose subscription is
/// gone or disabled stay.
#[utoipa::path(
    post, path = "/api/v1/dlq/retry", tag = "dead letters",
    request_body = Option<DeadLetterFilter>,
    responses(
        (status = 202, description = "Back in processing", body = Requeued),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store or broker unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_dead_letters(
    State(ctx): State<Arc<ApiContext>>,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let filter: DeadLetterFilter = decode_optional_json(&body)?;
    let mut left = filter.limit.unwrap_or(MAX_BULK);
    if !(1..=MAX_BULK).contains(&left) {
        return Err(ApiError::Invalid(format!(
            "limit must be from 1 to {MAX_BULK}"
        )));
    }
    let mut query = query_of(filter)?;
    let mut requeued = 0;
    // Letters that fail again while this runs are not retried a second time.
    let started = chrono::Utc::now();
    'pages: while left > 0 {
        query.limit = left.min(paging::MAX_LIMIT);
        let page = ctx.deliveries.dead_letters(&query).await?;
        for letter in &page.letters {
            if letter.failed_at > started {
                break 'pages;
            }
            match requeue(&ctx, letter).await {
                Ok(done) => requeued += u64::from(done),
                Err(ApiError::Conflict(reason)) => {
                    tracing::info!(dead_letter = %letter.id, reason, "left in the dead-letter queue")
                }
                Err(err) => return Err(err),
            }
        }
        left -= page.letters.len() as u32;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    metrics::sample_dead_letters(ctx.deliveries.as_ref()).await;
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued })))
}

/// Drops a dead letter for good.
#[utoipa::path(
    delete, path = "/api/v1/dlq/{message_id}", tag = "dead letters",
    params(("message_id" = String, Path, description = "Dead letter id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_dead_letter(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !ctx.deliveries.delete_dead_letter(&id).await? {
        return Err(not_found(&id));
    }
    metrics::sample_dead_letters(ctx.deliveries.as_ref()).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The store query of a filter (its page size still to be set).
fn query_of(filter: DeadLetterFilter) -> Result<DeadLetterQuery, ApiError> {
    Ok(DeadLetterQuery {
        kind: filter.kind,
        subscription_id: filter.subscription_id,
        event_type: filter.event_type,
        limit: 0,
        cursor: paging::cursor(filter.cursor.as_deref())?,
    })
}

async fn find(ctx: &ApiContext, id: &str) -> Result<DeadLetter, ApiError> {
    ctx.deliveries
        .dead_letter(id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no dead letter with id {id:?}"))
}

/// Puts one dead letter back into processing; false if another request took it first.
async fn requeue(ctx: &ApiContext, letter: &DeadLetter) -> Result<bool, ApiError> {
    match letter.kind {
        DeadLetterKind::Webhook => {
            let subscription_id = letter.subscription_id.as_deref().unwrap_or_default();
            match ctx.deliveries.subscription(subscription_id).await? {
                None => Err(ApiError::Conflict(format!(
                    "subscription {subscription_id:?} no longer exists"
                ))),
                Some(stored) if !stored.subscription.enabled => Err(ApiError::Conflict(format!(
                    "subscription {subscription_id:?} is disabled; enable it first"
                ))),
                Some(_) => Ok(ctx.deliveries.requeue_delivery(letter).await?),
            }
        }
        DeadLetterKind::Handler => {
            // Taken from the queue first, so that concurrent retries put it back on its stream once.
            if !ctx.deliveries.delete_dead_letter(&letter.id).await? {
                return Ok(false);
            }
            let message = StreamMessage {
                stream: letter.stream.clone(),
                event_id: letter.event_id.clone(),
                partition_key: letter
                    .event
                    .pointer("/metadata/partition_key")
                    .and_then(|key| key.as_str())
                    .map(str::to_string),
                sequence: letter
                    .event
                    .pointer("/metadata/sequence")
                    .and_then(|seq| seq.as_i64()),
                payload: letter.event.to_string(),
            };
            if let Err(err) = ctx.broker.publish(&[message]).await {
                tracing::warn!(error = %err, "cannot put a dead letter back on its stream");
                ctx.deliveries.add_dead_letter(letter).await?;
                return Err(ApiError::Unavailable(
                    "the broker is unavailable; retry shortly".into(),
                ));
            }
            Ok(true)
        }
    }
}
