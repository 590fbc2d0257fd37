//! How the embedded store answers listings, newest first, fast on large stores.
//!
//! SQLite plans one index per table and without statistics favours an equality over a range,
//! which walks far more rows than needed for two common shapes; each gets a plan of its own:
//! - a narrow time window (up to [`SMALL_WINDOW`] events, probed on the time index) is read
//!   through the time index and sorted, whatever the other filters;
//! - a type prefix (`order.*`) becomes one newest-first walk of the type index per type it
//!   covers (found by skipping through the index), merged: no sort of every matching row.
//!
//! Everything else is one statement over the index SQLite picks.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::batch::page;
use super::query::prefix_end;
use super::{EventPage, EventQuery, StoreError, TypeFilter};

/// Events in a time window read through the time index and sorted, at most.
const SMALL_WINDOW: i64 = 2000;
/// Types a prefix may cover to be listed type by type; beyond this, one range over the index.
const MAX_TYPE_WALKS: usize = 64;

/// A page of events matching `query`, newest first.
pub(super) async fn list(db: &SqlitePool, query: &EventQuery) -> Result<EventPage, StoreError> {
    if window_is_small(db, query).await? {
        return list_in_one_statement(db, query, Some("events_time")).await;
    }
    if let Some(TypeFilter::Prefix(prefix)) = &query.event_type
        && let Some(end) = prefix_end(prefix).filter(|_| !prefix.is_empty())
    {
        let types = types_between(db, prefix, &end).await?;
        if types.len() <= MAX_TYPE_WALKS {
            return list_type_by_type(db, query, &types).await;
        }
    }
    list_in_one_statement(db, query, None).await
}

/// True when the query's time window holds at most [`SMALL_WINDOW`] events.
async fn window_is_small(db: &SqlitePool, query: &EventQuery) -> Result<bool, StoreError> {
    if query.start_time.is_none() && query.end_time.is_none() {
        return Ok(false);
    }
    let start = query.start_time.map_or(i64::MIN, |t| t.timestamp_micros());
    let end = query.end_time.map_or(i64::MAX, |t| t.timestamp_micros());
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ( \
             SELECT 1 FROM events INDEXED BY events_time \
             WHERE time_us >= ? AND time_us < ? LIMIT ?)",
    )
    .bind(start)
    .bind(end)
    .bind(SMALL_WINDOW + 1)
    .fetch_one(db)
    .await?;
    Ok(count <= SMALL_WINDOW)
}

/// The distinct stored types from `start` (inclusive) to `end` (exclusive), up to one more than
/// [`MAX_TYPE_WALKS`], each found by one seek in the type index.
async fn types_between(db: &SqlitePool, start: &str, end: &str) -> Result<Vec<String>, StoreError> {
    let types: Vec<(String,)> = sqlx::query_as(
        "WITH RECURSIVE found(type) AS ( \
             SELECT (SELECT min(type) FROM events WHERE type >= ?1 AND type < ?2) \
             UNION ALL \
             SELECT (SELECT min(type) FROM events WHERE type > found.type AND type < ?2) \
             FROM found WHERE found.type IS NOT NULL LIMIT ?3) \
         SELECT type FROM found WHERE type IS NOT NULL",
    )
    .bind(start)
    .bind(end)
    .bind(MAX_TYPE_WALKS as i64 + 2)
    .fetch_all(db)
    .await?;
    Ok(types.into_iter().map(|(t,)| t).collect())
}

/// One newest-first walk per type, merged.
async fn list_type_by_type(
    db: &SqlitePool,
    query: &EventQuery,
    types: &[String],
) -> Result<EventPage, StoreError> {
    if types.is_empty() {
        return page(Vec::new(), query.limit);
    }
    // Each walk yields what the whole page could need from its type.
    let walk_limit = i64::from(query.offset) + i64::from(query.limit) + 1;
    let mut select = QueryBuilder::<Sqlite>::new("SELECT seq, body FROM (");
    for (n, event_type) in types.iter().enumerate() {
        if n > 0 {
            select.push(" UNION ALL ");
        }
        select
            .push("SELECT * FROM (SELECT seq, body FROM events WHERE type = ")
            .push_bind(event_type.clone());
        push_filters(&mut select, query);
        select
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(walk_limit)
            .push(")");
    }
    select.push(")");
    push_page(&mut select, query);
    let rows = select.build_query_as().fetch_all(db).await?;
    page(rows, query.limit)
}

/// One statement, through `index` when given.
async fn list_in_one_statement(
    db: &SqlitePool,
    query: &EventQuery,
    index: Option<&str>,
) -> Result<EventPage, StoreError> {
    let mut select = QueryBuilder::<Sqlite>::new("SELECT seq, body FROM events");
    if let Some(index) = index {
        select.push(format!(" INDEXED BY {index}"));
    }
    select.push(" WHERE 1 = 1");
    match &query.event_type {
        Some(TypeFilter::Exact(exact)) => {
            select.push(" AND type = ").push_bind(exact.clone());
        }
        Some(TypeFilter::Prefix(prefix)) if !prefix.is_empty() => {
            // A range over the type index (BINARY collation: byte order).
            select.push(" AND type >= ").push_bind(prefix.clone());
            if let Some(end) = prefix_end(prefix) {
                select.push(" AND type < ").push_bind(end);
            }
        }
        Some(TypeFilter::Prefix(_)) | None => {}
    }
    push_filters(&mut select, query);
    push_page(&mut select, query);
    let rows = select.build_query_as().fetch_all(db).await?;
    page(rows, query.limit)
}

/// ` AND …` for every filter of `query` but the event type.
fn push_filters(select: &mut QueryBuilder<'_, Sqlite>, query: &EventQuery) {
    for (column, value) in query.equality_filters() {
        select
            .push(format!(" AND {column} = "))
            .push_bind(value.to_string());
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
}

/// Newest first, one row more than the page (to know whether another follows), after `offset`.
fn push_page(select: &mut QueryBuilder<'_, Sqlite>, query: &EventQuery) {
    select
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(query.limit) + 1)
        .push(" OFFSET ")
        .push_bind(i64::from(query.offset));
}
