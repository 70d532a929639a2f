//! Received requests: protection, retransmission matching, and dispatch by method and dialog.

use std::net::SocketAddr;
use std::time::Instant;

use super::protect::is_scanner;
use super::{CallEvent, EndReason, Endpoint, Transport, Tsx};
use crate::message::{split_list, HeaderName, Method, Request, Response};
use crate::transaction::TsxKey;

pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

impl Endpoint {
    pub(super) fn on_request(
        &mut self,
        mut req: Request,
        transport: Transport,
        source: SocketAddr,
        now: Instant,
    ) {
        if req
            .headers
            .get_str(&HeaderName::UserAgent)
            .is_some_and(is_scanner)
        {
            self.stats.scanner_dropped += 1;
            return;
        }
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(source.ip(), now) {
                self.stats.rate_limited += 1;
                return;
            }
        }
        stamp_via(&mut req, source);
        let Some(key) = TsxKey::server(&req.method, &req.headers) else {
            return;
        };
        if let Some(&id) = self.tx_index.get(&key) {
            match (self.txs.get_mut(&id).map(|e| &mut e.tsx), &req.method) {
                (Some(Tsx::ServerInvite(t)), Method::Ack) => t.handle_ack(now),
                (Some(Tsx::ServerInvite(t)), _) => t.handle_retransmission(),
                (Some(Tsx::ServerNonInvite(t)), _) => t.handle_retransmission(),
                _ => return,
            }
            self.pump(id, now);
            return;
        }
        // No extension is supported, 100rel included: 420 lists what was required
        // (RFC 3261 §8.2.2.3). ACK and CANCEL cannot be refused this way.
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            let required: Vec<&str> = req
                .headers
                .get_all(&HeaderName::Require)
                .filter_map(|v| std::str::from_utf8(v).ok())
                .flat_map(split_list)
                .filter(|o| !o.is_empty())
                .collect();
            if !required.is_empty() {
                let unsupported = required.join(", ");
                self.respond_status(
                    &req,
                    420,
                    &[(HeaderName::Unsupported, unsupported)],
                    source,
                    transport,
                    now,
                );
                return;
            }
        }
        let in_dialog = req
            .headers
            .to_hdr()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        if in_dialog.is_none()
            && req.method != Method::Ack
            && self.txs.len() >= self.config.max_transactions
        {
            self.stats.overload_rejected += 1;
            let mut resp = Response::for_request(&req, 503, None);
            resp.headers.push(HeaderName::RetryAfter, "5");
            self.transmit(transport, source, resp.to_bytes());
            return;
        }
        match (&req.method, in_dialog) {
            (Method::Ack, Some(tag)) => self.on_dialog_ack(&req, &tag, now),
            (Method::Ack, None) => {}
            (Method::Cancel, _) => self.on_cancel(&req, &key, source, transport, now),
            (_, Some(tag)) => self.on_in_dialog(req, &tag, source, transport, now),
            (Method::Invite, None) => self.on_invite(req, source, transport, now),
            (Method::Options, None) => {
                let extra = [
                    (HeaderName::Allow, ALLOW.to_owned()),
                    (HeaderName::Accept, "application/sdp".to_owned()),
                ];
                self.respond_status(&req, 200, &extra, source, transport, now);
            }
            (Method::Bye | Method::Info, None) => {
                self.respond_status(&req, 481, &[], source, transport, now)
            }
            (Method::Other(_), None) => self.respond_status(
                &req,
                501,
                &[(HeaderName::Allow, ALLOW.to_owned())],
                source,
                transport,
                now,
            ),
            (_, None) => self.respond_status(
                &req,
                405,
                &[(HeaderName::Allow, ALLOW.to_owned())],
                source,
                transport,
                now,
            ),
        }
    }

    fn dialog_call(&self, req: &Request, local_tag: &str) -> Option<super::CallRef> {
        let call_id = req.headers.call_id().ok()?;
        self.dialogs
            .get(&(call_id.into(), local_tag.into()))
            .copied()
    }

    /// ACK for our 2xx: a new transaction by RFC 3261, matched here by dialog and CSeq.
    fn on_dialog_ack(&mut self, req: &Request, local_tag: &str, now: Instant) {
        let Some(call) = self.dialog_call(req, local_tag) else {
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(id) = c.invite_tsx.filter(|_| seq == c.invite_cseq) else {
            return;
        };
        if let Some(Tsx::ServerInvite(t)) = self.txs.get_mut(&id).map(|e| &mut e.tsx) {
            t.handle_ack(now);
            self.pump(id, now);
        }
    }

    /// CANCEL (RFC 3261 §9.2): 200 for the CANCEL, 487 for the INVITE if still unanswered.
    fn on_cancel(
        &mut self,
        req: &Request,
        key: &TsxKey,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let invite = self.tx_index.get(&key.with_method(Method::Invite)).copied();
        let Some(id) = invite else {
            self.respond_status(req, 481, &[], source, transport, now);
            return;
        };
        self.respond_status(req, 200, &[], source, transport, now);
        let Some(call) = self.txs.get(&id).and_then(|e| e.call) else {
            return;
        };
        if self
            .calls
            .get(&call)
            .is_some_and(|c| c.phase == super::dialog::Phase::Ringing)
        {
            self.finish_ringing(call, 487, None, &[], now);
            self.emit(call, CallEvent::Cancelled);
        }
    }

    fn on_in_dialog(
        &mut self,
        req: Request,
        local_tag: &str,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let Some(call) = self.dialog_call(&req, local_tag) else {
            self.respond_status(&req, 481, &[], source, transport, now);
            return;
        };
        let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(c) = self.calls.get_mut(&call) {
            // RFC 3261 §12.2.2: lower CSeq than the last request is out of order.
            if seq <= c.remote_cseq && c.remote_cseq != 0 {
                self.respond_status(
                    &req,
                    500,
                    &[(HeaderName::RetryAfter, "1".to_owned())],
                    source,
                    transport,
                    now,
                );
                return;
            }
            c.remote_cseq = seq;
        }
        match req.method {
            Method::Bye => {
                let resp = Response::for_request(&req, 200, None);
                self.respond_new(&req, &resp, source, transport, None, now);
                self.remove_call(call);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::RemoteBye,
                    },
                );
            }
            Method::Invite => self.on_reinvite(call, req, source, transport, now),
            Method::Info | Method::Options => {
                let resp = Response::for_request(&req, 200, None);
                self.respond_new(&req, &resp, source, transport, None, now);
            }
            _ => self.respond_status(
                &req,
                501,
                &[(HeaderName::Allow, ALLOW.to_owned())],
                source,
                transport,
                now,
            ),
        }
    }
}

/// RFC 3261 §18.2.1 / RFC 3581: record the packet's source in the top Via so responses go
/// back where the request came from, through NATs.
fn stamp_via(req: &mut Request, source: SocketAddr) {
    let Some(raw) = req.headers.get(&HeaderName::Via) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return;
    };
    let first = split_list(text).next().unwrap_or_default();
    let Ok(via) = crate::message::Via::parse(first) else {
        return;
    };
    let ip = source.ip().to_string();
    let wants_rport = via.rport() == Some(None);
    let host_matches = via.host.trim_start_matches('[').trim_end_matches(']') == ip;
    if host_matches && !wants_rport {
        return;
    }
    let mut stamped = String::with_capacity(text.len() + 48);
    for param in first.split(';') {
        if stamped.is_empty() {
            stamped.push_str(param);
            continue;
        }
        let name = param.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received") {
            continue;
        }
        stamped.push(';');
        stamped.push_str(param);
    }
    if !host_matches || wants_rport {
        stamped.push_str(";received=");
        stamped.push_str(&ip);
    }
    if wants_rport {
        stamped.push_str(&format!(";rport={}", source.port()));
    }
    // Keep the other comma-joined Via values of this line.
    let offset = first.as_ptr() as usize - text.as_ptr() as usize;
    stamped.push_str(&text[offset + first.len()..]);
    req.headers.replace_first(&HeaderName::Via, stamped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_datagram, Message};
    use bytes::Bytes;

    fn req(via: &str) -> Request {
        let wire = format!("OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n");
        match parse_datagram(Bytes::from(wire)) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rport_and_received_are_filled_in() {
        let mut r =
            req("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport, SIP/2.0/UDP p;branch=z9hG4bKb");
        stamp_via(&mut r, "192.0.2.7:40000".parse().unwrap());
        let v = r.headers.via_top().unwrap();
        assert_eq!(v.received(), Some("192.0.2.7"));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(r.headers.vias().count(), 2);
    }

    #[test]
    fn matching_host_without_rport_is_untouched() {
        let mut r = req("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKa");
        stamp_via(&mut r, "192.0.2.7:5060".parse().unwrap());
        assert_eq!(
            r.headers.get_str(&HeaderName::Via),
            Some("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKa")
        );
    }
}
