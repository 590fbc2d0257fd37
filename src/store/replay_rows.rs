//! Rows of the `replays` table as both stores read them, and their decoding. Times travel as
//! microseconds since the epoch (PostgreSQL converts in its SELECTs).

use super::StoreError;
use super::delivery_rows::from_micros;
use crate::replay::{Replay, ReplayPage, ReplayProgress, ReplayStatus};

/// A `replays` row.
#[derive(sqlx::FromRow)]
pub(super) struct ReplayRow {
    id: String,
    status: String,
    stream: String,
    start_us: i64,
    end_us: i64,
    event_types: String,
    subscription_id: Option<String>,
    dry_run: bool,
    cursor: i64,
    matched: i64,
    replayed: i64,
    deliveries: i64,
    error: Option<String>,
    created_us: i64,
    updated_us: i64,
    finished_us: Option<i64>,
}

impl ReplayRow {
    pub(super) fn decode(self) -> Result<Replay, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: self.id.clone(),
            reason,
        };
        let status = ReplayStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?;
        let event_types = serde_json::from_str(&self.event_types)
            .map_err(|err| corrupt(format!("event_types: {err}")))?;
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(Replay {
            status,
            stream: self.stream,
            start_time: from_micros(self.start_us),
            end_time: from_micros(self.end_us),
            event_types,
            subscription_id: self.subscription_id,
            dry_run: self.dry_run,
            progress: ReplayProgress {
                cursor: self.cursor,
                matched: count(self.matched),
                replayed: count(self.replayed),
                deliveries: count(self.deliveries),
            },
            error: self.error,
            created_at: from_micros(self.created_us),
            updated_at: from_micros(self.updated_us),
            finished_at: self.finished_us.map(from_micros),
            id: self.id,
        })
    }
}

/// The event-type filter of a replay as stored.
pub(super) fn encode_types(replay: &Replay) -> String {
    serde_json::Value::from(replay.event_types.clone()).to_string()
}

/// A page of replays from up to `limit + 1` rows, newest first.
pub(super) fn replay_page(rows: Vec<ReplayRow>, limit: u32) -> Result<ReplayPage, StoreError> {
    let mut replays = rows
        .into_iter()
        .map(ReplayRow::decode)
        .collect::<Result<Vec<_>, _>>()?;
    let more = replays.len() > limit as usize;
    replays.truncate(limit as usize);
    let next_cursor = more.then(|| replays.last().map(|r| r.id.clone())).flatten();
    Ok(ReplayPage {
        replays,
        next_cursor,
    })
}

/// A count as stored.
pub(super) fn stored_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
