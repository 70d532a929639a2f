//! Challenging requests (RFC 3261 §22.1) with stateless nonces: `<unix time hex>.<tag>` where
//! the tag is SHA-256(secret : time), so any node sharing the secret can verify, and expiry
//! yields `stale=true` instead of a hard failure. Responses compare in constant time, and an
//! unknown user costs and answers exactly like a wrong password.

use subtle::ConstantTimeEq;

use super::{hex, response_digest, Algorithm, AuthParams};

#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    secret: [u8; 32],
    nonce_ttl_secs: u64,
    algorithm: Algorithm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authenticated {
        username: String,
    },
    /// Right credentials, expired nonce: challenge again with `stale=true`.
    Stale,
    /// Anything else (unknown user, wrong password, bad nonce, malformed header).
    Rejected,
}

impl DigestServer {
    pub fn new(
        realm: impl Into<String>,
        secret: [u8; 32],
        nonce_ttl_secs: u64,
        algorithm: Algorithm,
    ) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            secret,
            nonce_ttl_secs,
            algorithm,
        }
    }

    fn nonce_tag(&self, time_hex: &str) -> String {
        Algorithm::Sha256.hash(&[&self.secret, time_hex.as_bytes()])[..32].to_owned()
    }

    fn nonce(&self, now_unix: u64) -> String {
        let t = format!("{now_unix:x}");
        let tag = self.nonce_tag(&t);
        format!("{t}.{tag}")
    }

    /// WWW-Authenticate / Proxy-Authenticate value.
    pub fn challenge(&self, now_unix: u64, stale: bool) -> String {
        let mut c = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            self.realm,
            self.nonce(now_unix),
            self.algorithm.as_str()
        );
        if stale {
            c.push_str(", stale=true");
        }
        c
    }

    /// Checks an Authorization value. `password_of` returns the user's password, `None` for
    /// an unknown user.
    pub fn verify(
        &self,
        header: &str,
        method: &str,
        now_unix: u64,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Verdict {
        let Ok(p) = AuthParams::parse(header) else {
            return Verdict::Rejected;
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            p.get("username"),
            p.get("realm"),
            p.get("nonce"),
            p.get("uri"),
            p.get("response"),
        ) else {
            return Verdict::Rejected;
        };
        if realm != self.realm || Algorithm::parse(p.get("algorithm")) != Some(self.algorithm) {
            return Verdict::Rejected;
        }
        let Some((time_hex, tag)) = nonce.split_once('.') else {
            return Verdict::Rejected;
        };
        let tag_ok: bool = self
            .nonce_tag(time_hex)
            .as_bytes()
            .ct_eq(tag.as_bytes())
            .into();
        let Ok(issued) = u64::from_str_radix(time_hex, 16) else {
            return Verdict::Rejected;
        };
        if !tag_ok {
            return Verdict::Rejected;
        }
        let qop = match (p.get("qop"), p.get("nc"), p.get("cnonce")) {
            (Some(q), Some(nc), Some(cn)) if q.eq_ignore_ascii_case("auth") => Some((nc, cn)),
            _ => return Verdict::Rejected,
        };
        // Unknown users get a digest computed from a random password: same work, same answer.
        let known = password_of(user);
        let password = known
            .clone()
            .unwrap_or_else(|| hex(&fastrand::u128(..).to_le_bytes()));
        let expected = response_digest(
            self.algorithm,
            user,
            &self.realm,
            &password,
            method,
            uri,
            nonce,
            qop,
        );
        let matches: bool = expected
            .as_bytes()
            .ct_eq(response.to_ascii_lowercase().as_bytes())
            .into();
        if !matches || known.is_none() {
            return Verdict::Rejected;
        }
        if now_unix.saturating_sub(issued) > self.nonce_ttl_secs || issued > now_unix + 60 {
            return Verdict::Stale;
        }
        Verdict::Authenticated {
            username: user.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{authorization, pick_challenge, Credentials};

    fn server(alg: Algorithm) -> DigestServer {
        DigestServer::new("voxbridge", [7; 32], 300, alg)
    }

    fn answer(s: &DigestServer, now: u64, user: &str, pass: &str) -> String {
        let ch = s.challenge(now, false);
        let c = pick_challenge([ch.as_str()]).unwrap();
        authorization(
            &c,
            &Credentials {
                username: user.into(),
                password: pass.into(),
            },
            "INVITE",
            "sip:+1@127.0.0.1",
            1,
        )
        .unwrap()
    }

    fn lookup(user: &str) -> Option<String> {
        (user == "trunk").then(|| "secret".to_owned())
    }

    #[test]
    fn client_answer_verifies_for_both_algorithms() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let s = server(alg);
            let a = answer(&s, 1000, "trunk", "secret");
            assert_eq!(
                s.verify(&a, "INVITE", 1010, lookup),
                Verdict::Authenticated {
                    username: "trunk".into()
                }
            );
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let s = server(Algorithm::Md5);
        assert_eq!(
            s.verify(&answer(&s, 1000, "trunk", "nope"), "INVITE", 1000, lookup),
            Verdict::Rejected
        );
        assert_eq!(
            s.verify(&answer(&s, 1000, "ghost", "secret"), "INVITE", 1000, lookup),
            Verdict::Rejected
        );
    }

    #[test]
    fn expired_nonce_is_stale_only_with_right_credentials() {
        let s = server(Algorithm::Sha256);
        assert_eq!(
            s.verify(&answer(&s, 1000, "trunk", "secret"), "INVITE", 1400, lookup),
            Verdict::Stale
        );
        assert_eq!(
            s.verify(&answer(&s, 1000, "trunk", "bad"), "INVITE", 1400, lookup),
            Verdict::Rejected
        );
        assert!(s.challenge(1400, true).ends_with("stale=true"));
    }

    #[test]
    fn forged_nonce_method_change_and_other_realm_are_rejected() {
        let s = server(Algorithm::Md5);
        let a = answer(&s, 1000, "trunk", "secret");
        assert_eq!(s.verify(&a, "BYE", 1000, lookup), Verdict::Rejected);
        let forged = a.replace("nonce=\"3e8.", "nonce=\"3e9.");
        assert_eq!(s.verify(&forged, "INVITE", 1000, lookup), Verdict::Rejected);
        let other = DigestServer::new("elsewhere", [7; 32], 300, Algorithm::Md5);
        assert_eq!(other.verify(&a, "INVITE", 1000, lookup), Verdict::Rejected);
    }
}
