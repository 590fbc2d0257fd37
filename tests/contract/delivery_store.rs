//! The contract of `DeliveryStore`: subscriptions, one job per (event, subscription), leases,
//! recorded attempts and the dead-letter queue.

use chrono::Utc;
use eventflow::delivery::{
    AttemptRecord, CreatedJobs, DeadLetter, DeadLetterKind, DeadLetterQuery, DeliveryJob, Filters,
    NewDelivery, NextStep, PreviousSecret,
};
use serde_json::json;
use std::time::Duration;

use crate::{Backend, at, subscription};

fn handler_letter(event_id: &str) -> DeadLetter {
    DeadLetter {
        id: uuid::Uuid::now_v7().to_string(),
        kind: DeadLetterKind::Handler,
        event_id: event_id.into(),
        event_type: "user.created".into(),
        stream: "events:user".into(),
        subscription_id: None,
        delivery_id: None,
        handler: Some("audit".into()),
        ordering_key: None,
        error: "boom".into(),
        status_code: None,
        response_body: None,
        attempts: 4,
        failed_at: at(5),
        event: json!({"id": event_id, "type": "user.created"}),
    }
}

async fn delivery_store_keeps_subscriptions(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let mut stored = subscription("orders");
    store.insert_subscription(&stored).await.unwrap();
    let id = stored.subscription.id.clone();
    assert_eq!(
        store.subscription(&id).await.unwrap().as_ref(),
        Some(&stored),
        "{name}"
    );
    assert!(
        store.subscriptions().await.unwrap().contains(&stored),
        "{name}"
    );

    stored.subscription.name = "renamed".into();
    let filters = vec![
        json!({"exact": {"subject": "eu-1"}}),
        json!({"any": [{"sql": "data.total > 100"}, {"not": {"prefix": {"type": "x."}}}]}),
    ];
    stored.subscription.filters = Filters::compile(filters).unwrap();
    stored.secret = "another secret".into();
    // A rotation keeps the previous secret, with the end of its overlap.
    stored.previous = Some(PreviousSecret {
        secret: "whsec_dGVzdA==".into(),
        until: at(3600),
    });
    stored.subscription.updated_at = at(1);
    assert!(store.update_subscription(&stored).await.unwrap(), "{name}");
    assert_eq!(
        store.subscription(&id).await.unwrap(),
        Some(stored.clone()),
        "{name}"
    );
    let missing = subscription("missing");
    assert!(
        !store.update_subscription(&missing).await.unwrap(),
        "{name}"
    );

    // Only the call that disables it says so: one process reports the disable.
    assert!(
        store.disable_subscription(&id, "410 Gone").await.unwrap(),
        "{name}"
    );
    assert!(
        !store.disable_subscription(&id, "410 Gone").await.unwrap(),
        "{name}"
    );
    let disabled = store.subscription(&id).await.unwrap().unwrap().subscription;
    assert!(!disabled.enabled, "{name}");
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("410 Gone"),
        "{name}"
    );

    assert!(store.delete_subscription(&id).await.unwrap(), "{name}");
    assert!(!store.delete_subscription(&id).await.unwrap(), "{name}");
    assert_eq!(store.subscription(&id).await.unwrap(), None, "{name}");
}

async fn delivery_store_keeps_one_job_per_pair_leases_it_and_records_attempts(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let stored = subscription("jobs");
    store.insert_subscription(&stored).await.unwrap();
    let sub = stored.subscription.id.as_str();
    let (first, second) = (
        NewDelivery::new("evt-1", sub, at(60)),
        NewDelivery::new("evt-2", sub, at(60)),
    );
    let created = store
        .create_deliveries(&[first.clone(), second.clone()])
        .await;
    let created = created.unwrap();
    assert_eq!(
        created.created,
        [first.id.clone(), second.id.clone()],
        "{name}"
    );
    let ready: Vec<_> = created.ready.iter().map(|job| job.id.clone()).collect();
    assert_eq!(
        ready, created.created,
        "{name}: new unordered jobs are ready"
    );
    // An event consumed again creates no second job for the same subscription.
    let again = [
        NewDelivery::new("evt-1", sub, at(60)),
        NewDelivery::new("evt-2", sub, at(60)),
    ];
    assert_eq!(
        store.create_deliveries(&again).await.unwrap(),
        CreatedJobs::default(),
        "{name}"
    );

    // Leased to their creator until 60 s; due to anyone after that, once.
    assert!(
        store
            .claim_due(at(59), at(200), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    let mut claimed = store.claim_due(at(61), at(200), 10).await.unwrap();
    claimed.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let ids: Vec<_> = claimed.iter().map(|job| job.id.clone()).collect();
    assert_eq!(ids, [first.id.clone(), second.id.clone()], "{name}");
    assert!(
        store
            .claim_due(at(61), at(300), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );

    let letter = DeadLetter {
        id: uuid::Uuid::now_v7().to_string(),
        kind: DeadLetterKind::Webhook,
        subscription_id: Some(sub.into()),
        delivery_id: Some(second.id.clone()),
        status_code: Some(500),
        response_body: Some("boom".into()),
        handler: None,
        ..handler_letter("evt-2")
    };
    let record = |job: &DeliveryJob, status: u16, next: NextStep| AttemptRecord {
        job: job.clone(),
        attempt: 1,
        status_code: Some(status),
        latency: Duration::from_millis(3),
        error: Some(format!("endpoint answered {status}")),
        attempted_at: at(62),
        next,
    };
    let records = [
        record(&claimed[0], 503, NextStep::RetryAt(at(100))),
        record(
            &claimed[1],
            500,
            NextStep::DeadLetter(Box::new(letter.clone())),
        ),
    ];
    let recorded = store.record_attempts(&records, at(62)).await.unwrap();
    assert_eq!(
        recorded.recorded,
        [first.id.clone(), second.id.clone()],
        "{name}"
    );
    assert!(recorded.successors.is_empty(), "{name}");
    // A copy sent again after its lease ran out finds the job moved on: nothing recorded.
    let stale = store.record_attempts(&records[..1], at(62)).await.unwrap();
    assert!(stale.recorded.is_empty(), "{name}");
    let log = store.attempts(sub, None, None, 10).await.unwrap();
    assert_eq!(log.attempts.len(), 2, "{name}");
    assert_eq!(
        log.attempts[0].status_code,
        Some(500),
        "{name}: newest first"
    );
    assert_eq!(log.attempts[1].next_attempt_at, Some(at(100)), "{name}");
    assert_eq!(log.attempts[1].latency_ms, 3.0, "{name}");
    let page = store.attempts(sub, None, None, 1).await.unwrap();
    let rest = store
        .attempts(sub, None, page.next_cursor, 1)
        .await
        .unwrap();
    assert_eq!(rest.attempts[0].delivery_id, first.id, "{name}");
    assert_eq!(rest.next_cursor, None, "{name}");
    let of_first = store
        .attempts(sub, Some(&first.event_id), None, 10)
        .await
        .unwrap();
    let ids: Vec<_> = of_first.attempts.iter().map(|a| &a.delivery_id).collect();
    assert_eq!(ids, [&first.id], "{name}: one event's attempts");

    // The retry comes due at its time with its attempt count; postponing moves it.
    assert!(
        store
            .claim_due(at(99), at(400), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    store
        .postpone(&[(first.id.clone(), at(150))])
        .await
        .unwrap();
    assert!(
        store
            .claim_due(at(120), at(400), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    let retry = store.claim_due(at(150), at(400), 10).await.unwrap();
    assert_eq!(
        (retry[0].id.as_str(), retry[0].attempts),
        (first.id.as_str(), 1),
        "{name}"
    );

    // The dead letter comes back with a fresh budget when requeued, once.
    assert_eq!(store.dead_letter_count().await.unwrap(), 1, "{name}");
    assert_eq!(
        store.dead_letter(&letter.id).await.unwrap(),
        Some(letter.clone()),
        "{name}"
    );
    assert!(store.requeue_delivery(&letter).await.unwrap(), "{name}");
    assert!(!store.requeue_delivery(&letter).await.unwrap(), "{name}");
    assert_eq!(store.dead_letter_count().await.unwrap(), 0, "{name}");
    let requeued = store.claim_due(Utc::now(), at(500), 10).await.unwrap();
    assert_eq!(requeued.len(), 1, "{name}");
    assert_eq!(
        (requeued[0].id.as_str(), requeued[0].attempts),
        (second.id.as_str(), 0),
        "{name}"
    );

    // Retention takes the log but never a pending job.
    assert_eq!(
        store.prune_deliveries(at(10_000), 1000).await.unwrap(),
        2,
        "{name}"
    );
    assert!(
        store
            .attempts(sub, None, None, 10)
            .await
            .unwrap()
            .attempts
            .is_empty(),
        "{name}"
    );
    let pending = store.claim_due(Utc::now(), at(600), 10).await.unwrap();
    assert_eq!(pending.len(), 0, "{name}: both are leased, not deleted");
    assert_eq!(
        store.claim_due(at(501), at(600), 10).await.unwrap().len(),
        2,
        "{name}"
    );

    // Deleting the subscription takes its jobs and log along.
    assert!(store.delete_subscription(sub).await.unwrap(), "{name}");
    assert!(
        store
            .attempts(sub, None, None, 10)
            .await
            .unwrap()
            .attempts
            .is_empty(),
        "{name}"
    );
    assert!(
        store
            .claim_due(at(10_000), at(20_000), 10)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
}

async fn delivery_store_lists_filters_and_deletes_dead_letters(backend: Backend) {
    let store = &backend.deliveries;
    let name = &backend.name;
    let letters: Vec<_> = (0..3)
        .map(|n| handler_letter(&format!("evt-{n}")))
        .collect();
    for letter in &letters {
        store.add_dead_letter(letter).await.unwrap();
    }
    let query = |kind, limit, cursor| DeadLetterQuery {
        kind,
        limit,
        cursor,
        ..DeadLetterQuery::default()
    };
    let first = store.dead_letters(&query(None, 2, None)).await.unwrap();
    assert_eq!(first.letters, letters[..2], "{name}: oldest first");
    let rest = store
        .dead_letters(&query(None, 2, first.next_cursor))
        .await
        .unwrap();
    assert_eq!(
        (rest.letters.as_slice(), rest.next_cursor),
        (&letters[2..], None),
        "{name}"
    );
    let webhooks = query(Some(DeadLetterKind::Webhook), 10, None);
    let webhooks = store.dead_letters(&webhooks).await.unwrap();
    assert!(webhooks.letters.is_empty(), "{name}");
    let by_type = DeadLetterQuery {
        event_type: Some("user.created".into()),
        limit: 10,
        ..DeadLetterQuery::default()
    };
    assert_eq!(
        store.dead_letters(&by_type).await.unwrap().letters.len(),
        3,
        "{name}"
    );

    assert!(
        store.delete_dead_letter(&letters[1].id).await.unwrap(),
        "{name}"
    );
    assert!(
        !store.delete_dead_letter(&letters[1].id).await.unwrap(),
        "{name}"
    );
    assert_eq!(
        store.dead_letter(&letters[1].id).await.unwrap(),
        None,
        "{name}"
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 2, "{name}");
    assert_eq!(
        store.prune_deliveries(at(5), 1000).await.unwrap(),
        0,
        "{name}"
    );
    assert_eq!(
        store.prune_deliveries(at(6), 1000).await.unwrap(),
        2,
        "{name}"
    );
    assert_eq!(store.dead_letter_count().await.unwrap(), 0, "{name}");
}

contract_tests!(
    delivery_store_keeps_subscriptions,
    delivery_store_keeps_one_job_per_pair_leases_it_and_records_attempts,
    delivery_store_lists_filters_and_deletes_dead_letters,
);
