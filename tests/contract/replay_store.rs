//! The contract of `ReplayStore`: replays leased to one runner at a time, and their delivery jobs.

use eventflow::delivery::NewDelivery;
use eventflow::replay::{Replay, ReplayProgress, ReplayStatus};

use crate::{Backend, at, subscription};

fn replay_of(stream: &str, created: i64) -> Replay {
    Replay::queued(
        stream.into(),
        at(0),
        at(3600),
        vec!["order.*".into()],
        None,
        false,
        at(created),
    )
}

async fn replay_store_keeps_replays_and_leases_each_to_one_runner(backend: Backend) {
    let store = &backend.replays;
    let name = &backend.name;
    let first = replay_of("events:business", 1);
    let second = replay_of("events:user", 2);
    store.insert_replay(&first).await.unwrap();
    store.insert_replay(&second).await.unwrap();
    assert_eq!(
        store.replay(&first.id).await.unwrap().as_ref(),
        Some(&first),
        "{name}"
    );
    assert_eq!(store.replay("rpl_missing").await.unwrap(), None, "{name}");

    // Newest first, a page at a time.
    let page = store.replays(None, 1).await.unwrap();
    assert_eq!(page.replays, std::slice::from_ref(&second), "{name}");
    let rest = store.replays(page.next_cursor.as_deref(), 1).await.unwrap();
    assert_eq!(rest.replays, std::slice::from_ref(&first), "{name}");
    assert_eq!(rest.next_cursor, None, "{name}");

    // The oldest queued replay goes to one runner; the next to another.
    let taken = store.claim_replay("a", at(10), at(40)).await.unwrap();
    let taken = taken.expect("a queued replay");
    assert_eq!(
        (taken.id.as_str(), taken.status),
        (first.id.as_str(), ReplayStatus::Running),
        "{name}"
    );
    let other = store.claim_replay("b", at(10), at(40)).await.unwrap();
    assert_eq!(other.map(|r| r.id), Some(second.id.clone()), "{name}");
    assert!(
        store
            .claim_replay("c", at(20), at(50))
            .await
            .unwrap()
            .is_none(),
        "{name}"
    );

    // Progress is kept, and extends the lease, only for the holder.
    let progress = ReplayProgress {
        cursor: 42,
        matched: 10,
        replayed: 8,
        deliveries: 16,
    };
    assert!(
        store
            .advance_replay(&first.id, "a", &progress, &[], at(100))
            .await
            .unwrap(),
        "{name}"
    );
    assert!(
        !store
            .advance_replay(&first.id, "b", &progress, &[], at(100))
            .await
            .unwrap(),
        "{name}"
    );
    assert!(
        store
            .claim_replay("c", at(60), at(90))
            .await
            .unwrap()
            .map(|r| r.id)
            != Some(first.id.clone()),
        "{name}"
    );

    // A lease that ran out lets another runner take over from the saved position.
    let resumed = store.claim_replay("d", at(101), at(130)).await.unwrap();
    let resumed = resumed.expect("the replay whose lease ran out");
    assert_eq!(
        (resumed.id.as_str(), resumed.progress),
        (first.id.as_str(), progress),
        "{name}"
    );
    assert!(
        !store
            .advance_replay(&first.id, "a", &progress, &[], at(200))
            .await
            .unwrap(),
        "{name}"
    );

    let done = ReplayProgress {
        cursor: 50,
        ..progress
    };
    assert!(
        store
            .finish_replay(&first.id, "d", &done, ReplayStatus::Completed, None)
            .await
            .unwrap(),
        "{name}"
    );
    let finished = store.replay(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (finished.status, finished.progress),
        (ReplayStatus::Completed, done),
        "{name}"
    );
    assert!(finished.finished_at.is_some(), "{name}");
    // Finished is final: no runner takes it, no cancel changes it.
    assert!(
        store
            .claim_replay("e", at(10_000), at(10_030))
            .await
            .unwrap()
            .map(|r| r.id)
            != Some(first.id.clone()),
        "{name}"
    );
    let after_cancel = store.cancel_replay(&first.id).await.unwrap().unwrap();
    assert_eq!(after_cancel.status, ReplayStatus::Completed, "{name}");
    assert_eq!(
        store.cancel_replay("rpl_missing").await.unwrap(),
        None,
        "{name}"
    );
}

async fn replay_deliveries_are_their_own_jobs_and_cancelling_drops_the_pending_ones(
    backend: Backend,
) {
    let (deliveries, replays) = (&backend.deliveries, &backend.replays);
    let name = &backend.name;
    let stored = subscription("replayed");
    deliveries.insert_subscription(&stored).await.unwrap();
    let sub = stored.subscription.id.as_str();
    let replay = replay_of("events:business", 1);
    replays.insert_replay(&replay).await.unwrap();

    // One job per (event, subscription) live, and one more per replay.
    let live = NewDelivery::new("evt-r", sub, at(0));
    let replayed = NewDelivery::new("evt-r", sub, at(0)).for_replay(&replay.id);
    let again = NewDelivery::new("evt-r", sub, at(0)).for_replay(&replay.id);
    let created = deliveries
        .create_deliveries(&[live.clone(), replayed.clone(), again])
        .await
        .unwrap();
    assert_eq!(
        created.created,
        [live.id.clone(), replayed.id.clone()],
        "{name}"
    );
    let mut claimed = deliveries.claim_due(at(1), at(1), 10).await.unwrap();
    claimed.sort_by_key(|job| job.replay_id.is_some());
    let replay_ids: Vec<_> = claimed.iter().map(|job| job.replay_id.clone()).collect();
    assert_eq!(replay_ids, [None, Some(replay.id.clone())], "{name}");

    // A running replay records its jobs with its progress.
    let running = replays
        .claim_replay("a", at(1), at(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.id, replay.id, "{name}");
    let batch = [NewDelivery::new("evt-s", sub, at(0)).for_replay(&replay.id)];
    let progress = ReplayProgress {
        cursor: 7,
        matched: 1,
        replayed: 1,
        deliveries: 1,
    };
    assert!(
        replays
            .advance_replay(&replay.id, "a", &progress, &batch, at(100))
            .await
            .unwrap(),
        "{name}"
    );

    // Cancelling drops the replay's pending jobs, never a live one, and its runner can
    // create no more.
    let cancelled = replays.cancel_replay(&replay.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, ReplayStatus::Cancelled, "{name}");
    let due: Vec<_> = deliveries
        .claim_due(at(2), at(3), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(due, std::slice::from_ref(&live.id), "{name}");
    let late = [NewDelivery::new("evt-t", sub, at(0)).for_replay(&replay.id)];
    assert!(
        !replays
            .advance_replay(&replay.id, "a", &progress, &late, at(100))
            .await
            .unwrap(),
        "{name}"
    );
    // Only the live job is left (due again after its lease).
    assert!(
        deliveries
            .claim_due(at(10_000), at(10_001), 10)
            .await
            .unwrap()
            .iter()
            .all(|job| job.replay_id.is_none()),
        "{name}"
    );
    assert!(
        replays
            .claim_replay("a", at(5), at(9))
            .await
            .unwrap()
            .is_none(),
        "{name}"
    );
}

contract_tests!(
    replay_store_keeps_replays_and_leases_each_to_one_runner,
    replay_deliveries_are_their_own_jobs_and_cancelling_drops_the_pending_ones,
);
