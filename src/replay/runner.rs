//! The replay runner: every worker process takes queued replays from the store, walks their
//! window of the event store in store order, and creates their delivery jobs at the replay rate.
//!
//! A replay is leased to the process running it and its position is saved after every batch
//! together with its counts: a process that stops hands its replays back at once, one that dies
//! loses them for a lease at most, and whoever takes a replay over resumes from the saved
//! position. Jobs are unique per (event, subscription, replay), so a batch created again after
//! a crash delivers nothing twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Pacer, Replay, ReplayProgress, ReplayStatus, ReplayStore};
use crate::delivery::{NewDelivery, Subscription, SubscriptionDirectory};
use crate::events::Event;
use crate::operations::{OperationalEvent, Operations};
use crate::store::{EventStore, StoreError, TimeRange};

/// How often the store is asked for replays to run.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a replay stays with its process without news from it.
const LEASE: Duration = Duration::from_secs(30);
/// Replays one process runs at once.
const MAX_RUNNING: usize = 4;
/// Most events read from the store at once.
const SCAN_BATCH: u32 = 5000;
/// Delivery jobs created in one transaction, at most (the batch of events shrinks to fit).
const MAX_BATCH_JOBS: u32 = 5000;
/// Pause after the store failed, before trying again.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// Runs replays; see the module documentation.
pub struct ReplayRunner {
    replays: Arc<dyn ReplayStore>,
    events: Arc<dyn EventStore>,
    directory: Arc<SubscriptionDirectory>,
    /// REPLAY_RATE: events a second each replay hands over; `None` for no limit.
    rate: Option<u32>,
    /// Names this process in the lease of each replay it takes (with a token per claim, so that
    /// a replay taken again after its lease ran out never has two runs here).
    owner: String,
    /// Where each replay's end is reported.
    operations: Operations,
}

/// The runner's tasks, to wait for at shutdown.
pub struct ReplayTasks {
    poller: JoinHandle<()>,
    runs: TaskTracker,
}

impl ReplayTasks {
    /// Waits until every replay this process ran has been handed back (after shutdown).
    pub async fn finished(self) {
        self.poller.await.ok();
        self.runs.close();
        self.runs.wait().await;
    }
}

/// What one batch of a replay came to.
enum Step {
    /// Events were scanned: the progress after them, and their delivery jobs.
    Advanced {
        /// Where the replay stands after this batch.
        progress: ReplayProgress,
        /// One job per replayed event and subscription (none in a dry run).
        jobs: Vec<NewDelivery>,
        /// Events of the batch handed to at least one subscription.
        replayed: u64,
    },
    /// The window has no events left.
    Done,
}

impl ReplayRunner {
    /// A runner replaying `events` to `directory`'s subscriptions, keeping its jobs in `replays`.
    pub fn new(
        replays: Arc<dyn ReplayStore>,
        events: Arc<dyn EventStore>,
        directory: Arc<SubscriptionDirectory>,
        rate: Option<u32>,
    ) -> Self {
        Self {
            replays,
            events,
            directory,
            rate,
            owner: uuid::Uuid::now_v7().to_string(),
            operations: Operations::default(),
        }
    }

    /// The same runner, reporting each replay's end to `operations`.
    pub fn reporting_to(self, operations: Operations) -> Self {
        Self { operations, ..self }
    }

    /// Takes and runs replays until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> ReplayTasks {
        let runs = TaskTracker::new();
        let poller = tokio::spawn(poll(Arc::new(self), runs.clone(), shutdown));
        ReplayTasks { poller, runs }
    }

    /// Runs one replay until it is done, cancelled, taken over, or the process stops.
    async fn run(&self, replay: Replay, lease: &str, shutdown: &CancellationToken) {
        tracing::info!(replay = %replay.id, stream = %replay.stream, dry_run = replay.dry_run, resumed_after = replay.progress.cursor, "replay running");
        let mut pacer = Pacer::new(if replay.dry_run { None } else { self.rate });
        let mut progress = replay.progress;
        // The last event of the window in store order, once known: the walk ends there.
        let mut through = None;
        loop {
            if shutdown.is_cancelled() {
                // Handed back: the next process to look takes it at once.
                let handed_back = self
                    .replays
                    .advance_replay(&replay.id, lease, &progress, &[], Utc::now())
                    .await;
                if let Err(err) = handed_back {
                    tracing::warn!(replay = %replay.id, error = %err, "cannot hand a replay back; it resumes after its lease");
                }
                return;
            }
            let advanced = match self.step(&replay, progress, &mut through, &pacer).await {
                Ok(Step::Done) => {
                    return self
                        .finish(&replay, lease, &progress, ReplayStatus::Completed, None)
                        .await;
                }
                Ok(Step::Advanced {
                    progress: next,
                    jobs,
                    replayed,
                }) => {
                    pacer.take(replayed).await;
                    let leased_until = Utc::now() + LEASE;
                    self.replays
                        .advance_replay(&replay.id, lease, &next, &jobs, leased_until)
                        .await
                        .map(|held| held.then_some(next))
                }
                Err(err) => Err(err),
            };
            match advanced {
                Ok(Some(next)) => progress = next,
                Ok(None) => {
                    tracing::info!(replay = %replay.id, "replay stopped: cancelled or taken over");
                    return;
                }
                // The batch is done again from the last recorded position.
                Err(err) if err.is_transient() => {
                    tracing::warn!(replay = %replay.id, error = %err, "replay waits for the store");
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_WAIT) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(err) => {
                    let error = err.to_string();
                    return self
                        .finish(
                            &replay,
                            lease,
                            &progress,
                            ReplayStatus::Failed,
                            Some(&error),
                        )
                        .await;
                }
            }
        }
    }

    /// Reads the next batch of events after `progress` and plans their deliveries. The window's
    /// stretch of the store is looked up first (`through`, its last sequence): the walk starts
    /// at its first event and ends at its last.
    async fn step(
        &self,
        replay: &Replay,
        mut progress: ReplayProgress,
        through: &mut Option<i64>,
        pacer: &Pacer,
    ) -> Result<Step, StoreError> {
        let range = TimeRange {
            stream: Some(replay.stream.clone()),
            start: replay.start_time,
            end: replay.end_time,
        };
        let Some(last) = *through else {
            // The first step only finds the stretch, and moves to its start (saved like a batch).
            let Some((first, last)) = self.events.sequence_bounds(&range).await? else {
                return Ok(Step::Done);
            };
            progress.cursor = progress.cursor.max(first - 1);
            *through = Some(last);
            return Ok(Step::Advanced {
                progress,
                jobs: Vec::new(),
                replayed: 0,
            });
        };
        if progress.cursor >= last {
            return Ok(Step::Done);
        }
        let targets = self.targets(replay).await?;
        // Fewer events per batch when each goes to many subscriptions: one transaction stays small.
        let per_event = u32::try_from(targets.len()).unwrap_or(u32::MAX).max(1);
        let limit = pacer
            .batch(SCAN_BATCH)
            .min((MAX_BATCH_JOBS / per_event).max(1));
        let page = self
            .events
            .scan(&range, progress.cursor, last, limit)
            .await?;
        if page.scanned_through <= progress.cursor {
            return Err(StoreError::Corrupt {
                id: replay.id.clone(),
                reason: format!("the walk did not move past sequence {}", progress.cursor),
            });
        }
        progress.cursor = page.scanned_through;
        let mut jobs = Vec::new();
        let mut replayed = 0;
        for event in page
            .events
            .iter()
            .filter(|e| replay.selects(e.event_type()))
        {
            progress.matched += 1;
            let before = jobs.len();
            jobs.extend(jobs_for(replay, event, &targets));
            if jobs.len() > before {
                replayed += 1;
            }
        }
        progress.replayed += replayed;
        progress.deliveries += jobs.len() as u64;
        if replay.dry_run {
            jobs.clear();
        }
        Ok(Step::Advanced {
            progress,
            jobs,
            replayed,
        })
    }

    /// The enabled subscriptions the replay delivers to: every one, or the one it names.
    async fn targets(&self, replay: &Replay) -> Result<Vec<Subscription>, StoreError> {
        let subscriptions: Vec<Subscription> = match &replay.subscription_id {
            // Looked up by id: found even when created a moment ago in another process.
            Some(id) => self
                .directory
                .get(id)
                .await?
                .map(|stored| stored.subscription.clone())
                .into_iter()
                .collect(),
            None => self
                .directory
                .all()
                .await?
                .iter()
                .map(|stored| stored.subscription.clone())
                .collect(),
        };
        Ok(subscriptions.into_iter().filter(|s| s.enabled).collect())
    }

    async fn finish(
        &self,
        replay: &Replay,
        lease: &str,
        progress: &ReplayProgress,
        status: ReplayStatus,
        error: Option<&str>,
    ) {
        tracing::info!(replay = %replay.id, status = status.as_str(), matched = progress.matched, replayed = progress.replayed, deliveries = progress.deliveries, error, "replay finished");
        match self
            .replays
            .finish_replay(&replay.id, lease, progress, status, error)
            .await
        {
            Ok(true) => {
                let subscription = match &replay.subscription_id {
                    Some(id) => self.directory.get(id).await.ok().flatten(),
                    None => None,
                };
                self.operations.publish(OperationalEvent::replay_finished(
                    replay,
                    progress,
                    status,
                    error,
                    subscription.as_ref().map(|stored| &stored.subscription),
                ));
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(replay = %replay.id, error = %err, "cannot record the end of a replay; it runs again after its lease");
            }
        }
    }
}

/// The delivery jobs of one replayed event: one per target subscribed to its type.
fn jobs_for<'a>(
    replay: &'a Replay,
    event: &'a Event,
    targets: &'a [Subscription],
) -> impl Iterator<Item = NewDelivery> + 'a {
    let now = Utc::now();
    targets
        .iter()
        .filter(|s| s.accepts(event))
        .map(move |s| NewDelivery::of(event, s, now).for_replay(&replay.id))
}

/// Takes replays from the store while this process has room for them, until `shutdown`.
async fn poll(runner: Arc<ReplayRunner>, runs: TaskTracker, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = shutdown.cancelled() => return,
        };
        let Ok(slot) = slot else { return };
        let now = Utc::now();
        let lease = format!("{}:{}", runner.owner, uuid::Uuid::now_v7().simple());
        match runner.replays.claim_replay(&lease, now, now + LEASE).await {
            Ok(Some(replay)) => {
                let runner = runner.clone();
                let shutdown = shutdown.clone();
                runs.spawn(async move {
                    runner.run(replay, &lease, &shutdown).await;
                    drop(slot);
                });
                // There may be more waiting.
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot look for replays to run"),
        }
        drop(slot);
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
