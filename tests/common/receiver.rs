//! A webhook receiver on loopback whose answer the test chooses: accept, fail, hang, answer 410
//! Gone, or ask to retry later. It records every request it gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 204 No Content.
    Accept,
    /// This status, with the body `boom`.
    Fail(u16),
    /// Never answers (within a minute).
    Hang,
    /// 503 with `Retry-After` of this many seconds.
    RetryAfter(u64),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header's value (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// How a scripted receiver answers one request: its status, after how long.
pub type Script = Arc<dyn Fn(&Received) -> (u16, Duration) + Send + Sync>;

struct Shared {
    mode: Mutex<Mode>,
    script: Mutex<Option<Script>>,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<(usize, usize)>,
}

/// A running receiver.
pub struct Receiver {
    /// Its URL: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts a receiver answering as `mode`.
    pub async fn start(mode: Mode) -> Self {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            script: Mutex::new(None),
            received: Mutex::new(Vec::new()),
            in_flight: Mutex::new((0, 0)),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Starts a receiver that answers each request as `script` says.
    pub async fn scripted(script: Script) -> Self {
        let receiver = Self::start(Mode::Accept).await;
        receiver.script(script);
        receiver
    }

    /// Answers as `mode` from now on.
    pub fn set(&self, mode: Mode) {
        *self.shared.script.lock().unwrap() = None;
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Answers as `script` says from now on.
    pub fn script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = Some(script);
    }

    /// The most requests it has had in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.lock().unwrap().1
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }
}

async fn answer(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let received = Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    shared.received.lock().unwrap().push(received.clone());
    let script = shared.script.lock().unwrap().clone();
    if let Some(script) = script {
        let (status, after) = script(&received);
        {
            let mut in_flight = shared.in_flight.lock().unwrap();
            in_flight.0 += 1;
            in_flight.1 = in_flight.1.max(in_flight.0);
        }
        tokio::time::sleep(after).await;
        shared.in_flight.lock().unwrap().0 -= 1;
        return (StatusCode::from_u16(status).unwrap(), "scripted").into_response();
    }
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Accept => StatusCode::NO_CONTENT.into_response(),
        Mode::Fail(status) => (StatusCode::from_u16(status).unwrap(), "boom").into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Mode::RetryAfter(seconds) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", seconds.to_string())],
            "later",
        )
            .into_response(),
    }
}
