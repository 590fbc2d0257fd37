//! The worker: a consumer-group member that reads events, runs the handlers and acknowledges.
//!
//! Entries are spread over lanes by partition key (or event id), so events sharing a key are
//! handled one after another in stream order while the rest run concurrently. A failing handler
//! is retried with backoff; after MAX_RETRIES retries the event is dead-lettered. Entries left
//! pending by a dead consumer are claimed after CLAIM_IDLE_MS.

mod handler;

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::{Broker, BrokerError, Delivery, EntryId};
use crate::delivery::{DeadLetter, DeliveryStore};
use crate::events::Event;
use crate::events::trace::trace_id;
use crate::observability::metrics;
use crate::reliability::{RetryConfig, retry};
use crate::store::EventStore;

pub use handler::{Handler, HandlerError};

/// Longest a read waits for new entries; also how quickly shutdown is noticed.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Pause after a sizeable partial read, so that reads batch up under load.
const READ_LINGER: Duration = Duration::from_millis(5);
/// Entries in one read from which the worker lingers before the next.
const LINGER_AFTER: usize = 16;
/// Entries queued per lane before reading pauses.
const LANE_CAPACITY: usize = 64;
/// Retries of an acknowledgement (or of recording processed events) through a short outage,
/// before the entries are left for the claim timeout: about four seconds in all.
const SETTLE_RETRY: RetryConfig = RetryConfig {
    max_retries: 5,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    exponential_base: 2.0,
    jitter: false,
};
/// How often gauges (lag, stream length, DLQ size) are sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// How a worker reads and retries.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Consumer group to join.
    pub group: String,
    /// This consumer's name, unique per process.
    pub consumer: String,
    /// Streams to read.
    pub streams: Vec<String>,
    /// Lanes (events in flight at once).
    pub concurrency: usize,
    /// Entries per read.
    pub read_count: usize,
    /// Idle time after which pending entries of other consumers are claimed.
    pub claim_idle: Duration,
    /// Retries of a failing handler.
    pub retry: RetryConfig,
}

/// A consumer name unique to this process: host, pid and a random suffix.
pub fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "eventflow".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// A consumer-group member; see the module documentation.
pub struct Worker {
    broker: Arc<dyn Broker>,
    dead_letters: Arc<dyn DeliveryStore>,
    handlers: Arc<[Arc<dyn Handler>]>,
    settings: WorkerSettings,
    /// Where processed event ids are recorded, so that a redelivered event has no second effect.
    processed: Option<Arc<dyn EventStore>>,
}

impl Worker {
    /// A worker running `handlers` on every event, putting events that keep failing into the
    /// dead-letter queue of `dead_letters`.
    pub fn new(
        broker: Arc<dyn Broker>,
        dead_letters: Arc<dyn DeliveryStore>,
        handlers: Vec<Arc<dyn Handler>>,
        mut settings: WorkerSettings,
    ) -> Self {
        settings.concurrency = settings.concurrency.max(1);
        settings.read_count = settings.read_count.max(1);
        Self {
            broker,
            dead_letters,
            handlers: handlers.into(),
            settings,
            processed: None,
        }
    }

    /// Records in `store` each event the group has processed, and skips the handlers for an event
    /// delivered again (claimed after a consumer died before acknowledging, or published twice):
    /// its effects happen once across every worker of the group.
    pub fn remembering_processed(mut self, store: Arc<dyn EventStore>) -> Self {
        self.processed = Some(store);
        self
    }

    /// Consumes until `shutdown`, then finishes the events in flight and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        if !self.join_groups(&shutdown).await {
            return;
        }
        tracing::info!(consumer = %self.settings.consumer, group = %self.settings.group, "worker started");
        let (acks, acker) = spawn_acker(
            self.broker.clone(),
            self.processed.clone(),
            self.settings.group.clone(),
        );
        let processor = Arc::new(Processor {
            dead_letters: self.dead_letters.clone(),
            handlers: self.handlers.clone(),
            retry: self.settings.retry.clone(),
            acks,
            in_flight: Mutex::new(HashSet::new()),
        });
        let mut lanes = Vec::with_capacity(self.settings.concurrency);
        let mut lane_tasks = JoinSet::new();
        for _ in 0..self.settings.concurrency {
            let (lane, mut queue) = mpsc::channel::<Delivery>(LANE_CAPACITY);
            let processor = processor.clone();
            lane_tasks.spawn(async move {
                while let Some(delivery) = queue.recv().await {
                    let entry = InFlight::of(&delivery);
                    // A panicking handler must not take the lane down with it: the entry stays
                    // pending, is claimed again later and dead-lettered once over budget.
                    let run = AssertUnwindSafe(processor.process(delivery)).catch_unwind();
                    if run.await.is_err() {
                        tracing::error!(stream = %entry.0, entry_id = %entry.1.0, "processing panicked");
                    }
                    processor.settled(&entry);
                }
            });
            lanes.push(lane);
        }

        let claim_every = (self.settings.claim_idle / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        let mut next_claim = Instant::now();
        let mut next_sample = Instant::now();
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_sample {
                next_sample = Instant::now() + SAMPLE_INTERVAL;
                metrics::sample_broker(
                    self.broker.as_ref(),
                    &self.settings.group,
                    &self.settings.streams,
                )
                .await;
                metrics::sample_dead_letters(self.dead_letters.as_ref()).await;
                metrics::sample_subscriptions(self.dead_letters.as_ref()).await;
            }
            let claimed = if Instant::now() >= next_claim {
                next_claim = Instant::now() + claim_every;
                self.claim().await
            } else {
                Ok(Vec::new())
            };
            let read = match claimed {
                Ok(claimed) if !claimed.is_empty() => Ok(claimed),
                Ok(_) => self.read().await,
                Err(err) => Err(err),
            };
            let read = match read {
                Ok(deliveries) => self.skip_processed(deliveries, &processor, &shutdown).await,
                Err(err) => Err(err),
            };
            match read {
                Ok(deliveries) => {
                    pause = Duration::from_millis(100);
                    // A sizeable but partial read means load: let entries accumulate briefly, so
                    // reads and acknowledgements come in batches instead of one per commit. At
                    // low rates reads are small and nothing waits.
                    let linger =
                        (LINGER_AFTER..self.settings.read_count).contains(&deliveries.len());
                    for delivery in deliveries {
                        // A claim can return an entry this worker still holds in a lane.
                        if !processor.admit(InFlight::of(&delivery)) {
                            continue;
                        }
                        let lane = &lanes[lane_of(&delivery, lanes.len())];
                        if lane.send(delivery).await.is_err() {
                            break;
                        }
                    }
                    if linger {
                        tokio::time::sleep(READ_LINGER).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "reading the broker failed");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!("worker stopping: finishing events in flight");
        drop(lanes);
        while lane_tasks.join_next().await.is_some() {}
        // The last handle on the acknowledgement channel: the acker drains and stops.
        drop(processor);
        acker.await.ok();
        self.leave_groups().await;
        tracing::info!("worker stopped");
    }

    /// Creates the consumer group on every stream, retrying while the broker is down; false if
    /// shutdown came first.
    async fn join_groups(&self, shutdown: &CancellationToken) -> bool {
        loop {
            let mut result = Ok(());
            for stream in &self.settings.streams {
                result = self.broker.ensure_group(stream, &self.settings.group).await;
                if result.is_err() {
                    break;
                }
            }
            match result {
                Ok(()) => return true,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot join the consumer group; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return false,
            }
        }
    }

    /// Acknowledges the deliveries whose event the group has processed already (or that repeat an
    /// event earlier in the same read) and returns the rest. While the store cannot tell, waits
    /// for it: handling blind could repeat effects.
    async fn skip_processed(
        &self,
        deliveries: Vec<Delivery>,
        processor: &Processor,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let Some(store) = self.processed.as_ref().filter(|_| !deliveries.is_empty()) else {
            return Ok(deliveries);
        };
        let ids: Vec<String> = deliveries
            .iter()
            .map(|d| d.message.event_id.clone())
            .collect();
        let mut pause = Duration::from_millis(100);
        let done = loop {
            match store.processed(&self.settings.group, &ids).await {
                Ok(done) => break done,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "cannot look up processed events");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        // Unsettled entries stay pending and are claimed after a restart.
                        _ = shutdown.cancelled() => return Ok(Vec::new()),
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        let mut fresh = Vec::with_capacity(deliveries.len());
        // A read can hold two copies of one event (published twice): the first one counts.
        let mut taken = HashSet::with_capacity(deliveries.len());
        for delivery in deliveries {
            let event_id = &delivery.message.event_id;
            if done.contains(event_id) || !taken.insert(event_id.clone()) {
                tracing::info!(event_id = %event_id, "event processed before; acknowledging without effects");
                processor.settle(delivery, Settled::Skipped).await;
            } else {
                fresh.push(delivery);
            }
        }
        Ok(fresh)
    }

    /// Leaves the group on every stream where this consumer holds nothing, so that stopped
    /// processes do not pile up in it; what it still holds is claimed by others.
    async fn leave_groups(&self) {
        let (group, consumer) = (&self.settings.group, &self.settings.consumer);
        for stream in &self.settings.streams {
            match self.broker.leave_group(group, consumer, stream).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(stream = %stream, "leaving entries pending for other consumers")
                }
                Err(err) => {
                    tracing::warn!(stream = %stream, error = %err, "cannot leave the group")
                }
            }
        }
    }

    async fn read(&self) -> Result<Vec<Delivery>, BrokerError> {
        self.broker
            .read_group(
                &self.settings.group,
                &self.settings.consumer,
                &self.settings.streams,
                self.settings.read_count,
                READ_BLOCK,
            )
            .await
    }

    /// Takes over entries that other (dead) consumers left pending too long.
    async fn claim(&self) -> Result<Vec<Delivery>, BrokerError> {
        let mut claimed = Vec::new();
        for stream in &self.settings.streams {
            let entries = self
                .broker
                .claim_idle(
                    &self.settings.group,
                    &self.settings.consumer,
                    stream,
                    self.settings.claim_idle,
                    self.settings.read_count,
                )
                .await?;
            if !entries.is_empty() {
                tracing::info!(stream = %stream, entries = entries.len(), "claimed idle pending entries");
            }
            claimed.extend(entries);
        }
        Ok(claimed)
    }
}

/// The lane for a delivery: by partition key when it has one, else by event id.
fn lane_of(delivery: &Delivery, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    match &delivery.message.partition_key {
        Some(key) => key.hash(&mut hasher),
        None => delivery.message.event_id.hash(&mut hasher),
    }
    (hasher.finish() % lanes as u64) as usize
}

/// Runs the handlers on one delivery and settles it: ack, or dead letter then ack.
struct Processor {
    dead_letters: Arc<dyn DeliveryStore>,
    handlers: Arc<[Arc<dyn Handler>]>,
    retry: RetryConfig,
    acks: mpsc::Sender<Settlement>,
    /// Entries dispatched to a lane and not yet settled.
    in_flight: Mutex<HashSet<InFlight>>,
}

/// An entry by stream and id: entry ids are unique within a stream only (Redis gives entries
/// added to two streams in the same millisecond the same id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InFlight(String, EntryId);

impl InFlight {
    fn of(delivery: &Delivery) -> Self {
        Self(delivery.message.stream.clone(), delivery.entry_id.clone())
    }
}

impl Processor {
    /// Records `entry` as in flight; false if it already is.
    fn admit(&self, entry: InFlight) -> bool {
        self.in_flight
            .lock()
            .map(|mut set| set.insert(entry))
            .unwrap_or(true)
    }

    /// Forgets `entry` once its lane is done with it.
    fn settled(&self, entry: &InFlight) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(entry);
        }
    }

    async fn process(&self, delivery: Delivery) {
        let stream = delivery.message.stream.clone();
        let event: Event = match serde_json::from_str::<Event>(&delivery.message.payload) {
            Ok(mut event) => {
                event.metadata.sequence = event.metadata.sequence.or(delivery.message.sequence);
                event
            }
            Err(err) => {
                let letter = DeadLetter::for_handler(
                    &delivery,
                    None,
                    format!("undecodable event: {err}"),
                    1,
                );
                return self.dead_letter(delivery, letter).await;
            }
        };
        let span = tracing::info_span!(
            "process",
            event_id = %event.id(),
            event_type = %event.event_type(),
            correlation_id = %event.metadata.correlation_id,
            trace_id = event.traceparent().and_then(trace_id).unwrap_or_default(),
            stream = %stream,
            delivery = delivery.delivery_count,
        );
        async {
            // A delivery beyond the attempt budget means earlier consumers died on this event.
            let budget = self.retry.max_retries.saturating_add(1);
            if delivery.delivery_count > budget {
                let error = format!("delivered {} times without being acknowledged", delivery.delivery_count - 1);
                let letter = DeadLetter::for_handler(&delivery, None, error, delivery.delivery_count - 1);
                return self.dead_letter(delivery, letter).await;
            }
            let started = Instant::now();
            for handler in self.handlers.iter() {
                let mut attempts = 0;
                let outcome = retry(&self.retry, || {
                    attempts += 1;
                    handler.handle(&event)
                })
                .await;
                if let Err(err) = outcome {
                    tracing::warn!(handler = handler.name(), attempts, error = %err, "handler failed for good");
                    let letter = DeadLetter::for_handler(&delivery, Some(handler.name()), err.to_string(), attempts);
                    return self.dead_letter(delivery, letter).await;
                }
            }
            metrics::event_consumed(&stream, started.elapsed());
            tracing::debug!("event processed");
            self.settle(delivery, Settled::Processed).await;
        }
        .instrument(span)
        .await
    }

    /// Adds the event to the dead-letter queue, then acknowledges it; if the queue cannot be
    /// written, the entry stays pending and is redelivered later.
    async fn dead_letter(&self, delivery: Delivery, letter: DeadLetter) {
        match self.dead_letters.add_dead_letter(&letter).await {
            Ok(()) => {
                tracing::error!(event_id = %letter.event_id, error = %letter.error, attempts = letter.attempts, "event dead-lettered");
                metrics::event_failed(&delivery.message.stream);
                self.settle(delivery, Settled::DeadLettered).await;
            }
            Err(err) => {
                tracing::error!(event_id = %letter.event_id, error = %err, "dead-lettering failed; the entry stays pending")
            }
        }
    }

    /// Hands a finished delivery to the acker.
    async fn settle(&self, delivery: Delivery, how: Settled) {
        // The acker outlives every lane; a closed channel only happens if it panicked.
        let _ = self.acks.send(Settlement { delivery, how }).await;
    }
}

/// How a delivery was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Every handler succeeded: record the event as processed, then acknowledge.
    Processed,
    /// Moved to the dead-letter queue: acknowledge.
    DeadLettered,
    /// Processed before: acknowledge.
    Skipped,
}

/// A finished delivery on its way to be acknowledged.
struct Settlement {
    delivery: Delivery,
    how: Settled,
}

/// Batches acknowledgements: records the processed events, then one XACK per stream for whatever
/// has accumulated. If the record fails, nothing of the batch is acknowledged: the entries are
/// claimed again later (at-least-once).
fn spawn_acker(
    broker: Arc<dyn Broker>,
    processed: Option<Arc<dyn EventStore>>,
    group: String,
) -> (mpsc::Sender<Settlement>, tokio::task::JoinHandle<()>) {
    let (acks, mut queue) = mpsc::channel::<Settlement>(4096);
    let task = tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            let mut by_stream: BTreeMap<String, Vec<EntryId>> = BTreeMap::new();
            let mut done_events = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(Settlement { delivery, how }) = next {
                if how == Settled::Processed {
                    done_events.push(delivery.message.event_id);
                }
                by_stream
                    .entry(delivery.message.stream)
                    .or_default()
                    .push(delivery.entry_id);
                taken += 1;
                next = if taken < 1000 {
                    queue.try_recv().ok()
                } else {
                    None
                };
            }
            if let Some(store) = &processed
                && !done_events.is_empty()
                && let Err(err) = retry(&SETTLE_RETRY, || {
                    store.record_processed(&group, &done_events)
                })
                .await
            {
                tracing::warn!(error = %err, entries = taken, "cannot record processed events; leaving them pending");
                continue;
            }
            for (stream, ids) in by_stream {
                if let Err(err) = retry(&SETTLE_RETRY, || broker.ack(&group, &stream, &ids)).await {
                    // Unacknowledged entries are redelivered after the claim timeout.
                    tracing::warn!(error = %err, entries = ids.len(), "ack failed");
                }
            }
        }
    });
    (acks, task)
}
