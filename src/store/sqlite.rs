//! The embedded event store: one table in the shared SQLite file.

use std::collections::HashMap;

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

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, events: Vec<Event>) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut tx = self.db.writer.begin().await?;
        let mut created: HashMap<String, i64> = HashMap::with_capacity(events.len());
        for chunk in events.chunks(INSERT_CHUNK) {
            let bodies = chunk
                .iter()
                .map(encode_event)
                .collect::<Result<Vec<_>, _>>()?;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (id, source, type, subject, stream, time_us, correlation_id, body) ",
            );
            insert.push_values(chunk.iter().zip(bodies), |mut row, (event, body)| {
                row.push_bind(event.id())
                    .push_bind(&event.envelope.source)
                    .push_bind(event.event_type())
                    .push_bind(&event.envelope.subject)
                    .push_bind(&event.metadata.stream)
                    .push_bind(event.envelope.time.timestamp_micros())
                    .push_bind(&event.metadata.correlation_id)
                    .push_bind(body);
            });
            insert.push(" ON CONFLICT (id) DO NOTHING RETURNING seq, id");
            let rows: Vec<(i64, String)> = insert.build_query_as().fetch_all(&mut *tx).await?;
            created.extend(rows.into_iter().map(|(seq, id)| (id, seq)));
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for mut event in events {
            // The first occurrence of an inserted id is the created one; later ones duplicate it.
            if let Some(seq) = created.remove(event.id()) {
                event.metadata.sequence = Some(seq);
                outcomes.push(AppendOutcome::Created(event));
                continue;
            }
            let (seq, body): (i64, String) =
                sqlx::query_as("SELECT seq, body FROM events WHERE id = ?")
                    .bind(event.id())
                    .fetch_one(&mut *tx)
                    .await?;
            let stored = decode_event(seq, &body)?;
            outcomes.push(if stored.envelope.source == event.envelope.source {
                AppendOutcome::Duplicate(stored)
            } else {
                AppendOutcome::Conflict {
                    existing_source: stored.envelope.source,
                }
            });
        }
        tx.commit().await?;
        Ok(outcomes)
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
