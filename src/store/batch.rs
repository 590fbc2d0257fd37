//! What every store does to a batch the same way: split out repeated ids, assemble the outcomes,
//! and encode and decode stored bodies.

use std::collections::HashMap;

use super::{AppendOutcome, Cursor, EventPage, StoreError};
use crate::events::Event;

/// Where an event of a batch ends up: inserted (first occurrence of its id) or a repeat.
pub(super) enum Slot {
    /// The first occurrence of an id: index into the events to insert.
    First(usize),
    /// A later occurrence in the same batch, with its source.
    Repeat(usize, String),
}

/// Splits a batch into the events to insert (first occurrence of each id) and its slots.
pub(super) fn plan(events: Vec<Event>) -> (Vec<Event>, Vec<Slot>) {
    let mut first_of: HashMap<String, usize> = HashMap::with_capacity(events.len());
    let mut fresh = Vec::with_capacity(events.len());
    let mut slots = Vec::with_capacity(events.len());
    for event in events {
        match first_of.get(event.id()) {
            Some(&index) => slots.push(Slot::Repeat(index, event.envelope.source)),
            None => {
                first_of.insert(event.id().to_string(), fresh.len());
                slots.push(Slot::First(fresh.len()));
                fresh.push(event);
            }
        }
    }
    (fresh, slots)
}

/// The outcome of each event of the batch, in order: `fresh` holds the first occurrences (with
/// their sequences when inserted), `stored_before` the stored copies of ids that were not.
pub(super) fn outcomes(
    slots: Vec<Slot>,
    fresh: &[Event],
    stored_before: &HashMap<usize, Event>,
) -> Vec<AppendOutcome> {
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::First(index) => match stored_before.get(&index) {
                Some(stored) => repeat_outcome(stored, &fresh[index].envelope.source),
                None => AppendOutcome::Created(fresh[index].clone()),
            },
            Slot::Repeat(index, source) => {
                repeat_outcome(stored_before.get(&index).unwrap_or(&fresh[index]), &source)
            }
        })
        .collect()
}

/// The outcome of sending an event from `source` again when `stored` holds its id.
fn repeat_outcome(stored: &Event, source: &str) -> AppendOutcome {
    if stored.envelope.source == source {
        AppendOutcome::Duplicate(stored.clone())
    } else {
        AppendOutcome::Conflict {
            existing_source: stored.envelope.source.clone(),
        }
    }
}

/// Decodes a stored row: the JSON body plus the sequence the store assigned.
pub(super) fn decode_event(seq: i64, body: &str) -> Result<Event, StoreError> {
    let mut event: Event = serde_json::from_str(body).map_err(|err| StoreError::Corrupt {
        id: format!("sequence {seq}"),
        reason: err.to_string(),
    })?;
    event.metadata.sequence = Some(seq);
    Ok(event)
}

/// Decodes rows of (sequence, body).
pub(super) fn decode_rows(rows: Vec<(i64, String)>) -> Result<Vec<Event>, StoreError> {
    rows.into_iter()
        .map(|(seq, body)| decode_event(seq, &body))
        .collect()
}

/// The JSON body an event is stored as.
pub(super) fn encode_event(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|err| StoreError::Corrupt {
        id: event.id().to_string(),
        reason: err.to_string(),
    })
}

/// A listing page from rows fetched newest first with one row more than `limit`, which tells
/// whether another page follows.
pub(super) fn page(rows: Vec<(i64, String)>, limit: u32) -> Result<EventPage, StoreError> {
    let mut events = decode_rows(rows)?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = has_more
        .then(|| events.last().and_then(|e| e.metadata.sequence).map(Cursor))
        .flatten();
    Ok(EventPage {
        events,
        next_cursor,
    })
}
