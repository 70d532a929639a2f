//! Outbound packet clock: one tick per packet interval on absolute deadlines
//! (`start + k * period`), so scheduling error never accumulates into drift. A driver that
//! wakes late gets the missed ticks back-to-back; beyond `max_burst` they are skipped (the
//! RTP timestamp still advances by them, which the far end sees as a gap, not a time warp).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Packet index since the stream started: RTP timestamp = base + index * frame_ticks.
    pub index: u64,
    pub deadline: Instant,
    /// Ticks dropped before this one because the driver fell too far behind.
    pub skipped: u64,
}

#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    next: u64,
    max_burst: u64,
}

impl Pacer {
    pub fn new(start: Instant, period: Duration) -> Self {
        Self {
            start,
            period,
            next: 0,
            max_burst: 3,
        }
    }

    /// Index of the next tick.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    pub fn poll_timeout(&self) -> Instant {
        self.deadline(self.next)
    }

    fn deadline(&self, index: u64) -> Instant {
        self.start + self.period * index as u32
    }

    /// The next due tick at `now`, if any. Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<Tick> {
        if now < self.poll_timeout() {
            return None;
        }
        let elapsed = now.duration_since(self.start).as_nanos();
        let due_index = (elapsed / self.period.as_nanos().max(1)) as u64;
        let mut skipped = 0;
        if due_index >= self.next + self.max_burst {
            skipped = due_index + 1 - self.max_burst - self.next;
            self.next += skipped;
        }
        let index = self.next;
        self.next += 1;
        Some(Tick {
            index,
            deadline: self.deadline(index),
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn deadlines_are_absolute() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, P);
        // Waking 3 ms late every time does not push later deadlines back.
        for k in 0..1000u32 {
            let now = t0 + P * k + Duration::from_millis(3);
            let tick = p.poll(now).unwrap();
            assert_eq!(tick.index, u64::from(k));
            assert_eq!(tick.deadline, t0 + P * k);
            assert_eq!(p.poll(now), None);
        }
        assert_eq!(p.poll_timeout(), t0 + P * 1000);
    }

    #[test]
    fn catches_up_in_bursts_then_skips() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, P);
        let now = t0 + P * 2;
        let got: Vec<_> = std::iter::from_fn(|| p.poll(now))
            .map(|t| t.index)
            .collect();
        assert_eq!(got, vec![0, 1, 2]);
        // A 1 s stall: only the last max_burst ticks are sent, the rest skipped.
        let now = t0 + Duration::from_secs(1);
        let ticks: Vec<_> = std::iter::from_fn(|| p.poll(now)).collect();
        assert_eq!(
            ticks.iter().map(|t| t.index).collect::<Vec<_>>(),
            vec![48, 49, 50]
        );
        assert_eq!(ticks[0].skipped, 45);
    }
}
