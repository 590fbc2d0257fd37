//! Rows of the delivery tables as both stores read them, and their decoding into the delivery
//! types. Times travel as microseconds since the epoch (PostgreSQL converts in its SELECTs).

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::StoreError;
use crate::delivery::{
    AttemptPage, ContentMode, DeadLetter, DeadLetterKind, DeadLetterPage, DeadLetterQuery,
    DeliveryAttempt, DeliveryJob, DeliveryOrdering, Filters, KeyState, NextStep, OrderingKey,
    PreviousSecret, StaticHeaders, StoredSubscription, Subscription,
};

/// Status of a job still to be delivered.
pub(super) const PENDING: &str = "pending";
/// Status of an ordered job waiting behind its key's head.
pub(super) const QUEUED: &str = "queued";
/// Status of a job the endpoint accepted.
pub(super) const DELIVERED: &str = "delivered";
/// Status of a job that went to the dead-letter queue.
pub(super) const DEAD: &str = "dead";

/// A `deliveries` row just claimed for sending.
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    id: String,
    event_id: String,
    subscription_id: String,
    replay_id: String,
    ordering_key: Option<String>,
    attempts: i64,
}

impl ClaimedRow {
    pub(super) fn decode(self) -> DeliveryJob {
        DeliveryJob {
            id: self.id,
            event_id: self.event_id,
            subscription_id: self.subscription_id,
            replay_id: Some(self.replay_id).filter(|id| !id.is_empty()),
            ordering_key: self.ordering_key,
            attempts: u32::try_from(self.attempts).unwrap_or_default(),
        }
    }
}

/// The `replay_id` column of a job: empty for live delivery.
pub(super) fn live_or_replay(replay_id: Option<&str>) -> &str {
    replay_id.unwrap_or_default()
}

/// The status a job has after `next`, and when it is due then (if still pending).
pub(super) fn next_state(next: &NextStep) -> (&'static str, Option<DateTime<Utc>>) {
    match next {
        NextStep::Delivered => (DELIVERED, None),
        NextStep::RetryAt(at) => (PENDING, Some(*at)),
        NextStep::DeadLetter(_) => (DEAD, None),
    }
}

/// One row of a key-state query: subscription, key, its pending head and its oldest queued job.
pub(super) type KeyStateRow = (String, String, Option<String>, Option<String>);

/// The state of one ordering key, from its row.
pub(super) fn key_state((subscription_id, key, head, next_queued): KeyStateRow) -> KeyState {
    KeyState {
        key: OrderingKey {
            subscription_id,
            key,
        },
        head,
        next_queued,
    }
}

/// A `subscriptions` row.
#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    id: String,
    name: String,
    event_types: String,
    webhook_url: String,
    secret: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_us: i64,
    updated_us: i64,
    previous_secret: Option<String>,
    previous_secret_until_us: Option<i64>,
    ordering: String,
    rate_limit: Option<i32>,
    max_in_flight: i32,
    held_until_us: i64,
    filters: String,
    content_mode: String,
    headers: String,
}

impl SubscriptionRow {
    pub(super) fn decode(self) -> Result<StoredSubscription, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: self.id.clone(),
            reason,
        };
        let event_types = serde_json::from_str(&self.event_types)
            .map_err(|err| corrupt(format!("event_types: {err}")))?;
        let ordering = DeliveryOrdering::parse(&self.ordering)
            .ok_or_else(|| corrupt(format!("unknown ordering {}", self.ordering)))?;
        let content_mode = ContentMode::parse(&self.content_mode)
            .ok_or_else(|| corrupt(format!("unknown content mode {}", self.content_mode)))?;
        let headers = serde_json::from_str(&self.headers)
            .map_err(|err| corrupt(format!("headers: {err}")))
            .and_then(|pairs| {
                StaticHeaders::new(pairs)
                    .map_err(|(name, why)| corrupt(format!("header {name}: {why}")))
            })?;
        let filters = serde_json::from_str(&self.filters)
            .map_err(|err| corrupt(format!("filters: {err}")))
            .and_then(|source| {
                Filters::compile(source)
                    .map_err(|err| corrupt(format!("filters at {}: {err}", err.pointer)))
            })?;
        Ok(StoredSubscription {
            subscription: Subscription {
                id: self.id,
                name: self.name,
                event_types,
                webhook_url: self.webhook_url,
                filters,
                content_mode,
                headers,
                ordering,
                rate_limit: self.rate_limit.and_then(|rate| u32::try_from(rate).ok()),
                max_in_flight: u32::try_from(self.max_in_flight).unwrap_or(1),
                held_until: Some(from_micros(self.held_until_us))
                    .filter(|_| self.held_until_us > 0),
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                created_at: from_micros(self.created_us),
                updated_at: from_micros(self.updated_us),
            },
            secret: self.secret,
            previous: self.previous_secret.zip(self.previous_secret_until_us).map(
                |(secret, until)| PreviousSecret {
                    secret,
                    until: from_micros(until),
                },
            ),
        })
    }
}

/// The event-type patterns of a subscription as stored.
pub(super) fn encode_patterns(subscription: &Subscription) -> String {
    serde_json::Value::from(subscription.event_types.clone()).to_string()
}

/// A subscription's static headers as the `headers` column keeps them: [name, value] pairs.
pub(super) fn encode_headers(subscription: &Subscription) -> String {
    serde_json::to_string(subscription.headers.pairs()).unwrap_or_else(|_| "[]".into())
}

/// A subscription's filters as the `filters` column keeps them: the JSON array as given.
pub(super) fn encode_filters(subscription: &Subscription) -> String {
    serde_json::Value::from(subscription.filters.source().to_vec()).to_string()
}

/// A `dead_letters` row.
#[derive(sqlx::FromRow)]
pub(super) struct DeadLetterRow {
    seq: i64,
    id: String,
    kind: String,
    event_id: String,
    event_type: String,
    stream: String,
    subscription_id: Option<String>,
    delivery_id: Option<String>,
    handler: Option<String>,
    ordering_key: Option<String>,
    error: String,
    status_code: Option<i32>,
    response_body: Option<String>,
    attempts: i32,
    failed_us: i64,
    payload: String,
}

impl DeadLetterRow {
    /// The dead letter this row holds.
    pub(super) fn decode(self) -> Result<DeadLetter, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: self.id.clone(),
            reason,
        };
        let kind = DeadLetterKind::parse(&self.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {}", self.kind)))?;
        let event = serde_json::from_str(&self.payload)
            .map_err(|err| corrupt(format!("payload: {err}")))?;
        Ok(DeadLetter {
            id: self.id,
            kind,
            event_id: self.event_id,
            event_type: self.event_type,
            stream: self.stream,
            subscription_id: self.subscription_id,
            delivery_id: self.delivery_id,
            handler: self.handler,
            ordering_key: self.ordering_key,
            error: self.error,
            status_code: self.status_code.and_then(|code| u16::try_from(code).ok()),
            response_body: self.response_body,
            attempts: u32::try_from(self.attempts).unwrap_or_default(),
            failed_at: from_micros(self.failed_us),
            event,
        })
    }
}

/// The SELECT of a page of dead letters matching `query`: `columns` (a `SELECT … FROM
/// dead_letters` of the backend) with the query's filters, oldest first, one row more than a page.
pub(super) fn select_dead_letters<'q, DB>(
    columns: &str,
    query: &'q DeadLetterQuery,
) -> QueryBuilder<'q, DB>
where
    DB: Database,
    DB::Arguments<'q>: Default,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    let mut select = QueryBuilder::<DB>::new(columns);
    select
        .push(" WHERE seq > ")
        .push_bind(query.cursor.unwrap_or(0));
    if let Some(kind) = query.kind {
        select.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(subscription) = &query.subscription_id {
        select
            .push(" AND subscription_id = ")
            .push_bind(subscription.as_str());
    }
    if let Some(event_type) = &query.event_type {
        select
            .push(" AND event_type = ")
            .push_bind(event_type.as_str());
    }
    select
        .push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
    select
}

/// A page of dead letters from up to `limit + 1` rows, oldest first.
pub(super) fn dead_letter_page(
    mut rows: Vec<DeadLetterRow>,
    limit: u32,
) -> Result<DeadLetterPage, StoreError> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|row| row.seq)).flatten();
    let letters = rows
        .into_iter()
        .map(DeadLetterRow::decode)
        .collect::<Result<_, _>>()?;
    Ok(DeadLetterPage {
        letters,
        next_cursor,
    })
}

/// A `delivery_attempts` row.
#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    seq: i64,
    delivery_id: String,
    event_id: String,
    attempt: i32,
    status_code: Option<i32>,
    latency_us: i64,
    error: Option<String>,
    attempted_us: i64,
    next_attempt_us: Option<i64>,
}

/// A page of the delivery log from up to `limit + 1` rows, newest first.
pub(super) fn attempt_page(mut rows: Vec<AttemptRow>, limit: u32) -> AttemptPage {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|row| row.seq)).flatten();
    let attempts = rows
        .into_iter()
        .map(|row| DeliveryAttempt {
            delivery_id: row.delivery_id,
            event_id: row.event_id,
            attempt: u32::try_from(row.attempt).unwrap_or_default(),
            status_code: row.status_code.and_then(|code| u16::try_from(code).ok()),
            latency_ms: row.latency_us as f64 / 1000.0,
            error: row.error,
            attempted_at: from_micros(row.attempted_us),
            next_attempt_at: row.next_attempt_us.map(from_micros),
        })
        .collect();
    AttemptPage {
        attempts,
        next_cursor,
    }
}

/// The time `micros` microseconds after the epoch.
pub(super) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}
