//! modelcat's own APIs, called in process by UI pages as the page's caller ([`Apis`]).
//!
//! A page hands its request's [`Identity`] to the API router directly (the auth guard already decided
//! the page), so the API applies its own validation and per-model permissions, and the audit log records
//! the page's caller, exactly as over HTTP. An error answer becomes the page's error, with the API's
//! message.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value as Json;
use tower::ServiceExt;

use super::{UiError, format};
use crate::api::registry::WireVersion;
use crate::app::AppState;
use crate::auth::Identity;

/// One API's router, called in process.
#[derive(Clone)]
pub struct ApiClient(Router);

/// The APIs UI pages call.
#[derive(Clone)]
pub struct Apis {
    /// The Kubeflow registry API (`v1alpha3` wire), at its routes' own paths.
    pub registry: ApiClient,
    /// modelcat's tokens API (`/tokens`, …).
    pub tokens: ApiClient,
}

impl Apis {
    pub fn new(state: AppState) -> Apis {
        Apis {
            registry: ApiClient(crate::api::registry::router(WireVersion::V1Alpha3, false).with_state(state.clone())),
            tokens: ApiClient(crate::api::auth::router().with_state(state)),
        }
    }
}

impl ApiClient {
    /// Calls `uri` (relative to the API's base path) as `identity`.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        identity: Option<&Identity>,
        body: Option<Json>,
    ) -> Result<Json, UiError> {
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|error| UiError::bad_request(error.to_string()))?;
        if let Some(identity) = identity {
            request.extensions_mut().insert(identity.clone());
        }
        let response = self.0.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20).await.unwrap_or_default();
        let json: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        if status.is_success() {
            Ok(json)
        } else {
            let message = json["message"].as_str().unwrap_or("the request was refused");
            Err(UiError::new(status, format!("The API says: {message}")))
        }
    }

    pub async fn get(&self, uri: &str, identity: Option<&Identity>) -> Result<Json, UiError> {
        self.call(Method::GET, uri, identity, None).await
    }
}

/// A string field of an API answer, or empty.
pub fn text(value: &Json, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

/// A time field of an API answer (milliseconds, as a string or a number) as a date, or empty.
pub fn time(value: &Json, key: &str) -> String {
    let millis = value[key].as_str().and_then(|millis| millis.parse().ok()).or_else(|| value[key].as_i64());
    millis.map(format::date).unwrap_or_default()
}
