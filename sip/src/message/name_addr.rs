//! `name-addr` / `addr-spec` with header parameters: From, To, Contact, Route, Record-Route.

use std::borrow::Cow;

use super::text::{
    find_params_start, is_token_char, parse_params, quoted_end, unquote, Param, SyntaxError,
};
use super::uri::Uri;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub display: Option<Cow<'a, str>>,
    /// The URI text exactly as received (without `<>`), for copying into new headers.
    pub uri_text: &'a str,
    pub uri: Uri<'a>,
    /// Raw header parameters (after the first `;` that follows the address).
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, SyntaxError> {
        let s = s.trim();
        let (display, rest) = if s.starts_with('"') {
            let end = quoted_end(s).ok_or(SyntaxError::Quote)?;
            (Some(unquote(&s[..end])), s[end..].trim_start())
        } else if let Some(lt) = s.find('<') {
            let name = s[..lt].trim();
            // Unquoted display names are tokens separated by LWS (RFC 4475 baddn rejects commas).
            if !name
                .bytes()
                .all(|c| is_token_char(c) || c == b' ' || c == b'\t')
            {
                return Err(SyntaxError::NameAddr);
            }
            (
                if name.is_empty() {
                    None
                } else {
                    Some(name.into())
                },
                &s[lt..],
            )
        } else {
            (None, s)
        };
        let (uri_text, after) = if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>').ok_or(SyntaxError::NameAddr)?;
            (&inner[..gt], &inner[gt + 1..])
        } else {
            if display.is_some() {
                return Err(SyntaxError::NameAddr);
            }
            // addr-spec: parameters belong to the header, and a URI with its own parameters,
            // headers or commas must be in angle brackets (RFC 3261 §20; RFC 4475 regbadct).
            let end = rest.find(';').unwrap_or(rest.len());
            let spec = rest[..end].trim_end();
            if spec.contains('?') || spec.contains(',') {
                return Err(SyntaxError::NameAddr);
            }
            (spec, &rest[end..])
        };
        let uri = Uri::parse(uri_text)?;
        let after = after.trim();
        let params = match find_params_start(after) {
            Some(0) => {
                let p = &after[1..];
                parse_params(p)?;
                p
            }
            None if after.is_empty() => "",
            _ => return Err(SyntaxError::NameAddr),
        };
        Ok(NameAddr {
            display,
            uri_text,
            uri,
            params,
        })
    }

    pub fn params(&self) -> impl Iterator<Item = Param<'a>> {
        // Validated in `parse`.
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

    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag").flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_with_escapes_and_lws_params() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>   ;  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.uri.host, "example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
    }

    #[test]
    fn addr_spec_params_belong_to_header() {
        let n = NameAddr::parse("sip:caller@example.net;tag=134161461246").unwrap();
        assert_eq!(n.uri_text, "sip:caller@example.net");
        assert_eq!(n.tag(), Some("134161461246"));
    }

    #[test]
    fn token_display_name() {
        let n = NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x")
            .unwrap();
        assert_eq!(n.display.as_deref(), Some("token1~` token2'+_ token3*%!.-"));
    }

    #[test]
    fn rejects_rfc4475_bad_forms() {
        // quotbal, baddn, badaspec, regbadct
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
    }
}
