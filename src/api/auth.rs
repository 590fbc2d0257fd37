//! Access control of the API: which scope each route needs, the caller's key, and its rate.
//!
//! Events are written with `events:write` and read with `events:read`; subscriptions, dead
//! letters and replays need `admin`. Health probes, the OpenAPI document and the docs page stay
//! open; `/metrics` asks for METRICS_API_KEY when one is set. With no API_KEYS at all (allowed
//! outside production) the API is open, and rate limits apply to all callers together.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::keys::{ApiKeys, Scope};
use super::problem::ApiError;
use super::rate_limit::RateLimiter;

/// The rate-limit bucket of callers when the API is open.
const ANONYMOUS: &str = "anonymous";

/// Who may call the API, and how often.
#[derive(Debug, Default)]
pub struct Access {
    /// API_KEYS; none leaves the API open.
    pub keys: ApiKeys,
    /// RATE_LIMIT_PER_SEC and RATE_LIMIT_BURST, when set.
    pub limiter: Option<RateLimiter>,
}

/// The name of the API key a request came with (never the key), on its response for the access
/// log.
#[derive(Debug, Clone)]
pub struct KeyName(
    /// The name from API_KEYS.
    pub String,
);

/// Checks the key of a request to the API against the scope its route needs, then its rate.
pub async fn authorize(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    if access.keys.is_empty() {
        return match limit(&access, ANONYMOUS) {
            Some(refused) => refused,
            None => next.run(request).await,
        };
    }
    let Some(presented) = presented_key(request.headers()) else {
        return ApiError::Unauthorized(
            "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>".into(),
        )
        .into_response();
    };
    let Some(key) = access.keys.find(presented) else {
        return ApiError::Unauthorized("the API key is not valid".into()).into_response();
    };
    let name = key.name().to_string();
    let scope = scope_of(request.method(), request.uri().path());
    let mut response = if !key.allows(scope) {
        ApiError::Forbidden(format!(
            "the API key {name:?} lacks the {} scope this request needs",
            scope.as_str()
        ))
        .into_response()
    } else {
        match limit(&access, &name) {
            Some(refused) => refused,
            None => next.run(request).await,
        }
    };
    response.extensions_mut().insert(KeyName(name));
    response
}

/// The `429` for `caller` when it is over its rate, if a limit is set.
fn limit(access: &Access, caller: &str) -> Option<Response> {
    let limiter = access.limiter.as_ref()?;
    limiter
        .take(caller)
        .err()
        .map(|wait| ApiError::TooManyRequests(wait).into_response())
}

/// Checks METRICS_API_KEY on a request for `/metrics`.
pub async fn authorize_metrics(
    State(metrics_key): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Response {
    if !metrics_key.is_empty()
        && presented_key(request.headers())
            .and_then(|key| metrics_key.find(key))
            .is_none()
    {
        return ApiError::Unauthorized("/metrics needs METRICS_API_KEY as a bearer token".into())
            .into_response();
    }
    next.run(request).await
}

/// The scope a request to `path` with `method` needs.
fn scope_of(method: &Method, path: &str) -> Scope {
    let admin = [
        "/api/v1/subscriptions",
        "/api/v1/dlq",
        "/api/v1/replays",
        "/api/v1/events/replay",
        "/api/v1/filters",
    ];
    // Whole segments only: `/api/v1/events/replay-42` is an event, not the replay endpoint.
    let under = |prefix: &&str| {
        path.strip_prefix(*prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let reads = method == Method::GET || method == Method::HEAD;
    if under(&"/api/v1/event-types") && !reads && !path.ends_with("/validate") {
        // Changing the registry changes what every producer may send.
        Scope::Admin
    } else if under(&"/api/v1/event-types") {
        Scope::EventsRead
    } else if admin.iter().any(under) {
        Scope::Admin
    } else if reads {
        Scope::EventsRead
    } else {
        Scope::EventsWrite
    }
}

/// The key a request presents: `Authorization: Bearer <key>`, or `X-API-Key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_scope_of_what_they_touch() {
        let cases = [
            (Method::POST, "/api/v1/events", Scope::EventsWrite),
            (Method::POST, "/api/v1/events/batch", Scope::EventsWrite),
            (Method::GET, "/api/v1/events", Scope::EventsRead),
            (Method::GET, "/api/v1/events/abc", Scope::EventsRead),
            (Method::POST, "/api/v1/events/replay", Scope::Admin),
            (Method::GET, "/api/v1/replays/rpl_1", Scope::Admin),
            (Method::GET, "/api/v1/subscriptions", Scope::Admin),
            (Method::DELETE, "/api/v1/dlq/x", Scope::Admin),
            (Method::POST, "/api/v1/filters/evaluate", Scope::Admin),
            (Method::GET, "/api/v1/events/replay-42", Scope::EventsRead),
            (Method::GET, "/api/v1/dlqx", Scope::EventsRead),
        ];
        for (method, path, scope) in cases {
            assert_eq!(scope_of(&method, path), scope, "{method} {path}");
        }
    }

    #[test]
    fn keys_come_as_bearer_tokens_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", "k2".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k2"));
        headers.insert(header::AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k1"));
        headers.insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k2"));
    }
}
