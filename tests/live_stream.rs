//! The live event stream (`GET /api/v1/events/stream`) through a real server: filters, ids that
//! resume without gaps, bad `Last-Event-ID`, a client that stops reading being dropped, and the
//! limit on streams open at once.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

/// One Server-Sent Events message.
#[derive(Debug)]
struct Message {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads messages from an open stream, skipping keep-alive comments.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens the stream at `path`, after the event `last_id` when given.
    async fn open(server: &TestServer, path: &str, last_id: Option<&str>) -> Self {
        let mut request = server.client.get(server.url(path));
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream opened");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next message, within 10 seconds; `None` when the stream ended.
    async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(message) = parse(&block) {
                        return Some(message);
                    }
                    continue;
                }
                let chunk = self.response.chunk().await.expect("stream readable")?;
                self.buffer
                    .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
            }
        })
        .await
        .expect("a message within 10 s")
    }
}

/// One block of `field: value` lines; `None` for a comment.
fn parse(block: &str) -> Option<Message> {
    let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_string(),
            "id" => id = Some(value.to_string()),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| Message {
        event,
        id,
        data: serde_json::from_str(&data).expect("JSON data"),
    })
}

#[tokio::test]
async fn new_events_stream_with_filters_and_resume_after_their_id() {
    let server = TestServer::start().await;
    server.post_event("live.before").await;
    let mut stream =
        SseReader::open(&server, "/api/v1/events/stream?event_type=live.*", None).await;
    let first = server.post_event("live.one").await;
    server.post_event("other.skipped").await;
    let second = server.post_event("live.two").await;

    let message = stream.next().await.unwrap();
    assert_eq!(
        (message.event.as_str(), &message.data["id"]),
        ("event", &json!(first))
    );
    assert_eq!(
        message.data["type"], "live.one",
        "only events stored after it opened"
    );
    assert_eq!(
        message.id.as_deref(),
        Some(message.data["metadata"]["sequence"].to_string().as_str()),
        "the id is the store sequence"
    );
    let message = stream.next().await.unwrap();
    assert_eq!(message.data["id"], json!(second));
    let resume_from = message.id.unwrap();
    drop(stream);

    // Events stored while no one listens arrive on resuming after the last id, in order.
    let missed: Vec<String> = [
        server.post_event("live.three").await,
        server.post_event("other.skipped").await,
        server.post_event("live.four").await,
    ]
    .into();
    let mut stream = SseReader::open(
        &server,
        "/api/v1/events/stream?event_type=live.*&source=tests",
        Some(&resume_from),
    )
    .await;
    assert_eq!(stream.next().await.unwrap().data["id"], json!(missed[0]));
    assert_eq!(stream.next().await.unwrap().data["id"], json!(missed[2]));

    // Other filters: a subject that no event has sends nothing, until one has it.
    let mut by_subject =
        SseReader::open(&server, "/api/v1/events/stream?subject=order-7", None).await;
    server.post_event("live.no-subject").await;
    let with_subject =
        json!({"type": "live.subject", "source": "tests", "subject": "order-7", "data": {}});
    let (status, created) = server
        .call("POST", "/api/v1/events", Some(&with_subject))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(by_subject.next().await.unwrap().data["id"], created["id"]);
}

#[tokio::test]
async fn a_bad_last_event_id_is_a_problem() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/api/v1/events/stream"))
        .header("Last-Event-ID", "not-a-sequence")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_resumes_without_gaps() {
    let server = TestServer::start().await;
    let mut stream = SseReader::open(&server, "/api/v1/events/stream", None).await;
    // Far more than the server buffers and the sockets hold, while the client reads nothing.
    let mut stored = 0;
    for batch in 0..60 {
        let events: Vec<Value> = (0..500)
            .map(|n| json!({"type": "live.flood", "source": "tests", "data": {"batch": batch, "n": n, "pad": "x".repeat(1000)}}))
            .collect();
        let body = json!({ "events": events });
        let (status, result) = server
            .call("POST", "/api/v1/events/batch", Some(&body))
            .await;
        assert_eq!(status, 200, "{result}");
        stored += result["accepted"].as_u64().unwrap();
    }
    tokio::time::sleep(Duration::from_secs(7)).await;

    let mut received = 0u64;
    let mut last_id = None;
    let dropped = loop {
        let message = stream.next().await.expect("a final message before the end");
        if message.event == "dropped" {
            break message;
        }
        received += 1;
        last_id = message.id;
    };
    assert!(
        dropped.data["reason"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"),
        "{:?}",
        dropped.data
    );
    assert!(stream.next().await.is_none(), "the stream ends after it");
    assert!(received < stored, "dropped before it had everything");

    // Resuming from the last id delivers the rest, each event once.
    let mut stream = SseReader::open(&server, "/api/v1/events/stream", last_id.as_deref()).await;
    let mut previous: i64 = last_id.unwrap().parse().unwrap();
    while received < stored {
        let message = stream.next().await.unwrap();
        assert_eq!(message.event, "event");
        let sequence: i64 = message.id.unwrap().parse().unwrap();
        assert_eq!(sequence, previous + 1, "no gap and no repeat");
        previous = sequence;
        received += 1;
    }
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_until_one_closes() {
    let server = TestServer::start_with(&[("LIVE_STREAM_MAX_CLIENTS", "1")], Vec::new()).await;
    let first = SseReader::open(&server, "/api/v1/events/stream", None).await;
    let refused = server
        .client
        .get(server.url("/api/v1/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    // The gauge is process-wide, and other tests of this binary hold streams too.
    let metrics = server.metrics().await;
    let open: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("eventflow_live_streams "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_default();
    assert!(open >= 1.0, "{metrics}");
    drop(first);
    let reopened = common::eventually(Duration::from_secs(5), || async {
        let response = server
            .client
            .get(server.url("/api/v1/events/stream"))
            .send()
            .await
            .unwrap();
        response.status() == 200
    })
    .await;
    assert!(reopened, "the closed stream's place is free again");
}
