//! Webhook delivery: subscriptions, the jobs that deliver each event to each matching
//! subscription, signed requests to vetted URLs, retries, circuit breakers, and the dead-letter
//! queue that keeps whatever could not be delivered (or processed) for inspection and retry.

mod client;
mod dead_letter;
mod directory;
mod dispatcher;
mod fanout;
mod job;
mod job_writer;
mod prepared;
mod recorder;
mod signing;
mod store;
mod subscription;
mod url_guard;

pub use client::{innermost_cause, install_crypto_provider};
pub use dead_letter::{DeadLetter, DeadLetterKind, DeadLetterPage, DeadLetterQuery};
pub use directory::SubscriptionDirectory;
pub use dispatcher::{Dispatcher, DispatcherSettings, DispatcherTasks};
pub use fanout::WebhookFanout;
pub use job::{AttemptPage, AttemptRecord, DeliveryAttempt, DeliveryJob, NewDelivery, NextStep};
pub use prepared::PreparedEvent;
pub use signing::{SecretError, SigningSecret};
pub use store::DeliveryStore;
pub use subscription::{
    PreviousSecret, StoredSubscription, Subscription, pattern_matches, validate_patterns,
};
pub use url_guard::{GuardError, is_public, vet_webhook_url};
