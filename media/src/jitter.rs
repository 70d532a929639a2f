//! Adaptive jitter buffer, sans-IO: `push(now, packet)`, `pop(now)`, `poll_timeout()`.
//!
//! Frames are indexed by `(timestamp - first timestamp) / frame_ticks`; frame `n` plays at
//! `epoch + n * frame + offset`. The playout offset follows the measured one-way delay
//! spread: for every packet we record `d = arrival - media time`; over a sliding window the
//! minimum of `d` is the network's base delay (it moves when the sender's clock drifts) and
//! its maximum is the latest a packet came. The desired offset is `max + margin`, clamped so
//! the buffer delay (offset above the base) stays within [min_delay, max_delay]. The offset
//! grows at once, by inserting one concealed frame, when late packets threaten; it shrinks
//! by dropping one frame only after the desire has stayed lower for `shrink_after`, so the
//! buffer does not oscillate.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct JitterConfig {
    pub clock_rate: u32,
    /// Packet duration (ptime); every packet must carry exactly one frame.
    pub frame: Duration,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub initial_delay: Duration,
    /// Largest payload stored; bigger packets are refused.
    pub max_payload: usize,
    /// Consecutive missing frames after which the stream is treated as silent (DTX, hold)
    /// rather than lossy.
    pub max_conceal: u32,
    pub shrink_after: Duration,
}

impl JitterConfig {
    pub fn new(clock_rate: u32, frame: Duration, max_payload: usize) -> Self {
        Self {
            clock_rate,
            frame,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            initial_delay: Duration::from_millis(40),
            max_payload,
            max_conceal: 5,
            shrink_after: Duration::from_millis(1000),
        }
    }
}

/// What `pop` hands out for one frame period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    Frame {
        payload: &'a [u8],
        timestamp: u32,
        marker: bool,
    },
    /// The frame is missing: conceal it. `next` is the following packet when it is already
    /// buffered, for codecs with in-band FEC (Opus).
    Conceal { next: Option<&'a [u8]> },
    /// No packets for a while (DTX, hold): play silence; not counted as loss.
    Silence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Buffered,
    Duplicate,
    /// Arrived after its playout time; dropped.
    Late,
    /// Payload larger than `max_payload`; dropped.
    TooLarge,
    /// Timestamp jumped outside the buffer window: playout restarted on this packet.
    Resynced,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub delivered: u64,
    pub late: u64,
    pub duplicates: u64,
    pub concealed: u64,
    /// Frames concealed whose packet never showed up (`concealed - late`, floored at 0).
    pub lost: u64,
    pub resyncs: u64,
    /// Runs of consecutive missing frames (for the E-model's burst ratio).
    pub loss_bursts: u64,
    /// Frames inserted to grow the delay / skipped to shrink it.
    pub stretched: u64,
    pub shrunk: u64,
    /// Buffered frames thrown away by a shrink (the skipped slot held a packet).
    pub discarded: u64,
    pub target_delay: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    frame: i64,
    filled: bool,
    marker: bool,
    timestamp: u32,
    len: usize,
}

/// Delay samples kept for adaptation: about 2.5 s of 20 ms packets.
const WINDOW: usize = 128;
/// Headroom above the latest observed packet.
const MARGIN_US: i64 = 2_000;

pub struct JitterBuffer {
    cfg: JitterConfig,
    frame_ticks: i64,
    frame_us: i64,
    slots: Vec<Slot>,
    data: Vec<u8>,
    epoch: Option<Instant>,
    base_ts: i64,
    last_ts: i64,
    next_frame: i64,
    offset_us: i64,
    delays: [i64; WINDOW],
    delay_count: usize,
    delay_pos: usize,
    desired_offset_us: i64,
    shrink_since: Option<i64>,
    missing_run: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let frame_us = cfg.frame.as_micros().max(1) as i64;
        let frame_ticks = (i64::from(cfg.clock_rate) * frame_us / 1_000_000).max(1);
        // Room for the largest delay plus as much again for reordering and bursts.
        let capacity = (2 * cfg.max_delay.as_micros() as i64 / frame_us + 4) as usize;
        Self {
            frame_ticks,
            frame_us,
            slots: vec![Slot::default(); capacity],
            data: vec![0; capacity * cfg.max_payload],
            epoch: None,
            base_ts: 0,
            last_ts: 0,
            next_frame: 0,
            offset_us: 0,
            delays: [0; WINDOW],
            delay_count: 0,
            delay_pos: 0,
            desired_offset_us: 0,
            shrink_since: None,
            missing_run: 0,
            stats: JitterStats {
                target_delay: cfg.initial_delay,
                ..JitterStats::default()
            },
            cfg,
        }
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            lost: self.stats.concealed.saturating_sub(self.stats.late),
            ..self.stats
        }
    }

    /// Forgets everything (new remote SSRC): the next packet starts playout afresh.
    pub fn reset(&mut self) {
        self.epoch = None;
        self.slots.iter_mut().for_each(|s| s.filled = false);
        self.delay_count = 0;
        self.delay_pos = 0;
        self.shrink_since = None;
        self.missing_run = 0;
    }

    fn us_since_epoch(&self, now: Instant) -> i64 {
        self.epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_micros() as i64)
    }

    /// Unwraps a 32-bit timestamp to the one nearest the last seen.
    fn unwrap_ts(&self, ts: u32) -> i64 {
        self.last_ts + i64::from(ts.wrapping_sub(self.last_ts as u32) as i32)
    }

    fn start(&mut self, now: Instant, ts: u32) {
        self.epoch = Some(now);
        self.base_ts = i64::from(ts);
        self.last_ts = i64::from(ts);
        self.next_frame = 0;
        self.offset_us = self.cfg.initial_delay.as_micros() as i64;
        self.desired_offset_us = self.offset_us;
        self.delay_count = 0;
        self.delay_pos = 0;
        self.missing_run = 0;
        self.slots.iter_mut().for_each(|s| s.filled = false);
    }

    pub fn push(
        &mut self,
        now: Instant,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        self.stats.received += 1;
        if payload.len() > self.cfg.max_payload {
            return PushOutcome::TooLarge;
        }
        let mut outcome = PushOutcome::Buffered;
        if self.epoch.is_none() {
            self.start(now, timestamp);
        }
        let ext = self.unwrap_ts(timestamp);
        let mut frame = (ext - self.base_ts).div_euclid(self.frame_ticks);
        let ahead = frame - self.next_frame;
        if ahead >= self.slots.len() as i64 || ahead < -(self.slots.len() as i64) {
            // A jump no reordering explains (sender restart, long hold): start again here.
            self.stats.resyncs += 1;
            self.start(now, timestamp);
            frame = 0;
            outcome = PushOutcome::Resynced;
        }
        self.last_ts = self.last_ts.max(self.unwrap_ts(timestamp));
        let arrival = self.us_since_epoch(now);
        self.record_delay(arrival - frame * self.frame_us);
        if frame < self.next_frame {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        let idx = frame.rem_euclid(self.slots.len() as i64) as usize;
        let slot = &mut self.slots[idx];
        if slot.filled && slot.frame == frame {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        *slot = Slot {
            frame,
            filled: true,
            marker,
            timestamp,
            len: payload.len(),
        };
        let at = idx * self.cfg.max_payload;
        self.data[at..at + payload.len()].copy_from_slice(payload);
        outcome
    }

    fn record_delay(&mut self, delay_us: i64) {
        self.delays[self.delay_pos] = delay_us;
        self.delay_pos = (self.delay_pos + 1) % WINDOW;
        self.delay_count = (self.delay_count + 1).min(WINDOW);
        let window = &self.delays[..self.delay_count];
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &d in window {
            lo = lo.min(d);
            hi = hi.max(d);
        }
        let min = self.cfg.min_delay.as_micros() as i64;
        let max = self.cfg.max_delay.as_micros() as i64;
        let target = (hi - lo + MARGIN_US).clamp(min, max);
        self.stats.target_delay = Duration::from_micros(target as u64);
        self.desired_offset_us = lo + target;
    }

    /// Packets waiting to be played.
    pub fn buffered(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.filled && s.frame >= self.next_frame)
            .count()
    }

    /// When the next frame is due; `None` before the first packet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let epoch = self.epoch?;
        let due = self.next_frame * self.frame_us + self.offset_us;
        Some(epoch + Duration::from_micros(due.max(0) as u64))
    }

    /// The frame due at `now`, if any. Call until it returns `None`.
    pub fn pop(&mut self, now: Instant) -> Option<Playout<'_>> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        let now_us = self.us_since_epoch(now);
        let len = self.slots.len() as i64;
        let idx = |frame: i64| frame.rem_euclid(len) as usize;
        let has = |s: &[Slot], frame: i64| {
            let slot = &s[idx(frame)];
            slot.filled && slot.frame == frame
        };
        let present = has(&self.slots, self.next_frame);
        // Grow at once: a concealed frame now avoids a run of late packets later.
        if self.desired_offset_us > self.offset_us {
            self.offset_us += self.frame_us;
            self.stats.stretched += 1;
            self.stats.concealed += 1;
            return Some(Playout::Conceal { next: None });
        }
        // Shrink only after the buffer has been too deep for a while.
        if self.desired_offset_us < self.offset_us - self.frame_us {
            let since = *self.shrink_since.get_or_insert(now_us);
            if now_us - since >= self.cfg.shrink_after.as_micros() as i64
                && has(&self.slots, self.next_frame + 1)
            {
                if present {
                    self.stats.discarded += 1;
                }
                self.slots[idx(self.next_frame)].filled = false;
                self.next_frame += 1;
                self.offset_us -= self.frame_us;
                self.stats.shrunk += 1;
                self.shrink_since = None;
            }
        } else {
            self.shrink_since = None;
        }
        let frame = self.next_frame;
        self.next_frame += 1;
        if present || has(&self.slots, frame) {
            let i = idx(frame);
            let slot = &mut self.slots[i];
            slot.filled = false;
            self.missing_run = 0;
            self.stats.delivered += 1;
            let at = i * self.cfg.max_payload;
            return Some(Playout::Frame {
                payload: &self.data[at..at + slot.len],
                timestamp: slot.timestamp,
                marker: slot.marker,
            });
        }
        self.missing_run += 1;
        let buffered_ahead = (frame + 1..frame + len).any(|f| has(&self.slots, f));
        if !buffered_ahead && self.missing_run > self.cfg.max_conceal {
            return Some(Playout::Silence);
        }
        self.stats.concealed += 1;
        if self.missing_run == 1 {
            self.stats.loss_bursts += 1;
        }
        let next = has(&self.slots, frame + 1).then(|| {
            let i = idx(frame + 1);
            let at = i * self.cfg.max_payload;
            &self.data[at..at + self.slots[i].len]
        });
        Some(Playout::Conceal { next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);

    fn jb() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::new(8000, F, 160))
    }

    fn pkt(i: u32) -> [u8; 160] {
        [i as u8; 160]
    }

    #[test]
    fn plays_in_order_after_initial_delay() {
        let t0 = Instant::now();
        let mut b = jb();
        assert_eq!(b.poll_timeout(), None);
        b.push(t0, 1000, true, &pkt(0));
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(40)));
        assert_eq!(b.pop(t0 + Duration::from_millis(39)), None);
        b.push(t0 + F, 1160, false, &pkt(1));
        match b.pop(t0 + Duration::from_millis(40)) {
            Some(Playout::Frame {
                payload,
                timestamp,
                marker,
            }) => {
                assert_eq!(payload[0], 0);
                assert_eq!(timestamp, 1000);
                assert!(marker);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            b.pop(t0 + Duration::from_millis(60)),
            Some(Playout::Frame {
                timestamp: 1160,
                ..
            })
        ));
    }

    #[test]
    fn reorders_drops_duplicates_and_late() {
        let t0 = Instant::now();
        let mut b = jb();
        assert_eq!(b.push(t0, 0, false, &pkt(0)), PushOutcome::Buffered);
        assert_eq!(b.push(t0, 320, false, &pkt(2)), PushOutcome::Buffered);
        assert_eq!(b.push(t0, 160, false, &pkt(1)), PushOutcome::Buffered);
        assert_eq!(b.push(t0, 160, false, &pkt(1)), PushOutcome::Duplicate);
        let mut got = vec![];
        for k in 0..3 {
            if let Some(Playout::Frame { payload, .. }) =
                b.pop(t0 + Duration::from_millis(40 + 20 * k))
            {
                got.push(payload[0]);
            }
        }
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(
            b.push(t0 + Duration::from_millis(100), 160, false, &pkt(1)),
            PushOutcome::Late
        );
        let s = b.stats();
        assert_eq!((s.duplicates, s.late, s.delivered), (1, 1, 3));
    }

    #[test]
    fn conceals_a_gap_and_offers_next_for_fec() {
        let t0 = Instant::now();
        let mut b = jb();
        b.push(t0, 0, false, &pkt(0));
        b.push(t0 + 2 * F, 320, false, &pkt(2));
        assert!(matches!(b.pop(t0 + 2 * F), Some(Playout::Frame { .. })));
        match b.pop(t0 + 3 * F) {
            Some(Playout::Conceal { next: Some(n) }) => assert_eq!(n[0], 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            b.pop(t0 + 4 * F),
            Some(Playout::Frame { timestamp: 320, .. })
        ));
        assert_eq!(b.stats().concealed, 1);
        assert_eq!(b.stats().lost, 1);
        assert_eq!(b.stats().loss_bursts, 1);
    }

    #[test]
    fn timestamp_wraparound_is_seamless() {
        let t0 = Instant::now();
        let mut b = jb();
        let start = u32::MAX - 159;
        for i in 0..4u32 {
            b.push(t0 + F * i, start.wrapping_add(160 * i), false, &pkt(i));
        }
        let mut n = 0;
        for i in 0..4u32 {
            if let Some(Playout::Frame { payload, .. }) = b.pop(t0 + F * (i + 2)) {
                assert_eq!(payload[0], i as u8);
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn long_silence_is_not_loss_and_jump_resyncs() {
        let t0 = Instant::now();
        let mut b = jb();
        b.push(t0, 0, false, &pkt(0));
        let mut silence = 0;
        for k in 0..50u32 {
            if b.pop(t0 + F * (k + 2)) == Some(Playout::Silence) {
                silence += 1;
            }
        }
        assert!(silence >= 40, "{silence}");
        assert_eq!(b.stats().concealed, 5);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            b.push(later, 8000 * 60, true, &pkt(9)),
            PushOutcome::Resynced
        );
        assert!(matches!(
            b.pop(later + Duration::from_millis(40)),
            Some(Playout::Frame { .. })
        ));
    }

    #[test]
    fn oversize_payload_refused() {
        let mut b = jb();
        assert_eq!(
            b.push(Instant::now(), 0, false, &[0; 161]),
            PushOutcome::TooLarge
        );
    }
}
