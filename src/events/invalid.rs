//! Why an event was refused: one or more violations, each pointing at the offending member.

use serde::Serialize;
use utoipa::ToSchema;

/// One rule an event broke, located by a JSON pointer into the event as sent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Violation {
    /// RFC 6901 pointer to the member, such as `/data/user_id` (binary mode: the attribute's member).
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// An event that breaks the CloudEvents rules or its type's payload schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct InvalidEvent(
    /// Every violation found, in the order of the event's members.
    pub Vec<Violation>,
);

fn summary(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.pointer, v.detail))
        .collect::<Vec<_>>()
        .join("; ")
}
