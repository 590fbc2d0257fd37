//! Limits on what a client controls, through real sockets: slow and idle connections are
//! closed, a body trickled too slowly gets 408, oversized headers 431, JSON nested too deeply
//! 422; the server keeps serving everyone else meanwhile.

mod common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> TestServer {
    TestServer::start_with(
        &[("HTTP_IDLE_TIMEOUT", "0.5"), ("HTTP_REQUEST_TIMEOUT", "1")],
        Vec::new(),
    )
    .await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&answer).to_string())
}

#[tokio::test]
async fn a_client_sending_its_headers_too_slowly_is_disconnected() {
    let server = server().await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: eventflow\r\n")
        .await
        .unwrap();
    assert!(
        until_closed(&mut slow, Duration::from_secs(3))
            .await
            .is_some(),
        "the connection was closed"
    );
    let (status, _) = server.call("GET", "/health/live", None).await;
    assert_eq!(status, 200, "everyone else is served");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = server().await;
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: eventflow\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        until_closed(&mut idle, Duration::from_secs(3))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_body_trickled_too_slowly_gets_408() {
    let server = server().await;
    let mut slow = connect(&server).await;
    slow.write_all(
        b"POST /api/v1/events HTTP/1.1\r\nHost: eventflow\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"type\":",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("x-correlation-id"),
        "the 408 is correlated: {answer}"
    );
}

#[tokio::test]
async fn oversized_headers_get_431_and_deep_json_422() {
    let server = server().await;
    let response = server
        .client
        .get(server.url("/health/live"))
        .header("x-padding", "p".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);

    let depth = eventflow::api::problem::MAX_JSON_DEPTH + 1;
    let data = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(r#"{{"type": "deep.event", "source": "tests", "data": {data}}}"#);
    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("deeper than"),
        "{problem}"
    );
    // The same data in binary content mode (the body is the event's data).
    let response = server
        .client
        .post(server.url("/api/v1/events"))
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "deep-1")
        .header("ce-source", "tests")
        .header("ce-type", "deep.event")
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
}
