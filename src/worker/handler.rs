//! What a worker does with each event: the extension point for webhook delivery and
//! application code.

use async_trait::async_trait;

use crate::events::Event;

/// Any error a handler reports; the worker retries, then dead-letters with its message.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Processes events consumed from the broker. Handlers must be idempotent by event id: an event
/// can be delivered again after a crash or a claim.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// A short name for logs and dead letters.
    fn name(&self) -> &str;

    /// Processes one event; an error causes a retry with backoff, then a dead letter.
    async fn handle(&self, event: &Event) -> Result<(), HandlerError>;
}
