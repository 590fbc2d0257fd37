//! `POST /api/v1/filters/evaluate`: the filter playground, where a filter is tried against an
//! event before a subscription is saved with it.
//!
//! It evaluates either one CESQL expression, answering the value and the first error as the
//! CESQL TCK states them (so the TCK can be run through the API), or a subscription's `filters`
//! array, answering whether the event matches. The event is taken as the CloudEvent JSON given,
//! not stored or normalised: what the expression sees is exactly what was sent. Only a request
//! that is not one of those two shapes is refused; an expression that does not parse is an answer
//! (`error.kind: "parse"`), since finding that out is what the playground is for.

use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::problem::{ApiError, Problem, RawBody, decode_json};
use super::subscriptions::compile_filters;
use crate::cesql::{self, Expression};
use crate::events::{CloudEventJson, Violation};

/// The context attributes a CloudEvent must have.
const REQUIRED_ATTRIBUTES: [&str; 4] = ["specversion", "id", "source", "type"];

/// What to evaluate, and against which event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// A CloudEvents SQL expression (give this or `filters`).
    expression: Option<String>,
    /// A subscription's filters array (give this or `expression`).
    #[schema(value_type = Option<Vec<Object>>)]
    filters: Option<Vec<Value>>,
    /// The CloudEvent, in its JSON format.
    #[schema(value_type = Object)]
    event: Map<String, Value>,
}

/// The outcome: an expression's value and error, or whether filters match.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Evaluated {
    /// An expression's value and its first error.
    Expression {
        /// `true`/`false`, an integer or a string (`false` when the expression does not parse).
        #[schema(value_type = Object)]
        result: Value,
        /// The first error evaluation raised (or the parse error); `null` when none.
        error: Option<EvaluationError>,
    },
    /// Whether the event passes every filter.
    Filters {
        /// True when it does.
        matches: bool,
    },
}

/// An error of CESQL evaluation, as the TCK names its kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationError {
    /// `parse`, `math`, `cast`, `missingAttribute`, `missingFunction`, `functionEvaluation` or
    /// `generic`.
    kind: &'static str,
    /// What went wrong.
    message: String,
}

/// Evaluates a CESQL expression or a filters array against a CloudEvent.
#[utoipa::path(
    post, path = "/api/v1/filters/evaluate", tag = "subscriptions",
    request_body = Evaluation,
    responses(
        (status = 200, description = "The outcome", body = Evaluated),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an expression or filters with a CloudEvent", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn evaluate(RawBody(body): RawBody) -> Result<Json<Evaluated>, ApiError> {
    let request: Evaluation = decode_json(&body)?;
    check_cloud_event(&request.event)?;
    let event = CloudEventJson(&request.event);
    match (request.expression, request.filters) {
        (Some(expression), None) => Ok(Json(evaluate_expression(&expression, &event))),
        (None, Some(filters)) => Ok(Json(Evaluated::Filters {
            matches: compile_filters(filters)?.matches_attributes(&event),
        })),
        _ => Err(ApiError::InvalidFields(vec![Violation::new(
            "",
            "give either expression or filters",
        )])),
    }
}

/// The value and first error of `expression` on `event`.
fn evaluate_expression(expression: &str, event: &CloudEventJson<'_>) -> Evaluated {
    match Expression::parse(expression) {
        // The TCK's reading: an expression that does not parse is `false` with a parse error.
        Err(err) => Evaluated::Expression {
            result: Value::from(false),
            error: Some(EvaluationError {
                kind: cesql::ErrorKind::Parse.as_str(),
                message: err.to_string(),
            }),
        },
        Ok(parsed) => {
            let outcome = parsed.evaluate(event);
            let result = match outcome.value {
                cesql::Value::Boolean(value) => Value::from(value),
                cesql::Value::Integer(value) => Value::from(value),
                cesql::Value::String(value) => Value::from(value),
            };
            Evaluated::Expression {
                result,
                error: outcome
                    .errors
                    .into_iter()
                    .next()
                    .map(|err| EvaluationError {
                        kind: err.kind.as_str(),
                        message: err.message,
                    }),
            }
        }
    }
}

/// Refuses an event without the string attributes every CloudEvent has.
fn check_cloud_event(event: &Map<String, Value>) -> Result<(), ApiError> {
    let missing: Vec<Violation> = REQUIRED_ATTRIBUTES
        .iter()
        .filter(|name| !event.get(**name).is_some_and(Value::is_string))
        .map(|name| {
            Violation::new(
                format!("/event/{name}"),
                "a CloudEvent has this attribute, as a string",
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::InvalidFields(missing))
    }
}
