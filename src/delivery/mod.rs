//! Webhook delivery: how deliveries are signed, and which webhook URLs may be called.

mod signing;
mod url_guard;

pub use signing::{SecretError, SigningSecret};
pub use url_guard::{GuardError, is_public, vet_webhook_url};
