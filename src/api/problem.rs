//! RFC 9457 problem details: every error the API returns, and the extractors that turn
//! framework rejections into them.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::events::{InvalidEvent, Violation};
use crate::producer::ProduceError;
use crate::schemas::RegisterError;
use crate::store::StoreError;

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response: status, a stable problem type, and a precise detail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON it claims to be.
    #[error("{0}")]
    MalformedJson(String),
    /// A parameter or header is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The body's media type is not accepted here.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body (or batch) is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The event breaks the CloudEvents rules or its payload schema.
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    /// The request is well-formed JSON but its content is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Parts of the request body are not acceptable: each with the JSON pointer of where.
    #[error("{}", .0.iter().map(|v| format!("{}: {}", v.pointer, v.detail)).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<Violation>),
    /// No API key, or one that is not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// The API key lacks the scope the request needs.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing is at this address.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with stored state.
    #[error("{0}")]
    Conflict(String),
    /// The caller sent more requests than its rate allows; a token is back after this long.
    #[error("too many requests: the rate limit of this API key is reached; retry in {} ms", .0.as_millis())]
    TooManyRequests(std::time::Duration),
    /// The request was not received and answered in time.
    #[error("the request was not received and answered within {} s", .0.as_secs_f64())]
    RequestTimeout(std::time::Duration),
    /// A dependency is down; retry after the given seconds.
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

/// The problem+json body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What exactly went wrong.
    pub detail: String,
    /// Each violation, for invalid events and invalid filters: a JSON pointer and what is wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Violation>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Content too large",
            ),
            Self::InvalidEvent(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-event",
                "Invalid event",
            ),
            Self::Invalid(_) | Self::InvalidFields(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "Invalid request",
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem {
            problem_type: format!("urn:eventflow:problem:{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                Self::InvalidEvent(invalid) => invalid.0.clone(),
                Self::InvalidFields(violations) => violations.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.parts().0;
        let mut response = (status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyRequests(wait) => {
                // Whole seconds, rounded up: a client never comes back too early.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<&StoreError> for ApiError {
    fn from(err: &StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) | StoreError::TimedOut(_) => {
                tracing::warn!(error = %err, "event store unavailable");
                Self::Unavailable("the event store is unavailable; retry shortly".into())
            }
            _ => {
                tracing::error!(error = %err, "event store error");
                Self::Internal
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::from(&err)
    }
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::Invalid(violations) => Self::InvalidFields(violations),
            RegisterError::Store(store) => Self::from(&store),
        }
    }
}

impl From<ProduceError> for ApiError {
    fn from(err: ProduceError) -> Self {
        match err {
            ProduceError::Store(store) => Self::from(store.as_ref()),
            ProduceError::Closed => Self::Unavailable("EventFlow is shutting down".into()),
        }
    }
}

/// The raw request body, with size and read errors as problems.
pub struct RawBody(
    /// The body.
    pub axum::body::Bytes,
);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection: BytesRejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge("the request body is larger than MAX_BODY_BYTES".into())
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// Query parameters, with parse errors as problems.
pub struct ApiQuery<T>(
    /// The parameters.
    pub T,
);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_nul(parts.uri.query().unwrap_or_default(), "query parameters")?;
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Path parameters, with decoding errors (such as invalid UTF-8) as problems.
pub struct ApiPath<T>(
    /// The parameters.
    pub T,
);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_nul(parts.uri.path(), "the path")?;
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection: PathRejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Refuses a percent-encoded NUL character (`%00`) in `text`: no identifier or filter contains
/// one, and PostgreSQL cannot compare text with it.
fn refuse_nul(text: &str, part: &str) -> Result<(), ApiError> {
    if text.to_ascii_lowercase().contains("%00") {
        return Err(ApiError::BadRequest(format!(
            "{part} must not contain NUL characters (%00)"
        )));
    }
    Ok(())
}

/// Decodes a JSON body into `T`: malformed JSON is a 400, content that does not fit `T` a 422
/// naming the field at fault.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(parse_json(body)?).map_err(|err| {
        let path = err.path().to_string();
        let cause = err.into_inner();
        ApiError::Invalid(if path == "." {
            cause.to_string()
        } else {
            format!("{path}: {cause}")
        })
    })
}

/// Like [`decode_json`], with `T`'s default for an empty body (everything in it is optional).
pub fn decode_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        decode_json(body)
    }
}

/// Deepest nesting of arrays and objects a JSON body may have.
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses a JSON body, reporting where it breaks; refuses nesting deeper than
/// [`MAX_JSON_DEPTH`].
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::MalformedJson(format!("the body is not valid JSON: {err}")))?;
    refuse_deep_json(&value, MAX_JSON_DEPTH)?;
    Ok(value)
}

/// Refuses `value` when its arrays and objects nest deeper than `max` levels.
pub fn refuse_deep_json(value: &serde_json::Value, max: usize) -> Result<(), ApiError> {
    if depth(value) > max {
        return Err(ApiError::Invalid(format!(
            "the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(())
}

/// How deeply arrays and objects nest in `value` (a scalar is 0), without recursion.
fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, level)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        pending.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

impl From<crate::schemas::CheckError> for ApiError {
    fn from(err: crate::schemas::CheckError) -> Self {
        match err {
            crate::schemas::CheckError::Invalid(violations) => {
                Self::InvalidEvent(InvalidEvent(violations))
            }
            crate::schemas::CheckError::Store(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_and_too_deep_bodies_are_refused() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_json(deep.as_bytes()).is_ok());
        let deeper = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert!(matches!(
            parse_json(deeper.as_bytes()),
            Err(ApiError::Invalid(_))
        ));
        // Far deeper: refused by the parser itself, before any work.
        let abyss = "[".repeat(100_000);
        assert!(matches!(
            parse_json(abyss.as_bytes()),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
