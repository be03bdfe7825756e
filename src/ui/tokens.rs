//! `/ui/tokens` (admins): the API tokens, a form that creates one (its secret shown once), and revoking.
//! Everything goes through the tokens API in process ([`Apis::tokens`]), so it is audited as the admin.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value as Json, json};

use super::frame::Frame;
use super::in_process::{Apis, text, time};
use super::{UiError, session};
use crate::api::params::form_pairs;
use crate::auth::Identity;

struct TokenRow {
    id: String,
    name: String,
    role: String,
    prefix: String,
    restricted: String,
    created: String,
    created_by: String,
    expires: String,
    last_used: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    frame: Frame,
    rows: Vec<TokenRow>,
    /// A token just made: its name and secret, shown this once.
    created: Option<(String, String)>,
}

async fn render(
    apis: &Apis,
    identity: Option<&Identity>,
    created: Option<(String, String)>,
) -> Result<Response, UiError> {
    let listed = apis.tokens.get("/tokens", identity).await?;
    let rows = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|token| {
            let list = |key: &str| {
                token[key].as_array().map(|items| items.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(", "))
            };
            let restricted = [("models", list("models")), ("sources", list("sources"))]
                .into_iter()
                .filter_map(|(what, items)| items.map(|items| format!("{what}: {items}")))
                .collect::<Vec<_>>()
                .join("; ");
            TokenRow {
                id: token["id"].to_string(),
                name: text(token, "name"),
                role: text(token, "role"),
                prefix: text(token, "prefix"),
                restricted,
                created: time(token, "createdAt"),
                created_by: text(token, "createdBy"),
                expires: time(token, "expiresAt"),
                last_used: time(token, "lastUsedAt"),
                revoked: time(token, "revokedAt"),
            }
        })
        .collect();
    let mut response = super::render(&TokensPage { frame: Frame::default(), rows, created }).into_response();
    // A page that may show a secret is never stored.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /ui/tokens`.
pub async fn page(
    Extension(apis): Extension<Apis>,
    identity: Option<Extension<Identity>>,
) -> Result<Response, UiError> {
    let identity = identity.map(|Extension(identity)| identity);
    render(&apis, identity.as_ref(), None).await
}

/// `POST /ui/tokens`: form fields `name`, `role` and `expires_in_days` (optional).
pub async fn create(
    Extension(apis): Extension<Apis>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    session::same_origin(&headers)?;
    let identity = identity.map(|Extension(identity)| identity);
    let fields = form_pairs(std::str::from_utf8(&body).unwrap_or_default());
    let field = |name: &str| {
        fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim().to_owned()).unwrap_or_default()
    };
    let mut request = json!({"name": field("name"), "role": field("role")});
    let days = field("expires_in_days");
    if !days.is_empty() {
        let days: u32 =
            days.parse().ok().filter(|days| *days > 0).ok_or_else(|| {
                UiError::bad_request(format!("expires in {days:?} days: give a whole number of days"))
            })?;
        request["expiresInDays"] = json!(days);
    }
    let made = apis.tokens.call(Method::POST, "/tokens", identity.as_ref(), Some(request)).await?;
    let created = Some((text(&made, "name"), text(&made, "token")));
    render(&apis, identity.as_ref(), created).await
}

/// `POST /ui/tokens/{id}/revoke`.
pub async fn revoke(
    Extension(apis): Extension<Apis>,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    session::same_origin(&headers)?;
    let identity = identity.map(|Extension(identity)| identity);
    apis.tokens.call(Method::DELETE, &format!("/tokens/{id}"), identity.as_ref(), None).await?;
    Ok(Redirect::to("/ui/tokens").into_response())
}
