//! The event store: the durable source of truth every event is committed to before it is
//! acknowledged. [`EventStore`] is the contract; [`SqliteStore`] the embedded implementation.

mod batch;
mod count_stores;
mod counts_sql;
mod delivery_postgres;
mod delivery_rows;
mod delivery_sqlite;
mod delivery_tx;
mod event_type_stores;
mod event_types_sql;
mod jobs_postgres;
mod jobs_sqlite;
mod postgres;
mod query;
mod replay_postgres;
mod replay_rows;
mod replay_sqlite;
mod shared_sql;
mod sqlite;
mod sqlite_list;

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::delivery::NewDelivery;
use crate::events::Event;

pub use postgres::PgStore;
pub use query::{Cursor, EventPage, EventQuery, ScanPage, TimeRange, TypeFilter};
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: retry later.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database did not answer in time: retry later.
    #[error("event store did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// The database refused the operation.
    #[error("event store error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored row could not be decoded.
    #[error("stored event {id} is unreadable: {reason}")]
    Corrupt {
        /// The event id or sequence at fault.
        id: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// True when the same call may succeed later (the store is unavailable or slow).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::TimedOut(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_transient(&err) {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

/// True when `err` passes with time (the database is unreachable, overloaded, restarting or not
/// set up yet) rather than refusing the work for good.
pub(crate) fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            crate::sqlite::is_busy(db.as_ref()) || is_transient_pg(db.as_ref())
        }
        _ => false,
    }
}

/// True for PostgreSQL errors that pass with time: connection failures (SQLSTATE class 08),
/// a server shutting down or restarting (57P), too many connections or no resources (53),
/// conflicts between concurrent transactions, and a schema not created yet.
fn is_transient_pg(error: &dyn sqlx::error::DatabaseError) -> bool {
    error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| {
            let code = pg.code();
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                // Deadlock or serialization failure: the same work succeeds when retried.
                || code == "40P01"
                || code == "40001"
                // No schema yet: a process started while the database was down upgrades it as
                // soon as it answers.
                || code == "42P01"
        })
}

/// The jobs among `deliveries` whose event `outcomes` shows newly created.
fn jobs_of_created(outcomes: &[AppendOutcome], deliveries: &[NewDelivery]) -> Vec<NewDelivery> {
    let created: HashSet<&str> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            AppendOutcome::Created(event) => Some(event.id()),
            _ => None,
        })
        .collect();
    deliveries
        .iter()
        .filter(|job| created.contains(job.event_id.as_str()))
        .cloned()
        .collect()
}

/// What happened to one event handed to [`EventStore::append`].
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Newly stored; the event now carries its sequence.
    Created(Event),
    /// The same id from the same source was stored before; this is the stored copy.
    Duplicate(Event),
    /// The id is taken by an event from another source.
    Conflict {
        /// The source of the stored event with that id.
        existing_source: String,
    },
}

/// Durable, queryable storage of events, idempotent on the event id.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores a batch in one transaction, in order; returns one outcome per event.
    async fn append(&self, events: Vec<Event>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.append_with_deliveries(events, &[]).await
    }

    /// [`EventStore::append`], creating in the same transaction the delivery jobs among
    /// `deliveries` whose event the batch newly stores (an event stored before keeps the jobs it
    /// had): ordered delivery's jobs exist from the moment their event is accepted.
    async fn append_with_deliveries(
        &self,
        events: Vec<Event>,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// True when `append` also publishes each new event to the broker, atomically (a store and
    /// broker in one database): the producer then has nothing to hand off.
    fn publishes_on_append(&self) -> bool {
        false
    }

    /// How many appends are worth running at once: more only helps a database that commits
    /// concurrent transactions in parallel.
    fn concurrent_appends(&self) -> usize {
        1
    }

    /// The event with this id, if stored.
    async fn get(&self, id: &str) -> Result<Option<Event>, StoreError>;

    /// A page of events matching the query, newest first.
    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The store sequences of the first and the last event of `range` (`None` when it has
    /// none): the stretch of the store a replay walks.
    async fn sequence_bounds(&self, range: &TimeRange) -> Result<Option<(i64, i64)>, StoreError>;

    /// Up to `limit` events of `range` in store order, after sequence `after` and up to
    /// `through`, for replay: a walk along the store order whose calls stay short however large
    /// or sparse the window.
    async fn scan(
        &self,
        range: &TimeRange,
        after: i64,
        through: i64,
        limit: u32,
    ) -> Result<ScanPage, StoreError>;

    /// Events stored after sequence `after`, in store order: what a live stream sends next.
    async fn stored_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// The sequence of the newest stored event (0 when there is none): where a live stream
    /// starts.
    async fn last_sequence(&self) -> Result<i64, StoreError>;

    /// The oldest stored events not yet handed to the broker (the outbox).
    async fn unpublished(&self, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// How many stored events wait to be handed to the broker, counted up to `cap`.
    async fn outbox_len(&self, cap: u64) -> Result<u64, StoreError>;

    /// Records that these sequences reached the broker.
    async fn mark_published(&self, sequences: &[i64]) -> Result<(), StoreError>;

    /// Which of `event_ids` consumer group `group` has processed: an entry delivered again
    /// (claimed from a dead consumer, or published twice) is then acknowledged without effects.
    async fn processed(
        &self,
        group: &str,
        event_ids: &[String],
    ) -> Result<HashSet<String>, StoreError>;

    /// Records that `group` has processed `event_ids`.
    async fn record_processed(&self, group: &str, event_ids: &[String]) -> Result<(), StoreError>;

    /// Deletes up to `limit` of the oldest events stored before `cutoff`, with their outbox rows,
    /// and the processed-event records made before `cutoff`; returns how many events went.
    async fn prune_events(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// How many events were stored before `cutoff`.
    async fn count_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
