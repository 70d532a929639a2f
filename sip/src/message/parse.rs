//! Wire parser. Framing first (start line, header lines with folding, Content-Length), typed
//! header parsing later and only on demand. Never panics on input: every failure is a
//! [`ParseError`], and when the start line and headers were readable the error carries them so
//! the caller can still answer a request with 400 (or 505 for a foreign SIP version).

use bytes::{Bytes, BytesMut};

use super::header_name::HeaderName;
use super::headers::Headers;
use super::method::Method;
use super::text::{is_token_char, parse_u32};
use super::{Message, Request, Response};

/// Largest message accepted on any transport (and the TCP framing buffer bound).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("malformed start line")]
    StartLine,
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    #[error("malformed header line")]
    HeaderLine,
    #[error("missing end of headers")]
    Incomplete,
    #[error("invalid or conflicting Content-Length")]
    ContentLength,
    #[error("body shorter than Content-Length")]
    BodyTruncated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    /// Start line and headers (no body) when they were readable: enough to answer a request.
    pub head: Option<Box<Message>>,
}

impl ParseError {
    fn bare(kind: ParseErrorKind) -> ParseError {
        ParseError { kind, head: None }
    }
}

/// Parses one message from a datagram. Octets after Content-Length are ignored (RFC 3261
/// §18.3); without Content-Length the body is the rest of the datagram.
pub fn parse_datagram(buf: Bytes) -> Result<Message, ParseError> {
    parse_message(buf, false)
}

fn parse_message(buf: Bytes, require_content_length: bool) -> Result<Message, ParseError> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::bare(ParseErrorKind::TooLarge));
    }
    let start = skip_leading_newlines(&buf);
    let (head_end, body_start) =
        find_head_end(&buf, start).ok_or(ParseError::bare(ParseErrorKind::Incomplete))?;
    let (start_line, headers) = parse_head(&buf, start, head_end).map_err(ParseError::bare)?;
    let head = |start_line: StartLine, headers: Headers| match start_line {
        StartLine::Request { method, uri, .. } => Message::Request(Request {
            method,
            uri,
            headers,
            body: Bytes::new(),
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers,
            body: Bytes::new(),
        }),
    };
    if let StartLine::Request {
        version_ok: false, ..
    } = start_line
    {
        return Err(ParseError {
            kind: ParseErrorKind::UnsupportedVersion,
            head: Some(Box::new(head(start_line, headers))),
        });
    }
    let fail = |kind, start_line, headers| {
        Err(ParseError {
            kind,
            head: Some(Box::new(head(start_line, headers))),
        })
    };
    let body_end = match content_length(&headers) {
        Ok(Some(len)) => body_start
            .checked_add(len as usize)
            .filter(|&end| end <= buf.len()),
        Ok(None) if !require_content_length => Some(buf.len()),
        _ => return fail(ParseErrorKind::ContentLength, start_line, headers),
    };
    let Some(body_end) = body_end else {
        return fail(ParseErrorKind::BodyTruncated, start_line, headers);
    };
    let mut msg = head(start_line, headers);
    let body = buf.slice(body_start..body_end);
    match &mut msg {
        Message::Request(r) => r.body = body,
        Message::Response(r) => r.body = body,
    }
    Ok(msg)
}

/// RFC 3261 §7.5: CRLFs before the start line are ignored (also keep-alives on streams).
fn skip_leading_newlines(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len())
}

/// Finds the empty line: returns (end of the last header line, start of the body).
fn find_head_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let line_end = if i > from && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            let next = i + 1;
            if buf.get(next) == Some(&b'\n') {
                return Some((line_end, next + 1));
            }
            if buf.get(next) == Some(&b'\r') && buf.get(next + 1) == Some(&b'\n') {
                return Some((line_end, next + 2));
            }
        }
        i += 1;
    }
    None
}

enum StartLine {
    Request {
        method: Method,
        uri: Bytes,
        version_ok: bool,
    },
    Response {
        status: u16,
        reason: Bytes,
    },
}

/// Iterates lines of `buf[from..to]` as (start, end) without their line terminators.
fn lines(buf: &[u8], from: usize, to: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = from;
    std::iter::from_fn(move || {
        if pos >= to {
            return None;
        }
        let start = pos;
        let nl = buf[start..to]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| start + p)
            .unwrap_or(to);
        pos = nl + 1;
        let end = if nl > start && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        Some((start, end))
    })
}

fn parse_head(buf: &Bytes, from: usize, to: usize) -> Result<(StartLine, Headers), ParseErrorKind> {
    let mut it = lines(buf, from, to).peekable();
    let (s, e) = it.next().ok_or(ParseErrorKind::StartLine)?;
    let start_line = parse_start_line(buf, s, e)?;
    let mut headers = Headers::with_capacity(16);
    while let Some((s, e)) = it.next() {
        let line = &buf[s..e];
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or(ParseErrorKind::HeaderLine)?;
        let name = trim_end_ws(&line[..colon]);
        if name.is_empty() || !name.iter().all(|&c| is_token_char(c)) {
            return Err(ParseErrorKind::HeaderLine);
        }
        let name = HeaderName::from_wire(name);
        let value_start = s + colon + 1;
        // Folded continuation lines (start with SP/HT) join the value with one space.
        let mut folded: Option<Vec<u8>> = None;
        while let Some(&(cs, ce)) = it.peek() {
            if !matches!(buf.get(cs), Some(b' ' | b'\t')) {
                break;
            }
            let acc = folded.get_or_insert_with(|| trim_ws(&buf[value_start..e]).to_vec());
            let piece = trim_ws(&buf[cs..ce]);
            if !piece.is_empty() {
                if !acc.is_empty() {
                    acc.push(b' ');
                }
                acc.extend_from_slice(piece);
            }
            it.next();
        }
        let value = match folded {
            Some(v) => Bytes::from(v),
            None => {
                let (vs, ve) = trim_range(buf, value_start, e);
                buf.slice(vs..ve)
            }
        };
        headers.push(name, value);
    }
    Ok((start_line, headers))
}

fn parse_start_line(buf: &Bytes, s: usize, e: usize) -> Result<StartLine, ParseErrorKind> {
    // Trailing whitespace after the version is tolerated (RFC 4475 §3.1.2.10 allows leniency).
    let line = trim_end_ws(&buf[s..e]);
    let e = s + line.len();
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let code_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let code = std::str::from_utf8(&rest[..code_len]).map_err(|_| ParseErrorKind::StartLine)?;
        if code.len() != 3 {
            return Err(ParseErrorKind::StartLine);
        }
        let status = parse_u32(code).map_err(|_| ParseErrorKind::StartLine)? as u16;
        if !(100..=699).contains(&status) {
            return Err(ParseErrorKind::StartLine);
        }
        let reason_start = (s + 8 + code_len + 1).min(e);
        return Ok(StartLine::Response {
            status,
            reason: buf.slice(reason_start..e),
        });
    }
    let sp1 = line
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseErrorKind::StartLine)?;
    let sp2 = line
        .iter()
        .rposition(|&c| c == b' ')
        .ok_or(ParseErrorKind::StartLine)?;
    if sp2 <= sp1 + 1 {
        return Err(ParseErrorKind::StartLine);
    }
    let method = Method::from_wire(&line[..sp1]).ok_or(ParseErrorKind::StartLine)?;
    let uri = &line[sp1 + 1..sp2];
    // One SP between elements and no LWS inside the Request-URI (RFC 4475 lwsstart, lwsruri).
    if uri.iter().any(|&c| c <= b' ' || c >= 0x7f) {
        return Err(ParseErrorKind::StartLine);
    }
    let version = &line[sp2 + 1..];
    let version_ok = version == b"SIP/2.0";
    if !version_ok && !is_sip_version(version) {
        return Err(ParseErrorKind::StartLine);
    }
    Ok(StartLine::Request {
        method,
        uri: buf.slice(s + sp1 + 1..s + sp2),
        version_ok,
    })
}

fn is_sip_version(v: &[u8]) -> bool {
    let Some(rest) = v.strip_prefix(b"SIP/") else {
        return false;
    };
    let mut parts = rest.split(|&c| c == b'.');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
        if !a.is_empty() && !b.is_empty() && a.iter().chain(b).all(u8::is_ascii_digit))
}

/// The single Content-Length value; several lines must agree (RFC 4475 mcl01 otherwise).
fn content_length(headers: &Headers) -> Result<Option<u32>, ()> {
    let mut found = None;
    for v in headers.get_all(&HeaderName::ContentLength) {
        let text = std::str::from_utf8(v).map_err(|_| ())?;
        let n = parse_u32(text).map_err(|_| ())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&c| !is_ws(c)).map_or(0, |p| p + 1);
    &s[..end]
}

fn trim_ws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !is_ws(c)).unwrap_or(s.len());
    trim_end_ws(&s[start..])
}

fn trim_range(buf: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && is_ws(buf[s]) {
        s += 1;
    }
    while e > s && is_ws(buf[e - 1]) {
        e -= 1;
    }
    (s, e)
}

/// Splits a TCP byte stream into messages by Content-Length (mandatory on streams), bounded by
/// [`MAX_MESSAGE_SIZE`]. A framing error is fatal for the connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
}

impl StreamFramer {
    pub fn new() -> StreamFramer {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` while more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ParseError> {
        let skip = skip_leading_newlines(&self.buf);
        let _ = self.buf.split_to(skip);
        let Some((head_end, body_start)) = find_head_end(&self.buf, 0) else {
            return if self.buf.len() > MAX_MESSAGE_SIZE {
                Err(ParseError::bare(ParseErrorKind::TooLarge))
            } else {
                Ok(None)
            };
        };
        let len = head_content_length(&self.buf[..head_end])
            .ok_or(ParseError::bare(ParseErrorKind::ContentLength))?;
        let total = body_start + len;
        if total > MAX_MESSAGE_SIZE {
            return Err(ParseError::bare(ParseErrorKind::TooLarge));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        parse_message(frame, true).map(Some)
    }
}

/// Content-Length read straight from raw header lines, to know how many bytes to wait for.
fn head_content_length(head: &[u8]) -> Option<usize> {
    lines(head, 0, head.len()).skip(1).find_map(|(s, e)| {
        let line = &head[s..e];
        let colon = line.iter().position(|&c| c == b':')?;
        let name = trim_ws(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = std::str::from_utf8(trim_ws(&line[colon + 1..])).ok()?;
            parse_u32(v).ok().map(|n| n as usize)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn stream_framer_splits_and_waits() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        f.push(&OPTIONS[..30]);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&OPTIONS[30..]);
        f.push(OPTIONS);
        let m = f.next_message().unwrap().unwrap();
        assert_eq!(m.body().as_ref(), b"body");
        assert!(f.next_message().unwrap().is_some());
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn stream_requires_content_length_and_bounds_size() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(
            f.next_message().unwrap_err().kind,
            ParseErrorKind::ContentLength
        );
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_message().unwrap_err().kind, ParseErrorKind::TooLarge);
    }

    #[test]
    fn never_panics_on_truncations() {
        for n in 0..OPTIONS.len() {
            let _ = parse_datagram(Bytes::copy_from_slice(&OPTIONS[..n]));
        }
    }

    #[test]
    fn response_without_reason() {
        let m = parse_datagram(Bytes::from_static(b"SIP/2.0 100\r\nCall-ID: a\r\n\r\n")).unwrap();
        assert!(matches!(m, Message::Response(Response { status: 100, .. })));
    }
}
