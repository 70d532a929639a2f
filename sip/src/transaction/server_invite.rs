//! INVITE server transaction (RFC 3261 §17.2.1, Figure 7, with RFC 6026's Accepted state).
//! The 2xx is retransmitted here until its ACK arrives (the UAS core duty of §13.3.1.4, kept
//! beside Timer G because it is the same schedule); the endpoint routes that ACK here by dialog.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Outbox, Reliability, Timer, TimerConfig, Timers, TsxEvent, TsxOutput};
use crate::message::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    last_response: Bytes,
    reliability: Reliability,
    config: TimerConfig,
    interval: Duration,
    acked: bool,
    timers: Timers,
    out: Outbox,
}

impl ServerInvite {
    /// Created when the INVITE arrives. 100 Trying goes out only if the TU stays silent for
    /// 200 ms (RFC 3261 §17.2.1) or the INVITE is retransmitted: an immediate answer saves a
    /// packet per call.
    /// `answer_within` bounds how long the TU may take to send a final response; when it
    /// passes, a `Timeout` event is emitted in Proceeding.
    pub fn new(
        invite: &Request,
        reliability: Reliability,
        config: TimerConfig,
        answer_within: Duration,
        now: Instant,
    ) -> Self {
        let mut timers = Timers::default();
        timers.set(Timer::Trying, now + Duration::from_millis(200));
        timers.set(Timer::Answer, now + answer_within);
        ServerInvite {
            state: State::Proceeding,
            last_response: Response::for_request(invite, 100, None).to_bytes(),
            reliability,
            config,
            interval: config.t1,
            acked: false,
            timers,
            out: Outbox::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn respond(&mut self, resp: &Response, now: Instant) {
        if self.state != State::Proceeding {
            return;
        }
        let bytes = resp.to_bytes();
        self.out.send(bytes.clone());
        self.last_response = bytes;
        self.timers.clear(Timer::Trying);
        self.timers.clear(Timer::Answer);
        match resp.status {
            100..=199 => {}
            200..=299 => {
                self.state = State::Accepted;
                self.timers.set(Timer::L, now + self.config.timeout());
                if self.reliability == Reliability::Unreliable {
                    self.timers.set(Timer::G, now + self.interval);
                }
            }
            _ => {
                self.state = State::Completed;
                self.timers.set(Timer::H, now + self.config.timeout());
                if self.reliability == Reliability::Unreliable {
                    self.timers.set(Timer::G, now + self.interval);
                }
            }
        }
    }

    /// A retransmitted INVITE: repeat the provisional (Proceeding) or failure (Completed);
    /// absorbed in Accepted (RFC 6026 §7.1).
    pub fn handle_retransmission(&mut self) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            self.out.send(self.last_response.clone());
        }
    }

    /// ACK for a failure (matched by branch) or for our 2xx (matched by dialog).
    pub fn handle_ack(&mut self, now: Instant) {
        match self.state {
            State::Completed => {
                self.timers.clear(Timer::G);
                self.timers.clear(Timer::H);
                match self.reliability {
                    Reliability::Unreliable => {
                        self.state = State::Confirmed;
                        self.timers.set(Timer::I, now + self.config.t4);
                    }
                    Reliability::Reliable => self.state = State::Terminated,
                }
            }
            State::Accepted if !self.acked => {
                self.acked = true;
                self.timers.clear(Timer::G);
                // The 2xx is never sent again. The client stopped retransmitting the INVITE
                // before it ACKed, so only INVITEs still in the network (at most T4 old) are
                // left to absorb: linger T4 rather than the rest of Timer L (a deviation from
                // RFC 6026 that bounds memory at high call rates; see docs/sip.md).
                self.last_response = Bytes::new();
                match self.reliability {
                    Reliability::Unreliable => self.timers.set(Timer::L, now + self.config.t4),
                    Reliability::Reliable => self.state = State::Terminated,
                }
                self.out.event(TsxEvent::Acked);
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Trying => self.out.send(self.last_response.clone()),
                Timer::Answer => self.out.event(TsxEvent::Timeout),
                Timer::G => {
                    self.out.send(self.last_response.clone());
                    self.interval = (self.interval * 2).min(self.config.t2);
                    self.timers.set(Timer::G, now + self.interval);
                }
                Timer::H => {
                    self.timers = Timers::default();
                    self.state = State::Terminated;
                    self.out.event(TsxEvent::Timeout);
                }
                Timer::L => {
                    self.timers = Timers::default();
                    self.state = State::Terminated;
                    if !self.acked {
                        self.out.event(TsxEvent::Timeout);
                    }
                }
                Timer::I => self.state = State::Terminated,
                _ => {}
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<TsxOutput> {
        self.out.pop()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_util::*;

    const ANSWER: Duration = Duration::from_secs(180);

    fn new(r: Reliability, t0: Instant) -> ServerInvite {
        ServerInvite::new(&invite(), r, TimerConfig::default(), ANSWER, t0)
    }

    #[test]
    fn silent_tu_gets_a_timeout_event() {
        let t0 = Instant::now();
        let mut tsx = ServerInvite::new(
            &invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
            ms(1000),
            t0,
        );
        tsx.handle_timeout(t0 + ms(1000));
        let outs: Vec<_> = std::iter::from_fn(|| tsx.poll_output()).collect();
        assert_eq!(outs.last(), Some(&TsxOutput::Event(TsxEvent::Timeout)));
        assert_eq!(
            tsx.state(),
            State::Proceeding,
            "the TU decides what to send"
        );
    }

    #[test]
    fn trying_after_200ms_of_silence_or_on_retransmission() {
        let t0 = Instant::now();
        let is_100 = |o: Option<TsxOutput>| matches!(o, Some(TsxOutput::Send(b)) if b.starts_with(b"SIP/2.0 100 Trying"));
        let mut tsx = ServerInvite::new(
            &invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
            ANSWER,
            t0,
        );
        assert_eq!(tsx.poll_output(), None);
        tsx.handle_retransmission();
        assert!(is_100(tsx.poll_output()));
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(200)));
        tsx.handle_timeout(t0 + ms(200));
        assert!(is_100(tsx.poll_output()));
        let mut quick = ServerInvite::new(
            &invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
            ANSWER,
            t0,
        );
        quick.respond(&response(200), t0 + ms(5));
        assert!(
            matches!(quick.poll_output(), Some(TsxOutput::Send(b)) if b.starts_with(b"SIP/2.0 200"))
        );
        assert_eq!(quick.poll_output(), None, "no 100 once answered");
    }

    #[test]
    fn duplicate_invite_gets_last_provisional_again() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Unreliable, t0);
        tsx.respond(&response(180), Instant::now());
        tsx.poll_output();
        tsx.handle_retransmission();
        assert!(
            matches!(tsx.poll_output(), Some(TsxOutput::Send(b)) if b.starts_with(b"SIP/2.0 180"))
        );
    }

    #[test]
    fn failure_retransmits_g_capped_at_t2_until_h_without_ack() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Unreliable, t0);
        tsx.respond(&response(486), t0);
        let out = drive(
            &mut tsx,
            t0,
            ms(60_000),
            |t| t.poll_timeout(),
            |t, n| t.handle_timeout(n),
            |t| t.poll_output(),
        );
        let s = sends(&out, t0);
        assert_eq!(&s[..6], &[0, 500, 1500, 3500, 7500, 11500]);
        assert_eq!(
            out.last().unwrap(),
            &(t0 + ms(32_000), TsxOutput::Event(TsxEvent::Timeout))
        );
        assert!(tsx.is_terminated());
    }

    #[test]
    fn ack_for_failure_confirms_then_timer_i() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Unreliable, t0);
        tsx.respond(&response(486), t0);
        tsx.poll_output();
        tsx.handle_ack(t0 + ms(700));
        assert_eq!(tsx.state(), State::Confirmed);
        tsx.handle_retransmission();
        assert_eq!(
            tsx.poll_output(),
            None,
            "INVITE retransmits are absorbed once confirmed"
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(5700)));
        tsx.handle_timeout(t0 + ms(5700));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn lost_ack_for_2xx_retransmits_then_reports_timeout() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Unreliable, t0);
        tsx.respond(&response(200), t0);
        tsx.handle_retransmission();
        let out = drive(
            &mut tsx,
            t0,
            ms(60_000),
            |t| t.poll_timeout(),
            |t, n| t.handle_timeout(n),
            |t| t.poll_output(),
        );
        let s = sends(&out, t0);
        assert_eq!(
            &s[..5],
            &[0, 500, 1500, 3500, 7500],
            "duplicate INVITE in Accepted is absorbed"
        );
        assert_eq!(out.last().unwrap().1, TsxOutput::Event(TsxEvent::Timeout));
    }

    #[test]
    fn late_ack_stops_2xx_retransmission_and_shortens_lingering_to_t4() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Unreliable, t0);
        tsx.respond(&response(200), t0);
        tsx.poll_output();
        tsx.handle_timeout(t0 + ms(500));
        assert!(matches!(tsx.poll_output(), Some(TsxOutput::Send(_))));
        tsx.handle_ack(t0 + ms(900));
        tsx.handle_ack(t0 + ms(950));
        assert_eq!(tsx.poll_output(), Some(TsxOutput::Event(TsxEvent::Acked)));
        assert_eq!(tsx.poll_output(), None);
        tsx.handle_retransmission();
        assert_eq!(tsx.poll_output(), None, "late INVITE copies are absorbed");
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(5900)));
        tsx.handle_timeout(t0 + ms(5900));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_output(), None);
    }

    #[test]
    fn reliable_ack_terminates() {
        let t0 = Instant::now();
        let mut tsx = new(Reliability::Reliable, t0);
        tsx.respond(&response(603), t0);
        tsx.handle_ack(t0);
        assert!(tsx.is_terminated());
    }
}
