//! The `model_permission` table behind [`crate::registry::permissions`]: reading and changing a model's
//! grants, the creator's grant, and the list filter by kind.

use super::{SqlStore, db_error, not_found};
use crate::audit;
use crate::registry::permissions::{self, DEFAULT_EVERYONE, Grant, Level, ModelPermissions, Principal, Viewer};
use crate::registry::schema::{Kind, MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::{RegistryError, now_millis};
use crate::store::sql::{Col, Sql, Transaction, Value};

const GRANT_COLS: &[Col] = &[Col::Text, Col::Text, Col::Int, Col::Text, Col::Int];

impl SqlStore {
    /// A model's name and grants, in one query.
    pub(super) async fn read_permissions(&self, model: i64) -> Result<ModelPermissions, RegistryError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT r.name, p.principal, p.level, p.granted_by, p.granted_at FROM registered_model r \
             LEFT JOIN model_permission p ON p.registered_model_id = r.id WHERE r.id = ",
        )
        .arg(Value::Int(model))
        .push(" ORDER BY p.principal");
        let rows = self.db.read(&sql, GRANT_COLS).await.map_err(db_error)?;
        let mut permissions =
            ModelPermissions { model_id: model, name: String::new(), everyone: DEFAULT_EVERYONE, grants: Vec::new() };
        if rows.is_empty() {
            return Err(not_found(&REGISTERED_MODEL, model));
        }
        for row in rows {
            let mut values = row.into_iter();
            let mut next = || values.next().unwrap_or(Value::Null(Col::Int));
            permissions.name = next().into_text().unwrap_or_default();
            let Some(principal) = next().into_text() else { continue };
            let Ok(principal) = principal.parse::<Principal>() else { continue };
            let level = Level::from_int(next().as_int().unwrap_or_default());
            if principal == Principal::Everyone {
                permissions.everyone = level;
            }
            let granted_by = next().into_text().unwrap_or_default();
            permissions.grants.push(Grant { principal, level, granted_by, granted_at: next().as_int().unwrap_or(0) });
        }
        Ok(permissions)
    }

    /// Sets or removes one grant; see [`crate::registry::RegistryStore::set_permission`].
    pub(super) async fn write_permission(
        &self,
        model: i64,
        principal: &Principal,
        level: Option<Level>,
    ) -> Result<ModelPermissions, RegistryError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let mut exists = self.sql();
        exists.push("SELECT id FROM registered_model WHERE id = ").arg(Value::Int(model));
        if tx.read(&exists, &[Col::Int]).await.map_err(db_error)?.is_empty() {
            return Err(not_found(&REGISTERED_MODEL, model));
        }
        let before = self.grant_digest(&mut tx, model, principal).await?;
        let mut sql = self.sql();
        match level {
            Some(level) => self.push_upsert(&mut sql, model, principal, level, &audit::current().subject),
            None => {
                sql.push("DELETE FROM model_permission WHERE registered_model_id = ")
                    .arg(Value::Int(model))
                    .push(" AND principal = ")
                    .arg(Value::Text(principal.to_string()));
            }
        }
        tx.execute(&sql).await.map_err(db_error)?;
        let after = self.grant_digest(&mut tx, model, principal).await?;
        let record = audit::Record {
            action: if level.is_some() { "permission.grant" } else { "permission.revoke" }.to_owned(),
            entity: format!("registered_model/{model}"),
            before,
            after,
            detail: Some(format!("{principal} {}", level.map_or("removed", Level::as_str))),
        };
        audit::append(&mut *tx, self.db.dialect(), record).await.map_err(db_error)?;
        // The catalog shows only models everyone may read: re-read this one.
        let entry = self.catalog_entry(&mut tx, &REGISTERED_MODEL, model).await?;
        self.log(&mut tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.read_permissions(model).await
    }

    /// Makes the current actor, when authenticated, the manager of the model it just created.
    pub(super) async fn grant_creator(&self, tx: &mut Box<dyn Transaction>, model: i64) -> Result<(), RegistryError> {
        let actor = audit::current();
        if !actor.authenticated {
            return Ok(());
        }
        let mut sql = self.sql();
        let principal = Principal::User(actor.subject.clone());
        self.push_upsert(&mut sql, model, &principal, Level::Manage, &actor.subject);
        tx.execute(&sql).await.map_err(db_error)?;
        Ok(())
    }

    fn push_upsert(&self, sql: &mut Sql, model: i64, principal: &Principal, level: Level, by: &str) {
        sql.push(
            "INSERT INTO model_permission (registered_model_id, principal, level, granted_by, granted_at) VALUES (",
        )
        .arg(Value::Int(model))
        .push(", ")
        .arg(Value::Text(principal.to_string()))
        .push(", ")
        .arg(Value::Int(level as i64))
        .push(", ")
        .arg(Value::Text(by.to_owned()))
        .push(", ")
        .arg(Value::Int(now_millis()))
        .push(
            ") ON CONFLICT (registered_model_id, principal) DO UPDATE SET level = excluded.level, \
                 granted_by = excluded.granted_by, granted_at = excluded.granted_at",
        );
    }

    /// The digest of one grant row, for the audit log.
    async fn grant_digest(
        &self,
        tx: &mut Box<dyn Transaction>,
        model: i64,
        principal: &Principal,
    ) -> Result<Option<String>, RegistryError> {
        let mut sql = self.sql();
        sql.push("SELECT level, granted_by, granted_at FROM model_permission WHERE registered_model_id = ")
            .arg(Value::Int(model))
            .push(" AND principal = ")
            .arg(Value::Text(principal.to_string()));
        let row = tx.read(&sql, &[Col::Int, Col::Text, Col::Int]).await.map_err(db_error)?.into_iter().next();
        Ok(row.map(|row| crate::hex::sha256(format!("{principal:?}{row:?}").as_bytes())))
    }
}

/// Appends the condition that keeps a list of `kind` to rows of models `viewer` may read: registered
/// models themselves, their versions, and artifacts of their versions (other artifacts, and other kinds,
/// belong to no model).
pub(super) fn push_visibility(sql: &mut Sql, kind: &Kind, viewer: &Viewer) {
    if viewer.sees_everything() {
        return;
    }
    if kind == &REGISTERED_MODEL {
        permissions::push_visible(sql, "t.id", viewer);
    } else if kind == &MODEL_VERSION {
        permissions::push_visible(sql, "t.registered_model_id", viewer);
    } else if kind.is_artifact() {
        sql.push(" AND (t.model_version_id IS NULL OR (1 = 1");
        let model = "(SELECT v.registered_model_id FROM model_version v WHERE v.id = t.model_version_id)";
        permissions::push_visible(sql, model, viewer);
        sql.push("))");
    }
}
