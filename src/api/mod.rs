//! The HTTP API. It reads and writes the store only; it never talks to telephony.

mod agents;
mod cache;
mod calls;
pub mod error;
pub mod extract;
mod openapi;
mod ops;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

pub use openapi::ApiDoc;

use crate::domain::{Agent, Org};
use crate::phone::PhoneNormalizer;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub phones: PhoneNormalizer,
    pub allow_private_webhooks: bool,
    pub telephony_enabled: bool,
    /// RTP ports and transcription slots in use, for `/readyz`.
    pub capacity: crate::telephony::Capacity,
    /// How talk time is billed (a call canceled while talking is billed at the cancel).
    pub rounding: crate::config::Rounding,
    pub metrics: Option<PrometheusHandle>,
    pub caches: Arc<Caches>,
    /// The voices agents may use (`POST`/`PATCH /v1/agents` check `voice` against it).
    pub tts: crate::agents::tts::Tts,
}

/// Per-node caches of what every request looks up.
#[derive(Default)]
pub struct Caches {
    /// API key hash → its org.
    pub orgs: cache::TtlCache<String, Org>,
    /// Org → its default outbound agent.
    pub default_agents: cache::TtlCache<uuid::Uuid, Option<Agent>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/calls/outbound", post(calls::create_outbound))
        .route("/v1/calls", get(calls::list_calls))
        .route("/v1/calls/{id}", get(calls::get_call))
        .route("/v1/calls/{id}/cancel", post(calls::cancel_call))
        .route(
            "/v1/agents",
            get(agents::list_agents).post(agents::create_agent),
        )
        .route("/v1/agents/{id}", patch(agents::update_agent))
        .route("/v1/org", get(ops::get_org))
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { error::ApiError::not_found("route").into_response() })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .route_layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Counts and times every request by route, and keeps 5xx details in the log.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("voxbridge_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("voxbridge_http_request_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    if response.status().is_server_error() {
        tracing::warn!(%route, status = response.status().as_u16(), "request failed");
    }
    response
}
