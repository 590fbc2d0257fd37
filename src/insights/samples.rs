//! [`sample_dead_letters`]: the dead-letter queue's size as a gauge, so that the console can chart
//! it over time; the store only knows the size now.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{DLQ_KEY, Metric, Tally};
use crate::delivery::DeliveryStore;

/// How often the size is read: once per minute bucket.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Samples the size of `store`'s dead-letter queue into `counts` every minute until `stop`.
pub fn sample_dead_letters(
    store: Arc<dyn DeliveryStore>,
    counts: Tally,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match store.dead_letter_count().await {
                Ok(size) => counts.sample(Metric::DlqSize, DLQ_KEY, Utc::now(), size),
                Err(err) => tracing::warn!(error = %err, "cannot sample the dead-letter queue"),
            }
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    })
}
