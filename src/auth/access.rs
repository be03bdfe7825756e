//! What a route needs, decided from its method and route template (axum's `MatchedPath`).
//!
//! Rules go by API family. A template no rule knows needs [`Access::Admin`]: a route added without a
//! rule fails closed, and the router-wide test (`tests/api/auth.rs`) fails for it.

use axum::http::Method;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness, metrics, API documents, unknown paths (404) and `whoami`.
    Public,
    /// Reading an area; anonymous when the area is listed in `auth.anonymous_read`.
    Read(Area),
    /// Following the change feed.
    Feed,
    /// Changing the registry (or previewing a catalog source, which reads files on the server).
    Write,
    /// Tokens and the test reset endpoint.
    Admin,
}

/// The readable parts of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// The Kubeflow Model Catalog API.
    Catalog,
    /// The Hugging Face Hub-compatible API.
    Hub,
    /// The Kubeflow Model Registry API.
    Registry,
}

/// What a request to `template` (a route template, or `None` for an unmatched path) with `method` needs.
pub fn required(method: &Method, template: Option<&str>) -> Access {
    let Some(template) = template else { return Access::Public };
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if let Some(rest) = template.strip_prefix("/api/model_registry/") {
        let (_, route) = rest.split_once('/').unwrap_or((rest, ""));
        return match route {
            "openapi.yaml" => Access::Public,
            "testing/reset" => Access::Admin,
            _ if reads => Access::Read(Area::Registry),
            _ => Access::Write,
        };
    }
    if let Some(rest) = template.strip_prefix("/api/model_catalog/").or(template.strip_prefix("/api/mcp_catalog/")) {
        let (_, route) = rest.split_once('/').unwrap_or((rest, ""));
        return match route {
            "openapi.yaml" => Access::Public,
            "sources/preview" => Access::Write,
            _ if reads => Access::Read(Area::Catalog),
            _ => Access::Admin,
        };
    }
    if let Some(route) = template.strip_prefix("/api/modelcat/v1/") {
        return match route {
            "changes" | "snapshot" => Access::Feed,
            "whoami" | "openapi.yaml" => Access::Public,
            "status" | "search" => Access::Read(Area::Catalog),
            // Per-model permissions: the handlers require read, or manage, on the model.
            "registered_models/{id}/permissions" if reads => Access::Read(Area::Registry),
            "registered_models/{id}/permissions/{principal}" if !reads => Access::Write,
            _ => Access::Admin,
        };
    }
    // Governance: the handlers require read, edit or manage on the model. Policies and evaluation
    // suites apply to every model: changing them is an admin's. A policy check only reads.
    if let Some(route) = template.strip_prefix("/api/governance/v1/") {
        return match route {
            "openapi.yaml" => Access::Public,
            "model_versions/{id}/policy_check" => Access::Read(Area::Registry),
            "policies" | "evaluation_suites/{name}" if !reads => Access::Admin,
            _ if reads => Access::Read(Area::Registry),
            _ => Access::Write,
        };
    }
    // The Hub API: listing, model documents (`paths-info` is a POST that reads) and file resolution.
    if template == "/api/models" || template.starts_with("/api/models/") || template.contains("/resolve/") {
        return Access::Read(Area::Hub);
    }
    // The web UI: its registry pages read the registry and registering writes it; signing in, static
    // files and the trailing-slash redirect are public; every other page reads the catalog.
    if template == "/ui" || template.starts_with("/ui/") {
        return match template {
            "/ui/" | "/ui/assets/{file}" | "/ui/sign-in" | "/ui/sign-out" => Access::Public,
            "/ui/register" if !reads => Access::Write,
            "/ui/tokens" | "/ui/tokens/{id}/revoke" => Access::Admin,
            _ if template.starts_with("/ui/registry") && reads => Access::Read(Area::Registry),
            _ if reads => Access::Read(Area::Catalog),
            _ => Access::Admin,
        };
    }
    match template {
        "/healthz" | "/readyz" | "/readyz/health" | "/readyz/isDirty" | "/metrics" | "/api" | "/" => Access::Public,
        _ => Access::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_map_to_their_access() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            required(&get, Some("/api/model_registry/v1alpha3/registered_models")),
            Access::Read(Area::Registry)
        );
        assert_eq!(required(&Method::PATCH, Some("/api/model_registry/v1/model_versions/{id}")), Access::Write);
        assert_eq!(required(&post, Some("/api/model_registry/v1alpha3/testing/reset")), Access::Admin);
        assert_eq!(required(&get, Some("/api/model_registry/v1alpha3/openapi.yaml")), Access::Public);
        assert_eq!(required(&get, Some("/api/model_catalog/v1alpha1/models")), Access::Read(Area::Catalog));
        assert_eq!(required(&get, Some("/api/mcp_catalog/v1/mcp_servers/{server_id}")), Access::Read(Area::Catalog));
        assert_eq!(required(&post, Some("/api/model_catalog/v1alpha1/sources/preview")), Access::Write);
        assert_eq!(required(&get, Some("/api/modelcat/v1/changes")), Access::Feed);
        assert_eq!(required(&post, Some("/api/modelcat/v1/tokens")), Access::Admin);
        let permissions = "/api/modelcat/v1/registered_models/{id}/permissions";
        assert_eq!(required(&get, Some(permissions)), Access::Read(Area::Registry));
        assert_eq!(required(&Method::PUT, Some(&format!("{permissions}/{{principal}}"))), Access::Write);
        assert_eq!(required(&post, Some("/api/models/{*rest}")), Access::Read(Area::Hub));
        let transitions = "/api/governance/v1/model_versions/{id}/transitions";
        assert_eq!(required(&get, Some(transitions)), Access::Read(Area::Registry));
        assert_eq!(required(&post, Some(transitions)), Access::Write);
        assert_eq!(required(&Method::PUT, Some("/api/governance/v1/policies")), Access::Admin);
        assert_eq!(required(&get, Some("/api/governance/v1/policies")), Access::Read(Area::Registry));
        let check = "/api/governance/v1/model_versions/{id}/policy_check";
        assert_eq!(required(&post, Some(check)), Access::Read(Area::Registry));
        assert_eq!(required(&get, Some("/{owner}/{name}/resolve/{*rest}")), Access::Read(Area::Hub));
        assert_eq!(required(&get, Some("/healthz")), Access::Public);
        assert_eq!(required(&get, None), Access::Public);
        assert_eq!(required(&get, Some("/something/new")), Access::Admin, "unknown routes fail closed");
    }
}
