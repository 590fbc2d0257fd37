//! The delivery form of an event: encoded once, shared by every subscription it goes to,
//! whatever their content modes.

use super::content_mode::{ContentMode, EncodedEvent, Encoding};
use crate::events::{CloudEvent, Event};
use crate::replay::REPLAY_EXTENSION;

/// An event ready to be delivered: encoded once for every subscription.
#[derive(Debug)]
pub struct PreparedEvent {
    /// The event id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its stream.
    pub stream: String,
    /// Its correlation id, forwarded as X-Correlation-ID.
    pub correlation_id: String,
    /// Its W3C trace context, forwarded as `traceparent`.
    pub traceparent: Option<String>,
    /// The request body and headers of each content mode.
    encoded: EncodedEvent,
    /// The replay it is delivered for, named in a header and in the body's extension.
    pub replay_id: Option<String>,
}

impl PreparedEvent {
    /// What a delivery in `mode` sends.
    pub fn encoding(&self, mode: ContentMode) -> Encoding<'_> {
        self.encoded.encoding(mode)
    }

    /// The CloudEvent in its JSON format, as a dead letter keeps it.
    pub fn structured(&self) -> serde_json::Value {
        let body = self.encoded.encoding(ContentMode::Json).body;
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    }

    /// The delivery form of `event`.
    pub fn of(event: &Event) -> Result<Self, serde_json::Error> {
        Self::encode(event, &event.envelope, None)
    }

    /// The delivery form of `event` replayed by `replay_id`: the same id, marked by the replay
    /// extension.
    pub fn replayed(event: &Event, replay_id: &str) -> Result<Self, serde_json::Error> {
        let mut envelope = event.envelope.clone();
        envelope
            .extensions
            .insert(REPLAY_EXTENSION.to_string(), replay_id.into());
        Self::encode(event, &envelope, Some(replay_id))
    }

    fn encode(
        event: &Event,
        envelope: &CloudEvent,
        replay_id: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: event.id().to_string(),
            event_type: event.event_type().to_string(),
            stream: event.metadata.stream.clone(),
            correlation_id: event.metadata.correlation_id.clone(),
            traceparent: event.traceparent().map(str::to_string),
            encoded: EncodedEvent::of(event, envelope)?,
            replay_id: replay_id.map(str::to_string),
        })
    }
}
