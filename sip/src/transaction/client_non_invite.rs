//! Non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Outbox, Reliability, Timer, TimerConfig, Timers, TsxEvent, TsxOutput};
use crate::message::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    request: Bytes,
    reliability: Reliability,
    config: TimerConfig,
    interval: Duration,
    timers: Timers,
    out: Outbox,
}

impl ClientNonInvite {
    /// Starts the transaction by sending `request`.
    pub fn new(
        request: Bytes,
        reliability: Reliability,
        config: TimerConfig,
        now: Instant,
    ) -> Self {
        let mut tsx = ClientNonInvite {
            state: State::Trying,
            request,
            reliability,
            config,
            interval: config.t1,
            timers: Timers::default(),
            out: Outbox::default(),
        };
        tsx.out.send(tsx.request.clone());
        tsx.timers.set(Timer::F, now + config.timeout());
        if reliability == Reliability::Unreliable {
            tsx.timers.set(Timer::E, now + config.t1);
        }
        tsx
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn handle_response(&mut self, resp: Response, now: Instant) {
        match self.state {
            State::Trying | State::Proceeding if resp.is_provisional() => {
                self.state = State::Proceeding;
                self.out.event(TsxEvent::Response(Box::new(resp)));
            }
            State::Trying | State::Proceeding => {
                self.state = State::Completed;
                self.timers.clear(Timer::E);
                self.timers.clear(Timer::F);
                self.out.event(TsxEvent::Response(Box::new(resp)));
                match self.reliability {
                    Reliability::Unreliable => self.timers.set(Timer::K, now + self.config.t4),
                    Reliability::Reliable => self.state = State::Terminated,
                }
            }
            // Retransmitted responses are absorbed.
            State::Completed | State::Terminated => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::E => {
                    self.out.send(self.request.clone());
                    // Trying doubles up to T2; Proceeding retransmits every T2.
                    self.interval = match self.state {
                        State::Trying => (self.interval * 2).min(self.config.t2),
                        _ => self.config.t2,
                    };
                    self.timers.set(Timer::E, now + self.interval);
                }
                Timer::F => {
                    self.timers = Timers::default();
                    self.state = State::Terminated;
                    self.out.event(TsxEvent::Timeout);
                }
                Timer::K => self.state = State::Terminated,
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

    #[test]
    fn retransmits_at_t1_doubling_to_t2_then_times_out_at_64_t1() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut tsx = ClientNonInvite::new(
            Bytes::from_static(b"OPTIONS"),
            Reliability::Unreliable,
            cfg,
            t0,
        );
        let sends = drive(
            &mut tsx,
            t0,
            ms(40_000),
            |t| t.poll_timeout(),
            |t, n| t.handle_timeout(n),
            |t| t.poll_output(),
        );
        let send_times: Vec<u64> = sends
            .iter()
            .filter(|(_, o)| matches!(o, TsxOutput::Send(_)))
            .map(|(t, _)| t.duration_since(t0).as_millis() as u64)
            .collect();
        assert_eq!(&send_times[..7], &[0, 500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!(*send_times.last().unwrap(), 31_500);
        let (at, last) = sends.last().unwrap();
        assert_eq!(last, &TsxOutput::Event(TsxEvent::Timeout));
        assert_eq!(at.duration_since(t0), ms(32_000));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn final_response_stops_retransmits_and_absorbs_duplicates() {
        let t0 = Instant::now();
        let mut tsx = ClientNonInvite::new(
            Bytes::from_static(b"BYE"),
            Reliability::Unreliable,
            TimerConfig::default(),
            t0,
        );
        tsx.poll_output();
        tsx.handle_response(response(200), t0 + ms(100));
        tsx.handle_response(response(200), t0 + ms(200));
        assert!(matches!(
            tsx.poll_output(),
            Some(TsxOutput::Event(TsxEvent::Response(_)))
        ));
        assert_eq!(tsx.poll_output(), None);
        assert_eq!(tsx.state(), State::Completed);
        assert_eq!(
            tsx.poll_timeout(),
            Some(t0 + ms(100) + TimerConfig::default().t4)
        );
        tsx.handle_timeout(t0 + ms(5100));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let t0 = Instant::now();
        let mut tsx = ClientNonInvite::new(
            Bytes::from_static(b"BYE"),
            Reliability::Reliable,
            TimerConfig::default(),
            t0,
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)));
        tsx.handle_response(response(100), t0);
        tsx.handle_response(response(200), t0);
        assert!(tsx.is_terminated());
    }
}
