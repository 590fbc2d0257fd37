//! The contract of `Broker`: Redis Streams semantics (one group member per entry, in order), claims
//! of idle entries, blocking reads, ranges and trimming.

use chrono::Utc;
use eventflow::broker::EntryId;
use std::time::Duration;

use crate::{Backend, message};

async fn broker_delivers_each_entry_to_one_group_member_in_order(backend: Backend) {
    let broker = &backend.broker;
    let stream = backend.stream("events:user");
    broker.ensure_group(&stream, "g").await.unwrap();
    broker.ensure_group(&stream, "g").await.unwrap();
    let ids = broker
        .publish(&[
            message(&stream, "a"),
            message(&stream, "b"),
            message(&stream, "c"),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.windows(2)
            .all(|w| w[0] < w[1] || w[0].0.len() < w[1].0.len()),
        "{}",
        backend.name
    );
    assert_eq!(
        broker.stream_len(&stream).await.unwrap(),
        3,
        "{}",
        backend.name
    );
    assert_eq!(
        broker.lag("g", &stream).await.unwrap(),
        3,
        "{}",
        backend.name
    );

    let first = broker
        .read_group("g", "c1", std::slice::from_ref(&stream), 2, Duration::ZERO)
        .await
        .unwrap();
    let second = broker
        .read_group("g", "c2", std::slice::from_ref(&stream), 10, Duration::ZERO)
        .await
        .unwrap();
    let events: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|d| d.message.event_id.as_str())
        .collect();
    assert_eq!(
        events,
        ["a", "b", "c"],
        "{}: each entry once, in order",
        backend.name
    );
    assert_eq!(
        first[0].message,
        message(&stream, "a"),
        "{}: message round-trips",
        backend.name
    );
    assert!(
        first.iter().all(|d| d.delivery_count == 1),
        "{}",
        backend.name
    );
    assert_eq!(
        broker.lag("g", &stream).await.unwrap(),
        0,
        "{}",
        backend.name
    );
    assert_eq!(
        broker.pending("g", &stream).await.unwrap(),
        3,
        "{}",
        backend.name
    );

    let acked = broker
        .ack("g", &stream, &[first[0].entry_id.clone()])
        .await
        .unwrap();
    assert_eq!(acked, 1, "{}", backend.name);
    assert_eq!(
        broker
            .ack("g", &stream, &[first[0].entry_id.clone()])
            .await
            .unwrap(),
        0,
        "{}",
        backend.name
    );
    assert_eq!(
        broker.pending("g", &stream).await.unwrap(),
        2,
        "{}",
        backend.name
    );

    // Another group sees every entry independently.
    broker.ensure_group(&stream, "other").await.unwrap();
    let all = broker
        .read_group(
            "other",
            "x",
            std::slice::from_ref(&stream),
            10,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "{}", backend.name);

    let empty = broker
        .read_group("g", "c1", std::slice::from_ref(&stream), 10, Duration::ZERO)
        .await
        .unwrap();
    assert!(empty.is_empty(), "{}", backend.name);
}

async fn broker_claims_idle_entries_and_counts_deliveries(backend: Backend) {
    let broker = &backend.broker;
    let stream = backend.stream("events:system");
    broker.ensure_group(&stream, "g").await.unwrap();
    broker
        .publish(&[message(&stream, "a"), message(&stream, "b")])
        .await
        .unwrap();
    let taken = broker
        .read_group(
            "g",
            "dead",
            std::slice::from_ref(&stream),
            10,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);

    let too_soon = broker
        .claim_idle("g", "alive", &stream, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(
        too_soon.is_empty(),
        "{}: not idle long enough",
        backend.name
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let claimed = broker
        .claim_idle("g", "alive", &stream, Duration::from_millis(20), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{}: count bounds the claim", backend.name);
    assert_eq!(claimed[0].message.event_id, "a");
    assert_eq!(claimed[0].delivery_count, 2, "{}", backend.name);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let again = broker
        .claim_idle("g", "alive", &stream, Duration::from_millis(20), 10)
        .await
        .unwrap();
    let counts: Vec<_> = again
        .iter()
        .map(|d| (d.message.event_id.as_str(), d.delivery_count))
        .collect();
    assert_eq!(counts, [("a", 3), ("b", 2)], "{}", backend.name);
    let ids: Vec<EntryId> = again.iter().map(|d| d.entry_id.clone()).collect();
    broker.ack("g", &stream, &ids).await.unwrap();
    assert_eq!(
        broker.pending("g", &stream).await.unwrap(),
        0,
        "{}",
        backend.name
    );
}

async fn broker_blocks_until_an_entry_arrives_and_ranges_without_delivering(backend: Backend) {
    let broker = backend.broker.clone();
    let stream = backend.stream("events:business");
    broker.ensure_group(&stream, "g").await.unwrap();
    let reader = {
        let (broker, stream) = (broker.clone(), stream.clone());
        tokio::spawn(async move {
            broker
                .read_group("g", "c", &[stream], 10, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    broker.publish(&[message(&stream, "late")]).await.unwrap();
    let delivered = reader.await.unwrap().unwrap();
    assert_eq!(delivered.len(), 1, "{}", backend.name);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{}: woke on publish",
        backend.name
    );

    let idle = broker
        .read_group(
            "g",
            "c",
            std::slice::from_ref(&stream),
            10,
            Duration::from_millis(50),
        )
        .await
        .unwrap();
    assert!(idle.is_empty(), "{}: times out empty", backend.name);

    broker.publish(&[message(&stream, "more")]).await.unwrap();
    let all = broker.range(&stream, None, 10).await.unwrap();
    assert_eq!(all.len(), 2, "{}", backend.name);
    let after = broker.range(&stream, Some(&all[0].0), 10).await.unwrap();
    assert_eq!(after.len(), 1, "{}", backend.name);
    assert_eq!(after[0].1.event_id, "more");
    assert_eq!(
        broker.pending("g", &stream).await.unwrap(),
        1,
        "{}: range delivers nothing",
        backend.name
    );

    assert!(
        !broker.leave_group("g", "c", &stream).await.unwrap(),
        "{}: a consumer holding an entry stays",
        backend.name
    );
    assert_eq!(broker.pending("g", &stream).await.unwrap(), 1);
    let held = broker
        .claim_idle("g", "c", &stream, Duration::ZERO, 10)
        .await
        .unwrap();
    broker
        .ack("g", &stream, &[held[0].entry_id.clone()])
        .await
        .unwrap();
    assert!(
        broker.leave_group("g", "c", &stream).await.unwrap(),
        "{}: a consumer holding nothing leaves",
        backend.name
    );

    let missing = broker
        .read_group("nope", "c", &[stream], 1, Duration::ZERO)
        .await;
    assert!(missing.is_err(), "{}: unknown group", backend.name);
    broker.ping().await.unwrap();
}

async fn broker_trims_what_retention_no_longer_needs(backend: Backend) {
    let broker = &backend.broker;
    let name = &backend.name;
    let stream = backend.stream("events:trim");
    broker.ensure_group(&stream, "g").await.unwrap();
    let entries = [
        message(&stream, "a"),
        message(&stream, "b"),
        message(&stream, "c"),
    ];
    broker.publish(&entries).await.unwrap();
    let read = broker
        .read_group("g", "c1", std::slice::from_ref(&stream), 2, Duration::ZERO)
        .await
        .unwrap();
    broker
        .ack("g", &stream, &[read[0].entry_id.clone()])
        .await
        .unwrap();
    let past = Utc::now() - chrono::Duration::hours(1);
    let future = Utc::now() + chrono::Duration::minutes(1);
    if name.ends_with("redis") {
        // By time: the entries added before the cutoff.
        assert_eq!(broker.trim(&stream, past, 1000).await.unwrap(), 0, "{name}");
        assert_eq!(
            broker.trim(&stream, future, 1000).await.unwrap(),
            3,
            "{name}"
        );
    } else {
        // The entries whose events are no longer in the store (none was stored here),
        // except the one still pending.
        let trimmed = broker.trim(&stream, future, 1000).await.unwrap();
        assert_eq!(trimmed, 2, "{name}");
        assert_eq!(broker.stream_len(&stream).await.unwrap(), 1, "{name}");
    }
}

contract_tests!(
    broker_delivers_each_entry_to_one_group_member_in_order,
    broker_claims_idle_entries_and_counts_deliveries,
    broker_blocks_until_an_entry_arrives_and_ranges_without_delivering,
    broker_trims_what_retention_no_longer_needs,
);
