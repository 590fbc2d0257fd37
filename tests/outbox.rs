//! The producer's outbox with a store and a broker that commit separately (as PostgreSQL and
//! Redis do): events reach the broker after the commit, and events a crash left unpublished
//! are relayed, oldest first, when the producer starts or, for another process's leftovers,
//! when the periodic sweep finds them.

use std::sync::Arc;
use std::time::Duration;

use eventflow::broker::{Broker, EmbeddedBroker};
use eventflow::events::{EventBuilder, StreamRouter};
use eventflow::producer::{Producer, ProducerSettings};
use eventflow::sqlite::SqliteDb;
use eventflow::store::{AppendOutcome, EventStore, SqliteStore};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn settings() -> ProducerSettings {
    ProducerSettings {
        batch_size: 100,
        batch_timeout: Duration::from_millis(50),
        counts: Default::default(),
    }
}

fn page_view(n: usize) -> eventflow::events::Event {
    EventBuilder::new("page.view", "web", json!({"url": format!("/page/{n}")}))
        .build(&StreamRouter::new("events:default"))
        .unwrap()
}

async fn stream_event_ids(broker: &EmbeddedBroker) -> Vec<String> {
    let entries = broker.range("events:analytics", None, 1000).await.unwrap();
    entries
        .into_iter()
        .map(|(_, message)| message.event_id)
        .collect()
}

/// A store and a broker in one file that commit separately, as PostgreSQL and Redis do.
async fn separate_store_and_broker(
    dir: &std::path::Path,
) -> (Arc<SqliteStore>, Arc<EmbeddedBroker>) {
    let db = SqliteDb::open(&format!("sqlite://{}/outbox.db", dir.display()))
        .await
        .unwrap();
    (
        Arc::new(SqliteStore::new(db.clone())),
        Arc::new(EmbeddedBroker::new(db)),
    )
}

/// Waits up to a second for the store to hold no unpublished event (events are marked published
/// just after they reach the stream); false if some are left.
async fn outbox_drained(store: &SqliteStore) -> bool {
    for _ in 0..100 {
        if store.unpublished(1).await.unwrap().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn committed_events_are_published_and_a_crash_backlog_is_relayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = separate_store_and_broker(dir.path()).await;
    assert!(!store.publishes_on_append());

    // A previous process committed these and died before publishing them.
    let backlog: Vec<_> = (0..3).map(page_view).collect();
    store.append(backlog.clone()).await.unwrap();
    assert_eq!(store.unpublished(10).await.unwrap().len(), 3);

    let shutdown = CancellationToken::new();
    let (producer, tasks) = Producer::spawn(
        store.clone(),
        broker.clone(),
        None,
        settings(),
        shutdown.clone(),
    );
    let fresh: Vec<_> = (3..8).map(page_view).collect();
    for event in &fresh {
        let outcome = producer.send(vec![event.clone()]).await.unwrap();
        assert!(matches!(outcome[0], AppendOutcome::Created(_)));
    }
    let expected: Vec<String> = backlog
        .iter()
        .chain(&fresh)
        .map(|e| e.id().to_string())
        .collect();
    let mut published = Vec::new();
    for _ in 0..200 {
        published = stream_event_ids(&broker).await;
        if published.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(published, expected, "every event once, in commit order");
    assert!(outbox_drained(&store).await);

    shutdown.cancel();
    tasks.finished().await;
    assert!(
        producer.send(vec![page_view(99)]).await.is_err(),
        "closed after shutdown"
    );
}

#[tokio::test]
async fn events_another_process_left_unpublished_are_swept_up() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = separate_store_and_broker(dir.path()).await;
    let shutdown = CancellationToken::new();
    let (producer, tasks) = Producer::spawn(
        store.clone(),
        broker.clone(),
        None,
        settings(),
        shutdown.clone(),
    );
    producer.send(vec![page_view(0)]).await.unwrap();
    assert!(outbox_drained(&store).await);
    assert_eq!(stream_event_ids(&broker).await.len(), 1);

    // Meanwhile another API process on the same store committed an event a while ago and died
    // before publishing it.
    let mut orphan = page_view(1);
    orphan.metadata.received_at = chrono::Utc::now() - chrono::Duration::seconds(60);
    store.append(vec![orphan.clone()]).await.unwrap();

    let mut published = Vec::new();
    for _ in 0..150 {
        published = stream_event_ids(&broker).await;
        if published.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        published.contains(&orphan.id().to_string()),
        "{published:?}"
    );
    assert!(outbox_drained(&store).await);
    shutdown.cancel();
    tasks.finished().await;
}
