//! Logs, metrics and correlation ids.

pub mod logging;
pub mod metrics;
