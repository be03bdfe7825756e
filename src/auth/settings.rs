//! The `auth` section of the configuration.
//!
//! ```yaml
//! auth:
//!   methods: [token]                # token, oidc and/or proxy; or [none] to turn authentication off
//!   anonymous_read: [catalog, hub]  # areas readable without credentials (also: registry); [] for none
//!   default_role: viewer            # the role of a proxy user whose groups map to none
//!   groups: {ml-admins: admin}      # group → role, for proxy users
//!   proxy:
//!     user_header: kubeflow-userid
//!     groups_header: kubeflow-groups
//!     trusted: [127.0.0.1/32]       # only these addresses may set the identity headers
//!   oidc:                           # see [`super::oidc`]
//!     issuer: https://login.example.com/realms/ml
//!     audience: modelcat
//! ```
//!
//! The defaults are secure: API tokens only, and anonymous reads of the catalog and the Hub mirror.
//! `MODELCAT_ADMIN_TOKEN` in the environment adds one admin token that is not stored anywhere.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Deserialize;

use super::oidc::OidcSettings;
use super::token::Plaintext;
use super::{Area, Role};

/// Validated auth settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// API tokens are accepted.
    pub tokens: bool,
    /// Identities from a trusted proxy's headers are accepted.
    pub proxy: Option<ProxySettings>,
    /// JWTs from an OpenID Connect issuer are accepted.
    pub oidc: Option<OidcSettings>,
    /// Areas anyone may read.
    pub anonymous_read: Vec<Area>,
    pub default_role: Role,
    pub groups: BTreeMap<String, Role>,
    /// An admin token given by the environment (`MODELCAT_ADMIN_TOKEN`), never stored.
    pub admin_token: Option<Plaintext>,
}

impl AuthSettings {
    /// Authentication is off: every caller is an admin.
    pub fn disabled(&self) -> bool {
        !self.tokens && self.proxy.is_none() && self.oidc.is_none()
    }

    /// The methods in force, as the configuration names them.
    pub fn method_names(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.tokens {
            methods.push("token");
        }
        if self.oidc.is_some() {
            methods.push("oidc");
        }
        if self.proxy.is_some() {
            methods.push("proxy");
        }
        if methods.is_empty() {
            methods.push("none");
        }
        methods
    }

    /// What `…/status` and the log say while authentication is off.
    pub fn warning(&self) -> Option<&'static str> {
        self.disabled()
            .then_some("authentication is off (auth.methods: [none]): anyone who can reach this server may change and delete anything")
    }

    /// No authentication at all (local experiments and tests of other features).
    pub fn off() -> AuthSettings {
        AuthSettings { tokens: false, ..AuthSettings::default() }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            tokens: true,
            proxy: None,
            oidc: None,
            anonymous_read: vec![Area::Catalog, Area::Hub],
            default_role: Role::Viewer,
            groups: BTreeMap::new(),
            admin_token: None,
        }
    }
}

/// Where a trusted proxy puts the identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    pub user_header: String,
    pub groups_header: String,
    /// Addresses (`10.0.0.7`) or networks (`10.0.0.0/8`) the headers are accepted from.
    #[serde(deserialize_with = "addresses")]
    pub trusted: Vec<IpNet>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            user_header: "kubeflow-userid".to_owned(),
            groups_header: "kubeflow-groups".to_owned(),
            trusted: Vec::new(),
        }
    }
}

/// Parses addresses and networks: a bare address is a network of one.
fn addresses<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    let parse = |text: &String| {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an IP address or network")))
    };
    texts.iter().map(parse).collect()
}

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFileSettings {
    methods: Vec<String>,
    anonymous_read: Vec<Area>,
    default_role: Role,
    groups: BTreeMap<String, Role>,
    proxy: Option<ProxySettings>,
    oidc: Option<OidcSettings>,
}

impl Default for AuthFileSettings {
    fn default() -> Self {
        let defaults = AuthSettings::default();
        AuthFileSettings {
            methods: vec!["token".to_owned()],
            anonymous_read: defaults.anonymous_read,
            default_role: defaults.default_role,
            groups: defaults.groups,
            proxy: None,
            oidc: None,
        }
    }
}

impl AuthFileSettings {
    /// Validates the section; `admin_token` is `MODELCAT_ADMIN_TOKEN`'s value, if set.
    pub fn settings(self, admin_token: Option<&str>) -> Result<AuthSettings, Vec<String>> {
        let mut problems = Vec::new();
        let mut tokens = false;
        let mut proxy = false;
        let mut oidc = false;
        let none = self.methods.iter().any(|method| method == "none");
        for method in &self.methods {
            match method.as_str() {
                "token" => tokens = true,
                "proxy" => proxy = true,
                "none" => {}
                "oidc" => oidc = true,
                other => problems.push(format!("auth.methods: unknown method {other:?} (token, oidc, proxy or none)")),
            }
        }
        if none && self.methods.len() > 1 {
            problems.push("auth.methods: none cannot be combined with other methods".to_owned());
        }
        if self.methods.is_empty() {
            problems.push("auth.methods must name at least one method (token, oidc, proxy, or none)".to_owned());
        }
        let proxy = match (proxy, self.proxy) {
            (true, Some(settings)) if settings.trusted.is_empty() => {
                problems.push("auth.proxy.trusted must list the proxy's addresses".to_owned());
                None
            }
            (true, Some(settings)) => Some(settings),
            (true, None) => {
                problems.push("auth.methods lists proxy but there is no auth.proxy section".to_owned());
                None
            }
            (false, _) => None,
        };
        let oidc = match (oidc, self.oidc) {
            (true, Some(settings)) => {
                problems.extend(settings.problems());
                Some(settings)
            }
            (true, None) => {
                problems.push("auth.methods lists oidc but there is no auth.oidc section".to_owned());
                None
            }
            (false, _) => None,
        };
        let admin_token = match admin_token.map(Plaintext::parse) {
            None => None,
            Some(Ok(token)) => Some(token),
            Some(Err(error)) => {
                problems.push(format!("MODELCAT_ADMIN_TOKEN: {error}; create one with `modelcat token generate`"));
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AuthSettings {
            tokens,
            proxy,
            oidc,
            anonymous_read: self.anonymous_read,
            default_role: self.default_role,
            groups: self.groups,
            admin_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AuthSettings, Vec<String>> {
        serde_norway::from_str::<AuthFileSettings>(yaml).expect("parses").settings(None)
    }

    #[test]
    fn defaults_are_tokens_with_anonymous_catalog_and_hub_reads() {
        let settings = AuthFileSettings::default().settings(None).expect("valid");
        assert!(settings.tokens && settings.proxy.is_none() && !settings.disabled());
        assert_eq!(settings.anonymous_read, vec![Area::Catalog, Area::Hub]);
    }

    #[test]
    fn bad_combinations_are_named() {
        assert!(parse("methods: [none]\n").expect("valid").disabled());
        let errors = parse("methods: [none, token]\n").unwrap_err();
        assert!(errors[0].contains("cannot be combined"), "{errors:?}");
        let errors = parse("methods: [proxy]\nproxy: {user_header: x-user}\n").unwrap_err();
        assert!(errors[0].contains("trusted"), "{errors:?}");
        assert!(parse("methods: [kerberos]\n").unwrap_err()[0].contains("kerberos"));
        assert!(parse("methods: [oidc]\n").unwrap_err()[0].contains("no auth.oidc section"));
        let hmac = parse("methods: [oidc]\noidc: {issuer: https://i, audience: m, algorithms: [HS256]}\n");
        assert!(hmac.unwrap_err()[0].contains("HS256"));
        let oidc = parse("methods: [token, oidc]\noidc: {issuer: https://i, audience: m}\n").expect("valid");
        assert_eq!(oidc.method_names(), vec!["token", "oidc"]);
        let proxy = parse("methods: [proxy]\nproxy: {trusted: [10.0.0.0/8, 127.0.0.1]}\n").expect("valid");
        assert_eq!(proxy.proxy.expect("proxy").user_header, "kubeflow-userid");
        let bad = AuthFileSettings::default().settings(Some("mct_short")).unwrap_err();
        assert!(bad[0].contains("MODELCAT_ADMIN_TOKEN") && !bad[0].contains("mct_short"), "{bad:?}");
    }
}
