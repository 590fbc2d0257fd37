//! The webhook fan-out: the worker handler that turns each event into one delivery job per
//! matching subscription and hands the new jobs to the dispatcher.

use std::sync::Arc;

use async_trait::async_trait;

use super::job_writer::JobWriter;
use super::{DeliveryStore, Dispatcher, NewDelivery, PreparedEvent, SubscriptionDirectory};
use crate::events::Event;
use crate::worker::{Handler, HandlerError};

/// Creates the delivery jobs of each event; see the module documentation.
///
/// The jobs are stored before the event is acknowledged, so none is lost to a crash; a job is
/// unique per (event, subscription), so an event consumed twice is delivered once. The jobs of
/// ordered subscriptions were created as the event was stored (see [`super::ordered_jobs`]):
/// here they are only found, and sent if they are their key's head.
pub struct WebhookFanout {
    directory: Arc<SubscriptionDirectory>,
    jobs: JobWriter,
    dispatcher: Dispatcher,
}

impl WebhookFanout {
    /// A fan-out over `directory`'s subscriptions, storing jobs in `store`.
    pub fn new(
        directory: Arc<SubscriptionDirectory>,
        store: Arc<dyn DeliveryStore>,
        dispatcher: Dispatcher,
    ) -> Self {
        Self {
            directory,
            jobs: JobWriter::spawn(store),
            dispatcher,
        }
    }
}

#[async_trait]
impl Handler for WebhookFanout {
    fn name(&self) -> &str {
        "webhooks"
    }

    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let subscriptions = self.directory.all().await?;
        // A process with room sends new jobs at once, under a lease; a busy one leaves them due in
        // the store for whichever process has room.
        let sends_now = self.dispatcher.has_room();
        let due = if sends_now {
            self.dispatcher.lease_until()
        } else {
            chrono::Utc::now()
        };
        let jobs: Vec<NewDelivery> = subscriptions
            .iter()
            .filter(|stored| stored.subscription.enabled && stored.subscription.accepts(event))
            .map(|stored| NewDelivery::of(event, &stored.subscription, due))
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }
        let ready = self.jobs.create(jobs).await?;
        if ready.is_empty() || !sends_now {
            return Ok(());
        }
        let prepared = Arc::new(PreparedEvent::of(event)?);
        for job in ready {
            self.dispatcher.submit(job, prepared.clone());
        }
        Ok(())
    }
}
