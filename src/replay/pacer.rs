//! Pacing: spreads work evenly at a fixed rate, so that a replay does not starve live traffic.

use std::time::Duration;

use tokio::time::Instant;

/// Lets through at most `rate` units a second on average; a pause does not earn a later burst.
#[derive(Debug)]
pub struct Pacer {
    /// Time one unit takes at the rate; `None` lets everything through at once.
    interval: Option<Duration>,
    /// When the next unit may start.
    next: Instant,
}

impl Pacer {
    /// A pacer letting through `rate` units a second, or everything at once for `None`.
    pub fn new(rate: Option<u32>) -> Self {
        Self {
            interval: rate.map(|r| Duration::from_secs(1) / r.max(1)),
            next: Instant::now(),
        }
    }

    /// Waits until `units` more may go: at once if the rate allows them now.
    pub async fn take(&mut self, units: u64) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        // Time not used while idle is not saved up for a burst.
        let start = self.next.max(now);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.next = start + interval * units;
        tokio::time::sleep_until(start).await;
    }

    /// How many units to fetch at a time: a tenth of a second's worth, from 1 to `max`.
    pub fn batch(&self, max: u32) -> u32 {
        match self.interval {
            None => max,
            Some(interval) => {
                let per_tenth = Duration::from_millis(100).as_nanos() / interval.as_nanos().max(1);
                u32::try_from(per_tenth).unwrap_or(max).clamp(1, max)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn units_are_spread_at_the_rate() {
        let mut pacer = Pacer::new(Some(100));
        let started = Instant::now();
        // The first batch goes at once; each later one waits for the time the one before takes.
        for _ in 0..5 {
            pacer.take(10).await;
        }
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_saved_up_for_a_burst() {
        let mut pacer = Pacer::new(Some(10));
        pacer.take(1).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let resumed = Instant::now();
        pacer.take(5).await;
        pacer.take(5).await;
        assert_eq!(resumed.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_nothing_waits() {
        let mut pacer = Pacer::new(None);
        let started = Instant::now();
        pacer.take(1_000_000).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(pacer.batch(500), 500);
    }

    #[test]
    fn batches_are_a_tenth_of_a_second_of_work() {
        assert_eq!(Pacer::new(Some(1000)).batch(500), 100);
        assert_eq!(Pacer::new(Some(5)).batch(500), 1);
        assert_eq!(Pacer::new(Some(1_000_000)).batch(500), 500);
    }
}
