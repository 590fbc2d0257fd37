//! Subscription filters: the filter dialects of the CloudEvents Subscriptions API (§3.2.4) —
//! `exact`, `prefix`, `suffix`, `all`, `any`, `not` and `sql` (CloudEvents SQL v1).
//!
//! A subscription's `filters` is an array of dialect objects, and an event matches when every one
//! of them is true (and its type matches `event_types`). Filters are compiled once, when a
//! subscription is created, changed or loaded, into [`Filter`]s that match without parsing
//! anything again; a filter that does not compile is refused with the JSON pointer of what is
//! wrong (and, for `sql`, the character position), and is never stored. Keys name context
//! attributes, EventFlow's extensions (`partitionkey`, `priority`, `correlationid`), and, as an
//! EventFlow extension, `data.<field>[.<field>…]` paths into the event's JSON data (see
//! [`crate::events::EventAttributes`]); an attribute the event lacks makes `exact`, `prefix` and
//! `suffix` false, as a missing attribute makes a CESQL expression an error, hence false.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::cesql::{Attributes, Expression};
use crate::events::{DATA_PATH_PREFIX, Event, EventAttributes};

/// Deepest nesting of `all`, `any` and `not`.
const MAX_DEPTH: usize = 8;
/// Most dialect objects in one subscription's filters, nested ones included.
const MAX_FILTERS: usize = 64;
/// Longest CESQL expression, in bytes.
const MAX_SQL_LEN: usize = 4096;

/// One compiled filter expression.
#[derive(Debug, Clone)]
enum Filter {
    /// Every attribute equals its value.
    Exact(Vec<(String, String)>),
    /// Every attribute starts with its value.
    Prefix(Vec<(String, String)>),
    /// Every attribute ends with its value.
    Suffix(Vec<(String, String)>),
    /// Every nested filter is true.
    All(Vec<Filter>),
    /// At least one nested filter is true.
    Any(Vec<Filter>),
    /// The nested filter is false.
    Not(Box<Filter>),
    /// The expression evaluates to `TRUE` without an error.
    Sql(Expression),
}

impl Filter {
    fn matches(&self, event: &dyn Attributes) -> bool {
        // The dialects compare text: an integer or boolean attribute as its CESQL string form.
        let each = |pairs: &[(String, String)], test: fn(&str, &str) -> bool| {
            pairs.iter().all(|(name, value)| {
                event
                    .attribute(name)
                    .is_some_and(|actual| test(&actual.to_string(), value))
            })
        };
        match self {
            Self::Exact(pairs) => each(pairs, |actual, value| actual == value),
            Self::Prefix(pairs) => each(pairs, |actual, value| actual.starts_with(value)),
            Self::Suffix(pairs) => each(pairs, |actual, value| actual.ends_with(value)),
            Self::All(filters) => filters.iter().all(|filter| filter.matches(event)),
            Self::Any(filters) => filters.iter().any(|filter| filter.matches(event)),
            Self::Not(filter) => !filter.matches(event),
            Self::Sql(expression) => expression.matches(event),
        }
    }
}

/// Why filters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct FilterError {
    /// JSON pointer to what is wrong, from the filters array (`/0/exact/type`).
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

/// A subscription's filters: as given (what the API shows and the store keeps) and compiled.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    source: Vec<Value>,
    compiled: Vec<Filter>,
}

impl Filters {
    /// Compiles the array of dialect objects `source`.
    pub fn compile(source: Vec<Value>) -> Result<Self, FilterError> {
        let mut budget = MAX_FILTERS;
        let compiled = source
            .iter()
            .enumerate()
            .map(|(n, filter)| compile(filter, &format!("/{n}"), 1, &mut budget))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { source, compiled })
    }

    /// The filters as given.
    pub fn source(&self) -> &[Value] {
        &self.source
    }

    /// True when there are none: every event of the subscribed types matches.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// True when `event` passes every filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_attributes(&EventAttributes(event))
    }

    /// True when the event whose attributes `event` reads passes every filter.
    pub fn matches_attributes(&self, event: &dyn Attributes) -> bool {
        self.compiled.iter().all(|filter| filter.matches(event))
    }
}

impl PartialEq for Filters {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Filters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

/// A refusal of what is at `pointer`.
fn refuse(pointer: &str, detail: impl Into<String>) -> FilterError {
    FilterError {
        pointer: pointer.to_string(),
        detail: detail.into(),
    }
}

/// Escapes a JSON object key as a JSON pointer segment (RFC 6901).
fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Compiles the dialect object at `pointer`, `depth` levels deep, within `budget` objects.
fn compile(
    filter: &Value,
    pointer: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(refuse(
            pointer,
            format!("filters nest at most {MAX_DEPTH} deep"),
        ));
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| refuse(pointer, format!("at most {MAX_FILTERS} filter expressions")))?;
    let object = filter
        .as_object()
        .filter(|object| object.len() == 1)
        .ok_or_else(|| refuse(pointer, "a filter is an object with exactly one dialect"))?;
    let Some((dialect, value)) = object.iter().next() else {
        return Err(refuse(pointer, "a filter names one dialect"));
    };
    let at = format!("{pointer}/{}", segment(dialect));
    match dialect.as_str() {
        "exact" => pairs(value, &at).map(Filter::Exact),
        "prefix" => pairs(value, &at).map(Filter::Prefix),
        "suffix" => pairs(value, &at).map(Filter::Suffix),
        "all" => nested(value, &at, depth, budget).map(Filter::All),
        "any" => nested(value, &at, depth, budget).map(Filter::Any),
        "not" => compile(value, &at, depth + 1, budget).map(|f| Filter::Not(Box::new(f))),
        "sql" => sql(value, &at).map(Filter::Sql),
        other => Err(refuse(
            pointer,
            format!(
                "unsupported filter dialect '{other}': use exact, prefix, suffix, all, any, not or sql"
            ),
        )),
    }
}

/// The attribute/value pairs of an `exact`, `prefix` or `suffix` object.
fn pairs(value: &Value, pointer: &str) -> Result<Vec<(String, String)>, FilterError> {
    let object: &Map<String, Value> = value
        .as_object()
        .filter(|object| !object.is_empty())
        .ok_or_else(|| refuse(pointer, "an object of attribute names and string values"))?;
    object
        .iter()
        .map(|(name, value)| {
            let at = format!("{pointer}/{}", segment(name));
            check_attribute_name(name).map_err(|detail| refuse(&at, detail))?;
            match value.as_str() {
                Some(text) if !text.is_empty() => Ok((name.clone(), text.to_string())),
                _ => Err(refuse(&at, "the value is a non-empty string")),
            }
        })
        .collect()
}

/// Refuses a name that is neither a CloudEvents attribute name nor a `data.` path.
fn check_attribute_name(name: &str) -> Result<(), String> {
    let valid = match name.strip_prefix(DATA_PATH_PREFIX) {
        Some(path) => path.split('.').all(|field| {
            !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is neither an attribute name (lower-case letters and digits) nor a data path (data.field.field)"
        ))
    }
}

/// The filters of an `all` or `any` array.
fn nested(
    value: &Value,
    pointer: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<Filter>, FilterError> {
    let filters = value
        .as_array()
        .filter(|filters| !filters.is_empty())
        .ok_or_else(|| refuse(pointer, "a non-empty array of filters"))?;
    filters
        .iter()
        .enumerate()
        .map(|(n, filter)| compile(filter, &format!("{pointer}/{n}"), depth + 1, budget))
        .collect()
}

/// A CESQL expression, parsed.
fn sql(value: &Value, pointer: &str) -> Result<Expression, FilterError> {
    let text = value
        .as_str()
        .ok_or_else(|| refuse(pointer, "a CloudEvents SQL expression, as a string"))?;
    if text.len() > MAX_SQL_LEN {
        return Err(refuse(pointer, format!("at most {MAX_SQL_LEN} bytes")));
    }
    let expression = Expression::parse(text).map_err(|err| {
        refuse(
            pointer,
            format!(
                "invalid CloudEvents SQL at character {}: {err}",
                err.position
            ),
        )
    })?;
    // Valid CESQL, but every evaluation would fail: such a filter could never match.
    if let Some((name, arity)) = expression.missing_functions().first() {
        return Err(refuse(
            pointer,
            format!("unknown CloudEvents SQL function {name} with {arity} argument(s)"),
        ));
    }
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBuilder, StreamRouter};
    use serde_json::json;

    fn event(subject: &str, total: i64) -> Event {
        EventBuilder::new(
            "shop.checkout",
            "/shop/eu",
            json!({"total": total, "currency": "EUR"}),
        )
        .subject(subject)
        .build(&StreamRouter::new("events:default"))
        .unwrap()
    }

    fn filters(source: Value) -> Filters {
        Filters::compile(source.as_array().unwrap().clone()).unwrap()
    }

    #[test]
    fn each_dialect_matches_as_the_specification_says() {
        let big = event("eu-7", 120);
        let small = event("us-1", 5);
        for (source, on_big, on_small) in [
            (json!([{"exact": {"subject": "eu-7"}}]), true, false),
            (json!([{"prefix": {"source": "/shop/"}}]), true, true),
            (json!([{"suffix": {"subject": "-1"}}]), false, true),
            (
                json!([{"exact": {"data.currency": "EUR", "data.total": "120"}}]),
                true,
                false,
            ),
            (
                json!([{"any": [{"exact": {"subject": "us-1"}}, {"exact": {"subject": "x"}}]}]),
                false,
                true,
            ),
            (
                json!([{"all": [{"prefix": {"subject": "eu"}}, {"not": {"exact": {"data.total": "5"}}}]}]),
                true,
                false,
            ),
            (
                json!([{"sql": "data.total > 100 AND subject LIKE 'eu-%'"}]),
                true,
                false,
            ),
            (json!([{"exact": {"dataschema": "x"}}]), false, false),
            (json!([{"sql": "data.nothing = 1"}]), false, false),
            (
                json!([{"prefix": {"type": "shop."}}, {"sql": "data.total < 10"}]),
                false,
                true,
            ),
            (json!([]), true, true),
        ] {
            let compiled = filters(source.clone());
            assert_eq!(compiled.matches(&big), on_big, "{source}");
            assert_eq!(compiled.matches(&small), on_small, "{source}");
        }
    }

    #[test]
    fn invalid_filters_are_refused_with_where_and_why() {
        for (source, pointer, mentions) in [
            (
                json!([{"regex": {"type": "x"}}]),
                "/0",
                "unsupported filter dialect",
            ),
            (
                json!([{"exact": {"type": ""}}]),
                "/0/exact/type",
                "non-empty string",
            ),
            (
                json!([{"exact": {"Type": "x"}}]),
                "/0/exact/Type",
                "attribute name",
            ),
            (json!([{"exact": {}}]), "/0/exact", "object of attribute"),
            (json!([{"all": []}]), "/0/all", "non-empty array"),
            (
                json!([{"exact": {"type": "x"}, "prefix": {"type": "y"}}]),
                "/0",
                "exactly one",
            ),
            (
                json!([{"any": [{"exact": {"type": "a"}}, {"sql": "type ="}]}]),
                "/0/any/1/sql",
                "character",
            ),
            (
                json!([{"sql": "subject = 'x' OR NOSUCH(type, 1)"}]),
                "/0/sql",
                "function NOSUCH with 2",
            ),
            (
                json!([{"prefix": {"data..x": "1"}}]),
                "/0/prefix/data..x",
                "data path",
            ),
            (json!(["exact"]), "/0", "exactly one dialect"),
        ] {
            let err = Filters::compile(source.as_array().unwrap().clone()).unwrap_err();
            assert_eq!(err.pointer, pointer, "{source}: {err:?}");
            assert!(err.detail.contains(mentions), "{source}: {err:?}");
        }
        let deep = (0..10).fold(
            json!({"exact": {"type": "x"}}),
            |inner, _| json!({"not": inner}),
        );
        let err = Filters::compile(vec![deep]).unwrap_err();
        assert!(err.detail.contains("nest"), "{err:?}");
    }
}
