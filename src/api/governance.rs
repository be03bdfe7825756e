//! The governance API, `/api/governance/v1` (the rules are [`crate::governance`]'s):
//!
//! - `GET`/`PATCH /registered_models/{id}`: owners, group, risk tier and tags (patching needs manage on
//!   the model);
//! - `GET /registered_models/{id}/aliases`: the aliases and their history; `PUT` and `DELETE
//!   /registered_models/{id}/aliases/{alias}` (`{"modelVersionId": "7"}`) move and remove one (edit);
//! - `GET /model_versions/{id}`: the state, the next states, the review round and the aliases;
//! - `GET`/`POST /model_versions/{id}/transitions` (`{"to": "submitted", "comment": "…"}`, edit): the
//!   history, and a move;
//! - `GET`/`POST /model_versions/{id}/reviews` (`{"decision": "approve" | "request_changes", "comment"}`,
//!   edit): the reviews, and one more.
//!
//! Reads need read on the model (a model the caller may not read is a 404, as in the registry API).
//! Errors use the modelcat envelope `{"code", "message"}`: 400, 403, 404, 409 (`conflict`: a move the
//! lifecycle does not allow, a second review in a round), and 422 (`refused`) with `refusals`, each
//! reason with the rule that gave it, and the rules' version.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::registry::path_id;
use super::registry::permits::Caller;
use crate::app::AppState;
use crate::governance::lifecycle::{Decision, State as LifecycleState};
use crate::governance::{GovernanceError, ModelPatch, gates};
use crate::registry::permissions::Level;

/// The base path of the governance API.
pub const BASE_PATH: &str = "/api/governance/v1";

/// The longest comment kept with a transition or review.
const MAX_COMMENT: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registered_models/{id}", get(model).patch(patch_model))
        .route("/registered_models/{id}/aliases", get(aliases))
        .route("/registered_models/{id}/aliases/{alias}", put(set_alias).delete(remove_alias))
        .route("/model_versions/{id}", get(version))
        .route("/model_versions/{id}/transitions", get(transitions).post(transition))
        .route("/model_versions/{id}/reviews", get(reviews).post(review))
}

/// A failed governance request, in the modelcat envelope.
#[derive(Debug)]
pub enum Failure {
    Api(ApiError),
    Governance(GovernanceError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

impl From<GovernanceError> for Failure {
    fn from(error: GovernanceError) -> Self {
        Failure::Governance(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let error = match self {
            Failure::Api(error) => error,
            Failure::Governance(GovernanceError::Refused { target, refusals }) => {
                let body = json!({
                    "code": "refused",
                    "message": format!("the move to {target} was refused"),
                    "refusals": refusals,
                    "rulesVersion": gates::RULES_VERSION,
                });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            Failure::Governance(error) => ApiError::from(error),
        };
        let code = match error.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            _ => "error",
        };
        (error.status, Json(json!({ "code": code, "message": error.message }))).into_response()
    }
}

type Answer = Result<Response, Failure>;

fn ok(body: impl serde::Serialize) -> Answer {
    Ok((StatusCode::OK, Json(body)).into_response())
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::bad_request(format!("invalid body: {error}")))
}

fn comment(comment: Option<String>) -> Result<Option<String>, ApiError> {
    match comment {
        Some(text) if text.len() > MAX_COMMENT => {
            Err(ApiError::bad_request(format!("comment: at most {MAX_COMMENT} bytes")))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Requires `level` on registered model `id` (a path segment); returns the id.
async fn on_model(state: &AppState, caller: &Caller, id: &str, level: Level) -> Result<i64, Failure> {
    let model = path_id(id)?;
    let missing = || ApiError::not_found(format!("registered model {model} not found"));
    caller.require_model(state, model, level, missing).await?;
    Ok(model)
}

/// Requires `level` on the model of version `id` (a path segment); returns the version's id.
async fn on_version(state: &AppState, caller: &Caller, id: &str, level: Level) -> Result<i64, Failure> {
    let version = path_id(id)?;
    let model = state.governance.model_of(version).await?;
    let missing = || ApiError::not_found(format!("model version {version} not found"));
    caller.require_model(state, model, level, missing).await?;
    Ok(version)
}

async fn model(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let model = on_model(&state, &caller, &id, Level::Read).await?;
    ok(state.governance.model(model).await?)
}

async fn patch_model(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let patch: ModelPatch = body(&bytes)?;
    let model = on_model(&state, &caller, &id, Level::Manage).await?;
    ok(state.governance.update_model(model, patch).await?)
}

async fn aliases(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let model = on_model(&state, &caller, &id, Level::Read).await?;
    ok(state.governance.aliases(model).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AliasBody {
    model_version_id: String,
}

async fn set_alias(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, alias)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer {
    let AliasBody { model_version_id } = body(&bytes)?;
    let version = path_id(&model_version_id)?;
    let model = on_model(&state, &caller, &id, Level::Edit).await?;
    ok(state.governance.set_alias(model, &alias, Some(version)).await?)
}

async fn remove_alias(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, alias)): Path<(String, String)>,
) -> Answer {
    let model = on_model(&state, &caller, &id, Level::Edit).await?;
    ok(state.governance.set_alias(model, &alias, None).await?)
}

async fn version(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(state.governance.version(version).await?)
}

async fn transitions(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(json!({ "items": state.governance.transitions(version).await? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    to: String,
    comment: Option<String>,
}

async fn transition(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let TransitionBody { to, comment: text } = body(&bytes)?;
    let target: LifecycleState =
        to.parse().map_err(|message: String| ApiError::bad_request(format!("to: {message}")))?;
    let text = comment(text)?;
    let version = on_version(&state, &caller, &id, Level::Edit).await?;
    let status = state.governance.transition(version, target, text).await?;
    tracing::info!(version, to = target.as_str(), "model version transitioned");
    ok(status)
}

async fn reviews(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(json!({ "items": state.governance.reviews(version).await? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    decision: Decision,
    comment: Option<String>,
}

async fn review(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let ReviewBody { decision, comment: text } = body(&bytes)?;
    let text = comment(text)?;
    let version = on_version(&state, &caller, &id, Level::Edit).await?;
    let status = state.governance.review(version, decision, text).await?;
    tracing::info!(version, decision = decision.as_str(), "model version reviewed");
    ok(status)
}
