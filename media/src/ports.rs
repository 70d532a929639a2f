//! RTP/RTCP port-pair allocation over `[rtp_port_min, rtp_port_max]`.
//!
//! Pairs are (even RTP, odd RTCP) per RFC 3550 §11. A released pair is not handed out again
//! for `reuse_guard`: late packets of the old call must not land in a new one. Allocation is
//! round-robin for the same reason. Exhaustion is a typed error (the SIP layer answers 503).

use std::time::{Duration, Instant};

use thiserror::Error;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PortError {
    #[error("no free RTP port pair in {min}..={max}")]
    Exhausted { min: u16, max: u16 },
    #[error("RTP port range {min}..={max} holds no even/odd pair")]
    EmptyRange { min: u16, max: u16 },
    #[error("port pair {0} was not allocated")]
    NotAllocated(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: u16,
}

#[derive(Debug, Clone, Copy)]
enum PairState {
    Free,
    InUse,
    Cooling(Instant),
}

#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    max: u16,
    pairs: Vec<PairState>,
    cursor: usize,
    in_use: usize,
    reuse_guard: Duration,
}

impl PortAllocator {
    pub fn new(min: u16, max: u16, reuse_guard: Duration) -> Result<Self, PortError> {
        let first = min.saturating_add(min % 2);
        let count = if max > first {
            usize::from((max - first).div_ceil(2))
        } else {
            0
        };
        if count == 0 {
            return Err(PortError::EmptyRange { min, max });
        }
        Ok(Self {
            first,
            max,
            pairs: vec![PairState::Free; count],
            cursor: 0,
            in_use: 0,
            reuse_guard,
        })
    }

    pub fn capacity(&self) -> usize {
        self.pairs.len()
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, PortError> {
        let n = self.pairs.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let usable = match self.pairs[i] {
                PairState::Free => true,
                PairState::Cooling(since) => {
                    now.saturating_duration_since(since) >= self.reuse_guard
                }
                PairState::InUse => false,
            };
            if usable {
                self.pairs[i] = PairState::InUse;
                self.cursor = (i + 1) % n;
                self.in_use += 1;
                let rtp = self.first + 2 * i as u16;
                return Ok(PortPair { rtp, rtcp: rtp + 1 });
            }
        }
        Err(PortError::Exhausted {
            min: self.first,
            max: self.max,
        })
    }

    pub fn release(&mut self, pair: PortPair, now: Instant) -> Result<(), PortError> {
        let i = pair
            .rtp
            .checked_sub(self.first)
            .filter(|d| d % 2 == 0)
            .map(|d| usize::from(d / 2))
            .filter(|&i| i < self.pairs.len() && matches!(self.pairs[i], PairState::InUse))
            .ok_or(PortError::NotAllocated(pair.rtp))?;
        self.pairs[i] = PairState::Cooling(now);
        self.in_use -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_pairs_until_exhausted() {
        let t0 = Instant::now();
        let mut a = PortAllocator::new(20001, 20008, Duration::from_secs(5)).unwrap();
        assert_eq!(a.capacity(), 3);
        let got: Vec<_> = (0..3).map(|_| a.allocate(t0).unwrap()).collect();
        assert_eq!(
            got.iter().map(|p| (p.rtp, p.rtcp)).collect::<Vec<_>>(),
            vec![(20002, 20003), (20004, 20005), (20006, 20007)]
        );
        assert_eq!(
            a.allocate(t0),
            Err(PortError::Exhausted {
                min: 20002,
                max: 20008
            })
        );
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn released_pair_waits_out_the_guard() {
        let t0 = Instant::now();
        let mut a = PortAllocator::new(30000, 30001, Duration::from_secs(5)).unwrap();
        let p = a.allocate(t0).unwrap();
        a.release(p, t0).unwrap();
        assert!(matches!(
            a.allocate(t0 + Duration::from_secs(4)),
            Err(PortError::Exhausted { .. })
        ));
        assert_eq!(a.allocate(t0 + Duration::from_secs(5)), Ok(p));
        assert_eq!(
            a.release(
                PortPair {
                    rtp: 30002,
                    rtcp: 30003
                },
                t0
            ),
            Err(PortError::NotAllocated(30002))
        );
    }

    #[test]
    fn round_robin_prefers_ports_not_recently_used() {
        let t0 = Instant::now();
        let mut a = PortAllocator::new(10000, 10009, Duration::ZERO).unwrap();
        let p = a.allocate(t0).unwrap();
        a.release(p, t0).unwrap();
        assert_ne!(a.allocate(t0).unwrap(), p);
        assert_eq!(a.release(p, t0), Err(PortError::NotAllocated(p.rtp)));
        assert!(matches!(
            PortAllocator::new(5, 5, Duration::ZERO),
            Err(PortError::EmptyRange { .. })
        ));
    }
}
