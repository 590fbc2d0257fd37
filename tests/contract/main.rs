//! The contract every `EventStore`, `DeliveryStore`, `ReplayStore`, `EventTypeStore` and `Broker` implementation
//! passes: the same tests, a file per trait, each run once on the embedded SQLite store and broker
//! and once on PostgreSQL and Redis. The second run needs the test services and is ignored
//! unless included (`cargo test --test contract -- --include-ignored`, see README, Tests).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use eventflow::broker::{Broker, EmbeddedBroker, RedisBroker, StreamMessage};
use eventflow::delivery::{
    ContentMode, DeliveryOrdering, DeliveryStore, Filters, StaticHeaders, StoredSubscription,
    Subscription,
};
use eventflow::events::{Event, EventBuilder, StreamRouter};
use eventflow::replay::ReplayStore;
use eventflow::schemas::EventTypeStore;
use eventflow::sqlite::SqliteDb;
use eventflow::store::{EventStore, PgStore, SqliteStore};
use serde_json::json;
use tempfile::TempDir;

#[path = "../common/mod.rs"]
mod common;
use common::services;

/// Declares each contract test of a file twice: in `embedded`, run by every `cargo test`, and in
/// `distributed`, ignored unless included, since it needs PostgreSQL and Redis.
macro_rules! contract_tests {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::Backend::embedded().await).await
                }
            )+
        }
        mod distributed {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL + Redis: see README, Tests"]
                async fn $test() {
                    super::$test(crate::Backend::distributed().await).await
                }
            )+
        }
    };
}

mod broker;
mod delivery_store;
mod event_store;
mod event_type_store;
mod operational_marks;
mod ordered_delivery;
mod replay_store;

/// One backend under test; the directory lives as long as it.
struct Backend {
    name: &'static str,
    store: Arc<dyn EventStore>,
    deliveries: Arc<dyn DeliveryStore>,
    replays: Arc<dyn ReplayStore>,
    event_types: Arc<dyn EventTypeStore>,
    broker: Arc<dyn Broker>,
    /// Makes stream names unique to this backend instance: tests share one Redis.
    run: String,
    _dir: Option<TempDir>,
}

impl Backend {
    /// The embedded SQLite store and broker, in a file of their own.
    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(&format!("sqlite://{}/contract.db", dir.path().display()))
            .await
            .unwrap();
        let store = SqliteStore::new(db.clone());
        Self {
            name: "sqlite+embedded",
            store: Arc::new(store.clone()),
            deliveries: Arc::new(store.clone()),
            replays: Arc::new(store.clone()),
            event_types: Arc::new(store),
            broker: Arc::new(EmbeddedBroker::new(db)),
            run: uuid::Uuid::new_v4().simple().to_string(),
            _dir: Some(dir),
        }
    }

    /// PostgreSQL (a schema of its own) and Redis, from `EVENTFLOW_TEST_DATABASE_URL` and
    /// `EVENTFLOW_TEST_REDIS_URL`; fails when they are not set or do not answer.
    async fn distributed() -> Self {
        let url = services::postgres_url().await;
        let store = PgStore::connect_lazy(&url, 4).unwrap();
        store.migrate().await.unwrap();
        let redis = services::redis_url().await;
        Self {
            name: "postgres+redis",
            store: Arc::new(store.clone()),
            deliveries: Arc::new(store.clone()),
            replays: Arc::new(store.clone()),
            event_types: Arc::new(store),
            broker: Arc::new(RedisBroker::connect_lazy(&redis, 100_000).unwrap()),
            run: uuid::Uuid::new_v4().simple().to_string(),
            _dir: None,
        }
    }

    /// `name`, made unique to this test.
    fn stream(&self, name: &str) -> String {
        format!("{name}:{}", self.run)
    }
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
            filters: Filters::default(),
            content_mode: ContentMode::Json,
            headers: StaticHeaders::default(),
            ordering: DeliveryOrdering::None,
            rate_limit: None,
            max_in_flight: 32,
            held_until: None,
            enabled: true,
            disabled_reason: None,
            created_at: at(0),
            updated_at: at(0),
        },
        secret: "whsec_dGVzdA==".into(),
        previous: None,
    }
}
