//! The dispatcher: sends delivery jobs, schedules retries, and records every attempt.
//!
//! A job reaches it two ways: straight from the fan-out that created it (already leased to this
//! process, so it goes out at once), or from the store once due (a retry whose time has come, or
//! a job whose process died and whose lease ran out). Each job is sent by a task of its own, so a
//! slow endpoint only slows its own deliveries: each job first waits for its endpoint's pace (a
//! hold it asked for, its rate limit and its requests in flight, shared by every process; see
//! [`super::PaceBoard`]), and an endpoint's circuit breaker opens when it keeps failing, after
//! which its jobs wait without spending attempts. A process holds at most [`MAX_HELD`] jobs; beyond that, new jobs
//! stay in the store, due, for whichever process has room. Outcomes are written to the store in
//! batches by one recorder task, each only if the job is still in the state it was sent in.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::client::{Failure, WebhookClient, WebhookRequest};
use super::dead_letter::{MAX_RESPONSE_BODY, new_id, truncate};
use super::prepared::PreparedEvent;
use super::recorder::{RECORD_BATCH, Record, Successors, record};
use super::{
    Admission, AttemptRecord, DeadLetter, DeadLetterKind, DeliveryJob, DeliveryStore, NextStep,
    PaceBoard, SigningSecret, Subscription, SubscriptionDirectory,
};
use crate::events::trace::trace_id;
use crate::insights::Tally;
use crate::observability::metrics;
use crate::operations::{DisabledBy, OperationalEvent, Operations, is_operational};
use crate::reliability::{BreakerBoard, BreakerError, RetryConfig, random_unit};
use crate::store::EventStore;

/// How often due jobs are looked for in the store.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Most jobs claimed from the store at once.
const CLAIM_BATCH: usize = 256;
/// Jobs this process holds (sending or waiting to send) beyond which it takes no more.
const MAX_HELD: usize = 2048;
/// Requests in flight at once, over all endpoints.
const MAX_SENDING: usize = 512;
/// Longest a job waits in this process for its endpoint's pace before it goes back to the store.
const PACE_PATIENCE: Duration = Duration::from_secs(5);
/// Shortest wait of a job put off without an attempt (a jitter of up to half as much is added),
/// so that a backlog of jobs for a busy or broken endpoint does not churn through the store.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// How long a job waits when the store cannot say what to do with it.
const STORE_WAIT: Duration = Duration::from_secs(2);
/// How long the jobs of a disabled subscription wait before they look again.
const DISABLED_WAIT: Duration = Duration::from_secs(60);

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Attempts and backoff (MAX_RETRIES, RETRY_BASE_DELAY, RETRY_MAX_DELAY).
    pub retry: RetryConfig,
    /// Each subscription's circuit breaker (BREAKER_*), shared with the API of this process.
    pub breakers: BreakerBoard,
    /// Connect and total timeout of a request (WEBHOOK_TIMEOUT_MS).
    pub timeout: Duration,
    /// Whether endpoints may be on non-public addresses.
    pub allow_private: bool,
    /// Names this process in the endpoints' shared capacity (its consumer name).
    pub process: String,
    /// Where disables, breaker changes, dead letters and recoveries are reported.
    pub operations: Operations,
    /// Where recorded attempts are counted, per subscription, for the insights.
    pub counts: Tally,
}

/// Hands jobs to the dispatcher; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// The dispatcher's background tasks, to wait for at shutdown.
pub struct DispatcherTasks {
    poller: JoinHandle<()>,
    recorder: JoinHandle<()>,
    deliveries: TaskTracker,
    stop_recording: CancellationToken,
    stop_pacing: CancellationToken,
    timeout: Duration,
}

impl DispatcherTasks {
    /// Waits for the deliveries in flight (after `shutdown` was cancelled), then for their
    /// outcomes to be recorded.
    pub async fn finished(self) {
        self.poller.await.ok();
        self.deliveries.close();
        // Requests under way end within their timeout; jobs not yet sent give their lease back.
        let deadline = self.timeout + Duration::from_secs(5);
        if tokio::time::timeout(deadline, self.deliveries.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "deliveries still under way at shutdown; their jobs come due again after their lease"
            );
        }
        self.stop_pacing.cancel();
        self.stop_recording.cancel();
        self.recorder.await.ok();
    }
}

struct Inner {
    store: Arc<dyn DeliveryStore>,
    events: Arc<dyn EventStore>,
    directory: Arc<SubscriptionDirectory>,
    client: WebhookClient,
    settings: DispatcherSettings,
    /// How long a job claimed for sending stays away from other processes.
    lease: Duration,
    /// Each endpoint's pace in this process.
    paces: PaceBoard,
    sending: Semaphore,
    records: mpsc::Sender<Record>,
    deliveries: TaskTracker,
    /// Cancelled when the process stops: jobs not yet sent are given back.
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// Starts the dispatcher: it claims due jobs until `shutdown`.
    pub fn spawn(
        store: Arc<dyn DeliveryStore>,
        events: Arc<dyn EventStore>,
        directory: Arc<SubscriptionDirectory>,
        settings: DispatcherSettings,
        shutdown: CancellationToken,
    ) -> Result<(Self, DispatcherTasks), reqwest::Error> {
        let client = WebhookClient::new(settings.timeout, settings.allow_private)?;
        let (records, queue) = mpsc::channel(4 * RECORD_BATCH);
        let stop_recording = CancellationToken::new();
        let deliveries = TaskTracker::new();
        // Claims on endpoints' capacity go once the requests in flight have ended.
        let stop_pacing = CancellationToken::new();
        let paces = PaceBoard::spawn(store.clone(), &settings.process, stop_pacing.clone());
        let inner = Arc::new(Inner {
            store: store.clone(),
            events,
            directory,
            client,
            // Long enough for requests that wait for a free slot and then time out.
            lease: settings.timeout * 3 + Duration::from_secs(30),
            settings,
            paces,
            sending: Semaphore::new(MAX_SENDING),
            records,
            deliveries: deliveries.clone(),
            shutdown: shutdown.clone(),
        });
        let successors = Arc::new(Handoff(Arc::downgrade(&inner)));
        let recorder = tokio::spawn(record(
            store,
            queue,
            successors,
            inner.settings.operations.clone(),
            inner.settings.counts.clone(),
            stop_recording.clone(),
        ));
        let poller = tokio::spawn(poll(inner.clone(), shutdown));
        let tasks = DispatcherTasks {
            poller,
            recorder,
            deliveries,
            stop_recording,
            stop_pacing,
            timeout: inner.settings.timeout,
        };
        Ok((Self { inner }, tasks))
    }

    /// Until when a job created now is leased to this process.
    pub fn lease_until(&self) -> DateTime<Utc> {
        Utc::now() + self.inner.lease
    }

    /// True while this process can take more jobs; otherwise new jobs are left due in the store.
    pub fn has_room(&self) -> bool {
        self.inner.deliveries.len() < MAX_HELD && !self.inner.shutdown.is_cancelled()
    }

    /// Sends a job leased to this process, now.
    pub fn submit(&self, job: DeliveryJob, event: Arc<PreparedEvent>) {
        let inner = self.inner.clone();
        // After shutdown the job stays leased and comes due again when the lease runs out.
        self.inner
            .deliveries
            .spawn(deliver_in_span(inner, job, event));
    }
}

/// Claims due jobs from the store until `shutdown`.
async fn poll(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut backlog = false;
    loop {
        // After a full claim there is likely more due: claim again at once.
        if !backlog {
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        } else if shutdown.is_cancelled() {
            return;
        }
        // A busy process leaves due jobs to the others.
        let room = MAX_HELD
            .saturating_sub(inner.deliveries.len())
            .min(CLAIM_BATCH);
        backlog = false;
        if room == 0 {
            continue;
        }
        let now = Utc::now();
        let jobs = match inner
            .store
            .claim_due(now, now + inner.lease, room as u32)
            .await
        {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(error = %err, "cannot claim due deliveries");
                continue;
            }
        };
        backlog = jobs.len() == room;
        inner.dispatch_claimed(jobs);
    }
}

/// Hands the recorder's successors (jobs that became their key's head) back to the dispatcher,
/// without keeping it alive.
struct Handoff(Weak<Inner>);

impl Successors for Handoff {
    fn lease(&self) -> Option<DateTime<Utc>> {
        let inner = self.0.upgrade()?;
        let room = inner.deliveries.len() < MAX_HELD && !inner.shutdown.is_cancelled();
        room.then(|| Utc::now() + inner.lease)
    }

    fn send(&self, jobs: Vec<DeliveryJob>) {
        if let Some(inner) = self.0.upgrade() {
            inner.dispatch_claimed(jobs);
        }
    }
}

impl Inner {
    /// Sends jobs leased to this process: the jobs of one event (live, or of one replay) share
    /// one load of it.
    fn dispatch_claimed(self: &Arc<Self>, jobs: Vec<DeliveryJob>) {
        let mut by_event: HashMap<(String, Option<String>), Vec<DeliveryJob>> = HashMap::new();
        for job in jobs {
            let key = (job.event_id.clone(), job.replay_id.clone());
            by_event.entry(key).or_default().push(job);
        }
        for ((event_id, replay_id), jobs) in by_event {
            let inner = self.clone();
            self.deliveries.spawn(async move {
                inner
                    .deliver_claimed(&event_id, replay_id.as_deref(), jobs)
                    .await
            });
        }
    }

    /// Loads the event of jobs claimed from the store (all live, or all of one replay), then
    /// delivers each.
    async fn deliver_claimed(
        self: &Arc<Self>,
        event_id: &str,
        replay_id: Option<&str>,
        jobs: Vec<DeliveryJob>,
    ) {
        let event = match self.events.get(event_id).await {
            Ok(Some(event)) => match replay_id {
                None => PreparedEvent::of(&event),
                Some(replay_id) => PreparedEvent::replayed(&event, replay_id),
            }
            .map_err(|err| format!("unencodable event: {err}")),
            Ok(None) => Err("the event is no longer stored".to_string()),
            Err(err) => {
                tracing::warn!(error = %err, event_id, "cannot load the event to deliver");
                for job in jobs {
                    self.put_off(job, STORE_WAIT).await;
                }
                return;
            }
        };
        match event {
            Ok(event) => {
                let event = Arc::new(event);
                for job in jobs {
                    let inner = self.clone();
                    let event = event.clone();
                    self.deliveries.spawn(deliver_in_span(inner, job, event));
                }
            }
            Err(reason) => {
                for job in jobs {
                    self.give_up(job, None, &reason).await;
                }
            }
        }
    }

    /// Makes one attempt at `job` (or puts it off) and records what happened.
    async fn deliver(&self, job: DeliveryJob, event: &PreparedEvent) {
        let stored = match self.directory.get(&job.subscription_id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                let reason = "the subscription no longer exists";
                return self.give_up(job, Some(event), reason).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, delivery = %job.id, "cannot load the subscription");
                return self.put_off(job, STORE_WAIT).await;
            }
        };
        let subscription = &stored.subscription;
        // Paused (or disabled after a 410): the job waits, without attempts, until it is enabled.
        if !subscription.enabled {
            return self.put_off(job, DISABLED_WAIT).await;
        }
        let secrets: Result<Vec<SigningSecret>, _> = stored
            .signing_secrets(Utc::now())
            .map(SigningSecret::parse)
            .collect();
        let secrets = match secrets {
            Ok(secrets) => secrets,
            Err(err) => {
                return self
                    .give_up(job, Some(event), &format!("not sent: {err}"))
                    .await;
            }
        };
        let _permit = match self.paces.admit(subscription, PACE_PATIENCE).await {
            Admission::Go(permit) => permit,
            Admission::Wait(wait) => return self.put_off(job, wait).await,
        };
        let _permit = self.sending.acquire().await;
        if self.shutdown.is_cancelled() {
            // Not sent: give the job back to be taken at once by a process still running.
            return self.record(Record::Postpone(job.id, Utc::now())).await;
        }
        let breaker = self.settings.breakers.breaker(&subscription.id);
        let attempted_at = Utc::now();
        let started = Instant::now();
        let (outcome, transition) = breaker
            .call_reporting(|| async {
                self.client
                    .send(WebhookRequest {
                        url: &subscription.webhook_url,
                        webhook_id: &job.id,
                        secrets: &secrets,
                        encoding: event.encoding(subscription.content_mode),
                        static_headers: subscription.headers.pairs(),
                        correlation_id: &event.correlation_id,
                        traceparent: event.traceparent.as_deref(),
                        replay_id: event.replay_id.as_deref(),
                    })
                    .await
            })
            .await;
        let latency = started.elapsed();
        metrics::circuit_breaker_state(&subscription.id, breaker.state());
        let reportable = !is_operational(&event.event_type);
        if let Some(transition) = transition.filter(|_| reportable) {
            let config = self.settings.breakers.config();
            self.settings
                .operations
                .breaker_changed(subscription, transition, config);
        }
        let attempt = job.attempts + 1;
        let (status_code, error, next) = match outcome {
            Err(BreakerError::Open { retry_in }) => return self.put_off(job, retry_in).await,
            Ok(status) => (Some(status), None, NextStep::Delivered),
            Err(BreakerError::Failed(failure)) => {
                let next = self
                    .after_failure(subscription, &job, event, attempt, &failure)
                    .await;
                (failure.status, Some(failure.error), next)
            }
        };
        metrics::webhook_attempt(&job.subscription_id, outcome_label(&next), latency);
        tracing::debug!(delivery = %job.id, event_id = %event.event_id, attempt, status = ?status_code, "webhook attempt");
        self.record(Record::Attempt {
            attempt: AttemptRecord {
                job,
                attempt,
                status_code,
                latency,
                error,
                attempted_at,
                next,
            },
            reportable,
        })
        .await;
    }

    /// What follows a failed attempt: a retry, or the dead-letter queue (410 Gone also disables
    /// the subscription).
    async fn after_failure(
        &self,
        subscription: &Subscription,
        job: &DeliveryJob,
        event: &PreparedEvent,
        attempt: u32,
        failure: &Failure,
    ) -> NextStep {
        let retry = &self.settings.retry;
        if failure.status == Some(410) {
            let reason = "the endpoint answered 410 Gone";
            tracing::warn!(subscription = %job.subscription_id, "{reason}; disabling the subscription");
            match self
                .store
                .disable_subscription(&subscription.id, reason)
                .await
            {
                Ok(true) if !is_operational(&event.event_type) => {
                    self.settings
                        .operations
                        .publish(OperationalEvent::subscription_disabled(
                            subscription,
                            DisabledBy::Endpoint,
                            reason,
                            &job.id,
                        ));
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "cannot disable the subscription"),
            }
            self.directory.invalidate();
            let error = format!("{reason}: subscription disabled");
            return dead_letter(job, Some(event), error, Some(failure), attempt);
        }
        if attempt > retry.max_retries {
            tracing::warn!(delivery = %job.id, attempts = attempt, error = %failure.error, "delivery failed for good");
            return dead_letter(
                job,
                Some(event),
                failure.error.clone(),
                Some(failure),
                attempt,
            );
        }
        // Retry-After is honoured up to RETRY_MAX_DELAY, and never sooner than the backoff; it
        // holds every delivery to the endpoint, in every process, until then.
        let backoff = retry.delay_before_retry(attempt);
        let asked = failure.retry_after.unwrap_or_default().min(retry.max_delay);
        if matches!(failure.status, Some(429 | 503)) && !asked.is_zero() {
            self.hold(&job.subscription_id, Utc::now() + asked).await;
        }
        let wait = backoff.max(asked);
        tracing::warn!(delivery = %job.id, attempt, status = failure.status, error = %failure.error, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; retrying");
        NextStep::RetryAt(Utc::now() + wait)
    }

    /// Holds every delivery to a subscription until `until`: at once in this process, within a
    /// second in the others (through the subscription).
    async fn hold(&self, subscription_id: &str, until: DateTime<Utc>) {
        self.paces.hold(subscription_id, until);
        match self.store.hold_subscription(subscription_id, until).await {
            Ok(()) => self.directory.invalidate(),
            Err(err) => tracing::warn!(error = %err, "cannot hold the subscription in the store"),
        }
    }

    /// Sends a job to the dead-letter queue without an attempt (nothing can be sent).
    async fn give_up(&self, job: DeliveryJob, event: Option<&PreparedEvent>, reason: &str) {
        tracing::warn!(delivery = %job.id, reason, "delivery abandoned");
        let next = dead_letter(&job, event, reason.to_string(), None, job.attempts);
        metrics::webhook_attempt(&job.subscription_id, outcome_label(&next), Duration::ZERO);
        let reportable = event.is_none_or(|event| !is_operational(&event.event_type));
        self.record(Record::Attempt {
            attempt: AttemptRecord {
                attempt: job.attempts,
                status_code: None,
                latency: Duration::ZERO,
                error: Some(reason.to_string()),
                attempted_at: Utc::now(),
                next,
                job,
            },
            reportable,
        })
        .await;
    }

    /// Puts a job off without an attempt, for at least `wait` (and [`MIN_WAIT`]), with jitter.
    async fn put_off(&self, job: DeliveryJob, wait: Duration) {
        let wait = wait.max(MIN_WAIT);
        let due = Utc::now() + wait + wait.mul_f64(0.5 * random_unit());
        self.record(Record::Postpone(job.id, due)).await;
    }

    async fn record(&self, record: Record) {
        // The recorder outlives every delivery task.
        let _ = self.records.send(record).await;
    }
}

/// Makes one attempt at `job` with every log line about it carrying its delivery, event,
/// subscription, correlation id and trace id.
async fn deliver_in_span(inner: Arc<Inner>, job: DeliveryJob, event: Arc<PreparedEvent>) {
    let span = tracing::info_span!(
        "deliver",
        delivery = %job.id,
        event_id = %event.event_id,
        subscription = %job.subscription_id,
        correlation_id = %event.correlation_id,
        trace_id = event.traceparent.as_deref().and_then(trace_id).unwrap_or_default(),
    );
    inner.deliver(job, &event).instrument(span).await
}

/// The step that puts a job in the dead-letter queue.
fn dead_letter(
    job: &DeliveryJob,
    event: Option<&PreparedEvent>,
    error: String,
    failure: Option<&Failure>,
    attempts: u32,
) -> NextStep {
    NextStep::DeadLetter(Box::new(DeadLetter {
        id: new_id(),
        kind: DeadLetterKind::Webhook,
        event_id: job.event_id.clone(),
        event_type: event.map(|e| e.event_type.clone()).unwrap_or_default(),
        stream: event.map(|e| e.stream.clone()).unwrap_or_default(),
        subscription_id: Some(job.subscription_id.clone()),
        delivery_id: Some(job.id.clone()),
        handler: None,
        ordering_key: job.ordering_key.clone(),
        error,
        status_code: failure.and_then(|f| f.status),
        response_body: failure
            .and_then(|f| f.body.as_deref())
            .map(|b| truncate(b, MAX_RESPONSE_BODY).to_string()),
        attempts,
        failed_at: Utc::now(),
        event: event.map_or(serde_json::Value::Null, PreparedEvent::structured),
    }))
}

/// The `outcome` label of `eventflow_webhook_deliveries_total`.
fn outcome_label(next: &NextStep) -> &'static str {
    match next {
        NextStep::Delivered => "delivered",
        NextStep::RetryAt(_) => "retry",
        NextStep::DeadLetter(_) => "dead_lettered",
    }
}
