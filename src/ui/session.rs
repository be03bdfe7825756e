//! Signing in to the UI with an API token: `GET /ui/sign-in` (the form, or who is signed in),
//! `POST /ui/sign-in`, `POST /ui/sign-out`.
//!
//! Contract:
//! - A valid token is kept in the `modelcat_token` cookie: `HttpOnly`, `SameSite=Strict`, `Path=/ui`
//!   (the APIs never read it, so they stay free of cross-site request forgery), `Secure` behind HTTPS,
//!   for eight hours. The auth guard turns it into the request's bearer token on UI paths only
//!   ([`bearer_from_cookie`]).
//! - An invalid token is a 401 page that says so and shows nothing of the token.
//! - Every UI form that changes something is a POST from the UI's own origin: a cross-origin `Origin`
//!   is a 403 ([`same_origin`]).

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::UiError;
use crate::api::params::form_pairs;
use crate::app::AppState;
use crate::auth::Identity;

/// The cookie that holds a signed-in browser's token.
pub const COOKIE: &str = "modelcat_token";
/// How long a sign-in lasts.
const MAX_AGE_SECS: u32 = 8 * 3600;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    frame: super::frame::Frame,
    /// Who is signed in, and as what.
    signed_in: Option<(&'a str, &'a str)>,
    next: &'a str,
    error: &'a str,
    /// Whether the server checks credentials at all.
    auth_on: bool,
}

/// The bearer token a UI request carries in its cookie, when it sends no `Authorization` of its own.
pub fn bearer_from_cookie(headers: &HeaderMap) -> Option<HeaderValue> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Refuses a request whose `Origin` is another site (a form posted from elsewhere).
pub fn same_origin(headers: &HeaderMap) -> Result<(), UiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or_default();
    let origin_host = origin.to_str().unwrap_or_default().split_once("://").map_or("", |(_, rest)| rest);
    if !host.is_empty() && origin_host == host {
        Ok(())
    } else {
        Err(UiError::new(StatusCode::FORBIDDEN, "This form may only be sent from modelcat's own pages."))
    }
}

/// A `next` target that stays inside the UI.
fn local(next: &str) -> &str {
    if next.starts_with("/ui") && !next.starts_with("//") && !next.contains("\\") { next } else { "/ui" }
}

/// `GET /ui/sign-in`.
pub async fn page(
    State(state): State<AppState>,
    identity: Option<Extension<Identity>>,
    params: crate::api::params::Params,
) -> Response {
    let next = local(params.get("next").unwrap_or_default());
    let identity = identity.map(|Extension(identity)| identity);
    let signed_in = identity.as_ref().map(|identity| (identity.subject.as_str(), identity.role.as_str()));
    let auth_on = !state.authenticator.settings().disabled();
    super::render(&SignInPage { frame: Default::default(), signed_in, next, error: "", auth_on })
}

/// `POST /ui/sign-in`: form fields `token` and `next`.
pub async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    same_origin(&headers)?;
    let fields = form_pairs(std::str::from_utf8(&body).unwrap_or_default());
    let field = |name: &str| fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim().to_owned());
    let token = field("token").unwrap_or_default();
    let next = field("next").unwrap_or_default();
    let next = local(&next);
    let auth_on = !state.authenticator.settings().disabled();
    let refuse = |message: &str| {
        let page = SignInPage { frame: Default::default(), signed_in: None, next, error: message, auth_on };
        (StatusCode::UNAUTHORIZED, super::render(&page)).into_response()
    };
    let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return Ok(refuse("That is not a token."));
    };
    bearer.set_sensitive(true);
    let mut presented = HeaderMap::new();
    presented.insert(header::AUTHORIZATION, bearer);
    match state.authenticator.identify(&presented, peer.map(|Extension(ConnectInfo(peer))| peer.ip()), false).await {
        Ok(Some(_)) if !token.is_empty() => {}
        Ok(_) => return Ok(refuse("Paste an API token to sign in.")),
        Err(error) if error.is_unavailable() => {
            return Err(UiError::new(StatusCode::SERVICE_UNAVAILABLE, "Credentials cannot be checked right now."));
        }
        Err(_) => return Ok(refuse("That token is not valid: it may be mistyped, expired or revoked.")),
    }
    let secure = headers.get("x-forwarded-proto").is_some_and(|proto| proto == "https");
    let cookie = format!(
        "{COOKIE}={token}; Path=/ui; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(next).into_response();
    let mut value = HeaderValue::from_str(&cookie).map_err(|_| UiError::bad_request("That is not a token."))?;
    value.set_sensitive(true);
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// `POST /ui/sign-out`.
pub async fn sign_out(headers: HeaderMap) -> Result<Response, UiError> {
    same_origin(&headers)?;
    let mut response = Redirect::to(super::BASE_PATH).into_response();
    let expired = format!("{COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&expired).expect("ASCII"));
    Ok(response)
}
