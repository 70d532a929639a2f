//! What holds dialling back, as plain state fed with the time: the calls-per-second pacer,
//! the carrier-trouble gate, the budget of calls to claim now, and the dial-rate gauge.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::millis;
use crate::limits::{Limit, OutboundRoom};

/// The window the dials-per-second gauge averages over.
const DIAL_RATE_WINDOW: Duration = Duration::from_secs(10);

/// Why due calls wait instead of being dialled (the `reason` of `voxbridge_calls_waiting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holdup {
    /// `calls_per_second`.
    Rate,
    Limit(Limit),
    /// Media ports or speech recognition.
    Capacity,
    /// The carrier fails every call: the [`TrunkGate`] is closed.
    TrunkTrouble,
}

impl Holdup {
    pub(super) const ALL: [Holdup; 6] = [
        Holdup::Rate,
        Holdup::Limit(Limit::Node),
        Holdup::Limit(Limit::Trunk),
        Holdup::Limit(Limit::Org),
        Holdup::Capacity,
        Holdup::TrunkTrouble,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Holdup::Rate => "rate",
            Holdup::Limit(limit) => limit.as_str(),
            Holdup::Capacity => "capacity",
            Holdup::TrunkTrouble => "trunk_trouble",
        }
    }
}

/// How many calls to claim now, and, when none, what holds them back: what the trunk gate
/// lets through, the pacer's tokens, the room under the node's and trunk's caps and under
/// the fewest any capped org has left, and the dialer's media capacity.
pub(super) fn budget(
    gate: usize,
    room: &OutboundRoom,
    tokens: u32,
    capacity: usize,
) -> (usize, Option<Holdup>) {
    let tokens = tokens as usize;
    let org_room = room.org_room.unwrap_or(usize::MAX);
    let budget = gate.min(tokens).min(room.calls).min(capacity).min(org_room);
    let holdup = if budget > 0 {
        None
    } else if gate == 0 {
        Some(Holdup::TrunkTrouble)
    } else if tokens == 0 {
        Some(Holdup::Rate)
    } else if let Some(limit) = room.bound {
        Some(Holdup::Limit(limit))
    } else {
        Some(Holdup::Capacity)
    };
    (budget, holdup)
}

/// Trunk errors in a row (503 to everything, no response at all) that close the gate.
const TRIP_AFTER: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// Keeps dialling off a carrier that fails every call. Retrying each call on its own
/// schedule would still send the carrier the whole batch at `calls_per_second`, spending
/// every call's attempts in minutes of outage. After [`TRIP_AFTER`] trunk errors in a row no
/// call is dialled for a pause, then one probe: the pause doubles while probes fail (up to
/// [`MAX_PAUSE`]) and the gate opens at the carrier's first real answer (answered, busy, no
/// answer …). Calls wait in the queue meanwhile, spending no attempts.
pub(super) struct TrunkGate {
    errors_in_a_row: u32,
    pause: Duration,
    /// Closed until then (ms); `None`: open.
    closed_until: Option<i64>,
    /// A probe is out; no other call goes until it is answered or fails.
    probing: bool,
}

/// What an attempt told about the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It answered the INVITE with something a working carrier says.
    Works,
    /// 5xx, no response, an unusable answer.
    Trouble,
    /// Nothing either way (not dialled, canceled, our own failure).
    Unknown,
}

impl Default for TrunkGate {
    fn default() -> Self {
        Self {
            errors_in_a_row: 0,
            pause: FIRST_PAUSE,
            closed_until: None,
            probing: false,
        }
    }
}

impl TrunkGate {
    /// How many calls may be dialled now: any number, the one probe, or none.
    pub(super) fn allows(&self, now_ms: i64) -> usize {
        match self.closed_until {
            None => usize::MAX,
            Some(until) if now_ms < until || self.probing => 0,
            Some(_) => 1,
        }
    }

    /// How long until a probe may go, while closed.
    pub(super) fn until_probe(&self, now_ms: i64) -> Option<Duration> {
        let until = self.closed_until.filter(|_| !self.probing)?;
        Some(Duration::from_millis(
            u64::try_from(until - now_ms).unwrap_or(0),
        ))
    }

    /// A call is being dialled; while closed, it is the probe.
    pub(super) fn dialled(&mut self) {
        if self.closed_until.is_some() {
            self.probing = true;
        }
    }

    pub(super) fn report(&mut self, verdict: Verdict, now_ms: i64) {
        match verdict {
            Verdict::Works => *self = Self::default(),
            Verdict::Trouble => {
                self.errors_in_a_row += 1;
                if self.probing {
                    self.pause = (self.pause * 2).min(MAX_PAUSE);
                    self.close(now_ms);
                } else if self.closed_until.is_none() && self.errors_in_a_row >= TRIP_AFTER {
                    self.close(now_ms);
                }
            }
            // A probe that came to nothing: the next call probes instead.
            Verdict::Unknown => self.probing = false,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed_until.is_some()
    }

    fn close(&mut self, now_ms: i64) {
        self.closed_until = Some(now_ms + millis(self.pause));
        self.probing = false;
    }
}

/// Dials in the last [`DIAL_RATE_WINDOW`], for the dials-per-second gauge.
#[derive(Default)]
pub(super) struct DialRate(VecDeque<i64>);

impl DialRate {
    pub(super) fn dialled(&mut self, now_ms: i64) {
        self.0.push_back(now_ms);
    }

    pub(super) fn per_second(&mut self, now_ms: i64) -> f64 {
        let window = millis(DIAL_RATE_WINDOW);
        while self.0.front().is_some_and(|at| *at <= now_ms - window) {
            self.0.pop_front();
        }
        self.0.len() as f64 * 1000.0 / window as f64
    }
}

/// A token bucket for `calls_per_second` that lets 20 ms worth go at once (at least one
/// call): any one-second window then sees at most 2 % (or one call) more than the rate. A
/// second's worth of burst sent twice the rate in the first second of every batch, which a
/// carrier counting calls per second refuses. The bucket keeps half a call more than it lets
/// go at once, so a dispatcher that wakes a millisecond late loses nothing: capped at exactly
/// one call, every late wake shaved the rate (47.7 a second at 50, measured). Time is an
/// input (ms since the epoch); a clock set back refills nothing rather than failing.
pub(super) struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ms: i64,
}

/// What the bucket holds beyond its burst (see [`Pacer`]).
const SLACK: f64 = 0.5;

impl Pacer {
    pub(super) fn new(per_second: u32, now_ms: i64) -> Self {
        let rate = f64::from(per_second.max(1));
        let burst = (rate / 50.0).floor().max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst + SLACK);
        self.last_ms = self.last_ms.max(now_ms);
    }

    pub(super) fn available(&mut self, now_ms: i64) -> u32 {
        self.refill(now_ms);
        self.tokens.min(self.burst).floor() as u32
    }

    pub(super) fn take(&mut self) {
        self.tokens -= 1.0;
    }

    pub(super) fn until_next(&mut self, now_ms: i64) -> Duration {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_scarcest_of_rate_caps_and_capacity_and_names_what_holds_it_back() {
        let room = |calls, bound, org_room| OutboundRoom {
            calls,
            bound,
            full_orgs: Vec::new(),
            org_room,
        };
        let open = usize::MAX;
        assert_eq!(budget(open, &room(8, None, None), 5, 100), (5, None));
        assert_eq!(budget(open, &room(8, None, Some(2)), 5, 100), (2, None));
        assert_eq!(budget(open, &room(8, None, None), 5, 3), (3, None));
        assert_eq!(budget(1, &room(8, None, None), 5, 3), (1, None));
        assert_eq!(
            budget(open, &room(8, None, None), 0, 3),
            (0, Some(Holdup::Rate))
        );
        assert_eq!(
            budget(open, &room(0, Some(Limit::Trunk), None), 5, 3),
            (0, Some(Holdup::Limit(Limit::Trunk)))
        );
        assert_eq!(
            budget(open, &room(8, None, None), 5, 0),
            (0, Some(Holdup::Capacity))
        );
        assert_eq!(
            budget(0, &room(8, None, None), 0, 0),
            (0, Some(Holdup::TrunkTrouble))
        );
    }

    #[test]
    fn the_gate_closes_after_five_trunk_errors_and_probes_with_doubling_pauses() {
        let mut gate = TrunkGate::default();
        for _ in 0..4 {
            gate.report(Verdict::Trouble, 0);
        }
        assert_eq!(gate.allows(0), usize::MAX, "four errors are not an outage");
        gate.report(Verdict::Trouble, 0);
        assert_eq!(gate.allows(1_999), 0, "closed for 2 s");
        assert_eq!(gate.until_probe(1_000), Some(Duration::from_secs(1)));
        assert_eq!(gate.allows(2_000), 1, "then one probe");
        gate.dialled();
        assert_eq!(gate.allows(2_000), 0, "and only one");
        gate.report(Verdict::Trouble, 2_500);
        assert_eq!(gate.allows(6_499), 0, "the pause doubled");
        assert_eq!(gate.allows(6_500), 1);
        gate.dialled();
        gate.report(Verdict::Unknown, 6_600);
        assert_eq!(
            gate.allows(6_600),
            1,
            "a probe that came to nothing is replaced"
        );
        gate.dialled();
        gate.report(Verdict::Works, 7_000);
        assert_eq!(
            gate.allows(7_000),
            usize::MAX,
            "open at the first real answer"
        );
        assert!(!gate.is_closed());
        for _ in 0..40 {
            gate.report(Verdict::Trouble, 0);
            gate.dialled();
        }
        assert!(gate.pause <= MAX_PAUSE);
    }

    #[test]
    fn the_dial_rate_averages_the_last_ten_seconds() {
        let mut rate = DialRate::default();
        for at in 0..50 {
            rate.dialled(at * 100);
        }
        assert_eq!(rate.per_second(4_900), 5.0);
        assert_eq!(
            rate.per_second(12_000),
            2.9,
            "the first 21 dials left the window"
        );
        assert_eq!(rate.per_second(60_000), 0.0);
    }

    #[test]
    fn pacer_allows_the_configured_rate_with_a_burst_of_20_ms() {
        let mut pacer = Pacer::new(500, 5_000);
        assert_eq!(pacer.available(5_000), 10, "20 ms worth at once");
        for _ in 0..10 {
            pacer.take();
        }
        assert_eq!(pacer.available(5_000), 0);
        assert_eq!(pacer.until_next(5_000), Duration::from_millis(2));
        assert_eq!(pacer.available(5_010), 5);
        assert_eq!(pacer.available(4_000), 5, "a clock set back adds nothing");
        assert_eq!(pacer.available(15_000), 10, "the burst is capped");
        let mut slow = Pacer::new(10, 0);
        assert_eq!(slow.available(0), 1, "at least one call");
        slow.take();
        assert_eq!(slow.until_next(0), Duration::from_millis(100));
        assert_eq!(
            slow.available(10_000),
            1,
            "one at once, however long it waited"
        );
        slow.take();
        assert_eq!(
            slow.until_next(10_000),
            Duration::from_millis(50),
            "half a call kept from the wait"
        );
        assert_eq!(slow.available(10_040), 0);
        assert_eq!(slow.available(10_050), 1);
    }
}
