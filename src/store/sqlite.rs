//! The embedded event store: one table in the shared SQLite file, optionally streaming each
//! new event to the embedded broker in the same transaction.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::batch::{decode_event, decode_rows, encode_event, outcomes, plan};
use super::delivery_sqlite::insert_jobs;
use super::query::MAX_WALK;
use super::{
    AppendOutcome, EventPage, EventQuery, EventStore, ScanPage, StoreError, TimeRange,
    jobs_of_created,
};
use crate::broker::EmbeddedBroker;
use crate::delivery::NewDelivery;
use crate::events::Event;
use crate::sqlite::SqliteDb;

/// Rows per INSERT statement: well under SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// [`EventStore`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: SqliteDb,
    /// The embedded broker in the same file, when events are streamed in the append transaction.
    stream: Option<EmbeddedBroker>,
}

impl SqliteStore {
    /// A store on an open database.
    pub fn new(db: SqliteDb) -> Self {
        Self { db, stream: None }
    }

    /// A store that also appends each new event to its stream of `broker` in the statement that
    /// stores it (a trigger of the schema): an outbox that never needs relaying. `broker` must
    /// live in the same database file.
    pub fn streaming_to(db: SqliteDb, broker: EmbeddedBroker) -> Self {
        Self {
            db,
            stream: Some(broker),
        }
    }

    /// The database, for the delivery tables in the same file.
    pub(super) fn db(&self) -> &SqliteDb {
        &self.db
    }
}

/// A multi-row INSERT of `events` with their encoded bodies, skipping ids stored before.
///
/// The skipping is a filter of the SELECT, not `ON CONFLICT DO NOTHING`: with AUTOINCREMENT a
/// row skipped by a conflict still uses up a sequence, which would break the consecutive
/// sequences `insert_fresh` relies on.
fn insert_statement<'a>(
    events: &'a [Event],
    bodies: &'a [String],
    published: bool,
) -> QueryBuilder<'a, Sqlite> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (id, source, type, subject, stream, time_us, correlation_id, partition_key, body, published, stored_us) \
         SELECT * FROM (",
    );
    let stored_us = chrono::Utc::now().timestamp_micros();
    insert.push_values(events.iter().zip(bodies), |mut row, (event, body)| {
        row.push_bind(event.id())
            .push_bind(&event.envelope.source)
            .push_bind(event.event_type())
            .push_bind(&event.envelope.subject)
            .push_bind(&event.metadata.stream)
            .push_bind(event.envelope.time.timestamp_micros())
            .push_bind(&event.metadata.correlation_id)
            .push_bind(&event.metadata.partition_key)
            .push_bind(body)
            .push_bind(published)
            .push_bind(stored_us);
    });
    insert.push(") AS new WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.id = new.column1)");
    insert
}

/// Inserts `fresh` (distinct ids) with their bodies, skipping ids stored before; gives each
/// inserted event its sequence and returns the stored events of the skipped ones, by index.
async fn insert_fresh(
    conn: &mut SqliteConnection,
    fresh: &mut [Event],
    bodies: &[String],
    streamed: bool,
) -> Result<HashMap<usize, Event>, StoreError> {
    let mut stored_before = HashMap::new();
    for start in (0..fresh.len()).step_by(INSERT_CHUNK) {
        let end = (start + INSERT_CHUNK).min(fresh.len());
        let chunk = &mut fresh[start..end];
        let result = insert_statement(chunk, &bodies[start..end], streamed)
            .build()
            .execute(&mut *conn)
            .await?;
        // One writer holds the lock: the rows inserted now got consecutive sequences ending
        // at the last one, above every row stored before.
        let inserted = result.rows_affected() as usize;
        let last = result.last_insert_rowid();
        if inserted == chunk.len() {
            let first = last - chunk.len() as i64 + 1;
            for (offset, event) in chunk.iter_mut().enumerate() {
                event.metadata.sequence = Some(first + offset as i64);
            }
            continue;
        }
        let ours_above = if inserted == 0 {
            i64::MAX
        } else {
            last - inserted as i64
        };
        let ids = serde_json::Value::from(chunk.iter().map(Event::id).collect::<Vec<_>>());
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM events WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let mut by_id: HashMap<String, Event> = HashMap::with_capacity(rows.len());
        for (seq, body) in rows {
            let event = decode_event(seq, &body)?;
            by_id.insert(event.id().to_string(), event);
        }
        for (offset, event) in chunk.iter_mut().enumerate() {
            let Some(stored) = by_id.remove(event.id()) else {
                return Err(StoreError::Corrupt {
                    id: event.id().to_string(),
                    reason: "neither inserted nor stored before".into(),
                });
            };
            match stored.metadata.sequence {
                Some(seq) if seq > ours_above => event.metadata.sequence = Some(seq),
                _ => {
                    stored_before.insert(start + offset, stored);
                }
            }
        }
    }
    Ok(stored_before)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_with_deliveries(
        &self,
        events: Vec<Event>,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let (mut fresh, slots) = plan(events);
        let bodies = fresh
            .iter()
            .map(encode_event)
            .collect::<Result<Vec<_>, _>>()?;
        let streamed = self.stream.is_some();
        // One statement commits on its own; more chunks, or jobs, share a transaction.
        let outcomes = if fresh.len() > INSERT_CHUNK || !deliveries.is_empty() {
            let mut tx = self.db.writer.begin().await?;
            let stored = insert_fresh(&mut tx, &mut fresh, &bodies, streamed).await?;
            let outcomes = outcomes(slots, &fresh, &stored);
            insert_jobs(&mut tx, &jobs_of_created(&outcomes, deliveries)).await?;
            tx.commit().await?;
            outcomes
        } else {
            let mut conn = self.db.writer.acquire().await?;
            let stored = insert_fresh(&mut conn, &mut fresh, &bodies, streamed).await?;
            outcomes(slots, &fresh, &stored)
        };
        if let Some(broker) = &self.stream {
            broker.wake_readers();
        }
        Ok(outcomes)
    }

    fn publishes_on_append(&self) -> bool {
        self.stream.is_some()
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
        super::sqlite_list::list(&self.db.reader, query).await
    }

    async fn sequence_bounds(&self, range: &TimeRange) -> Result<Option<(i64, i64)>, StoreError> {
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT MIN(seq), MAX(seq) FROM events INDEXED BY events_time WHERE time_us >= ",
        );
        select
            .push_bind(range.start.timestamp_micros())
            .push(" AND time_us < ")
            .push_bind(range.end.timestamp_micros());
        if let Some(stream) = &range.stream {
            select.push(" AND stream = ").push_bind(stream.clone());
        }
        let (first, last): (Option<i64>, Option<i64>) =
            select.build_query_as().fetch_one(&self.db.reader).await?;
        Ok(first.zip(last))
    }

    async fn scan(
        &self,
        range: &TimeRange,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<ScanPage, StoreError> {
        // Along the rowid: the time index would sort the whole rest of the window for each batch.
        let upto = through.min(after.saturating_add(MAX_WALK));
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT seq, body FROM events NOT INDEXED WHERE seq > ");
        select
            .push_bind(after)
            .push(" AND seq <= ")
            .push_bind(upto)
            .push(" AND time_us >= ")
            .push_bind(range.start.timestamp_micros())
            .push(" AND time_us < ")
            .push_bind(range.end.timestamp_micros());
        if let Some(stream) = &range.stream {
            select.push(" AND stream = ").push_bind(stream.clone());
        }
        select
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<(i64, String)> = select.build_query_as().fetch_all(&self.db.reader).await?;
        let full = rows.len() == limit as usize;
        let scanned_through = match rows.last() {
            Some((seq, _)) if full => *seq,
            _ => upto,
        };
        Ok(ScanPage {
            events: decode_rows(rows)?,
            scanned_through,
        })
    }

    async fn stored_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.db.reader)
                .await?;
        decode_rows(rows)
    }

    async fn last_sequence(&self) -> Result<i64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.db.reader)
            .await?;
        Ok(last.unwrap_or(0))
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

    async fn processed(
        &self,
        group: &str,
        event_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let ids = serde_json::Value::from(event_ids.to_vec()).to_string();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event_id FROM processed_events \
             WHERE consumer_group = ? AND event_id IN (SELECT value FROM json_each(?))",
        )
        .bind(group)
        .bind(ids)
        .fetch_all(&self.db.reader)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn record_processed(&self, group: &str, event_ids: &[String]) -> Result<(), StoreError> {
        let ids = serde_json::Value::from(event_ids.to_vec()).to_string();
        sqlx::query(
            "INSERT OR IGNORE INTO processed_events (consumer_group, event_id, processed_us) \
             SELECT ?, value, ? FROM json_each(?)",
        )
        .bind(group)
        .bind(chrono::Utc::now().timestamp_micros())
        .bind(ids)
        .execute(&self.db.writer)
        .await?;
        Ok(())
    }

    async fn prune_events(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let cutoff = cutoff.timestamp_micros();
        let mut tx = self.db.writer.begin().await?;
        let events = sqlx::query(
            "DELETE FROM events WHERE seq IN ( \
                 SELECT seq FROM events WHERE stored_us < ? ORDER BY stored_us LIMIT ? \
             )",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM processed_events WHERE (consumer_group, event_id) IN ( \
                 SELECT consumer_group, event_id FROM processed_events WHERE processed_us < ? LIMIT ? \
             )",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn outbox_len(&self, cap: u64) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE published = 0 LIMIT ?)",
        )
        .bind(i64::try_from(cap).unwrap_or(i64::MAX))
        .fetch_one(&self.db.reader)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn count_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE stored_us < ?")
            .bind(cutoff.timestamp_micros())
            .fetch_one(&self.db.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.db.reader).await?;
        Ok(())
    }
}
