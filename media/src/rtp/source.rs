//! Per-source receive state: extended sequence numbers (RFC 3550 A.1), loss accounting (A.3)
//! and interarrival jitter (A.8).

/// A jump larger than this is a restart or a misbehaving sender, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Packets this far behind are treated as reordered duplicates of the past.
const MAX_MISORDER: u16 = 100;

/// What the sequence tracker made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// In order or reordered within bounds; carries the extended (cycle-counted) sequence.
    Accept(u64),
    /// A large jump seen once: dropped until the next packet confirms the new sequence.
    Probation,
}

/// Receive statistics for one remote SSRC.
#[derive(Debug, Clone)]
pub struct SourceStats {
    pub ssrc: u32,
    clock_rate: u32,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<i64>,
    /// Jitter in timestamp units, scaled by 16 as in RFC 3550 A.8 to keep integer precision.
    jitter_q4: u64,
}

impl SourceStats {
    pub fn new(ssrc: u32, first_seq: u16, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            max_seq: first_seq,
            cycles: 0,
            base_seq: u64::from(first_seq),
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter_q4: 0,
        }
    }

    /// Updates sequence state for `seq` (RFC 3550 A.1 `update_seq`, without the initial
    /// probation: telephony streams are trusted from the first packet).
    pub fn update_seq(&mut self, seq: u16) -> SeqVerdict {
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: accept it only if the next packet follows on from it.
            if self.bad_seq == Some(seq) {
                self.resync(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return SeqVerdict::Probation;
            }
        }
        // else: reordered or duplicate within MAX_MISORDER; counted, max_seq unchanged.
        self.bad_seq = None;
        self.received += 1;
        SeqVerdict::Accept(self.extend(seq))
    }

    fn resync(&mut self, seq: u16) {
        let clock_rate = self.clock_rate;
        *self = Self::new(self.ssrc, seq, clock_rate);
    }

    /// Extended sequence of `seq`, which is at most `MAX_MISORDER` behind or at `max_seq`.
    fn extend(&self, seq: u16) -> u64 {
        let ext_max = self.cycles + u64::from(self.max_seq);
        let behind = u64::from(self.max_seq.wrapping_sub(seq));
        ext_max.saturating_sub(behind)
    }

    /// RFC 3550 A.8: `arrival` is the arrival time expressed in timestamp units.
    pub fn update_jitter(&mut self, arrival: u32, timestamp: u32) {
        let transit = i64::from(arrival.wrapping_sub(timestamp) as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    pub fn expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(self.base_seq)
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative loss; negative when duplicates outnumber losses (RFC 3550 allows that).
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    pub fn jitter_secs(&self) -> f64 {
        f64::from(self.jitter()) / f64::from(self.clock_rate)
    }

    /// Fraction lost since the previous call, as the 8-bit fixed point of a report block.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost = expected_interval.saturating_sub(received_interval);
        if expected_interval == 0 || lost == 0 {
            0
        } else {
            u8::try_from((lost << 8) / expected_interval).unwrap_or(u8::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut SourceStats, seqs: impl IntoIterator<Item = u16>) -> Vec<SeqVerdict> {
        seqs.into_iter().map(|q| s.update_seq(q)).collect()
    }

    #[test]
    fn extends_across_wraparound() {
        let mut s = SourceStats::new(1, 65534, 8000);
        let v = feed(&mut s, [65534, 65535, 0, 1]);
        assert_eq!(
            v,
            vec![
                SeqVerdict::Accept(65534),
                SeqVerdict::Accept(65535),
                SeqVerdict::Accept(65536),
                SeqVerdict::Accept(65537)
            ]
        );
        assert_eq!(s.expected(), 4);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn reorder_across_wrap_keeps_old_cycle() {
        let mut s = SourceStats::new(1, 65535, 8000);
        feed(&mut s, [65535, 1]);
        assert_eq!(s.update_seq(0), SeqVerdict::Accept(65536));
    }

    #[test]
    fn counts_loss_and_fraction() {
        let mut s = SourceStats::new(1, 10, 8000);
        feed(&mut s, [10, 11, 13, 14]); // 12 lost
        assert_eq!(s.cumulative_lost(), 1);
        assert_eq!(s.take_fraction_lost(), 51); // 1/5 in 8-bit fixed point
        feed(&mut s, [15, 16]);
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn big_jump_needs_confirmation() {
        let mut s = SourceStats::new(1, 100, 8000);
        feed(&mut s, [100, 101]);
        assert_eq!(s.update_seq(20000), SeqVerdict::Probation);
        assert_eq!(s.update_seq(20001), SeqVerdict::Accept(20001));
        assert_eq!(s.expected(), 1);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn jitter_follows_rfc_a8() {
        let mut s = SourceStats::new(1, 0, 8000);
        // Packets every 160 ticks, arrivals alternate 0 and +80 ticks late.
        for i in 0..200u32 {
            let late = if i % 2 == 1 { 80 } else { 0 };
            s.update_jitter(i * 160 + late, i * 160);
        }
        // |D| is always 80, so J converges to 80.
        assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
    }
}
