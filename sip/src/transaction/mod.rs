//! Sans-IO transactions (RFC 3261 §17, with RFC 6026's Accepted states). Each state machine
//! takes messages and `now`, queues what to send and what to tell the transaction user, and
//! reports its next deadline. Addresses are the endpoint's business, not the transaction's.

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod timer;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::TsxKey;
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use timer::{Timer, TimerConfig, Timers};

use std::collections::VecDeque;

use bytes::Bytes;

use crate::message::Response;

/// Whether the transport retransmits for us (TCP) or the transaction must (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    Reliable,
    Unreliable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsxEvent {
    /// Client: a response for the transaction user (retransmitted 2xx included, RFC 6026).
    Response(Box<Response>),
    /// Client: Timer B/F fired (treat as 408). Server INVITE: no ACK for a final response.
    Timeout,
    /// Server INVITE: the ACK for our 2xx arrived.
    Acked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsxOutput {
    Send(Bytes),
    Event(TsxEvent),
}

/// Output queue shared by the four state machines.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<TsxOutput>,
}

impl Outbox {
    fn send(&mut self, bytes: Bytes) {
        self.queue.push_back(TsxOutput::Send(bytes));
    }

    fn event(&mut self, event: TsxEvent) {
        self.queue.push_back(TsxOutput::Event(event));
    }

    fn pop(&mut self) -> Option<TsxOutput> {
        let out = self.queue.pop_front();
        if out.is_none() && self.queue.capacity() > 0 {
            // Transactions linger for 64*T1 after their last output: don't keep the buffer.
            self.queue = VecDeque::new();
        }
        out
    }
}

#[cfg(test)]
mod test_util;
