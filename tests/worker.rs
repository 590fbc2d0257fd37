//! The worker through the library API: handlers see every event, same-key events in order,
//! failures are retried and then dead-lettered, and abandoned entries are claimed.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{TestServer, eventually, user_created};
use eventflow::broker::{Broker, EmbeddedBroker, StreamMessage};
use eventflow::events::{Event, EventBuilder, StreamRouter};
use eventflow::sqlite::SqliteDb;
use eventflow::store::{EventStore, SqliteStore};
use eventflow::worker::{Handler, HandlerError};
use serde_json::json;

/// Records (partition key, sequence) of every event, after a short pause that lets lanes interleave.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, i64)>>,
}

#[async_trait]
impl Handler for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let pause = (event.metadata.sequence.unwrap_or_default() % 3) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let key = event.metadata.partition_key.clone().unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push((key, event.metadata.sequence.unwrap_or_default()));
        Ok(())
    }
}

/// Fails its first `failures` calls per event, then succeeds.
struct Flaky {
    failures: u32,
    calls: AtomicU32,
}

#[async_trait]
impl Handler for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn handle(&self, _event: &Event) -> Result<(), HandlerError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call <= self.failures {
            return Err(format!("receiver answered 503 (call {call})").into());
        }
        Ok(())
    }
}

/// The workers' consumer group (the default).
const GROUP: &str = "eventflow-workers";

/// The dead-letter queue, through the API.
async fn dead_letters(server: &TestServer) -> Vec<serde_json::Value> {
    let (status, body) = server.get_json("/api/v1/dlq").await;
    assert_eq!(status, 200);
    body["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test]
async fn handlers_see_every_event_and_same_key_events_in_order() {
    let recorder = Arc::new(Recorder::default());
    let server =
        TestServer::start_with(&[("WORKER_CONCURRENCY", "8")], vec![recorder.clone()]).await;
    let events: Vec<_> = (0..120)
        .map(|i| {
            json!({"type": "page.view", "source": "web", "data": {"url": format!("/p/{i}")},
                   "metadata": {"partition_key": format!("session-{}", i % 4)}})
        })
        .collect();
    for chunk in events.chunks(40) {
        let response = server
            .post_json("/api/v1/events/batch", &json!(chunk))
            .await;
        assert_eq!(response.status(), 200);
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            recorder.seen.lock().unwrap().len() == 120
        })
        .await
    );
    let seen = recorder.seen.lock().unwrap().clone();
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    for (key, sequence) in seen {
        by_key.entry(key).or_default().push(sequence);
    }
    assert_eq!(by_key.len(), 4);
    for (key, sequences) in by_key {
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {sequences:?}"
        );
        assert_eq!(sequences.len(), 30);
    }
}

#[tokio::test]
async fn a_failing_handler_is_retried_then_dead_lettered() {
    let failing = Arc::new(Flaky {
        failures: u32::MAX,
        calls: AtomicU32::new(0),
    });
    let server = TestServer::start_with(
        &[("MAX_RETRIES", "2"), ("RETRY_BASE_DELAY", "0.01")],
        vec![failing.clone()],
    )
    .await;
    let response = server
        .post_json("/api/v1/events", &user_created("usr_9"))
        .await;
    let event_id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        eventually(Duration::from_secs(10), || async {
            !dead_letters(&server).await.is_empty()
        })
        .await
    );
    let letters = dead_letters(&server).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["kind"], "handler");
    assert_eq!(letter["event_id"], event_id.as_str());
    assert_eq!(letter["event_type"], "user.created");
    assert_eq!(letter["attempts"], 3, "MAX_RETRIES=2 means three attempts");
    assert_eq!(letter["handler"], "flaky");
    assert!(letter["error"].as_str().unwrap().contains("503"));
    assert_eq!(letter["stream"], "events:user");
    assert_eq!(letter["event"]["id"], event_id.as_str());
    assert_eq!(failing.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_flaky_handler_succeeds_on_retry_without_a_dead_letter() {
    let flaky = Arc::new(Flaky {
        failures: 2,
        calls: AtomicU32::new(0),
    });
    let server = TestServer::start_with(&[("RETRY_BASE_DELAY", "0.01")], vec![flaky.clone()]).await;
    server
        .post_json("/api/v1/events", &user_created("usr_3"))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            flaky.calls.load(Ordering::SeqCst) == 3
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dead_letters(&server).await.is_empty());
}

#[tokio::test]
async fn a_dead_lettered_event_retried_from_the_dlq_is_processed_again() {
    let flaky = Arc::new(Flaky {
        failures: 2,
        calls: AtomicU32::new(0),
    });
    let server = TestServer::start_with(
        &[("MAX_RETRIES", "1"), ("RETRY_BASE_DELAY", "0.01")],
        vec![flaky.clone()],
    )
    .await;
    server
        .post_json("/api/v1/events", &user_created("usr_4"))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            dead_letters(&server).await.len() == 1
        })
        .await
    );
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    let letter = &dead_letters(&server).await[0];
    let path = format!("/api/v1/dlq/{}/retry", letter["id"].as_str().unwrap());
    let (status, body) = server.call("POST", &path, None).await;
    assert_eq!((status, &body["requeued"]), (202, &serde_json::json!(1)));
    assert!(
        eventually(Duration::from_secs(10), || async {
            flaky.calls.load(Ordering::SeqCst) == 3
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dead_letters(&server).await.is_empty());
    assert_eq!(
        flaky.calls.load(Ordering::SeqCst),
        3,
        "processed once more, not twice"
    );
}

/// A consumer of the workers' group read `event` from `events:system` and died before
/// acknowledging it: the entry stays pending in the database at `database_url`.
async fn abandon_entry(database_url: &str, event: &Event) -> EmbeddedBroker {
    let broker = EmbeddedBroker::new(SqliteDb::open(database_url).await.unwrap());
    let stream = "events:system".to_string();
    broker.ensure_group(&stream, GROUP).await.unwrap();
    broker
        .publish(&[StreamMessage::for_event(event).unwrap()])
        .await
        .unwrap();
    let taken = broker
        .read_group(
            GROUP,
            "doomed-consumer",
            std::slice::from_ref(&stream),
            10,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(broker.pending(GROUP, &stream).await.unwrap(), 1);
    broker
}

fn system_error() -> Event {
    EventBuilder::new("system.error", "crashy", json!({"message": "boom"}))
        .build(&StreamRouter::new("events:default"))
        .unwrap()
}

#[tokio::test]
async fn entries_abandoned_by_a_dead_consumer_are_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("eventflow.db").display());
    let broker = abandon_entry(&database_url, &system_error()).await;

    // A live worker on the same group claims it once it has been idle long enough.
    let recorder = Arc::new(Recorder::default());
    let _server = TestServer::start_with(
        &[("CLAIM_IDLE_MS", "200"), ("DATABASE_URL", &database_url)],
        vec![recorder.clone()],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            recorder.seen.lock().unwrap().len() == 1
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            broker.pending(GROUP, "events:system").await.unwrap() == 0
        })
        .await
    );
}

#[tokio::test]
async fn an_event_delivered_again_has_its_effects_once() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("eventflow.db").display());
    let event = system_error();
    // The dead consumer had processed the event and recorded it, but not acknowledged it; the
    // event was also published a second time (as an outbox retry may).
    let broker = abandon_entry(&database_url, &event).await;
    let store = SqliteStore::new(SqliteDb::open(&database_url).await.unwrap());
    store
        .record_processed(GROUP, &[event.id().to_string()])
        .await
        .unwrap();
    broker
        .publish(&[StreamMessage::for_event(&event).unwrap()])
        .await
        .unwrap();
    // Another event, published twice before anyone read it: both copies come in one read.
    let twice = system_error();
    let copy = StreamMessage::for_event(&twice).unwrap();
    broker.publish(&[copy.clone(), copy]).await.unwrap();

    let recorder = Arc::new(Recorder::default());
    let server = TestServer::start_with(
        &[("CLAIM_IDLE_MS", "200"), ("DATABASE_URL", &database_url)],
        vec![recorder.clone()],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            broker.pending(GROUP, "events:system").await.unwrap() == 0
                && broker.lag(GROUP, "events:system").await.unwrap() == 0
        })
        .await,
        "every delivery is acknowledged"
    );
    assert_eq!(
        recorder.seen.lock().unwrap().len(),
        1,
        "the processed event has no second effect; the twice-published one has one"
    );

    // The worker is live: a new event is handled.
    server.post_json("/api/v1/events", &user_created("u")).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            recorder.seen.lock().unwrap().len() == 2
        })
        .await
    );
}

#[tokio::test]
async fn in_process_producers_send_and_enqueue() {
    let recorder = Arc::new(Recorder::default());
    let server =
        TestServer::start_with(&[("BATCH_TIMEOUT_MS", "100")], vec![recorder.clone()]).await;
    let producer = server.producer();
    let router = StreamRouter::new("events:default");
    let sent = EventBuilder::new("feature.used", "in-process", json!({"feature": "export"}))
        .build(&router)
        .unwrap();
    let outcomes = producer.send(vec![sent.clone()]).await.unwrap();
    assert!(
        matches!(&outcomes[0], eventflow::store::AppendOutcome::Created(e) if e.id() == sent.id())
    );

    // Enqueued events are committed by the batch timeout without anyone waiting for them.
    let queued: Vec<Event> = (0..3)
        .map(|i| {
            EventBuilder::new(
                "feature.used",
                "in-process",
                json!({"feature": format!("f{i}")}),
            )
            .build(&router)
            .unwrap()
        })
        .collect();
    for event in &queued {
        producer.enqueue(event.clone()).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            recorder.seen.lock().unwrap().len() == 4
        })
        .await
    );
    for event in &queued {
        let (status, _) = server
            .get_json(&format!("/api/v1/events/{}", event.id()))
            .await;
        assert_eq!(status, 200);
    }
}

/// Panics the first time it sees an event, then records it.
#[derive(Default)]
struct PanicsOnce {
    panicked: AtomicU32,
    recorded: Mutex<Vec<String>>,
}

#[async_trait]
impl Handler for PanicsOnce {
    fn name(&self) -> &str {
        "panics-once"
    }

    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        if event.metadata.partition_key.as_deref() == Some("boom")
            && self.panicked.fetch_add(1, Ordering::SeqCst) == 0
        {
            panic!("handler bug");
        }
        self.recorded.lock().unwrap().push(event.id().to_string());
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_handler_neither_loses_the_event_nor_its_lane() {
    let handler = Arc::new(PanicsOnce::default());
    let server = TestServer::start_with(
        &[("CLAIM_IDLE_MS", "200"), ("WORKER_CONCURRENCY", "1")],
        vec![handler.clone()],
    )
    .await;
    let boom = json!({"type": "feature.used", "source": "t", "data": {"feature": "x"},
                      "metadata": {"partition_key": "boom"}});
    server.post_json("/api/v1/events", &boom).await;
    // One lane only: this event runs on the lane that just panicked.
    server
        .post_json("/api/v1/events", &user_created("after"))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            handler.recorded.lock().unwrap().len() == 2
        })
        .await,
        "the later event and the claimed one are both processed"
    );
    assert_eq!(handler.panicked.load(Ordering::SeqCst), 2);
}
