//! The contract every `EventStore` (with its `DeliveryStore`) and every `Broker` implementation
//! passes: the same tests, run against the embedded SQLite store and broker, and against
//! PostgreSQL and Redis when the test services are configured.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use eventflow::broker::{Broker, EmbeddedBroker, EntryId, RedisBroker, StreamMessage};
use eventflow::delivery::{
    AttemptRecord, DeadLetter, DeadLetterKind, DeadLetterQuery, DeliveryJob, DeliveryStore,
    NewDelivery, NextStep, PreviousSecret, StoredSubscription, Subscription,
};
use eventflow::events::{Event, EventBuilder, StreamRouter};
use eventflow::replay::{Replay, ReplayProgress, ReplayStatus, ReplayStore};
use eventflow::sqlite::SqliteDb;
use eventflow::store::{
    AppendOutcome, EventQuery, EventStore, PgStore, SqliteStore, TimeRange, TypeFilter,
};
use serde_json::json;
use tempfile::TempDir;

mod common;
use common::services;

/// One backend under test; the directory lives as long as it.
struct Backend {
    name: String,
    store: Arc<dyn EventStore>,
    deliveries: Arc<dyn DeliveryStore>,
    replays: Arc<dyn ReplayStore>,
    broker: Arc<dyn Broker>,
    /// Makes stream names unique to this backend instance: tests share one Redis.
    run: String,
    _dir: TempDir,
}

impl Backend {
    /// `name`, made unique to this test.
    fn stream(&self, name: &str) -> String {
        format!("{name}:{}", self.run)
    }
}

/// The embedded backends, and PostgreSQL and Redis when the test services are configured (paired
/// with an embedded counterpart when only one of them is).
async fn backends() -> Vec<Backend> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&format!("sqlite://{}/contract.db", dir.path().display()))
        .await
        .unwrap();
    let mut all = vec![Backend {
        name: "sqlite+embedded".into(),
        store: Arc::new(SqliteStore::new(db.clone())),
        deliveries: Arc::new(SqliteStore::new(db.clone())),
        replays: Arc::new(SqliteStore::new(db.clone())),
        broker: Arc::new(EmbeddedBroker::new(db.clone())),
        run: run.clone(),
        _dir: dir,
    }];
    let postgres = services::postgres_url().await;
    let redis = services::redis_url().await;
    if postgres.is_none() && redis.is_none() {
        return all;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&format!("sqlite://{}/contract.db", dir.path().display()))
        .await
        .unwrap();
    type Stores = (
        Arc<dyn EventStore>,
        Arc<dyn DeliveryStore>,
        Arc<dyn ReplayStore>,
    );
    let (store_name, (store, deliveries, replays)): (_, Stores) = match postgres {
        Some(url) => {
            let store = PgStore::connect_lazy(&url).unwrap();
            store.migrate().await.unwrap();
            let stores: Stores = (
                Arc::new(store.clone()),
                Arc::new(store.clone()),
                Arc::new(store),
            );
            ("postgres", stores)
        }
        None => {
            let store = SqliteStore::new(db.clone());
            let stores: Stores = (
                Arc::new(store.clone()),
                Arc::new(store.clone()),
                Arc::new(store),
            );
            ("sqlite", stores)
        }
    };
    let (broker_name, broker): (_, Arc<dyn Broker>) = match redis {
        Some(url) => (
            "redis",
            Arc::new(RedisBroker::connect_lazy(&url, 100_000).unwrap()),
        ),
        None => ("embedded", Arc::new(EmbeddedBroker::new(db))),
    };
    all.push(Backend {
        name: format!("{store_name}+{broker_name}"),
        store,
        deliveries,
        replays,
        broker,
        run,
        _dir: dir,
    });
    all
}

fn event(event_type: &str, source: &str, id: &str, hour: u32) -> Event {
    let data = match event_type.split('.').next() {
        Some("order") => json!({"order_id": id}),
        Some("user") => json!({"user_id": id}),
        Some("page") => json!({"url": format!("/{id}")}),
        _ => json!({"id": id}),
    };
    EventBuilder::new(event_type, source, data)
        .id(id)
        .time(Utc.with_ymd_and_hms(2024, 1, 1, hour, 0, 0).unwrap())
        .subject(format!("subject-{id}"))
        .build(&StreamRouter::new("events:default"))
        .unwrap()
}

fn message(stream: &str, id: &str) -> StreamMessage {
    StreamMessage {
        stream: stream.into(),
        event_id: id.into(),
        partition_key: Some(format!("key-{id}")),
        sequence: Some(7),
        payload: format!("{{\"id\":\"{id}\"}}"),
    }
}

#[tokio::test]
async fn store_appends_idempotently_by_id() {
    for backend in backends().await {
        let store = &backend.store;
        let first = event("order.created", "shop", "e1", 1);
        let outcomes = store
            .append(vec![
                first.clone(),
                event("order.created", "shop", "e2", 2),
                first.clone(),
            ])
            .await
            .unwrap();
        let AppendOutcome::Created(created) = &outcomes[0] else {
            panic!("{}: {outcomes:?}", backend.name)
        };
        assert!(created.metadata.sequence.is_some());
        assert!(
            matches!(outcomes[1], AppendOutcome::Created(_)),
            "{}",
            backend.name
        );
        assert!(
            matches!(&outcomes[2], AppendOutcome::Duplicate(e) if e == created),
            "{}",
            backend.name
        );

        let again = store.append(vec![first.clone()]).await.unwrap();
        assert!(
            matches!(&again[0], AppendOutcome::Duplicate(e) if e == created),
            "{}",
            backend.name
        );
        let mut stranger = first.clone();
        stranger.envelope.source = "elsewhere".into();
        let clash = store.append(vec![stranger]).await.unwrap();
        assert_eq!(
            clash[0],
            AppendOutcome::Conflict {
                existing_source: "shop".into()
            },
            "{}",
            backend.name
        );

        // New and known ids mixed in one batch: a known id between new ones.
        let mixed = store
            .append(vec![
                event("order.created", "shop", "e3", 3),
                first.clone(),
                event("order.created", "shop", "e4", 4),
            ])
            .await
            .unwrap();
        for (index, id) in [(0, "e3"), (2, "e4")] {
            let AppendOutcome::Created(new) = &mixed[index] else {
                panic!("{}: {id} not created: {mixed:?}", backend.name)
            };
            assert_eq!(
                store.get(id).await.unwrap().as_ref(),
                Some(new),
                "{}",
                backend.name
            );
        }
        assert!(
            matches!(&mixed[1], AppendOutcome::Duplicate(e) if e == created),
            "{}",
            backend.name
        );

        assert_eq!(
            store.get("e1").await.unwrap().as_ref(),
            Some(created),
            "{}",
            backend.name
        );
        assert_eq!(
            store.get("missing").await.unwrap(),
            None,
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn store_lists_with_filters_and_pages() {
    for backend in backends().await {
        let store = &backend.store;
        let events = vec![
            event("order.created", "shop", "o1", 1),
            event("order.updated", "shop", "o2", 2),
            event("user.created", "auth", "u1", 3),
            event("page.view", "web", "p1", 4),
            event("orders.archived", "shop", "x1", 5),
        ];
        store.append(events).await.unwrap();
        let ids = |page: Vec<Event>| page.into_iter().map(|e| e.envelope.id).collect::<Vec<_>>();
        let query = |f: fn(&mut EventQuery)| {
            let mut q = EventQuery {
                limit: 100,
                ..EventQuery::default()
            };
            f(&mut q);
            q
        };
        let page = store
            .list(&query(|q| {
                q.event_type = Some(TypeFilter::parse("order.*"))
            }))
            .await
            .unwrap();
        assert_eq!(
            ids(page.events),
            ["o2", "o1"],
            "{}: prefix filter",
            backend.name
        );
        let page = store
            .list(&query(|q| q.source = Some("shop".into())))
            .await
            .unwrap();
        assert_eq!(
            ids(page.events),
            ["x1", "o2", "o1"],
            "{}: source",
            backend.name
        );
        let page = store
            .list(&query(|q| q.stream = Some("events:analytics".into())))
            .await
            .unwrap();
        assert_eq!(ids(page.events), ["p1"], "{}: stream", backend.name);
        let page = store
            .list(&query(|q| q.subject = Some("subject-u1".into())))
            .await
            .unwrap();
        assert_eq!(ids(page.events), ["u1"], "{}: subject", backend.name);
        let page = store
            .list(&query(|q| {
                q.start_time = Some(Utc.with_ymd_and_hms(2024, 1, 1, 2, 0, 0).unwrap());
                q.end_time = Some(Utc.with_ymd_and_hms(2024, 1, 1, 4, 0, 0).unwrap());
            }))
            .await
            .unwrap();
        assert_eq!(
            ids(page.events),
            ["u1", "o2"],
            "{}: time window",
            backend.name
        );

        let first = store.list(&query(|q| q.limit = 2)).await.unwrap();
        assert_eq!(
            ids(first.events),
            ["x1", "p1"],
            "{}: first page",
            backend.name
        );
        let cursor = first.next_cursor.expect("more pages");
        let second = store
            .list(&EventQuery {
                limit: 2,
                cursor: Some(cursor),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            ids(second.events),
            ["u1", "o2"],
            "{}: second page",
            backend.name
        );
        let last = store
            .list(&EventQuery {
                limit: 2,
                cursor: second.next_cursor,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(last.events), ["o1"], "{}: last page", backend.name);
        assert_eq!(last.next_cursor, None, "{}", backend.name);
    }
}

#[tokio::test]
async fn store_pages_through_a_type_prefix_and_a_time_window_in_store_order() {
    for backend in backends().await {
        let store = &backend.store;
        let name = &backend.name;
        // Interleaved types of one family, and others around them; more events than a small
        // time window holds, so that both ways of planning a listing are exercised.
        let types = [
            "order.created",
            "order.updated",
            "order.shipped",
            "user.login",
            "orders.x",
        ];
        let events: Vec<Event> = (0..2500)
            .map(|n| {
                let mut event = event(types[n % types.len()], "shop", &format!("e{n}"), 0);
                event.envelope.time += chrono::Duration::seconds(n as i64);
                event
            })
            .collect();
        store.append(events).await.unwrap();
        let expected: Vec<String> = (0..2500)
            .rev()
            .filter(|n| types[n % types.len()].starts_with("order."))
            .map(|n| format!("e{n}"))
            .collect();
        let page_of = |cursor, offset, start: Option<i64>| EventQuery {
            event_type: Some(TypeFilter::parse("order.*")),
            limit: 400,
            offset,
            cursor,
            start_time: start.map(|s| {
                Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(s)
            }),
            ..EventQuery::default()
        };
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(&page_of(cursor, 0, None)).await.unwrap();
            seen.extend(page.events.into_iter().map(|e| e.envelope.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, expected, "{name}: every page by cursor, newest first");
        let skipped = store.list(&page_of(None, 1000, None)).await.unwrap();
        let ids: Vec<String> = skipped.events.into_iter().map(|e| e.envelope.id).collect();
        assert_eq!(ids, expected[1000..1400], "{name}: a page at an offset");
        // The last 100 seconds: a small window, read through the time index.
        let recent = store.list(&page_of(None, 0, Some(2400))).await.unwrap();
        let ids: Vec<String> = recent.events.into_iter().map(|e| e.envelope.id).collect();
        assert_eq!(ids, expected[..60], "{name}: a small time window");
        // All but the first 100 seconds: a large one.
        let most = store.list(&page_of(None, 0, Some(100))).await.unwrap();
        let ids: Vec<String> = most.events.into_iter().map(|e| e.envelope.id).collect();
        assert_eq!(ids, expected[..400], "{name}: a large time window");
    }
}

#[tokio::test]
async fn store_reads_what_was_stored_after_a_sequence_for_live_streams() {
    for backend in backends().await {
        let store = &backend.store;
        assert_eq!(
            store.last_sequence().await.unwrap(),
            0,
            "{}: empty",
            backend.name
        );
        // Store order, whatever the event times: the newest stored is the latest hour here.
        store
            .append(
                [5, 1, 3, 2]
                    .iter()
                    .map(|h| event("page.view", "web", &format!("p{h}"), *h))
                    .collect(),
            )
            .await
            .unwrap();
        let all = store.stored_after(0, 10).await.unwrap();
        let ids: Vec<_> = all.iter().map(|e| e.envelope.id.as_str()).collect();
        assert_eq!(ids, ["p5", "p1", "p3", "p2"], "{}", backend.name);
        let last = all[3].metadata.sequence.unwrap();
        assert_eq!(
            store.last_sequence().await.unwrap(),
            last,
            "{}",
            backend.name
        );
        let second = all[1].metadata.sequence.unwrap();
        let rest = store.stored_after(second, 1).await.unwrap();
        assert_eq!(
            rest[0].envelope.id, "p3",
            "{}: after, limited",
            backend.name
        );
        assert!(
            store.stored_after(last, 10).await.unwrap().is_empty(),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn store_scans_time_ranges_and_tracks_the_outbox() {
    for backend in backends().await {
        let store = &backend.store;
        let outcomes = store
            .append(
                (1..=6)
                    .map(|h| event("user.created", "auth", &format!("u{h}"), h))
                    .collect(),
            )
            .await
            .unwrap();
        let range = TimeRange {
            stream: Some("events:user".into()),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 2, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 1, 1, 6, 0, 0).unwrap(),
        };
        let (first_seq, last_seq) = store.sequence_bounds(&range).await.unwrap().unwrap();
        let first = store.scan(&range, 0, last_seq, 3).await.unwrap();
        let ids: Vec<_> = first
            .events
            .iter()
            .map(|e| e.envelope.id.as_str())
            .collect();
        assert_eq!(ids, ["u2", "u3", "u4"], "{}", backend.name);
        assert_eq!(
            first_seq,
            first.events[0].metadata.sequence.unwrap(),
            "{}",
            backend.name
        );
        let after = first.events[2].metadata.sequence.unwrap();
        assert_eq!(
            first.scanned_through, after,
            "{}: a full batch ends at its last event",
            backend.name
        );
        let rest = store.scan(&range, after, last_seq, 3).await.unwrap();
        assert_eq!(rest.events.len(), 1, "{}", backend.name);
        assert_eq!(
            last_seq,
            rest.events[0].metadata.sequence.unwrap(),
            "{}",
            backend.name
        );
        assert_eq!(
            rest.scanned_through, last_seq,
            "{}: the walk reached its end",
            backend.name
        );
        let none_left = store
            .scan(&range, last_seq, last_seq + 50, 3)
            .await
            .unwrap();
        assert!(none_left.events.is_empty(), "{}", backend.name);
        assert_eq!(
            none_left.scanned_through,
            last_seq + 50,
            "{}: an empty stretch is walked too",
            backend.name
        );
        let through = store
            .scan(&range, 0, first.events[1].metadata.sequence.unwrap(), 10)
            .await
            .unwrap();
        let ids: Vec<_> = through
            .events
            .iter()
            .map(|e| e.envelope.id.as_str())
            .collect();
        assert_eq!(ids, ["u2", "u3"], "{}: up to `through`", backend.name);
        let elsewhere = TimeRange {
            stream: Some("events:system".into()),
            ..range.clone()
        };
        assert_eq!(
            store.sequence_bounds(&elsewhere).await.unwrap(),
            None,
            "{}",
            backend.name
        );

        assert_eq!(
            store.unpublished(100).await.unwrap().len(),
            6,
            "{}",
            backend.name
        );
        let sequences: Vec<i64> = outcomes
            .iter()
            .take(4)
            .map(|o| match o {
                AppendOutcome::Created(e) => e.metadata.sequence.unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        store.mark_published(&sequences).await.unwrap();
        let left: Vec<_> = store
            .unpublished(100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.envelope.id)
            .collect();
        assert_eq!(
            left,
            ["u5", "u6"],
            "{}: oldest unpublished first",
            backend.name
        );
        assert_eq!(store.outbox_len(100).await.unwrap(), 2, "{}", backend.name);
        assert_eq!(
            store.outbox_len(1).await.unwrap(),
            1,
            "{}: capped",
            backend.name
        );
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn broker_delivers_each_entry_to_one_group_member_in_order() {
    for backend in backends().await {
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
}

#[tokio::test]
async fn broker_claims_idle_entries_and_counts_deliveries() {
    for backend in backends().await {
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
}

#[tokio::test]
async fn broker_blocks_until_an_entry_arrives_and_ranges_without_delivering() {
    for backend in backends().await {
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
}

#[tokio::test]
async fn store_remembers_processed_events_per_group() {
    for backend in backends().await {
        let store = &backend.store;
        let ids = ["a".to_string(), "b".to_string()];
        let none = store.processed("g", &ids).await.unwrap();
        assert!(none.is_empty(), "{}", backend.name);
        store
            .record_processed("g", &["a".into(), "a".into()])
            .await
            .unwrap();
        store.record_processed("g", &["a".into()]).await.unwrap();
        assert_eq!(
            store.processed("g", &ids).await.unwrap(),
            HashSet::from(["a".to_string()]),
            "{}",
            backend.name
        );
        let other = store.processed("other", &ids).await.unwrap();
        assert!(other.is_empty(), "{}: per group", backend.name);
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn subscription(name: &str) -> StoredSubscription {
    StoredSubscription {
        subscription: Subscription {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.into(),
            event_types: vec!["order.*".into(), "user.created".into()],
            webhook_url: "https://example.com/hook".into(),
            enabled: true,
            disabled_reason: None,
            created_at: at(0),
            updated_at: at(0),
        },
        secret: "whsec_dGVzdA==".into(),
        previous: None,
    }
}

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
        error: "boom".into(),
        status_code: None,
        response_body: None,
        attempts: 4,
        failed_at: at(5),
        event: json!({"id": event_id, "type": "user.created"}),
    }
}

#[tokio::test]
async fn delivery_store_keeps_subscriptions() {
    for backend in backends().await {
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

        store.disable_subscription(&id, "410 Gone").await.unwrap();
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
}

#[tokio::test]
async fn delivery_store_keeps_one_job_per_pair_leases_it_and_records_attempts() {
    for backend in backends().await {
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
        assert_eq!(
            created.unwrap(),
            [first.id.clone(), second.id.clone()],
            "{name}"
        );
        // An event consumed again creates no second job for the same subscription.
        let again = [
            NewDelivery::new("evt-1", sub, at(60)),
            NewDelivery::new("evt-2", sub, at(60)),
        ];
        assert!(
            store.create_deliveries(&again).await.unwrap().is_empty(),
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
        let recorded = store.record_attempts(&records).await.unwrap();
        assert_eq!(recorded, [first.id.clone(), second.id.clone()], "{name}");
        // A copy sent again after its lease ran out finds the job moved on: nothing recorded.
        let stale = store.record_attempts(&records[..1]).await.unwrap();
        assert!(stale.is_empty(), "{name}");
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
}

#[tokio::test]
async fn delivery_store_lists_filters_and_deletes_dead_letters() {
    for backend in backends().await {
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
}

#[tokio::test]
async fn store_prunes_the_oldest_events_in_batches() {
    for backend in backends().await {
        let store = &backend.store;
        let name = &backend.name;
        // Retention goes by when events were stored, not by their own time.
        let imported = event("order.created", "shop", "imported", 1);
        let older = vec![event("order.created", "shop", "old-1", 5), imported];
        store.append(older).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cutoff = Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        store
            .append(vec![event("order.created", "shop", "new-3", 2)])
            .await
            .unwrap();
        assert_eq!(
            store.count_events_before(cutoff).await.unwrap(),
            2,
            "{name}"
        );
        assert_eq!(store.prune_events(cutoff, 1).await.unwrap(), 1, "{name}");
        assert_eq!(store.prune_events(cutoff, 10).await.unwrap(), 1, "{name}");
        assert_eq!(store.prune_events(cutoff, 10).await.unwrap(), 0, "{name}");
        assert!(store.get("new-3").await.unwrap().is_some(), "{name}");
        assert_eq!(
            store.count_events_before(cutoff).await.unwrap(),
            0,
            "{name}"
        );
    }
}

#[tokio::test]
async fn broker_trims_what_retention_no_longer_needs() {
    for backend in backends().await {
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
}

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

#[tokio::test]
async fn replay_store_keeps_replays_and_leases_each_to_one_runner() {
    for backend in backends().await {
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
}

#[tokio::test]
async fn replay_deliveries_are_their_own_jobs_and_cancelling_drops_the_pending_ones() {
    for backend in backends().await {
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
        assert_eq!(created, [live.id.clone(), replayed.id.clone()], "{name}");
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
}
