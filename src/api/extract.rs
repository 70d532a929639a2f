//! Request extractors that fail with problem+json: JSON bodies and API-key authentication.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::{ApiError, FieldError};
use super::AppState;
use crate::domain::Org;

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body, whatever the Content-Type says (the API speaks only JSON, and curl's default
/// form type should not turn a valid body into an error). Malformed JSON is a 400 that says where; wrong types and unknown fields are a
/// 422 naming the field; bodies over [`BODY_LIMIT`] are a 413. The raw bytes are kept for
/// idempotency hashing.
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(BODY_LIMIT)
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })?;
        let value = parse_json(&raw)?;
        Ok(Self { value, raw })
    }
}

pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::malformed_json(format!("the body is not valid JSON: {inner}"));
        }
        let path = e.path().to_string();
        let message = strip_position(&inner.to_string());
        // The path ends with an unknown field's own name; a missing field is only in the message.
        let field = match path.as_str() {
            "." => missing_field(&message).unwrap_or("body").to_owned(),
            _ => path,
        };
        ApiError::validation(vec![FieldError { field, message }])
    })?;
    de.end()
        .map_err(|e| ApiError::malformed_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The organization that owns the request's API key (`Authorization: Bearer <key>`).
pub struct Authed(pub Org);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("send the API key as Authorization: Bearer <key>")
        })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <key>")
            })?;
        let org = state.store.org_by_key_hash(&hash_api_key(key)).await?;
        org.map(Authed)
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))
    }
}

/// API keys are random and long, so one SHA-256 is the right hash: it is a lookup key, not a
/// password that needs stretching.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        to: String,
        max_attempts: Option<i64>,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        a: u8,
    }

    fn fields(e: ApiError) -> (u16, String) {
        (
            e.status.as_u16(),
            e.errors
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default(),
        )
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = |raw: &str| fields(parse_json::<Body>(raw.as_bytes()).unwrap_err());
        assert_eq!(err(r#"{"to": "1", "bogus": 1}"#), (422, "bogus".into()));
        assert_eq!(
            err(r#"{"to": "1", "max_attempts": "three"}"#),
            (422, "max_attempts".into())
        );
        assert_eq!(
            err(r#"{"to": "1", "nested": {"a": 300}}"#),
            (422, "nested.a".into())
        );
        assert_eq!(
            err(r#"{"to": "1", "nested": {"b": 1}}"#),
            (422, "nested.b".into())
        );
        assert_eq!(err(r#"{}"#), (422, "to".into()));
        assert_eq!(err(r#"{"to": "1""#).0, 400);
        assert_eq!(err(r#"{"to": "1"} trailing"#).0, 400);
        assert_eq!(err(r#"[1, 2]"#).0, 422);
    }
}
