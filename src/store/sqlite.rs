//! The embedded event store: one table in the shared SQLite file.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{AppendOutcome, EventPage, EventQuery, EventStore, StoreError, TimeRange, TypeFilter};
use crate::events::Event;
use crate::sqlite::SqliteDb;
use crate::store::Cursor;

/// Rows per INSERT statement: well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// [`EventStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: SqliteDb,
}

impl SqliteStore {
    /// A store on an open database.
    pub fn new(db: SqliteDb) -> Self {
        Self { db }
    }

    /// The general path: any batch size, repeated ids within the batch; one transaction.
    async fn append_in_transaction(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut tx = self.db.writer.begin().await?;
        // Events already stored under ids of this batch: usually none, so one cheap lookup.
        let ids = serde_json::Value::from(events.iter().map(Event::id).collect::<Vec<_>>());
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM events WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut known: HashMap<String, Known> = HashMap::with_capacity(rows.len());
        for (seq, body) in rows {
            let event = decode_event(seq, &body)?;
            known.insert(event.id().to_string(), Known::Stored(Box::new(event)));
        }
        // Decide each event's outcome in order; the first occurrence of a new id is inserted.
        let mut outcomes: Vec<Pending> = Vec::with_capacity(events.len());
        let mut fresh: Vec<Event> = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(match known.get(event.id()) {
                Some(Known::Stored(stored)) => {
                    Pending::Done(Box::new(repeat_outcome(stored, &event.envelope.source)))
                }
                Some(Known::Fresh(index)) => Pending::RepeatOfFresh(*index, event.envelope.source),
                None => {
                    known.insert(event.id().to_string(), Known::Fresh(fresh.len()));
                    fresh.push(event);
                    Pending::Fresh(fresh.len() - 1)
                }
            });
        }
        for chunk in fresh.chunks_mut(INSERT_CHUNK) {
            let result = insert_statement(chunk, "")?
                .build()
                .execute(&mut *tx)
                .await?;
            assign_sequences(chunk, result.last_insert_rowid());
        }
        tx.commit().await?;
        Ok(outcomes
            .into_iter()
            .map(|pending| match pending {
                Pending::Done(outcome) => *outcome,
                Pending::Fresh(index) => AppendOutcome::Created(fresh[index].clone()),
                Pending::RepeatOfFresh(index, source) => repeat_outcome(&fresh[index], &source),
            })
            .collect())
    }
}

/// A multi-row INSERT of `events`, followed by `suffix` (a conflict clause).
fn insert_statement<'a>(
    events: &'a [Event],
    suffix: &str,
) -> Result<QueryBuilder<'a, Sqlite>, StoreError> {
    let bodies = events
        .iter()
        .map(encode_event)
        .collect::<Result<Vec<_>, _>>()?;
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (id, source, type, subject, stream, time_us, correlation_id, body) ",
    );
    insert.push_values(events.iter().zip(bodies), |mut row, (event, body)| {
        row.push_bind(event.id())
            .push_bind(&event.envelope.source)
            .push_bind(event.event_type())
            .push_bind(&event.envelope.subject)
            .push_bind(&event.metadata.stream)
            .push_bind(event.envelope.time.timestamp_micros())
            .push_bind(&event.metadata.correlation_id)
            .push_bind(body);
    });
    insert.push(suffix);
    Ok(insert)
}

/// Gives `events`, just inserted together, their sequences: one writer holds the lock, so they
/// are consecutive and end at `last`.
fn assign_sequences(events: &mut [Event], last: i64) {
    let first = last - events.len() as i64 + 1;
    for (offset, event) in events.iter_mut().enumerate() {
        event.metadata.sequence = Some(first + offset as i64);
    }
}

/// Decodes a stored row: the JSON body plus the sequence the store assigned.
pub(crate) fn decode_event(seq: i64, body: &str) -> Result<Event, StoreError> {
    let mut event: Event = serde_json::from_str(body).map_err(|err| StoreError::Corrupt {
        id: format!("sequence {seq}"),
        reason: err.to_string(),
    })?;
    event.metadata.sequence = Some(seq);
    Ok(event)
}

fn decode_rows(rows: Vec<(i64, String)>) -> Result<Vec<Event>, StoreError> {
    rows.into_iter()
        .map(|(seq, body)| decode_event(seq, &body))
        .collect()
}

fn encode_event(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|err| StoreError::Corrupt {
        id: event.id().to_string(),
        reason: err.to_string(),
    })
}

/// What the store already holds (or is about to insert) under an id.
enum Known {
    Stored(Box<Event>),
    Fresh(usize),
}

/// An outcome decided before the insert, or one waiting for the inserted sequence.
enum Pending {
    Done(Box<AppendOutcome>),
    Fresh(usize),
    RepeatOfFresh(usize, String),
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, mut events: Vec<Event>) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut ids = HashSet::with_capacity(events.len());
        let distinct = events.iter().all(|event| ids.insert(event.id()));
        if !distinct || events.len() > INSERT_CHUNK {
            return self.append_in_transaction(events).await;
        }
        // The common case in one statement: insert all, skipping ids stored before.
        let result = insert_statement(&events, " ON CONFLICT (id) DO NOTHING")?
            .build()
            .execute(&self.db.writer)
            .await?;
        let inserted = result.rows_affected() as usize;
        if inserted == events.len() {
            assign_sequences(&mut events, result.last_insert_rowid());
            return Ok(events.into_iter().map(AppendOutcome::Created).collect());
        }
        // Some ids were stored before. One writer holds the lock, so the rows inserted now are
        // the `inserted` highest sequences; every other id was there already.
        let ours_above = if inserted == 0 {
            i64::MAX
        } else {
            result.last_insert_rowid() - inserted as i64
        };
        let list = serde_json::Value::from(events.iter().map(Event::id).collect::<Vec<_>>());
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM events WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(list.to_string())
        .fetch_all(&self.db.writer)
        .await?;
        let mut stored: HashMap<String, Event> = HashMap::with_capacity(rows.len());
        for (seq, body) in rows {
            let event = decode_event(seq, &body)?;
            stored.insert(event.id().to_string(), event);
        }
        events
            .into_iter()
            .map(|event| match stored.remove(event.id()) {
                Some(row) if row.metadata.sequence.is_some_and(|seq| seq > ours_above) => {
                    Ok(AppendOutcome::Created(row))
                }
                Some(row) => Ok(repeat_outcome(&row, &event.envelope.source)),
                None => Err(StoreError::Corrupt {
                    id: event.id().to_string(),
                    reason: "neither inserted nor stored before".into(),
                }),
            })
            .collect()
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM events WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.db.reader)
                .await?;
        row.map(|(seq, body)| decode_event(seq, &body)).transpose()
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let mut select = QueryBuilder::<Sqlite>::new("SELECT seq, body FROM events WHERE 1 = 1");
        match &query.event_type {
            Some(TypeFilter::Exact(exact)) => {
                select.push(" AND type = ").push_bind(exact.clone());
            }
            Some(TypeFilter::Prefix(prefix)) if !prefix.is_empty() => {
                // A range over the type index; U+10FFFF sorts after every character.
                select.push(" AND type >= ").push_bind(prefix.clone());
                select
                    .push(" AND type < ")
                    .push_bind(format!("{prefix}\u{10FFFF}"));
            }
            Some(TypeFilter::Prefix(_)) | None => {}
        }
        for (column, value) in [
            ("source", &query.source),
            ("stream", &query.stream),
            ("subject", &query.subject),
            ("correlation_id", &query.correlation_id),
        ] {
            if let Some(value) = value {
                select
                    .push(format!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        if let Some(start) = query.start_time {
            select
                .push(" AND time_us >= ")
                .push_bind(start.timestamp_micros());
        }
        if let Some(end) = query.end_time {
            select
                .push(" AND time_us < ")
                .push_bind(end.timestamp_micros());
        }
        if let Some(cursor) = query.cursor {
            select.push(" AND seq < ").push_bind(cursor.0);
        }
        select
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(query.limit) + 1)
            .push(" OFFSET ")
            .push_bind(i64::from(query.offset));
        let rows: Vec<(i64, String)> = select.build_query_as().fetch_all(&self.db.reader).await?;
        let mut events = decode_rows(rows)?;
        let has_more = events.len() > query.limit as usize;
        events.truncate(query.limit as usize);
        let next_cursor = has_more
            .then(|| events.last().and_then(|e| e.metadata.sequence).map(Cursor))
            .flatten();
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    async fn scan(
        &self,
        range: &TimeRange,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT seq, body FROM events WHERE time_us >= ");
        select
            .push_bind(range.start.timestamp_micros())
            .push(" AND time_us < ")
            .push_bind(range.end.timestamp_micros())
            .push(" AND seq > ")
            .push_bind(after);
        if let Some(stream) = &range.stream {
            select.push(" AND stream = ").push_bind(stream.clone());
        }
        select
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<(i64, String)> = select.build_query_as().fetch_all(&self.db.reader).await?;
        decode_rows(rows)
    }

    async fn unpublished(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM events WHERE published = 0 ORDER BY seq LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.db.reader)
                .await?;
        decode_rows(rows)
    }

    async fn mark_published(&self, sequences: &[i64]) -> Result<(), StoreError> {
        let list = serde_json::Value::from(sequences.to_vec()).to_string();
        sqlx::query(
            "UPDATE events SET published = 1 WHERE seq IN (SELECT value FROM json_each(?))",
        )
        .bind(list)
        .execute(&self.db.writer)
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.db.reader).await?;
        Ok(())
    }
}
