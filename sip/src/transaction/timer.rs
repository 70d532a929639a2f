//! RFC 3261 timers as an array indexed by an enum (quinn-proto's `TimerTable` shape): setting,
//! clearing and finding the next deadline are O(number of timers), with no allocation.

use std::time::{Duration, Instant};

/// Timer values (RFC 3261 §17.1.1.1, Table 4). Defaults are the RFC's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: transaction timeouts B, F, H, J and RFC 6026's L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait for response retransmits after ACK (client INVITE, unreliable).
    D,
    /// Non-INVITE request retransmit (client, unreliable).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final-response retransmit (server, unreliable; also 2xx until ACK).
    G,
    /// Wait for ACK (server INVITE).
    H,
    /// Absorb ACK retransmits (server INVITE, unreliable).
    I,
    /// Absorb non-INVITE request retransmits (server).
    J,
    /// Absorb response retransmits (client non-INVITE, unreliable).
    K,
    /// RFC 6026: server INVITE Accepted state lifetime.
    L,
    /// RFC 6026: client INVITE Accepted state lifetime.
    M,
    /// RFC 3261 §17.2.1: send 100 Trying if the TU has not answered within 200 ms.
    Trying,
    /// Not in the RFC: the TU's deadline for a final response (a forgotten call must not
    /// keep its transaction and dialog forever).
    Answer,
}

const COUNT: usize = 14;

const ALL: [Timer; COUNT] = [
    Timer::A,
    Timer::B,
    Timer::D,
    Timer::E,
    Timer::F,
    Timer::G,
    Timer::H,
    Timer::I,
    Timer::J,
    Timer::K,
    Timer::L,
    Timer::M,
    Timer::Trying,
    Timer::Answer,
];

/// Deadlines as microsecond offsets (+1, 0 = unset; rounded up so a timer never fires early;
/// up to 71 minutes) from a base instant: 72 bytes instead of
/// 224 for fourteen `Option<Instant>`, which matters with hundreds of thousands of transactions
/// lingering in Completed/Accepted at high call rates.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    base: Option<Instant>,
    offsets: [u32; COUNT],
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        let base = match self.base {
            Some(b) if b <= at => b,
            _ => {
                self.rebase(at);
                at
            }
        };
        let d = at.duration_since(base);
        let us = d.as_micros() + u128::from(d.subsec_nanos() % 1000 != 0);
        self.offsets[timer as usize] = us.min(u128::from(u32::MAX - 1)) as u32 + 1;
    }

    /// Moves the base to `new_base` (earlier than the current one) keeping other deadlines.
    fn rebase(&mut self, new_base: Instant) {
        if let Some(old) = self.base {
            let shift = old.duration_since(new_base).as_micros();
            let shift = shift.min(u128::from(u32::MAX / 2)) as u32;
            for o in self.offsets.iter_mut().filter(|o| **o != 0) {
                *o = o.saturating_add(shift);
            }
        }
        self.base = Some(new_base);
    }

    pub fn clear(&mut self, timer: Timer) {
        self.offsets[timer as usize] = 0;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at(self.offsets[timer as usize])
    }

    fn at(&self, offset: u32) -> Option<Instant> {
        let base = self.base?;
        (offset != 0).then(|| base + Duration::from_micros(u64::from(offset - 1)))
    }

    pub fn next(&self) -> Option<Instant> {
        self.offsets
            .iter()
            .filter(|&&o| o != 0)
            .min()
            .and_then(|&o| self.at(o))
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (i, &o) = self
            .offsets
            .iter()
            .enumerate()
            .filter(|&(_, &o)| o != 0)
            .min_by_key(|&(_, &o)| o)?;
        if self.at(o).is_some_and(|d| d <= now) {
            self.offsets[i] = 0;
            Some(ALL[i])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_minimum_and_expired_pop_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(Timer::B, t0 + Duration::from_secs(32));
        t.set(Timer::A, t0 + Duration::from_millis(500));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.pop_expired(t0), None);
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::A));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::B));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn earlier_deadline_after_later_one_rebases() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(Timer::H, t0 + Duration::from_secs(32));
        t.set(Timer::G, t0);
        assert_eq!(t.get(Timer::H), Some(t0 + Duration::from_secs(32)));
        assert_eq!(t.next(), Some(t0));
        assert_eq!(std::mem::size_of::<Timers>(), 72);
    }
}
