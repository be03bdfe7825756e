//! Per registered-model permissions over HTTP, under `/api/modelcat/v1` (the rules are
//! [`crate::registry::permissions`]'):
//!
//! - `GET /registered_models/{id}/permissions`: the model's grants and what `everyone` has; for callers
//!   who may read the model.
//! - `PUT /registered_models/{id}/permissions/{principal}` with `{"level": "read" | "edit" | "manage"}`
//!   (and `"none"` for `everyone`, which makes the model private): for callers who manage the model.
//! - `DELETE /registered_models/{id}/permissions/{principal}`: removes the grant (for `everyone`: back to
//!   read); for callers who manage the model.
//!
//! `{principal}` is `user:<subject>`, `group:<name>` or `everyone`. Changes are audited
//! (`permission.grant`, `permission.revoke`) and show in the catalog at once (a model leaves it when
//! `everyone` may no longer read it). Answers are the permissions after the change; errors use the
//! modelcat envelope.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::Family;
use super::error::ApiError;
use super::registry::path_id;
use super::registry::permits::Caller;
use crate::app::AppState;
use crate::registry::permissions::{Level, Principal};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registered_models/{id}/permissions", get(list))
        .route("/registered_models/{id}/permissions/{principal}", put(grant).delete(revoke))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    level: Level,
}

async fn list(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(async {
        let model = path_id(&id)?;
        caller.require_model(&state, model, Level::Read, || missing(model)).await
    })
    .await
}

async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, principal)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(async {
        let model = path_id(&id)?;
        let principal: Principal = principal.parse().map_err(ApiError::bad_request)?;
        let GrantBody { level } = serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("invalid permission: {error}")))?;
        if level == Level::None && principal != Principal::Everyone {
            return Err(ApiError::bad_request(
                "grants only add to what everyone has: remove this grant instead of setting it to none",
            ));
        }
        caller.require_model(&state, model, Level::Manage, || missing(model)).await?;
        let permissions = state.registry.set_permission(model, &principal, Some(level)).await?;
        tracing::info!(model, %principal, level = level.as_str(), "model permission granted");
        Ok(permissions)
    })
    .await
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, principal)): Path<(String, String)>,
) -> Response {
    answer(async {
        let model = path_id(&id)?;
        let principal: Principal = principal.parse().map_err(ApiError::bad_request)?;
        caller.require_model(&state, model, Level::Manage, || missing(model)).await?;
        let permissions = state.registry.set_permission(model, &principal, None).await?;
        tracing::info!(model, %principal, "model permission removed");
        Ok(permissions)
    })
    .await
}

fn missing(model: i64) -> ApiError {
    ApiError::not_found(format!("registered model {model} not found"))
}

/// The permissions as JSON, or the error in the modelcat envelope.
async fn answer<T: serde::Serialize>(work: impl Future<Output = Result<T, ApiError>>) -> Response {
    match work.await {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => Family::Modelcat.error(error.status, &error.message),
    }
}
