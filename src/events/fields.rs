//! A JSON object taken apart member by member while ingest validates it: every violation is
//! collected with its JSON pointer instead of stopping at the first.

use serde_json::{Map, Value};

use super::invalid::{InvalidEvent, Violation};

/// A JSON object being taken apart member by member, collecting violations on the way.
pub(super) struct Fields {
    /// The members not taken yet.
    pub(super) map: Map<String, Value>,
    /// What was wrong so far.
    pub(super) violations: Vec<Violation>,
}

/// Reports every string or member name holding U+0000, by JSON pointer: no database stores it
/// in text (PostgreSQL refuses it), so such an event could never be committed.
fn find_nul(value: &Value, pointer: &mut String, violations: &mut Vec<Violation>) {
    const DETAIL: &str = "must not contain the NUL character (U+0000)";
    match value {
        Value::String(text) if text.contains('\0') => {
            violations.push(Violation::new(pointer.clone(), DETAIL));
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{index}"));
                find_nul(item, pointer, violations);
                pointer.truncate(len);
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                if key.contains('\0') {
                    violations.push(Violation::new(pointer.clone(), DETAIL));
                }
                find_nul(member, pointer, violations);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

impl Fields {
    /// Takes `value` apart; anything but an object is refused at once.
    pub(super) fn new(value: Value) -> Result<Self, InvalidEvent> {
        let mut violations = Vec::new();
        find_nul(&value, &mut String::new(), &mut violations);
        match value {
            Value::Object(map) => Ok(Self { map, violations }),
            _ => Err(InvalidEvent(vec![Violation::new(
                "",
                "expected a JSON object",
            )])),
        }
    }

    /// Records a violation at `pointer`.
    pub(super) fn violate(&mut self, pointer: String, detail: &str) {
        self.violations.push(Violation::new(pointer, detail));
    }

    /// Takes an optional string member.
    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        match self.map.remove(key)? {
            Value::String(text) => Some(text),
            Value::Null => None,
            _ => {
                self.violate(format!("/{key}"), "expected a string");
                None
            }
        }
    }

    /// Takes a required string member.
    pub(super) fn required(&mut self, key: &str) -> Option<String> {
        let present = self.map.get(key).is_some_and(|v| !v.is_null());
        let value = self.string(key);
        if !present {
            self.violate(format!("/{key}"), "is required");
        }
        value
    }

    /// Takes the data member; JSON null counts as absent.
    pub(super) fn data(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// Takes an optional object member.
    pub(super) fn object(&mut self, key: &str) -> Map<String, Value> {
        match self.map.remove(key) {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                self.violate(format!("/{key}"), "expected an object");
                Map::new()
            }
        }
    }

    /// The names of the members not taken.
    pub(super) fn remaining_keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}
