//! Watching the dead-letter queue's size: `eventflow.dlq.threshold_exceeded` once when it grows
//! past DLQ_ALERT_THRESHOLD, and again only after it has fallen back to the threshold.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{OperationalEvent, Operations};
use crate::delivery::DeliveryStore;

/// Mark of a dead-letter queue over its threshold.
const OVER_THRESHOLD: &str = "dlq_threshold";

/// Counts the dead letters every `interval` until `shutdown`, reporting when they first exceed
/// `threshold`; every worker process may watch, the mark makes one of them report.
pub fn watch_dead_letters(
    store: Arc<dyn DeliveryStore>,
    operations: Operations,
    threshold: u64,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(err) = check(store.as_ref(), &operations, threshold).await {
                tracing::warn!(error = %err, "cannot check the dead-letter queue's size");
            }
        }
    })
}

async fn check(
    store: &dyn DeliveryStore,
    operations: &Operations,
    threshold: u64,
) -> Result<(), crate::store::StoreError> {
    let dead_letters = store.dead_letter_count().await?;
    if dead_letters <= threshold {
        store.clear_mark(OVER_THRESHOLD).await?;
        return Ok(());
    }
    let now = Utc::now();
    if store.raise_mark(OVER_THRESHOLD, 1, now).await? {
        operations.publish(OperationalEvent::dead_letters_over_threshold(
            dead_letters,
            threshold,
            now,
        ));
    }
    Ok(())
}
