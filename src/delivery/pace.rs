//! The pace of each endpoint as this process keeps to it: a hold the endpoint asked for
//! (Retry-After), its `rate_limit` and its `max_in_flight`, all three over every process.
//!
//! - The rate limit is a run of start times reserved in the store ([`DeliveryStore::reserve_pace`]):
//!   each reservation covers a tenth of a second of the rate and comes after every run reserved
//!   before, by any process, so the processes together never start more than the rate. Jobs take
//!   the reserved times first come, first served, and sleep until theirs.
//! - Requests in flight are bounded by a share of `max_in_flight` negotiated in the store (see
//!   [`super::grant_capacity`]) and renewed every second; a job waits for a free request slot of
//!   this process's share.
//!
//! A job waits here, without spending an attempt, for at most the dispatcher's patience; then it
//! goes back to the store, due when its wait should be over, for whichever process has room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CapacityClaim, DeliveryStore, Subscription};

/// How long a process's claim on an endpoint's capacity counts without being renewed.
const CAPACITY_LEASE: Duration = Duration::from_secs(10);
/// How often claims are renewed (and shares rebalanced).
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Shortest time between two negotiations of one endpoint asked for by waiting jobs.
const RENEGOTIATE_AFTER: Duration = Duration::from_millis(50);
/// How long an endpoint goes without a request before this process gives its share back.
const IDLE_RELEASE: Duration = Duration::from_secs(30);
/// Share of a second one reservation of the rate limit covers.
const RESERVATION_SPAN: u32 = 10;

/// Whether a job may go now, or how long it should wait first.
pub enum Admission {
    /// Send it; the permit holds one of this process's request slots until dropped.
    Go(Permit),
    /// Put it off for about this long.
    Wait(Duration),
}

/// One request slot of an endpoint, given back when dropped.
pub struct Permit {
    pace: Arc<Pace>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pace.capacity().in_use -= 1;
        self.pace.freed.notify_one();
    }
}

/// This process's share of an endpoint's capacity.
#[derive(Debug, Default)]
struct Capacity {
    /// The subscription's `max_in_flight` as last seen.
    limit: u32,
    /// The share granted by the last negotiation.
    held: u32,
    /// Requests in flight.
    in_use: u32,
    /// Jobs waiting for a slot.
    waiting: u32,
    /// A negotiation is under way.
    negotiating: bool,
    /// When the last one ended.
    negotiated_at: Option<Instant>,
    /// When the last request started.
    used_at: Option<Instant>,
}

impl Capacity {
    /// True when nothing has been sent or waited for in a while: the share can go back.
    fn idle(&self) -> bool {
        self.in_use == 0
            && self.waiting == 0
            && self.used_at.is_none_or(|at| at.elapsed() >= IDLE_RELEASE)
    }
}

/// Start times reserved for this process by the rate limit, one after another.
#[derive(Debug)]
struct RateSlots {
    next: DateTime<Utc>,
    left: u32,
}

/// One endpoint's pace in this process.
#[derive(Debug)]
struct Pace {
    subscription_id: String,
    capacity: Mutex<Capacity>,
    /// Woken when a slot is given back or the share grows.
    freed: Notify,
    /// Taken in turn by the jobs of a rate-limited endpoint (tokio's mutex is fair).
    rate: tokio::sync::Mutex<RateSlots>,
    rate_waiting: AtomicU32,
    /// The end of a hold the endpoint asked this process for.
    held_until: Mutex<Option<DateTime<Utc>>>,
}

impl Pace {
    fn capacity(&self) -> std::sync::MutexGuard<'_, Capacity> {
        self.capacity.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The paces of every endpoint this process delivers to; cheap to clone.
#[derive(Clone)]
pub struct PaceBoard {
    store: Arc<dyn DeliveryStore>,
    /// Names this process in the store's capacity claims.
    holder: Arc<str>,
    paces: Arc<Mutex<HashMap<String, Arc<Pace>>>>,
}

impl PaceBoard {
    /// A board keeping its shared state in `store`, renewing its claims until `shutdown` (then it
    /// gives them up).
    pub fn spawn(store: Arc<dyn DeliveryStore>, holder: &str, shutdown: CancellationToken) -> Self {
        let board = Self {
            store,
            holder: holder.into(),
            paces: Arc::default(),
        };
        tokio::spawn(board.clone().renew(shutdown));
        board
    }

    /// Waits, at most `patience`, until `subscription`'s endpoint may take one more request.
    pub async fn admit(&self, subscription: &Subscription, patience: Duration) -> Admission {
        let pace = self.pace(&subscription.id);
        let deadline = Instant::now() + patience;
        let now = Utc::now();
        let local_hold = *pace
            .held_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = subscription
            .held_until
            .max(local_hold)
            .filter(|at| *at > now)
        {
            return Admission::Wait((until - now).to_std().unwrap_or_default());
        }
        if let Some(rate) = subscription.rate_limit {
            match self.rate_slot(&pace, rate, deadline).await {
                Some(at) => {
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                None => return Admission::Wait(patience),
            }
        }
        match self.slot(&pace, subscription.max_in_flight, deadline).await {
            Some(permit) => Admission::Go(permit),
            None => Admission::Wait(patience),
        }
    }

    /// Holds every delivery of this process to `subscription_id` until `until` (the store holds
    /// the other processes' through the subscription).
    pub fn hold(&self, subscription_id: &str, until: DateTime<Utc>) {
        let pace = self.pace(subscription_id);
        let mut held = pace
            .held_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *held = (*held).max(Some(until));
    }

    fn pace(&self, subscription_id: &str) -> Arc<Pace> {
        let mut paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
        paces
            .entry(subscription_id.to_string())
            .or_insert_with(|| {
                Arc::new(Pace {
                    subscription_id: subscription_id.to_string(),
                    capacity: Mutex::default(),
                    freed: Notify::new(),
                    rate: tokio::sync::Mutex::new(RateSlots {
                        next: Utc::now(),
                        left: 0,
                    }),
                    rate_waiting: AtomicU32::new(0),
                    held_until: Mutex::default(),
                })
            })
            .clone()
    }

    /// The next start time reserved for this process at `rate` a second, reserving a run in the
    /// store when none is left; `None` when the turn did not come before `deadline` or the store
    /// cannot be reached.
    async fn rate_slot(&self, pace: &Pace, rate: u32, deadline: Instant) -> Option<DateTime<Utc>> {
        pace.rate_waiting.fetch_add(1, Ordering::Relaxed);
        let turn = tokio::time::timeout_at(deadline, pace.rate.lock()).await;
        pace.rate_waiting.fetch_sub(1, Ordering::Relaxed);
        let mut slots = turn.ok()?;
        let interval = chrono::Duration::microseconds(1_000_000 / i64::from(rate.max(1)));
        let now = Utc::now();
        // Times left over from a reservation long past would let a burst through.
        if slots.left == 0 || slots.next < now - interval {
            let waiting = pace.rate_waiting.load(Ordering::Relaxed) + 1;
            let count = waiting.clamp(1, (rate / RESERVATION_SPAN).max(1));
            let first = self
                .store
                .reserve_pace(&pace.subscription_id, count, interval, now)
                .await
                .inspect_err(|err| tracing::warn!(error = %err, "cannot reserve the rate limit"))
                .ok()?;
            *slots = RateSlots {
                next: first,
                left: count,
            };
        }
        let at = slots.next;
        slots.next += interval;
        slots.left -= 1;
        Some(at)
    }

    /// One of this process's request slots of the endpoint, waiting until `deadline` for one to
    /// be free (and asking the store for a larger share while jobs wait).
    async fn slot(&self, pace: &Arc<Pace>, limit: u32, deadline: Instant) -> Option<Permit> {
        loop {
            let freed = pace.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let negotiate = {
                let mut capacity = pace.capacity();
                capacity.limit = limit;
                if capacity.in_use < capacity.held.min(limit) {
                    capacity.in_use += 1;
                    capacity.used_at = Some(Instant::now());
                    return Some(Permit { pace: pace.clone() });
                }
                capacity.waiting += 1;
                let due = capacity
                    .negotiated_at
                    .is_none_or(|at| at.elapsed() >= RENEGOTIATE_AFTER);
                let start = !capacity.negotiating && capacity.held < limit && due;
                capacity.negotiating |= start;
                start
            };
            if negotiate {
                tokio::spawn(self.clone().negotiate(pace.clone()));
            }
            let woken = tokio::time::timeout_at(deadline, freed).await;
            pace.capacity().waiting -= 1;
            woken.ok()?;
        }
    }

    /// Renews this process's claim on the endpoint's capacity and takes the share granted.
    async fn negotiate(self, pace: Arc<Pace>) {
        let now = Utc::now();
        let (limit, held, in_use, wanted) = {
            let mut capacity = pace.capacity();
            capacity.negotiating = true;
            let held = if capacity.idle() { 0 } else { capacity.held };
            (
                capacity.limit,
                held,
                capacity.in_use,
                capacity.in_use + capacity.waiting,
            )
        };
        let claim = CapacityClaim {
            subscription_id: &pace.subscription_id,
            holder: &self.holder,
            limit,
            held,
            in_use,
            wanted,
            now,
            lease_until: now + CAPACITY_LEASE,
        };
        let granted = self.store.negotiate_capacity(&claim).await;
        let mut capacity = pace.capacity();
        capacity.negotiating = false;
        capacity.negotiated_at = Some(Instant::now());
        match granted {
            Ok(granted) => {
                let grew = granted > capacity.held;
                capacity.held = granted;
                if grew {
                    pace.freed.notify_waiters();
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, subscription = %pace.subscription_id, "cannot negotiate an endpoint's capacity")
            }
        }
    }

    /// Every second: renews the claims of the endpoints this process holds or wants capacity
    /// of, which also gives back what it no longer needs while another process is short.
    async fn renew(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => {}
                _ = shutdown.cancelled() => break,
            }
            let active: Vec<Arc<Pace>> = {
                let paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
                paces
                    .values()
                    .filter(|pace| {
                        let capacity = pace.capacity();
                        (capacity.held > 0 || capacity.waiting > 0) && !capacity.negotiating
                    })
                    .cloned()
                    .collect()
            };
            for pace in active {
                self.clone().negotiate(pace).await;
            }
        }
        if let Err(err) = self.store.release_capacity(&self.holder).await {
            tracing::warn!(error = %err, "cannot give up endpoint capacity; it lapses with its lease");
        }
    }
}
