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
//!   edit): the reviews, and one more;
//! - `POST /model_versions/{id}/policy_check` (`{"to", "policies"?}`, read): what the policies in force,
//!   or a draft, would decide now, without effect;
//! - `GET`/`POST /model_versions/{id}/evaluations` (edit): results of a suite, judged here;
//! - `GET`/`POST /model_versions/{id}/signatures` (edit; the body is a model-signing bundle): verified
//!   against the trusted keys and recorded, verified or failed;
//! - `GET`/`PUT /policies` (`{"policies", "comment"}`, admin), `GET /policies/versions[/{version}]`,
//!   `GET /policies/schema`: the Cedar policies, their versions and their schema;
//! - `GET /evaluation_suites`, `GET`/`PUT`/`DELETE /evaluation_suites/{name}` (changes: admin);
//! - `GET`/`POST /serving_environments/{id}/deployments` (`{"registeredModelId", "splits": [{
//!   "modelVersionId", "weight"}], "comment"}`, edit): an environment's history (`?registeredModelId=`
//!   for one model), and a new split; `POST /serving_environments/{id}/rollback`
//!   (`{"registeredModelId", "comment"}`, edit): back to the last good split;
//! - `GET /model_versions/{id}/evidence` (read): the version's signed evidence bundle (a tar archive);
//!   `GET /evidence_key`: the public key it is signed with, to verify it offline.
//!
//! Reads need read on the model (a model the caller may not read is a 404, as in the registry API).
//! Errors use the modelcat envelope `{"code", "message"}`: 400 (with `problems` for policies that do not
//! validate), 403, 404, 409 (`conflict`: a move the lifecycle does not allow, a second review in a
//! round), and 422 (`refused`) with `refusals`, each naming the policy that refused, its reason and the
//! details, and the `policyVersion` that decided.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::registry::path_id;
use super::registry::permits::Caller;
use crate::app::AppState;
use crate::governance::deployments::SplitRequest;
use crate::governance::evaluations::Suite;
use crate::governance::lifecycle::{Decision, State as LifecycleState};
use crate::governance::store::evaluations::Submission;
use crate::governance::{GovernanceError, ModelPatch};
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
        .route("/model_versions/{id}/policy_check", post(policy_check))
        .route("/model_versions/{id}/evaluations", get(evaluations).post(record_evaluation))
        .route("/model_versions/{id}/signatures", get(signatures).post(record_signature))
        .route("/policies", get(policies).put(put_policies))
        .route("/policies/versions", get(policy_versions))
        .route("/policies/versions/{version}", get(policy_version))
        .route("/policies/schema", get(policy_schema))
        .route("/evaluation_suites", get(suites))
        .route("/evaluation_suites/{name}", get(suite).put(put_suite).delete(delete_suite))
        .route("/serving_environments/{id}/deployments", get(deployments).post(deploy))
        .route("/serving_environments/{id}/rollback", post(rollback))
        .route("/model_versions/{id}/evidence", get(evidence))
        .route("/evidence_key", get(evidence_key))
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
            Failure::Governance(GovernanceError::Refused { asked, refusals, policy_version }) => {
                let body = json!({
                    "code": "refused",
                    "message": format!("{asked} was refused"),
                    "refusals": refusals,
                    "policyVersion": policy_version,
                });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            Failure::Governance(GovernanceError::InvalidPolicies(problems)) => {
                let body = json!({
                    "code": "bad_request",
                    "message": format!("the policies were not accepted: {}", problems.join("; ")),
                    "problems": problems,
                });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyCheckBody {
    to: String,
    /// A draft policy set to try instead of the one in force.
    policies: Option<String>,
}

async fn policy_check(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let PolicyCheckBody { to, policies } = body(&bytes)?;
    let target: LifecycleState =
        to.parse().map_err(|message: String| ApiError::bad_request(format!("to: {message}")))?;
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(state.governance.policy_check(version, target, policies).await?)
}

async fn evaluations(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(state.governance.evaluations(version).await?)
}

async fn record_evaluation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let submission: Submission = body(&bytes)?;
    let version = on_version(&state, &caller, &id, Level::Edit).await?;
    let results = state.governance.record_evaluation(version, submission).await?;
    Ok((StatusCode::CREATED, Json(json!({ "items": results }))).into_response())
}

async fn signatures(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    ok(json!({ "items": state.governance.signatures(version).await? }))
}

async fn record_signature(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Edit).await?;
    let record = state.governance.record_signature(version, &bytes).await?;
    tracing::info!(version, status = record.status, "model signature recorded");
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

async fn policies(State(state): State<AppState>) -> Answer {
    ok(state.governance.current_policies().await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoliciesBody {
    policies: String,
    comment: Option<String>,
}

async fn put_policies(State(state): State<AppState>, bytes: Bytes) -> Answer {
    let PoliciesBody { policies, comment: text } = body(&bytes)?;
    let text = comment(text)?;
    let stored = state.governance.put_policies(policies, text).await?;
    tracing::info!(version = stored.version, "governance policies stored");
    ok(stored)
}

async fn policy_versions(State(state): State<AppState>) -> Answer {
    ok(json!({ "items": state.governance.policy_versions().await? }))
}

async fn policy_version(State(state): State<AppState>, Path(version): Path<String>) -> Answer {
    let number = version.strip_prefix('v').unwrap_or(&version).parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!("invalid policy version {version:?}: v1, v2, … are stored versions"))
    })?;
    ok(state.governance.policy_version(number).await?)
}

async fn policy_schema() -> Answer {
    ok(json!({ "schema": crate::governance::policy::SCHEMA }))
}

async fn suites(State(state): State<AppState>) -> Answer {
    ok(json!({ "items": state.governance.suites().await? }))
}

async fn suite(State(state): State<AppState>, Path(name): Path<String>) -> Answer {
    ok(state.governance.suite(&name).await?)
}

async fn put_suite(State(state): State<AppState>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let suite: Suite = body(&bytes)?;
    ok(state.governance.put_suite(&name, suite).await?)
}

async fn delete_suite(State(state): State<AppState>, Path(name): Path<String>) -> Answer {
    state.governance.delete_suite(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeployBody {
    registered_model_id: String,
    splits: Vec<SplitRequest>,
    comment: Option<String>,
}

async fn deploy(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let DeployBody { registered_model_id, splits, comment: text } = body(&bytes)?;
    let text = comment(text)?;
    let environment = path_id(&id)?;
    let model = on_model(&state, &caller, &registered_model_id, Level::Edit).await?;
    let deployment = state.governance.deploy(environment, model, &splits, text).await?;
    tracing::info!(environment, model, deployment = deployment.id, "deployed");
    Ok((StatusCode::CREATED, Json(deployment)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollbackBody {
    registered_model_id: String,
    comment: Option<String>,
}

async fn rollback(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Answer {
    let RollbackBody { registered_model_id, comment: text } = body(&bytes)?;
    let text = comment(text)?;
    let environment = path_id(&id)?;
    let model = on_model(&state, &caller, &registered_model_id, Level::Edit).await?;
    let deployment = state.governance.rollback(environment, model, text).await?;
    tracing::info!(environment, model, deployment = deployment.id, "rolled back");
    Ok((StatusCode::CREATED, Json(deployment)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeploymentsQuery {
    registered_model_id: Option<String>,
}

async fn deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DeploymentsQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|error| ApiError::bad_request(error.body_text()))?;
    let environment = path_id(&id)?;
    let model = match query.registered_model_id {
        Some(model) => Some(on_model(&state, &caller, &model, Level::Read).await?),
        None => None,
    };
    let mut items = state.governance.deployments(environment, model).await?;
    // Of every model, the caller sees those they may read.
    let mut readable = std::collections::BTreeMap::new();
    for item in &items {
        if !readable.contains_key(&item.registered_model_id) {
            let may = on_model(&state, &caller, &item.registered_model_id, Level::Read).await.is_ok();
            readable.insert(item.registered_model_id.clone(), may);
        }
    }
    items.retain(|item| readable.get(&item.registered_model_id).copied().unwrap_or(false));
    ok(json!({ "items": items }))
}

async fn evidence(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Answer {
    let version = on_version(&state, &caller, &id, Level::Read).await?;
    let (model, files) = state.governance.evidence_files(version).await?;
    let bundle = crate::governance::evidence::pack(model, version, &files, &state.signer);
    let disposition = format!("attachment; filename=\"evidence-model-version-{version}.tar\"");
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/x-tar".to_owned()),
        (axum::http::header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((StatusCode::OK, headers, bundle).into_response())
}

async fn evidence_key(State(state): State<AppState>) -> Answer {
    ok(json!({
        "algorithm": "ed25519",
        "keyId": state.signer.key_id(),
        "publicKey": crate::hex::encode(state.signer.public_key()),
    }))
}
