//! The delivery form of an event: encoded once, shared by every subscription it goes to.

use axum::body::Bytes;

use crate::events::{CloudEvent, Event};
use crate::replay::REPLAY_EXTENSION;

/// An event ready to be delivered: its CloudEvent JSON, encoded once for every subscription.
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
    /// The request body: the CloudEvent in its JSON format.
    pub body: Bytes,
    /// The replay it is delivered for, named in a header and in the body's extension.
    pub replay_id: Option<String>,
}

impl PreparedEvent {
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
            body: Bytes::from(serde_json::to_vec(envelope)?),
            replay_id: replay_id.map(str::to_string),
        })
    }
}
