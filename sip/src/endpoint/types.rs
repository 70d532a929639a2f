//! The user-agent API's public types: what the telephony layer receives and sends.

use std::net::SocketAddr;

use bytes::Bytes;

use super::protect::RateLimit;
use crate::auth::{Credentials, DigestServer};
use crate::sdp::{LocalMedia, Negotiated, SessionDescription};
use crate::transaction::TimerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// A call leg's handle, unique for the endpoint's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address advertised in Via and Contact (the `[sip] public_addr` with the listen port).
    pub advertised: SocketAddr,
    pub timers: TimerConfig,
    /// Sent as User-Agent/Server.
    pub user_agent: String,
    /// `None` disables rate limiting (benchmarks, a trusted proxy in front).
    pub rate_limit: Option<RateLimit>,
    /// Digest realm and secret for [`Endpoint::challenge`](super::Endpoint::challenge), and
    /// the passwords of users allowed to authenticate.
    pub auth: Option<ServerAuth>,
    /// Above this many live transactions, new out-of-dialog requests get a stateless
    /// 503 + Retry-After: memory stays bounded under overload (~1 KiB per transaction).
    pub max_transactions: usize,
    /// An inbound call the application neither answers nor rejects within this time gets 480
    /// and [`EndReason::Unanswered`]: a forgotten call cannot pin memory.
    pub answer_timeout: std::time::Duration,
    /// Established calls older than this are ended with BYE (`EndReason::MaxDuration`), so a
    /// dialog whose BYE was lost cannot live forever. `None` disables it.
    pub max_call_duration: Option<std::time::Duration>,
}

#[derive(Debug, Clone)]
pub struct ServerAuth {
    pub digest: DigestServer,
    /// username → password.
    pub users: Vec<(String, String)>,
}

impl EndpointConfig {
    pub fn new(advertised: SocketAddr) -> EndpointConfig {
        EndpointConfig {
            advertised,
            timers: TimerConfig::default(),
            user_agent: "VoxBridge".to_owned(),
            rate_limit: Some(RateLimit::default()),
            auth: None,
            max_transactions: 500_000,
            answer_timeout: std::time::Duration::from_secs(180),
            max_call_duration: Some(std::time::Duration::from_secs(4 * 3600)),
        }
    }
}

/// Digest check of an incoming INVITE's Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStatus {
    /// No credentials (or no server auth configured).
    None,
    Authenticated(String),
    /// Right credentials on an expired nonce: [`challenge`](super::Endpoint::challenge) again.
    Stale,
    Rejected,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    pub call: CallRef,
    /// The SIP Call-ID, for logs and correlation with the peer.
    pub call_id: String,
    /// Request-URI user part, %-decoded (the dialled number as sent; normalize to E.164 above).
    pub did: String,
    pub request_uri: String,
    /// From and To header values as received.
    pub from: String,
    pub to: String,
    /// From URI user part, %-decoded (caller number).
    pub caller: Option<String>,
    pub source: SocketAddr,
    pub transport: Transport,
    pub offer: Option<SessionDescription>,
    pub user_agent: Option<String>,
    pub auth: AuthStatus,
}

/// An outbound call request.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    /// Where to send the INVITE (the trunk).
    pub peer: SocketAddr,
    pub transport: Transport,
    /// Request-URI and To, e.g. `sip:+12025550142@carrier.example`.
    pub target: String,
    /// From URI, e.g. `sip:+12025550100@voxbridge.example`.
    pub from: String,
    pub credentials: Option<Credentials>,
    pub media: LocalMedia,
    /// Extra headers for the INVITE (e.g. the application's call id, for the carrier's logs).
    pub headers: Vec<(crate::message::HeaderName, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// We hung up.
    LocalBye,
    /// Our 2xx was never ACKed (RFC 3261 §13.3.1.4); a BYE was sent.
    AckTimeout,
    /// Inbound call left unanswered for `answer_timeout`; 480 was sent.
    Unanswered,
    /// Up longer than `max_call_duration`; a BYE was sent.
    MaxDuration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// Outbound: a provisional response (180, 183, ...).
    Progress {
        status: u16,
    },
    /// Outbound: 2xx with an acceptable answer (ACK already sent).
    Answered {
        negotiated: Negotiated,
    },
    /// Outbound: final failure, `408` on timeout, `488` when the answer has no usable codec.
    Failed {
        status: u16,
        reason: String,
    },
    /// Inbound: the ACK for our 2xx arrived; the call is up.
    Confirmed,
    /// Inbound, before answer: the caller sent CANCEL (487 already sent).
    Cancelled,
    /// Our re-INVITE ([`update_media`](super::Endpoint::update_media)) was refused (491
    /// glare, 488, ...); the call goes on with the previous media.
    UpdateRejected {
        status: u16,
    },
    /// A re-INVITE changed the media (hold/unhold): theirs (already answered) or ours (answered).
    MediaUpdated {
        negotiated: Negotiated,
    },
    Ended {
        reason: EndReason,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Incoming(Box<IncomingCall>),
    Call(CallRef, CallEvent),
}

/// Something to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub destination: SocketAddr,
    pub payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no such call, or not in a state that allows this")]
    NoSuchCall,
    #[error("no common codec (488 sent)")]
    NoCommonCodec,
    #[error("the offer has no usable audio stream (488 sent)")]
    BadOffer,
    #[error("status code not allowed here")]
    BadStatus,
    #[error("server auth not configured")]
    NoAuth,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    /// Unparseable or unanswerable messages dropped.
    pub malformed_dropped: u64,
    /// Requests answered 400/505/416/513 without processing.
    pub malformed_answered: u64,
    pub scanner_dropped: u64,
    pub rate_limited: u64,
    /// New requests refused with 503 because `max_transactions` was reached.
    pub overload_rejected: u64,
    pub transactions: usize,
    pub calls: usize,
    /// Of `calls`: inbound waiting for the application, answered waiting for ACK, and up.
    pub calls_ringing: usize,
    pub calls_answered: usize,
    pub calls_established: usize,
}
