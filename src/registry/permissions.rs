//! Per registered-model permissions: who may read, edit or manage one model. A model's versions and
//! their artifacts inherit its permissions.
//!
//! The rules, which the store's list filter ([`push_visible`]) and the API's checks share:
//! - A grant gives a [`Level`] on one model to a [`Principal`]: a user (an identity's subject), a group
//!   (from OIDC or proxy headers) or `everyone`.
//! - A caller's level on a model is the highest of `everyone`'s level (read when not set) and the levels
//!   granted to the caller's user and groups. Grants only add: to keep a model private, set `everyone` to
//!   `none` and grant who may read it.
//! - Whoever creates a registered model manages it (a `user` grant written with the model).
//! - Admins manage every model. A token restricted to named models ([`Viewer::models`]) has no level on
//!   any other model, whatever the grants.
//! - A level never lifts a caller above their role: the role decides whether a caller may write at all,
//!   the level on which models.
//! - Only models everyone may read appear in the catalog (and so in its counts, facets and the change
//!   feed): a private model is found through the registry API, by those who may read it.

use std::fmt;

use serde::Serialize;

use crate::store::sql::{Sql, Value};

/// What a principal may do with a model, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    None = 0,
    /// Read the model, its versions and artifacts.
    Read = 1,
    /// Also change them, and register versions and artifacts.
    Edit = 2,
    /// Also delete the model and change its permissions.
    Manage = 3,
}

impl Level {
    pub fn from_int(value: i64) -> Level {
        match value {
            3 => Level::Manage,
            2 => Level::Edit,
            1 => Level::Read,
            _ => Level::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Read => "read",
            Level::Edit => "edit",
            Level::Manage => "manage",
        }
    }
}

/// Whom a grant is for; written `user:<subject>`, `group:<name>` or `everyone`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User(String),
    Group(String),
    Everyone,
}

impl fmt::Display for Principal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(subject) => write!(formatter, "user:{subject}"),
            Principal::Group(group) => write!(formatter, "group:{group}"),
            Principal::Everyone => formatter.write_str("everyone"),
        }
    }
}

impl std::str::FromStr for Principal {
    type Err = String;

    fn from_str(text: &str) -> Result<Principal, String> {
        let invalid = || format!("invalid principal {text:?}: expected user:<name>, group:<name> or everyone");
        if text == "everyone" {
            return Ok(Principal::Everyone);
        }
        let (kind, name) = text.split_once(':').ok_or_else(invalid)?;
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(invalid());
        }
        match kind {
            "user" => Ok(Principal::User(name.to_owned())),
            "group" => Ok(Principal::Group(name.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One grant on a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub principal: Principal,
    pub level: Level,
    pub granted_by: String,
    pub granted_at: i64,
}

/// A registered model's name and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPermissions {
    pub model_id: i64,
    pub name: String,
    /// What every caller who may read the registry has (read unless an `everyone` grant says otherwise).
    pub everyone: Level,
    pub grants: Vec<Grant>,
}

impl ModelPermissions {
    /// `viewer`'s level on this model (see the module docs).
    pub fn level_for(&self, viewer: &Viewer) -> Level {
        if viewer.models.as_ref().is_some_and(|names| !names.contains(&self.name)) {
            return Level::None;
        }
        if viewer.admin {
            return Level::Manage;
        }
        let granted = self
            .grants
            .iter()
            .filter(|grant| viewer.principals.iter().any(|principal| *principal == grant.principal.to_string()))
            .map(|grant| grant.level);
        granted.fold(self.everyone, Level::max)
    }
}

/// A caller, as permissions see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewer {
    /// `user:<subject>` and `group:<name>` for each of the caller's groups; empty for anonymous callers.
    pub principals: Vec<String>,
    /// The registered models a restricted token may touch, by name; `None` when unrestricted.
    pub models: Option<Vec<String>>,
    /// Admins manage every model (within their token's restriction).
    pub admin: bool,
}

impl Viewer {
    /// Whether the viewer sees every model, so lists need no filter.
    pub fn sees_everything(&self) -> bool {
        self.admin && self.models.is_none()
    }
}

/// The level `everyone` has on a model without an `everyone` grant.
pub const DEFAULT_EVERYONE: Level = Level::Read;

/// Appends ` AND <the model with id expression model is visible to viewer>` (see the module docs).
/// `model` is trusted SQL (a column or subquery), never input; names and principals are bound.
pub fn push_visible(sql: &mut Sql, model: &str, viewer: &Viewer) {
    if let Some(names) = &viewer.models {
        sql.push(&format!(" AND {model} IN (SELECT r.id FROM registered_model r WHERE r.name IN (NULL"));
        for name in names {
            sql.push(", ").arg(Value::Text(name.clone()));
        }
        sql.push("))");
    }
    if viewer.admin {
        return;
    }
    sql.push(&format!(
        " AND (COALESCE((SELECT p.level FROM model_permission p WHERE p.registered_model_id = {model} \
         AND p.principal = 'everyone'), {}) >= 1",
        DEFAULT_EVERYONE as i64
    ));
    if !viewer.principals.is_empty() {
        sql.push(&format!(
            " OR EXISTS (SELECT 1 FROM model_permission p WHERE p.registered_model_id = {model} \
             AND p.level >= 1 AND p.principal IN (NULL"
        ));
        for principal in &viewer.principals {
            sql.push(", ").arg(Value::Text(principal.clone()));
        }
        sql.push("))");
    }
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(principal: &str, level: Level) -> Grant {
        Grant { principal: principal.parse().unwrap(), level, granted_by: "t".into(), granted_at: 0 }
    }

    #[test]
    fn principals_round_trip_and_reject_garbage() {
        for text in ["user:alice@example.com", "group:ml-team", "everyone", "user:token:ci"] {
            assert_eq!(text.parse::<Principal>().unwrap().to_string(), text);
        }
        for bad in ["alice", "user:", "team:x", "group:a\nb", ""] {
            assert!(bad.parse::<Principal>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn levels_are_the_highest_grant_within_a_restriction() {
        let permissions = ModelPermissions {
            model_id: 1,
            name: "m".into(),
            everyone: Level::None,
            grants: vec![grant("user:alice", Level::Manage), grant("group:ml", Level::Read)],
        };
        let viewer = |principals: &[&str]| Viewer {
            principals: principals.iter().map(|text| (*text).to_owned()).collect(),
            ..Viewer::default()
        };
        assert_eq!(permissions.level_for(&viewer(&["user:alice"])), Level::Manage);
        assert_eq!(permissions.level_for(&viewer(&["user:bob", "group:ml"])), Level::Read);
        assert_eq!(permissions.level_for(&viewer(&["user:bob"])), Level::None);
        let restricted = Viewer { models: Some(vec!["other".into()]), ..viewer(&["user:alice"]) };
        assert_eq!(permissions.level_for(&restricted), Level::None);
        let admin = Viewer { admin: true, ..Viewer::default() };
        assert_eq!(permissions.level_for(&admin), Level::Manage);
        let open = ModelPermissions { everyone: Level::Read, ..permissions };
        assert_eq!(open.level_for(&viewer(&[])), Level::Read);
    }
}
