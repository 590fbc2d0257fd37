//! Reliability patterns shared by the worker and webhook delivery.

mod breaker;
mod retry;

pub use breaker::{BreakerConfig, BreakerError, BreakerState, CircuitBreaker};
pub use retry::{RetryConfig, retry};
