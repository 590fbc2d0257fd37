//! Shared test fixtures: an EventFlow instance on a free port with its own database file.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod cluster;
pub mod ordered;
pub mod process;
pub mod proxy;
pub mod python;
pub mod receiver;
pub mod services;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventflow::app::{self, Role, Running};
use eventflow::config::Config;
use eventflow::worker::Handler;
use serde_json::Value;
use tempfile::TempDir;

/// A running EventFlow (API and worker) on 127.0.0.1 with a fresh SQLite file, or, with
/// `EVENTFLOW_TEST_BACKEND=distributed`, a fresh PostgreSQL schema and a private Redis.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Client for requests.
    pub client: reqwest::Client,
    /// The store's URL (`sqlite://…` unless distributed).
    pub database_url: String,
    running: Option<Running>,
    config: Config,
    _redis: Option<services::PrivateRedis>,
    _dir: TempDir,
}

/// A client of an EventFlow API: an in-process [`TestServer`] or a child process.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Client for requests.
    pub client: reqwest::Client,
}

impl Api {
    /// The API of a process listening on 127.0.0.1:`port`.
    pub fn on_port(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: http_client(),
        }
    }

    /// Sends `method` to `path` with an optional JSON body; returns status and JSON body
    /// (`null` when there is none).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("a JSON body")
        };
        (status, json)
    }
}

/// True when the tests run on PostgreSQL and Redis instead of the embedded backends.
pub fn distributed() -> bool {
    std::env::var("EVENTFLOW_TEST_BACKEND").is_ok_and(|v| v == "distributed")
}

impl TestServer {
    /// Starts with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[], Vec::new()).await
    }

    /// Starts with extra settings and worker handlers.
    pub async fn start_with(settings: &[(&str, &str)], handlers: Vec<Arc<dyn Handler>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = None;
        let (database_url, redis_url) = if distributed() {
            let postgres = services::postgres_url().await;
            let private = services::PrivateRedis::start(dir.path()).await;
            let url = private.url();
            redis = Some(private);
            (postgres, url)
        } else {
            let file = dir.path().join("eventflow.db");
            (format!("sqlite://{}", file.display()), String::new())
        };
        let mut values: HashMap<&str, &str> = HashMap::from([
            ("API_PORT", "0"),
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis_url),
            // Tests run beside each other on one PostgreSQL: a smaller fixed pool each.
            ("DATABASE_POOL_SIZE", "8"),
        ]);
        values.extend(settings.iter().copied());
        let database_url = values["DATABASE_URL"].to_string();
        let config = Config::from_map(&values).expect("valid test config");
        let running = app::start(
            &config,
            Role {
                api: true,
                worker: true,
            },
            handlers,
        )
        .await
        .expect("EventFlow starts");
        let addr = running.addr;
        Self {
            base: format!("http://{addr}"),
            client: http_client(),
            database_url,
            running: Some(running),
            config,
            _redis: redis,
            _dir: dir,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON body to `path`.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs `body` to `path` with the given content type.
    pub async fn post_as(&self, path: &str, content_type: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    /// GETs `path` and returns status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// The in-process producer of this instance.
    pub fn producer(&self) -> eventflow::producer::Producer {
        let running = self.running.as_ref().expect("running");
        running
            .producer
            .clone()
            .expect("the API role has a producer")
    }

    /// Starts again on the same database (and broker) after [`TestServer::stop`], on a new port.
    pub async fn restart(&mut self) {
        let running = app::start(
            &self.config,
            Role {
                api: true,
                worker: true,
            },
            Vec::new(),
        )
        .await
        .expect("EventFlow starts again");
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// The configuration the next [`TestServer::restart`] uses.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Sends `method` to `path` with an optional JSON body; returns status and JSON body
    /// (`null` when there is none).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.api().call(method, path, body).await
    }

    /// A client of this instance's API.
    pub fn api(&self) -> Api {
        Api {
            base: self.base.clone(),
            client: self.client.clone(),
        }
    }

    /// The process's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Subscribes `url` to `event_types`; returns the created subscription (with the secret
    /// when generated).
    pub async fn subscribe(&self, url: &str, event_types: &[&str]) -> Value {
        let subscription = serde_json::json!({"name": "test hook", "event_types": event_types, "webhook_url": url});
        let (status, body) = self
            .call("POST", "/api/v1/subscriptions", Some(&subscription))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Posts an event of `event_type`; returns its id.
    pub async fn post_event(&self, event_type: &str) -> String {
        let event = serde_json::json!({"type": event_type, "source": "tests", "data": {"n": 1}});
        let response = self.post_json("/api/v1/events", &event).await;
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Shuts down gracefully, keeping the database directory until dropped.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }
}

/// An HTTP client for tests (reqwest is built without a default TLS crypto provider).
pub fn http_client() -> reqwest::Client {
    eventflow::delivery::install_crypto_provider();
    reqwest::Client::new()
}

/// The README's `user.created` example.
pub fn user_created(user_id: &str) -> Value {
    serde_json::json!({
        "type": "user.created",
        "source": "api",
        "data": {"user_id": user_id, "email": "user@example.com", "username": "johndoe"}
    })
}

/// Polls `condition` every 20 ms for up to `timeout`; true once it holds.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
