//! The library's reliability patterns through their public API: the circuit breaker's
//! transitions under paused time.

use std::time::Duration;

use eventflow::reliability::{BreakerConfig, BreakerError, BreakerState, CircuitBreaker};

fn breaker() -> CircuitBreaker {
    CircuitBreaker::new(BreakerConfig {
        failure_threshold: 3,
        recovery_timeout: Duration::from_secs(30),
        half_open_max_calls: 2,
    })
}

async fn fail(breaker: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    breaker.call(|| async { Err("down") }).await
}

async fn succeed(breaker: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    breaker.call(|| async { Ok(()) }).await
}

/// Opens the circuit with `failure_threshold` failures in a row.
async fn trip(breaker: &CircuitBreaker) {
    for _ in 0..3 {
        fail(breaker).await.unwrap_err();
    }
}

#[tokio::test(start_paused = true)]
async fn opens_after_consecutive_failures_only() {
    let breaker = breaker();
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    succeed(&breaker).await.unwrap();
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "a success resets the count"
    );
    assert_eq!(fail(&breaker).await, Err(BreakerError::Failed("down")));
    assert_eq!(breaker.state(), BreakerState::Open);

    let mut called = false;
    let refused = breaker
        .call(|| {
            called = true;
            async { Ok::<_, &str>(()) }
        })
        .await;
    assert_eq!(
        refused,
        Err(BreakerError::Open {
            retry_in: Duration::from_secs(30)
        })
    );
    assert!(!called, "an open circuit does not call");
}

#[tokio::test(start_paused = true)]
async fn half_open_trials_close_or_reopen() {
    let breaker = breaker();
    trip(&breaker).await;
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(matches!(
        succeed(&breaker).await,
        Err(BreakerError::Open { retry_in }) if retry_in == Duration::from_secs(1)
    ));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    // A failed trial opens it again for a full recovery timeout.
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(30)).await;

    // `half_open_max_calls` successful trials close it.
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(BreakerState::HalfOpen.as_metric(), 2.0);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_a_bounded_number_of_concurrent_trials() {
    let breaker = breaker();
    trip(&breaker).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    let (release, wait) = tokio::sync::watch::channel(false);
    let slow_trial = || {
        let mut wait = wait.clone();
        async move {
            wait.wait_for(|go| *go).await.ok();
            Ok::<_, &str>(())
        }
    };
    let first = breaker.call(slow_trial);
    let second = breaker.call(slow_trial);
    let third = async {
        tokio::task::yield_now().await;
        let refused = succeed(&breaker).await;
        release.send(true).ok();
        refused
    };
    let (first, second, third) = tokio::join!(first, second, third);
    assert!(
        matches!(third, Err(BreakerError::Open { retry_in }) if retry_in < Duration::from_secs(1)),
        "a third trial waits briefly: {third:?}"
    );
    first.unwrap();
    second.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_trial_frees_its_slot() {
    let breaker = breaker();
    trip(&breaker).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    let hung = breaker.call(std::future::pending::<Result<(), &str>>);
    let timed_out = tokio::time::timeout(Duration::from_secs(1), hung).await;
    assert!(timed_out.is_err());
    succeed(&breaker).await.unwrap();
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}
