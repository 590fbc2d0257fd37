//! An event as filters read it: its CloudEvents context attributes, EventFlow's extensions, and
//! (an EventFlow extension of the filter dialects) `data.<field>[.<field>…]` paths into its JSON
//! data.
//!
//! The view reads the stored event in place rather than building the structured CloudEvent a
//! delivery sends: a filter runs for every event and subscription, and most read one or two
//! attributes.

use chrono::SecondsFormat;
use serde_json::{Map, Value as Json};

use super::Event;
use crate::cesql::{Attributes, Value, json_to_value};

/// The prefix that turns an attribute name into a path into the event's data.
pub const DATA_PATH_PREFIX: &str = "data.";

/// The attributes of one event, for filters.
pub struct EventAttributes<'a>(pub &'a Event);

impl EventAttributes<'_> {
    /// The attribute `name` (lower case, or a `data.` path), as the JSON form of the event would
    /// carry it; `None` when the event has none.
    fn json(&self, name: &str) -> Option<Json> {
        let event = self.0;
        let envelope = &event.envelope;
        let text = |value: &str| Some(Json::String(value.to_string()));
        match name {
            "specversion" => text(&envelope.specversion),
            "id" => text(&envelope.id),
            "source" => text(&envelope.source),
            "type" => text(&envelope.event_type),
            "subject" => envelope.subject.as_deref().and_then(text),
            "time" => text(&envelope.time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            "datacontenttype" => envelope.datacontenttype.as_deref().and_then(text),
            "dataschema" => envelope.dataschema.as_deref().and_then(text),
            "partitionkey" => event.metadata.partition_key.as_deref().and_then(text),
            "priority" => serde_json::to_value(event.metadata.priority).ok(),
            "correlationid" => text(&event.metadata.correlation_id),
            _ => match name.strip_prefix(DATA_PATH_PREFIX) {
                Some(path) => data_field(envelope.data.as_ref()?, path).cloned(),
                None => envelope.extensions.get(name).cloned(),
            },
        }
        .filter(|value| !value.is_null())
    }
}

/// A CloudEvent in its JSON format, as given (the filter playground's event): its members are
/// the attributes, and `data.` paths read its `data`.
pub struct CloudEventJson<'a>(pub &'a Map<String, Json>);

impl Attributes for CloudEventJson<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        match name.strip_prefix(DATA_PATH_PREFIX) {
            Some(path) => data_field(self.0.get("data")?, path)
                .filter(|value| !value.is_null())
                .map(json_to_value),
            None => self.0.attribute(name),
        }
    }
}

/// The field at `path` (dot-separated object keys; a number also indexes an array).
fn data_field<'j>(data: &'j Json, path: &str) -> Option<&'j Json> {
    path.split('.')
        .try_fold(data, |value, segment| match value {
            Json::Object(fields) => fields.get(segment),
            Json::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

impl Attributes for EventAttributes<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.json(name).as_ref().map(json_to_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBuilder, StreamRouter};
    use serde_json::json;

    fn event() -> Event {
        EventBuilder::new(
            "shop.checkout",
            "/shop",
            json!({"order": {"id": "o-1", "total": 42, "lines": [{"sku": "A"}]}, "paid": true}),
        )
        .subject("eu-7")
        .partition_key("usr_1")
        .build(&StreamRouter::new("events:default"))
        .unwrap()
    }

    #[test]
    fn context_attributes_and_extensions_read_as_their_json_form() {
        let event = event();
        let view = EventAttributes(&event);
        assert_eq!(view.attribute("type"), Some(Value::from("shop.checkout")));
        assert_eq!(view.attribute("subject"), Some(Value::from("eu-7")));
        assert_eq!(view.attribute("partitionkey"), Some(Value::from("usr_1")));
        assert_eq!(view.attribute("priority"), Some(Value::from("normal")));
        assert_eq!(view.attribute("dataschema"), None);
    }

    #[test]
    fn data_paths_reach_into_objects_and_arrays() {
        let event = event();
        let view = EventAttributes(&event);
        assert_eq!(view.attribute("data.order.id"), Some(Value::from("o-1")));
        assert_eq!(view.attribute("data.order.total"), Some(Value::Integer(42)));
        assert_eq!(view.attribute("data.paid"), Some(Value::Boolean(true)));
        assert_eq!(
            view.attribute("data.order.lines.0.sku"),
            Some(Value::from("A"))
        );
        assert_eq!(view.attribute("data.order.missing"), None);
        assert_eq!(view.attribute("data.paid.deeper"), None);
    }
}
