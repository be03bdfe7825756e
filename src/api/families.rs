//! The API families as a whole: `GET /api` lists them, each version's OpenAPI document is served beside
//! it, and the Kubeflow alpha paths can announce their deprecation.
//!
//! Contract:
//! - `GET /api` (public) lists every family with its versions, base paths and document URLs; the alpha
//!   versions say `deprecated` when the deprecation headers are on. The listing and the documents are
//!   built once.
//! - Each Kubeflow family is served under its alpha path and under `v1` (KEP-0004); the two answer the
//!   same, and so do their documents apart from the base path. modelcat already applies `v1`'s stricter
//!   rules on both (an invalid `orderBy` is a 400).
//! - With `api.alpha_deprecation` set, answers under the alpha paths carry `Deprecation` (RFC 9745),
//!   `Link: <…v1…>; rel="successor-version"` and, when a sunset date is given, `Sunset` (RFC 8594). Off by
//!   default.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{catalog, federation, governance, registry};

/// modelcat's own document (`/api/modelcat/v1/openapi.yaml`).
pub const MODELCAT_OPENAPI: &str = include_str!("modelcat.openapi.yaml");

/// The governance document (`/api/governance/v1/openapi.yaml`).
pub const GOVERNANCE_OPENAPI: &str = include_str!("governance.openapi.yaml");

/// The alpha base paths and the `v1` path that succeeds each.
pub const ALPHA_PATHS: [(&str, &str); 3] = [
    (registry::BASE_PATH, registry::V1_BASE_PATH),
    (catalog::BASE_PATH, catalog::V1_BASE_PATH),
    (catalog::mcp::BASE_PATH, catalog::mcp::V1_BASE_PATH),
];

/// The body of `GET /api`: the families, their versions and documents. The alpha versions say
/// `deprecated` when the deprecation headers are on.
pub fn listing(alpha_deprecated: bool) -> serde_json::Value {
    let alpha = if alpha_deprecated { "deprecated" } else { "alpha" };
    let version = |version: &str, base: &str, status: &str| json!({"version": version, "basePath": base, "openapi": format!("{base}/openapi.yaml"), "status": status});
    json!({
        "families": [
            {
                "id": "model_registry",
                "name": "Kubeflow Model Registry",
                "versions": [
                    version("v1", registry::V1_BASE_PATH, "stable"),
                    version("v1alpha3", registry::BASE_PATH, alpha),
                ],
            },
            {
                "id": "model_catalog",
                "name": "Kubeflow Model Catalog",
                "versions": [
                    version("v1", catalog::V1_BASE_PATH, "stable"),
                    version("v1alpha1", catalog::BASE_PATH, alpha),
                ],
            },
            {
                "id": "mcp_catalog",
                "name": "Kubeflow MCP Catalog",
                "versions": [
                    version("v1", catalog::mcp::V1_BASE_PATH, "stable"),
                    version("v1alpha1", catalog::mcp::BASE_PATH, alpha),
                ],
            },
            {
                "id": "modelcat",
                "name": "modelcat (change feed, snapshot, status, tokens, audit, permissions)",
                "versions": [version("v1", federation::BASE_PATH, "stable")],
            },
            {
                "id": "governance",
                "name": "modelcat governance (lifecycle, reviews, aliases, governance fields)",
                "versions": [version("v1", governance::BASE_PATH, "stable")],
            },
            {
                "id": "huggingface_hub",
                "name": "Hugging Face Hub-compatible (models, files)",
                "versions": [{"version": "hub", "basePath": "/api/models", "openapi": null, "status": "stable",
                              "documentation": "https://huggingface.co/docs/hub/api"}],
            },
        ],
    })
}

/// Every OpenAPI document, by its path.
pub fn documents() -> [(String, &'static str); 8] {
    let at = |base: &str| format!("{base}/openapi.yaml");
    [
        (at(registry::BASE_PATH), registry::openapi::YAML.as_str()),
        (at(registry::V1_BASE_PATH), registry::openapi::YAML_V1.as_str()),
        (at(catalog::BASE_PATH), catalog::OPENAPI),
        (at(catalog::V1_BASE_PATH), catalog::OPENAPI_V1.as_str()),
        (at(catalog::mcp::BASE_PATH), catalog::mcp::OPENAPI),
        (at(catalog::mcp::V1_BASE_PATH), catalog::mcp::OPENAPI_V1.as_str()),
        (at(federation::BASE_PATH), MODELCAT_OPENAPI),
        (at(governance::BASE_PATH), GOVERNANCE_OPENAPI),
    ]
}

/// Serves one document.
pub fn document(text: &'static str) -> axum::routing::MethodRouter<crate::app::AppState> {
    axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/yaml")], text) })
}

/// `api.alpha_deprecation`: announce that the alpha paths will go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlphaDeprecation {
    /// When the alpha paths were deprecated, `YYYY-MM-DD`.
    pub since: String,
    /// When they stop being served, `YYYY-MM-DD` (optional).
    #[serde(default)]
    pub sunset: Option<String>,
}

/// The headers to add, computed once.
#[derive(Debug, Clone)]
pub struct DeprecationHeaders {
    deprecation: HeaderValue,
    sunset: Option<HeaderValue>,
}

impl AlphaDeprecation {
    /// The headers, or what is wrong with the dates.
    pub fn headers(&self) -> Result<DeprecationHeaders, String> {
        let since = unix_seconds(&self.since)
            .ok_or_else(|| format!("api.alpha_deprecation.since {:?} must be a date, YYYY-MM-DD", self.since))?;
        let sunset = match &self.sunset {
            None => None,
            Some(date) => {
                let seconds = unix_seconds(date)
                    .ok_or_else(|| format!("api.alpha_deprecation.sunset {date:?} must be a date, YYYY-MM-DD"))?;
                if seconds < since {
                    return Err("api.alpha_deprecation.sunset must not come before since".to_owned());
                }
                let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds as u64);
                Some(HeaderValue::from_str(&httpdate::fmt_http_date(time)).map_err(|error| error.to_string())?)
            }
        };
        let deprecation = HeaderValue::from_str(&format!("@{since}")).map_err(|error| error.to_string())?;
        Ok(DeprecationHeaders { deprecation, sunset })
    }
}

/// Seconds since the epoch of a `YYYY-MM-DD` date at midnight UTC (days from the civil calendar).
fn unix_seconds(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if date.len() != 10 || !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day < 1 || day > days_in_month[(month - 1) as usize] {
        return None;
    }
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some((era * 146_097 + day_of_era - 719_468) * 86_400)
}

/// Adds the deprecation headers to answers under the alpha paths.
pub async fn announce(headers: Option<DeprecationHeaders>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let successor = headers.as_ref().and_then(|_| {
        ALPHA_PATHS
            .iter()
            .find(|(alpha, _)| path.strip_prefix(alpha).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
            .map(|(_, v1)| *v1)
    });
    let mut response = next.run(request).await;
    if let (Some(headers), Some(successor)) = (headers, successor) {
        let target = response.headers_mut();
        target.insert("deprecation", headers.deprecation);
        if let Some(sunset) = headers.sunset {
            target.insert("sunset", sunset);
        }
        if let Ok(link) = HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\"")) {
            target.append(header::LINK, link);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_epoch_seconds() {
        assert_eq!(unix_seconds("1970-01-01"), Some(0));
        assert_eq!(unix_seconds("2000-03-01"), Some(951_868_800));
        assert_eq!(unix_seconds("2027-06-30"), Some(1_814_313_600));
        for bad in ["2027-02-29", "2027-13-01", "2027-6-30", "tomorrow", "2027-06-31"] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers_follow_the_rfcs() {
        let headers =
            AlphaDeprecation { since: "2026-12-01".into(), sunset: Some("2027-06-30".into()) }.headers().unwrap();
        assert_eq!(headers.deprecation, "@1796083200");
        assert_eq!(headers.sunset.unwrap(), "Wed, 30 Jun 2027 00:00:00 GMT");
        let backwards = AlphaDeprecation { since: "2027-06-30".into(), sunset: Some("2026-12-01".into()) };
        assert!(backwards.headers().is_err());
    }
}
