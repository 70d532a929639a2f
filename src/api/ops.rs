//! The org endpoint and operational endpoints: health, readiness, metrics.

use crate::telephony::CapacityReport;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Authed;
use super::AppState;
use crate::domain::Org;

/// The organization that owns the API key, with its minutes.
#[utoipa::path(get, path = "/v1/org", tag = "org", responses((status = 200, body = Org)), security(("api_key" = [])))]
pub async fn get_org(
    State(state): State<AppState>,
    Authed(org): Authed,
) -> Result<Json<Org>, ApiError> {
    // Authentication may come from the cache; the minutes shown must be live.
    let fresh = state
        .store
        .org(org.id)
        .await?
        .ok_or_else(|| ApiError::not_found("org"))?;
    Ok(Json(fresh))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200)))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    /// `enabled`, or `disabled` when outbound calls stay queued.
    pub telephony: &'static str,
    /// What live calls hold: RTP port pairs and transcription slots, each with its total.
    pub capacity: CapacityReport,
}

/// Readiness: the database answers. Also says whether telephony is on and what calls hold.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = state.store.ping().await.is_ok();
    let telephony = if state.telephony_enabled {
        "enabled"
    } else {
        "disabled"
    };
    let body = Readiness {
        status: if database_ok { "ready" } else { "unavailable" },
        database: if database_ok { "ok" } else { "unreachable" },
        telephony,
        capacity: state.capacity.report(),
    };
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.capacity.report().record_metrics();
    let text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
