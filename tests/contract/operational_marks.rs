//! The contract of the operational marks of `DeliveryStore`: of processes raising (or lowering)
//! one mark at once, exactly one is told it did, which is what makes each operational event
//! published once.

use chrono::Utc;

use crate::Backend;

async fn a_mark_is_raised_and_lowered_by_exactly_one_of_many_callers(backend: Backend) {
    let store = &backend.deliveries;
    let name = backend.name;
    let key = format!("breaker/{}", backend.run);
    let raised_at = Utc::now();
    let raises: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.raise_mark(&key, 1, raised_at).await.unwrap() })
        })
        .collect();
    let mut raisers = 0;
    for raise in raises {
        raisers += usize::from(raise.await.unwrap());
    }
    assert_eq!(raisers, 1, "{name}");
    assert!(
        !store.raise_mark(&key, 2, Utc::now()).await.unwrap(),
        "{name}"
    );
    assert_eq!(
        store.raised_marks("breaker/").await.unwrap(),
        vec![key.clone()],
        "{name}"
    );
    assert!(
        store.raised_marks("failing/").await.unwrap().is_empty(),
        "{name}"
    );

    let clears: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.clear_mark(&key).await.unwrap() })
        })
        .collect();
    let mut lowered = Vec::new();
    for clear in clears {
        lowered.extend(clear.await.unwrap());
    }
    assert_eq!(lowered.len(), 1, "{name}: {lowered:?}");
    // The first raise's time, and every occurrence counted while it held.
    assert_eq!(
        lowered[0].raised_at.timestamp_micros(),
        raised_at.timestamp_micros(),
        "{name}"
    );
    assert_eq!(lowered[0].count, 10, "{name}");
    assert!(
        store.raised_marks("breaker/").await.unwrap().is_empty(),
        "{name}"
    );
    // Lowered, it can be raised again: a new happening.
    assert!(
        store.raise_mark(&key, 1, Utc::now()).await.unwrap(),
        "{name}"
    );
}

contract_tests!(a_mark_is_raised_and_lowered_by_exactly_one_of_many_callers);
