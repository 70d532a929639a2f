//! Exponential backoff with jitter, one rule for everything that tries again: webhook
//! deliveries and outbound dial attempts. Randomness is an input, so delays are testable.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure; it doubles with each further one.
    pub first: Duration,
    /// No wait is longer (unless `first` is).
    pub max: Duration,
    /// Each wait is spread by up to this fraction either way, so failures that happened
    /// together (a carrier outage, a receiver restart) are not all retried in the same second.
    pub jitter: f64,
}

impl Backoff {
    /// The wait before retry number `failures` (1 = after the first failure); `random` in
    /// `[0, 1)` places it within the jitter (0.5 is the middle: no jitter).
    pub fn delay(&self, failures: i64, random: f64) -> Duration {
        let doublings = u32::try_from(failures.max(1) - 1)
            .unwrap_or(u32::MAX)
            .min(20);
        let base = self
            .first
            .saturating_mul(1 << doublings)
            .min(self.max.max(self.first));
        let spread = 1.0 + self.jitter.clamp(0.0, 1.0) * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_and_stop_at_the_cap() {
        let backoff = Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        };
        let delays: Vec<u64> = (1..=12).map(|n| backoff.delay(n, 0.5).as_secs()).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff.delay(i64::MAX, 0.5), Duration::from_secs(3600));
        assert_eq!(backoff.delay(0, 0.5), Duration::from_secs(5));
    }

    #[test]
    fn jitter_spreads_each_wait_both_ways() {
        let backoff = Backoff {
            first: Duration::from_secs(100),
            max: Duration::from_secs(100),
            jitter: 0.2,
        };
        assert_eq!(backoff.delay(1, 0.0), Duration::from_secs(80));
        assert_eq!(backoff.delay(3, 0.999_999).as_secs(), 119);
        // A first wait above the cap is kept, not cut.
        let long = Backoff {
            max: Duration::from_secs(10),
            ..backoff
        };
        assert_eq!(long.delay(4, 0.5), Duration::from_secs(100));
    }
}
