//! The embedded broker: Redis Streams semantics on tables of the shared SQLite file, so the
//! zero-setup deployment is as durable as the distributed one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Broker, BrokerError, Delivery, EntryId, StreamMessage};
use crate::sqlite::SqliteDb;

/// Entries per INSERT statement: well under SQLite's bound-parameter limit.
const PUBLISH_CHUNK: usize = 500;
/// How often a blocked reader looks for entries written by another process.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// [`Broker`] in the embedded SQLite file; readers in this process wake as soon as entries land.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    db: SqliteDb,
    published: Arc<Notify>,
}

type EntryRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    i64,
);

impl EmbeddedBroker {
    /// Wakes readers of this process blocked in `read_group`: call after committing entries.
    pub(crate) fn wake_readers(&self) {
        self.published.notify_waiters();
    }

    /// A broker on an open database.
    pub fn new(db: SqliteDb) -> Self {
        Self {
            db,
            published: Arc::new(Notify::new()),
        }
    }

    /// One non-blocking XREADGROUP over `streams`: a single statement takes up to `count` new
    /// entries of each stream into the pending list (a trigger advances the group), then a
    /// reader fetches their payloads.
    async fn read_new(
        &self,
        group: &str,
        consumer: &str,
        streams: &[String],
        count: usize,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let mut take = QueryBuilder::<Sqlite>::new(
            "INSERT INTO stream_pending (group_name, entry_id, stream, consumer, delivery_count, delivered_ms) SELECT ",
        );
        take.push_bind(group)
            .push(", id, stream, ")
            .push_bind(consumer)
            .push(", 1, ")
            .push_bind(now_ms())
            .push(" FROM (");
        for (i, stream) in streams.iter().enumerate() {
            if i > 0 {
                take.push(" UNION ALL ");
            }
            take.push("SELECT * FROM (SELECT id, stream FROM stream_entries WHERE stream = ")
                .push_bind(stream)
                .push(" AND id > (SELECT last_delivered FROM stream_groups WHERE group_name = ")
                .push_bind(group)
                .push(" AND stream = ")
                .push_bind(stream)
                .push(") ORDER BY id LIMIT ")
                .push_bind(count as i64)
                .push(")");
        }
        take.push(") RETURNING entry_id");
        let ids: Vec<i64> = take
            .build_query_scalar()
            .fetch_all(&self.db.writer)
            .await
            .map_err(backend)?;
        if ids.is_empty() {
            self.check_groups(group, streams).await?;
            return Ok(Vec::new());
        }
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT id, stream, event_id, partition_key, sequence, payload, 1 FROM stream_entries \
             WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&self.db.reader)
        .await
        .map_err(backend)?;
        Ok(rows.into_iter().map(delivery).collect())
    }

    /// Fails with [`BrokerError::NoGroup`] when `group` is missing on one of `streams`.
    async fn check_groups(&self, group: &str, streams: &[String]) -> Result<(), BrokerError> {
        let joined: Vec<String> = sqlx::query_scalar(
            "SELECT stream FROM stream_groups \
             WHERE group_name = ? AND stream IN (SELECT value FROM json_each(?))",
        )
        .bind(group)
        .bind(serde_json::Value::from(streams.to_vec()).to_string())
        .fetch_all(&self.db.reader)
        .await
        .map_err(backend)?;
        match streams.iter().find(|stream| !joined.contains(stream)) {
            Some(stream) => Err(BrokerError::NoGroup {
                stream: stream.clone(),
                group: group.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a `SELECT COUNT(*)` with `params` bound in order.
    async fn count(&self, sql: &'static str, params: &[&str]) -> Result<u64, BrokerError> {
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        for param in params {
            query = query.bind(*param);
        }
        let count = query.fetch_one(&self.db.reader).await.map_err(backend)?;
        Ok(count.max(0) as u64)
    }
}

/// Appends `messages` to their streams on `conn` (XADD); the caller commits.
async fn append_entries(
    conn: &mut SqliteConnection,
    messages: &[StreamMessage],
) -> Result<Vec<EntryId>, sqlx::Error> {
    let mut ids = Vec::with_capacity(messages.len());
    for chunk in messages.chunks(PUBLISH_CHUNK) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO stream_entries (stream, event_id, partition_key, sequence, payload) ",
        );
        insert.push_values(chunk, |mut row, message| {
            row.push_bind(&message.stream)
                .push_bind(&message.event_id)
                .push_bind(&message.partition_key)
                .push_bind(message.sequence)
                .push_bind(&message.payload);
        });
        let result = insert.build().execute(&mut *conn).await?;
        // One writer holds the lock: the entries got consecutive ids ending at the last one.
        let last = result.last_insert_rowid();
        let first = last - chunk.len() as i64 + 1;
        ids.extend((first..=last).map(|id| EntryId(id.to_string())));
    }
    Ok(ids)
}

/// Up to `count` entries of `stream` with ids above `after`, as first deliveries.
fn entries_after(
    stream: &str,
    after: i64,
    count: usize,
) -> sqlx::query::QueryAs<'_, Sqlite, EntryRow, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query_as(
        "SELECT id, stream, event_id, partition_key, sequence, payload, 1 FROM stream_entries \
         WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(stream)
    .bind(after)
    .bind(count as i64)
}

fn delivery((id, stream, event_id, partition_key, sequence, payload, count): EntryRow) -> Delivery {
    Delivery {
        entry_id: EntryId(id.to_string()),
        message: StreamMessage {
            stream,
            event_id,
            partition_key,
            sequence,
            payload,
        },
        delivery_count: u32::try_from(count).unwrap_or(u32::MAX),
    }
}

fn backend(err: sqlx::Error) -> BrokerError {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            BrokerError::Unavailable(err.into())
        }
        sqlx::Error::Database(ref db) if crate::sqlite::is_busy(db.as_ref()) => {
            BrokerError::Unavailable(err.into())
        }
        _ => BrokerError::Backend(err.into()),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses entry ids into the JSON array that `json_each` expands.
fn id_list(ids: &[EntryId]) -> Result<String, BrokerError> {
    let numbers = ids
        .iter()
        .map(|id| id.0.parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| BrokerError::Backend(err.into()))?;
    Ok(serde_json::Value::from(numbers).to_string())
}

#[async_trait]
impl Broker for EmbeddedBroker {
    async fn publish(&self, messages: &[StreamMessage]) -> Result<Vec<EntryId>, BrokerError> {
        let mut tx = self.db.writer.begin().await.map_err(backend)?;
        let ids = append_entries(&mut tx, messages).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.wake_readers();
        Ok(ids)
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        sqlx::query("INSERT OR IGNORE INTO stream_groups (stream, group_name) VALUES (?, ?)")
            .bind(stream)
            .bind(group)
            .execute(&self.db.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        streams: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let deadline = Instant::now() + block;
        loop {
            // Register for the wake-up before looking, so a publish in between is not missed.
            let published = self.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let deliveries = self.read_new(group, consumer, streams, count).await?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let wait = (deadline - now).min(POLL_INTERVAL);
            tokio::select! {
                _ = published => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn ack(&self, group: &str, _stream: &str, ids: &[EntryId]) -> Result<u64, BrokerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let result = sqlx::query(
            "DELETE FROM stream_pending WHERE group_name = ? AND entry_id IN (SELECT value FROM json_each(?))",
        )
        .bind(group)
        .bind(id_list(ids)?)
        .execute(&self.db.writer)
        .await
        .map_err(backend)?;
        Ok(result.rows_affected())
    }

    async fn claim_idle(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let now = now_ms();
        let idle_before = now - i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.db.writer.begin().await.map_err(backend)?;
        let claimed: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE stream_pending SET consumer = ?, delivery_count = delivery_count + 1, delivered_ms = ? \
             WHERE group_name = ? AND entry_id IN ( \
                 SELECT entry_id FROM stream_pending \
                 WHERE group_name = ? AND stream = ? AND delivered_ms <= ? ORDER BY entry_id LIMIT ?) \
             RETURNING entry_id, delivery_count",
        )
        .bind(consumer)
        .bind(now)
        .bind(group)
        .bind(group)
        .bind(stream)
        .bind(idle_before)
        .bind(count as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<EntryId> = claimed
            .iter()
            .map(|(id, _)| EntryId(id.to_string()))
            .collect();
        let mut rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT e.id, e.stream, e.event_id, e.partition_key, e.sequence, e.payload, p.delivery_count \
             FROM stream_entries e JOIN stream_pending p ON p.entry_id = e.id AND p.group_name = ? \
             WHERE e.id IN (SELECT value FROM json_each(?))",
        )
        .bind(group)
        .bind(id_list(&ids)?)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        rows.sort_unstable_by_key(|row| row.0);
        Ok(rows.into_iter().map(delivery).collect())
    }

    async fn range(
        &self,
        stream: &str,
        after: Option<&EntryId>,
        count: usize,
    ) -> Result<Vec<(EntryId, StreamMessage)>, BrokerError> {
        let after = match after {
            Some(id) => {
                id.0.parse::<i64>()
                    .map_err(|err| BrokerError::Backend(err.into()))?
            }
            None => 0,
        };
        let rows = entries_after(stream, after, count)
            .fetch_all(&self.db.reader)
            .await
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let delivery = delivery(row);
                (delivery.entry_id, delivery.message)
            })
            .collect())
    }

    async fn stream_len(&self, stream: &str) -> Result<u64, BrokerError> {
        self.count(
            "SELECT COUNT(*) FROM stream_entries WHERE stream = ?",
            &[stream],
        )
        .await
    }

    async fn lag(&self, group: &str, stream: &str) -> Result<u64, BrokerError> {
        self.count(
            "SELECT COUNT(*) FROM stream_entries WHERE stream = ?2 AND id > \
             COALESCE((SELECT last_delivered FROM stream_groups WHERE group_name = ?1 AND stream = ?2), 0)",
            &[group, stream],
        )
        .await
    }

    async fn pending(&self, group: &str, stream: &str) -> Result<u64, BrokerError> {
        self.count(
            "SELECT COUNT(*) FROM stream_pending WHERE group_name = ?1 AND stream = ?2",
            &[group, stream],
        )
        .await
    }

    async fn leave_group(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
    ) -> Result<bool, BrokerError> {
        // Consumers are not registered here: one holding nothing has nothing to remove.
        let holding = self
            .count(
                "SELECT COUNT(*) FROM stream_pending WHERE group_name = ?1 AND stream = ?2 AND consumer = ?3",
                &[group, stream, consumer],
            )
            .await?;
        Ok(holding == 0)
    }

    async fn trim(
        &self,
        stream: &str,
        _cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, BrokerError> {
        // The stream shares the file with the store, which retention prunes first, oldest
        // first: an entry whose event sequence lies below every stored event's belongs to a
        // pruned event. Only the oldest `limit` entries are looked at, so that the statement
        // never scans the stream; entries still pending stay until they are acknowledged.
        let trimmed = sqlx::query(
            "DELETE FROM stream_entries WHERE id IN ( \
                 SELECT id FROM ( \
                     SELECT id, sequence FROM stream_entries WHERE stream = ?1 ORDER BY id LIMIT ?2 \
                 ) AS oldest \
                 WHERE sequence < (SELECT COALESCE(MIN(seq), 9223372036854775807) FROM events) \
                 AND NOT EXISTS (SELECT 1 FROM stream_pending WHERE entry_id = oldest.id))",
        )
        .bind(stream)
        .bind(i64::from(limit))
        .execute(&self.db.writer)
        .await
        .map_err(backend)?;
        Ok(trimmed.rows_affected())
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        sqlx::query("SELECT 1")
            .execute(&self.db.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
