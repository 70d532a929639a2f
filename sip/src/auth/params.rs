//! `Digest k=v, k="v"` parameter lists of WWW-Authenticate / Authorization (RFC 7616 §3).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    params: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("not a Digest header")]
    Scheme,
    #[error("malformed auth parameter")]
    Syntax,
    #[error("too many auth parameters")]
    TooMany,
}

const MAX_PARAMS: usize = 32;

impl AuthParams {
    pub fn parse(value: &str) -> Result<AuthParams, ParamsError> {
        let value = value.trim();
        let rest = match value.split_once([' ', '\t']) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Digest") => rest,
            _ => return Err(ParamsError::Scheme),
        };
        let mut params = Vec::new();
        let mut s = rest.trim_start();
        while !s.is_empty() {
            if params.len() == MAX_PARAMS {
                return Err(ParamsError::TooMany);
            }
            let eq = s.find('=').ok_or(ParamsError::Syntax)?;
            let name = s[..eq].trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(ParamsError::Syntax);
            }
            s = s[eq + 1..].trim_start();
            let (val, rest) = if let Some(q) = s.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => out.push(chars.next().ok_or(ParamsError::Syntax)?.1),
                        Some((i, '"')) => break i,
                        Some((_, c)) => out.push(c),
                        None => return Err(ParamsError::Syntax),
                    }
                };
                (out, &q[end + 1..])
            } else {
                let end = s.find(',').unwrap_or(s.len());
                (s[..end].trim().to_owned(), &s[end..])
            };
            params.push((name.to_ascii_lowercase(), val));
            s = rest.trim_start();
            match s.strip_prefix(',') {
                Some(r) => s = r.trim_start(),
                None if s.is_empty() => {}
                None => return Err(ParamsError::Syntax),
            }
        }
        Ok(AuthParams { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_token_values() {
        let p = AuthParams::parse(r#"Digest realm="a \"b\"", nonce="n1",algorithm=SHA-256 , qop="auth,auth-int", stale=TRUE"#).unwrap();
        assert_eq!(p.get("realm"), Some("a \"b\""));
        assert_eq!(p.get("algorithm"), Some("SHA-256"));
        assert_eq!(p.get("qop"), Some("auth,auth-int"));
        assert_eq!(p.get("stale"), Some("TRUE"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(AuthParams::parse("Basic abc"), Err(ParamsError::Scheme));
        assert_eq!(
            AuthParams::parse("Digest realm=\"x"),
            Err(ParamsError::Syntax)
        );
        assert_eq!(
            AuthParams::parse("Digest realm=\"x\" nonce=1"),
            Err(ParamsError::Syntax)
        );
        assert_eq!(AuthParams::parse("Digest =x"), Err(ParamsError::Syntax));
    }
}
