//! The recorder: one task that writes the dispatcher's outcomes to the store in batches, so that
//! a busy endpoint costs one transaction per batch of attempts rather than one per attempt.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AttemptRecord, DeliveryJob, DeliveryStore, NextStep};
use crate::insights::{Metric, Tally};
use crate::observability::metrics;
use crate::operations::{Operations, RecordedBatch};
use crate::store::StoreError;

/// Outcomes written to the store in one transaction, at most.
pub(super) const RECORD_BATCH: usize = 500;

/// What the recorder writes.
pub(super) enum Record {
    /// An attempt and what follows it; `reportable` unless it delivered an operational event,
    /// whose failures are reported by nothing but logs and metrics.
    Attempt {
        attempt: AttemptRecord,
        reportable: bool,
    },
    /// A job put off without an attempt, until the given time.
    Postpone(String, DateTime<Utc>),
}

/// Where the jobs go that became their key's head when the outcome before them was recorded.
pub(super) trait Successors: Send + Sync {
    /// Until when they are leased to this process, if it sends them at once; `None` leaves them
    /// due now, for any process.
    fn lease(&self) -> Option<DateTime<Utc>>;

    /// Sends jobs leased to this process.
    fn send(&self, jobs: Vec<DeliveryJob>);
}

/// Writes outcomes to the store in batches until `stop`, then what is left.
pub(super) async fn record(
    store: Arc<dyn DeliveryStore>,
    mut queue: mpsc::Receiver<Record>,
    successors: Arc<dyn Successors>,
    operations: Operations,
    counts: Tally,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            record = queue.recv() => record,
            _ = stop.cancelled() => queue.try_recv().ok(),
        };
        let Some(first) = first else { return };
        let mut attempts = Vec::new();
        let mut reportable = Vec::new();
        let mut postponed = Vec::new();
        let mut next = Some(first);
        while let Some(record) = next {
            match record {
                Record::Attempt {
                    attempt,
                    reportable: report,
                } => {
                    attempts.push(attempt);
                    reportable.push(report);
                }
                Record::Postpone(id, due) => postponed.push((id, due)),
            }
            next = (attempts.len() + postponed.len() < RECORD_BATCH)
                .then(|| queue.try_recv().ok())
                .flatten();
        }
        let recorded = write_outcomes(
            store.as_ref(),
            &attempts,
            &postponed,
            successors.as_ref(),
            &stop,
        )
        .await;
        count(&counts, &attempts, &recorded);
        operations.attempts_recorded(reported(&attempts, &reportable, &recorded));
    }
}

/// Counts the recorded attempts, successes and failures, by subscription.
fn count(counts: &Tally, attempts: &[AttemptRecord], recorded: &HashSet<String>) {
    let of = |delivered: bool| {
        attempts
            .iter()
            .filter(move |a| {
                (a.next == NextStep::Delivered) == delivered && recorded.contains(&a.job.id)
            })
            .map(|a| (a.job.subscription_id.as_str(), a.attempted_at))
    };
    counts.add(Metric::Deliveries, of(true));
    counts.add(Metric::DeliveryFailures, of(false));
}

/// The recorded attempts operators are told about.
fn reported(
    attempts: &[AttemptRecord],
    reportable: &[bool],
    recorded: &HashSet<String>,
) -> RecordedBatch {
    let mut batch = RecordedBatch::default();
    for (attempt, _) in attempts
        .iter()
        .zip(reportable)
        .filter(|(attempt, reportable)| **reportable && recorded.contains(&attempt.job.id))
    {
        let letter = match &attempt.next {
            NextStep::DeadLetter(letter) => Some(letter.as_ref()),
            _ => None,
        };
        let delivered = attempt.next == NextStep::Delivered;
        batch.add(&attempt.job.subscription_id, delivered, letter);
    }
    batch
}

/// Writes one batch of outcomes; returns the ids of the jobs whose attempt was recorded.
async fn write_outcomes(
    store: &dyn DeliveryStore,
    attempts: &[AttemptRecord],
    postponed: &[(String, DateTime<Utc>)],
    successors: &dyn Successors,
    stop: &CancellationToken,
) -> HashSet<String> {
    let lease = successors.lease();
    let due = lease.unwrap_or_else(Utc::now);
    let mut recorded = HashSet::new();
    if !attempts.is_empty()
        && let Some(outcome) = persist(stop, || store.record_attempts(attempts, due)).await
    {
        recorded.extend(outcome.recorded);
        for attempt in attempts {
            if let NextStep::DeadLetter(letter) = &attempt.next
                && recorded.contains(&attempt.job.id)
            {
                let stream = Some(letter.stream.as_str()).filter(|s| !s.is_empty());
                metrics::event_failed(stream.unwrap_or("unknown"));
            }
        }
        if lease.is_some() && !outcome.successors.is_empty() {
            successors.send(outcome.successors);
        }
    }
    if !postponed.is_empty() {
        persist(stop, || store.postpone(postponed)).await;
    }
    recorded
}

/// Runs `write` until it succeeds, pausing while the store is unavailable. A write the store
/// refuses is dropped with an error in the log, as is one still failing a few tries after
/// shutdown: its jobs stay leased and come due again when the lease runs out.
async fn persist<T, Fut>(stop: &CancellationToken, write: impl Fn() -> Fut) -> Option<T>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        tries += 1;
        let err = match write().await {
            Ok(written) => return Some(written),
            Err(err) => err,
        };
        if !err.is_transient() || (stop.is_cancelled() && tries >= 3) {
            tracing::error!(error = %err, "cannot record delivery outcomes; their jobs come due again after their lease");
            return None;
        }
        tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "cannot record delivery outcomes");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
