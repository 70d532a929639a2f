//! Lexical helpers shared by the typed header parsers (RFC 3261 §25.1): token checks,
//! comma-separated lists that respect quotes and angle brackets, `;name=value` parameters.

/// RFC 3261 `token` characters.
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Splits a header value at top-level commas (not inside quotes or `<...>`).
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0usize;
    let mut pos = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_quotes = false;
        let mut in_angle = false;
        while pos < bytes.len() {
            let c = bytes[pos];
            match c {
                b'\\' if in_quotes => pos += 1,
                b'"' if !in_angle => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => {
                    let item = value[start..pos].trim();
                    pos += 1;
                    start = pos;
                    return Some(item);
                }
                _ => {}
            }
            pos += 1;
        }
        done = true;
        Some(value[start.min(value.len())..].trim())
    })
}

/// Position of the first top-level `;` (outside quotes), where header parameters start.
pub fn find_params_start(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b';' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// One `name[=value]` generic parameter; the value keeps its quotes if it had them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// Errors of the typed header parsers; each names the construct that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("malformed parameter")]
    Param,
    #[error("malformed URI")]
    Uri,
    #[error("malformed name-addr")]
    NameAddr,
    #[error("malformed Via")]
    Via,
    #[error("malformed CSeq")]
    CSeq,
    #[error("malformed number")]
    Number,
    #[error("unterminated quoted string")]
    Quote,
    #[error("header is not UTF-8")]
    Encoding,
}

/// Parses `;a=b;c;d="e"` (the text after the first `;`, LWS around `;` and `=` allowed).
pub fn parse_params(s: &str) -> Result<Vec<Param<'_>>, SyntaxError> {
    let mut out = Vec::new();
    for raw in split_semicolons(s) {
        let raw = raw.trim();
        let (name, value) = match raw.find('=') {
            Some(eq) => (raw[..eq].trim(), Some(raw[eq + 1..].trim())),
            None => (raw, None),
        };
        if !is_token(name) {
            return Err(SyntaxError::Param);
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                quoted_end(v) == Some(v.len())
            } else {
                is_param_value(v)
            };
            if !ok {
                return Err(SyntaxError::Param);
            }
        }
        out.push(Param { name, value });
    }
    Ok(out)
}

/// Parameter values are tokens, but IPv6 references (`[::1]`) and `:` occur in practice.
fn is_param_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|c| is_token_char(c) || b"[]:".contains(&c) || c >= 0x80)
}

fn split_semicolons(s: &str) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0usize;
    let mut pos = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_quotes = false;
        while pos < bytes.len() {
            match bytes[pos] {
                b'\\' if in_quotes => pos += 1,
                b'"' => in_quotes = !in_quotes,
                b';' if !in_quotes => {
                    let item = &s[start..pos];
                    pos += 1;
                    start = pos;
                    return Some(item);
                }
                _ => {}
            }
            pos += 1;
        }
        done = true;
        Some(&s[start.min(s.len())..])
    })
}

/// Given text starting with `"`, the index just past the closing quote.
pub fn quoted_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes surrounding quotes and quoted-pair escapes.
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let inner = match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner,
        None => return s.into(),
    };
    if !inner.contains('\\') {
        return inner.into();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Decimal digits only (no sign, no spaces), bounded to `u32` — RFC 3261 scalars.
pub fn parse_u32(s: &str) -> Result<u32, SyntaxError> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(SyntaxError::Number);
    }
    s.parse().map_err(|_| SyntaxError::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_respects_quotes_and_brackets() {
        let v: Vec<_> = split_list(r#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z@w>"#).collect();
        assert_eq!(v, vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]);
    }

    #[test]
    fn params_allow_lws_and_flags() {
        let p = parse_params(" tag    = 1918181833n ; lr").unwrap();
        assert_eq!(
            p[0],
            Param {
                name: "tag",
                value: Some("1918181833n")
            }
        );
        assert_eq!(
            p[1],
            Param {
                name: "lr",
                value: None
            }
        );
    }

    #[test]
    fn empty_params_are_rejected() {
        assert_eq!(parse_params(";,"), Err(SyntaxError::Param));
    }

    #[test]
    fn unquote_expands_pairs() {
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
    }

    #[test]
    fn u32_rejects_signs_and_overflow() {
        assert_eq!(parse_u32("0068"), Ok(68));
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("36893488147419103232").is_err());
    }
}
