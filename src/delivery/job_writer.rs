//! Group commit of new delivery jobs: the jobs of the events a worker handles at the same time are
//! created in one statement, instead of one transaction per event.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{DeliveryJob, DeliveryStore, NewDelivery};
use crate::store::StoreError;

/// Most jobs created in one batch.
const MAX_BATCH: usize = 1000;

/// Why jobs could not be created (shared by every request of a batch).
pub type CreateError = Arc<StoreError>;

/// The caller's jobs now pending under its due time (see [`super::CreatedJobs::ready`]), or why
/// none was created.
type Reply = Result<Vec<DeliveryJob>, CreateError>;

/// One caller's jobs, waiting for the next batch.
struct Request {
    jobs: Vec<NewDelivery>,
    reply: oneshot::Sender<Reply>,
}

/// Creates delivery jobs in batches; cheap to clone.
#[derive(Clone)]
pub struct JobWriter {
    requests: mpsc::Sender<Request>,
}

impl JobWriter {
    /// Starts the writer of `store`; it stops when the last clone is dropped.
    pub fn spawn(store: Arc<dyn DeliveryStore>) -> Self {
        let (requests, queue) = mpsc::channel(MAX_BATCH);
        tokio::spawn(write_batches(store, queue));
        Self { requests }
    }

    /// Creates the jobs whose (event, subscription) pair has none yet; returns those of them, and
    /// of their ordered counterparts created as the event was stored, that are ready to send.
    pub async fn create(&self, jobs: Vec<NewDelivery>) -> Reply {
        let (reply, created) = oneshot::channel();
        let closed = || Arc::new(StoreError::Unavailable(sqlx::Error::PoolClosed));
        self.requests
            .send(Request { jobs, reply })
            .await
            .map_err(|_| closed())?;
        created.await.map_err(|_| closed())?
    }
}

/// Takes what has queued up (while the previous batch was written) and creates it at once.
async fn write_batches(store: Arc<dyn DeliveryStore>, mut queue: mpsc::Receiver<Request>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = first.jobs.clone();
        let mut requests = vec![first];
        while jobs.len() < MAX_BATCH
            && let Ok(request) = queue.try_recv()
        {
            jobs.extend(request.jobs.iter().cloned());
            requests.push(request);
        }
        let created = store.create_deliveries(&jobs).await.map_err(Arc::new);
        for request in requests {
            let reply = match &created {
                Ok(created) => {
                    let asked: HashSet<(&str, &str, Option<&str>)> =
                        request.jobs.iter().map(pair).collect();
                    Ok(created
                        .ready
                        .iter()
                        .filter(|job| asked.contains(&job_pair(job)))
                        .cloned()
                        .collect())
                }
                Err(err) => Err(err.clone()),
            };
            // A caller that gave up waiting does not need its answer.
            let _ = request.reply.send(reply);
        }
    }
}

/// The (event, subscription, replay) a new job is for.
fn pair(job: &NewDelivery) -> (&str, &str, Option<&str>) {
    (
        &job.event_id,
        &job.subscription_id,
        job.replay_id.as_deref(),
    )
}

/// The (event, subscription, replay) a job is for.
fn job_pair(job: &DeliveryJob) -> (&str, &str, Option<&str>) {
    (
        &job.event_id,
        &job.subscription_id,
        job.replay_id.as_deref(),
    )
}
