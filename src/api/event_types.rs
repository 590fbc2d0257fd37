//! `/api/v1/event-types`: the schema registry. A PUT registers or changes a type (a changed
//! schema is a new version), reads show types and versions, a DELETE unregisters a type (its
//! versions stay, as stored events name them), and `validate` checks a payload without storing
//! anything. The rules are in [`crate::schemas`]; this module maps them to HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiContext;
use super::problem::{ApiError, ApiPath, ApiQuery, Problem, RawBody, decode_json};
use crate::events::Violation;
use crate::insights::Metric;
use crate::schemas::{EventType, EventTypeSpec, SchemaVersion, prepare, register};

/// A registered type as listed: the type, what it has been doing, and who receives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    /// The type at its latest version.
    #[serde(flatten)]
    event_type: EventType,
    /// Events of this type stored in the last hour.
    events_last_hour: u64,
    /// Events of this type stored in the last 24 hours.
    events_last_24h: u64,
    /// Events of this type refused by its schema in the last 24 hours.
    invalid_last_24h: u64,
    /// The subscriptions whose `event_types` select it.
    subscriptions: Vec<String>,
}

/// Every registered type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    /// By name.
    event_types: Vec<EventTypeView>,
}

/// A payload to check against a type's latest schema.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    /// The event's `data`: a JSON object, as every registered payload is.
    #[schema(value_type = Object)]
    data: serde_json::Map<String, Value>,
}

/// Whether a payload satisfies the schema, and where it does not.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationOutcome {
    /// True when it does.
    valid: bool,
    /// The version checked against.
    version: u32,
    /// Every violation, as pointers into the event (`/data/...`).
    errors: Vec<Violation>,
}

/// Whether a PUT saves, or only checks and says what it would save.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutParams {
    /// `true`: check the declaration and answer what would be saved (the version it would
    /// make), saving nothing; the console's schema editor validates with it.
    dry_run: Option<bool>,
}

/// Registers an event type, or changes it: a changed schema makes a new version.
#[utoipa::path(
    put, path = "/api/v1/event-types/{type}", tag = "event types",
    params(("type" = String, Path, description = "The CloudEvents type, such as invoice.paid"), PutParams),
    request_body = EventTypeSpec,
    responses(
        (status = 201, description = "Registered", body = EventType),
        (status = 200, description = "Changed, or unchanged; with dry_run, what would be saved", body = EventType),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid JSON Schema, or an example breaks it", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_event_type(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<PutParams>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let spec: EventTypeSpec = decode_json(&body)?;
    let dry_run = params.dry_run.unwrap_or(false);
    let registered = if dry_run {
        prepare(ctx.event_types.as_ref(), &name, spec).await?
    } else {
        let registered = register(ctx.event_types.as_ref(), &name, spec).await?;
        ctx.schemas.reload().await?;
        registered
    };
    let status = if registered.created && !dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registered.event_type)).into_response())
}

/// Every registered type, with its counts of the last hour and day and the subscriptions
/// receiving it.
#[utoipa::path(
    get, path = "/api/v1/event-types", tag = "event types",
    responses(
        (status = 200, description = "Every registered type", body = EventTypeList),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_event_types(
    State(ctx): State<Arc<ApiContext>>,
) -> Result<Json<EventTypeList>, ApiError> {
    let subscriptions = ctx.directory.all().await?;
    let now = Utc::now();
    let last_hour = ctx
        .counts
        .totals(Metric::Events, now - chrono::Duration::hours(1))
        .await?;
    let last_day = ctx
        .counts
        .totals(Metric::Events, now - chrono::Duration::hours(24))
        .await?;
    let invalid = ctx
        .counts
        .totals(Metric::Invalid, now - chrono::Duration::hours(24))
        .await?;
    let count = |totals: &std::collections::HashMap<String, u64>, name: &str| {
        totals.get(name).copied().unwrap_or_default()
    };
    let event_types = ctx
        .event_types
        .event_types()
        .await?
        .into_iter()
        .map(|event_type| EventTypeView {
            events_last_hour: count(&last_hour, &event_type.name),
            events_last_24h: count(&last_day, &event_type.name),
            invalid_last_24h: count(&invalid, &event_type.name),
            subscriptions: subscriptions
                .iter()
                .filter(|stored| stored.subscription.matches(&event_type.name))
                .map(|stored| stored.subscription.id.clone())
                .collect(),
            event_type,
        })
        .collect();
    Ok(Json(EventTypeList { event_types }))
}

/// One registered type at its latest version.
#[utoipa::path(
    get, path = "/api/v1/event-types/{type}", tag = "event types",
    params(("type" = String, Path, description = "The CloudEvents type")),
    responses(
        (status = 200, description = "The type", body = EventType),
        (status = 404, description = "Not registered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_event_type(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<EventType>, ApiError> {
    Ok(Json(find(&ctx, &name).await?))
}

/// One version of a type's schema (also of a type deleted since).
#[utoipa::path(
    get, path = "/api/v1/event-types/{type}/versions/{version}", tag = "event types",
    params(
        ("type" = String, Path, description = "The CloudEvents type"),
        ("version" = u32, Path, description = "The version, from 1"),
    ),
    responses(
        (status = 200, description = "The version", body = SchemaVersion),
        (status = 400, description = "The version is not a positive whole number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_schema_version(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath((name, version)): ApiPath<(String, u32)>,
) -> Result<Json<SchemaVersion>, ApiError> {
    ctx.event_types
        .schema_version(&name, version)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("{name} has no schema version {version}")))
}

/// Unregisters a type: its later events are not checked; its versions stay.
#[utoipa::path(
    delete, path = "/api/v1/event-types/{type}", tag = "event types",
    params(("type" = String, Path, description = "The CloudEvents type")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 404, description = "Not registered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_event_type(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !ctx.event_types.delete_event_type(&name).await? {
        return Err(not_registered(&name));
    }
    ctx.schemas.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a payload against a type's latest schema; stores nothing.
#[utoipa::path(
    post, path = "/api/v1/event-types/{type}/validate", tag = "event types",
    params(("type" = String, Path, description = "The CloudEvents type")),
    request_body = ValidationRequest,
    responses(
        (status = 200, description = "The verdict", body = ValidationOutcome),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No data given, or data that is not an object", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn validate_payload(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(name): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<ValidationOutcome>, ApiError> {
    let request: ValidationRequest = decode_json(&body)?;
    let (version, errors) = ctx
        .schemas
        .validate(&name, &Value::Object(request.data))
        .await?
        .ok_or_else(|| not_registered(&name))?;
    Ok(Json(ValidationOutcome {
        valid: errors.is_empty(),
        version,
        errors,
    }))
}

async fn find(ctx: &ApiContext, name: &str) -> Result<EventType, ApiError> {
    ctx.event_types
        .event_type(name)
        .await?
        .ok_or_else(|| not_registered(name))
}

fn not_registered(name: &str) -> ApiError {
    ApiError::NotFound(format!("{name} is not a registered event type"))
}
