//! A seeded, sans-IO network model in the spirit of str0m's netem: fixed latency, random
//! jitter, Gilbert–Elliott bursty loss and occasional reordering. Time comes in as `now`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// splitmix64: tiny, seeded, good enough to drive a network model.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, Copy)]
pub struct NetemConfig {
    pub latency: Duration,
    /// Extra delay uniformly drawn from [0, jitter).
    pub jitter: Duration,
    /// Gilbert–Elliott: P(good→bad), P(bad→good), loss probability in each state.
    pub p_good_bad: f64,
    pub p_bad_good: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
    /// Probability that a packet is held back by `reorder_delay` (overtaken by later ones).
    pub reorder: f64,
    pub reorder_delay: Duration,
}

impl NetemConfig {
    pub fn clean(latency: Duration) -> Self {
        Self {
            latency,
            jitter: Duration::ZERO,
            p_good_bad: 0.0,
            p_bad_good: 1.0,
            loss_good: 0.0,
            loss_bad: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }
}

pub struct Netem<T> {
    cfg: NetemConfig,
    rng: Rng,
    bad: bool,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Wrapper<T>)>>,
    pub dropped: u64,
}

/// Orders by nothing: the heap key is (time, sequence).
struct Wrapper<T>(T);
impl<T> PartialEq for Wrapper<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Wrapper<T> {}
impl<T> PartialOrd for Wrapper<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Wrapper<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Netem<T> {
    pub fn new(cfg: NetemConfig, seed: u64) -> Self {
        Self {
            cfg,
            rng: Rng::new(seed),
            bad: false,
            seq: 0,
            queue: BinaryHeap::new(),
            dropped: 0,
        }
    }

    pub fn send(&mut self, now: Instant, item: T) {
        let flip = if self.bad {
            self.cfg.p_bad_good
        } else {
            self.cfg.p_good_bad
        };
        if self.rng.f64() < flip {
            self.bad = !self.bad;
        }
        let loss = if self.bad {
            self.cfg.loss_bad
        } else {
            self.cfg.loss_good
        };
        if self.rng.f64() < loss {
            self.dropped += 1;
            return;
        }
        let mut at = now + self.cfg.latency + self.cfg.jitter.mul_f64(self.rng.f64());
        if self.rng.f64() < self.cfg.reorder {
            at += self.cfg.reorder_delay;
        }
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, Wrapper(item))));
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn poll(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.poll_timeout()? > now {
            return None;
        }
        self.queue.pop().map(|Reverse((at, _, Wrapper(t)))| (at, t))
    }
}
