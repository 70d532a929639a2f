//! INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as amended by RFC 6026: a 2xx moves
//! it to Accepted, where retransmitted 2xx still reach the transaction user, which ACKs them).

use std::time::{Duration, Instant};

use super::{Outbox, Reliability, Timer, TimerConfig, Timers, TsxEvent, TsxOutput};
use crate::message::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    /// Needed to build the ACK for a failure; dropped once a final response arrived.
    request: Option<Request>,
    wire: bytes::Bytes,
    reliability: Reliability,
    config: TimerConfig,
    interval: Duration,
    ack: Option<bytes::Bytes>,
    timers: Timers,
    out: Outbox,
}

impl ClientInvite {
    pub fn new(
        request: Request,
        reliability: Reliability,
        config: TimerConfig,
        now: Instant,
    ) -> Self {
        let wire = request.to_bytes();
        let mut tsx = ClientInvite {
            state: State::Calling,
            request: Some(request),
            wire,
            reliability,
            config,
            interval: config.t1,
            ack: None,
            timers: Timers::default(),
            out: Outbox::default(),
        };
        tsx.out.send(tsx.wire.clone());
        tsx.timers.set(Timer::B, now + config.timeout());
        if reliability == Reliability::Unreliable {
            tsx.timers.set(Timer::A, now + config.t1);
        }
        tsx
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn handle_response(&mut self, resp: Response, now: Instant) {
        match (self.state, resp.status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.timers.clear(Timer::A);
                self.timers.clear(Timer::B);
                self.out.event(TsxEvent::Response(Box::new(resp)));
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.request = None;
                self.timers = Timers::default();
                self.timers.set(Timer::M, now + self.config.timeout());
                self.out.event(TsxEvent::Response(Box::new(resp)));
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.timers = Timers::default();
                if let Some(request) = self.request.take() {
                    let ack = request.ack_for_failure(&resp).to_bytes();
                    self.out.send(ack.clone());
                    self.ack = Some(ack);
                }
                self.out.event(TsxEvent::Response(Box::new(resp)));
                match self.reliability {
                    Reliability::Unreliable => {
                        self.timers.set(Timer::D, now + Duration::from_secs(32))
                    }
                    Reliability::Reliable => self.state = State::Terminated,
                }
            }
            // A retransmitted failure means our ACK was lost: send it again.
            (State::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.out.send(ack.clone());
                }
            }
            // RFC 6026: 2xx retransmissions (or 2xx from other forks) go up for the TU to ACK.
            (State::Accepted, 200..=299) => self.out.event(TsxEvent::Response(Box::new(resp))),
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::A => {
                    self.out.send(self.wire.clone());
                    self.interval *= 2;
                    self.timers.set(Timer::A, now + self.interval);
                }
                Timer::B => {
                    self.timers = Timers::default();
                    self.state = State::Terminated;
                    self.out.event(TsxEvent::Timeout);
                }
                Timer::D | Timer::M => self.state = State::Terminated,
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
    use crate::message::{parse_datagram, Message, Method};
    use crate::transaction::test_util::*;

    fn new(t0: Instant, r: Reliability) -> ClientInvite {
        ClientInvite::new(invite(), r, TimerConfig::default(), t0)
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b() {
        let t0 = Instant::now();
        let mut tsx = new(t0, Reliability::Unreliable);
        let out = drive(
            &mut tsx,
            t0,
            ms(60_000),
            |t| t.poll_timeout(),
            |t, n| t.handle_timeout(n),
            |t| t.poll_output(),
        );
        assert_eq!(
            sends(&out, t0),
            vec![0, 500, 1500, 3500, 7500, 15500, 31500]
        );
        assert_eq!(out.last().unwrap().1, TsxOutput::Event(TsxEvent::Timeout));
        assert_eq!(out.last().unwrap().0, t0 + ms(32_000));
    }

    #[test]
    fn provisional_stops_retransmission_and_timeout() {
        let t0 = Instant::now();
        let mut tsx = new(t0, Reliability::Unreliable);
        tsx.handle_response(response(180), t0 + ms(100));
        assert_eq!(tsx.poll_timeout(), None);
        assert_eq!(tsx.state(), State::Proceeding);
    }

    #[test]
    fn failure_is_acked_and_ack_repeated_for_retransmissions() {
        let t0 = Instant::now();
        let mut tsx = new(t0, Reliability::Unreliable);
        tsx.poll_output();
        tsx.handle_response(response(486), t0 + ms(10));
        let Some(TsxOutput::Send(ack)) = tsx.poll_output() else {
            panic!("ACK expected")
        };
        let Ok(Message::Request(ack)) = parse_datagram(ack) else {
            panic!()
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.via_top().unwrap().branch(), Some("z9hG4bKabc"));
        assert!(
            matches!(tsx.poll_output(), Some(TsxOutput::Event(TsxEvent::Response(r))) if r.status == 486)
        );
        tsx.handle_response(response(486), t0 + ms(600));
        assert!(matches!(tsx.poll_output(), Some(TsxOutput::Send(_))));
        assert_eq!(tsx.poll_output(), None);
        tsx.handle_timeout(t0 + ms(10) + Duration::from_secs(32));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn accepted_passes_2xx_retransmissions_up_then_terminates_after_timer_m() {
        let t0 = Instant::now();
        let mut tsx = new(t0, Reliability::Unreliable);
        tsx.poll_output();
        tsx.handle_response(response(200), t0 + ms(50));
        tsx.handle_response(response(200), t0 + ms(550));
        let events = std::iter::from_fn(|| tsx.poll_output()).count();
        assert_eq!(events, 2);
        assert_eq!(tsx.state(), State::Accepted);
        tsx.handle_timeout(t0 + ms(50) + ms(32_000));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_failure_terminates_at_once() {
        let t0 = Instant::now();
        let mut tsx = new(t0, Reliability::Reliable);
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)));
        tsx.handle_response(response(404), t0);
        assert!(tsx.is_terminated());
    }
}
