//! The HTTP surface: every API family's router merged under one set of layers.
//!
//! Layers, outermost first: panic catching (500), request ids (`x-request-id`, generated when absent and
//! echoed back), a request span per call, a per-request timeout, a body size limit, request metrics
//! (`http_requests_total` by method, route and status; `http_request_duration_seconds` by route), the
//! alpha paths' deprecation headers ([`families`]), CORS ([`cors`]), authentication and authorization
//! ([`auth::guard`]), and conditional requests ([`conditional`]).
//! Errors outside a handler (unknown paths, 401, 403) use the envelope of the path's [`Family`].

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod conditional;
pub mod cors;
pub mod error;
pub mod families;
pub mod federation;
pub mod governance;
pub mod health;
pub mod hf;
pub mod loading;
pub mod params;
pub mod permissions;
pub mod registry;
pub mod search;
pub mod webhooks;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::ApiSettings;
use error::ApiError;

/// Builds the application router.
pub fn router(state: AppState, api: ApiSettings, reset_endpoint: bool) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let deprecation = api.alpha_deprecation.as_ref().and_then(|deprecation| deprecation.headers().ok());
    let catalog_api = || catalog::router().route_layer(middleware::from_fn_with_state(state.clone(), loading::catalog));
    let mcp_api =
        || catalog::mcp::router().route_layer(middleware::from_fn_with_state(state.clone(), loading::catalog));
    let listing = axum::Json(families::listing(deprecation.is_some()));
    let mut router = Router::new()
        .route("/api", get(move || std::future::ready(listing.clone())))
        .route("/", get(|| std::future::ready(axum::response::Redirect::temporary(crate::ui::BASE_PATH))))
        .nest(registry::BASE_PATH, registry::router(registry::WireVersion::V1Alpha3, reset_endpoint))
        .nest(registry::V1_BASE_PATH, registry::router(registry::WireVersion::V1, reset_endpoint));
    for (path, text) in families::documents() {
        router = router.route(&path, families::document(text));
    }
    router
        .nest(catalog::BASE_PATH, catalog_api())
        .nest(catalog::V1_BASE_PATH, catalog_api())
        .nest(catalog::mcp::BASE_PATH, mcp_api())
        .nest(catalog::mcp::V1_BASE_PATH, mcp_api())
        .nest(
            federation::BASE_PATH,
            federation::router()
                .route_layer(middleware::from_fn_with_state(state.clone(), loading::feed))
                .merge(auth::router())
                .merge(permissions::router())
                .merge(webhooks::router())
                .route("/status", get(catalog::status))
                .route(
                    "/search",
                    get(search::search).route_layer(middleware::from_fn_with_state(state.clone(), loading::catalog)),
                ),
        )
        .nest(governance::BASE_PATH, governance::router())
        .merge(health::router())
        .merge(crate::ui::router(state.clone(), &api.frame_ancestors))
        .merge(hf::router().route_layer(middleware::from_fn_with_state(state.clone(), loading::hub)))
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(state.clone(), conditional::conditional))
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        // Outside authentication: preflights are answered before credentials are asked for, and errors
        // carry the CORS headers a browser needs to read them.
        .layer(api.cors.layer())
        .layer(middleware::from_fn(move |request, next| families::announce(deprecation.clone(), request, next)))
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(api.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(api.request_timeout_secs),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

/// The API families, each with its own error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The Kubeflow registry and catalog (and paths outside `/api/`): `{"code": "Not Found", "message"}`.
    Kubeflow,
    /// The Hub-compatible API: `{"error": "…"}` with `X-Error-Message`.
    Hub,
    /// modelcat's own, `/api/modelcat/` and `/api/governance/`: `{"code": "not_found", "message"}`.
    Modelcat,
    /// The web UI, `/ui`: an HTML page ([`crate::ui::UiError`]).
    Ui,
}

impl Family {
    /// The family a path belongs to: modelcat's under its prefix, the Hub's elsewhere under `/api/` and
    /// for file resolution, Kubeflow's otherwise.
    pub fn of(path: &str) -> Family {
        let kubeflow = ["/api/model_registry/", "/api/model_catalog/", "/api/mcp_catalog/"]
            .iter()
            .any(|prefix| path.starts_with(prefix));
        if path.starts_with("/api/modelcat/") || path.starts_with(governance::BASE_PATH) {
            Family::Modelcat
        } else if path == crate::ui::BASE_PATH || path.starts_with("/ui/") {
            Family::Ui
        } else if (path.starts_with("/api/") && !kubeflow) || path.contains("/resolve/") {
            Family::Hub
        } else {
            Family::Kubeflow
        }
    }

    /// An error in this family's envelope.
    pub fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Family::Kubeflow => ApiError::new(status, message).into_response(),
            Family::Hub => {
                hf::wire::HfError { status, code: None, message: message.to_owned(), commit: None }.into_response()
            }
            Family::Ui => crate::ui::UiError::new(status, message).into_response(),
            Family::Modelcat => {
                let code = match status {
                    StatusCode::BAD_REQUEST => "bad_request",
                    StatusCode::UNAUTHORIZED => "unauthorized",
                    StatusCode::FORBIDDEN => "forbidden",
                    StatusCode::NOT_FOUND => "not_found",
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    _ => "error",
                };
                let body = serde_json::json!({ "code": code, "message": message });
                (status, axum::Json(body)).into_response()
            }
        }
    }
}

/// Unknown paths: 404 in the path's family envelope.
async fn unknown_path(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    match Family::of(path) {
        Family::Modelcat => federation::FeedError::NotFound(format!("no route {path}")).into_response(),
        Family::Hub if path.starts_with("/api/") => hf::unknown_api_path(path),
        _ => ApiError::not_found("not found").into_response(),
    }
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}
