//! `/api/v1/subscriptions`: webhook subscriptions and their delivery log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::paging;
use super::problem::{
    ApiError, ApiPath, ApiQuery, Problem, RawBody, decode_json, decode_optional_json,
};
use super::{ApiContext, path_segment};
use crate::delivery::{
    ContentMode, DEFAULT_MAX_IN_FLIGHT, DeliveryAttempt, DeliveryOrdering, Filters, GuardError,
    PreviousSecret, SigningSecret, StaticHeaders, StoredSubscription, Subscription,
    validate_patterns, vet_webhook_url,
};
use crate::events::Violation;
use crate::operations::{DisabledBy, OperationalEvent};

/// Now, to the microsecond the store keeps.
fn now_in_micros() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Longest subscription name.
const MAX_NAME: usize = 200;
/// Longest webhook URL.
const MAX_URL: usize = 2048;
/// Longest secret a subscriber may give.
const MAX_SECRET: usize = 1024;
/// Highest rate limit, in deliveries per second.
const MAX_RATE_LIMIT: u32 = 100_000;
/// Most requests in flight one subscription may ask for.
const MAX_IN_FLIGHT: u32 = 1024;

/// A field that may be absent (unchanged), `null` (cleared) or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// A name for people.
    name: String,
    /// Event types to deliver: exact (`order.created`), a prefix (`order.*`), or `*`.
    event_types: Vec<String>,
    /// Where to POST deliveries (http or https, on a public address outside development).
    webhook_url: String,
    /// Signing secret: `whsec_` and base64, or any string (its bytes are the key). Generated and
    /// returned once when absent; never returned otherwise.
    secret: Option<String>,
    /// Deliver at once (default true).
    enabled: Option<bool>,
    /// CloudEvents Subscriptions API filters, all of which an event must pass: `{"exact":
    /// {attribute: value}}`, `prefix`, `suffix`, `{"all": [...]}`, `{"any": [...]}`, `{"not":
    /// {...}}`, `{"sql": "CESQL expression"}`; attributes include `data.<field>` paths.
    #[schema(value_type = Option<Vec<Object>>)]
    filters: Option<Vec<serde_json::Value>>,
    /// How deliveries carry the event: `json` (default), `structured` or `binary`.
    content_mode: Option<ContentMode>,
    /// Static headers sent with every delivery, `{name: value}` (at most 20; not hop-by-hop,
    /// `host`, `content-type`, `content-length`, `webhook-*` or `ce-*`). Only the names are
    /// ever shown.
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// `partition_key`: events sharing a partition key reach the endpoint one at a time, in the
    /// order they were accepted (default `none`: deliveries are independent).
    ordering: Option<DeliveryOrdering>,
    /// Deliveries per second to the endpoint over all processes (1 to 100,000); absent or null
    /// for no limit.
    #[schema(minimum = 1, maximum = 100_000)]
    rate_limit: Option<u32>,
    /// Requests in flight to the endpoint at once over all processes (1 to 1024, default 32).
    #[schema(minimum = 1, maximum = 1024)]
    max_in_flight: Option<u32>,
}

/// Changes to a subscription; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionChanges {
    /// A name for people.
    name: Option<String>,
    /// Event types to deliver.
    event_types: Option<Vec<String>>,
    /// Where to POST deliveries.
    webhook_url: Option<String>,
    /// A new signing secret.
    secret: Option<String>,
    /// Pause (false) or resume (true) deliveries; resuming clears `disabled_reason`.
    enabled: Option<bool>,
    /// The filters, replacing the previous ones (`[]` removes them).
    #[schema(value_type = Option<Vec<Object>>)]
    filters: Option<Vec<serde_json::Value>>,
    /// `json`, `structured` or `binary`.
    content_mode: Option<ContentMode>,
    /// Static headers, replacing the previous ones (`{}` removes them).
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// `none` or `partition_key`; switching to `none` releases every waiting delivery at once.
    ordering: Option<DeliveryOrdering>,
    /// Deliveries per second over all processes; `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100_000)]
    rate_limit: Option<Option<u32>>,
    /// Requests in flight at once over all processes (1 to 1024).
    #[schema(minimum = 1, maximum = 1024)]
    max_in_flight: Option<u32>,
}

/// A subscription just created.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscription {
    /// The subscription.
    #[serde(flatten)]
    subscription: Subscription,
    /// The generated signing secret: shown this once, when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// A secret rotation: the new secret, or none to have one generated.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// The new signing secret (`whsec_` and base64, or any string); generated when absent.
    secret: Option<String>,
}

/// What a rotation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The generated secret: shown this once, when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// Until when deliveries also carry a signature with the previous secret (absent when
    /// ROTATION_OVERLAP is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_until: Option<chrono::DateTime<Utc>>,
}

/// Every subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// Oldest first.
    subscriptions: Vec<SubscriptionView>,
}

/// A subscription as the API shows it: its settings and its endpoint's circuit breaker.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// The settings.
    #[serde(flatten)]
    subscription: Subscription,
    /// The circuit breaker of its endpoint in this process (`closed`, `open`, `half_open`);
    /// absent where this process does not deliver (an API-only process) or has not yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker: Option<&'static str>,
    /// On an ordered subscription (shown for one subscription, not in the list): the keys held
    /// back by a failing head.
    #[serde(skip_serializing_if = "Option::is_none")]
    ordering_status: Option<OrderingStatus>,
}

/// The keys of an ordered subscription held back by a failing head.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderingStatus {
    /// Keys whose head has failed at least once and is not yet delivered or dead-lettered: their
    /// later events wait.
    blocked_keys: u64,
    /// Age in seconds of the oldest such head; absent when no key is blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_blocked_head_age_seconds: Option<f64>,
}

impl SubscriptionView {
    /// `subscription` with its breaker's state in this process.
    fn of(ctx: &ApiContext, subscription: Subscription) -> Self {
        let breaker = ctx
            .breakers
            .state(&subscription.id)
            .map(|state| state.as_str());
        Self {
            subscription,
            breaker,
            ordering_status: None,
        }
    }

    /// The same view with the ordering status of an ordered subscription.
    async fn with_ordering_status(mut self, ctx: &ApiContext) -> Result<Self, ApiError> {
        if self.subscription.ordering == DeliveryOrdering::None {
            return Ok(self);
        }
        let blocked = ctx
            .deliveries
            .blocked_keys(Some(&self.subscription.id))
            .await?;
        let blocked = blocked.first();
        let age = blocked.map(|b| (Utc::now() - b.oldest_head_since).as_seconds_f64().max(0.0));
        self.ordering_status = Some(OrderingStatus {
            blocked_keys: blocked.map_or(0, |b| b.keys),
            oldest_blocked_head_age_seconds: age,
        });
        Ok(self)
    }
}

/// A page of a subscription's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    /// Attempts, newest first.
    attempts: Vec<DeliveryAttempt>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Paging of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only the attempts at delivering this event.
    event_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Creates a subscription; its deliveries start with the next matching event.
#[utoipa::path(
    post, path = "/api/v1/subscriptions", tag = "subscriptions",
    request_body = NewSubscription,
    responses(
        (status = 201, description = "Created", body = CreatedSubscription),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid subscription", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_subscription(
    State(ctx): State<Arc<ApiContext>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let new: NewSubscription = decode_json(&body)?;
    let filters = compile_filters(new.filters.unwrap_or_default())?;
    let headers = static_headers(new.headers.unwrap_or_default())?;
    let generated = new.secret.is_none().then(SigningSecret::generate);
    let secret = new.secret.or_else(|| generated.clone()).unwrap_or_default();
    let now = now_in_micros();
    let stored = StoredSubscription {
        subscription: Subscription {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name,
            event_types: new.event_types,
            webhook_url: new.webhook_url,
            filters,
            content_mode: new.content_mode.unwrap_or_default(),
            headers,
            ordering: new.ordering.unwrap_or_default(),
            rate_limit: new.rate_limit,
            max_in_flight: new.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            held_until: None,
            enabled: new.enabled.unwrap_or(true),
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        },
        secret,
        previous: None,
    };
    validate(&ctx, &stored, true).await?;
    ctx.deliveries.insert_subscription(&stored).await?;
    ctx.directory.invalidate();
    let subscription = stored.subscription;
    // The host only: webhook URLs often carry tokens.
    let host = url::Url::parse(&subscription.webhook_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_default();
    tracing::info!(subscription = %subscription.id, host, "subscription created");
    let location = format!("/api/v1/subscriptions/{}", path_segment(&subscription.id));
    let created = CreatedSubscription {
        subscription,
        secret: generated,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// Lists every subscription (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/subscriptions", tag = "subscriptions",
    responses(
        (status = 200, description = "Every subscription", body = SubscriptionList),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_subscriptions(
    State(ctx): State<Arc<ApiContext>>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let subscriptions = ctx
        .deliveries
        .subscriptions()
        .await?
        .into_iter()
        .map(|stored| SubscriptionView::of(&ctx, stored.subscription))
        .collect();
    Ok(Json(SubscriptionList { subscriptions }))
}

/// One subscription (never its secret).
#[utoipa::path(
    get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_subscription(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let subscription = find(&ctx, &id).await?.subscription;
    let view = SubscriptionView::of(&ctx, subscription);
    Ok(Json(view.with_ordering_status(&ctx).await?))
}

/// Changes a subscription; pending deliveries go to its new URL and are signed with its new
/// secret.
#[utoipa::path(
    patch, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = SubscriptionChanges,
    responses(
        (status = 200, description = "The changed subscription", body = SubscriptionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid change", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_subscription(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changes: SubscriptionChanges = decode_json(&body)?;
    let filters = changes.filters.map(compile_filters).transpose()?;
    let headers = changes.headers.map(static_headers).transpose()?;
    let mut stored = find(&ctx, &id).await?;
    let url_changed = changes.webhook_url.is_some();
    let subscription = &mut stored.subscription;
    if let Some(name) = changes.name {
        subscription.name = name;
    }
    if let Some(event_types) = changes.event_types {
        subscription.event_types = event_types;
    }
    if let Some(url) = changes.webhook_url {
        subscription.webhook_url = url;
    }
    if let Some(filters) = filters {
        subscription.filters = filters;
    }
    if let Some(content_mode) = changes.content_mode {
        subscription.content_mode = content_mode;
    }
    if let Some(headers) = headers {
        subscription.headers = headers;
    }
    let disabled = changes.enabled == Some(false) && subscription.enabled;
    if let Some(enabled) = changes.enabled {
        subscription.enabled = enabled;
        if enabled {
            subscription.disabled_reason = None;
        }
    }
    let was_ordered = subscription.ordering != DeliveryOrdering::None;
    if let Some(ordering) = changes.ordering {
        subscription.ordering = ordering;
    }
    let released = was_ordered && subscription.ordering == DeliveryOrdering::None;
    if let Some(rate_limit) = changes.rate_limit {
        subscription.rate_limit = rate_limit;
    }
    if let Some(max_in_flight) = changes.max_in_flight {
        subscription.max_in_flight = max_in_flight;
    }
    subscription.updated_at = now_in_micros();
    if let Some(secret) = changes.secret {
        // Replaced at once; a rotation keeps the previous secret signing for a while.
        stored.secret = secret;
        stored.previous = None;
    }
    save(&ctx, &stored, url_changed).await?;
    if disabled {
        ctx.operations
            .publish(OperationalEvent::subscription_disabled(
                &stored.subscription,
                DisabledBy::Operator,
                "disabled through the API",
                &stored
                    .subscription
                    .updated_at
                    .timestamp_micros()
                    .to_string(),
            ));
    }
    if released {
        // Its waiting deliveries go out as independent ones.
        ctx.deliveries.release_ordering(&id).await?;
    }
    let view = SubscriptionView::of(&ctx, stored.subscription);
    Ok(Json(view.with_ordering_status(&ctx).await?))
}

/// Rotates a subscription's signing secret: deliveries are signed with the new secret at once,
/// and for ROTATION_OVERLAP also with the previous one (two space-separated signatures, as
/// Standard Webhooks allows), so that the receiver can switch without losing a delivery.
#[utoipa::path(
    post, path = "/api/v1/subscriptions/{id}/secret/rotate", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    request_body(content = Option<SecretRotation>, description = "Optional: the new secret"),
    responses(
        (status = 200, description = "Rotated", body = RotatedSecret),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid secret", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_secret(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<RotatedSecret>, ApiError> {
    let rotation: SecretRotation = decode_optional_json(&body)?;
    let mut stored = find(&ctx, &id).await?;
    let generated = rotation.secret.is_none().then(SigningSecret::generate);
    let secret = rotation
        .secret
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let now = now_in_micros();
    let overlap = chrono::Duration::from_std(ctx.rotation_overlap).unwrap_or_default();
    let replaced = std::mem::replace(&mut stored.secret, secret);
    // During another rotation's overlap, the older secret keeps signing until that overlap ends
    // and the one in between stops: a receiver may never have seen it (a lost answer, a retry).
    stored.previous = match stored.previous.take().filter(|older| older.until > now) {
        Some(older) => Some(older),
        None => (overlap > chrono::Duration::zero()).then(|| PreviousSecret {
            secret: replaced,
            until: now + overlap,
        }),
    };
    stored.subscription.updated_at = now;
    save(&ctx, &stored, false).await?;
    tracing::info!(subscription = %id, "signing secret rotated");
    Ok(Json(RotatedSecret {
        secret: generated,
        previous_secret_until: stored.previous.map(|previous| previous.until),
    }))
}

/// Deletes a subscription, its pending deliveries and its delivery log.
#[utoipa::path(
    delete, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_subscription(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !ctx.deliveries.delete_subscription(&id).await? {
        return Err(not_found(&id));
    }
    ctx.directory.invalidate();
    tracing::info!(subscription = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a subscription: every attempt with its status, latency and error.
#[utoipa::path(
    get, path = "/api/v1/subscriptions/{id}/deliveries", tag = "subscriptions",
    params(("id" = String, Path, description = "Subscription id"), LogParams),
    responses(
        (status = 200, description = "A page of attempts, newest first", body = DeliveryLog),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_deliveries(
    State(ctx): State<Arc<ApiContext>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<DeliveryLog>, ApiError> {
    let limit = paging::limit(params.limit)?;
    let cursor = paging::cursor(params.cursor.as_deref())?;
    find(&ctx, &id).await?;
    let page = ctx
        .deliveries
        .attempts(&id, params.event_id.as_deref(), cursor, limit)
        .await?;
    Ok(Json(DeliveryLog {
        attempts: page.attempts,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Validates and stores a changed subscription (its URL checked again when `url_changed`).
async fn save(
    ctx: &ApiContext,
    stored: &StoredSubscription,
    url_changed: bool,
) -> Result<(), ApiError> {
    validate(ctx, stored, url_changed).await?;
    let id = &stored.subscription.id;
    if !ctx.deliveries.update_subscription(stored).await? {
        return Err(not_found(id));
    }
    ctx.directory.invalidate();
    Ok(())
}

async fn find(ctx: &ApiContext, id: &str) -> Result<StoredSubscription, ApiError> {
    ctx.deliveries
        .subscription(id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no subscription with id {id:?}"))
}

/// Checks every field of a subscription; the URL (which may need a DNS lookup) only when new.
/// Validates a request's static headers, or refuses them naming the header at fault.
fn static_headers(
    headers: std::collections::BTreeMap<String, String>,
) -> Result<StaticHeaders, ApiError> {
    StaticHeaders::new(headers.into_iter().collect()).map_err(|(name, why)| {
        ApiError::InvalidFields(vec![Violation::new(format!("/headers/{name}"), why)])
    })
}

/// Compiles a request's filters, or refuses them with the pointer of what is wrong in the body.
pub(super) fn compile_filters(source: Vec<serde_json::Value>) -> Result<Filters, ApiError> {
    Filters::compile(source).map_err(|err| {
        ApiError::InvalidFields(vec![Violation::new(
            format!("/filters{}", err.pointer),
            err.detail,
        )])
    })
}

async fn validate(
    ctx: &ApiContext,
    stored: &StoredSubscription,
    check_url: bool,
) -> Result<(), ApiError> {
    let subscription = &stored.subscription;
    let texts = [
        ("name", subscription.name.as_str()),
        ("webhook_url", subscription.webhook_url.as_str()),
        ("secret", stored.secret.as_str()),
    ];
    if let Some((field, _)) = texts.iter().find(|(_, text)| text.contains('\0')) {
        return Err(ApiError::Invalid(format!(
            "{field} must not contain NUL characters"
        )));
    }
    let name = subscription.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::Invalid(format!(
            "name must have 1 to {MAX_NAME} characters"
        )));
    }
    validate_patterns(&subscription.event_types).map_err(ApiError::Invalid)?;
    if subscription
        .rate_limit
        .is_some_and(|rate| !(1..=MAX_RATE_LIMIT).contains(&rate))
    {
        return Err(ApiError::Invalid(format!(
            "rate_limit must be a whole number of deliveries per second from 1 to {MAX_RATE_LIMIT}, or null for none"
        )));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&subscription.max_in_flight) {
        return Err(ApiError::Invalid(format!(
            "max_in_flight must be from 1 to {MAX_IN_FLIGHT}"
        )));
    }
    if stored.secret.len() > MAX_SECRET {
        return Err(ApiError::Invalid(format!(
            "secret must be at most {MAX_SECRET} bytes"
        )));
    }
    SigningSecret::parse(&stored.secret)
        .map_err(|err| ApiError::Invalid(format!("secret: {err}")))?;
    if check_url {
        if subscription.webhook_url.len() > MAX_URL {
            return Err(ApiError::Invalid(format!(
                "webhook_url must be at most {MAX_URL} bytes"
            )));
        }
        match vet_webhook_url(&subscription.webhook_url, ctx.allow_private_webhooks).await {
            // A name that does not resolve yet is accepted: every connection is vetted again,
            // and its deliveries fail (and are retried) until it resolves to a public address.
            Ok(_) | Err(GuardError::Unresolvable { .. }) => {}
            Err(err) => return Err(ApiError::Invalid(err.to_string())),
        }
    }
    Ok(())
}
