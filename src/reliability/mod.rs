//! Reliability patterns shared by the worker and webhook delivery.

mod retry;

pub use retry::{RetryConfig, retry};
