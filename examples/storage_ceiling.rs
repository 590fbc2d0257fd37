//! The storage ceiling of the embedded store, for `scripts/bench.sh`: batches of 100 rows
//! inserted straight into EventFlow's own SQLite events table (the same file settings and
//! indexes), one transaction per batch, one writer, with nothing of EventFlow in the way. It is
//! what batch ingest is compared with, as pgbench is on PostgreSQL.
//!
//! ```text
//! storage_ceiling SQLITE_URL SECONDS      # prints {"rows": N, "seconds": S, "rows_per_second": R}
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use eventflow::sqlite::SqliteDb;
use sqlx::{QueryBuilder, Sqlite};

/// Rows in one transaction, as in the batch benchmark.
const BATCH: usize = 100;

/// A body the size of a benchmark event as EventFlow stores it.
fn body(id: &str, now_us: i64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"eventflow-bench","type":"bench.event","time":"{now_us}","datacontenttype":"application/json","data":{{"n":1}},"metadata":{{"priority":"normal","correlation_id":"{id}","stream":"events:default","received_at":"{now_us}"}}}}"#
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: storage_ceiling SQLITE_URL SECONDS")?;
    let seconds: u64 = args.next().context("SECONDS")?.parse()?;
    let db = SqliteDb::open(&url).await?;
    let started = Instant::now();
    let mut rows = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let now_us = chrono::Utc::now().timestamp_micros();
        let ids: Vec<String> = (0..BATCH)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, source, type, stream, time_us, correlation_id, body, stored_us) ",
        );
        insert.push_values(&ids, |mut row, id| {
            row.push_bind(id)
                .push_bind("eventflow-bench")
                .push_bind("bench.event")
                .push_bind("events:default")
                .push_bind(now_us)
                .push_bind(id)
                .push_bind(body(id, now_us))
                .push_bind(now_us);
        });
        let mut tx = db.writer.begin().await?;
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        rows += BATCH;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"rows": rows, "seconds": elapsed, "rows_per_second": rows as f64 / elapsed})
    );
    db.close().await;
    Ok(())
}
