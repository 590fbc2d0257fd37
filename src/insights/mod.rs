//! Insights: how many events of each type arrive, how many are refused, and how each
//! subscription's deliveries go, per minute and per hour, counted as they happen so that a chart
//! reads a few hundred rows of counts and never the events table.
//!
//! Each process tallies in memory ([`Tally`]) and adds its tally to the store every second, one
//! upsert per (metric, key, bucket), so a busy second of one type costs one row write whatever the
//! rate. The alternative, counting in the transaction that stores the events, is exact across a
//! crash, but every commit of a type within one minute would update the same row: on PostgreSQL
//! concurrent commits would queue on that row's lock until each commits, which is the ingest path's
//! throughput. The price of the tally is stated in the README: a process killed with `kill -9`
//! loses the counts of its last second (never an event); a graceful stop adds what it holds.
//!
//! Minute buckets are kept for [`MINUTE_RETENTION`], hour buckets for [`HOUR_RETENTION`]. One
//! metric is a gauge rather than a count: the dead-letter queue's size, sampled every minute by
//! each worker process ([`sample_dead_letters`]); every process samples the same queue, so the
//! last sample written is as good as any.

mod bucket_time;
mod samples;
mod store;
mod tally;

pub use samples::sample_dead_letters;
pub use store::CountStore;
pub use tally::{Tally, TallyTask};

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The key of the dead-letter queue's size.
pub const DLQ_KEY: &str = "dlq";

/// How long minute buckets are kept: a chart by minute reaches this far back.
pub const MINUTE_RETENTION: Duration = Duration::from_secs(48 * 3600);
/// How long hour buckets are kept.
pub const HOUR_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Events stored, by type.
    Events,
    /// Events refused by their type's schema, by type (`unregistered` for the others).
    Invalid,
    /// Successful delivery attempts, by subscription.
    Deliveries,
    /// Failed delivery attempts, by subscription.
    DeliveryFailures,
    /// The dead-letter queue's size, sampled every minute (a gauge: a bucket holds its last
    /// sample, not a sum).
    DlqSize,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 5] = [
        Self::Events,
        Self::Invalid,
        Self::Deliveries,
        Self::DeliveryFailures,
        Self::DlqSize,
    ];

    /// The name in the API and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Invalid => "invalid",
            Self::Deliveries => "deliveries",
            Self::DeliveryFailures => "delivery_failures",
            Self::DlqSize => "dlq_size",
        }
    }

    /// The metric called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|metric| metric.as_str() == name)
    }

    /// What its keys are: `type`, `subscription`, or `queue` (the one key [`DLQ_KEY`]).
    pub fn grouped_by(self) -> &'static str {
        match self {
            Self::Events | Self::Invalid => "type",
            Self::Deliveries | Self::DeliveryFailures => "subscription",
            Self::DlqSize => "queue",
        }
    }

    /// True for a sampled value, which replaces a bucket's value instead of adding to it.
    pub fn is_gauge(self) -> bool {
        self == Self::DlqSize
    }
}

/// The width of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl Interval {
    /// Both widths: every count is added to one bucket of each.
    pub const ALL: [Interval; 2] = [Self::Minute, Self::Hour];

    /// The name in the API and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
        }
    }

    /// The interval called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == name)
    }

    /// How long buckets of this width are kept.
    pub fn retention(self) -> Duration {
        match self {
            Self::Minute => MINUTE_RETENTION,
            Self::Hour => HOUR_RETENTION,
        }
    }

    /// How long one bucket is.
    pub fn width(self) -> chrono::Duration {
        match self {
            Self::Minute => chrono::Duration::minutes(1),
            Self::Hour => chrono::Duration::hours(1),
        }
    }

    /// The start of the bucket holding `at`, in microseconds since the epoch.
    pub fn bucket_of(self, at: DateTime<Utc>) -> i64 {
        let width = self.width().num_microseconds().unwrap_or(1);
        at.timestamp_micros().div_euclid(width) * width
    }
}

/// Counts to add to one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDelta {
    /// What was counted.
    pub metric: Metric,
    /// The type or subscription id.
    pub key: String,
    /// The bucket's width.
    pub interval: Interval,
    /// The bucket's start, in microseconds since the epoch.
    pub bucket_us: i64,
    /// How many to add (for a gauge, the value that replaces the bucket's).
    pub count: u64,
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Point {
    /// The bucket's start.
    #[serde(serialize_with = "bucket_time::serialize")]
    pub time: DateTime<Utc>,
    /// What was counted in it.
    pub count: u64,
}

/// The buckets of one key, oldest first; buckets with nothing counted are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Series {
    /// The type or subscription id.
    pub key: String,
    /// Its buckets.
    pub points: Vec<Point>,
}

/// Buckets of one width from one start (inclusive) to another (exclusive), in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    /// The buckets' width.
    pub interval: Interval,
    /// The first bucket's start.
    pub from_us: i64,
    /// The end of the range: no bucket starting here or later.
    pub until_us: i64,
}

/// The buckets whose sum is the count from the minute holding `since` to `now`: the minutes up
/// to the first whole hour, the whole hours, then the minutes of the current hour. A day's total
/// reads some 24 + 2 × 60 buckets per key instead of 1,440.
pub fn total_ranges(since: DateTime<Utc>, now: DateTime<Utc>) -> [BucketRange; 3] {
    let hour = Interval::Hour.width().num_microseconds().unwrap_or(1);
    let start = Interval::Minute.bucket_of(since);
    let first_hour = (start + hour - 1).div_euclid(hour) * hour;
    let this_hour = Interval::Hour.bucket_of(now).max(first_hour);
    [
        BucketRange {
            interval: Interval::Minute,
            from_us: start,
            until_us: first_hour,
        },
        BucketRange {
            interval: Interval::Hour,
            from_us: first_hour,
            until_us: this_hour,
        },
        BucketRange {
            interval: Interval::Minute,
            from_us: this_hour.max(start),
            until_us: i64::MAX,
        },
    ]
}

/// Rows of (key, bucket start in microseconds, count) as series, by key.
pub fn series(rows: Vec<(String, i64, u64)>) -> Vec<Series> {
    let mut by_key: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (key, bucket_us, count) in rows {
        let Some(time) = Utc.timestamp_micros(bucket_us).single() else {
            continue;
        };
        by_key.entry(key).or_default().push(Point { time, count });
    }
    by_key
        .into_iter()
        .map(|(key, mut points)| {
            points.sort_by_key(|point| point.time);
            Series { key, points }
        })
        .collect()
}

/// The start of a chart: an RFC 3339 time, or a span back from `now` (`90m`, `24h`, `7d`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let unit = text.chars().last()?;
    let amount: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let span = match unit {
        'm' => chrono::Duration::try_minutes(amount)?,
        'h' => chrono::Duration::try_hours(amount)?,
        'd' => chrono::Duration::try_days(amount)?,
        _ => return None,
    };
    now.checked_sub_signed(span).filter(|_| amount > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_the_minute_and_the_hour() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T10:17:42.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let minute = Utc
            .timestamp_micros(Interval::Minute.bucket_of(at))
            .unwrap();
        let hour = Utc.timestamp_micros(Interval::Hour.bucket_of(at)).unwrap();
        assert_eq!(minute.to_rfc3339(), "2026-12-03T10:17:00+00:00");
        assert_eq!(hour.to_rfc3339(), "2026-12-03T10:00:00+00:00");
    }

    #[test]
    fn since_is_a_time_or_a_span_back() {
        let now = Utc::now();
        assert_eq!(
            parse_since("90m", now),
            Some(now - chrono::Duration::minutes(90))
        );
        assert_eq!(
            parse_since("7d", now),
            Some(now - chrono::Duration::days(7))
        );
        assert!(parse_since("2026-12-03T10:00:00Z", now).is_some());
        for bad in [
            "",
            "m",
            "0h",
            "-3h",
            "5w",
            "1.5h",
            "yesterday",
            "99999999999d",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn a_total_covers_every_minute_once() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let now = at("2026-12-03T10:17:42Z");
        for since in [
            "2026-12-02T10:17:42Z",
            "2026-12-03T09:59:59Z",
            "2026-12-03T10:05:00Z",
            "2026-12-03T08:00:00Z",
        ] {
            let since = at(since);
            let ranges = total_ranges(since, now);
            // Every minute from since's to now's is in exactly one range.
            let mut minute = Interval::Minute.bucket_of(since);
            while minute <= Interval::Minute.bucket_of(now) {
                let hour = Interval::Hour.bucket_of(Utc.timestamp_micros(minute).unwrap());
                let covering = ranges
                    .iter()
                    .filter(|r| match r.interval {
                        Interval::Minute => (r.from_us..r.until_us).contains(&minute),
                        Interval::Hour => (r.from_us..r.until_us).contains(&hour),
                    })
                    .count();
                assert_eq!(covering, 1, "{since}: minute {minute}");
                minute += 60_000_000;
            }
        }
    }

    #[test]
    fn rows_become_one_series_per_key_oldest_first() {
        let rows = vec![
            ("b".to_string(), 120_000_000, 2),
            ("a".to_string(), 60_000_000, 5),
            ("a".to_string(), 0, 1),
        ];
        let series = series(rows);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].key, "a");
        let counts: Vec<u64> = series[0].points.iter().map(|p| p.count).collect();
        assert_eq!(counts, [1, 5]);
    }
}
