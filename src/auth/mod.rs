//! Who may do what: identities, roles, what each route needs, and API tokens.
//!
//! - [`settings`]: the `auth` section (methods, anonymous reads, group → role mapping, trusted proxies).
//! - [`token`]: the token format (`mct_…` with a checksum); only digests are stored.
//! - [`tokens`]: the token table (create, list, revoke, look up), and the bootstrap admin token.
//! - [`authenticate`]: turns a request's credentials into an [`Identity`] (tokens, OIDC JWTs, trusted
//!   proxy headers).
//! - [`oidc`]: JWT verification against an OpenID Connect issuer's keys.
//! - [`access`]: what each route needs ([`Access`]), decided from its route template, failing closed.
//! - [`cli`]: `modelcat token create|list|revoke|generate`.
//!
//! The HTTP layer ([`crate::api::auth`]) asks [`authenticate::Authenticator`] for the caller and
//! [`Role::allows`] for the decision, and answers 401/403 in each API family's envelope. This module
//! depends on the store only.

pub mod access;
pub mod authenticate;
pub mod cli;
pub mod oidc;
pub mod settings;
pub mod token;
pub mod tokens;

pub use access::{Access, Area};
pub use authenticate::Authenticator;
pub use settings::AuthSettings;

/// What an identity may do, from least to most.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Follows the change feed (`/api/modelcat/v1/changes`, `/snapshot`) and reads the catalog and the Hub
    /// mirror: what a peer registry needs, nothing more.
    Follower,
    /// Reads everything except tokens.
    Viewer,
    /// Reads, and registers, changes and deletes registered models and their versions and artifacts.
    Editor,
    /// Everything, including tokens and the test reset endpoint.
    Admin,
}

impl Role {
    /// Whether this role may make a request that needs `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Public => true,
            Access::Read(Area::Catalog | Area::Hub) | Access::Feed => true,
            Access::Read(Area::Registry) => self != Role::Follower,
            Access::Write => matches!(self, Role::Editor | Role::Admin),
            Access::Admin => self == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "follower" => Ok(Role::Follower),
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (follower, viewer, editor or admin)")),
        }
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Credential {
    /// A modelcat API token (by its id; `None` for the admin token given by the environment).
    Token { id: Option<i64> },
    /// Headers set by a trusted authenticating proxy.
    Proxy,
    /// A JWT from the configured OpenID Connect issuer.
    Oidc,
    /// Authentication is off (`methods: [none]`): every caller acts as an admin.
    Disabled,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The user or token name, as the audit log and `created_by` record it.
    pub subject: String,
    pub role: Role,
    pub groups: Vec<String>,
    pub credential: Credential,
    /// The registered models (by name) a restricted token may touch; `None` when unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The catalog sources (by id) a restricted token reads; `None` when unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_their_docs_say() {
        let reads = [Access::Read(Area::Catalog), Access::Read(Area::Hub), Access::Feed];
        for role in [Role::Follower, Role::Viewer, Role::Editor, Role::Admin] {
            assert!(reads.iter().all(|access| role.allows(*access)), "{role:?} reads");
            assert!(role.allows(Access::Public));
        }
        assert!(!Role::Follower.allows(Access::Read(Area::Registry)));
        assert!(Role::Viewer.allows(Access::Read(Area::Registry)));
        assert!(!Role::Viewer.allows(Access::Write));
        assert!(Role::Editor.allows(Access::Write));
        assert!(!Role::Editor.allows(Access::Admin));
        assert!(Role::Admin.allows(Access::Admin));
        assert_eq!("editor".parse(), Ok(Role::Editor));
        assert!("root".parse::<Role>().is_err());
    }
}
