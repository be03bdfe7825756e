//! Cross-origin requests from browsers (CORS).
//!
//! Contract:
//! - Only configured origins may call the API from another origin's pages: an exact origin
//!   (`https://portal.example.com`) or a wildcard subdomain (`https://*.example.com`, which matches
//!   `https://a.example.com` and `https://a.b.example.com` but not `https://example.com`). The default is
//!   none: same-origin only.
//! - Every route answers a preflight (`OPTIONS`) before authentication, so a browser can ask before it
//!   sends credentials; a preflight from an origin that is not allowed gets no `Access-Control-Allow-Origin`
//!   and the browser stops there.
//! - `Access-Control-Allow-Credentials` (cookies, client certificates) is sent only to exact origins, and
//!   only when `allow_credentials` is on. Bearer tokens in `Authorization` need no credentials mode.
//! - The configuration is validated as a whole at start: every problem is reported, none is guessed around.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, request::Parts};
use serde::Deserialize;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

/// The `cors` section of the server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed to call the API: `scheme://host[:port]`, or `scheme://*.domain[:port]`.
    pub allowed_origins: Vec<String>,
    /// Methods a cross-origin page may use.
    pub allowed_methods: Vec<String>,
    /// Request headers a cross-origin page may send.
    pub allowed_headers: Vec<String>,
    /// Response headers a cross-origin page may read (beyond the CORS-safelisted ones).
    pub exposed_headers: Vec<String>,
    /// How long a browser may cache a preflight's answer, in seconds.
    pub max_age_secs: u64,
    /// Sends `Access-Control-Allow-Credentials: true` to exact origins (never to wildcards).
    pub allow_credentials: bool,
}

impl Default for CorsSettings {
    fn default() -> Self {
        let strings = |values: &[&str]| values.iter().map(|value| (*value).to_owned()).collect();
        CorsSettings {
            allowed_origins: Vec::new(),
            allowed_methods: strings(&["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
            allowed_headers: strings(&["authorization", "content-type", "if-none-match", "if-match", "x-request-id"]),
            exposed_headers: strings(&[
                "etag",
                "link",
                "x-request-id",
                "x-repo-commit",
                "x-linked-etag",
                "x-linked-size",
                "x-error-code",
                "x-error-message",
                "content-range",
                "deprecation",
                "sunset",
            ]),
            max_age_secs: 600,
            allow_credentials: false,
        }
    }
}

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Matches exactly this origin (lower-cased).
    Exact(String),
    /// `scheme://*.domain[:port]`: any subdomain of `domain`, on that scheme and port.
    Subdomain { scheme: String, domain: String, port: Option<String> },
}

impl Pattern {
    fn parse(origin: &str) -> Result<Pattern, String> {
        let invalid = |why: &str| format!("{origin:?} {why}");
        let (scheme, rest) = origin.split_once("://").ok_or_else(|| invalid("must start with http:// or https://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(invalid("must start with http:// or https://"));
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(invalid("must be an origin: scheme://host[:port], with no path"));
        }
        let rest = rest.to_ascii_lowercase();
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal without a port ends with its bracket.
            Some((host, port)) if !rest.ends_with(']') => {
                if port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(invalid("has an invalid port"));
                }
                (host.to_owned(), Some(port.to_owned()))
            }
            _ => (rest.clone(), None),
        };
        match host.strip_prefix("*.") {
            Some(domain) => {
                if domain.is_empty() || domain.contains('*') || !domain.contains('.') {
                    return Err(invalid("must name a domain below the wildcard, like https://*.example.com"));
                }
                Ok(Pattern::Subdomain { scheme, domain: domain.to_owned(), port })
            }
            None if host.contains('*') => {
                Err(invalid("may use * only as a whole leftmost label (https://*.example.com)"))
            }
            None if host.is_empty() => Err(invalid("has no host")),
            None => Ok(Pattern::Exact(format!("{scheme}://{rest}"))),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Pattern::Exact(exact) => origin.eq_ignore_ascii_case(exact),
            Pattern::Subdomain { scheme, domain, port } => {
                let origin = origin.to_ascii_lowercase();
                let Some(rest) = origin.strip_prefix(scheme.as_str()).and_then(|rest| rest.strip_prefix("://")) else {
                    return false;
                };
                let (host, origin_port) = match rest.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                };
                origin_port == port.as_deref()
                    && host.strip_suffix(domain.as_str()).is_some_and(|label| label.len() > 1 && label.ends_with('.'))
            }
        }
    }
}

impl CorsSettings {
    /// Every problem with the section, empty when it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .allowed_origins
            .iter()
            .filter_map(|origin| origin_problem(origin).map(|problem| format!("cors.allowed_origins: {problem}")))
            .collect();
        for method in &self.allowed_methods {
            if Method::from_bytes(method.as_bytes()).is_err() {
                problems.push(format!("cors.allowed_methods: {method:?} is not an HTTP method"));
            }
        }
        for (section, names) in [("allowed_headers", &self.allowed_headers), ("exposed_headers", &self.exposed_headers)]
        {
            for name in names {
                if name == "*" || HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(format!("cors.{section}: {name:?} is not a header name"));
                }
            }
        }
        problems
    }

    /// The layer answering preflights and adding CORS headers. Call [`CorsSettings::problems`] first:
    /// invalid entries are skipped here.
    pub fn layer(&self) -> CorsLayer {
        let patterns: Vec<Pattern> =
            self.allowed_origins.iter().filter_map(|origin| Pattern::parse(origin).ok()).collect();
        let exact: Vec<Pattern> =
            patterns.iter().filter(|pattern| matches!(pattern, Pattern::Exact(_))).cloned().collect();
        let allowed = move |origin: &HeaderValue, _: &Parts| {
            origin.to_str().is_ok_and(|origin| patterns.iter().any(|pattern| pattern.matches(origin)))
        };
        let credentials = self.allow_credentials;
        let with_credentials = move |origin: &HeaderValue, _: &Parts| {
            credentials && origin.to_str().is_ok_and(|origin| exact.iter().any(|pattern| pattern.matches(origin)))
        };
        let headers = |names: &[String]| -> Vec<HeaderName> {
            names.iter().filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()).collect()
        };
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(allowed))
            .allow_credentials(AllowCredentials::predicate(with_credentials))
            .allow_methods(
                self.allowed_methods
                    .iter()
                    .filter_map(|method| Method::from_bytes(method.as_bytes()).ok())
                    .collect::<Vec<_>>(),
            )
            .allow_headers(headers(&self.allowed_headers))
            .expose_headers(headers(&self.exposed_headers))
            .max_age(Duration::from_secs(self.max_age_secs))
    }
}

/// What is wrong with an origin pattern (`scheme://host[:port]` or `scheme://*.domain[:port]`), if anything.
pub fn origin_problem(origin: &str) -> Option<String> {
    Pattern::parse(origin).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(origin: &str) -> Pattern {
        Pattern::parse(origin).unwrap()
    }

    #[test]
    fn exact_origins_match_only_themselves() {
        let exact = pattern("https://Portal.example.com");
        assert!(exact.matches("https://portal.example.com"));
        assert!(!exact.matches("http://portal.example.com"));
        assert!(!exact.matches("https://portal.example.com:8443"));
        assert!(!exact.matches("https://evil-portal.example.com"));
        assert!(pattern("http://127.0.0.1:5173").matches("http://127.0.0.1:5173"));
    }

    #[test]
    fn wildcards_match_subdomains_on_the_same_scheme_and_port() {
        let wildcard = pattern("https://*.example.com");
        assert!(wildcard.matches("https://a.example.com"));
        assert!(wildcard.matches("https://a.b.example.com"));
        assert!(!wildcard.matches("https://example.com"));
        assert!(!wildcard.matches("https://evilexample.com"));
        assert!(!wildcard.matches("https://a.example.com.evil.net"));
        assert!(!wildcard.matches("http://a.example.com"));
        assert!(!wildcard.matches("https://a.example.com:8443"));
        assert!(pattern("http://*.example.com:8080").matches("http://x.example.com:8080"));
    }

    #[test]
    fn invalid_origins_are_reported_each() {
        let settings = CorsSettings {
            allowed_origins: [
                "*",
                "example.com",
                "https://a.com/path",
                "https://*.com",
                "https://a*.b.com",
                "ftp://x.y",
            ]
            .map(str::to_owned)
            .to_vec(),
            allowed_methods: vec!["GET".to_owned(), "G ET".to_owned()],
            allowed_headers: vec!["*".to_owned()],
            ..CorsSettings::default()
        };
        let problems = settings.problems();
        assert_eq!(problems.len(), 8, "{problems:#?}");
        assert!(problems[0].contains("\"*\""), "{}", problems[0]);
        assert!(CorsSettings::default().problems().is_empty());
    }
}
