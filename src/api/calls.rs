//! `/v1/calls`: queue outbound calls, read and list calls, cancel them.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, FieldErrors, Problem};
use super::extract::{ApiJson, Authed};
use super::AppState;
use crate::agents::template;
use crate::domain::{new_id, Agent, Call, CallStatus, Direction};
use crate::store::{CallFilter, CancelOutcome, CreateOutcome, IdempotencyRecord};
use crate::webhooks::target::parse_target;

const MAX_IDEMPOTENCY_KEY: usize = 255;
const DEFAULT_MAX_ATTEMPTS: i64 = 3;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundCallRequest {
    /// The number to call; normalized to E.164 with the configured default region.
    pub to: String,
    /// An active outbound agent of the org; default: the org's default outbound agent.
    pub agent_id: Option<String>,
    /// Anything the agent should know about this call.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
    /// Overrides the org's webhook URL for this call's events.
    pub webhook_url: Option<String>,
    /// ISO 8601 UTC (`2026-01-02T15:04:05Z`); past means now.
    pub schedule_at: Option<String>,
    /// 1 to 10, default 3.
    pub max_attempts: Option<i64>,
}

/// Queue an outbound call.
#[utoipa::path(post, path = "/v1/calls/outbound", tag = "calls", request_body = OutboundCallRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for the same key")),
    responses(
        (status = 201, description = "Queued", body = Call),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid API key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Minutes exhausted", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn create_outbound(
    State(state): State<AppState>,
    Authed(org): Authed,
    headers: HeaderMap,
    body: ApiJson<OutboundCallRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let ApiJson { value: req, raw } = body;
    let mut problems = FieldErrors::default();
    let to = problems.take(
        "to",
        state
            .phones
            .normalize(&req.to)
            .map_err(|e| format!("{:?} {e}", req.to)),
    );
    let agent = problems.take(
        "agent_id",
        outbound_agent(&state, org.id, req.agent_id.as_deref()).await?,
    );
    let webhook_url = problems.take("webhook_url", check_webhook_url(&state, req.webhook_url));
    let schedule_at = problems.take(
        "schedule_at",
        req.schedule_at.as_deref().map(parse_utc).transpose(),
    );
    let max_attempts = problems.take("max_attempts", check_max_attempts(req.max_attempts));
    let (Some(to), Some(agent), Some(webhook_url), Some(schedule_at), Some(max_attempts)) =
        (to, agent, webhook_url, schedule_at, max_attempts)
    else {
        return Err(problems.into_error());
    };
    let texts = template::agent_texts(
        agent.greeting.as_deref(),
        &agent.questions,
        agent.turns.closing.as_deref(),
    );
    if let Some(key) = template::first_missing(texts, req.context.as_ref()) {
        return Err(ApiError::field(
            "context",
            format!("the agent's script uses {{{{{key}}}}}; add \"{key}\" to context"),
        ));
    }
    if org.quota_exhausted() {
        return Err(ApiError::quota_exhausted(
            org.minutes_used,
            org.minutes_included,
        ));
    }

    let created_at = state.store.clock().now();
    let call = Call {
        id: new_id(),
        org_id: org.id,
        agent_id: Some(agent.id),
        direction: Direction::Outbound,
        status: CallStatus::Queued,
        to,
        from: None,
        context: req.context,
        webhook_url,
        schedule_at,
        max_attempts,
        attempts: 0,
        created_at,
        ringing_at: None,
        answered_at: None,
        ended_at: None,
        duration_seconds: None,
        end_reason: None,
        quality: None,
        sip_status: None,
        transcript: Vec::new(),
        analysis: None,
        next_attempt_at: schedule_at.map_or(created_at, |at| at.max(created_at)),
    };
    let body = serde_json::to_string(&call).map_err(|_| ApiError::internal())?;
    let record = idempotency_key.map(|key| IdempotencyRecord {
        key,
        request_hash: hex::encode(Sha256::digest(&raw)),
        status_code: StatusCode::CREATED.as_u16(),
        body: body.clone(),
    });
    match state.store.create_call(&call, record.as_ref()).await? {
        CreateOutcome::Created => {
            metrics::counter!("voxbridge_calls_queued_total").increment(1);
            Ok(created(&call.id, body))
        }
        CreateOutcome::Replay { status_code, body } => {
            let status = StatusCode::from_u16(status_code).unwrap_or(StatusCode::CREATED);
            let mut response = json_response(status, body);
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        CreateOutcome::QuotaExhausted => Err(match state.store.org(org.id).await? {
            Some(fresh) => ApiError::quota_exhausted(fresh.minutes_used, fresh.minutes_included),
            None => ApiError::internal(),
        }),
        CreateOutcome::KeyReused => Err(ApiError::field(
            "Idempotency-Key",
            "this key was already used with a different request body",
        )),
    }
}

/// The named agent if it may place calls, else the org's default outbound agent.
async fn outbound_agent(
    state: &AppState,
    org_id: Uuid,
    id: Option<&str>,
) -> Result<Result<Agent, String>, ApiError> {
    let Some(id) = id else {
        let agent = default_outbound_agent(state, org_id).await?;
        return Ok(agent.ok_or_else(|| {
            "the organization has no default active outbound agent; pass agent_id".into()
        }));
    };
    let Ok(uuid) = Uuid::parse_str(id) else {
        return Ok(Err(format!("{id:?} is not an agent id")));
    };
    Ok(match state.store.agent(org_id, uuid).await? {
        None => Err(format!("no agent {id} in this organization")),
        Some(a) if !a.active => Err(format!("agent {id} is inactive")),
        Some(a) if a.direction != Direction::Outbound => Err(format!(
            "agent {id} is an inbound agent and cannot place calls"
        )),
        Some(a) => Ok(a),
    })
}

fn check_webhook_url(state: &AppState, url: Option<String>) -> Result<Option<String>, String> {
    match url {
        Some(url) => parse_target(&url, state.allow_private_webhooks)
            .map(|_| Some(url))
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

fn check_max_attempts(requested: Option<i64>) -> Result<i64, String> {
    match requested.unwrap_or(DEFAULT_MAX_ATTEMPTS) {
        n @ 1..=10 => Ok(n),
        n => Err(format!("must be between 1 and 10, got {n}")),
    }
}

async fn default_outbound_agent(state: &AppState, org_id: Uuid) -> Result<Option<Agent>, ApiError> {
    if let Some(agent) = state.caches.default_agents.get(&org_id) {
        return Ok(agent);
    }
    let agent = state
        .store
        .default_agent(org_id, Direction::Outbound)
        .await?;
    state.caches.default_agents.insert(org_id, agent.clone());
    Ok(agent)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Ok(Some(key.to_owned())),
        _ => Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// ISO 8601 / RFC 3339 in UTC only: an offset other than Z/+00:00 is refused rather than
/// converted, because a wrong local offset would silently ring people at night.
fn parse_utc(text: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an ISO 8601 timestamp like 2026-01-02T15:04:05Z"))?;
    if at.offset() != UtcOffset::UTC {
        return Err(format!("{text:?} is not in UTC; write it with a Z suffix"));
    }
    Ok(crate::domain::from_millis(crate::domain::to_millis(at)))
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn created(id: &Uuid, body: String) -> Response {
    let mut response = json_response(StatusCode::CREATED, body);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/calls/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Fetch one call.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_call(
    State(state): State<AppState>,
    Authed(org): Authed,
    Path(id): Path<String>,
) -> Result<Json<Call>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("call"))?;
    let call = state
        .store
        .call(org.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    Ok(Json(call))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// queued | calling | in_progress | completed | failed | canceled
    pub status: Option<String>,
    /// inbound | outbound
    pub direction: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallPage {
    pub data: Vec<Call>,
    pub next_cursor: Option<String>,
}

/// List calls, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(ListQuery),
    responses((status = 200, body = CallPage), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_calls(
    State(state): State<AppState>,
    Authed(org): Authed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CallPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let status = q
        .status
        .map(|s| {
            CallStatus::parse(&s)
                .ok_or_else(|| ApiError::field("status", format!("unknown status {s:?}")))
        })
        .transpose()?;
    let direction = q
        .direction
        .map(|s| {
            Direction::parse(&s)
                .ok_or_else(|| ApiError::field("direction", format!("unknown direction {s:?}")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 100"));
    }
    let before = q
        .cursor
        .map(|c| {
            Uuid::parse_str(&c)
                .map_err(|_| ApiError::field("cursor", "not a cursor this API returned"))
        })
        .transpose()?;
    let (data, more) = state
        .store
        .list_calls(
            org.id,
            &CallFilter {
                status,
                direction,
                before,
                limit,
            },
        )
        .await?;
    let next_cursor = if more {
        data.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(Json(CallPage { data, next_cursor }))
}

/// Cancel a `queued` or `calling` call (CANCEL while it rings), or hang up an answered outbound
/// call (BYE; the talk so far is billed and its transcript kept).
#[utoipa::path(post, path = "/v1/calls/{id}/cancel", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already ended, or an inbound call", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn cancel_call(
    State(state): State<AppState>,
    Authed(org): Authed,
    Path(id): Path<String>,
) -> Result<Json<Call>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("call"))?;
    match state.store.cancel_call(org.id, id, state.rounding).await? {
        CancelOutcome::Canceled(call) => Ok(Json(*call)),
        CancelOutcome::NotFound => Err(ApiError::not_found("call")),
        CancelOutcome::NotCancelable(status) => Err(ApiError::conflict(format!(
            "the call is {status}; only queued, calling or answered outbound calls can be canceled"
        ))),
    }
}
