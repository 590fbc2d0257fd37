//! The input side of evaluation: how an expression reads event attributes.

use serde_json::{Map, Value as Json};

use super::value::Value;

/// Looks up CloudEvent context attributes (and extensions) by name, so the
/// evaluator is independent of how an event is stored.
///
/// The evaluator always passes `name` lowercased: CESQL identifiers are
/// case-insensitive and CloudEvents attribute names are lowercase
/// `[a-z0-9]+`. Implementations must represent values that are not a CESQL
/// Boolean or Integer as a `Value::String` (spec section 3.2). An implementor
/// may expose more than the context attributes (for example EventFlow's view
/// of event data); the lookup contract is only "identifier name -> value".
pub trait Attributes {
    /// Returns the attribute's value, or `None` when the event does not have it.
    fn attribute(&self, name: &str) -> Option<Value>;

    /// Reports whether the attribute exists, for `EXISTS`; override it when
    /// presence can be checked without building the value.
    fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

/// Keys of a structured-mode CloudEvent that are not context attributes
/// (CESQL does not address event data, spec section 1; extensions may not use
/// these names).
const NON_ATTRIBUTE_KEYS: [&str; 2] = ["data", "data_base64"];

fn lookup<'a>(map: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    if NON_ATTRIBUTE_KEYS.contains(&name) {
        return None;
    }
    let found = match map.get(name) {
        Some(v) => Some(v),
        // Attribute names are lowercase by spec; tolerate producers that
        // did not lowercase theirs.
        None => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v),
    };
    // A JSON null attribute is treated as absent, as in the JSON event format.
    found.filter(|v| !v.is_null())
}

/// Converts a JSON attribute value to CESQL's type system (spec 3.2):
/// booleans and 32-bit integers keep their type, everything else is a String
/// (JSON strings verbatim, other values in their compact JSON form).
pub fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Value::Integer(i),
            None => Value::String(n.to_string()),
        },
        Json::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// Treats a JSON object (a structured-mode CloudEvent or a map of its context
/// attributes) as the attribute source; `data`/`data_base64` and JSON nulls
/// count as absent.
impl Attributes for Map<String, Json> {
    fn attribute(&self, name: &str) -> Option<Value> {
        lookup(self, name).map(json_to_value)
    }

    fn has_attribute(&self, name: &str) -> bool {
        lookup(self, name).is_some()
    }
}
