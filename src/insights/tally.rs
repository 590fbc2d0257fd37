//! [`Tally`]: one process's counts since its last flush, and the task that adds them to the store
//! every second (see the module documentation of [`crate::insights`] for why not per commit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{CountDelta, CountStore, Interval, Metric};

/// How often the tally is added to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often buckets past their retention are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Counts by (metric, key, minute bucket start); for a gauge, its last sample.
type Counts = HashMap<(Metric, String, i64), u64>;

/// A cloneable handle for counting; the default counts nothing (tests and tools without a
/// store).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: Option<Arc<Mutex<Counts>>>,
}

/// The flushing task, to wait for at shutdown once nothing counts any more.
pub struct TallyTask(JoinHandle<()>);

impl TallyTask {
    /// Waits until the last counts were added to the store (or given up on).
    pub async fn finished(self) {
        if let Err(err) = self.0.await {
            tracing::error!(error = %err, "count flusher failed");
        }
    }
}

impl Tally {
    /// Starts adding counts to `store` every second until `stop`, then once more.
    pub fn spawn(store: Arc<dyn CountStore>, stop: CancellationToken) -> (Self, TallyTask) {
        let counts = Arc::new(Mutex::new(Counts::new()));
        let task = tokio::spawn(flush_until(store, counts.clone(), stop));
        (
            Self {
                counts: Some(counts),
            },
            TallyTask(task),
        )
    }

    /// Counts one `metric` for each (key, time) of `happenings`, under one lock.
    pub fn add<'a>(
        &self,
        metric: Metric,
        happenings: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    ) {
        let Some(counts) = &self.counts else { return };
        let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
        for (key, at) in happenings {
            let bucket = Interval::Minute.bucket_of(at);
            *counts.entry((metric, key.to_string(), bucket)).or_default() += 1;
        }
    }

    /// Records a sample of gauge `metric` at `at`; the bucket keeps the last one.
    pub fn sample(&self, metric: Metric, key: &str, at: DateTime<Utc>, value: u64) {
        let Some(counts) = &self.counts else { return };
        let bucket = Interval::Minute.bucket_of(at);
        counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((metric, key.to_string(), bucket), value);
    }
}

/// Minute counts as deltas of both widths (an hour bucket gets the sum of its minutes; of a
/// gauge, its latest minute's sample).
fn deltas(counts: &Counts) -> Vec<CountDelta> {
    // Per hour: the sum of its minutes, or of a gauge the latest minute's sample.
    let mut hours: HashMap<(Metric, &str, i64), (i64, u64)> = HashMap::new();
    let mut deltas = Vec::with_capacity(counts.len() * 2);
    for ((metric, key, minute), count) in counts {
        deltas.push(CountDelta {
            metric: *metric,
            key: key.clone(),
            interval: Interval::Minute,
            bucket_us: *minute,
            count: *count,
        });
        let hour =
            Interval::Hour.bucket_of(DateTime::from_timestamp_micros(*minute).unwrap_or_default());
        let (latest, value) = hours
            .entry((*metric, key.as_str(), hour))
            .or_insert((*minute, 0));
        if !metric.is_gauge() {
            *value += count;
        } else if *minute >= *latest {
            (*latest, *value) = (*minute, *count);
        }
    }
    deltas.extend(
        hours
            .into_iter()
            .map(|((metric, key, hour), (_, count))| CountDelta {
                metric,
                key: key.to_string(),
                interval: Interval::Hour,
                bucket_us: hour,
                count,
            }),
    );
    deltas
}

async fn flush_until(
    store: Arc<dyn CountStore>,
    counts: Arc<Mutex<Counts>>,
    stop: CancellationToken,
) {
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.cancelled() => true,
        };
        flush(store.as_ref(), &counts).await;
        if stopping {
            return;
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            prune(store.as_ref()).await;
        }
    }
}

/// Adds what was counted since the last flush; on failure it stays in the tally for the next.
async fn flush(store: &dyn CountStore, counts: &Mutex<Counts>) {
    let taken = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    if taken.is_empty() {
        return;
    }
    if let Err(err) = store.add_counts(&deltas(&taken)).await {
        tracing::warn!(error = %err, "cannot add counts to the store; they are kept for the next try");
        let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
        for (bucket, count) in taken {
            if bucket.0.is_gauge() {
                // A sample taken since is newer.
                counts.entry(bucket).or_insert(count);
            } else {
                *counts.entry(bucket).or_default() += count;
            }
        }
    }
}

async fn prune(store: &dyn CountStore) {
    for interval in Interval::ALL {
        let Ok(kept) = chrono::Duration::from_std(interval.retention()) else {
            continue;
        };
        if let Err(err) = store.prune_counts(interval, Utc::now() - kept).await {
            tracing::warn!(error = %err, interval = interval.as_str(), "cannot drop old counts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_bucket_gets_the_sum_of_its_minutes() {
        let mut counts = Counts::new();
        counts.insert((Metric::Events, "a".into(), 3_600_000_000), 2);
        counts.insert((Metric::Events, "a".into(), 3_660_000_000), 3);
        let deltas = deltas(&counts);
        let hours: Vec<&CountDelta> = deltas
            .iter()
            .filter(|d| d.interval == Interval::Hour)
            .collect();
        assert_eq!(hours.len(), 1);
        assert_eq!((hours[0].bucket_us, hours[0].count), (3_600_000_000, 5));
        assert_eq!(deltas.len(), 3);
    }

    #[test]
    fn an_hour_bucket_of_a_gauge_gets_its_latest_sample() {
        let mut counts = Counts::new();
        counts.insert((Metric::DlqSize, "dlq".into(), 3_660_000_000), 7);
        counts.insert((Metric::DlqSize, "dlq".into(), 3_600_000_000), 9);
        let hour = deltas(&counts)
            .into_iter()
            .find(|d| d.interval == Interval::Hour)
            .unwrap();
        assert_eq!(hour.count, 7);
    }
}
