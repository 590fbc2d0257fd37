//! The HTTP API through a real server: the README's examples, CloudEvents content modes,
//! idempotency, listing, and every kind of bad input.

mod common;

use std::time::Duration;

use common::{TestServer, user_created};
use serde_json::{Value, json};

#[tokio::test]
async fn readme_examples_work_as_written() {
    let server = TestServer::start().await;
    let created = server
        .post_json("/api/v1/events", &user_created("usr_12345"))
        .await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert!(created.headers().contains_key("x-correlation-id"));
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/events/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["specversion"], "1.0");
    assert_eq!(created["metadata"]["stream"], "events:user");

    let login = json!({
        "type": "user.login", "source": "web-app",
        "data": {"user_id": "usr_123", "ip_address": "192.168.1.1"},
        "metadata": {"priority": "high", "partition_key": "usr_123"}
    });
    assert_eq!(
        server.post_json("/api/v1/events", &login).await.status(),
        201
    );

    let (status, page) = server
        .get_json("/api/v1/events?event_type=user.login&limit=50&offset=0")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 1);
    let event = &page["events"][0];
    assert_eq!(event["data"]["ip_address"], "192.168.1.1");
    assert_eq!(event["metadata"]["priority"], "high");
    assert_eq!(event["metadata"]["partition_key"], "usr_123");

    let (status, fetched) = server.get_json(&location).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn correlation_id_is_echoed_and_stored() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("X-Correlation-ID", "checkout-7f3a")
        .json(&user_created("usr_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "checkout-7f3a");
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["metadata"]["correlation_id"], "checkout-7f3a");
    let (_, page) = server
        .get_json("/api/v1/events?correlation_id=checkout-7f3a")
        .await;
    assert_eq!(page["count"], 1);

    // Errors and unknown routes carry a (generated) id too.
    let response = server
        .client
        .get(server.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(!response.headers()["x-correlation-id"].is_empty());
}

#[tokio::test]
async fn same_id_is_stored_once_and_other_source_conflicts() {
    let server = TestServer::start().await;
    let mut event = user_created("usr_1");
    event["id"] = json!("evt-1");
    let first = server.post_json("/api/v1/events", &event).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let mut odd = user_created("usr_2");
    odd["id"] = json!("a/b?c d");
    let created = server.post_json("/api/v1/events", &odd).await;
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/api/v1/events/a%2Fb%3Fc%20d");
    assert_eq!(server.get_json(&location).await.0, 200);

    let again = server.post_json("/api/v1/events", &event).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    event["source"] = json!("another-service");
    let conflict = server.post_json("/api/v1/events", &event).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );

    let (_, page) = server.get_json("/api/v1/events").await;
    assert_eq!(page["count"], 2);
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    (status, body)
}

#[tokio::test]
async fn bad_input_gets_precise_problems() {
    let server = TestServer::start_with(
        &[("MAX_BODY_BYTES", "2048"), ("MAX_BATCH_EVENTS", "3")],
        Vec::new(),
    )
    .await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        server
            .client
            .post(server.url("/api/v1/events"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, body) = problem(
        post_raw(r#"{"type": "user.created","#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );

    let (status, body) = problem(
        server
            .post_json(
                "/api/v1/events",
                &json!({"type": "payment.completed", "source": "billing",
                "data": {"payment_id": "p1", "amount": "ten", "currency": "EUR"}}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["pointer"], "/data/amount");

    // U+0000 cannot be stored (PostgreSQL refuses it): refused up front, naming where it is.
    let (status, body) = problem(
        server
            .post_json(
                "/api/v1/events",
                &json!({"type": "app.note", "source": "t",
                        "data": {"lines": ["ok", "bad\u{0}byte"]}}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["pointer"], "/data/lines/1");

    let (status, body) = problem(
        server
            .post_json("/api/v1/events", &json!({"source": "x", "data": {}}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["pointer"], "/type");

    let (status, _) = problem(server.post_json("/api/v1/events", &json!([1, 2])).await).await;
    assert_eq!(status, 422);

    let reserved =
        json!({"specversion": "1.0", "id": "r1", "source": "s", "type": "x.y", "metadata": "mine"});
    let response = server
        .post_as("/api/v1/events", "application/cloudevents+json", &reserved)
        .await;
    let (status, body) = problem(response).await;
    assert_eq!(
        (status, body["errors"][0]["pointer"].as_str()),
        (422, Some("/metadata"))
    );

    let base64 = json!({"specversion": "1.0", "id": "b1", "source": "s", "type": "user.created", "data_base64": "e30="});
    let response = server
        .post_as("/api/v1/events", "application/cloudevents+json", &base64)
        .await;
    let (status, body) = problem(response).await;
    assert_eq!(
        (status, body["errors"][0]["pointer"].as_str()),
        (422, Some("/data_base64"))
    );

    let big = json!({"type": "com.example.big", "source": "x", "data": {"blob": "x".repeat(4096)}});
    let (status, _) = problem(server.post_json("/api/v1/events", &big).await).await;
    assert_eq!(status, 413);

    let (status, _) = problem(
        post_raw("type=user.created", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);

    let batch: Vec<Value> = (0..4).map(|i| user_created(&format!("u{i}"))).collect();
    let (status, _) = problem(
        server
            .post_json("/api/v1/events/batch", &json!(batch))
            .await,
    )
    .await;
    assert_eq!(status, 413);

    for query in [
        "limit=0",
        "limit=abc",
        "start_time=yesterday",
        "cursor=nope",
        "start_time=2024-01-02T00:00:00Z&end_time=2024-01-01T00:00:00Z",
    ] {
        let response = server
            .client
            .get(server.url(&format!("/api/v1/events?{query}")))
            .send()
            .await
            .unwrap();
        let (status, _) = problem(response).await;
        assert_eq!(status, 400, "{query}");
    }

    let (status, _) = problem(
        server
            .client
            .get(server.url("/api/v1/events/no-such-id"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let response = server
        .client
        .get(server.url("/api/v1/events/%FF%FE"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 400, "an id that is not UTF-8");
    let (status, _) = problem(
        server
            .client
            .delete(server.url("/api/v1/events"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn cloudevents_structured_binary_and_batch_modes() {
    let server = TestServer::start().await;
    let structured = json!({"specversion": "1.0", "id": "ce-1", "source": "/orders", "type": "order.created",
                            "partitionkey": "ord-1", "data": {"order_id": "ord-1", "total": 9.5}});
    let response = server
        .post_as(
            "/api/v1/events",
            "application/cloudevents+json",
            &structured,
        )
        .await;
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["partitionkey"], "ord-1");
    assert_eq!(event["metadata"]["partition_key"], "ord-1");
    assert_eq!(event["metadata"]["stream"], "events:business");

    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "ce-2")
        .header("ce-source", "/web")
        .header("ce-type", "feature.used")
        .header("ce-tenant", "acme")
        .header("content-type", "application/json")
        .body(r#"{"feature": "export"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["data"]["feature"], "export");

    let batch = json!([
        {"specversion": "1.0", "id": "ce-3", "source": "/s", "type": "system.error", "data": {"message": "disk full"}},
        {"specversion": "1.0", "id": "ce-1", "source": "/orders", "type": "order.created", "data": {"order_id": "ord-1"}},
        {"specversion": "1.0", "source": "/s", "type": "system.error"}
    ]);
    let response = server
        .post_as(
            "/api/v1/events",
            "application/cloudevents-batch+json",
            &batch,
        )
        .await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["accepted"], 1);
    assert_eq!(result["duplicates"], 1);
    assert_eq!(result["rejected"], 1);
    let statuses: Vec<i64> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 422]);
    assert_eq!(result["results"][2]["errors"][0]["pointer"], "/id");
}

#[tokio::test]
async fn batch_endpoint_reports_each_item() {
    let server = TestServer::start().await;
    let body = json!({"events": [
        user_created("u1"),
        {"type": "order.created", "source": "shop", "data": {"total": 3}},
        {"type": "page.view", "source": "web", "data": {"url": "/"}}
    ]});
    let response = server.post_json("/api/v1/events/batch", &body).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["accepted"], 2);
    assert_eq!(result["rejected"], 1);
    assert_eq!(result["results"][1]["status"], 422);
    assert_eq!(
        result["results"][1]["errors"][0]["pointer"],
        "/data/order_id"
    );
    let id = result["results"][2]["id"].as_str().unwrap();
    let (status, event) = server.get_json(&format!("/api/v1/events/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(event["metadata"]["stream"], "events:analytics");
}

#[tokio::test]
async fn listing_filters_and_pages_with_a_cursor() {
    let server = TestServer::start().await;
    let mut events: Vec<Value> = (0..12).map(|i| user_created(&format!("u{i}"))).collect();
    events.extend((0..8).map(|i| {
        json!({"type": "order.updated", "source": "shop", "subject": format!("ord-{i}"),
                                        "data": {"order_id": format!("ord-{i}"), "status": "paid"}})
    }));
    events.push(
        json!({"type": "order.created", "source": "shop", "time": "2020-05-01T00:00:00Z",
                       "data": {"order_id": "old"}}),
    );
    let response = server
        .post_json("/api/v1/events/batch", &json!(events))
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["accepted"], 21);

    let mut seen = Vec::new();
    let mut path = "/api/v1/events?limit=5".to_string();
    loop {
        let (status, page) = server.get_json(&path).await;
        assert_eq!(status, 200);
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["metadata"]["sequence"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/events?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (1..=21).rev().collect::<Vec<i64>>(),
        "every event once, newest first"
    );

    let (_, page) = server
        .get_json("/api/v1/events?event_type=order.*&limit=100")
        .await;
    assert_eq!(page["count"], 9);
    let (_, page) = server
        .get_json("/api/v1/events?stream=events:business&source=shop&subject=ord-3")
        .await;
    assert_eq!(page["count"], 1);
    let (_, page) = server
        .get_json("/api/v1/events?end_time=2021-01-01T00:00:00Z")
        .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["events"][0]["data"]["order_id"], "old");
    let (_, page) = server
        .get_json("/api/v1/events?start_time=2021-01-01T00:00:00Z&limit=1000")
        .await;
    assert_eq!(page["count"], 20);
    let (_, page) = server.get_json("/api/v1/events?limit=5&offset=18").await;
    assert_eq!(page["count"], 3);
}

#[tokio::test]
async fn health_metrics_and_docs_are_served() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/health/live").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"]["status"], "up");
    assert_eq!(body["broker"]["status"], "up");

    server
        .post_json("/api/v1/events", &user_created("u1"))
        .await;
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("eventflow_producer_batch_size_count"),
        "{metrics}"
    );

    let (status, openapi) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/api/v1/events"]["post"].is_object());
    let docs = server
        .client
        .get(server.url("/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
}

#[tokio::test]
async fn stats_report_ingest_lag_dead_letters_and_outbox() {
    let server = TestServer::start().await;
    let (status, before) = server.get_json("/api/v1/stats").await;
    assert_eq!(status, 200, "{before}");
    for n in 0..3 {
        server.post_event(&format!("stats.test{n}")).await;
    }
    let (_, after) = server.get_json("/api/v1/stats").await;
    assert_eq!(
        after["events_ingested_total"].as_u64().unwrap()
            - before["events_ingested_total"].as_u64().unwrap(),
        3,
        "{before} {after}"
    );
    assert_eq!(after["dlq_size"], 0, "{after}");
    let caught_up = common::eventually(Duration::from_secs(10), || async {
        let (_, stats) = server.get_json("/api/v1/stats").await;
        stats["consumer_lag"] == 0 && stats["outbox_backlog"] == 0
    })
    .await;
    assert!(caught_up, "the workers read every event");
}
