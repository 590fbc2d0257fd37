//! A circuit breaker: after repeated failures, stop calling a dependency for a while, then let a
//! few trial calls through before trusting it again.
//!
//! ```
//! use std::time::Duration;
//! use eventflow::reliability::{BreakerConfig, BreakerError, CircuitBreaker};
//!
//! # tokio_test_block(async {
//! let breaker = CircuitBreaker::new(BreakerConfig {
//!     failure_threshold: 5,
//!     recovery_timeout: Duration::from_secs(30),
//!     half_open_max_calls: 3,
//! });
//! let reply = breaker.call(|| async { Ok::<_, std::io::Error>("pong") }).await;
//! assert_eq!(reply.unwrap(), "pong");
//!
//! for _ in 0..5 {
//!     let _ = breaker.call(|| async { Err::<(), _>("connection refused") }).await;
//! }
//! // Open: calls are refused without reaching the dependency, with the time left to wait.
//! match breaker.call(|| async { Ok::<_, &str>(()) }).await {
//!     Err(BreakerError::Open { retry_in }) => assert!(retry_in <= Duration::from_secs(30)),
//!     other => panic!("expected an open circuit, got {other:?}"),
//! }
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How soon a call refused because every half-open trial slot is taken may try again.
const TRIAL_SLOT_WAIT: Duration = Duration::from_millis(100);

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before trial calls are let through.
    pub recovery_timeout: Duration,
    /// Trial calls let through at once while half-open; that many successes close the circuit.
    pub half_open_max_calls: u32,
}

/// The state of a breaker, as exported in `eventflow_circuit_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the recovery timeout has passed.
    Open,
    /// A few trial calls go through; the next outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// The name shown by the API: `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The metric value: 0 closed, 1 open, 2 half-open.
    pub fn as_metric(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// A change of a breaker's state that a call caused: what operators are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerTransition {
    /// The call's failure opened the circuit (the threshold was reached, or a trial failed).
    Opened,
    /// The call was the last trial needed: the circuit is closed again.
    Closed,
}

/// Why a call through the breaker did not succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BreakerError<E> {
    /// The circuit is open (or every trial slot is taken): the call was not made.
    #[error("circuit open; retry in {retry_in:?}")]
    Open {
        /// How long until a call may go through.
        retry_in: Duration,
    },
    /// The call was made and failed.
    #[error(transparent)]
    Failed(E),
}

#[derive(Debug)]
enum Phase {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `round` tells trials of this half-open period from late ones of an earlier period.
    HalfOpen {
        round: u64,
        in_flight: u32,
        successes: u32,
    },
}

/// The circuit breakers of one process, one per key (a subscription): the dispatcher sends
/// through them and the API shows their state. Clones share the breakers.
#[derive(Debug, Clone)]
pub struct BreakerBoard {
    config: BreakerConfig,
    breakers: Arc<Mutex<HashMap<String, Arc<CircuitBreaker>>>>,
}

impl BreakerBoard {
    /// A board whose breakers are made with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            breakers: Arc::default(),
        }
    }

    /// The breaker of `key`, made closed on first use.
    pub fn breaker(&self, key: &str) -> Arc<CircuitBreaker> {
        self.lock()
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(CircuitBreaker::new(self.config)))
            .clone()
    }

    /// How its breakers open and recover.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The state of `key`'s breaker; `None` when this process has not used it.
    pub fn state(&self, key: &str) -> Option<BreakerState> {
        self.lock().get(key).map(|breaker| breaker.state())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<CircuitBreaker>>> {
        self.breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A circuit breaker; see the module documentation. Share it (`Arc`) among the callers of one
/// dependency.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Mutex<Phase>,
    /// Half-open periods so far.
    rounds: std::sync::atomic::AtomicU64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                half_open_max_calls: config.half_open_max_calls.max(1),
                ..config
            },
            phase: Mutex::new(Phase::Closed { failures: 0 }),
            rounds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The current state (an open breaker whose timeout has passed reads as half-open).
    pub fn state(&self) -> BreakerState {
        match *self.phase() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Runs `operation` if the circuit lets it through, and records its outcome.
    pub async fn call<T, E, Fut, Op>(&self, operation: Op) -> Result<T, BreakerError<E>>
    where
        Op: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_reporting(operation).await.0
    }

    /// [`CircuitBreaker::call`], also saying whether this call opened or closed the circuit:
    /// of the calls settled while the breaker is in one phase, exactly one changes it.
    pub async fn call_reporting<T, E, Fut, Op>(
        &self,
        operation: Op,
    ) -> (Result<T, BreakerError<E>>, Option<BreakerTransition>)
    where
        Op: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let trial = match self.admit() {
            Ok(trial) => trial,
            Err(retry_in) => return (Err(BreakerError::Open { retry_in }), None),
        };
        let mut pending = Outcome {
            breaker: self,
            trial,
            recorded: false,
        };
        let result = operation().await;
        let transition = pending.record(result.is_ok());
        (result.map_err(BreakerError::Failed), transition)
    }

    /// Lets a call through (with its half-open round when it is a trial), or says how long to
    /// wait.
    fn admit(&self) -> Result<Option<u64>, Duration> {
        let mut phase = self.phase();
        match *phase {
            Phase::Closed { .. } => Ok(None),
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                let round = self
                    .rounds
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                *phase = Phase::HalfOpen {
                    round,
                    in_flight: 1,
                    successes: 0,
                };
                Ok(Some(round))
            }
            Phase::HalfOpen {
                round,
                ref mut in_flight,
                ..
            } => {
                if *in_flight >= self.config.half_open_max_calls {
                    return Err(TRIAL_SLOT_WAIT);
                }
                *in_flight += 1;
                Ok(Some(round))
            }
        }
    }

    /// Records the outcome of an admitted call (`None` when it was abandoned, cancelled), and
    /// returns the transition it caused.
    fn settle(&self, trial: Option<u64>, success: Option<bool>) -> Option<BreakerTransition> {
        let mut phase = self.phase();
        let next = match (&mut *phase, success) {
            (Phase::Closed { failures }, Some(true)) => {
                *failures = 0;
                None
            }
            (Phase::Closed { failures }, Some(false)) => {
                *failures += 1;
                (*failures >= self.config.failure_threshold).then(|| self.opened())
            }
            (Phase::HalfOpen { round, .. }, Some(false)) if trial == Some(*round) => {
                Some(self.opened())
            }
            (
                Phase::HalfOpen {
                    round,
                    in_flight,
                    successes,
                },
                outcome,
            ) if trial == Some(*round) => {
                *in_flight = in_flight.saturating_sub(1);
                if outcome == Some(true) {
                    *successes += 1;
                }
                (*successes >= self.config.half_open_max_calls)
                    .then_some(Phase::Closed { failures: 0 })
            }
            // A late outcome of a call admitted in an earlier phase, or an abandoned call.
            _ => None,
        };
        let next = next?;
        let transition = match next {
            Phase::Open { .. } => BreakerTransition::Opened,
            Phase::Closed { .. } | Phase::HalfOpen { .. } => BreakerTransition::Closed,
        };
        *phase = next;
        Some(transition)
    }

    fn opened(&self) -> Phase {
        Phase::Open {
            until: Instant::now() + self.config.recovery_timeout,
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // The phase is always valid: a panic while it was held cannot leave it half-written.
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Settles an admitted call exactly once, also when its future is dropped mid-way.
struct Outcome<'a> {
    breaker: &'a CircuitBreaker,
    trial: Option<u64>,
    recorded: bool,
}

impl Outcome<'_> {
    fn record(&mut self, success: bool) -> Option<BreakerTransition> {
        self.recorded = true;
        self.breaker.settle(self.trial, Some(success))
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            // An abandoned call changes no phase: it neither failed nor succeeded.
            let _ = self.breaker.settle(self.trial, None);
        }
    }
}
