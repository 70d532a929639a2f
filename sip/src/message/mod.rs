//! SIP messages: a hand-written parser that keeps header values as slices of the received
//! datagram (`Bytes`), typed accessors that parse on demand, and a serializer.

mod build;
mod header_name;
mod headers;
mod method;
mod name_addr;
mod parse;
mod serialize;
mod text;
mod triage;
mod typed;
mod uri;
mod validate;
mod via;

pub use build::{new_branch, new_call_id, new_tag, random_hex};
pub use header_name::HeaderName;
pub use headers::{Header, Headers};
pub use method::{CSeq, Method};
pub use name_addr::NameAddr;
pub use parse::{parse_datagram, ParseError, ParseErrorKind, StreamFramer, MAX_MESSAGE_SIZE};
pub use text::{split_list, unquote, Param, SyntaxError};
pub use triage::{triage, DropReason, Inbound};
pub use typed::HeaderError;
pub use uri::{percent_decode, Scheme, Uri};
pub use validate::Rejection;
pub use via::{Via, MAGIC_COOKIE};

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Request-URI text; parse with [`Request::uri`].
    pub uri: Bytes,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: Bytes,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Request {
    pub fn new(method: Method, uri: impl Into<Bytes>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::with_capacity(12),
            body: Bytes::new(),
        }
    }

    pub fn uri(&self) -> Result<Uri<'_>, SyntaxError> {
        let text = std::str::from_utf8(&self.uri).map_err(|_| SyntaxError::Encoding)?;
        Uri::parse(text)
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<Bytes>) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::with_capacity(10),
            body: Bytes::new(),
        }
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

/// Canonical reason phrases for the status codes the stack sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}
