//! Webhook delivery: subscriptions, the jobs that deliver each event to each matching
//! subscription, signed requests to vetted URLs, retries, circuit breakers, and the dead-letter
//! queue that keeps whatever could not be delivered (or processed) for inspection and retry.

mod capacity;
mod client;
mod content_mode;
mod dead_letter;
mod directory;
mod dispatcher;
mod fanout;
mod filter;
mod job;
mod job_writer;
mod ordering;
mod pace;
mod prepared;
mod recorder;
mod signing;
mod static_headers;
mod store;
mod subscription;
mod url_guard;

pub use capacity::{CapacityClaim, CapacityHolder, grant_capacity};
pub use client::{innermost_cause, install_crypto_provider};
pub use content_mode::ContentMode;
pub use dead_letter::{DeadLetter, DeadLetterKind, DeadLetterPage, DeadLetterQuery};
pub use directory::SubscriptionDirectory;
pub use dispatcher::{Dispatcher, DispatcherSettings, DispatcherTasks};
pub use fanout::WebhookFanout;
pub use filter::{FilterError, Filters};
pub use job::{
    AttemptPage, AttemptRecord, CreatedJobs, DeliveryAttempt, DeliveryJob, NewDelivery, NextStep,
    RecordedAttempts,
};
pub use ordering::{
    DeliveryOrdering, KeyState, OrderingKey, ordered_jobs, ordering_key, promotions,
};
pub use pace::{Admission, PaceBoard, Permit};
pub use prepared::PreparedEvent;
pub use signing::{SecretError, SigningSecret};
pub use static_headers::{MAX_HEADERS, StaticHeaders};
pub use store::{BlockedKeys, DeliveryStore};
pub use subscription::{
    DEFAULT_MAX_IN_FLIGHT, PreviousSecret, StoredSubscription, Subscription, pattern_matches,
    validate_patterns,
};
pub use url_guard::{GuardError, is_public, vet_webhook_url};
