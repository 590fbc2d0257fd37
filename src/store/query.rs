//! What can be asked of the store: list filters, keyset cursors and time ranges.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::events::Event;

/// Matches event types exactly or by prefix (`order.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// This type only.
    Exact(String),
    /// Every type starting with this prefix, which ends in a dot (`order.`).
    Prefix(String),
}

impl TypeFilter {
    /// Parses `order.created` or `order.*`.
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_string()),
            None => Self::Exact(pattern.to_string()),
        }
    }

    /// Whether `event_type` passes the filter.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(exact) => event_type == exact,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }
}

/// A position in the newest-first listing: the next page starts below this sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(
    /// The sequence of the last event of the previous page.
    pub i64,
);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Cursor)
    }
}

/// Filters and paging for [`super::EventStore::list`]; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Exact type or prefix.
    pub event_type: Option<TypeFilter>,
    /// Exact source.
    pub source: Option<String>,
    /// Exact stream, such as `events:user`.
    pub stream: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Exact correlation id.
    pub correlation_id: Option<String>,
    /// Event time at or after.
    pub start_time: Option<DateTime<Utc>>,
    /// Event time before.
    pub end_time: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip (after the cursor, if any).
    pub offset: u32,
    /// Keyset position from a previous page.
    pub cursor: Option<Cursor>,
}

impl EventQuery {
    /// The filters that compare a column for equality, as (column, value) for those set.
    pub(crate) fn equality_filters(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("source", &self.source),
            ("stream", &self.stream),
            ("subject", &self.subject),
            ("correlation_id", &self.correlation_id),
        ]
        .into_iter()
        .filter_map(|(column, value)| Some((column, value.as_deref()?)))
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<Event>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// One batch of a replay's walk along the store order.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// Events of the range, in store order.
    pub events: Vec<Event>,
    /// Where the walk stands: the next batch starts after this sequence (the last event's when
    /// the batch is full, else the end of the stretch walked, which may hold no event at all).
    pub scanned_through: i64,
}

/// Sequences one call of a replay's walk reads at most, so that a sparse window (few of its
/// events among many of other streams) still advances in calls of bounded length.
pub(super) const MAX_WALK: i64 = 100_000;

/// A window of event time `[start, end)`, optionally on one stream.
#[derive(Debug, Clone)]
pub struct TimeRange {
    /// Only events of this stream.
    pub stream: Option<String>,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// The smallest text above every text starting with `prefix`, in byte order: the prefix with
/// its last character raised by one (`None` when no character can be raised).
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
