//! The distributed event store: PostgreSQL, shared by every API and worker process.
//!
//! A batch is appended in one round trip: the columns travel as arrays, are unnested and inserted
//! in batch order, and the same statement reports which ids were stored before.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::batch::{decode_event, decode_rows, encode_event, outcomes, page, plan};
use super::delivery_postgres::insert_jobs;
use super::query::{MAX_WALK, prefix_end};
use super::{
    AppendOutcome, EventPage, EventQuery, EventStore, ScanPage, StoreError, TimeRange, TypeFilter,
    jobs_of_created,
};
use crate::delivery::NewDelivery;
use crate::events::Event;

/// Appends in flight at once: while one waits for its commit to be flushed, the next executes.
const CONCURRENT_APPENDS: usize = 2;
/// Sequences a replay's walk reads per query: each query stays small whatever plan the
/// statistics lead to (fresh bulk loads leave them stale, and a plan through the time index
/// would sort the rest of the window).
const SCAN_STRETCH: i64 = 10_000;
/// Longest a store call may take before the store counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Inserts the batch (given as arrays, in order), skipping ids stored before, queues the new events
/// in the outbox, and returns for each event its new sequence or, when its id was stored before,
/// the stored row.
///
/// Lookups by key are written as `LATERAL (… LIMIT 1)` probes here and below: the planner cannot
/// turn them into a join that scans the table, which a cached plan made while the table was
/// small would otherwise keep doing as it grows.
const APPEND: &str = "
WITH batch AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::text[], $8::text[], $9::text[])
        WITH ORDINALITY
        AS b(id, source, type, subject, stream, time, correlation_id, partition_key, body, ord)
), inserted AS (
    INSERT INTO events (id, source, type, subject, stream, time, correlation_id, partition_key, body)
    SELECT id, source, type, subject, stream, time, correlation_id, partition_key, body::jsonb
    FROM batch ORDER BY ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id, seq
), queued AS (
    INSERT INTO outbox (seq) SELECT seq FROM inserted
)
SELECT inserted.seq, stored.seq, stored.body
FROM batch
LEFT JOIN inserted ON inserted.id = batch.id
LEFT JOIN LATERAL (
    SELECT seq, body::text FROM events WHERE events.id = batch.id AND inserted.seq IS NULL LIMIT 1
) AS stored ON true
ORDER BY batch.ord";

/// [`EventStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A store on the database at `url` (`postgresql://…`). Connections are made in the
    /// background, so a process starts while the database is down and recovers by itself when
    /// it returns.
    ///
    /// The pool is of a fixed size: it opens all `pool_size` connections (`DATABASE_POOL_SIZE`,
    /// 16 by default: enough for the committer, the outbox and concurrent queries) and keeps
    /// them, never closing one for age or idleness. A pool that grows on demand opens a
    /// connection in the request that needs it, and sqlx retries a server's "too many clients"
    /// refusal until the acquire timeout, while connections the pool already has come free: a
    /// server that another application filled turned every such request into a 3 s wait and a
    /// 503 (`tests/postgres_saturated.rs`). With every connection held, a full server costs
    /// throughput only. The alternative, shrinking and regrowing with demand, saves the server a
    /// few idle connections per process.
    ///
    /// sqlx fills the pool once, in the background (retrying for up to 5 minutes while the
    /// database is down). A connection lost later, to a database restart for instance, is
    /// reopened on demand like before, so a server that is full at that moment can still make
    /// that request wait.
    pub fn connect_lazy(url: &str, pool_size: u32) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(pool_size)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.application_name("eventflow"));
        Ok(Self { pool })
    }

    /// Brings the schema up to date (versioned migrations; a no-op when current).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for the delivery tables in the same database.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The batch as one array per column, in the order of [`APPEND`]'s parameters.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<&'a str>,
    source: Vec<&'a str>,
    event_type: Vec<&'a str>,
    subject: Vec<Option<&'a str>>,
    stream: Vec<&'a str>,
    time: Vec<DateTime<Utc>>,
    correlation_id: Vec<&'a str>,
    partition_key: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(events: &'a [Event]) -> Self {
        let mut columns = Self::default();
        for event in events {
            columns.id.push(event.id());
            columns.source.push(&event.envelope.source);
            columns.event_type.push(event.event_type());
            columns.subject.push(event.envelope.subject.as_deref());
            columns.stream.push(&event.metadata.stream);
            columns.time.push(event.envelope.time);
            columns.correlation_id.push(&event.metadata.correlation_id);
            columns
                .partition_key
                .push(event.metadata.partition_key.as_deref());
        }
        columns
    }
}

/// Runs a store call, giving up after [`CALL_TIMEOUT`]: a database that stops answering (a
/// network that drops packets) is then unavailable instead of holding its callers forever.
pub(super) async fn bounded<T>(
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or(Err(StoreError::TimedOut(CALL_TIMEOUT)))
}

/// The event with this id, read through `executor`.
async fn get_on<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    id: &str,
) -> Result<Option<Event>, StoreError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, body::text FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?;
    row.map(|(seq, body)| decode_event(seq, &body)).transpose()
}

impl PgStore {
    /// Appends a batch on `conn` (the pool's connection, or the transaction that also creates
    /// its jobs).
    async fn append_on(
        &self,
        conn: &mut PgConnection,
        events: Vec<Event>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let (mut fresh, slots) = plan(events);
        let bodies = fresh
            .iter()
            .map(encode_event)
            .collect::<Result<Vec<_>, _>>()?;
        let columns = Columns::of(&fresh);
        let rows: Vec<(Option<i64>, Option<i64>, Option<String>)> = sqlx::query_as(APPEND)
            .bind(&columns.id)
            .bind(&columns.source)
            .bind(&columns.event_type)
            .bind(&columns.subject)
            .bind(&columns.stream)
            .bind(&columns.time)
            .bind(&columns.correlation_id)
            .bind(&columns.partition_key)
            .bind(&bodies)
            .fetch_all(&mut *conn)
            .await?;
        let mut stored_before = HashMap::new();
        let mut raced = Vec::new();
        for (index, row) in rows.into_iter().enumerate() {
            match row {
                (Some(seq), _, _) => fresh[index].metadata.sequence = Some(seq),
                (None, Some(seq), Some(body)) => {
                    stored_before.insert(index, decode_event(seq, &body)?);
                }
                // Stored by a concurrent transaction that committed after this statement began.
                _ => raced.push(index),
            }
        }
        for index in raced {
            let stored = get_on(&mut *conn, fresh[index].id())
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    id: fresh[index].id().to_string(),
                    reason: "neither inserted nor stored before".into(),
                })?;
            stored_before.insert(index, stored);
        }
        Ok(outcomes(slots, &fresh, &stored_before))
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn append_with_deliveries(
        &self,
        events: Vec<Event>,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        bounded(async {
            if deliveries.is_empty() {
                let mut conn = self.pool.acquire().await?;
                return self.append_on(&mut conn, events).await;
            }
            let mut tx = self.pool.begin().await?;
            let outcomes = self.append_on(&mut tx, events).await?;
            insert_jobs(&mut tx, &jobs_of_created(&outcomes, deliveries)).await?;
            tx.commit().await?;
            Ok(outcomes)
        })
        .await
    }

    fn concurrent_appends(&self) -> usize {
        CONCURRENT_APPENDS
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, StoreError> {
        bounded(get_on(&self.pool, id)).await
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        bounded(async {
            let mut select =
                QueryBuilder::<Postgres>::new("SELECT seq, body::text FROM events WHERE true");
            match &query.event_type {
                Some(TypeFilter::Exact(exact)) => {
                    select.push(" AND type = ").push_bind(exact.clone());
                }
                Some(TypeFilter::Prefix(prefix)) if !prefix.is_empty() => {
                    // Pattern operators, which the `text_pattern_ops` index serves with any plan
                    // (a LIKE with a bound pattern cannot use it once the plan is generic).
                    select.push(" AND type ~>=~ ").push_bind(prefix.clone());
                    if let Some(end) = prefix_end(prefix) {
                        select.push(" AND type ~<~ ").push_bind(end);
                    }
                }
                Some(TypeFilter::Prefix(_)) | None => {}
            }
            for (column, value) in query.equality_filters() {
                select
                    .push(format!(" AND {column} = "))
                    .push_bind(value.to_string());
            }
            if let Some(start) = query.start_time {
                select.push(" AND time >= ").push_bind(start);
            }
            if let Some(end) = query.end_time {
                select.push(" AND time < ").push_bind(end);
            }
            if let Some(cursor) = query.cursor {
                select.push(" AND seq < ").push_bind(cursor.0);
            }
            select
                .push(" ORDER BY seq DESC LIMIT ")
                .push_bind(i64::from(query.limit) + 1)
                .push(" OFFSET ")
                .push_bind(i64::from(query.offset));
            let rows = select.build_query_as().fetch_all(&self.pool).await?;
            page(rows, query.limit)
        })
        .await
    }

    async fn sequence_bounds(&self, range: &TimeRange) -> Result<Option<(i64, i64)>, StoreError> {
        bounded(async {
            let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT min(seq), max(seq) FROM events \
                 WHERE time >= $1 AND time < $2 AND ($3::text IS NULL OR stream = $3)",
            )
            .bind(range.start)
            .bind(range.end)
            .bind(&range.stream)
            .fetch_one(&self.pool)
            .await?;
            Ok(first.zip(last))
        })
        .await
    }

    async fn scan(
        &self,
        range: &TimeRange,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<ScanPage, StoreError> {
        bounded(async {
            let through = through.min(after.saturating_add(MAX_WALK));
            let mut rows: Vec<(i64, String)> = Vec::new();
            let mut from = after;
            // Stretch by stretch until the batch is full or the walk reaches `through`.
            while from < through && rows.len() < limit as usize {
                let upto = through.min(from.saturating_add(SCAN_STRETCH));
                let wanted = limit as usize - rows.len();
                let found: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT seq, body::text FROM events \
                     WHERE seq > $3 AND seq <= $6 AND time >= $1 AND time < $2 \
                     AND ($4::text IS NULL OR stream = $4) ORDER BY seq LIMIT $5",
                )
                .bind(range.start)
                .bind(range.end)
                .bind(from)
                .bind(&range.stream)
                .bind(wanted as i64)
                .bind(upto)
                .fetch_all(&self.pool)
                .await?;
                let full = found.len() == wanted;
                rows.extend(found);
                if full {
                    break;
                }
                from = upto;
            }
            let scanned_through = match rows.last() {
                Some((seq, _)) if rows.len() == limit as usize => *seq,
                _ => through,
            };
            Ok(ScanPage {
                events: decode_rows(rows)?,
                scanned_through,
            })
        })
        .await
    }

    async fn stored_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        bounded(async {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT seq, body::text FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            decode_rows(rows)
        })
        .await
    }

    async fn last_sequence(&self) -> Result<i64, StoreError> {
        bounded(async {
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
                .fetch_one(&self.pool)
                .await?;
            Ok(last.unwrap_or(0))
        })
        .await
    }

    async fn unpublished(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        bounded(async {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT queued.seq, event.body FROM (SELECT seq FROM outbox ORDER BY seq LIMIT $1) AS queued \
                 CROSS JOIN LATERAL (SELECT body::text FROM events WHERE events.seq = queued.seq LIMIT 1) AS event \
                 ORDER BY queued.seq",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            decode_rows(rows)
        })
        .await
    }

    async fn mark_published(&self, sequences: &[i64]) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "DELETE FROM outbox WHERE seq IN ( \
                     SELECT found.seq FROM UNNEST($1::bigint[]) AS done(seq) CROSS JOIN LATERAL ( \
                         SELECT seq FROM outbox WHERE outbox.seq = done.seq LIMIT 1 \
                     ) AS found \
                 )",
            )
            .bind(sequences)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn processed(
        &self,
        group: &str,
        event_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        bounded(async {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT asked.id FROM UNNEST($2::text[]) AS asked(id) CROSS JOIN LATERAL ( \
                     SELECT 1 FROM processed_events \
                     WHERE consumer_group = $1 AND event_id = asked.id LIMIT 1 \
                 ) AS hit",
            )
            .bind(group)
            .bind(event_ids)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        })
        .await
    }

    async fn record_processed(&self, group: &str, event_ids: &[String]) -> Result<(), StoreError> {
        bounded(async {
            sqlx::query(
                "INSERT INTO processed_events (consumer_group, event_id) \
                 SELECT $1, id FROM UNNEST($2::text[]) AS id ON CONFLICT DO NOTHING",
            )
            .bind(group)
            .bind(event_ids)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn prune_events(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        bounded(async {
            let mut tx = self.pool.begin().await?;
            let pruned: Vec<(i64,)> = sqlx::query_as(
                "DELETE FROM events WHERE seq IN ( \
                     SELECT seq FROM events WHERE stored_at < $1 ORDER BY stored_at LIMIT $2 \
                 ) RETURNING seq",
            )
            .persistent(false)
            .bind(cutoff)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let sequences: Vec<i64> = pruned.into_iter().map(|(seq,)| seq).collect();
            sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
                .persistent(false)
                .bind(&sequences)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM processed_events WHERE ctid IN ( \
                     SELECT ctid FROM processed_events WHERE processed_at < $1 LIMIT $2 \
                 )",
            )
            .persistent(false)
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(sequences.len() as u64)
        })
        .await
    }

    async fn outbox_len(&self, cap: u64) -> Result<u64, StoreError> {
        bounded(async {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM (SELECT 1 FROM outbox LIMIT $1) AS waiting")
                    .bind(i64::try_from(cap).unwrap_or(i64::MAX))
                    .fetch_one(&self.pool)
                    .await?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn count_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        bounded(async {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM events WHERE stored_at < $1")
                    .persistent(false)
                    .bind(cutoff)
                    .fetch_one(&self.pool)
                    .await?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        bounded(async {
            // A table, not just `SELECT 1`: not ready until the schema is there.
            sqlx::query("SELECT 1 FROM outbox LIMIT 1")
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }
}
