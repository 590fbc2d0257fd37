//! Error types: parse errors abort parsing, evaluation errors are collected.

use std::fmt;

/// The error categories of spec section 3.3, named as the TCK names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The expression text is not valid CESQL.
    Parse,
    /// A math operator failed (division by zero, overflow).
    Math,
    /// An implicit or explicit type cast failed.
    Cast,
    /// The expression referenced an attribute absent from the event.
    MissingAttribute,
    /// No function with the called name and arity exists.
    MissingFunction,
    /// A function rejected its arguments (e.g. negative length).
    FunctionEvaluation,
    /// Any other error.
    Generic,
}

impl ErrorKind {
    /// The TCK's name for this kind (`parse`, `math`, `missingAttribute`, ...),
    /// so errors can be compared with test vectors and reported to API users.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Math => "math",
            ErrorKind::Cast => "cast",
            ErrorKind::MissingAttribute => "missingAttribute",
            ErrorKind::MissingFunction => "missingFunction",
            ErrorKind::FunctionEvaluation => "functionEvaluation",
            ErrorKind::Generic => "generic",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an expression could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CESQL parse error at byte {position}: {message}")]
pub struct ParseError {
    /// Byte offset into the expression text where the problem was found.
    pub position: usize,
    /// What was wrong, for humans.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

/// One error raised while evaluating; evaluation continues after it (spec 3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct EvalError {
    /// The spec category of the error.
    pub kind: ErrorKind,
    /// What went wrong, for humans.
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EvalError {
            kind,
            message: message.into(),
        }
    }
}
