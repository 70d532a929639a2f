//! Request methods and the CSeq header (RFC 3261 §20.16).

use bytes::Bytes;

use super::text::{is_token_char, parse_u32, SyntaxError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    /// An extension method (case-sensitive, RFC 3261 §7.1).
    Other(Bytes),
}

impl Method {
    /// Methods are case-sensitive tokens; returns `None` for a non-token.
    pub fn from_wire(m: &[u8]) -> Option<Method> {
        if m.is_empty() || !m.iter().all(|&c| is_token_char(c)) {
            return None;
        }
        Some(match m {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            other => Method::Other(Bytes::copy_from_slice(other)),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Options => b"OPTIONS",
            Method::Register => b"REGISTER",
            Method::Info => b"INFO",
            Method::Prack => b"PRACK",
            Method::Update => b"UPDATE",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Other(b) => b,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, SyntaxError> {
        let s = s.trim();
        let split = s.find([' ', '\t']).ok_or(SyntaxError::CSeq)?;
        // RFC 3261: the sequence number must be less than 2**31.
        let seq = parse_u32(&s[..split]).map_err(|_| SyntaxError::CSeq)?;
        if seq >= 1 << 31 {
            return Err(SyntaxError::CSeq);
        }
        let method = Method::from_wire(s[split..].trim().as_bytes()).ok_or(SyntaxError::CSeq)?;
        Ok(CSeq { seq, method })
    }
}

impl std::fmt::Display for CSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_with_leading_zeros_and_folding_whitespace() {
        assert_eq!(
            CSeq::parse("0009 \t INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
    }

    #[test]
    fn cseq_out_of_range_or_bad_method() {
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1 IN<VITE").is_err());
        assert!(CSeq::parse("INVITE").is_err());
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_wire(b"INVITE"), Some(Method::Invite));
        assert!(matches!(
            Method::from_wire(b"invite"),
            Some(Method::Other(_))
        ));
    }
}
