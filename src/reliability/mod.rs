//! Reliability patterns shared by the worker and webhook delivery.

mod breaker;
mod retry;

pub use breaker::{
    BreakerBoard, BreakerConfig, BreakerError, BreakerState, BreakerTransition, CircuitBreaker,
};
pub(crate) use retry::random_unit;
pub use retry::{RetryConfig, retry};
