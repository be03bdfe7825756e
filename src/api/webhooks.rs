//! Webhook subscriptions over HTTP, under `/api/modelcat/v1` (admins only; the rules are
//! [`crate::webhooks`]'):
//!
//! - `GET /webhooks`, `POST /webhooks` (`{"url", "description", "eventTypes": [...], "catalogSources":
//!   [...], "enabled"}`; no event types means every type; `catalog.*` events come only for the catalog
//!   sources named): the secret of a new subscription is in the answer, this once;
//! - `GET`, `PATCH`, `DELETE /webhooks/{id}`; `POST /webhooks/{id}/rotate-secret` (the new secret, once;
//!   the old one keeps signing for `webhooks.rotation_window_hours`);
//! - `GET /webhooks/{id}/deliveries?limit=N`: the delivery log, newest first, with every attempt;
//!   `POST /webhooks/{id}/deliveries/{delivery}/redeliver` sends that event again.
//!
//! Answers that carry a secret are `Cache-Control: no-store`. Errors use the modelcat envelope.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Family;
use super::registry::path_id;
use crate::app::AppState;
use crate::store::outbox::{EVENT_TYPES, EventType};
use crate::webhooks::WebhookError;
use crate::webhooks::store::SubscriptionDraft;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(read).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
}

/// A failure, as status and message.
struct Failure(StatusCode, String);

impl From<WebhookError> for Failure {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotFound(message) => Failure(StatusCode::NOT_FOUND, message),
            WebhookError::Invalid(message) => Failure(StatusCode::BAD_REQUEST, message),
            WebhookError::Db(error) => {
                tracing::error!(%error, "webhook request failed");
                Failure(StatusCode::INTERNAL_SERVER_ERROR, "internal server error".to_owned())
            }
        }
    }
}

impl From<super::error::ApiError> for Failure {
    fn from(error: super::error::ApiError) -> Self {
        Failure(error.status, error.message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        Family::Modelcat.error(self.0, &self.1)
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

/// A subscription body as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    url: Option<String>,
    #[serde(default, deserialize_with = "crate::nullable::deserialize")]
    description: Option<Option<String>>,
    event_types: Option<Vec<String>>,
    catalog_sources: Option<Vec<String>>,
    enabled: Option<bool>,
}

fn draft(state: &AppState, bytes: &[u8]) -> Result<SubscriptionDraft, Failure> {
    let body: Body = serde_json::from_slice(bytes).map_err(|error| bad(format!("invalid webhook: {error}")))?;
    let url = match body.url {
        Some(url) => Some(state.webhooks.destinations.check_url(&url).map_err(bad)?.to_string()),
        None => None,
    };
    let event_types = match body.event_types {
        Some(types) => Some(
            types
                .iter()
                .map(|text| {
                    EventType::parse(text).ok_or_else(|| {
                        let known: Vec<_> = EVENT_TYPES.iter().map(|event_type| event_type.as_str()).collect();
                        bad(format!("unknown event type {text:?} (one of {})", known.join(", ")))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    if let Some(Some(description)) = &body.description
        && description.len() > 1024
    {
        return Err(bad("description: at most 1024 bytes"));
    }
    let catalog_sources = body.catalog_sources.map(crate::webhooks::check_catalog_sources).transpose().map_err(bad)?;
    Ok(SubscriptionDraft { url, description: body.description, event_types, catalog_sources, enabled: body.enabled })
}

fn secret_answer(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn list(State(state): State<AppState>) -> Result<Response, Failure> {
    Ok(Json(json!({ "items": state.webhooks.store.list().await? })).into_response())
}

async fn create(State(state): State<AppState>, bytes: Bytes) -> Result<Response, Failure> {
    let draft = draft(&state, &bytes)?;
    if draft.url.is_none() {
        return Err(bad("invalid webhook: url is required"));
    }
    let created = state.webhooks.store.create(draft).await?;
    tracing::info!(webhook = %created.subscription.id, "webhook subscription created");
    Ok(secret_answer(StatusCode::CREATED, created))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Failure> {
    Ok(Json(state.webhooks.store.get(path_id(&id)?).await?).into_response())
}

async fn update(State(state): State<AppState>, Path(id): Path<String>, bytes: Bytes) -> Result<Response, Failure> {
    let id = path_id(&id)?;
    let draft = draft(&state, &bytes)?;
    Ok(Json(state.webhooks.store.update(id, draft).await?).into_response())
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Failure> {
    state.webhooks.store.delete(path_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Failure> {
    let window = state.webhooks.rotation_window.as_millis() as i64;
    let rotated = state.webhooks.store.rotate(path_id(&id)?, window).await?;
    Ok(secret_answer(StatusCode::OK, rotated))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) = query.map_err(|error| bad(error.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad(format!("limit must be 1 to 500, got {limit}")));
    }
    let items = state.webhooks.store.deliveries(path_id(&id)?, limit).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn redeliver(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, Failure> {
    state.webhooks.store.redeliver(path_id(&id)?, path_id(&delivery)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
