//! The publisher: hands committed events to the broker in store order. When the broker fails,
//! or the publisher falls behind, it switches to the outbox: events the store holds as
//! unpublished, oldest first, until none are left. It also looks at the outbox now and then, so
//! that events another process committed and did not live to publish are published too.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, StreamMessage};
use crate::events::Event;
use crate::observability::metrics;
use crate::store::EventStore;

/// Events read from the outbox per round.
const RELAY_CHUNK: u32 = 1000;
/// First and longest pause after a failed round.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// How often the outbox is checked for events left behind, and how old the oldest must be to
/// count as left behind rather than on its way.
const SWEEP: Duration = Duration::from_secs(10);
/// Sequences remembered as relayed; beyond this a queued event may be published twice (which
/// idempotent processing absorbs), never skipped.
const RELAYED_MEMORY: usize = 100_000;

/// Publishes committed events; see the module documentation.
pub(super) struct Outbox {
    store: Arc<dyn EventStore>,
    broker: Arc<dyn Broker>,
    /// Set while the store holds unpublished events that must go out before newer ones.
    backlog: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Outbox {
    pub(super) fn new(
        store: Arc<dyn EventStore>,
        broker: Arc<dyn Broker>,
        backlog: Arc<AtomicBool>,
    ) -> Self {
        Self {
            store,
            broker,
            backlog,
        }
    }

    pub(super) async fn run(
        self,
        mut committed: mpsc::Receiver<Vec<Event>>,
        shutdown: CancellationToken,
    ) {
        let mut pause = BACKOFF.0;
        // Sequences the relay published: queued batches may still hold some of them.
        let mut relayed: HashSet<i64> = HashSet::new();
        let mut next_sweep = Instant::now() + SWEEP;
        loop {
            if self.backlog.load(Ordering::Acquire) {
                // Everything queued now was committed before this point, so the relay's next read
                // of the store covers it; batches queued later are newer and wait in the queue.
                while committed.try_recv().is_ok() {}
                match self.relay_once().await {
                    Ok(sequences) if sequences.is_empty() => {
                        self.backlog.store(false, Ordering::Release);
                        metrics::sample_outbox(self.store.as_ref()).await;
                    }
                    Ok(sequences) => {
                        if relayed.len() > RELAYED_MEMORY {
                            relayed.clear();
                        }
                        relayed.extend(sequences);
                        pause = BACKOFF.0;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "outbox relay failed");
                        if shutdown.is_cancelled() {
                            tracing::warn!(
                                "shutting down with events left in the outbox; they are published at next start"
                            );
                            return;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.cancelled() => {}
                        }
                        pause = (pause * 2).min(BACKOFF.1);
                    }
                }
                continue;
            }
            let received = tokio::select! {
                received = committed.recv() => received,
                _ = tokio::time::sleep_until(next_sweep) => {
                    next_sweep = Instant::now() + SWEEP;
                    metrics::sample_outbox(self.store.as_ref()).await;
                    if self.left_behind().await {
                        tracing::warn!("found events left unpublished; relaying them");
                        self.backlog.store(true, Ordering::Release);
                    }
                    continue;
                }
            };
            let Some(mut events) = received else {
                return;
            };
            // Whatever else is queued goes out in the same publish.
            while events.len() < RELAY_CHUNK as usize {
                match committed.try_recv() {
                    Ok(more) => events.extend(more),
                    Err(_) => break,
                }
            }
            if self.backlog.load(Ordering::Acquire) {
                continue;
            }
            events.retain(|event| {
                event
                    .metadata
                    .sequence
                    .is_some_and(|seq| !relayed.contains(&seq))
            });
            if events.is_empty() {
                continue;
            }
            if let Err(err) = self.publish(&events).await {
                tracing::warn!(error = %err, "publish failed; switching to the outbox");
                self.backlog.store(true, Ordering::Release);
            }
        }
    }

    /// Publishes the oldest unpublished events; returns their sequences (none when the outbox
    /// is empty).
    async fn relay_once(&self) -> Result<Vec<i64>, PublishError> {
        let events = self.store.unpublished(RELAY_CHUNK).await?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.publish(&events).await?;
        tracing::info!(events = events.len(), "outbox relayed events");
        Ok(events.iter().filter_map(|e| e.metadata.sequence).collect())
    }

    /// True when the oldest unpublished event was received longer than [`SWEEP`] ago: a process
    /// (this one or another) committed it and did not publish it.
    async fn left_behind(&self) -> bool {
        match self.store.unpublished(1).await {
            Ok(oldest) => oldest.first().is_some_and(|event| {
                Utc::now() - event.metadata.received_at
                    > chrono::Duration::from_std(SWEEP).unwrap_or_default()
            }),
            Err(err) => {
                tracing::warn!(error = %err, "cannot check the outbox");
                false
            }
        }
    }

    async fn publish(&self, events: &[Event]) -> Result<(), PublishError> {
        let mut messages = Vec::with_capacity(events.len());
        let mut sequences = Vec::with_capacity(events.len());
        for event in events {
            sequences.extend(event.metadata.sequence);
            match StreamMessage::for_event(event) {
                Ok(message) => messages.push(message),
                // Cannot happen for events that were stored from JSON; never block the outbox on it.
                Err(err) => {
                    tracing::error!(event_id = %event.id(), error = %err, "event not publishable")
                }
            }
        }
        self.broker.publish(&messages).await?;
        self.store.mark_published(&sequences).await?;
        metrics::events_published(messages.iter().map(|m| m.stream.as_str()));
        for event in events {
            tracing::debug!(event_id = %event.id(), stream = %event.metadata.stream, correlation_id = %event.metadata.correlation_id, "event published");
        }
        Ok(())
    }
}
