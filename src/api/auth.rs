//! Authentication and authorization of every request, and modelcat's token API.
//!
//! [`guard`] runs after routing (it reads the route template): it asks [`crate::auth::access::required`]
//! what the route needs, identifies the caller, and answers 401 (with `WWW-Authenticate: Bearer`) or 403
//! in the family's own error envelope. The caller's [`Identity`] travels on to handlers as an extension.
//!
//! Routes under `/api/modelcat/v1`:
//! - `GET /whoami`: the caller's identity (anonymous included) and the server's auth methods.
//! - `GET /tokens`, `POST /tokens` (`{"name", "role", "expiresInDays", "models", "sources"}`; `models`
//!   restricts the token to registered models by name, `sources` its catalog reads to source ids; the answer carries the token once), `DELETE /tokens/{id}` (revokes): admins only.
//! - `GET /audit` ([`super::audit`]): admins only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Family;
use crate::app::AppState;
use crate::audit;
use crate::auth::authenticate::AuthError;
use crate::auth::tokens::{self, NewToken};
use crate::auth::{Access, Area, Credential, Identity, Role};
use crate::store::now_millis;

/// Decides every request (see the module docs).
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let access = crate::auth::access::required(request.method(), template.as_deref());
    let authenticator = &state.authenticator;
    let anonymous_ok = match access {
        Access::Public => true,
        Access::Read(area) => authenticator.settings().anonymous_read.contains(&area),
        _ => false,
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let family = Family::of(request.uri().path());
    // A signed-in browser carries its token in a cookie that only UI paths read.
    if family == Family::Ui
        && let Some(bearer) = crate::ui::session::bearer_from_cookie(request.headers())
    {
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    let identity = match authenticator.identify(request.headers(), peer, anonymous_ok).await {
        Ok(identity) => identity,
        // Probes and documents answer whatever credentials come with them.
        Err(_) if access == Access::Public => None,
        Err(error) if error.is_unavailable() => {
            tracing::error!(error = ?error, "cannot check credentials");
            return family.error(StatusCode::SERVICE_UNAVAILABLE, &error.to_string());
        }
        Err(error) => return unauthorized(family, &error.to_string(), true),
    };
    match &identity {
        None if !anonymous_ok => return unauthorized(family, &AuthError::Missing.to_string(), false),
        Some(identity) if !identity.role.allows(access) => {
            let message = format!("{} ({}) may not {}", identity.subject, identity.role.as_str(), describe(access));
            return family.error(StatusCode::FORBIDDEN, &message);
        }
        // The Hub API and the change feed serve every source: not for a token restricted to some.
        Some(identity) if identity.sources.is_some() && matches!(access, Access::Read(Area::Hub) | Access::Feed) => {
            let message = format!("{} is restricted to catalog sources and may not read this", identity.subject);
            return family.error(StatusCode::FORBIDDEN, &message);
        }
        _ => {}
    }
    let request_id = request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let subject = identity.as_ref().map_or_else(|| "anonymous".to_owned(), |identity| identity.subject.clone());
    let authenticated = identity.as_ref().is_some_and(|identity| identity.credential != Credential::Disabled);
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    // Writes made while serving this request are audited as this caller.
    audit::scope(audit::Actor { subject, request_id, authenticated }, next.run(request)).await
}

/// A 401 that tells the client to send a bearer token (RFC 6750).
fn unauthorized(family: Family, message: &str, invalid: bool) -> Response {
    let mut response = family.error(StatusCode::UNAUTHORIZED, message);
    let challenge =
        if invalid { r#"Bearer realm="modelcat", error="invalid_token""# } else { r#"Bearer realm="modelcat""# };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

fn describe(access: Access) -> &'static str {
    match access {
        Access::Public | Access::Read(_) | Access::Feed => "read this",
        Access::Write => "change the registry",
        Access::Admin => "do this (admins only)",
    }
}

/// The token and identity routes, nested under `/api/modelcat/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/audit", get(super::audit::list))
}

async fn whoami(State(state): State<AppState>, identity: Option<Extension<Identity>>) -> Response {
    let settings = state.authenticator.settings();
    let methods = settings.method_names();
    let body = match identity {
        Some(Extension(identity)) => json!({"authenticated": true, "identity": identity, "methods": methods}),
        None => json!({"authenticated": false, "methods": methods, "anonymousRead": settings.anonymous_read}),
    };
    Json(body).into_response()
}

async fn list_tokens(State(state): State<AppState>) -> Response {
    match tokens::list(&*state.backend).await {
        Ok(items) => Json(json!({ "items": items, "size": items.len() })).into_response(),
        Err(error) => store_failed(&error),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateToken {
    name: String,
    role: Role,
    expires_in_days: Option<u32>,
    /// Restricts the token to these registered models, by name.
    models: Option<Vec<String>>,
    /// Restricts the token's catalog reads to these sources, by id.
    sources: Option<Vec<String>>,
}

async fn create_token(
    State(state): State<AppState>,
    identity: Option<Extension<Identity>>,
    body: axum::body::Bytes,
) -> Response {
    let family = Family::Modelcat;
    let request: CreateToken = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return family.error(StatusCode::BAD_REQUEST, &format!("invalid token request: {error}")),
    };
    let name = request.name.trim();
    if name.is_empty() || name.len() > 100 {
        return family.error(StatusCode::BAD_REQUEST, "name must be 1 to 100 characters");
    }
    if let Some(models) = &request.models
        && (models.is_empty() || models.len() > 1000 || models.iter().any(|model| model.trim().is_empty()))
    {
        return family.error(StatusCode::BAD_REQUEST, "models must list 1 to 1000 non-empty model names");
    }
    if let Some(sources) = &request.sources
        && (sources.is_empty() || sources.len() > 1000 || sources.iter().any(|source| source.trim().is_empty()))
    {
        return family.error(StatusCode::BAD_REQUEST, "sources must list 1 to 1000 non-empty source ids");
    }
    let created_by = identity.map_or_else(|| "anonymous".to_owned(), |Extension(identity)| identity.subject);
    let expires_at = request.expires_in_days.map(|days| now_millis() + i64::from(days) * 86_400_000);
    let token = NewToken {
        name: name.to_owned(),
        role: request.role,
        expires_at,
        created_by,
        models: request.models,
        sources: request.sources,
    };
    match tokens::create(&*state.backend, &token).await {
        Ok((record, secret)) => {
            tracing::info!(token = record.id, name = %record.name, role = record.role.as_str(), "token created");
            let mut body = serde_json::to_value(&record).unwrap_or_default();
            body["token"] = json!(secret.expose());
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(error) => store_failed(&error),
    }
}

async fn revoke_token(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let family = Family::Modelcat;
    let Ok(id) = id.parse::<i64>() else {
        return family.error(StatusCode::BAD_REQUEST, &format!("token id {id:?} must be an integer"));
    };
    match tokens::revoke(&*state.backend, id).await {
        Ok(Some(record)) => {
            state.authenticator.forget_cached();
            tracing::info!(token = record.id, name = %record.name, "token revoked");
            Json(record).into_response()
        }
        Ok(None) => family.error(StatusCode::NOT_FOUND, &format!("no token with id {id}")),
        Err(error) => store_failed(&error),
    }
}

fn store_failed(error: &crate::store::DbError) -> Response {
    tracing::error!(%error, "token store request failed");
    Family::Modelcat.error(StatusCode::SERVICE_UNAVAILABLE, "the token store is unavailable")
}
