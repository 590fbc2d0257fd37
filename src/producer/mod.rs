//! The producer: group commit of events into the store, then hand-off to the broker.
//!
//! Every request task shares one cloneable [`Producer`] (the original's "producer pool"). Events
//! submitted while a commit is running are committed together in the next transaction, so the
//! store sees few large transactions under load and a lone event is committed at once. A store
//! that takes several appends at once (PostgreSQL) gets that many commits in flight; committed
//! batches are handed to the broker in the order they were formed, so a stream keeps the order
//! in which events were submitted.

mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::delivery::{SubscriptionDirectory, ordered_jobs};
use crate::events::Event;
use crate::insights::{Metric, Tally};
use crate::observability::metrics;
use crate::store::{AppendOutcome, EventStore, StoreError};

/// Submissions queued before `send` waits for room.
const QUEUE_CAPACITY: usize = 8192;
/// Committed batches queued for the broker before the outbox takes over.
const HANDOFF_CAPACITY: usize = 64;

/// Why events could not be committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProduceError {
    /// The store refused or could not be reached; nothing of the batch was stored.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The producer has shut down.
    #[error("the producer is shut down")]
    Closed,
}

/// Group-commit settings.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// Most events in one commit (a larger single submission is still committed whole).
    pub batch_size: usize,
    /// Longest an enqueued (not awaited) event waits for more to join its commit.
    pub batch_timeout: Duration,
    /// Where committed events are counted, by type, for the insights.
    pub counts: Tally,
}

type Reply = oneshot::Sender<Result<Vec<AppendOutcome>, ProduceError>>;

/// Events from one caller, with where to report the outcome (none for `enqueue`).
struct Submission {
    events: Vec<Event>,
    reply: Option<Reply>,
}

/// A cloneable handle for submitting events; see the module documentation.
#[derive(Debug, Clone)]
pub struct Producer {
    submissions: mpsc::Sender<Submission>,
    /// How many events this producer has stored, changed after every commit.
    stored: watch::Receiver<u64>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("events", &self.events.len())
            .finish()
    }
}

/// The producer's background tasks; await [`ProducerTasks::finished`] after shutdown.
#[derive(Debug)]
pub struct ProducerTasks {
    committer: JoinHandle<()>,
    publisher: JoinHandle<()>,
}

impl ProducerTasks {
    /// Resolves once every submitted event is committed and handed to the broker (or left in
    /// the store's outbox when the broker is down).
    pub async fn finished(self) {
        for task in [self.committer, self.publisher] {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "producer task failed");
            }
        }
    }
}

impl Producer {
    /// Starts the committer and the publisher; both stop after `shutdown`, once drained. With
    /// `subscriptions`, each commit also creates the jobs of the ordered subscriptions its events
    /// match, in the same transaction (see [`crate::delivery::ordered_jobs`]).
    pub fn spawn(
        store: Arc<dyn EventStore>,
        broker: Arc<dyn Broker>,
        subscriptions: Option<Arc<SubscriptionDirectory>>,
        settings: ProducerSettings,
        shutdown: CancellationToken,
    ) -> (Self, ProducerTasks) {
        let (submissions, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (handoff, committed) = mpsc::channel(HANDOFF_CAPACITY);
        let backlog = Arc::new(AtomicBool::new(true));
        let (stored_total, stored) = watch::channel(0);
        let committer = Committer {
            store: store.clone(),
            subscriptions,
            settings,
            handoff,
            backlog: backlog.clone(),
            stored: Arc::new(stored_total),
        };
        let outbox = outbox::Outbox::new(store, broker, backlog);
        let tasks = ProducerTasks {
            committer: tokio::spawn(committer.run(queue, shutdown.clone())),
            publisher: tokio::spawn(outbox.run(committed, shutdown)),
        };
        (
            Self {
                submissions,
                stored,
            },
            tasks,
        )
    }

    /// Commits `events` and reports each one's outcome once the transaction is durable.
    pub async fn send(&self, events: Vec<Event>) -> Result<Vec<AppendOutcome>, ProduceError> {
        let (reply, outcome) = oneshot::channel();
        self.submissions
            .send(Submission {
                events,
                reply: Some(reply),
            })
            .await
            .map_err(|_| ProduceError::Closed)?;
        outcome.await.map_err(|_| ProduceError::Closed)?
    }

    /// Events this producer has stored since it started: the ingest rate is its change over time.
    pub fn stored_total(&self) -> u64 {
        *self.stored.borrow()
    }

    /// Changes whenever this producer has stored new events: live streams wait on it to read
    /// the store again.
    pub fn stored_updates(&self) -> watch::Receiver<u64> {
        self.stored.clone()
    }

    /// Buffers an event for the next commit without waiting for it: flushed at BATCH_SIZE
    /// events or after BATCH_TIMEOUT_MS. An event buffered when the process dies is lost; use
    /// [`Producer::send`] where that matters.
    pub async fn enqueue(&self, event: Event) -> Result<(), ProduceError> {
        self.submissions
            .send(Submission {
                events: vec![event],
                reply: None,
            })
            .await
            .map_err(|_| ProduceError::Closed)
    }
}

/// Collects submissions into batches and commits them.
#[derive(Clone)]
struct Committer {
    store: Arc<dyn EventStore>,
    /// Whose ordered subscriptions get their jobs in the commit.
    subscriptions: Option<Arc<SubscriptionDirectory>>,
    settings: ProducerSettings,
    handoff: mpsc::Sender<Vec<Event>>,
    backlog: Arc<AtomicBool>,
    stored: Arc<watch::Sender<u64>>,
}

impl Committer {
    async fn run(self, mut queue: mpsc::Receiver<Submission>, shutdown: CancellationToken) {
        let max_in_flight = self.store.concurrent_appends().max(1);
        // Commits run as tasks of their own; their results are taken in the order they started.
        let mut in_flight = FuturesOrdered::new();
        let mut closing = false;
        let mut drained = false;
        while !(drained && in_flight.is_empty()) {
            tokio::select! {
                biased;
                Some(done) = in_flight.next() => match done {
                    Ok(created) => self.hand_off(created),
                    Err(err) => tracing::error!(error = %err, "commit task failed"),
                },
                submission = queue.recv(), if !drained && in_flight.len() < max_in_flight => {
                    let Some(first) = submission else {
                        drained = true;
                        continue;
                    };
                    let batch = self.collect(first, &mut queue).await;
                    in_flight.push_back(tokio::spawn(self.clone().commit(batch)));
                }
                // Refuse new submissions, then drain what is queued.
                _ = shutdown.cancelled(), if !closing => {
                    queue.close();
                    closing = true;
                }
            }
        }
    }

    /// Gathers what is already queued, up to the batch size; waits for more only while the
    /// batch holds nothing but enqueued events, and no longer than the batch timeout.
    async fn collect(
        &self,
        first: Submission,
        queue: &mut mpsc::Receiver<Submission>,
    ) -> Vec<Submission> {
        let deadline = Instant::now() + self.settings.batch_timeout;
        let mut count = first.events.len();
        let mut awaited = first.reply.is_some();
        let mut batch = vec![first];
        while count < self.settings.batch_size {
            let next = match queue.try_recv() {
                Ok(submission) => Some(submission),
                Err(mpsc::error::TryRecvError::Empty) if !awaited => {
                    tokio::time::timeout_at(deadline, queue.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(submission) = next else { break };
            count += submission.events.len();
            awaited |= submission.reply.is_some();
            batch.push(submission);
        }
        batch
    }

    /// Commits a batch, answers its callers, and returns the newly created events that still
    /// have to reach the broker.
    async fn commit(self, mut batch: Vec<Submission>) -> Vec<Event> {
        let sizes: Vec<usize> = batch.iter().map(|s| s.events.len()).collect();
        let events: Vec<Event> = batch.iter_mut().flat_map(|s| s.events.drain(..)).collect();
        let started = Instant::now();
        let appended = self.append(events).await;
        metrics::group_commit(sizes.iter().sum(), started.elapsed());
        match appended {
            Ok(outcomes) => {
                let stored = outcomes
                    .iter()
                    .filter(|outcome| matches!(outcome, AppendOutcome::Created(_)))
                    .count() as u64;
                if stored > 0 {
                    self.stored.send_modify(|total| *total += stored);
                }
                let created = outcomes.iter().filter_map(|outcome| match outcome {
                    AppendOutcome::Created(event) => Some(event),
                    _ => None,
                });
                self.settings.counts.add(
                    Metric::Events,
                    created.clone().map(|event| {
                        (
                            event.envelope.event_type.as_str(),
                            event.metadata.received_at,
                        )
                    }),
                );
                let published = self.store.publishes_on_append();
                for event in created.clone() {
                    tracing::debug!(event_id = %event.id(), stream = %event.metadata.stream, sequence = event.metadata.sequence, correlation_id = %event.metadata.correlation_id, published, "event stored");
                }
                let unpublished = if published {
                    metrics::events_published(created.map(|e| e.metadata.stream.as_str()));
                    Vec::new()
                } else {
                    created.cloned().collect()
                };
                let mut outcomes = outcomes.into_iter();
                for (submission, size) in batch.into_iter().zip(sizes) {
                    let part: Vec<AppendOutcome> = outcomes.by_ref().take(size).collect();
                    if let Some(reply) = submission.reply {
                        // The caller may have gone away; its events are committed regardless.
                        let _ = reply.send(Ok(part));
                    }
                }
                unpublished
            }
            Err(err) => {
                tracing::error!(error = %err, "group commit failed");
                let err = ProduceError::Store(Arc::new(err));
                for (submission, size) in batch.into_iter().zip(sizes) {
                    match submission.reply {
                        Some(reply) => {
                            let _ = reply.send(Err(err.clone()));
                        }
                        None => {
                            tracing::error!(events = size, "buffered events lost: commit failed")
                        }
                    }
                }
                Vec::new()
            }
        }
    }

    /// Appends `events` with the jobs of the ordered subscriptions they match.
    async fn append(&self, events: Vec<Event>) -> Result<Vec<AppendOutcome>, StoreError> {
        let Some(directory) = &self.subscriptions else {
            return self.store.append(events).await;
        };
        let jobs = ordered_jobs(&directory.all().await?, &events, chrono::Utc::now());
        self.store.append_with_deliveries(events, &jobs).await
    }

    /// Passes committed events to the publisher; when its queue is full, the outbox catches up
    /// from the store instead, which keeps stream order.
    fn hand_off(&self, created: Vec<Event>) {
        if !created.is_empty() && self.handoff.try_send(created).is_err() {
            self.backlog.store(true, Ordering::Release);
        }
    }
}
