//! Insights through the API: `GET /api/v1/stats/timeseries` and the event types' activity agree
//! with counts computed independently, from the stored events (by type and minute) and from what
//! the receivers saw (by subscription); they survive a graceful restart; bad parameters are 400.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ordered::subscribe_to;
use common::receiver::{Mode, Receiver};
use common::{Api, TestServer, eventually, user_created};
use serde_json::{Value, json};

/// The series of `metric` as {key: {bucket start: count}}.
async fn timeseries(api: &Api, query: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let (status, body) = api
        .call("GET", &format!("/api/v1/stats/timeseries?{query}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let points = series["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["time"].as_str().unwrap().to_string(),
                        p["count"].as_u64().unwrap(),
                    )
                })
                .collect();
            (series["key"].as_str().unwrap().to_string(), points)
        })
        .collect()
}

/// Every series' total, by key.
fn totals(series: &BTreeMap<String, BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    series
        .iter()
        .map(|(key, points)| (key.clone(), points.values().sum()))
        .collect()
}

/// The stored events counted by type and minute of arrival, as the store lists them.
async fn stored_by_type_and_minute(api: &Api) -> BTreeMap<String, BTreeMap<String, u64>> {
    let (status, page) = api.call("GET", "/api/v1/events?limit=1000", None).await;
    assert_eq!(status, 200, "{page}");
    let mut counted: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for event in page["events"].as_array().unwrap() {
        let received = chrono::DateTime::parse_from_rfc3339(
            event["metadata"]["received_at"].as_str().unwrap(),
        )
        .unwrap()
        .with_timezone(&chrono::Utc);
        let minute = received.format("%Y-%m-%dT%H:%M:00Z").to_string();
        *counted
            .entry(event["type"].as_str().unwrap().to_string())
            .or_default()
            .entry(minute)
            .or_default() += 1;
    }
    counted
}

/// The same buckets with their times written as RFC 3339 in UTC, `Z` form.
fn normalized(
    series: BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    series
        .into_iter()
        .map(|(key, points)| {
            let points = points
                .into_iter()
                .map(|(time, count)| {
                    let time = chrono::DateTime::parse_from_rfc3339(&time)
                        .unwrap()
                        .with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:00Z")
                        .to_string();
                    (time, count)
                })
                .collect();
            (key, points)
        })
        .collect()
}

fn payment_without_amount(n: usize) -> Value {
    json!({"type": "payment.completed", "source": "billing",
           "data": {"payment_id": format!("p{n}"), "currency": "EUR"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_agree_with_the_stored_events_and_the_receivers() {
    let server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "0"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    let api = server.api();
    let users = Receiver::start(Mode::Accept).await;
    let user_subscription = subscribe_to(&api, "user.*", &users, json!({})).await;
    let orders = Receiver::start(Mode::Fail(500)).await;
    let order_subscription = subscribe_to(&api, "order.*", &orders, json!({})).await;

    let mut batch: Vec<Value> = (0..7).map(|n| user_created(&format!("u{n}"))).collect();
    batch.extend((0..4).map(|n| {
        json!({"type": "order.created", "source": "shop", "data": {"order_id": format!("o{n}")}})
    }));
    batch.extend(
        (0..3).map(
            |n| json!({"type": "page.view", "source": "web", "data": {"url": format!("/{n}")}}),
        ),
    );
    batch.extend((0..2).map(payment_without_amount));
    let (status, outcome) = api
        .call(
            "POST",
            "/api/v1/events/batch",
            Some(&json!({ "events": batch })),
        )
        .await;
    assert_eq!(
        (status, outcome["accepted"].clone()),
        (200, json!(14)),
        "{outcome}"
    );
    let (status, _) = api
        .call("POST", "/api/v1/events", Some(&payment_without_amount(3)))
        .await;
    assert_eq!(status, 422);
    assert!(
        eventually(Duration::from_secs(10), || async {
            users.count() == 7 && orders.count() == 4
        })
        .await,
        "users {}, orders {}",
        users.count(),
        orders.count()
    );

    // By type and minute, as the stored events say (the counts reach the store within a second),
    // once the four dead letters are reported as operational events, the last events stored.
    let settled = || async {
        let stored = stored_by_type_and_minute(&api).await;
        let reported = stored
            .get("eventflow.delivery.dead_lettered")
            .map_or(0, |minutes| minutes.values().sum::<u64>());
        let counted =
            normalized(timeseries(&api, "metric=events&group_by=type&interval=1m&since=90m").await);
        (reported == 4 && counted == stored).then_some(stored)
    };
    let mut stored = None;
    for _ in 0..50 {
        stored = settled().await;
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored.unwrap_or_else(|| panic!("counts never matched the stored events"));
    let by_hour = totals(&timeseries(&api, "metric=events&interval=1h&since=24h").await);
    assert_eq!(by_hour, totals(&stored));

    // Refusals by type; attempts by subscription, as the receivers saw them.
    let want = |key: &str, n: u64| BTreeMap::from([(key.to_string(), n)]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            totals(&timeseries(&api, "metric=invalid").await) == want("payment.completed", 3)
                && totals(&timeseries(&api, "metric=deliveries&group_by=subscription").await)
                    == want(&user_subscription, users.count() as u64)
                && totals(&timeseries(&api, "metric=delivery_failures").await)
                    == want(&order_subscription, orders.count() as u64)
        })
        .await,
        "invalid {:?}, deliveries {:?}, failures {:?}",
        timeseries(&api, "metric=invalid").await,
        timeseries(&api, "metric=deliveries").await,
        timeseries(&api, "metric=delivery_failures").await,
    );

    // The event types' activity comes from the same counts.
    let (status, listed) = api.call("GET", "/api/v1/event-types", None).await;
    assert_eq!(status, 200, "{listed}");
    let of = |name: &str| {
        listed["event_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    let created = of("user.created");
    assert_eq!(
        (
            created["events_last_hour"].clone(),
            created["events_last_24h"].clone()
        ),
        (json!(7), json!(7))
    );
    assert_eq!(created["subscriptions"], json!([user_subscription]));
    assert_eq!(of("payment.completed")["invalid_last_24h"], 3);
    assert_eq!(of("feature.used")["events_last_24h"], 0);
}

#[tokio::test]
async fn a_graceful_stop_keeps_the_last_counts() {
    let mut server = TestServer::start().await;
    let api = server.api();
    let (status, _) = api
        .call("POST", "/api/v1/events", Some(&user_created("u1")))
        .await;
    assert_eq!(status, 201);
    // Stopped at once, before the tally's next flush: the stop adds what it holds.
    server.stop().await;
    server.restart().await;
    let api = server.api();
    assert_eq!(
        totals(&timeseries(&api, "metric=events").await),
        BTreeMap::from([("user.created".to_string(), 1)])
    );
}

#[tokio::test]
async fn bad_parameters_are_400_problems() {
    let server = TestServer::start().await;
    let api = server.api();
    for query in [
        "",
        "metric=everything",
        "metric=events&group_by=subscription",
        "metric=deliveries&group_by=type",
        "metric=events&interval=5m",
        "metric=events&interval=1m&since=7d",
        "metric=events&interval=1h&since=90d",
        "metric=events&since=yesterday",
        "metric=events&since=0h",
    ] {
        let (status, problem) = api
            .call("GET", &format!("/api/v1/stats/timeseries?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}: {problem}"
        );
    }
    let since = (chrono::Utc::now() - chrono::Duration::minutes(10)).format("%Y-%m-%dT%H:%M:%SZ");
    let (status, empty) = api
        .call(
            "GET",
            &format!("/api/v1/stats/timeseries?metric=events&since={since}"),
            None,
        )
        .await;
    assert_eq!(
        (status, empty["series"].clone()),
        (200, json!([])),
        "{empty}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_queue_size_is_sampled() {
    let mut server = TestServer::start_with(
        &[
            ("MAX_RETRIES", "0"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
        Vec::new(),
    )
    .await;
    let api = server.api();
    let failing = Receiver::start(Mode::Fail(500)).await;
    subscribe_to(&api, "user.*", &failing, json!({})).await;
    for n in 0..2 {
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/events",
                Some(&user_created(&format!("u{n}"))),
            )
            .await;
        assert_eq!(status, 201);
    }
    let dead_letters = || async {
        let (_, stats) = api.call("GET", "/api/v1/stats", None).await;
        stats["dlq_size"] == 2
    };
    assert!(eventually(Duration::from_secs(10), dead_letters).await);
    // A worker samples the size when it starts, then every minute.
    server.stop().await;
    server.restart().await;
    let api = server.api();
    let sampled = || async {
        let series = timeseries(&api, "metric=dlq_size&group_by=queue").await;
        series
            .get("dlq")
            .and_then(|points| points.values().last().copied())
            == Some(2)
    };
    assert!(
        eventually(Duration::from_secs(5), sampled).await,
        "{:?}",
        timeseries(&api, "metric=dlq_size").await
    );
}
