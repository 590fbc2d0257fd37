//! Retries with exponential backoff and jitter.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How often and how patiently to retry a failing operation.
///
/// ```
/// use std::time::Duration;
/// use eventflow::reliability::RetryConfig;
///
/// let config = RetryConfig {
///     max_retries: 3,
///     base_delay: Duration::from_secs(1),
///     max_delay: Duration::from_secs(60),
///     exponential_base: 2.0,
///     jitter: false,
/// };
/// assert_eq!(config.delay_before_retry(1), Duration::from_secs(1));
/// assert_eq!(config.delay_before_retry(3), Duration::from_secs(4));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt: 3 means up to four attempts.
    pub max_retries: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Growth factor of the delay per retry.
    pub exponential_base: f64,
    /// Randomise each delay within [delay/2, delay] so that retries of many clients spread out.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            exponential_base: 2.0,
            jitter: true,
        }
    }
}

impl RetryConfig {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(64) as i32;
        let factor = self.exponential_base.max(1.0).powi(exponent);
        // In f64 seconds first, so that no base or factor can overflow a Duration.
        let seconds = (self.base_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        let delay = Duration::try_from_secs_f64(seconds).unwrap_or(self.max_delay);
        if self.jitter {
            delay.mul_f64(0.5 + 0.5 * random_unit())
        } else {
            delay
        }
    }
}

/// Runs `operation` until it succeeds or `config.max_retries` retries have failed, sleeping the
/// backoff delay between attempts; returns the last error.
///
/// ```
/// # tokio_test_block(async {
/// use std::time::Duration;
/// use eventflow::reliability::{retry, RetryConfig};
///
/// let config = RetryConfig { base_delay: Duration::from_millis(1), ..RetryConfig::default() };
/// let mut calls = 0;
/// let result: Result<u32, &str> = retry(&config, || {
///     calls += 1;
///     let outcome = if calls < 3 { Err("not yet") } else { Ok(calls) };
///     async move { outcome }
/// })
/// .await;
/// assert_eq!(result, Ok(3));
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn retry<T, E, Fut, Op>(config: &RetryConfig, mut operation: Op) -> Result<T, E>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut retries = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) if retries >= config.max_retries => return Err(err),
            Err(_) => {
                retries += 1;
                tokio::time::sleep(config.delay_before_retry(retries)).await;
            }
        }
    }
}

/// A uniformly distributed number in [0, 1) from the standard library's randomly keyed hasher.
pub(crate) fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let config = RetryConfig {
            max_retries: 10,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
            exponential_base: 2.0,
            jitter: false,
        };
        let delays: Vec<_> = (1..=5)
            .map(|n| config.delay_before_retry(n).as_millis())
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let config = RetryConfig::default();
        for _ in 0..100 {
            let delay = config.delay_before_retry(2);
            assert!(
                delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2),
                "{delay:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries() {
        let config = RetryConfig::default();
        let mut attempts = 0;
        let result: Result<(), u32> = retry(&config, || {
            attempts += 1;
            let attempt = attempts;
            async move { Err(attempt) }
        })
        .await;
        assert_eq!(result, Err(4));
    }
}
