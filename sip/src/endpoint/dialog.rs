//! Per-call dialog state (RFC 3261 §12) and the requests sent inside a dialog.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::types::Transport;
use crate::auth::Credentials;
use crate::message::{new_branch, HeaderName, Method, Request};
use crate::sdp::LocalMedia;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// UAS: INVITE received, waiting for the application.
    Ringing,
    /// UAS: 2xx sent, waiting for ACK.
    Answered,
    /// UAC: INVITE sent, no final response yet.
    Calling,
    Established,
}

#[derive(Debug)]
pub struct Call {
    pub role: Role,
    pub phase: Phase,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our and the peer's addresses as name-addr header values, without tags.
    pub local_uri: String,
    pub remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact URI).
    pub remote_target: String,
    /// Route set as header values, in the order they go in Route.
    pub route_set: Vec<Bytes>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub peer: SocketAddr,
    pub transport: Transport,
    /// Transaction of the current INVITE (server or client).
    pub invite_tsx: Option<u64>,
    /// CSeq of the INVITE whose 2xx we wait an ACK for (UAS).
    pub invite_cseq: u32,
    pub media: Option<LocalMedia>,
    pub sdp_session: u64,
    pub sdp_version: u64,
    /// A re-INVITE we sent is waiting for its final response.
    pub reinvite_pending: bool,
    /// When the call was set up (ACK received or sent), for `max_call_duration`.
    pub established_at: Option<Instant>,
    /// UAC only.
    pub outbound: Option<Box<Outbound>>,
    /// UAS only, until answered or rejected.
    pub ringing: Option<Box<super::uas::Ringing>>,
}

/// UAC-only state: what a digest retry and CANCEL need.
#[derive(Debug)]
pub struct Outbound {
    pub invite: Request,
    pub credentials: Option<Credentials>,
    pub auth_tried: bool,
    pub cancel_wanted: bool,
    pub got_provisional: bool,
}

impl Call {
    /// A new in-dialog request (RFC 3261 §12.2.1.1), loose routing only.
    pub fn request(&mut self, method: Method, via_host: &str, contact: &str) -> Request {
        if method != Method::Ack {
            self.local_cseq += 1;
        }
        let mut r = Request::new(method.clone(), Bytes::from(self.remote_target.clone()));
        let h = &mut r.headers;
        h.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {via_host};branch={};rport",
                self.transport.as_str(),
                new_branch()
            ),
        );
        h.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        h.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        let to = match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.remote_uri),
            None => self.remote_uri.clone(),
        };
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, self.call_id.clone());
        let seq = if method == Method::Ack {
            self.invite_cseq
        } else {
            self.local_cseq
        };
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        for route in &self.route_set {
            h.push(HeaderName::Route, route.clone());
        }
        h.push(HeaderName::Contact, contact.to_owned());
        r
    }
}
