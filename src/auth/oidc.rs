//! OpenID Connect: JWT bearer tokens checked against an issuer's keys.
//!
//! - The issuer's JWKS URL comes from discovery (`<issuer>/.well-known/openid-configuration`), fetched on
//!   the first token (so a server starts while its issuer is down, and says so on the first request).
//! - The accepted algorithms are pinned by the configuration, never taken from a token's header; HMAC
//!   algorithms and `none` are refused outright, so a token signed with the issuer's public key as an
//!   HMAC secret cannot pass.
//! - A token naming an unknown `kid` refetches the key set, at most once per `refetch_interval_secs`
//!   (so a flood of bogus `kid`s cannot hammer the issuer); a key rotation is picked up that way.
//! - Issuer and audience must match; `exp` and `nbf` are checked with `leeway_secs` of clock skew.
//! - The user is `username_claim` (default `sub`); `groups_claim` (a list or a string) maps to roles
//!   through `auth.groups`, else `auth.default_role`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::sync::Mutex;

use super::{Credential, Identity, Role};

/// The `auth.oidc` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL, exactly as tokens carry it in `iss`.
    pub issuer: String,
    /// The audience tokens must carry in `aud` (the client id modelcat is registered under).
    pub audience: String,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_refetch")]
    pub refetch_interval_secs: u64,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::ES256]
}
fn default_username_claim() -> String {
    "sub".to_owned()
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_leeway() -> u64 {
    60
}
fn default_refetch() -> u64 {
    60
}

impl OidcSettings {
    /// Problems with the section, if any.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            problems.push(format!("auth.oidc.issuer {:?} must be an http(s) URL", self.issuer));
        }
        if self.audience.trim().is_empty() {
            problems.push("auth.oidc.audience must not be empty".to_owned());
        }
        if self.algorithms.is_empty() {
            problems.push("auth.oidc.algorithms must name at least one algorithm".to_owned());
        }
        for algorithm in &self.algorithms {
            if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                problems.push(format!("auth.oidc.algorithms: {algorithm:?} (a shared secret) is not accepted"));
            }
        }
        problems
    }
}

/// Why a JWT was refused (the message is what the client sees: never the token).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid token: unknown signing key")]
    UnknownKey,
    #[error("cannot reach the OIDC issuer to check the token")]
    Issuer(String),
}

/// Verifies JWTs of one issuer; share it behind an `Arc`.
pub struct OidcVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    jwks_uri: Option<String>,
    by_kid: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    fetched: Option<Instant>,
    fetches: u64,
}

/// The claims modelcat reads; `exp`, `nbf`, `iss` and `aud` are checked by the validation itself.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(flatten)]
    other: BTreeMap<String, Json>,
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings) -> OidcVerifier {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        OidcVerifier { settings, http, keys: Mutex::new(Keys::default()) }
    }

    /// How many times the key set was fetched (tests check the refetch limit).
    pub async fn fetches(&self) -> u64 {
        self.keys.lock().await.fetches
    }

    /// Checks `token` and returns who it names; `groups` maps groups to roles.
    pub async fn verify(
        &self,
        token: &str,
        groups: &BTreeMap<String, Role>,
        default_role: Role,
    ) -> Result<Identity, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| OidcError::Invalid(error.to_string()))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(OidcError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let key = self.key(&kid).await?;
        if key.1.is_some_and(|algorithm| algorithm != header.alg) {
            return Err(OidcError::Invalid("the token's algorithm does not match its key".to_owned()));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.settings.audience]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.0, &validation)
            .map_err(|error| OidcError::Invalid(error.to_string()))?;
        let claims = data.claims.other;
        let subject = claims.get(&self.settings.username_claim).and_then(Json::as_str).filter(|name| !name.is_empty());
        let subject = subject
            .ok_or_else(|| OidcError::Invalid(format!("the {} claim is missing", self.settings.username_claim)))?
            .to_owned();
        let names: Vec<String> = match claims.get(&self.settings.groups_claim) {
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).map(str::to_owned).collect(),
            Some(Json::String(text)) => text.split(',').map(|group| group.trim().to_owned()).collect(),
            _ => Vec::new(),
        };
        let role = names.iter().filter_map(|group| groups.get(group).copied()).max().unwrap_or(default_role);
        Ok(Identity { subject, role, groups: names, credential: Credential::Oidc, models: None, sources: None })
    }

    /// The key `kid` names, refetching the key set when it is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), OidcError> {
        let mut keys = self.keys.lock().await;
        if let Some(found) = lookup(&keys, kid) {
            return Ok(found);
        }
        let interval = Duration::from_secs(self.settings.refetch_interval_secs);
        if keys.fetched.is_some_and(|fetched| fetched.elapsed() < interval) {
            return Err(OidcError::UnknownKey);
        }
        keys.fetched = Some(Instant::now());
        keys.fetches += 1;
        self.fetch(&mut keys).await?;
        lookup(&keys, kid).ok_or(OidcError::UnknownKey)
    }

    /// A JSON document from the issuer (errors name no URL: it may carry credentials).
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let issuer = |error: reqwest::Error| OidcError::Issuer(error.without_url().to_string());
        let response = self.http.get(url).send().await.and_then(|response| response.error_for_status());
        response.map_err(issuer)?.json().await.map_err(issuer)
    }

    async fn fetch(&self, keys: &mut Keys) -> Result<(), OidcError> {
        if keys.jwks_uri.is_none() {
            let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
            let discovery: Json = self.get_json(&url).await?;
            let uri =
                discovery["jwks_uri"].as_str().ok_or_else(|| OidcError::Issuer("no jwks_uri in discovery".into()))?;
            keys.jwks_uri = Some(uri.to_owned());
        }
        let uri = keys.jwks_uri.clone().unwrap_or_default();
        let set: JwkSet = self.get_json(&uri).await?;
        keys.by_kid.clear();
        for jwk in &set.keys {
            // Shared-secret keys are never accepted from a key set.
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            let algorithm = jwk.common.key_algorithm.as_ref().and_then(|algorithm| algorithm.to_string().parse().ok());
            keys.by_kid.insert(jwk.common.key_id.clone().unwrap_or_default(), (key, algorithm));
        }
        tracing::info!(keys = keys.by_kid.len(), issuer = %self.settings.issuer, "fetched the OIDC signing keys");
        Ok(())
    }
}

/// The key for `kid`; a token without a `kid` may use the only key of a one-key set.
fn lookup(keys: &Keys, kid: &str) -> Option<(DecodingKey, Option<Algorithm>)> {
    if let Some(found) = keys.by_kid.get(kid) {
        return Some(found.clone());
    }
    (kid.is_empty() && keys.by_kid.len() == 1).then(|| keys.by_kid.values().next().cloned()).flatten()
}

/// Whether a bearer credential looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}
