//! [`Operations`]: where the dispatcher, the recorder, the replay runner and the API report
//! happenings, and the one task per process that turns them into operational events.
//!
//! Callers never wait: a report is queued (and dropped with a warning when the queue is full, as
//! a log line would be), and the reporter handles the queue in order. Order matters for the
//! marks: a batch of failures must raise a subscription's `failing` mark before the success
//! after them lowers it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::OperationalEvent;
use crate::delivery::{DeadLetter, DeliveryStore, Subscription, SubscriptionDirectory};
use crate::producer::Producer;
use crate::reliability::{BreakerConfig, BreakerTransition};

/// Reports queued before new ones are dropped.
const QUEUE: usize = 4096;
/// How long the reporter trusts its list of failing subscriptions before reading it again.
const FAILING_MAX_AGE: Duration = Duration::from_secs(1);
/// Least time between two recoveries of one subscription reported by this process: an endpoint
/// that fails every other request gets one `recovered` event per period, with the failures
/// counted in between, not one per batch of attempts.
const RECOVERY_QUIET: Duration = Duration::from_secs(10);
/// Mark of a subscription whose deliveries have been failing, by subscription id.
const FAILING: &str = "failing/";
/// Mark of a subscription whose breaker is open in some process, by subscription id.
const BREAKER: &str = "breaker/";

/// The attempts of one recorded batch, as far as operators are told about them.
#[derive(Debug, Default)]
pub struct RecordedBatch {
    /// Failed attempts, and whether the last attempt succeeded, per subscription.
    outcomes: BTreeMap<String, (u64, bool)>,
    /// The dead letters the batch created, with their subscription.
    dead_letters: Vec<DeadLetter>,
}

impl RecordedBatch {
    /// Adds an attempt (in the order they were made), with the dead letter it became if any.
    pub fn add(
        &mut self,
        subscription_id: &str,
        delivered: bool,
        dead_letter: Option<&DeadLetter>,
    ) {
        match self.outcomes.get_mut(subscription_id) {
            Some(outcome) => *outcome = (outcome.0 + u64::from(!delivered), delivered),
            None => {
                self.outcomes.insert(
                    subscription_id.to_string(),
                    (u64::from(!delivered), delivered),
                );
            }
        }
        self.dead_letters.extend(dead_letter.cloned());
    }
}

/// What the reporter is told.
enum Report {
    /// An event to publish as it is (its happening was one store change, made by the caller).
    Publish(OperationalEvent),
    /// A breaker of this process changed state.
    Breaker {
        subscription: Box<Subscription>,
        transition: BreakerTransition,
        config: BreakerConfig,
    },
    /// A batch of attempts the store recorded.
    Attempts(RecordedBatch),
}

/// A cloneable handle for reporting happenings; one that reports nothing is the default.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    reports: Option<mpsc::Sender<Report>>,
}

/// The reporter task, to wait for at shutdown once nothing reports any more.
pub struct ReporterTask(JoinHandle<()>);

impl ReporterTask {
    /// Waits until the reports queued before the stop were published.
    pub async fn finished(self) {
        if let Err(err) = self.0.await {
            tracing::error!(error = %err, "operational event reporter failed");
        }
    }
}

impl Operations {
    /// Starts the reporter, publishing through `producer` until `stop` (then what is queued).
    pub fn spawn(
        producer: Producer,
        store: Arc<dyn DeliveryStore>,
        directory: Arc<SubscriptionDirectory>,
        stop: CancellationToken,
    ) -> (Self, ReporterTask) {
        let (reports, queue) = mpsc::channel(QUEUE);
        let reporter = Reporter {
            producer,
            store,
            directory,
            failing: HashSet::new(),
            failing_read: None,
            recovered_at: HashMap::new(),
        };
        let task = tokio::spawn(reporter.run(queue, stop));
        (
            Self {
                reports: Some(reports),
            },
            ReporterTask(task),
        )
    }

    /// Publishes `event`, whose happening the caller made in the store and so saw once.
    pub fn publish(&self, event: OperationalEvent) {
        self.report(Report::Publish(event));
    }

    /// Reports a breaker's `transition` for `subscription`, once across processes.
    pub fn breaker_changed(
        &self,
        subscription: &Subscription,
        transition: BreakerTransition,
        config: BreakerConfig,
    ) {
        self.report(Report::Breaker {
            subscription: Box::new(subscription.clone()),
            transition,
            config,
        });
    }

    /// Reports attempts the store recorded: their dead letters, and recoveries after failures.
    pub fn attempts_recorded(&self, batch: RecordedBatch) {
        if !batch.outcomes.is_empty() {
            self.report(Report::Attempts(batch));
        }
    }

    fn report(&self, report: Report) {
        let Some(reports) = &self.reports else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = reports.try_send(report) {
            tracing::warn!("operational event queue full; a report was dropped");
        }
    }
}

/// Turns reports into events, in the order they came.
struct Reporter {
    producer: Producer,
    store: Arc<dyn DeliveryStore>,
    directory: Arc<SubscriptionDirectory>,
    /// The subscriptions marked failing, as last read (plus those this process marked since).
    failing: HashSet<String>,
    failing_read: Option<Instant>,
    /// When this process last reported each subscription's recovery.
    recovered_at: HashMap<String, Instant>,
}

impl Reporter {
    async fn run(mut self, mut queue: mpsc::Receiver<Report>, stop: CancellationToken) {
        loop {
            let report = tokio::select! {
                report = queue.recv() => report,
                _ = stop.cancelled() => queue.try_recv().ok(),
            };
            let Some(report) = report else { return };
            let events = self.handle(report).await;
            if events.is_empty() {
                continue;
            }
            for event in &events {
                tracing::info!(event_type = event.event_type(), event_id = %event.id(), "operational event");
            }
            let events = events
                .into_iter()
                .map(OperationalEvent::into_event)
                .collect();
            if let Err(err) = self.producer.send(events).await {
                tracing::warn!(error = %err, "cannot publish operational events");
            }
        }
    }

    async fn handle(&mut self, report: Report) -> Vec<OperationalEvent> {
        match report {
            Report::Publish(event) => vec![event],
            Report::Breaker {
                subscription,
                transition,
                config,
            } => self
                .breaker(&subscription, transition, config)
                .await
                .into_iter()
                .collect(),
            Report::Attempts(attempts) => self.attempts(attempts).await,
        }
    }

    /// The first process whose breaker opens reports it; the first whose breaker closes again
    /// reports that.
    async fn breaker(
        &self,
        subscription: &Subscription,
        transition: BreakerTransition,
        config: BreakerConfig,
    ) -> Option<OperationalEvent> {
        let key = format!("{BREAKER}{}", subscription.id);
        let now = Utc::now();
        let reported = match transition {
            BreakerTransition::Opened => self.store.raise_mark(&key, 1, now).await.map(|raised| {
                raised.then(|| {
                    OperationalEvent::breaker_opened(
                        subscription,
                        config.failure_threshold,
                        config.recovery_timeout,
                        now,
                    )
                })
            }),
            BreakerTransition::Closed => self.store.clear_mark(&key).await.map(|mark| {
                mark.map(|mark| OperationalEvent::breaker_closed(subscription, mark.raised_at))
            }),
        };
        reported
            .inspect_err(|err| tracing::warn!(error = %err, "cannot report a breaker change"))
            .ok()
            .flatten()
    }

    /// Dead letters, each reported by the process that recorded it; and per subscription, its
    /// failures counted on its mark, lowered (and reported) by the first success after them.
    async fn attempts(&mut self, batch: RecordedBatch) -> Vec<OperationalEvent> {
        let mut events = Vec::new();
        for letter in &batch.dead_letters {
            let subscription_id = letter.subscription_id.as_deref().unwrap_or_default();
            if let Some(subscription) = self.subscription(subscription_id).await {
                events.push(OperationalEvent::dead_lettered(&subscription, letter));
            }
        }
        let now = Utc::now();
        for (id, (failures, last_delivered)) in batch.outcomes {
            let key = format!("{FAILING}{id}");
            if failures > 0 {
                match self.store.raise_mark(&key, failures, now).await {
                    Ok(_) => {
                        self.failing.insert(id.clone());
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot count failed deliveries"),
                }
            }
            let quiet = self
                .recovered_at
                .get(&id)
                .is_some_and(|at| at.elapsed() < RECOVERY_QUIET);
            if !last_delivered || quiet || !self.is_failing(&id).await {
                continue;
            }
            self.failing.remove(&id);
            self.recovered_at.insert(id.clone(), Instant::now());
            match self.store.clear_mark(&key).await {
                Ok(Some(mark)) => {
                    if let Some(subscription) = self.subscription(&id).await {
                        events.push(OperationalEvent::recovered(
                            &subscription,
                            mark.count,
                            mark.raised_at,
                        ));
                    }
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot report a recovery"),
            }
        }
        events
    }

    /// Whether `id` is marked failing in any process, as read at most a second ago.
    async fn is_failing(&mut self, id: &str) -> bool {
        let stale = self
            .failing_read
            .is_none_or(|read| read.elapsed() > FAILING_MAX_AGE);
        if stale {
            match self.store.raised_marks(FAILING).await {
                Ok(keys) => {
                    self.failing = keys
                        .into_iter()
                        .filter_map(|key| key.strip_prefix(FAILING).map(str::to_string))
                        .collect();
                    self.failing_read = Some(Instant::now());
                }
                Err(err) => tracing::warn!(error = %err, "cannot read failing subscriptions"),
            }
        }
        self.failing.contains(id)
    }

    async fn subscription(&self, id: &str) -> Option<Subscription> {
        match self.directory.get(id).await {
            Ok(stored) => stored.map(|stored| stored.subscription.clone()),
            Err(err) => {
                tracing::warn!(error = %err, subscription = id, "cannot name the subscription of an operational event");
                None
            }
        }
    }
}
