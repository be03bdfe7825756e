//! UI pages in other sites' frames, and how every UI page may be framed.
//!
//! Contract:
//! - `?embed=1` renders a page without the site's header and navigation, its links opening a new tab;
//!   the catalog search and model pages (card, performance chart, …) are meant for it. `theme=light` or
//!   `theme=dark` forces a colour scheme (by default the viewer's system decides).
//! - Every UI answer carries a `Content-Security-Policy` whose `frame-ancestors` lists
//!   `api.frame_ancestors`: by default none, so no other site may frame the UI (plus
//!   `X-Frame-Options: DENY` for browsers without CSP). Scripts come from the UI's own assets only.
//! - `GET /ui/oembed?url=…` describes a model page as oEmbed 1.0 JSON (`type: rich`), its `html` an
//!   iframe of the page's embeddable form; model pages link to it for discovery.

use axum::extract::FromRequestParts;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{UiError, format};
use crate::api::params::Params;

/// How a page is framed: with the site's chrome or embedded, and in which colour scheme.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub embed: bool,
    /// `light`, `dark`, or empty for the viewer's choice.
    pub theme: &'static str,
}

impl<S: Send + Sync> FromRequestParts<S> for Frame {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Frame, UiError> {
        let params =
            Params::from_request_parts(parts, state).await.map_err(|error| UiError::bad_request(error.message))?;
        let embed = match params.get("embed").unwrap_or_default() {
            "" | "0" | "false" => false,
            "1" | "true" => true,
            other => return Err(UiError::bad_request(format!("embed {other:?} is not a flag: use 1 or 0"))),
        };
        let theme = match params.get("theme").unwrap_or_default() {
            "" => "",
            "light" => "light",
            "dark" => "dark",
            other => return Err(UiError::bad_request(format!("theme {other:?} is unknown: use light or dark"))),
        };
        Ok(Frame { embed, theme })
    }
}

impl Frame {
    /// The query parameters that keep this framing on another page of the UI.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if self.embed {
            pairs.push(("embed".to_owned(), "1".to_owned()));
        }
        if !self.theme.is_empty() {
            pairs.push(("theme".to_owned(), self.theme.to_owned()));
        }
        pairs
    }
}

/// The security headers of UI answers, made once from `api.frame_ancestors` (checked by the config).
#[derive(Debug, Clone)]
pub struct Policy {
    csp: HeaderValue,
    deny: bool,
}

impl Policy {
    pub fn new(frame_ancestors: &[String]) -> Policy {
        let ancestors = if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; \
             object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
        );
        Policy {
            csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("frame-ancestors 'none'")),
            deny: frame_ancestors.is_empty(),
        }
    }
}

/// Adds the [`Policy`] headers to every UI answer.
pub async fn headers(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.csp.clone());
    if policy.deny {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// Default and largest sizes of an oEmbed frame.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 600;

/// `GET /ui/oembed?url=…[&maxwidth=…&maxheight=…&format=json]`.
pub async fn oembed(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    readable: super::Readable,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, UiError> {
    if params.get("format").is_some_and(|format| !format.is_empty() && format != "json") {
        return Err(UiError::new(axum::http::StatusCode::NOT_IMPLEMENTED, "Only format=json is offered."));
    }
    let url = params
        .get("url")
        .filter(|url| !url.is_empty())
        .ok_or_else(|| UiError::bad_request("Give the url of a model page."))?;
    // The page's path, from an absolute URL on this server or a path.
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let rest = path
        .strip_prefix("/ui/models/")
        .ok_or_else(|| UiError::not_found("Only model pages (/ui/models/{source}/{name}) can be embedded."))?;
    let (source, name) = rest.split_once('/').ok_or_else(|| UiError::not_found("That is not a model page."))?;
    let (source, name) = (crate::api::params::percent_decode(source), crate::api::params::percent_decode(name));
    let model = super::catalog_model(&state, &readable, &source, &name).await?;
    let bound = |key: &str, default: u32| -> Result<u32, UiError> {
        match params.get(key).filter(|value| !value.is_empty()) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|value| *value > 0)
                .map(|value| value.min(default))
                .ok_or_else(|| UiError::bad_request(format!("{key} {text:?} is not a positive number"))),
        }
    };
    let (width, height) = (bound("maxwidth", WIDTH)?, bound("maxheight", HEIGHT)?);
    let base = state.public_base_url.clone().unwrap_or_else(|| {
        let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
        format!("http://{host}")
    });
    let page = format!("{base}{}", super::model::url(&source, &model.record.name, None));
    let title = model.record.name.clone();
    let escape = |text: &str| text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    let html = format!(
        "<iframe src=\"{}?{}\" width=\"{width}\" height=\"{height}\" title=\"{}\" loading=\"lazy\" style=\"border:0\"></iframe>",
        escape(&page),
        format::query(&[("embed".to_owned(), "1".to_owned())]),
        escape(&format!("{title} on modelcat"))
    );
    let body = json!({
        "version": "1.0", "type": "rich", "provider_name": "modelcat", "provider_url": base,
        "title": title, "author_name": model.record.provider, "html": html, "width": width, "height": height,
    });
    Ok(axum::Json(body).into_response())
}
