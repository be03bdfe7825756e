//! Turns a request's credentials into an [`Identity`].
//!
//! - `Authorization: Bearer mct_…`: an API token, checked for format and checksum first, then looked up
//!   by digest (found rows are cached for [`CACHE_TTL`], so a token revoked on another replica stops
//!   working within that time; on this replica at once). Its last use is recorded at most once a minute.
//! - `Authorization: Bearer eyJ…` (a JWT) with OIDC configured: checked by [`OidcVerifier`].
//! - Proxy headers (`kubeflow-userid`, …): only from a trusted address; groups map to roles.
//! - Nothing: anonymous (`Ok(None)`), which the caller allows or answers 401.
//!
//! A credential that is not modelcat's (say, a Hugging Face `hf_…` token that `huggingface_hub` sends
//! from the user's login) is ignored where anonymous access is allowed, and refused elsewhere. A
//! malformed, unknown, revoked or expired modelcat token is always refused.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};

use super::oidc::{OidcError, OidcVerifier, looks_like_jwt};
use super::settings::AuthSettings;
use super::token::{FormatError, Plaintext};
use super::tokens::{self, TokenRecord, Usability};
use super::{Credential, Identity, Role};
use crate::store::{Backend, DbError, now_millis};

/// How long a looked-up token is trusted without reading it again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How often a token's last use is written.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Why credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send Authorization: Bearer <token>")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Scheme,
    #[error("{0}")]
    Format(FormatError),
    #[error("unknown token")]
    Unknown,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token expired")]
    Expired,
    #[error("cannot check credentials right now")]
    Unavailable(#[source] DbError),
    #[error(transparent)]
    Oidc(OidcError),
}

impl AuthError {
    /// The credentials could not be checked (the store or the issuer is down): 503, not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::Unavailable(_) | AuthError::Oidc(OidcError::Issuer(_)))
    }
}

/// Authenticates requests; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    oidc: Option<OidcVerifier>,
    backend: Arc<dyn Backend>,
    admin_digest: Option<String>,
    cache: moka::sync::Cache<String, Arc<TokenRecord>>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, backend: Arc<dyn Backend>) -> Authenticator {
        let admin_digest = settings.admin_token.as_ref().map(Plaintext::digest);
        let cache = moka::sync::Cache::builder().max_capacity(10_000).time_to_live(CACHE_TTL).build();
        let oidc = settings.oidc.clone().map(OidcVerifier::new);
        Authenticator { inner: Arc::new(Inner { settings, oidc, backend, admin_digest, cache }) }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// Forgets cached tokens (after a revocation, so it takes effect here at once).
    pub fn forget_cached(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Who sent a request. `lenient` (anonymous access would be allowed) ignores credentials that are
    /// not modelcat's instead of refusing them.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        lenient: bool,
    ) -> Result<Option<Identity>, AuthError> {
        let settings = &self.inner.settings;
        if settings.disabled() {
            let credential = Credential::Disabled;
            return Ok(Some(Identity {
                subject: "anonymous".into(),
                role: Role::Admin,
                groups: vec![],
                credential,
                models: None,
                sources: None,
            }));
        }
        if let Some(identity) = self.from_proxy(headers, peer) {
            return Ok(Some(identity));
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
        if !settings.tokens && self.inner.oidc.is_none() {
            // Proxies commonly pass the Authorization header through; only their headers count.
            return Ok(None);
        }
        let text = value.to_str().unwrap_or_default();
        let Some(presented) = bearer(text) else {
            return if lenient { Ok(None) } else { Err(AuthError::Scheme) };
        };
        if let Some(oidc) = &self.inner.oidc
            && looks_like_jwt(presented)
        {
            let identity = oidc.verify(presented, &settings.groups, settings.default_role).await;
            return identity.map(Some).map_err(AuthError::Oidc);
        }
        let parsed = if settings.tokens { Plaintext::parse(presented) } else { Err(FormatError::Foreign) };
        let secret = match parsed {
            Ok(secret) => secret,
            Err(FormatError::Foreign) if lenient => return Ok(None),
            Err(error) => return Err(AuthError::Format(error)),
        };
        self.from_token(&secret).await.map(Some)
    }

    /// The OIDC verifier, when OIDC is configured.
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        self.inner.oidc.as_ref()
    }

    async fn from_token(&self, secret: &Plaintext) -> Result<Identity, AuthError> {
        let digest = secret.digest();
        if self.inner.admin_digest.as_deref() == Some(digest.as_str()) {
            let credential = Credential::Token { id: None };
            let subject = "admin (MODELCAT_ADMIN_TOKEN)".to_owned();
            return Ok(Identity {
                subject,
                role: Role::Admin,
                groups: vec![],
                credential,
                models: None,
                sources: None,
            });
        }
        let record = match self.inner.cache.get(&digest) {
            Some(record) => record,
            None => {
                let found = tokens::by_digest(&*self.inner.backend, &digest).await.map_err(AuthError::Unavailable)?;
                let record = Arc::new(found.ok_or(AuthError::Unknown)?);
                self.inner.cache.insert(digest.clone(), record.clone());
                record
            }
        };
        let now = now_millis();
        match record.usability(now) {
            Usability::Revoked => return Err(AuthError::Revoked),
            Usability::Expired => return Err(AuthError::Expired),
            Usability::Usable => {}
        }
        if record.last_used_at.is_none_or(|used| now - used >= TOUCH_EVERY_MS) {
            self.touch(digest, &record, now);
        }
        let credential = Credential::Token { id: Some(record.id) };
        Ok(Identity {
            subject: format!("token:{}", record.name),
            role: record.role,
            groups: vec![],
            credential,
            models: record.models.clone(),
            sources: record.sources.clone(),
        })
    }

    /// Records a token's use in the background (a failed write only loses the time).
    fn touch(&self, digest: String, record: &TokenRecord, now: i64) {
        let touched = Arc::new(TokenRecord { last_used_at: Some(now), ..record.clone() });
        self.inner.cache.insert(digest, touched);
        let backend = self.inner.backend.clone();
        let id = record.id;
        tokio::spawn(async move {
            if let Err(error) = tokens::touch(&*backend, id, now).await {
                tracing::debug!(%error, token = id, "cannot record the token's last use");
            }
        });
    }

    /// The identity a trusted proxy vouches for.
    fn from_proxy(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Identity> {
        let settings = &self.inner.settings;
        let proxy = settings.proxy.as_ref()?;
        let user = headers.get(proxy.user_header.as_str())?.to_str().ok()?.trim();
        if user.is_empty() {
            return None;
        }
        let trusted = peer.is_some_and(|peer| proxy.trusted.iter().any(|network| network.contains(&peer)));
        if !trusted {
            tracing::warn!(peer = ?peer, header = %proxy.user_header, "identity header from an untrusted address ignored");
            return None;
        }
        let groups: Vec<String> = headers
            .get_all(proxy.groups_header.as_str())
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|group| group.trim().to_owned())
            .filter(|group| !group.is_empty())
            .collect();
        let mapped = groups.iter().filter_map(|group| settings.groups.get(group).copied()).max();
        let role = mapped.unwrap_or(settings.default_role);
        Some(Identity {
            subject: user.to_owned(),
            role,
            groups,
            credential: Credential::Proxy,
            models: None,
            sources: None,
        })
    }
}

/// The credentials of a `Bearer` header (the scheme is case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim()).filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        assert_eq!(super::bearer("Bearer mct_x"), Some("mct_x"));
        assert_eq!(super::bearer("bearer  mct_x "), Some("mct_x"));
        assert_eq!(super::bearer("Basic dXNlcg=="), None);
        assert_eq!(super::bearer("Bearer "), None);
    }
}
