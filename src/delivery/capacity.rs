//! The rule that shares an endpoint's `max_in_flight` among the processes that deliver to it.
//!
//! Each process records in the store what it holds (may have in flight) and wants (in flight plus
//! waiting), under a lease it renews; a process that dies stops counting when its lease runs out.
//! A process negotiates under a per-endpoint lock, so the holdings never add up to more than the
//! limit. While nobody else goes short a process gets at least its fair share at once (one
//! process on its own, the whole capacity) and keeps what it holds, so that a burst does not wait
//! for another negotiation; when another process wants more than it holds, each keeps at most its
//! fair share. The alternative, a counter taken and given back in
//! the store around every request, costs two writes per delivery.

use chrono::{DateTime, Utc};

/// One process's negotiation for a share of an endpoint's capacity.
#[derive(Debug, Clone)]
pub struct CapacityClaim<'a> {
    /// The subscription whose endpoint it is.
    pub subscription_id: &'a str,
    /// The process.
    pub holder: &'a str,
    /// The subscription's `max_in_flight`.
    pub limit: u32,
    /// What the process holds now.
    pub held: u32,
    /// Requests it has in flight: never given back while they last.
    pub in_use: u32,
    /// Requests it would have in flight if it could: in flight and waiting.
    pub wanted: u32,
    /// The time of the negotiation.
    pub now: DateTime<Utc>,
    /// Until when its claim counts without being renewed.
    pub lease_until: DateTime<Utc>,
}

/// Another process's live claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityHolder {
    /// What it holds.
    pub held: u32,
    /// What it wants.
    pub wanted: u32,
}

/// What the claiming process may have in flight, within what the others' holdings leave free:
/// while nobody else is short, what it holds or wants and, if it wants any, at least its fair
/// share of the limit among every live claimant (a process on its own gets the whole limit at once, so that a burst
/// never waits for another negotiation); while another process wants more than it holds, at most
/// its fair share among the processes that want any.
pub fn grant_capacity(claim: &CapacityClaim<'_>, others: &[CapacityHolder]) -> u32 {
    let others_held: u32 = others.iter().map(|other| other.held).sum();
    let free = claim.limit.saturating_sub(others_held);
    let short = others.iter().any(|other| other.wanted > other.held);
    if !short {
        // An idle process (wanting none, holding none) takes nothing, and stops renewing.
        let share = if claim.wanted > 0 {
            claim.limit.div_ceil(1 + others.len() as u32)
        } else {
            0
        };
        return free.min(claim.held.max(claim.wanted).max(share));
    }
    let wanting = 1 + others.iter().filter(|other| other.wanted > 0).count() as u32;
    let fair = claim.limit.div_ceil(wanting);
    free.min(claim.wanted).min(fair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(limit: u32, held: u32, wanted: u32) -> CapacityClaim<'static> {
        CapacityClaim {
            subscription_id: "s",
            holder: "p",
            limit,
            held,
            in_use: 0,
            wanted,
            now: Utc::now(),
            lease_until: Utc::now(),
        }
    }

    fn holder(held: u32, wanted: u32) -> CapacityHolder {
        CapacityHolder { held, wanted }
    }

    #[test]
    fn a_lone_process_gets_and_keeps_the_whole_capacity() {
        assert_eq!(grant_capacity(&claim(32, 0, 5), &[]), 32);
        assert_eq!(grant_capacity(&claim(32, 0, 50), &[]), 32);
        // An idle one takes nothing.
        assert_eq!(grant_capacity(&claim(32, 0, 0), &[]), 0);
        // Beside a process that wants little, at least half, at once.
        assert_eq!(grant_capacity(&claim(32, 0, 1), &[holder(4, 2)]), 16);
        // Quieter now, but nobody else wants any: it keeps what it holds.
        assert_eq!(grant_capacity(&claim(32, 32, 1), &[]), 32);
    }

    #[test]
    fn holdings_never_add_up_to_more_than_the_limit() {
        assert_eq!(grant_capacity(&claim(32, 0, 32), &[holder(32, 32)]), 0);
        assert_eq!(grant_capacity(&claim(10, 0, 8), &[holder(4, 4)]), 6);
        assert_eq!(grant_capacity(&claim(1, 0, 1), &[holder(1, 1)]), 0);
    }

    #[test]
    fn a_process_short_of_capacity_makes_the_others_keep_their_fair_share() {
        // The other wants 32 and holds none: this one keeps half.
        assert_eq!(grant_capacity(&claim(32, 32, 40), &[holder(0, 32)]), 16);
        // Then the other gets the half left free.
        assert_eq!(grant_capacity(&claim(32, 0, 32), &[holder(16, 40)]), 16);
        // Three wanting: a third each, rounded up, within what is free.
        assert_eq!(
            grant_capacity(&claim(10, 10, 10), &[holder(0, 5), holder(0, 5)]),
            4
        );
        // An idle process lets go while another is short.
        assert_eq!(grant_capacity(&claim(32, 32, 0), &[holder(0, 8)]), 0);
    }
}
