//! Answering a 401/407 challenge (RFC 3261 §22.2, RFC 8760 algorithm preference).

use super::{response_digest, Algorithm, AuthParams};
use crate::message::random_hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Among several challenge header values, the one to answer: SHA-256 over MD5 (RFC 8760 §2.4),
/// skipping algorithms or qop values we cannot do.
pub fn pick_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<AuthParams> {
    values
        .into_iter()
        .filter_map(|v| AuthParams::parse(v).ok())
        .filter(|p| {
            Algorithm::parse(p.get("algorithm")).is_some()
                && p.get("realm").is_some()
                && p.get("nonce").is_some()
        })
        .filter(|p| {
            p.get("qop")
                .is_none_or(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")))
        })
        .max_by_key(|p| {
            matches!(
                Algorithm::parse(p.get("algorithm")),
                Some(Algorithm::Sha256 | Algorithm::Sha256Sess)
            )
        })
}

/// The Authorization/Proxy-Authorization value for `challenge` (from [`pick_challenge`]).
/// `nc` counts uses of this nonce, starting at 1.
pub fn authorization(
    challenge: &AuthParams,
    creds: &Credentials,
    method: &str,
    uri: &str,
    nc: u32,
) -> Option<String> {
    let alg = Algorithm::parse(challenge.get("algorithm"))?;
    let realm = challenge.get("realm")?;
    let nonce = challenge.get("nonce")?;
    let use_qop = challenge.get("qop").is_some();
    let nc_text = format!("{nc:08x}");
    let cnonce = random_hex(16);
    let qop = use_qop.then_some((nc_text.as_str(), cnonce.as_str()));
    let response = response_digest(
        alg,
        &creds.username,
        realm,
        &creds.password,
        method,
        uri,
        nonce,
        qop,
    );
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
        quote(&creds.username),
        quote(realm),
        quote(nonce),
        quote(uri),
        response,
        alg.as_str()
    );
    if use_qop {
        out.push_str(&format!(", qop=auth, nc={nc_text}, cnonce=\"{cnonce}\""));
    }
    if let Some(opaque) = challenge.get("opaque") {
        out.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    Some(out)
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_sha256_and_skips_auth_int_only() {
        let c = pick_challenge([
            r#"Digest realm="r", nonce="n", algorithm=MD5, qop="auth""#,
            r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth""#,
            r#"Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth""#,
        ])
        .unwrap();
        assert_eq!(c.get("algorithm"), Some("SHA-256"));
        assert!(pick_challenge([r#"Digest realm="r", nonce="n", qop="auth-int""#]).is_none());
    }

    #[test]
    fn authorization_carries_qop_nc_cnonce_and_opaque() {
        let c =
            AuthParams::parse(r#"Digest realm="voxbridge", nonce="abc", qop="auth", opaque="xyz""#)
                .unwrap();
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let a = AuthParams::parse(&authorization(&c, &creds, "INVITE", "sip:+1@h", 1).unwrap())
            .unwrap();
        assert_eq!(a.get("nc"), Some("00000001"));
        assert_eq!(a.get("qop"), Some("auth"));
        assert_eq!(a.get("opaque"), Some("xyz"));
        assert_eq!(a.get("algorithm"), Some("MD5"));
        let expected = response_digest(
            Algorithm::Md5,
            "u",
            "voxbridge",
            "p",
            "INVITE",
            "sip:+1@h",
            "abc",
            Some(("00000001", a.get("cnonce").unwrap())),
        );
        assert_eq!(a.get("response"), Some(expected.as_str()));
    }
}
