//! `/api/v1/events`: ingest (simple form and every CloudEvents content mode), list and fetch.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::correlation::{CorrelationId, TraceParent};
use super::problem::{
    ApiError, ApiPath, ApiQuery, MAX_JSON_DEPTH, Problem, RawBody, parse_json, refuse_deep_json,
};
use super::{ApiContext, path_segment};
use crate::events::http_binding;
use crate::events::ingest::{self, IngestContext};
use crate::events::{Event, InvalidEvent, Violation};
use crate::schemas::CheckError;
use crate::store::{AppendOutcome, Cursor, EventQuery, TypeFilter};

const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";
/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
const MAX_LIMIT: u32 = 1000;
/// Most rows a listing skips: deeper pages come from the keyset cursor, which costs nothing.
const MAX_OFFSET: u32 = 10_000;

/// How a request carries its events.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ContentMode {
    /// The README's JSON form.
    Simple,
    /// `application/cloudevents+json`.
    Structured,
    /// `ce-*` headers, body as data.
    Binary,
    /// `application/cloudevents-batch+json`.
    Batch,
}

impl ContentMode {
    fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let essence = headers
            .get(header::CONTENT_TYPE)
            .map(|v| http_binding::media_essence(v.to_str().unwrap_or_default()));
        if headers.contains_key("ce-specversion") {
            return Ok(Self::Binary);
        }
        match essence.as_deref() {
            Some(CLOUDEVENTS_JSON) => Ok(Self::Structured),
            Some(CLOUDEVENTS_BATCH) => Ok(Self::Batch),
            None => Ok(Self::Simple),
            Some(ct) if http_binding::is_json_media_type(ct) => Ok(Self::Simple),
            Some(ct) => Err(ApiError::UnsupportedMediaType(format!(
                "content type {ct} is not accepted: send application/json, {CLOUDEVENTS_JSON}, \
                 {CLOUDEVENTS_BATCH}, or a binary-mode CloudEvent (ce-* headers)"
            ))),
        }
    }
}

/// The README's simple form of an event (the OpenAPI description of the request body).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SimpleEvent {
    /// Event type, such as `user.created`; known types have validated payloads.
    #[serde(rename = "type")]
    event_type: String,
    /// Producer, such as `api` or `web-app`.
    source: String,
    /// The payload.
    #[schema(value_type = Object)]
    data: Option<Value>,
    /// `priority` (low, normal, high, critical), `partition_key`, `correlation_id`, and anything else.
    #[schema(value_type = Object)]
    metadata: Option<Value>,
    /// Optional id (default: a new UUIDv7); re-sending an id is idempotent.
    id: Option<String>,
    /// Optional subject.
    subject: Option<String>,
    /// Optional event time (RFC 3339; default: now).
    time: Option<DateTime<Utc>>,
}

/// Accepts one event (or a CloudEvents batch); 201 once it is durably stored.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "events",
    request_body(content(
        (SimpleEvent = "application/json"),
        (crate::events::CloudEvent = "application/cloudevents+json"),
    )),
    params(("X-Correlation-ID" = Option<String>, Header, description = "Correlation id; generated when absent")),
    responses(
        (status = 201, description = "Stored", body = Event),
        (status = 200, description = "Already stored with this id and source; nothing new stored", body = Event),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id belongs to an event of another source", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than MAX_BODY_BYTES", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_event(
    State(ctx): State<Arc<ApiContext>>,
    Extension(correlation): Extension<CorrelationId>,
    Extension(trace): Extension<TraceParent>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let ingest = IngestContext {
        router: &ctx.router,
        correlation_id: &correlation.0,
        received_at: Utc::now(),
        traceparent: trace.0.as_deref(),
    };
    let event = match ContentMode::of(&headers)? {
        ContentMode::Batch => {
            return ingest_batch(&ctx, parse_json(&body)?, ContentMode::Batch, ingest).await;
        }
        ContentMode::Simple => ingest::from_simple(parse_json(&body)?, ingest)?,
        ContentMode::Structured => ingest::from_structured(parse_json(&body)?, ingest)?,
        ContentMode::Binary => {
            let value = http_binding::structured_from_binary(&headers, &body)
                .map_err(|err| ApiError::MalformedJson(err.to_string()))?;
            // The body is the event's data, one level below the attributes.
            refuse_deep_json(&value, MAX_JSON_DEPTH + 1)?;
            ingest::from_structured(value, ingest)?
        }
    };
    let mut event = event;
    ctx.schemas
        .check(&mut event)
        .await
        .map_err(ApiError::from)?;
    tracing::Span::current().record("event_id", event.id());
    let outcome = ctx
        .producer
        .send(vec![event])
        .await?
        .pop()
        .ok_or(ApiError::Internal)?;
    match outcome {
        AppendOutcome::Created(event) => {
            let location = format!("/api/v1/events/{}", path_segment(event.id()));
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(event),
            )
                .into_response())
        }
        AppendOutcome::Duplicate(event) => Ok((StatusCode::OK, Json(event)).into_response()),
        AppendOutcome::Conflict { existing_source } => {
            Err(ApiError::Conflict(conflict_detail(&existing_source)))
        }
    }
}

/// The outcome of one item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemResult {
    /// Position in the request.
    pub index: usize,
    /// 201 stored, 200 duplicate, 409 id conflict, 422 invalid.
    pub status: u16,
    /// The event id, when the item was valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Store sequence, when stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// Why the item was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Each violation of an invalid item.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Violation>,
}

/// Per-item results of a batch, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Items stored now.
    pub accepted: usize,
    /// Items already stored before.
    pub duplicates: usize,
    /// Items refused (invalid or conflicting).
    pub rejected: usize,
    /// One result per item.
    pub results: Vec<BatchItemResult>,
}

/// A batch request: an array of events, or `{"events": [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BatchRequest {
    /// Events in the simple form.
    events: Vec<SimpleEvent>,
}

/// Accepts many events in one group commit; every valid item is stored, each gets a result.
#[utoipa::path(
    post, path = "/api/v1/events/batch", tag = "events",
    request_body(content(
        (BatchRequest = "application/json"),
        (Vec<crate::events::CloudEvent> = "application/cloudevents-batch+json"),
    )),
    responses(
        (status = 200, description = "Per-item results", body = BatchResult),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or batch too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a batch", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Event store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_batch(
    State(ctx): State<Arc<ApiContext>>,
    Extension(correlation): Extension<CorrelationId>,
    Extension(trace): Extension<TraceParent>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let mode = match ContentMode::of(&headers)? {
        ContentMode::Batch => ContentMode::Batch,
        ContentMode::Simple => ContentMode::Simple,
        _ => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send application/json or {CLOUDEVENTS_BATCH}"
            )));
        }
    };
    let ingest = IngestContext {
        router: &ctx.router,
        correlation_id: &correlation.0,
        received_at: Utc::now(),
        traceparent: trace.0.as_deref(),
    };
    ingest_batch(&ctx, parse_json(&body)?, mode, ingest).await
}

async fn ingest_batch(
    ctx: &ApiContext,
    body: Value,
    mode: ContentMode,
    ingest: IngestContext<'_>,
) -> Result<Response, ApiError> {
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut object) if mode == ContentMode::Simple => match object.remove("events") {
            Some(Value::Array(items)) => items,
            _ => return Err(not_a_batch()),
        },
        _ => return Err(not_a_batch()),
    };
    if items.is_empty() {
        return Err(InvalidEvent(vec![Violation::new("", "the batch is empty")]).into());
    }
    if items.len() > ctx.max_batch_events {
        return Err(ApiError::TooLarge(format!(
            "the batch has {} events; at most {} (MAX_BATCH_EVENTS) are accepted",
            items.len(),
            ctx.max_batch_events
        )));
    }
    let mut results = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let parsed = match mode {
            ContentMode::Batch => ingest::from_structured(item, ingest),
            _ => ingest::from_simple(item, ingest),
        };
        let checked = match parsed {
            Ok(mut event) => match ctx.schemas.check(&mut event).await {
                Ok(()) => Ok(event),
                Err(CheckError::Invalid(violations)) => Err(InvalidEvent(violations)),
                Err(CheckError::Store(err)) => return Err(err.into()),
            },
            Err(invalid) => Err(invalid),
        };
        match checked {
            Ok(event) => {
                results.push(None);
                valid.push((index, event));
            }
            Err(invalid) => results.push(Some(BatchItemResult {
                index,
                status: 422,
                id: None,
                sequence: None,
                detail: Some(invalid.to_string()),
                errors: invalid.0,
            })),
        }
    }
    let (indices, events): (Vec<usize>, Vec<Event>) = valid.into_iter().unzip();
    let outcomes = if events.is_empty() {
        Vec::new()
    } else {
        ctx.producer.send(events).await?
    };
    for (index, outcome) in indices.into_iter().zip(outcomes) {
        results[index] = Some(item_result(index, outcome));
    }
    let results: Vec<BatchItemResult> = results.into_iter().flatten().collect();
    let count = |status: u16| results.iter().filter(|r| r.status == status).count();
    let summary = BatchResult {
        accepted: count(201),
        duplicates: count(200),
        rejected: count(422) + count(409),
        results,
    };
    Ok((StatusCode::OK, Json(summary)).into_response())
}

/// Why an event id cannot be used again by another source.
fn conflict_detail(existing_source: &str) -> String {
    format!("event id is already used by an event from source {existing_source:?}")
}

fn not_a_batch() -> ApiError {
    InvalidEvent(vec![Violation::new(
        "",
        "expected a JSON array of events (or {\"events\": [...]})",
    )])
    .into()
}

fn item_result(index: usize, outcome: AppendOutcome) -> BatchItemResult {
    let (status, event, detail) = match outcome {
        AppendOutcome::Created(event) => (201, Some(event), None),
        AppendOutcome::Duplicate(event) => (200, Some(event), None),
        AppendOutcome::Conflict { existing_source } => {
            (409, None, Some(conflict_detail(&existing_source)))
        }
    };
    BatchItemResult {
        index,
        status,
        id: event.as_ref().map(|e| e.id().to_string()),
        sequence: event.and_then(|e| e.metadata.sequence),
        detail,
        errors: Vec::new(),
    }
}

/// Filters and paging of the event list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Exact type, or a prefix ending in `*` such as `order.*`.
    event_type: Option<String>,
    /// Exact source.
    source: Option<String>,
    /// Stream, such as `events:user`.
    stream: Option<String>,
    /// Exact subject.
    subject: Option<String>,
    /// Exact correlation id.
    correlation_id: Option<String>,
    /// Event time at or after (RFC 3339).
    start_time: Option<DateTime<Utc>>,
    /// Event time before (RFC 3339).
    end_time: Option<DateTime<Utc>>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Events to skip, up to 10000 (page further with `cursor`).
    offset: Option<u32>,
    /// `next_cursor` of the previous page: the next page starts after it.
    cursor: Option<String>,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events.
    pub events: Vec<Event>,
    /// How many are in this page.
    pub count: usize,
    /// The page size asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u32,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Lists stored events matching every given filter, newest first.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events", params(ListParams),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_events(
    State(ctx): State<Arc<ApiContext>>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<EventList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::BadRequest(format!(
            "offset must be at most {MAX_OFFSET}; page further with cursor"
        )));
    }
    if let (Some(start), Some(end)) = (params.start_time, params.end_time)
        && end <= start
    {
        return Err(ApiError::BadRequest(
            "end_time must be after start_time".into(),
        ));
    }
    let cursor = params
        .cursor
        .as_deref()
        .map(|c| c.parse::<Cursor>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("cursor is not one returned as next_cursor".into()))?;
    let query = EventQuery {
        event_type: params.event_type.as_deref().map(TypeFilter::parse),
        source: params.source,
        stream: params.stream,
        subject: params.subject,
        correlation_id: params.correlation_id,
        start_time: params.start_time,
        end_time: params.end_time,
        limit,
        offset,
        cursor,
    };
    let page = ctx.store.list(&query).await?;
    Ok(Json(EventList {
        count: page.events.len(),
        events: page.events,
        limit,
        offset: query.offset,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Fetches one stored event by id.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "The event", body = Event),
        (status = 404, description = "No event with this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_event(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Json<Event>, ApiError> {
    ctx.store
        .get(&event_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {event_id:?}")))
}
