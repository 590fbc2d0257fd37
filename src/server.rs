//! The HTTP server: hyper serving a router with the limits a public endpoint needs.
//!
//! `axum::serve` runs connections without a timer, so a client that sends its headers slowly,
//! or opens keep-alive connections and never uses them, holds them forever. Here every
//! connection has HTTP_IDLE_TIMEOUT to deliver each request's headers (an idle keep-alive
//! connection too), headers are capped at [`MAX_HEADER_BYTES`] (`431` beyond), and shutdown is
//! graceful: the listener closes, requests under way are answered (for [`SHUTDOWN_GRACE`] at
//! most). It speaks HTTP/1.1; TLS and HTTP/2 are for the proxy in front.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Largest request head (request line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long requests under way may take to be answered once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown`, then waits for the requests under way.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    // HTTP/1.1 only: an HTTP/2 connection kept alive by pings would have no idle limit; TLS and
    // HTTP/2 belong to the proxy in front.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = router
            .clone()
            .map_request(|request: hyper::Request<Incoming>| request.map(Body::new));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // A client that never reads its answer cannot hold the shutdown up for longer than this.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}
