//! The contract of `EventStore`: idempotent appends, listings and pages, scans for replay and
//! live streams, the outbox, processed-event records and retention.

use chrono::{TimeZone, Utc};
use eventflow::events::Event;
use eventflow::store::{AppendOutcome, EventQuery, TimeRange, TypeFilter};
use std::collections::HashSet;
use std::time::Duration;

use crate::{Backend, event};

async fn store_appends_idempotently_by_id(backend: Backend) {
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

async fn store_lists_with_filters_and_pages(backend: Backend) {
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

async fn store_pages_through_a_type_prefix_and_a_time_window_in_store_order(backend: Backend) {
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

async fn store_reads_what_was_stored_after_a_sequence_for_live_streams(backend: Backend) {
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

async fn store_scans_time_ranges_and_tracks_the_outbox(backend: Backend) {
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

async fn store_remembers_processed_events_per_group(backend: Backend) {
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

async fn store_prunes_the_oldest_events_in_batches(backend: Backend) {
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

contract_tests!(
    store_appends_idempotently_by_id,
    store_lists_with_filters_and_pages,
    store_pages_through_a_type_prefix_and_a_time_window_in_store_order,
    store_reads_what_was_stored_after_a_sequence_for_live_streams,
    store_scans_time_ranges_and_tracks_the_outbox,
    store_remembers_processed_events_per_group,
    store_prunes_the_oldest_events_in_batches,
);
