//! Building messages: responses copied from requests (RFC 3261 §8.2.6), the ACK for a non-2xx
//! final response (§17.1.1.3), CANCEL (§9.1), and random tags/branches.

use bytes::Bytes;

use super::header_name::HeaderName;
use super::via::MAGIC_COOKIE;
use super::{reason_phrase, Method, Request, Response};

/// Random lowercase hex: such tags can never spell a header name (SIPp finds `CSeq` by text
/// search, so a tag containing "CSeq" would count as a failed call in benchmarks).
pub fn random_hex(len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| HEX[fastrand::usize(..16)] as char)
        .collect()
}

pub fn new_tag() -> String {
    random_hex(16)
}

pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{}", random_hex(20))
}

pub fn new_call_id() -> String {
    random_hex(32)
}

impl Response {
    /// A response to `req` with its Vias, From, To, Call-ID and CSeq; `to_tag` is added to To
    /// unless it already has one.
    pub fn for_request(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
        let mut resp = Response::new(status, reason_phrase(status));
        let h = &req.headers;
        for v in h.get_all(&HeaderName::Via) {
            resp.headers.push(HeaderName::Via, v.clone());
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if let Some(v) = h.get(&name) {
                let value = match (&name, to_tag) {
                    (HeaderName::To, Some(tag)) if h.to_hdr().is_ok_and(|t| t.tag().is_none()) => {
                        let mut s = Vec::with_capacity(v.len() + tag.len() + 5);
                        s.extend_from_slice(v);
                        s.extend_from_slice(b";tag=");
                        s.extend_from_slice(tag.as_bytes());
                        Bytes::from(s)
                    }
                    _ => v.clone(),
                };
                resp.headers.push(name, value);
            }
        }
        resp
    }
}

impl Request {
    /// The ACK a client INVITE transaction sends for a 300–699 response (same branch).
    pub fn ack_for_failure(&self, resp: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.uri.clone());
        let h = &self.headers;
        if let Some(v) = h.get(&HeaderName::Via) {
            let top = super::split_list(std::str::from_utf8(v).unwrap_or_default())
                .next()
                .unwrap_or_default();
            ack.headers
                .push(HeaderName::Via, Bytes::copy_from_slice(top.as_bytes()));
        }
        copy(h, &mut ack, &[HeaderName::MaxForwards, HeaderName::From]);
        if let Some(to) = resp.headers.get(&HeaderName::To) {
            ack.headers.push(HeaderName::To, to.clone());
        }
        copy(h, &mut ack, &[HeaderName::CallId]);
        let seq = h.cseq().map(|c| c.seq).unwrap_or(0);
        ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
        copy(h, &mut ack, &[HeaderName::Route]);
        ack
    }

    /// CANCEL for this (INVITE) request: same Request-URI, top Via, From, To, Call-ID, Route.
    pub fn cancel(&self) -> Request {
        let mut c = Request::new(Method::Cancel, self.uri.clone());
        let h = &self.headers;
        if let Some(v) = h.get(&HeaderName::Via) {
            let top = super::split_list(std::str::from_utf8(v).unwrap_or_default())
                .next()
                .unwrap_or_default();
            c.headers
                .push(HeaderName::Via, Bytes::copy_from_slice(top.as_bytes()));
        }
        copy(
            h,
            &mut c,
            &[
                HeaderName::MaxForwards,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
            ],
        );
        let seq = h.cseq().map(|c| c.seq).unwrap_or(0);
        c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
        copy(h, &mut c, &[HeaderName::Route]);
        c
    }
}

fn copy(from: &super::Headers, to: &mut Request, names: &[HeaderName]) {
    for name in names {
        for v in from.get_all(name) {
            to.headers.push(name.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_datagram, Message};

    #[test]
    fn tags_and_branches_are_lowercase_hex() {
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK"));
        assert!(b[7..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(new_tag()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let wire = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let Ok(Message::Request(req)) = parse_datagram(Bytes::from_static(wire)) else {
            panic!()
        };
        let resp = Response::for_request(&req, 486, Some("abc"));
        assert_eq!(resp.headers.count(&HeaderName::Via), 2);
        assert_eq!(resp.headers.to_hdr().unwrap().tag(), Some("abc"));
        let ack = req.ack_for_failure(&resp);
        assert_eq!(ack.headers.count(&HeaderName::Via), 1);
        assert_eq!(ack.headers.cseq().unwrap().method, Method::Ack);
        assert_eq!(ack.headers.to_hdr().unwrap().tag(), Some("abc"));
    }
}
