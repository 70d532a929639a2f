//! SIP/SIPS URIs (RFC 3261 §19.1), borrowed from the header text. Other schemes (tel:, unknown
//! ones from RFC 4475 `unkscm`) are kept opaque: the stack only routes on SIP URIs.

use std::borrow::Cow;

use super::text::{parse_params, Param, SyntaxError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Other(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme<'a>,
    /// User part, still %-escaped.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host name, IPv4 address or bracketed IPv6 reference; empty for opaque schemes.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Raw `;params` text after the host (without the first `;`).
    pub params: &'a str,
    /// Raw `?headers` text (without the `?`).
    pub headers: Option<&'a str>,
    /// Everything after `scheme:` for non-SIP schemes.
    pub opaque: &'a str,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, SyntaxError> {
        if s.is_empty()
            || s.bytes()
                .any(|c| c <= b' ' || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(SyntaxError::Uri);
        }
        let colon = s.find(':').ok_or(SyntaxError::Uri)?;
        let scheme_text = &s[..colon];
        let rest = &s[colon + 1..];
        if !is_scheme(scheme_text) || rest.is_empty() {
            return Err(SyntaxError::Uri);
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else {
            return Ok(Uri {
                scheme: Scheme::Other(scheme_text),
                user: None,
                password: None,
                host: "",
                port: None,
                params: "",
                headers: None,
                opaque: rest,
            });
        };
        // The user part may itself contain ';' '?' ':' (RFC 4475 intmeth), so the userinfo
        // ends at the last '@'.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.find(':') {
                Some(c) => (Some(&ui[..c]), Some(&ui[c + 1..])),
                None => (Some(ui), None),
            },
            None => (None, None),
        };
        if user == Some("") {
            return Err(SyntaxError::Uri);
        }
        let (before_headers, headers) = match hostpart.find('?') {
            Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
            None => (hostpart, None),
        };
        let (hostport, params) = match before_headers.find(';') {
            Some(sc) => (&before_headers[..sc], &before_headers[sc + 1..]),
            None => (before_headers, ""),
        };
        let (host, port) = split_hostport(hostport)?;
        if !params.is_empty() {
            parse_params(params).map_err(|_| SyntaxError::Uri)?;
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            opaque: "",
        })
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The user part with %HH escapes decoded (the DID of an inbound INVITE).
    pub fn user_unescaped(&self) -> Option<Cow<'a, str>> {
        self.user.map(percent_decode)
    }

    pub fn params(&self) -> impl Iterator<Item = Param<'a>> {
        // Validated in `parse`, so the fallback is never taken for a parsed URI.
        parse_params(self.params).unwrap_or_default().into_iter()
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        if self.params.is_empty() {
            return None;
        }
        self.params()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphabetic())
        && bytes.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// Splits `host[:port]`, accepting `[v6]` references.
pub fn split_hostport(s: &str) -> Result<(&str, Option<u16>), SyntaxError> {
    let (host, port_text) = if s.starts_with('[') {
        let end = s.find(']').ok_or(SyntaxError::Uri)?;
        let host = &s[..=end];
        match &s[end + 1..] {
            "" => (host, None),
            tail => (host, Some(tail.strip_prefix(':').ok_or(SyntaxError::Uri)?)),
        }
    } else {
        match s.find(':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    let valid_host = if host.starts_with('[') {
        host.len() > 2
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    };
    if !valid_host {
        return Err(SyntaxError::Uri);
    }
    let port = match port_text {
        Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| SyntaxError::Uri)?)
        }
        Some(_) => return Err(SyntaxError::Uri),
        None => None,
    };
    Ok((host, port))
}

pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return s.into();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u = Uri::parse("sip:+12025550142@[2001:db8::10]:5070;transport=tcp;lr?X=1").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("+12025550142"));
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("X=1"));
    }

    #[test]
    fn user_with_unusual_characters_and_password() {
        let u = Uri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, "example.com");
    }

    #[test]
    fn escapes_decode_in_user() {
        let u = Uri::parse("sip:%75se%72@example.com").unwrap();
        assert_eq!(u.user_unescaped().unwrap(), "user");
    }

    #[test]
    fn rejects_spaces_brackets_and_bad_ports() {
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@example.com:99999").is_err());
        assert!(Uri::parse("sip:@example.com").is_err());
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme, Scheme::Other("nobodyKnowsThisScheme"));
        assert!(!u.is_sip());
    }
}
