//! Helpers of the ordered-delivery tests: events numbered per partition key, receivers that
//! fail some requests, and the per-key inversions a receiver saw.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::Api;
use super::receiver::{Received, Receiver, Script};

/// Settings under which a [`flaky`] receiver's deliveries finish in seconds: retries close
/// together, and a circuit breaker its failures never open. With the default threshold, five
/// failures in a row (one request in ten fails) happen in about one run in twenty and pause the
/// subscription for the 30 s recovery timeout, or longer when a trial call fails too.
pub const FLAKY_RECEIVER_SETTINGS: [(&str, &str); 4] = [
    ("MAX_RETRIES", "10"),
    ("RETRY_BASE_DELAY", "0.02"),
    ("RETRY_MAX_DELAY", "0.2"),
    ("BREAKER_FAILURE_THRESHOLD", "1000"),
];

/// Creates a subscription of `receiver` to `ordering.*` with `extra` fields; returns its id.
pub async fn subscribe(api: &Api, receiver: &Receiver, extra: Value) -> String {
    subscribe_to(api, "ordering.*", receiver, extra).await
}

/// Creates a subscription of `receiver` to `event_type` with `extra` fields; returns its id.
pub async fn subscribe_to(
    api: &Api,
    event_type: &str,
    receiver: &Receiver,
    extra: Value,
) -> String {
    let mut body = json!({"name": event_type, "event_types": [event_type],
                          "webhook_url": receiver.url});
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    let (status, created) = api.call("POST", "/api/v1/subscriptions", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Posts, as `rounds` batch requests one after another, event `n` of every key in round `n`.
pub async fn post_rounds(api: &Api, keys: usize, rounds: usize) {
    for n in 0..rounds {
        let events: Vec<Value> = (0..keys)
            .map(|key| {
                json!({"type": "ordering.step", "source": "tests",
                       "data": {"key": format!("k{key}"), "n": n},
                       "metadata": {"partition_key": format!("k{key}")}})
            })
            .collect();
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/events/batch",
                Some(&json!({ "events": events })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The (key, n) a delivery carries.
pub fn step(received: &Received) -> (String, u64) {
    let data = &received.json()["data"];
    (
        data["key"].as_str().unwrap().to_string(),
        data["n"].as_u64().unwrap(),
    )
}

/// Requests that reached the endpoint for an earlier event of their key than one it had already
/// been sent: every request counts, failed attempts too.
pub fn inversions(received: &[Received]) -> usize {
    let mut highest: HashMap<String, u64> = HashMap::new();
    let mut inverted = 0;
    for request in received {
        let (key, n) = step(request);
        let seen = highest.entry(key).or_insert(n);
        if n < *seen {
            inverted += 1;
        }
        *seen = (*seen).max(n);
    }
    inverted
}

/// The distinct (key, n) delivered with a 2xx (`accepted`: their webhook-ids).
pub fn delivered(received: &[Received], accepted: &HashSet<String>) -> HashSet<(String, u64)> {
    received
        .iter()
        .filter(|request| accepted.contains(request.header("webhook-id")))
        .map(step)
        .collect()
}

/// Answers in 0 to 20 ms and fails one request in ten (decided by a hash of the delivery and how
/// often it was seen), recording the webhook-ids it accepted.
pub fn flaky(accepted: Arc<Mutex<HashSet<String>>>) -> Script {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    Arc::new(move |request: &Received| {
        let id = request.header("webhook-id").to_string();
        let tries = {
            let mut seen = seen.lock().unwrap();
            let tries = seen.entry(id.clone()).or_default();
            *tries += 1;
            *tries
        };
        let mut hasher = DefaultHasher::new();
        (id, tries).hash(&mut hasher);
        let roll = hasher.finish();
        let latency = Duration::from_millis(roll % 21);
        if (roll >> 8).is_multiple_of(10) {
            return (500, latency);
        }
        accepted
            .lock()
            .unwrap()
            .insert(request.header("webhook-id").to_string());
        (204, latency)
    })
}
