//! The API token table: create, list, revoke and look up tokens, and the one-time bootstrap admin token.
//!
//! Rows hold the token's SHA-256, never its plaintext. A revoked token keeps its row (with the time it
//! was revoked), so a list shows what happened. Tokens are looked up by digest.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Role;
use super::token::Plaintext;
use crate::audit;
use crate::store::sql::{Backend, Col, Row, Sql, Value};
use crate::store::{DbError, now_millis};

/// The file in the data directory the bootstrap admin token is written to (mode 0600).
pub const BOOTSTRAP_FILE: &str = "admin-token";

/// A token as lists show it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The first characters of the token, to tell it apart (`mct_AbCd`).
    pub prefix: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The registered models (by name) the token is restricted to; `None` when unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The catalog sources (by id) the token is restricted to; `None` when unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

/// Whether a token may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    Usable,
    Expired,
    Revoked,
}

impl TokenRecord {
    pub fn usability(&self, now: i64) -> Usability {
        if self.revoked_at.is_some() {
            Usability::Revoked
        } else if self.expires_at.is_some_and(|expires| expires <= now) {
            Usability::Expired
        } else {
            Usability::Usable
        }
    }
}

/// What a new token is.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// When it stops working (ms since the epoch); `None` never.
    pub expires_at: Option<i64>,
    /// Who created it (an identity's subject, or `cli` / `bootstrap`).
    pub created_by: String,
    /// Restricts it to these registered models, by name.
    pub models: Option<Vec<String>>,
    /// Restricts its catalog reads to these sources, by id.
    pub sources: Option<Vec<String>>,
}

const COLUMNS: &str =
    "id, name, role, display_prefix, created_by, created_at, expires_at, last_used_at, revoked_at, models, sources";
const COLS: &[Col] = &[
    Col::Int,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Int,
    Col::Int,
    Col::Int,
    Col::Int,
    Col::Text,
    Col::Text,
];

fn decode(row: Row) -> Result<TokenRecord, DbError> {
    let mut values = row.into_iter();
    let mut next = || values.next().unwrap_or(Value::Null(Col::Int));
    let id = next().as_int().unwrap_or_default();
    let name = next().into_text().unwrap_or_default();
    let role_text = next().into_text().unwrap_or_default();
    let role = role_text.parse().map_err(|error| DbError::Backend(format!("token {id}: {error}")))?;
    Ok(TokenRecord {
        id,
        name,
        role,
        prefix: next().into_text().unwrap_or_default(),
        created_by: next().into_text().unwrap_or_default(),
        created_at: next().as_int().unwrap_or_default(),
        expires_at: next().as_int(),
        last_used_at: next().as_int(),
        revoked_at: next().as_int(),
        models: next().into_text().and_then(|json| serde_json::from_str(&json).ok()),
        sources: next().into_text().and_then(|json| serde_json::from_str(&json).ok()),
    })
}

fn insert(backend: &dyn Backend, token: &NewToken, secret: &Plaintext) -> Sql {
    let list = |names: &Option<Vec<String>>| {
        names
            .as_ref()
            .map_or(Value::Null(Col::Text), |names| Value::Text(serde_json::to_string(names).unwrap_or_default()))
    };
    let mut sql = Sql::new(backend.dialect());
    sql.push(
        "INSERT INTO api_token (name, role, digest, display_prefix, created_by, created_at, expires_at, models, \
         sources) VALUES (",
    )
    .arg(Value::Text(token.name.clone()))
    .push(", ")
    .arg(Value::Text(token.role.as_str().to_owned()))
    .push(", ")
    .arg(Value::Text(secret.digest()))
    .push(", ")
    .arg(Value::Text(secret.display_prefix().to_owned()))
    .push(", ")
    .arg(Value::Text(token.created_by.clone()))
    .push(", ")
    .arg(Value::Int(now_millis()))
    .push(", ")
    .arg(token.expires_at.map_or(Value::Null(Col::Int), Value::Int))
    .push(", ")
    .arg(list(&token.models))
    .push(", ")
    .arg(list(&token.sources))
    .push(") RETURNING ")
    .push(COLUMNS);
    sql
}

/// Creates a token; the plaintext is returned once and never stored.
pub async fn create(backend: &dyn Backend, token: &NewToken) -> Result<(TokenRecord, Plaintext), DbError> {
    let secret = Plaintext::generate();
    let mut transaction = backend.begin().await?;
    let row = transaction.read(&insert(backend, token, &secret), COLS).await?.into_iter().next();
    let row = row.ok_or_else(|| DbError::Backend("the token insert returned no row".into()))?;
    let record = decode(row)?;
    audit::append(&mut *transaction, backend.dialect(), audited("token.create", &record)).await?;
    transaction.commit().await?;
    Ok((record, secret))
}

/// Every token, newest first.
pub async fn list(backend: &dyn Backend) -> Result<Vec<TokenRecord>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT ").push(COLUMNS).push(" FROM api_token ORDER BY id DESC");
    backend.read(&sql, COLS).await?.into_iter().map(decode).collect()
}

/// Revokes a token; `None` when there is no such token. Revoking twice keeps the first time.
pub async fn revoke(backend: &dyn Backend, id: i64) -> Result<Option<TokenRecord>, DbError> {
    let mut transaction = backend.begin().await?;
    let mut sql = Sql::new(backend.dialect());
    sql.push("UPDATE api_token SET revoked_at = COALESCE(revoked_at, ")
        .arg(Value::Int(now_millis()))
        .push(") WHERE id = ")
        .arg(Value::Int(id))
        .push(" RETURNING ")
        .push(COLUMNS);
    let Some(row) = transaction.read(&sql, COLS).await?.into_iter().next() else { return Ok(None) };
    let record = decode(row)?;
    audit::append(&mut *transaction, backend.dialect(), audited("token.revoke", &record)).await?;
    transaction.commit().await?;
    Ok(Some(record))
}

/// The audit record of a token change: the token by id, name and role, never its secret or digest.
fn audited(action: &str, record: &TokenRecord) -> audit::Record {
    audit::Record {
        action: action.to_owned(),
        entity: format!("token/{}", record.id),
        detail: Some(format!("{} ({})", record.name, record.role.as_str())),
        ..audit::Record::default()
    }
}

/// The token with this digest.
pub async fn by_digest(backend: &dyn Backend, digest: &str) -> Result<Option<TokenRecord>, DbError> {
    let mut sql = Sql::new(backend.dialect());
    sql.push("SELECT ").push(COLUMNS).push(" FROM api_token WHERE digest = ").arg(Value::Text(digest.to_owned()));
    backend.read(&sql, COLS).await?.into_iter().next().map(decode).transpose()
}

/// Records that a token was used at `at`.
pub async fn touch(backend: &dyn Backend, id: i64, at: i64) -> Result<(), DbError> {
    let mut transaction = backend.begin().await?;
    let mut sql = Sql::new(backend.dialect());
    sql.push("UPDATE api_token SET last_used_at = ").arg(Value::Int(at)).push(" WHERE id = ").arg(Value::Int(id));
    transaction.execute(&sql).await?;
    transaction.commit().await
}

/// Why the bootstrap token could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot write the bootstrap admin token to {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Creates the bootstrap admin token once per database: the first server to start on a fresh database
/// writes it to `<data_dir>/admin-token` (mode 0600) and returns the path. Later starts, and other
/// replicas of the same database, return `None`. The token row and the claim commit only once the file
/// is written, so a failed write leaves nothing half done.
pub async fn bootstrap(backend: &dyn Backend, data_dir: &Path) -> Result<Option<PathBuf>, BootstrapError> {
    let mut transaction = backend.begin().await?;
    let mut claim = Sql::new(backend.dialect());
    claim
        .push("INSERT INTO store_meta (name, value) VALUES ('bootstrap_admin_token', ")
        .arg(Value::Text(now_millis().to_string()))
        .push(") ON CONFLICT (name) DO NOTHING");
    if transaction.execute(&claim).await? == 0 {
        return Ok(None);
    }
    let token = NewToken {
        name: "bootstrap-admin".to_owned(),
        role: Role::Admin,
        expires_at: None,
        created_by: "bootstrap".to_owned(),
        models: None,
        sources: None,
    };
    let secret = Plaintext::generate();
    let row = transaction.read(&insert(backend, &token, &secret), COLS).await?.into_iter().next();
    let record = decode(row.ok_or_else(|| DbError::Backend("the token insert returned no row".into()))?)?;
    let entry = audited("token.create", &record);
    audit::scope(audit::Actor::named("bootstrap"), audit::append(&mut *transaction, backend.dialect(), entry)).await?;
    let path = data_dir.join(BOOTSTRAP_FILE);
    crate::private_file::write(&path, format!("{}\n", secret.expose()))
        .map_err(|source| BootstrapError::Write { path: path.clone(), source })?;
    transaction.commit().await?;
    Ok(Some(path))
}
