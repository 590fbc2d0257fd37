//! The HTTP side of a delivery: one signed POST with timeouts, only ever to vetted addresses.
//!
//! Host names are resolved by [`GuardedResolver`], which refuses non-public answers at connect
//! time, so a DNS answer that changed since the subscription was created (rebinding) cannot lead
//! into the private network; literal addresses are checked before each request. Redirects are not
//! followed: a redirect could point anywhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::SigningSecret;
use super::content_mode::Encoding;
use super::dead_letter::{MAX_RESPONSE_BODY, truncate};
use super::url_guard::{check_resolved, is_public};

/// Idle connections kept per endpoint.
const IDLE_PER_HOST: usize = 64;

/// What one request carries.
pub struct WebhookRequest<'a> {
    /// The endpoint.
    pub url: &'a str,
    /// The delivery id (`webhook-id`), the same on every attempt.
    pub webhook_id: &'a str,
    /// The subscription's secrets: the current one, and the previous one during a rotation.
    pub secrets: &'a [SigningSecret],
    /// The event in the subscription's content mode: media type, `ce-*` headers, body.
    pub encoding: Encoding<'a>,
    /// The subscription's static headers.
    pub static_headers: &'a [(String, String)],
    /// The event's correlation id.
    pub correlation_id: &'a str,
    /// The event's W3C trace context.
    pub traceparent: Option<&'a str>,
    /// The replay the delivery belongs to, when it is one.
    pub replay_id: Option<&'a str>,
}

/// A request that did not end in a 2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The status, when the endpoint answered.
    pub status: Option<u16>,
    /// What went wrong, in a line.
    pub error: String,
    /// The start of the response body, when there was one.
    pub body: Option<String>,
    /// How long the endpoint asked us to wait (429 and 503 with Retry-After).
    pub retry_after: Option<Duration>,
}

/// Sends webhook requests over a shared connection pool.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl WebhookClient {
    /// A client with `timeout` for connecting and for the whole request.
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("EventFlow/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(Self {
            http,
            allow_private,
        })
    }

    /// POSTs one signed delivery; Ok with the status on 2xx.
    pub async fn send(&self, request: WebhookRequest<'_>) -> Result<u16, Failure> {
        self.check_literal_host(request.url)?;
        let timestamp = Utc::now().timestamp();
        // One signature per secret, space-separated, as Standard Webhooks allows.
        let signature = request
            .secrets
            .iter()
            .map(|secret| secret.sign(request.webhook_id, timestamp, &request.encoding.body))
            .collect::<Vec<_>>()
            .join(" ");
        let mut post = self.http.post(request.url);
        if let Some(replay_id) = request.replay_id {
            post = post.header(crate::replay::REPLAY_HEADER, replay_id);
        }
        if let Some(traceparent) = request.traceparent {
            post = post.header(crate::events::trace::TRACEPARENT, traceparent);
        }
        for (name, value) in request
            .static_headers
            .iter()
            .chain(request.encoding.headers)
        {
            post = post.header(name, value);
        }
        let response = post
            .header("content-type", request.encoding.content_type)
            .header("webhook-id", request.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-correlation-id", request.correlation_id)
            .body(request.encoding.body)
            .send()
            .await
            .map_err(|err| failure_without_answer(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        // Retry-After counts where it means "come back later": 429 and 503.
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| retry_after(response.headers()))
            .flatten();
        let body = read_start(response).await;
        Err(Failure {
            status: Some(status.as_u16()),
            error: format!("endpoint answered {status}"),
            body: Some(body).filter(|b| !b.is_empty()),
            retry_after,
        })
    }

    /// Refuses a URL whose host is a literal non-public address (names are checked by the
    /// resolver).
    fn check_literal_host(&self, url: &str) -> Result<(), Failure> {
        let host = reqwest::Url::parse(url).ok().and_then(|u| match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        });
        match host {
            Some(ip) if !self.allow_private && !is_public(ip) => Err(Failure {
                status: None,
                error: "refused: the webhook URL does not lead to a public address".into(),
                body: None,
                retry_after: None,
            }),
            _ => Ok(()),
        }
    }
}

/// Installs the TLS crypto provider (*ring*) that every reqwest client of this crate needs:
/// reqwest is built without a default one. Installing again is a no-op.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The innermost cause of `err`, which names what went wrong (connection refused, timed out…);
/// reqwest's own message names only the URL.
pub fn innermost_cause(err: &reqwest::Error) -> String {
    let mut cause = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    cause
}

/// Why a request got no answer, in a line.
fn failure_without_answer(err: &reqwest::Error) -> Failure {
    let cause = innermost_cause(err);
    let error = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        format!("request failed: {cause}")
    };
    Failure {
        status: None,
        error,
        body: None,
        retry_after: None,
    }
}

/// The wait a Retry-After header asks for: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// The start of a response body, read no further than needed.
async fn read_start(mut response: reqwest::Response) -> String {
    let mut start = Vec::new();
    while start.len() < MAX_RESPONSE_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => start.extend_from_slice(&chunk),
            _ => break,
        }
    }
    // NUL characters cannot be stored in PostgreSQL text.
    let text = String::from_utf8_lossy(&start).replace('\0', "\u{FFFD}");
    truncate(&text, MAX_RESPONSE_BODY).to_string()
}

/// Resolves webhook hosts and refuses answers outside the public internet (unless allowed).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let vetted = check_resolved(host, addresses, allow_private)?;
            Ok(Box::new(vetted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
