//! The web UI (`/ui`): server-rendered pages over the catalog, for people.
//!
//! Contract:
//! - Every page works without JavaScript: plain links and GET forms. The pinned htmx ([`assets`]) only
//!   swaps fragments in place. A request with `HX-Request` (and without `HX-History-Restore-Request`) gets
//!   the page's fragment, any other the whole page, at the same URL: the address bar, back, forward and
//!   bookmarks carry the whole state.
//! - Pages read the catalog through the same calls as the Kubeflow catalog API, with the caller's
//!   restrictions ([`Readable`]), and need what it needs (anonymous by default, see `auth.anonymous_read`).
//! - Errors are pages in the UI's own envelope ([`UiError`]): a bad query is a 400 that says what was
//!   wrong, an unknown model a 404, an internal failure a 500 that shows no internals. While the catalog
//!   loads, pages are a 503 that shows the load's progress and reloads itself.
//! - Text is escaped by the templates; a model's README is rendered and sanitized by [`markdown`].
//! - Pages and assets are gzip-compressed for clients that accept it. Assets are immutable at their
//!   hashed URLs; pages are revalidated through the catalog's tags ([`crate::api::conditional`]).
//! - Signing in keeps an API token in an `HttpOnly` cookie scoped to `/ui` ([`session`]); forms that
//!   change something are same-origin POSTs. Registry and token pages call those APIs in process as the
//!   signed-in caller ([`in_process`]).
//! - Search and model pages can be embedded in other sites' frames, where `api.frame_ancestors` allows
//!   ([`frame`]).
//!
//! Pages: [`search`] (`/ui`), [`model`] (`/ui/models/{source}/{name}?tab=…`), [`compare`] (`/ui/compare`),
//! [`registry`] (`/ui/registry`, `/ui/registry/models/{id}`, `POST /ui/register`), [`sources`]
//! (`/ui/sources`, `/ui/mirror`), [`tokens`] (`/ui/tokens`, admins), [`session`] (`/ui/sign-in`).

pub mod assets;
mod chart;
mod compare;
mod format;
pub mod frame;
mod in_process;
pub mod markdown;
mod model;
mod registry;
mod search;
pub mod session;
mod sources;
mod tokens;

use askama::Template;
use axum::Extension;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

pub use crate::api::catalog::Readable;
use crate::app::AppState;

/// Where the UI lives.
pub const BASE_PATH: &str = "/ui";

/// The UI page of a catalog model.
pub fn model_url(source_id: &str, name: &str) -> String {
    model::url(source_id, name, None)
}

/// The UI's routes; `frame_ancestors` are the origins that may frame its pages ([`frame`]).
pub fn router(state: AppState, frame_ancestors: &[String]) -> Router<AppState> {
    let catalog_pages = Router::new()
        .route(BASE_PATH, get(search::page))
        .route("/ui/models/{source_id}/{*name}", get(model::page))
        .route("/ui/sources", get(sources::page))
        .route("/ui/mirror", get(sources::mirror))
        .route("/ui/compare", get(compare::page))
        .route("/ui/oembed", get(frame::oembed))
        .route("/ui/register", post(registry::register))
        .route_layer(middleware::from_fn_with_state(state.clone(), loading));
    catalog_pages
        .route("/ui/registry", get(registry::list))
        .route("/ui/registry/models/{id}", get(registry::model))
        .route("/ui/tokens", get(tokens::page).post(tokens::create))
        .route("/ui/tokens/{id}/revoke", post(tokens::revoke))
        .route("/ui/sign-in", get(session::page).post(session::sign_in))
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/", get(|| std::future::ready(Redirect::permanent(BASE_PATH))))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(Extension(in_process::Apis::new(state)))
        .layer(middleware::from_fn_with_state(frame::Policy::new(frame_ancestors), frame::headers))
        .layer(CompressionLayer::new())
}

/// An error, as a page.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError { status, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<modelcat_index::IndexError> for UiError {
    fn from(error: modelcat_index::IndexError) -> UiError {
        match error {
            modelcat_index::IndexError::Query(message) => UiError::bad_request(message),
            internal => {
                tracing::error!(error = %internal, "UI catalog request failed");
                UiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on the server.")
            }
        }
    }
}

impl From<crate::filter::FilterError> for UiError {
    fn from(error: crate::filter::FilterError) -> UiError {
        UiError::bad_request(error.to_string())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    frame: frame::Frame,
    title: &'a str,
    message: &'a str,
    /// Seconds after which the page reloads itself (while the catalog loads).
    refresh: Option<u32>,
    /// Whether signing in (as someone else) could help.
    sign_in: bool,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let sign_in = matches!(self.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        let page = ErrorPage { frame: frame::Frame::default(), title, message: &self.message, refresh: None, sign_in };
        (self.status, render(&page)).into_response()
    }
}

/// A catalog model the caller may read, from an enabled source; otherwise the 404 that says which part
/// is missing (a source the caller may not read is missing too).
pub async fn catalog_model(
    state: &AppState,
    readable: &Readable,
    source: &str,
    name: &str,
) -> Result<modelcat_index::StoredModel, UiError> {
    let enabled =
        state.catalog.view().sources.iter().any(|view| view.config.id.as_str() == source && view.config.enabled);
    if !enabled || readable.sources().is_some_and(|allowed| !allowed.iter().any(|id| id == source)) {
        return Err(UiError::not_found(format!("There is no source {source:?}.")));
    }
    state
        .catalog
        .model(source, name)
        .await?
        .ok_or_else(|| UiError::not_found(format!("There is no model {name:?} in source {source:?}.")))
}

/// A template as an HTML answer (a template that fails to render is a logged 500).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a UI template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

/// Whether a request asks for a page's fragment (an htmx swap), rather than the whole page.
pub fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && !headers.contains_key("hx-history-restore-request")
}

/// A page or its fragment: either way it varies by `HX-Request`.
pub fn page_or_fragment(fragment: bool, page: &impl Template, part: &impl Template) -> Response {
    let mut response = if fragment { render(part) } else { render(page) };
    response.headers_mut().append(header::VARY, HeaderValue::from_static("hx-request"));
    response
}

/// While the catalog loads: a 503 page with the load's progress that reloads itself.
async fn loading(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let progress = state.catalog.progress();
    if progress.is_loaded() {
        return next.run(request).await;
    }
    let message = crate::api::loading::message(&progress.figures());
    let page = ErrorPage {
        frame: frame::Frame::default(),
        title: "Loading",
        message: &message,
        refresh: Some(2),
        sign_in: false,
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, render(&page)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}
