//! The producer: group commit of events into the store, then hand-off to the broker.
//!
//! Every request task shares one cloneable [`Producer`] (the original's "producer pool"). Events
//! submitted while a commit is running are committed together in the next transaction, so the
//! store sees few large transactions under load and a lone event is committed at once.

mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::events::Event;
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
#[derive(Debug, Clone, Copy)]
pub struct ProducerSettings {
    /// Most events in one commit (a larger single submission is still committed whole).
    pub batch_size: usize,
    /// Longest an enqueued (not awaited) event waits for more to join its commit.
    pub batch_timeout: Duration,
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
    /// Starts the committer and the publisher; both stop after `shutdown`, once drained.
    pub fn spawn(
        store: Arc<dyn EventStore>,
        broker: Arc<dyn Broker>,
        settings: ProducerSettings,
        shutdown: CancellationToken,
    ) -> (Self, ProducerTasks) {
        let (submissions, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (handoff, committed) = mpsc::channel(HANDOFF_CAPACITY);
        let backlog = Arc::new(AtomicBool::new(true));
        let committer = Committer {
            store: store.clone(),
            settings,
            handoff,
            backlog: backlog.clone(),
        };
        let outbox = outbox::Outbox::new(store, broker, backlog);
        let tasks = ProducerTasks {
            committer: tokio::spawn(committer.run(queue, shutdown.clone())),
            publisher: tokio::spawn(outbox.run(committed, shutdown)),
        };
        (Self { submissions }, tasks)
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
struct Committer {
    store: Arc<dyn EventStore>,
    settings: ProducerSettings,
    handoff: mpsc::Sender<Vec<Event>>,
    backlog: Arc<AtomicBool>,
}

impl Committer {
    async fn run(self, mut queue: mpsc::Receiver<Submission>, shutdown: CancellationToken) {
        let mut closing = false;
        loop {
            let first = if closing {
                queue.recv().await
            } else {
                tokio::select! {
                    biased;
                    submission = queue.recv() => submission,
                    _ = shutdown.cancelled() => {
                        // Refuse new submissions, then drain what is queued.
                        queue.close();
                        closing = true;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let batch = self.collect(first, &mut queue).await;
            self.commit(batch).await;
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

    async fn commit(&self, mut batch: Vec<Submission>) {
        let sizes: Vec<usize> = batch.iter().map(|s| s.events.len()).collect();
        let events: Vec<Event> = batch.iter_mut().flat_map(|s| s.events.drain(..)).collect();
        let started = Instant::now();
        let appended = self.store.append(events).await;
        metrics::group_commit(sizes.iter().sum(), started.elapsed());
        match appended {
            Ok(outcomes) => {
                let created = outcomes.iter().filter_map(|outcome| match outcome {
                    AppendOutcome::Created(event) => Some(event),
                    _ => None,
                });
                if self.store.publishes_on_append() {
                    metrics::events_published(created.map(|e| e.metadata.stream.as_str()));
                } else {
                    self.hand_off(created.cloned().collect());
                }
                let mut outcomes = outcomes.into_iter();
                for (submission, size) in batch.into_iter().zip(sizes) {
                    let part: Vec<AppendOutcome> = outcomes.by_ref().take(size).collect();
                    if let Some(reply) = submission.reply {
                        // The caller may have gone away; its events are committed regardless.
                        let _ = reply.send(Ok(part));
                    }
                }
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
            }
        }
    }

    /// Passes committed events to the publisher; when its queue is full, the outbox catches up
    /// from the store instead, which keeps stream order.
    fn hand_off(&self, created: Vec<Event>) {
        if !created.is_empty() && self.handoff.try_send(created).is_err() {
            self.backlog.store(true, Ordering::Release);
        }
    }
}
