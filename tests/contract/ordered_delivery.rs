//! The contract of ordered delivery and pace in `DeliveryStore` (and `EventStore`'s jobs created
//! at ingest): one pending head per (subscription, key), the next job of a key promoted only when
//! the head is delivered or dead-lettered, the shared rate-limit reservations, capacity shares
//! and holds.

use chrono::{Duration as TimeDelta, Utc};
use eventflow::delivery::{
    AttemptRecord, CapacityClaim, DeadLetter, DeadLetterKind, DeliveryJob, NewDelivery, NextStep,
};
use serde_json::json;
use std::time::Duration;

use crate::{Backend, at, event, subscription};

/// An attempt at `job` (its next attempt number) that ends in `next`.
fn attempt(job: &DeliveryJob, next: NextStep) -> AttemptRecord {
    AttemptRecord {
        job: job.clone(),
        attempt: job.attempts + 1,
        status_code: Some(if matches!(next, NextStep::Delivered) {
            200
        } else {
            500
        }),
        latency: Duration::from_millis(2),
        error: None,
        attempted_at: at(1),
        next,
    }
}

/// The dead letter ending `job`, as the dispatcher writes it.
fn dead_letter(job: &DeliveryJob) -> DeadLetter {
    DeadLetter {
        id: uuid::Uuid::now_v7().to_string(),
        kind: DeadLetterKind::Webhook,
        event_id: job.event_id.clone(),
        event_type: "order.created".into(),
        stream: "events:order".into(),
        subscription_id: Some(job.subscription_id.clone()),
        delivery_id: Some(job.id.clone()),
        handler: None,
        ordering_key: job.ordering_key.clone(),
        error: "endpoint answered 500".into(),
        status_code: Some(500),
        response_body: None,
        attempts: job.attempts + 1,
        failed_at: at(1),
        event: json!({"id": job.event_id}),
    }
}

/// The ids of `jobs`, sorted.
fn ids(jobs: &[DeliveryJob]) -> Vec<String> {
    let mut ids: Vec<String> = jobs.iter().map(|job| job.id.clone()).collect();
    ids.sort();
    ids
}

/// The ids of `jobs`, sorted.
fn new_ids(jobs: &[&NewDelivery]) -> Vec<String> {
    let mut ids: Vec<String> = jobs.iter().map(|job| job.id.clone()).collect();
    ids.sort();
    ids
}

async fn ordered_jobs_go_one_at_a_time_per_key(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let stored = subscription("ordered");
    store.insert_subscription(&stored).await.unwrap();
    let sub = stored.subscription.id.as_str();
    let job = |event: &str, key: Option<&str>| {
        let job = NewDelivery::new(event, sub, at(10));
        match key {
            Some(key) => job.ordered_by(key),
            None => job,
        }
    };
    let (a1, a2, a3) = (
        job("a-1", Some("a")),
        job("a-2", Some("a")),
        job("a-3", Some("a")),
    );
    let (b1, free) = (job("b-1", Some("b")), job("free", None));
    let all = [a1.clone(), a2.clone(), a3.clone(), b1.clone(), free.clone()];
    let created = store.create_deliveries(&all).await.unwrap();
    assert_eq!(created.created.len(), 5, "{name}");
    assert_eq!(
        ids(&created.ready),
        new_ids(&[&a1, &b1, &free]),
        "{name}: the head of each key and the unordered job are ready, later jobs queue"
    );

    let claimed = store.claim_due(at(11), at(100), 10).await.unwrap();
    assert_eq!(ids(&claimed), new_ids(&[&a1, &b1, &free]), "{name}");
    let head = claimed.iter().find(|job| job.id == a1.id).unwrap();
    assert_eq!(head.ordering_key.as_deref(), Some("a"), "{name}");
    assert!(
        store.blocked_keys(Some(sub)).await.unwrap().is_empty(),
        "{name}: a head not yet tried blocks nothing"
    );

    // A head that fails keeps its key: its later jobs stay queued, and the key counts as blocked.
    let others = claimed.iter().filter(|job| job.id != a1.id);
    let mut records = vec![attempt(head, NextStep::RetryAt(at(150)))];
    records.extend(others.map(|job| attempt(job, NextStep::Delivered)));
    let retry = store.record_attempts(&records, at(1)).await.unwrap();
    assert_eq!(retry.recorded.len(), 3, "{name}");
    assert!(
        retry.successors.is_empty(),
        "{name}: key b had nothing queued"
    );
    let blocked = store.blocked_keys(Some(sub)).await.unwrap();
    assert_eq!(blocked.len(), 1, "{name}");
    assert_eq!(
        (blocked[0].subscription_id.as_str(), blocked[0].keys),
        (sub, 1)
    );
    assert!(blocked[0].oldest_head_since <= Utc::now(), "{name}");
    assert_eq!(store.blocked_keys(None).await.unwrap(), blocked, "{name}");
    assert!(
        store
            .claim_due(at(120), at(200), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}: nothing of key a goes before its head's retry"
    );

    // A lease that runs out gives the head back, never a later job of its key.
    let first_copy = store.claim_due(at(150), at(160), 10).await.unwrap();
    assert_eq!(ids(&first_copy), new_ids(&[&a1]), "{name}");
    let again = store.claim_due(at(161), at(200), 10).await.unwrap();
    assert_eq!(
        ids(&again),
        new_ids(&[&a1]),
        "{name}: the head again, after its lease"
    );
    assert_eq!(again[0].attempts, 1, "{name}");

    // Delivered: the next job of the key becomes head, due when the caller says.
    let delivered = store
        .record_attempts(&[attempt(&again[0], NextStep::Delivered)], at(170))
        .await
        .unwrap();
    assert_eq!(ids(&delivered.successors), new_ids(&[&a2]), "{name}");
    assert_eq!(delivered.successors[0].attempts, 0, "{name}");
    assert!(
        store.blocked_keys(Some(sub)).await.unwrap().is_empty(),
        "{name}"
    );
    assert!(
        store
            .claim_due(at(169), at(300), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    let second = store.claim_due(at(170), at(300), 10).await.unwrap();
    assert_eq!(ids(&second), new_ids(&[&a2]), "{name}");

    // Dead-lettered: the key goes on without it, and the letter names the key it broke.
    let letter = dead_letter(&second[0]);
    let dead = store
        .record_attempts(
            &[attempt(
                &second[0],
                NextStep::DeadLetter(Box::new(letter.clone())),
            )],
            at(200),
        )
        .await
        .unwrap();
    assert_eq!(ids(&dead.successors), new_ids(&[&a3]), "{name}");
    let kept = store.dead_letter(&letter.id).await.unwrap().unwrap();
    assert_eq!(kept.ordering_key.as_deref(), Some("a"), "{name}");

    // Retried from the DLQ, it comes back unordered, beside the key's new head.
    assert!(store.requeue_delivery(&letter).await.unwrap(), "{name}");
    let late = store.claim_due(at(250), at(400), 10).await.unwrap();
    assert_eq!(ids(&late), new_ids(&[&a2, &a3]), "{name}");
    let requeued = late.iter().find(|job| job.id == a2.id).unwrap();
    assert_eq!(
        (requeued.ordering_key.as_deref(), requeued.attempts),
        (None, 0)
    );
    let head = late.iter().find(|job| job.id == a3.id).unwrap();
    assert_eq!(head.ordering_key.as_deref(), Some("a"), "{name}");
}

async fn releasing_ordering_frees_every_queued_job(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let stored = subscription("released");
    store.insert_subscription(&stored).await.unwrap();
    let sub = stored.subscription.id.as_str();
    let jobs: Vec<NewDelivery> = (0..3)
        .map(|n| NewDelivery::new(&format!("c-{n}"), sub, at(10)).ordered_by("c"))
        .collect();
    store.create_deliveries(&jobs).await.unwrap();
    assert_eq!(store.claim_due(at(11), at(11), 10).await.unwrap().len(), 1);

    store.release_ordering(sub).await.unwrap();
    let claimed = store.claim_due(at(12), at(100), 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        new_ids(&jobs.iter().collect::<Vec<_>>()),
        "{name}"
    );
    assert!(
        claimed.iter().all(|job| job.ordering_key.is_none()),
        "{name}: released jobs go out independently"
    );
}

async fn jobs_created_with_their_events_are_handed_to_the_consumer(backend: Backend) {
    let name = &backend.name;
    let stored = subscription("at ingest");
    backend
        .deliveries
        .insert_subscription(&stored)
        .await
        .unwrap();
    let sub = stored.subscription.id.as_str();
    let events = vec![
        event("order.created", "/shop", "k-1", 1),
        event("order.created", "/shop", "k-2", 2),
    ];
    let jobs: Vec<NewDelivery> = events
        .iter()
        .map(|event| NewDelivery::new(event.id(), sub, Utc::now()).ordered_by("k"))
        .collect();
    let outcomes = backend
        .store
        .append_with_deliveries(events.clone(), &jobs)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2, "{name}");
    // Stored again, the events keep the jobs they had.
    let again: Vec<NewDelivery> = events
        .iter()
        .map(|event| NewDelivery::new(event.id(), sub, Utc::now()).ordered_by("k"))
        .collect();
    backend
        .store
        .append_with_deliveries(events.clone(), &again)
        .await
        .unwrap();

    // The consumer of the stream asks for the same pairs, with a lease: it is handed the head
    // that exists already, and creates nothing.
    let lease = Utc::now() + TimeDelta::seconds(60);
    let consumed: Vec<NewDelivery> = events
        .iter()
        .map(|event| NewDelivery::new(event.id(), sub, lease).ordered_by("k"))
        .collect();
    let created = backend
        .deliveries
        .create_deliveries(&consumed)
        .await
        .unwrap();
    assert!(created.created.is_empty(), "{name}");
    assert_eq!(ids(&created.ready), [jobs[0].id.clone()], "{name}");
    assert!(
        backend
            .deliveries
            .claim_due(Utc::now(), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}: the head is leased to that consumer, the second event still queued"
    );
}

async fn rate_limit_reservations_follow_each_other(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let tenth = TimeDelta::milliseconds(100);
    assert_eq!(
        store.reserve_pace("s-1", 3, tenth, at(0)).await.unwrap(),
        at(0)
    );
    let next = store.reserve_pace("s-1", 1, tenth, at(0)).await.unwrap();
    assert_eq!(
        next,
        at(0) + TimeDelta::milliseconds(300),
        "{name}: after the first run"
    );
    assert_eq!(
        store.reserve_pace("s-1", 1, tenth, at(10)).await.unwrap(),
        at(10),
        "{name}: an idle endpoint starts from now"
    );
    assert_eq!(
        store.reserve_pace("s-2", 1, tenth, at(0)).await.unwrap(),
        at(0),
        "{name}: each endpoint has its own pace"
    );
}

async fn capacity_is_shared_fairly_and_leases_expire(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let claim = |holder: &'static str, held: u32, wanted: u32, now: i64| CapacityClaim {
        subscription_id: "cap",
        holder,
        limit: 10,
        held,
        in_use: 0,
        wanted,
        now: at(now),
        lease_until: at(now + 10),
    };
    let negotiate = |claim| async move { store.negotiate_capacity(&claim).await.unwrap() };
    assert_eq!(
        negotiate(claim("a", 0, 10, 0)).await,
        10,
        "{name}: alone, a gets all"
    );
    assert_eq!(
        negotiate(claim("b", 0, 10, 0)).await,
        0,
        "{name}: nothing is free"
    );
    assert_eq!(
        negotiate(claim("a", 10, 10, 1)).await,
        5,
        "{name}: b is short"
    );
    assert_eq!(
        negotiate(claim("b", 0, 10, 1)).await,
        5,
        "{name}: the fair share"
    );

    store.release_capacity("a").await.unwrap();
    assert_eq!(
        negotiate(claim("b", 5, 10, 2)).await,
        10,
        "{name}: a stopped"
    );
    assert_eq!(
        negotiate(claim("c", 0, 10, 3)).await,
        0,
        "{name}: b holds it all"
    );
    assert_eq!(
        negotiate(claim("b", 10, 10, 4)).await,
        5,
        "{name}: c is short"
    );
    assert_eq!(
        negotiate(claim("c", 0, 10, 5)).await,
        5,
        "{name}: the fair share"
    );
    // A holder whose lease ran out counts no more.
    assert_eq!(
        negotiate(claim("b", 5, 10, 20)).await,
        10,
        "{name}: c's lease ran out"
    );
}

async fn holds_only_ever_move_later(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let stored = subscription("held");
    store.insert_subscription(&stored).await.unwrap();
    let id = stored.subscription.id.as_str();
    let held = || async {
        store
            .subscription(id)
            .await
            .unwrap()
            .unwrap()
            .subscription
            .held_until
    };
    assert_eq!(held().await, None, "{name}");
    store.hold_subscription(id, at(50)).await.unwrap();
    assert_eq!(held().await, Some(at(50)), "{name}");
    store.hold_subscription(id, at(20)).await.unwrap();
    assert_eq!(held().await, Some(at(50)), "{name}: a later hold stays");
    store.hold_subscription(id, at(80)).await.unwrap();
    assert_eq!(held().await, Some(at(80)), "{name}");
}

contract_tests!(
    ordered_jobs_go_one_at_a_time_per_key,
    releasing_ordering_frees_every_queued_job,
    jobs_created_with_their_events_are_handed_to_the_consumer,
    rate_limit_reservations_follow_each_other,
    capacity_is_shared_fairly_and_leases_expire,
    holds_only_ever_move_later,
);
