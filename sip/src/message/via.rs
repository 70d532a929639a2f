//! The Via header (RFC 3261 §20.42) with the parameters transactions and responses need:
//! branch, rport (RFC 3581) and received.

use super::text::{find_params_start, parse_params, Param, SyntaxError};
use super::uri::split_hostport;

/// RFC 3261 branch prefix that marks transaction-id-capable branches.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// `UDP`, `TCP`, `TLS`, ... as received.
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    params: &'a str,
}

impl<'a> Via<'a> {
    /// Parses one via-parm (one element of a comma-separated Via value).
    pub fn parse(s: &'a str) -> Result<Via<'a>, SyntaxError> {
        let mut parts = s.splitn(3, '/');
        let (name, version, rest) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(v), Some(r)) => (n.trim(), v.trim(), r.trim_start()),
            _ => return Err(SyntaxError::Via),
        };
        // Other versions parse, so a request can still be answered with 505 (RFC 4475 badvers).
        if !name.eq_ignore_ascii_case("SIP") || !is_version(version) {
            return Err(SyntaxError::Via);
        }
        let t_end = rest.find([' ', '\t']).ok_or(SyntaxError::Via)?;
        let transport = &rest[..t_end];
        if transport.is_empty() || !transport.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SyntaxError::Via);
        }
        let rest = rest[t_end..].trim();
        let (sent_by, params) = match find_params_start(rest) {
            Some(i) => (rest[..i].trim(), &rest[i + 1..]),
            None => (rest, ""),
        };
        // LWS is allowed around the ':' of sent-by only in theory; nobody sends it.
        let (host, port) = split_hostport(sent_by).map_err(|_| SyntaxError::Via)?;
        if !params.is_empty() {
            parse_params(params).map_err(|_| SyntaxError::Via)?;
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn params(&self) -> impl Iterator<Item = Param<'a>> {
        parse_params(self.params).unwrap_or_default().into_iter()
    }

    fn param(&self, name: &str) -> Option<Option<&'a str>> {
        if self.params.is_empty() {
            return None;
        }
        self.params()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// `Some(None)` when the client asked for rport (RFC 3581) without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|v| v.parse().ok()))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.param("received").flatten()
    }

    /// The branch when it carries the RFC 3261 magic cookie (a usable transaction id).
    pub fn rfc3261_branch(&self) -> Option<&'a str> {
        self.branch()
            .filter(|b| b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len())
    }
}

fn is_version(v: &str) -> bool {
    let mut parts = v.split('.');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
        if !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lws_everywhere() {
        let v = Via::parse("SIP  /   2.0 /UDP  192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert_eq!(v.rfc3261_branch(), None);
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn rport_and_received() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;rport;received=192.0.2.1",
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.1"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/x/UDP h").is_err());
        assert!(Via::parse("").is_err());
    }
}
