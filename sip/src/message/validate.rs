//! Request checks a UAS makes before handing a request to a transaction (RFC 3261 §8.2):
//! mandatory headers present, parseable and not duplicated, CSeq method matching the
//! Request-URI's method, a usable Request-URI. Each failure names the response to send.

use super::header_name::HeaderName;
use super::Request;
use super::{Method, Scheme};

/// What to answer instead of processing the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> Rejection {
    Rejection {
        status: 400,
        reason,
    }
}

impl Request {
    /// Whether a response can be built and routed: a readable top Via plus the headers a
    /// response copies (Call-ID, CSeq, From, To — copied verbatim, so they need not parse).
    pub fn is_answerable(&self) -> bool {
        let h = &self.headers;
        h.via_top().is_ok()
            && [
                HeaderName::CallId,
                HeaderName::CSeq,
                HeaderName::From,
                HeaderName::To,
            ]
            .iter()
            .all(|n| h.get(n).is_some())
            && self.method != Method::Ack
    }

    pub fn validate(&self) -> Result<(), Rejection> {
        let h = &self.headers;
        for (name, label) in [
            (HeaderName::CallId, "Bad Call-ID"),
            (HeaderName::CSeq, "Bad CSeq"),
            (HeaderName::From, "Bad From"),
            (HeaderName::To, "Bad To"),
            (HeaderName::MaxForwards, "Bad Max-Forwards"),
            (HeaderName::ContentType, "Bad Content-Type"),
        ] {
            if h.count(&name) > 1 {
                return Err(bad(label));
            }
        }
        for via in h.vias() {
            via.map_err(|_| bad("Bad Via"))?;
        }
        h.call_id().map_err(|_| bad("Bad Call-ID"))?;
        let cseq = h.cseq().map_err(|_| bad("Bad CSeq"))?;
        if cseq.method != self.method {
            return Err(bad("CSeq Method Mismatch"));
        }
        h.from_hdr().map_err(|_| bad("Bad From"))?;
        h.to_hdr().map_err(|_| bad("Bad To"))?;
        if h.get(&HeaderName::MaxForwards).is_some() {
            h.max_forwards().map_err(|_| bad("Bad Max-Forwards"))?;
        }
        for raw in h.get_all(&HeaderName::Contact) {
            let text = std::str::from_utf8(raw).map_err(|_| bad("Bad Contact"))?;
            if text.trim() != "*" {
                for item in super::split_list(text) {
                    super::NameAddr::parse(item).map_err(|_| bad("Bad Contact"))?;
                }
            }
        }
        let uri = self.uri().map_err(|_| bad("Bad Request-URI"))?;
        match uri.scheme {
            Scheme::Sip | Scheme::Sips => {}
            Scheme::Other(_) => {
                return Err(Rejection {
                    status: 416,
                    reason: "Unsupported URI Scheme",
                })
            }
        }
        if uri.headers.is_some() {
            return Err(bad("Headers Not Allowed In Request-URI"));
        }
        Ok(())
    }
}
