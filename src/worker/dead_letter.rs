//! Dead letters: events whose processing failed for good, with why and how often.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::broker::{Delivery, StreamMessage};
use crate::events::routing::DEAD_LETTER_STREAM;

/// An entry of the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    /// The event that failed.
    pub event_id: String,
    /// The stream it was consumed from.
    pub stream: String,
    /// Its entry id in that stream.
    pub entry_id: String,
    /// The handler that failed, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The event as it was consumed (JSON).
    pub payload: String,
}

impl DeadLetter {
    /// A dead letter for `delivery`.
    pub fn new(delivery: &Delivery, handler: Option<&str>, error: String, attempts: u32) -> Self {
        Self {
            event_id: delivery.message.event_id.clone(),
            stream: delivery.message.stream.clone(),
            entry_id: delivery.entry_id.0.clone(),
            handler: handler.map(str::to_string),
            error,
            attempts,
            failed_at: Utc::now(),
            payload: delivery.message.payload.clone(),
        }
    }

    /// The message that puts it on the dead-letter stream.
    pub fn to_message(&self) -> Result<StreamMessage, serde_json::Error> {
        Ok(StreamMessage {
            stream: DEAD_LETTER_STREAM.to_string(),
            event_id: self.event_id.clone(),
            partition_key: None,
            sequence: None,
            payload: serde_json::to_string(self)?,
        })
    }
}
