//! What to do with a received message: process it, answer it with an error status, or drop it
//! (RFC 3261 §8.2, §18.1.2/§18.2.1). One decision point shared by the driver and the tests.

use super::parse::{ParseError, ParseErrorKind};
use super::validate::Rejection;
use super::{Message, Request, Response};

#[derive(Debug)]
pub enum Inbound {
    Request(Request),
    Response(Response),
    /// A request that must be answered with this status instead of being processed.
    Reject(Request, Rejection),
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Unreadable start line or headers.
    Unparseable(ParseErrorKind),
    /// A bad request without what a response needs (routable Via, Call-ID, CSeq, From, To).
    Unanswerable,
    /// A response whose Via, CSeq or Call-ID is unreadable cannot match a transaction.
    BadResponse,
}

pub fn triage(parsed: Result<Message, ParseError>) -> Inbound {
    match parsed {
        Ok(Message::Request(req)) => match req.validate() {
            Ok(()) => Inbound::Request(req),
            Err(rejection) => reject_or_drop(req, rejection),
        },
        Ok(Message::Response(resp)) => {
            let h = &resp.headers;
            if h.via_top().is_ok() && h.cseq().is_ok() && h.call_id().is_ok() {
                Inbound::Response(resp)
            } else {
                Inbound::Drop(DropReason::BadResponse)
            }
        }
        Err(ParseError {
            kind,
            head: Some(head),
        }) => match *head {
            Message::Request(req) => {
                let rejection = match kind {
                    ParseErrorKind::UnsupportedVersion => Rejection {
                        status: 505,
                        reason: "Version Not Supported",
                    },
                    ParseErrorKind::TooLarge => Rejection {
                        status: 513,
                        reason: "Message Too Large",
                    },
                    _ => Rejection {
                        status: 400,
                        reason: "Bad Request",
                    },
                };
                reject_or_drop(req, rejection)
            }
            Message::Response(_) => Inbound::Drop(DropReason::BadResponse),
        },
        Err(ParseError { kind, head: None }) => Inbound::Drop(DropReason::Unparseable(kind)),
    }
}

fn reject_or_drop(req: Request, rejection: Rejection) -> Inbound {
    if req.is_answerable() {
        Inbound::Reject(req, rejection)
    } else {
        Inbound::Drop(DropReason::Unanswerable)
    }
}
