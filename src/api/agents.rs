//! `/v1/agents`: list, create and update an org's agents.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Authed};
use super::AppState;
use crate::config::{is_slug, AgentConfig};
use crate::domain::{
    new_id, validate_agent_shape, Agent, AgentKind, Direction, FirstSpeaker, Question,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub data: Vec<Agent>,
}

/// List the org's agents.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = AgentList)),
    security(("api_key" = [])))]
pub async fn list_agents(
    State(state): State<AppState>,
    Authed(org): Authed,
) -> Result<Json<AgentList>, ApiError> {
    Ok(Json(AgentList {
        data: state.store.list_agents(org.id).await?,
    }))
}

/// Create an agent.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentConfig,
    responses((status = 201, body = Agent), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create_agent(
    State(state): State<AppState>,
    Authed(org): Authed,
    body: ApiJson<AgentConfig>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let agent = body.value.into_agent(new_id(), org.id);
    validate(&agent)?;
    check_voice(&state, &agent.voice)?;
    state.store.insert_agent(&agent).await?;
    state.caches.default_agents.clear();
    Ok((StatusCode::CREATED, Json(agent)))
}

/// Fields to change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub direction: Option<Direction>,
    pub voice: Option<String>,
    pub prompt: Option<String>,
    pub kind: Option<AgentKind>,
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub greeting: Option<String>,
    pub questions: Option<Vec<Question>>,
    pub closing: Option<String>,
    pub first_speaker: Option<FirstSpeaker>,
    pub end_of_turn_ms: Option<u64>,
    pub no_input_ms: Option<u64>,
    pub max_duration_seconds: Option<u64>,
    pub active: Option<bool>,
    pub default: Option<bool>,
}

/// Update an agent.
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentPatch,
    responses((status = 200, body = Agent), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn update_agent(
    State(state): State<AppState>,
    Authed(org): Authed,
    Path(id): Path<String>,
    body: ApiJson<AgentPatch>,
) -> Result<Json<Agent>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("agent"))?;
    let mut agent = state
        .store
        .agent(org.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let p = body.value;
    macro_rules! merge {
        ($($field:ident),*) => { $(if let Some(v) = p.$field { agent.$field = v; })* };
    }
    merge!(slug, name, direction, voice, prompt, kind, questions, active, default);
    macro_rules! merge_opt {
        ($($field:ident),*) => { $(if let Some(v) = p.$field { agent.$field = Some(v); })* };
    }
    merge_opt!(url, protocol, greeting);
    let turns = &mut agent.turns;
    if let Some(v) = p.first_speaker {
        turns.first_speaker = v;
    }
    macro_rules! merge_turns {
        ($($field:ident),*) => { $(if let Some(v) = p.$field { turns.$field = Some(v); })* };
    }
    merge_turns!(closing, end_of_turn_ms, no_input_ms, max_duration_seconds);
    validate(&agent)?;
    check_voice(&state, &agent.voice)?;
    state.store.update_agent(&agent).await?;
    state.caches.default_agents.clear();
    Ok(Json(agent))
}

fn validate(agent: &Agent) -> Result<(), ApiError> {
    if !is_slug(&agent.slug) {
        return Err(ApiError::field(
            "slug",
            "use 1 to 64 lowercase letters, digits and '-'",
        ));
    }
    if agent.name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    validate_agent_shape(agent.kind, agent.url.as_deref(), &agent.questions)
        .map_err(|(field, message)| ApiError::field(field, message))
}

fn check_voice(state: &AppState, voice: &str) -> Result<(), ApiError> {
    if state.tts.knows(voice) {
        return Ok(());
    }
    Err(ApiError::field(
        "voice",
        format!(
            "unknown voice {voice:?}; known voices: {}",
            state.tts.voice_names().join(", ")
        ),
    ))
}
