//! Webhook delivery: what subscribers receive and how it is signed.

mod signing;

pub use signing::{SecretError, SigningSecret};
