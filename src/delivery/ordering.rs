//! Ordered delivery: on a subscription with `ordering: "partition_key"`, the deliveries of events
//! that share a partition key reach the endpoint one at a time, in the order EventFlow accepted
//! the events.
//!
//! The rules, which hold whatever process sends, crashes or restarts:
//!
//! - Of the unfinished jobs of one (subscription, key), only the oldest is *pending*: the key's
//!   head. The others are *queued* behind it in creation order and are never claimed. A head is
//!   claimed, leased, retried and postponed like any job; only when it is delivered or
//!   dead-lettered does the next queued job become the head. So a later event of a key is never
//!   sent while an earlier one is unfinished, and an expired lease sends the head again, never
//!   its successor. Other keys, and events without a key, are not held up.
//! - The jobs of an ordered subscription are created when the event is stored, in the same
//!   transaction (see [`ordered_jobs`]), so creation order is acceptance order. The alternative,
//!   creating them as workers consume the events, orders them by whichever worker fans out first:
//!   two events of a key consumed by two workers, or published to two streams, could swap.
//! - Every change that can leave a key without a head (a head finished, jobs dropped, jobs
//!   created behind nothing) ends with [`promotions`], in the transaction that made it. The
//!   stores serialize those transactions per key (SQLite has one writer; PostgreSQL takes an
//!   advisory lock per key first), so two heads of one key never exist.
//!
//! A job dead-lettered from the head releases its key and says so in its dead letter; retried
//! from the dead-letter queue, it is delivered as an unordered job, late. A replay's jobs queue
//! behind the jobs of the key already waiting, and live events accepted after them queue behind
//! the replay's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{NewDelivery, StoredSubscription, Subscription};
use crate::events::Event;

/// How a subscription orders the deliveries of events that share a partition key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOrdering {
    /// Deliveries are independent: many may be in flight, retries overtake nothing.
    #[default]
    None,
    /// Events sharing `metadata.partition_key` are delivered one at a time, in acceptance order.
    PartitionKey,
}

impl DeliveryOrdering {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PartitionKey => "partition_key",
        }
    }

    /// The ordering a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "partition_key" => Some(Self::PartitionKey),
            _ => None,
        }
    }
}

/// The key `event`'s delivery to `subscription` is ordered by: its partition key, when the
/// subscription orders by it.
pub fn ordering_key<'a>(subscription: &Subscription, event: &'a Event) -> Option<&'a str> {
    match subscription.ordering {
        DeliveryOrdering::PartitionKey => event.metadata.partition_key.as_deref(),
        DeliveryOrdering::None => None,
    }
}

/// The jobs to create with `events` as they are stored: one per event with a partition key and
/// enabled ordered subscription it matches, ordered by that key (`due`: when the head may go).
pub fn ordered_jobs(
    subscriptions: &[std::sync::Arc<StoredSubscription>],
    events: &[Event],
    due: chrono::DateTime<chrono::Utc>,
) -> Vec<NewDelivery> {
    let ordered: Vec<&Subscription> = subscriptions
        .iter()
        .map(|stored| &stored.subscription)
        .filter(|s| s.enabled && s.ordering != DeliveryOrdering::None)
        .collect();
    if ordered.is_empty() {
        return Vec::new();
    }
    let mut jobs = Vec::new();
    for event in events {
        for subscription in &ordered {
            if event.metadata.partition_key.is_some() && subscription.accepts(event) {
                jobs.push(NewDelivery::of(event, subscription, due));
            }
        }
    }
    jobs
}

/// One (subscription, key) whose jobs are ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderingKey {
    /// The subscription.
    pub subscription_id: String,
    /// The partition key.
    pub key: String,
}

impl OrderingKey {
    /// The ordering keys of `jobs`, each once, sorted: the order in which a store locks them, so
    /// that two transactions never wait for each other's keys.
    pub fn of_jobs<'a>(jobs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Vec<Self> {
        let mut keys: Vec<Self> = jobs
            .into_iter()
            .filter_map(|(subscription_id, key)| {
                key.map(|key| Self {
                    subscription_id: subscription_id.to_string(),
                    key: key.to_string(),
                })
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Where one key's jobs stand, as a store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The key.
    pub key: OrderingKey,
    /// Its pending job (the head), if it has one.
    pub head: Option<String>,
    /// Its oldest queued job, if any waits.
    pub next_queued: Option<String>,
}

/// The jobs to make the heads of their keys: the oldest queued job of every key without a head.
pub fn promotions(states: &[KeyState]) -> Vec<String> {
    states
        .iter()
        .filter(|state| state.head.is_none())
        .filter_map(|state| state.next_queued.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(key: &str, head: Option<&str>, next: Option<&str>) -> KeyState {
        KeyState {
            key: OrderingKey {
                subscription_id: "s".into(),
                key: key.into(),
            },
            head: head.map(String::from),
            next_queued: next.map(String::from),
        }
    }

    #[test]
    fn only_a_key_without_a_head_gets_its_oldest_queued_job_promoted() {
        let states = [
            state("a", Some("h"), Some("q1")),
            state("b", None, Some("q2")),
            state("c", None, None),
        ];
        assert_eq!(promotions(&states), vec!["q2".to_string()]);
    }

    #[test]
    fn keys_are_listed_once_in_lock_order() {
        let keys = OrderingKey::of_jobs([
            ("s2", Some("k")),
            ("s1", Some("z")),
            ("s1", None),
            ("s1", Some("a")),
            ("s2", Some("k")),
        ]);
        let names: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (k.subscription_id.as_str(), k.key.as_str()))
            .collect();
        assert_eq!(names, vec![("s1", "a"), ("s1", "z"), ("s2", "k")]);
    }

    #[test]
    fn orderings_round_trip_their_names() {
        for ordering in [DeliveryOrdering::None, DeliveryOrdering::PartitionKey] {
            assert_eq!(DeliveryOrdering::parse(ordering.as_str()), Some(ordering));
        }
        assert_eq!(DeliveryOrdering::parse("fifo"), None);
    }
}
