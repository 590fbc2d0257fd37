//! Data retention: events stored more than RETENTION_DAYS ago are deleted in small batches (so that
//! ingestion never waits long for the store), with their outbox rows and processed-event records,
//! along with finished deliveries, their log, dead letters and replays from before the cutoff; the
//! broker's streams are trimmed too. Workers run it in the background; `eventflow db prune` runs
//! it on demand.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerError};
use crate::delivery::DeliveryStore;
use crate::store::{EventStore, StoreError};

/// Rows deleted by one statement.
pub const BATCH: u32 = 1000;
/// Pause between batches, which lets other writers in.
const PAUSE: Duration = Duration::from_millis(20);
/// How long after start-up the background task first runs.
const FIRST_RUN: Duration = Duration::from_secs(1);
/// How often it runs after that.
const INTERVAL: Duration = Duration::from_secs(600);

/// Why pruning stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    /// Events.
    pub events: u64,
    /// Finished delivery jobs, logged attempts and dead letters.
    pub delivery_records: u64,
    /// Stream entries.
    pub stream_entries: u64,
}

/// The retention policy of one deployment.
pub struct Retention {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// Deliveries and dead letters.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// The broker whose streams are trimmed.
    pub broker: Arc<dyn Broker>,
    /// The streams to trim.
    pub streams: Vec<String>,
    /// How long events are kept.
    pub keep: Duration,
}

impl Retention {
    /// Everything before this time goes.
    pub fn cutoff(&self) -> DateTime<Utc> {
        Utc::now() - self.keep
    }

    /// How many events a pass would delete now.
    pub async fn count(&self) -> Result<u64, RetentionError> {
        Ok(self.store.count_events_before(self.cutoff()).await?)
    }

    /// Deletes everything older than the cutoff, a batch at a time.
    pub async fn prune(&self) -> Result<PruneReport, RetentionError> {
        let cutoff = self.cutoff();
        let mut report = PruneReport::default();
        loop {
            let events = self.store.prune_events(cutoff, BATCH).await?;
            report.events += events;
            if events < u64::from(BATCH) {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        loop {
            let records = self.deliveries.prune_deliveries(cutoff, BATCH).await?;
            report.delivery_records += records;
            if records == 0 {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        for stream in &self.streams {
            loop {
                let entries = self.broker.trim(stream, cutoff, BATCH).await?;
                report.stream_entries += entries;
                if entries < u64::from(BATCH) {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        Ok(report)
    }

    /// Prunes shortly after start-up and then every ten minutes, until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut wait = FIRST_RUN;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                wait = INTERVAL;
                match self.prune().await {
                    Ok(report) if report == PruneReport::default() => {}
                    Ok(report) => tracing::info!(
                        events = report.events,
                        delivery_records = report.delivery_records,
                        stream_entries = report.stream_entries,
                        "retention pruned old data"
                    ),
                    Err(err) => {
                        tracing::warn!(error = %err, "retention pass failed; trying again later")
                    }
                }
            }
        })
    }
}
