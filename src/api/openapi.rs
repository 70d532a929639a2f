//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agents, calls, error, ops};

#[derive(OpenApi)]
#[openapi(
    info(title = "VoxBridge API", description = "Queue outbound calls, read calls, manage agents."),
    paths(
        calls::create_outbound, calls::get_call, calls::list_calls, calls::cancel_call,
        agents::list_agents, agents::create_agent, agents::update_agent,
        ops::get_org, ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(error::Problem, error::FieldError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
