//! Serializer. Headers are written in order with canonical names; Content-Length always states
//! the real body length (written once, where the first one was, or last).

use bytes::{BufMut, Bytes, BytesMut};

use super::header_name::HeaderName;
use super::headers::Headers;
use super::{Message, Request, Response};

impl Request {
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(256 + self.headers.len() * 48 + self.body.len());
        out.put_slice(self.method.as_bytes());
        out.put_u8(b' ');
        out.put_slice(&self.uri);
        out.put_slice(b" SIP/2.0\r\n");
        write_headers(&self.headers, self.body.len(), out);
        out.put_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }
}

impl Response {
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(256 + self.headers.len() * 48 + self.body.len());
        out.put_slice(b"SIP/2.0 ");
        put_decimal(out, u32::from(self.status));
        out.put_u8(b' ');
        out.put_slice(&self.reason);
        out.put_slice(b"\r\n");
        write_headers(&self.headers, self.body.len(), out);
        out.put_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }
}

impl Message {
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

fn write_headers(headers: &Headers, body_len: usize, out: &mut BytesMut) {
    let mut wrote_length = false;
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            if !wrote_length {
                write_content_length(body_len, out);
                wrote_length = true;
            }
            continue;
        }
        out.put_slice(h.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(&h.value);
        out.put_slice(b"\r\n");
    }
    if !wrote_length {
        write_content_length(body_len, out);
    }
    out.put_slice(b"\r\n");
}

fn write_content_length(len: usize, out: &mut BytesMut) {
    out.put_slice(b"Content-Length: ");
    put_decimal(out, len as u32);
    out.put_slice(b"\r\n");
}

/// Writes `n` in decimal without a heap allocation (this runs for every message sent).
fn put_decimal(out: &mut BytesMut, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}
