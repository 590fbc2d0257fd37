//! The steps of the delivery tables that involve more than one statement, written once for both
//! databases: creating jobs, recording attempts and dropping a cancelled replay's jobs, with the
//! ordered-delivery rules of [`crate::delivery::promotions`] applied in the same transaction.
//!
//! Each backend implements [`JobTables`] on its connection: one statement per method, in its
//! dialect (SQLite passes batches as JSON arrays, PostgreSQL as typed arrays; PostgreSQL locks
//! ordering keys, where SQLite's single writer already serializes). What happens in which order,
//! and what an ordered job's state is, is decided here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::delivery_rows::{PENDING, QUEUED};
use crate::delivery::{
    AttemptRecord, CreatedJobs, DeadLetter, DeliveryJob, KeyState, NewDelivery, NextStep,
    OrderingKey, RecordedAttempts, promotions,
};

/// The statements a backend offers the delivery steps, run on one connection (in a transaction
/// when the step has more than one).
#[async_trait]
pub(super) trait JobTables: Send {
    /// Makes every other transaction touching one of `keys` (sorted) wait until this one ends.
    async fn lock_keys(&mut self, keys: &[OrderingKey]) -> Result<(), StoreError>;

    /// Inserts the jobs whose (event, subscription, replay) has none yet, each with its status;
    /// returns the ids inserted.
    async fn insert_jobs(
        &mut self,
        jobs: &[NewDelivery],
        statuses: &[&'static str],
    ) -> Result<Vec<String>, StoreError>;

    /// Leases to the caller until `due` those of `jobs`' (event, subscription, replay) whose
    /// stored job is pending and due at `now`.
    async fn claim_jobs(
        &mut self,
        jobs: &[&NewDelivery],
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError>;

    /// The head and the oldest queued job of each key.
    async fn key_states(&mut self, keys: &[OrderingKey]) -> Result<Vec<KeyState>, StoreError>;

    /// Makes these queued jobs pending, each due at its time; returns them.
    async fn make_heads(
        &mut self,
        heads: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<DeliveryJob>, StoreError>;

    /// Moves each job still pending with the attempt count it was sent with to its state after
    /// the attempt, and logs those attempts; returns the ids of the jobs moved.
    async fn apply_attempts(
        &mut self,
        attempts: &[AttemptRecord],
    ) -> Result<Vec<String>, StoreError>;

    /// Adds an entry to the dead-letter queue (a no-op if one with its id exists).
    async fn insert_dead_letter(&mut self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// The keys of a replay's queued jobs.
    async fn queued_keys_of_replay(
        &mut self,
        replay_id: &str,
    ) -> Result<Vec<OrderingKey>, StoreError>;

    /// Deletes a replay's jobs not yet sent: its queued jobs and its pending unordered ones (an
    /// ordered head may be on its way: it stays, and its key goes on after it).
    async fn delete_unsent_replay_jobs(&mut self, replay_id: &str) -> Result<(), StoreError>;
}

/// The status a new job starts with: queued when ordered (the key's head, if it has none, is
/// chosen afterwards), pending otherwise.
fn initial_status(job: &NewDelivery) -> &'static str {
    if job.ordering_key.is_some() {
        QUEUED
    } else {
        PENDING
    }
}

/// True when creating `jobs` is one insert: no job is ordered.
pub(super) fn is_plain_insert(jobs: &[NewDelivery]) -> bool {
    jobs.iter().all(|job| job.ordering_key.is_none())
}

/// Creates the jobs whose (event, subscription, replay) has none yet. Ordered jobs queue behind
/// their key's unfinished jobs; a key left without a head gets its oldest queued job as head,
/// due when the job that made it so was due. Ordered jobs that existed already (created as their
/// event was stored) are leased to the caller if they are due heads and the caller's `due` is a
/// lease.
pub(super) async fn create_jobs<T: JobTables + ?Sized>(
    tables: &mut T,
    jobs: &[NewDelivery],
) -> Result<CreatedJobs, StoreError> {
    let keys = OrderingKey::of_jobs(
        jobs.iter()
            .map(|job| (job.subscription_id.as_str(), job.ordering_key.as_deref())),
    );
    tables.lock_keys(&keys).await?;
    let statuses: Vec<&'static str> = jobs.iter().map(initial_status).collect();
    let created = tables.insert_jobs(jobs, &statuses).await?;
    // A set: a batch holds thousands of jobs, and a scan per job would make this quadratic.
    let created_ids: std::collections::HashSet<&str> = created.iter().map(String::as_str).collect();
    let is_created = |job: &&NewDelivery| created_ids.contains(job.id.as_str());
    let mut ready: Vec<DeliveryJob> = jobs
        .iter()
        .filter(|job| job.ordering_key.is_none())
        .filter(is_created)
        .map(|job| job.clone().into_job())
        .collect();
    if keys.is_empty() {
        return Ok(CreatedJobs { created, ready });
    }
    let now = Utc::now();
    let states = tables.key_states(&keys).await?;
    let heads: Vec<(String, DateTime<Utc>)> = promotions(&states)
        .into_iter()
        .map(|id| {
            let due = jobs
                .iter()
                .find(|job| job.id == id)
                .map_or(now, |job| job.due);
            (id, due)
        })
        .collect();
    ready.extend(tables.make_heads(&heads).await?);
    let existing: Vec<&NewDelivery> = jobs
        .iter()
        .filter(|job| job.ordering_key.is_some() && job.due > now)
        .filter(|job| !created_ids.contains(job.id.as_str()))
        .collect();
    if let Some(due) = existing.iter().map(|job| job.due).max() {
        ready.extend(tables.claim_jobs(&existing, now, due).await?);
    }
    Ok(CreatedJobs { created, ready })
}

/// The keys whose head `attempts` may finish (delivered or dead-lettered).
fn finishing_keys(attempts: &[AttemptRecord]) -> Vec<OrderingKey> {
    OrderingKey::of_jobs(
        attempts
            .iter()
            .filter(|record| !matches!(record.next, NextStep::RetryAt(_)))
            .map(|record| {
                (
                    record.job.subscription_id.as_str(),
                    record.job.ordering_key.as_deref(),
                )
            }),
    )
}

/// True when recording `attempts` is one statement: no dead letter, no ordered head finishing.
pub(super) fn is_plain_record(attempts: &[AttemptRecord]) -> bool {
    !attempts
        .iter()
        .any(|record| matches!(record.next, NextStep::DeadLetter(_)))
        && finishing_keys(attempts).is_empty()
}

/// Records attempts: each job's new state, the log, the dead letters, and, for every ordered
/// head that finished, its key's next job as head, due at `successors_due`.
pub(super) async fn record_attempts<T: JobTables + ?Sized>(
    tables: &mut T,
    attempts: &[AttemptRecord],
    successors_due: DateTime<Utc>,
) -> Result<RecordedAttempts, StoreError> {
    let keys = finishing_keys(attempts);
    tables.lock_keys(&keys).await?;
    let recorded = in_attempt_order(attempts, tables.apply_attempts(attempts).await?);
    for record in attempts {
        if let NextStep::DeadLetter(letter) = &record.next
            && recorded.contains(&record.job.id)
        {
            tables.insert_dead_letter(letter).await?;
        }
    }
    let states = if keys.is_empty() {
        Vec::new()
    } else {
        tables.key_states(&keys).await?
    };
    let heads: Vec<(String, DateTime<Utc>)> = promotions(&states)
        .into_iter()
        .map(|id| (id, successors_due))
        .collect();
    let successors = tables.make_heads(&heads).await?;
    Ok(RecordedAttempts {
        recorded,
        successors,
    })
}

/// The ids of the jobs `moved`, in the order of `attempts`.
pub(super) fn in_attempt_order(attempts: &[AttemptRecord], moved: Vec<String>) -> Vec<String> {
    let moved: std::collections::HashSet<String> = moved.into_iter().collect();
    attempts
        .iter()
        .filter(|record| moved.contains(&record.job.id))
        .map(|record| record.job.id.clone())
        .collect()
}

/// Drops the jobs of a cancelled replay that were not sent, giving the keys of dropped queued
/// jobs a head again where they lost it.
pub(super) async fn drop_unsent_replay_jobs<T: JobTables + ?Sized>(
    tables: &mut T,
    replay_id: &str,
) -> Result<(), StoreError> {
    let keys = tables.queued_keys_of_replay(replay_id).await?;
    tables.lock_keys(&keys).await?;
    tables.delete_unsent_replay_jobs(replay_id).await?;
    if keys.is_empty() {
        return Ok(());
    }
    let states = tables.key_states(&keys).await?;
    let now = Utc::now();
    let heads: Vec<(String, DateTime<Utc>)> = promotions(&states)
        .into_iter()
        .map(|id| (id, now))
        .collect();
    tables.make_heads(&heads).await?;
    Ok(())
}
