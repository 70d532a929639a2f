//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//! where the key is the base64 part of the `whsec_…` secret.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("webhook secrets start with \"whsec_\"")]
    MissingPrefix,
    #[error("the part after \"whsec_\" must be base64")]
    NotBase64,
    #[error("the key must be 24 to 64 bytes")]
    BadLength,
}

#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret
            .strip_prefix("whsec_")
            .ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self(key))
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's reference implementation tests.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!(
            SigningKey::from_secret("MfKQ9r8GKYqrTwjU").err(),
            Some(SecretError::MissingPrefix)
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!!").err(),
            Some(SecretError::NotBase64)
        );
        assert_eq!(
            SigningKey::from_secret("whsec_YWJj").err(),
            Some(SecretError::BadLength)
        );
    }
}
