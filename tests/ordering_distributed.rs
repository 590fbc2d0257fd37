//! Ordered delivery and pace on PostgreSQL + Redis with two worker processes: per-key order when
//! one worker is killed with `kill -9` halfway, and a rate limit and an in-flight limit that hold
//! for both workers together, measured at the receiver. Ignored unless included: they need the
//! test services (see `common::services`).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::Cluster;
use common::ordered::{
    FLAKY_RECEIVER_SETTINGS, delivered, flaky, inversions, post_rounds, subscribe, subscribe_to,
};
use common::receiver::{Received, Receiver};
use common::{Api, eventually};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL + Redis: see README, Tests"]
async fn per_key_order_holds_across_two_workers_when_one_is_killed_halfway() {
    let mut cluster = Cluster::start(&FLAKY_RECEIVER_SETTINGS).await;
    let accepted_ordered: Arc<Mutex<HashSet<String>>> = Arc::default();
    let accepted_unordered: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ordered = Receiver::scripted(flaky(Arc::clone(&accepted_ordered))).await;
    let unordered = Receiver::scripted(flaky(Arc::clone(&accepted_unordered))).await;
    subscribe(&cluster.api, &ordered, json!({"ordering": "partition_key"})).await;
    subscribe(&cluster.api, &unordered, json!({})).await;
    Cluster::settle().await;
    let (keys, rounds) = (100, 50);
    post_rounds(&cluster.api, keys, rounds).await;
    let all = keys * rounds;
    let count = |receiver: &Receiver, accepted: &Arc<Mutex<HashSet<String>>>| {
        delivered(&receiver.received(), &accepted.lock().unwrap()).len()
    };

    // Halfway through the ordered subscription's deliveries, one worker dies without a word.
    let halfway = eventually(Duration::from_secs(60), || async {
        count(&ordered, &accepted_ordered) >= all / 2
    })
    .await;
    assert!(halfway, "{} of {all}", count(&ordered, &accepted_ordered));
    let at_kill = count(&ordered, &accepted_ordered);
    cluster.workers[0].0.kill();
    assert!(at_kill < all, "the kill came mid-stream");

    // The survivor finishes both; the dead worker's heads come back when their lease runs out.
    let finished = eventually(Duration::from_secs(150), || async {
        count(&ordered, &accepted_ordered) == all && count(&unordered, &accepted_unordered) == all
    })
    .await;
    assert!(
        finished,
        "ordered: {} of {all}, unordered: {} of {all}",
        count(&ordered, &accepted_ordered),
        count(&unordered, &accepted_unordered)
    );
    assert_eq!(
        inversions(&ordered.received()),
        0,
        "per-key order at the endpoint"
    );
    let (_, dlq) = cluster.api.call("GET", "/api/v1/dlq", None).await;
    assert_eq!(dlq["dead_letters"], json!([]), "{dlq}");
}

/// Posts `count` events of `event_type`, a hundred per batch.
async fn post_many(api: &Api, event_type: &str, count: usize) {
    for start in (0..count).step_by(100) {
        let events: Vec<Value> = (start..count.min(start + 100))
            .map(|n| json!({"type": event_type, "source": "tests", "data": {"n": n}}))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL + Redis: see README, Tests"]
async fn rate_limit_and_max_in_flight_hold_for_two_workers_together() {
    let cluster = Cluster::start(&[]).await;
    let paced = Receiver::scripted(Arc::new(|_: &Received| (204, Duration::ZERO))).await;
    let slow = Receiver::scripted(Arc::new(|_: &Received| (204, Duration::from_millis(100)))).await;
    subscribe_to(&cluster.api, "pace.rate", &paced, json!({"rate_limit": 50})).await;
    subscribe_to(
        &cluster.api,
        "pace.flight",
        &slow,
        json!({"max_in_flight": 4}),
    )
    .await;
    Cluster::settle().await;
    post_many(&cluster.api, "pace.flight", 200).await;
    post_many(&cluster.api, "pace.rate", 1200).await;

    // 200 requests of 100 ms, four at a time at most: about five seconds.
    let flown = eventually(Duration::from_secs(60), || async { slow.count() >= 200 }).await;
    assert!(flown, "{} of 200", slow.count());
    let most = slow.max_in_flight();
    assert!((2..=4).contains(&most), "{most} requests in flight at once");

    // 1,200 deliveries at 50/s take 24 s: count those of the first 20 s.
    let window = Duration::from_secs(20);
    let started = eventually(Duration::from_secs(30), || async { paced.count() > 0 }).await;
    assert!(started);
    let first = paced.received()[0].at;
    tokio::time::sleep_until(first + window + Duration::from_millis(500)).await;
    let in_window = paced
        .received()
        .iter()
        .filter(|request| request.at < first + window)
        .count();
    let per_second = in_window as f64 / window.as_secs_f64();
    assert!(
        (45.0..=55.0).contains(&per_second),
        "{per_second} deliveries/s, asked for 50"
    );
    for worker in 0..2 {
        let made = cluster.deliveries_by(worker).await;
        assert!(
            made > 0.0,
            "worker {worker} made no delivery: the limit was not shared"
        );
    }
}
