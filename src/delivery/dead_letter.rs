//! The dead-letter queue's entries: webhook deliveries that used up their attempts, and events
//! whose processing failed for good, each with why, how often and the event itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::broker::Delivery;

/// Longest response body kept with a failed delivery, in bytes.
pub const MAX_RESPONSE_BODY: usize = 1024;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterKind {
    /// A webhook delivery to one subscription; retrying it schedules that delivery again.
    Webhook,
    /// An event handler in the worker; retrying it puts the event back on its stream.
    Handler,
}

impl DeadLetterKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Handler => "handler",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webhook" => Some(Self::Webhook),
            "handler" => Some(Self::Handler),
            _ => None,
        }
    }
}

/// An entry of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetter {
    /// Its id: the `message_id` of the `/api/v1/dlq/{message_id}` endpoints.
    pub id: String,
    /// What failed.
    pub kind: DeadLetterKind,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its stream.
    pub stream: String,
    /// The subscription it was for (webhook deliveries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The delivery (its webhook-id) that failed (webhook deliveries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The handler that failed (event processing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// On an ordered subscription, the partition key whose sequence this letter broke: it was
    /// its key's head, and the key's later events went out without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Why the last attempt failed.
    pub error: String,
    /// The HTTP status of the last attempt, when the endpoint answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The start of the last response's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The event, as stored.
    #[schema(value_type = Object)]
    pub event: Value,
}

impl DeadLetter {
    /// A dead letter for an event whose handler failed for good, as the worker received it.
    pub fn for_handler(
        delivery: &Delivery,
        handler: Option<&str>,
        error: String,
        attempts: u32,
    ) -> Self {
        let event: Value = serde_json::from_str(&delivery.message.payload)
            .unwrap_or_else(|_| Value::String(delivery.message.payload.clone()));
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Self {
            id: new_id(),
            kind: DeadLetterKind::Handler,
            event_id: delivery.message.event_id.clone(),
            event_type,
            stream: delivery.message.stream.clone(),
            subscription_id: None,
            delivery_id: None,
            ordering_key: None,
            handler: handler.map(str::to_string),
            error,
            status_code: None,
            response_body: None,
            attempts,
            failed_at: Utc::now(),
            event,
        }
    }
}

/// A new dead-letter id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Which dead letters to list or retry; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    /// Only this kind.
    pub kind: Option<DeadLetterKind>,
    /// Only deliveries to this subscription.
    pub subscription_id: Option<String>,
    /// Only events of this exact type.
    pub event_type: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Continue after this position (from a previous page's `next_cursor`).
    pub cursor: Option<i64>,
}

/// One page of dead letters, oldest first.
#[derive(Debug, Clone)]
pub struct DeadLetterPage {
    /// The entries.
    pub letters: Vec<DeadLetter>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}
