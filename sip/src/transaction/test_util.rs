//! Helpers for driving transactions with injected time.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TsxOutput;
use crate::message::{parse_datagram, Message, Request, Response};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Jumps from deadline to deadline until `limit` after `t0`, collecting outputs with their time.
pub fn drive<T>(
    tsx: &mut T,
    t0: Instant,
    limit: Duration,
    next: impl Fn(&T) -> Option<Instant>,
    fire: impl Fn(&mut T, Instant),
    poll: impl Fn(&mut T) -> Option<TsxOutput>,
) -> Vec<(Instant, TsxOutput)> {
    let mut out = Vec::new();
    let mut now = t0;
    loop {
        while let Some(o) = poll(tsx) {
            out.push((now, o));
        }
        match next(tsx) {
            Some(at) if at <= t0 + limit => {
                now = at;
                fire(tsx, now);
            }
            _ => return out,
        }
    }
}

pub const INVITE: &[u8] = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: call1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

pub fn invite() -> Request {
    match parse_datagram(Bytes::from_static(INVITE)) {
        Ok(Message::Request(r)) => r,
        other => panic!("fixture: {other:?}"),
    }
}

pub fn response(status: u16) -> Response {
    Response::for_request(&invite(), status, Some("b1"))
}

pub fn sends(outputs: &[(Instant, TsxOutput)], t0: Instant) -> Vec<u64> {
    outputs
        .iter()
        .filter(|(_, o)| matches!(o, TsxOutput::Send(_)))
        .map(|(t, _)| t.duration_since(t0).as_millis() as u64)
        .collect()
}
