//! Non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use std::time::Instant;

use bytes::Bytes;

use super::{Outbox, Reliability, Timer, TimerConfig, Timers, TsxOutput};
use crate::message::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    last_response: Option<Bytes>,
    reliability: Reliability,
    config: TimerConfig,
    timers: Timers,
    out: Outbox,
}

impl ServerNonInvite {
    /// Created when the request arrives; the request itself goes to the TU by the endpoint.
    pub fn new(reliability: Reliability, config: TimerConfig) -> Self {
        ServerNonInvite {
            state: State::Trying,
            last_response: None,
            reliability,
            config,
            timers: Timers::default(),
            out: Outbox::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The TU's response. Ignored once a final response was sent.
    pub fn respond(&mut self, resp: &Response, now: Instant) {
        if matches!(self.state, State::Completed | State::Terminated) {
            return;
        }
        let bytes = resp.to_bytes();
        self.out.send(bytes.clone());
        self.last_response = Some(bytes);
        if resp.is_provisional() {
            self.state = State::Proceeding;
            return;
        }
        match self.reliability {
            Reliability::Unreliable => {
                self.state = State::Completed;
                self.timers.set(Timer::J, now + self.config.timeout());
            }
            Reliability::Reliable => self.state = State::Terminated,
        }
    }

    /// A retransmission of the request: repeat the last response, if any.
    pub fn handle_retransmission(&mut self) {
        if let (State::Proceeding | State::Completed, Some(r)) = (self.state, &self.last_response) {
            self.out.send(r.clone());
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if timer == Timer::J {
                self.state = State::Terminated;
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
    fn absorbs_in_trying_repeats_final_then_timer_j() {
        let t0 = Instant::now();
        let mut tsx = ServerNonInvite::new(Reliability::Unreliable, TimerConfig::default());
        tsx.handle_retransmission();
        assert_eq!(tsx.poll_output(), None);
        tsx.respond(&response(200), t0);
        tsx.handle_retransmission();
        assert_eq!(std::iter::from_fn(|| tsx.poll_output()).count(), 2);
        tsx.respond(&response(500), t0);
        assert_eq!(
            tsx.poll_output(),
            None,
            "a second final response is not sent"
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)));
        tsx.handle_timeout(t0 + ms(32_000));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_terminates_on_final() {
        let mut tsx = ServerNonInvite::new(Reliability::Reliable, TimerConfig::default());
        tsx.respond(&response(100), Instant::now());
        assert_eq!(tsx.state(), State::Proceeding);
        tsx.respond(&response(200), Instant::now());
        assert!(tsx.is_terminated());
    }
}
