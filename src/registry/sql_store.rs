//! [`SqlStore`]: the [`RegistryStore`] implementation over either SQL [`Backend`].
//!
//! SQL is generated from the [`Kind`] descriptors, so one code path serves every entity kind and both
//! databases. A write is one transaction; reads go to the backend's read pool. A page is one query: each
//! row carries its custom properties serialized in its `properties` column, written in the same
//! transaction as their typed, indexed copies in `custom_property`, which filters use. Lists use keyset
//! pagination on `(sort column, id)`, fetching one row more than the page to know whether another follows.
//! Typed artifact kinds only ever see rows of their own `artifact_type`. A write that changes what the
//! catalog shows (a registered model, a model version, an artifact of a version) appends the registered
//! model it touched to the change log as its transaction's last statement.

mod grants;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;

use super::permissions::{Level, ModelPermissions, Principal};
use super::schema::{
    self, EXPERIMENT_RUN, FieldType, INFERENCE_SERVICE, KINDS, Kind, METRIC, METRIC_HISTORY, MODEL_VERSION,
    REGISTERED_MODEL, SERVE_MODEL,
};
use super::sql_filter::{equality_driver, push_condition, push_driven_from};
use super::{
    Attach, Cursor, CursorValue, Draft, ListQuery, MetaValue, OrderField, Page, Properties, Record, RegistryError,
    RegistryStore, Scalar, now_millis,
};
use crate::audit;
use crate::store::changes::{self, ModelOf};
use crate::store::sql::{Backend, Col, DbError, Row, Sql, Transaction, Value};

/// The registry over a SQL backend.
pub struct SqlStore {
    db: Arc<dyn Backend>,
}

impl SqlStore {
    pub fn new(db: Arc<dyn Backend>) -> Self {
        SqlStore { db }
    }

    /// Starts `SELECT <columns>` (the caller adds `FROM`).
    fn select_columns(&self, kind: &Kind) -> Sql {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {}", layout(kind).select_list));
        sql
    }

    /// Starts `SELECT <columns> FROM <table> t`.
    fn select(&self, kind: &Kind) -> Sql {
        let mut sql = self.select_columns(kind);
        sql.push(&format!(" FROM {} t", kind.table));
        sql
    }

    fn sql(&self) -> Sql {
        Sql::new(self.db.dialect())
    }

    /// The change-log entry for a write to `kind` `id`, if the catalog shows what it touched; read before
    /// a delete removes the rows it is found through.
    async fn catalog_entry(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        id: i64,
    ) -> Result<Option<changes::Entry>, RegistryError> {
        let model = if kind == &REGISTERED_MODEL {
            ModelOf::Model(id)
        } else if kind == &MODEL_VERSION {
            ModelOf::Version(id)
        } else if kind.table == "artifact" {
            ModelOf::Artifact(id)
        } else {
            return Ok(None);
        };
        changes::registry_entry(&mut **tx, self.db.dialect(), model).await.map_err(db_error)
    }

    /// Records a write in the audit log: the entity's stored state before (`before`) and after (read here).
    async fn audit(
        &self,
        tx: &mut Box<dyn Transaction>,
        action: &str,
        kind: &Kind,
        id: i64,
        before: Option<String>,
    ) -> Result<(), RegistryError> {
        let after = if action == "delete" { None } else { self.state_digest(tx, kind, id).await? };
        let record = audit::Record {
            action: action.to_owned(),
            entity: format!("{}/{id}", kind.label.replace(' ', "_")),
            before,
            after,
            detail: None,
        };
        audit::append(&mut **tx, self.db.dialect(), record).await.map_err(db_error)
    }

    /// The digest of an entity's stored row (its columns and properties), for the audit log.
    async fn state_digest(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        id: i64,
    ) -> Result<Option<String>, RegistryError> {
        let mut sql = self.select(kind);
        sql.push(" WHERE t.id = ").arg(Value::Int(id));
        let row = tx.read(&sql, &layout(kind).cols).await.map_err(db_error)?.into_iter().next();
        Ok(row.map(|row| crate::hex::sha256(format!("{row:?}").as_bytes())))
    }

    /// Appends the event of a create or update of a registered model or version to the outbox
    /// ([`crate::store::outbox`]); other kinds announce nothing. `known` is the entity's model id and
    /// name when the caller has them (a create), read here otherwise.
    async fn announce(
        &self,
        tx: &mut Box<dyn Transaction>,
        created: bool,
        kind: &Kind,
        id: i64,
        known: Option<(i64, Option<String>)>,
    ) -> Result<(), RegistryError> {
        use crate::store::outbox::{self, EventType};
        let mut sql = self.sql();
        let event = if kind == &REGISTERED_MODEL {
            sql.push("SELECT id, name FROM registered_model WHERE id = ");
            if created { EventType::ModelCreated } else { EventType::ModelUpdated }
        } else if kind == &MODEL_VERSION {
            sql.push("SELECT registered_model_id, name FROM model_version WHERE id = ");
            if created { EventType::VersionCreated } else { EventType::VersionUpdated }
        } else {
            return Ok(());
        };
        let (model, name) = match known {
            Some(known) => known,
            None => {
                sql.arg(Value::Int(id));
                let row = tx.read(&sql, &[Col::Int, Col::Text]).await.map_err(db_error)?.into_iter().next();
                let mut values = row.unwrap_or_default().into_iter();
                (values.next().and_then(|value| value.as_int()).unwrap_or(id), values.next().and_then(Value::into_text))
            }
        };
        let mut data = serde_json::json!({
            "registeredModelId": model.to_string(),
            "name": name,
            "actor": audit::current().subject,
        });
        if kind == &MODEL_VERSION {
            data["modelVersionId"] = serde_json::json!(id.to_string());
        }
        outbox::append(&mut **tx, self.db.dialect(), event, data).await.map_err(db_error)
    }

    /// Appends `entry` to the change log (the transaction's last statement before commit).
    async fn log(&self, tx: &mut Box<dyn Transaction>, entry: Option<changes::Entry>) -> Result<(), RegistryError> {
        let entries: Vec<_> = entry.into_iter().collect();
        changes::append(&mut **tx, self.db.dialect(), &entries).await.map_err(db_error)
    }
}

/// The columns of one table, in select order.
struct Layout {
    columns: Vec<(&'static str, Col)>,
    /// The decode types of `columns`, in order.
    cols: Vec<Col>,
    select_list: String,
    index: HashMap<&'static str, usize>,
}

/// The column holding a row's serialized custom properties (see [`properties_json`]).
const PROPERTIES_COLUMN: &str = "properties";

/// Leading columns of every table.
const BASE_COLUMNS: [(&str, Col); 4] =
    [("id", Col::Int), ("create_time", Col::Int), ("update_time", Col::Int), ("row_version", Col::Int)];

/// The union of the columns of every kind stored in each table.
static LAYOUTS: LazyLock<HashMap<&'static str, Layout>> = LazyLock::new(|| {
    let mut layouts: HashMap<&'static str, Layout> = HashMap::new();
    for kind in KINDS {
        let layout = layouts.entry(kind.table).or_insert_with(|| {
            let mut columns = BASE_COLUMNS.to_vec();
            if kind.is_artifact() {
                columns.push(("artifact_type", Col::Text));
            }
            Layout { columns, cols: Vec::new(), select_list: String::new(), index: HashMap::new() }
        });
        let parent = kind.parent.map(|parent| (parent.column, Col::Int));
        for (column, col) in kind.fields.iter().map(|field| (field.column, column_col(field.ty))).chain(parent) {
            if !layout.columns.iter().any(|(known, _)| *known == column) {
                layout.columns.push((column, col));
            }
        }
    }
    for layout in layouts.values_mut() {
        layout.columns.push((PROPERTIES_COLUMN, Col::Text));
        layout.cols = layout.columns.iter().map(|(_, col)| *col).collect();
        layout.select_list =
            layout.columns.iter().map(|(column, _)| format!("t.{column}")).collect::<Vec<_>>().join(", ");
        layout.index = layout.columns.iter().enumerate().map(|(index, (column, _))| (*column, index)).collect();
    }
    layouts
});

fn layout(kind: &Kind) -> &'static Layout {
    &LAYOUTS[kind.table]
}

fn column_col(field_type: FieldType) -> Col {
    match field_type {
        FieldType::Text | FieldType::Enum(_) | FieldType::TextList => Col::Text,
        FieldType::Id(_) | FieldType::Millis | FieldType::Integer => Col::Int,
        FieldType::Double => Col::Double,
    }
}

fn scalar_value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Text(text) => Value::Text(text.clone()),
        Scalar::Int(number) => Value::Int(*number),
        Scalar::Double(number) => Value::Double(*number),
        Scalar::List(items) => Value::Text(serde_json::to_string(items).unwrap_or_default()),
    }
}

/// Returns a text value of a draft or record, such as its `name`.
/// The longest name upstream stores: a 255-character column, which for a child holds
/// `<parent id>:<name>`.
const MAX_STORED_NAME: usize = 255;

/// Refuses a name upstream could not store, with the limit that applies to this parent, so a client
/// moving between the two meets the same 400.
fn check_name_length(
    kind: &Kind,
    values: &BTreeMap<&'static str, Scalar>,
    columns: &[(&'static str, Value)],
) -> Result<(), RegistryError> {
    let Some(name) = text_value(values, "name") else { return Ok(()) };
    let parent_id = kind.parent.and_then(|parent| {
        let attached =
            columns.iter().find(|(column, _)| *column == parent.column).and_then(|(_, value)| value.as_int());
        let field = kind.fields.iter().find(|field| field.column == parent.column);
        attached.or(match field.and_then(|field| values.get(field.wire)) {
            Some(Scalar::Int(id)) => Some(*id),
            Some(Scalar::Text(id)) => id.parse().ok(),
            _ => None,
        })
    });
    let limit = match parent_id {
        Some(id) => MAX_STORED_NAME - id.to_string().len() - 1,
        None => MAX_STORED_NAME,
    };
    let length = name.chars().count();
    if length <= limit {
        return Ok(());
    }
    let scope = if parent_id.is_some() { " under this parent (stored as '<parent id>:<name>' in 255)" } else { "" };
    Err(RegistryError::Invalid(format!("{} name is too long: {length} characters, at most {limit}{scope}", kind.label)))
}

fn text_value<'a>(values: &'a BTreeMap<&'static str, Scalar>, wire: &str) -> Option<&'a str> {
    match values.get(wire) {
        Some(Scalar::Text(text)) => Some(text),
        _ => None,
    }
}

fn value_scalar(field_type: FieldType, value: Value) -> Option<Scalar> {
    match (field_type, value) {
        (_, Value::Null(_)) => None,
        (FieldType::TextList, Value::Text(text)) => serde_json::from_str(&text).ok().map(Scalar::List),
        (_, Value::Text(text)) => Some(Scalar::Text(text)),
        (_, Value::Int(number)) => Some(Scalar::Int(number)),
        (_, Value::Double(number)) => Some(Scalar::Double(number)),
        (_, Value::Bool(flag)) => Some(Scalar::Text(flag.to_string())),
        (_, Value::Bytes(_)) => None,
    }
}

/// Builds a record from a row in [`Layout`] order, its properties in the last column.
fn record_from_row(kind: &'static Kind, mut row: Row) -> Result<Record, RegistryError> {
    let layout = layout(kind);
    let kind = if kind.is_artifact() {
        let artifact_type = std::mem::replace(&mut row[4], Value::Null(Col::Text)).into_text().unwrap_or_default();
        schema::artifact_kind(&artifact_type)
            .ok_or_else(|| RegistryError::Invalid(format!("stored artifact has unknown type {artifact_type:?}")))?
    } else {
        kind
    };
    // Read before the fields take their values out of the row: the parent column may be a field too.
    let parent = kind.parent.and_then(|parent| row[layout.index[parent.column]].as_int());
    let mut values = BTreeMap::new();
    for field in kind.fields {
        let value = std::mem::replace(&mut row[layout.index[field.column]], Value::Null(Col::Int));
        if let Some(scalar) = value_scalar(field.ty, value) {
            values.insert(field.wire, scalar);
        }
    }
    let properties = match &row[layout.index[PROPERTIES_COLUMN]] {
        Value::Text(json) => parse_properties(json),
        _ => Properties::new(),
    };
    Ok(Record {
        id: row[0].as_int().unwrap_or_default(),
        parent,
        kind,
        create_time: row[1].as_int().unwrap_or_default(),
        update_time: row[2].as_int().unwrap_or_default(),
        version: row[3].as_int().unwrap_or_default(),
        values,
        properties,
    })
}

/// Serializes a property map for the `properties` column.
fn properties_json(properties: &Properties) -> Value {
    Value::Text(serde_json::to_string(properties).unwrap_or_else(|_| "{}".to_owned()))
}

/// Parses the `properties` column; a value that does not parse reads as no properties.
fn parse_properties(json: &str) -> Properties {
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::warn!(%error, "unreadable stored properties");
        Properties::new()
    })
}

/// The columns of one property row after `entity_kind, entity_id, name`.
fn property_values(value: &MetaValue) -> [Value; 6] {
    let null_text = || Value::Null(Col::Text);
    let (value_type, string_value, int_value, double_value, bool_value, proto_type) = match value {
        MetaValue::String(text) => ("string", Value::Text(text.clone()), None, None, None, null_text()),
        MetaValue::Int(number) => ("int", null_text(), Some(*number), None, None, null_text()),
        MetaValue::Double(number) => ("double", null_text(), None, Some(*number), None, null_text()),
        MetaValue::Bool(flag) => ("bool", null_text(), None, None, Some(*flag), null_text()),
        MetaValue::Struct(encoded) => ("struct", Value::Text(encoded.clone()), None, None, None, null_text()),
        MetaValue::Proto { type_url, value } => {
            ("proto", Value::Text(value.clone()), None, None, None, Value::Text(type_url.clone()))
        }
    };
    [
        Value::Text(value_type.to_owned()),
        string_value,
        int_value.map_or(Value::Null(Col::Int), Value::Int),
        double_value.map_or(Value::Null(Col::Double), Value::Double),
        bool_value.map_or(Value::Null(Col::Bool), Value::Bool),
        proto_type,
    ]
}

/// Maps a database error of a write on `kind` to the registry error users see (foreign-key failures are
/// explained by [`SqlStore::missing_reference`] instead).
fn write_error(kind: &Kind, draft_name: Option<&str>, error: DbError) -> RegistryError {
    match error {
        DbError::Unique(detail) if detail.contains("external_id") => {
            RegistryError::Conflict(format!("a {} with this externalId already exists", kind.label))
        }
        DbError::Unique(_) => {
            let scope = kind.parent.map(|parent| format!(" in this {}", parent.kind.label)).unwrap_or_default();
            let name = draft_name.map(|name| format!(" '{name}'")).unwrap_or_default();
            RegistryError::Conflict(format!("a {} named{name} already exists{scope}", kind.label))
        }
        other => db_error(other),
    }
}

fn db_error(error: DbError) -> RegistryError {
    match error {
        DbError::Sqlx(error) => RegistryError::Database(error),
        DbError::ForeignKey(_) => {
            RegistryError::Conflict("the change conflicts with entities that reference this one".to_owned())
        }
        other => RegistryError::Backend(other),
    }
}

/// Appends a SQL template in which `{id}` stands for the bound `id` (templates are static, never input).
fn push_clause(sql: &mut Sql, template: &str, id: i64) {
    let mut parts = template.split("{id}");
    sql.push(parts.next().unwrap_or_default());
    for rest in parts {
        sql.arg(Value::Int(id)).push(rest);
    }
}

fn not_found(kind: &Kind, id: i64) -> RegistryError {
    RegistryError::NotFound(format!("{} {id} not found", kind.label))
}

impl SqlStore {
    /// Explains a foreign-key failure: returns NotFound for the first referenced entity that does not
    /// exist (checked outside the failed transaction), else a Conflict for a concurrent delete.
    async fn missing_reference(
        &self,
        kind: &Kind,
        values: &BTreeMap<&'static str, Scalar>,
        attach: Attach,
    ) -> RegistryError {
        let mut references: Vec<(&Kind, i64)> = kind
            .fields
            .iter()
            .filter_map(|field| match (field.ty, values.get(field.wire)) {
                (FieldType::Id(target), Some(Scalar::Int(id))) => Some((target, *id)),
                _ => None,
            })
            .collect();
        if let (Attach::Parent(parent_id), Some(parent)) = (attach, kind.parent) {
            references.insert(0, (parent.kind, parent_id));
        }
        for (target, id) in references {
            let mut sql = self.sql();
            sql.push(&format!("SELECT id FROM {} WHERE id = ", target.table)).arg(Value::Int(id));
            match self.db.read(&sql, &[Col::Int]).await {
                Ok(rows) if rows.is_empty() => return not_found(target, id),
                Ok(_) => {}
                Err(error) => return db_error(error),
            }
        }
        RegistryError::Conflict(format!("a {} it references was deleted concurrently", kind.label))
    }

    async fn insert_properties(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        id: i64,
        properties: &Properties,
    ) -> Result<(), RegistryError> {
        if properties.is_empty() {
            return Ok(());
        }
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO custom_property (entity_kind, entity_id, name, value_type, string_value, int_value, \
             double_value, bool_value, proto_type) VALUES ",
        );
        for (index, (name, value)) in properties.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push(&format!("({}, ", kind.property_kind));
            sql.arg(Value::Int(id)).push(", ").arg(Value::Text(name.clone()));
            for column_value in property_values(value) {
                sql.push(", ").arg(column_value);
            }
            sql.push(")");
        }
        tx.execute(&sql).await.map_err(db_error)?;
        Ok(())
    }

    /// Deletes the properties of the `kind` rows whose ids `ids` selects (a [`push_clause`] template).
    async fn delete_properties(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        ids: &str,
        id: i64,
    ) -> Result<(), RegistryError> {
        let mut sql = self.sql();
        sql.push(&format!("DELETE FROM custom_property WHERE entity_kind = {} AND entity_id IN (", kind.property_kind));
        push_clause(&mut sql, ids, id);
        sql.push(")");
        tx.execute(&sql).await.map_err(db_error)?;
        Ok(())
    }

    /// Inserts one row; returns its id.
    async fn insert_row(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        columns: &[(&'static str, Value)],
    ) -> Result<i64, DbError> {
        let mut sql = self.sql();
        let names: Vec<&str> = columns.iter().map(|(column, _)| *column).collect();
        sql.push(&format!("INSERT INTO {} ({}) VALUES (", kind.table, names.join(", ")));
        for (index, (_, value)) in columns.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.arg(value.clone());
        }
        sql.push(") RETURNING id");
        let rows = tx.read(&sql, &[Col::Int]).await?;
        Ok(rows.first().and_then(|row| row[0].as_int()).unwrap_or_default())
    }

    /// Returns the id of the metric named `name` logged to `run_id`, if any.
    async fn run_metric(
        &self,
        tx: &mut Box<dyn Transaction>,
        run_id: i64,
        name: &str,
    ) -> Result<Option<i64>, RegistryError> {
        let mut sql = self.sql();
        sql.push("SELECT id FROM artifact WHERE artifact_type = 'metric' AND model_version_id IS NULL AND experiment_run_id = ")
            .arg(Value::Int(run_id))
            .push(" AND name = ")
            .arg(Value::Text(name.to_owned()));
        let rows = tx.read(&sql, &[Col::Int]).await.map_err(db_error)?;
        Ok(rows.first().and_then(|row| row[0].as_int()))
    }

    /// Appends a logged metric value to its run's history.
    async fn append_history(
        &self,
        tx: &mut Box<dyn Transaction>,
        values: &BTreeMap<&'static str, Scalar>,
        properties: &Properties,
        now: i64,
        experiment_id: i64,
        run_id: i64,
    ) -> Result<(), RegistryError> {
        let mut columns = vec![
            ("experiment_id", Value::Int(experiment_id)),
            ("experiment_run_id", Value::Int(run_id)),
            ("create_time", Value::Int(now)),
            ("update_time", Value::Int(now)),
            (PROPERTIES_COLUMN, properties_json(properties)),
        ];
        for field in METRIC_HISTORY.fields {
            if let Some(scalar) = values.get(field.wire)
                && !matches!(field.ty, FieldType::Id(_))
            {
                columns.push((field.column, scalar_value(scalar)));
            }
        }
        let history_id = self.insert_row(tx, &METRIC_HISTORY, &columns).await.map_err(db_error)?;
        self.insert_properties(tx, &METRIC_HISTORY, history_id, properties).await
    }

    /// Applies a partial update inside `tx`: the row's columns and, when the draft carries properties,
    /// the whole property map (serialized column and typed rows). Returns the rows touched (0: missing, of
    /// another artifact type, or not at `expected_version`).
    async fn update_row(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        id: i64,
        draft: &Draft,
        expected_version: Option<i64>,
        now: i64,
    ) -> Result<u64, RegistryError> {
        let mut sql = self.sql();
        sql.push(&format!("UPDATE {} SET update_time = ", kind.table)).arg(Value::Int(now));
        sql.push(", row_version = row_version + 1");
        if let Some(properties) = &draft.properties {
            sql.push(&format!(", {PROPERTIES_COLUMN} = ")).arg(properties_json(properties));
        }
        for field in kind.fields {
            if let Some(scalar) = draft.values.get(field.wire) {
                sql.push(&format!(", {} = ", field.column)).arg(scalar_value(scalar));
            }
        }
        sql.push(" WHERE id = ").arg(Value::Int(id));
        if let Some(artifact_type) = kind.stored_artifact_type() {
            sql.push(" AND artifact_type = ").arg(Value::Text(artifact_type.to_owned()));
        }
        if let Some(expected) = expected_version {
            sql.push(" AND row_version = ").arg(Value::Int(expected));
        }
        let touched = match tx.execute(&sql).await {
            Ok(touched) => touched,
            Err(DbError::ForeignKey(_)) => {
                return Err(self.missing_reference(kind, &draft.values, Attach::Nothing).await);
            }
            Err(error) => return Err(write_error(kind, None, error)),
        };
        if let (1.., Some(properties)) = (touched, &draft.properties) {
            self.delete_properties(tx, kind, "{id}", id).await?;
            self.insert_properties(tx, kind, id, properties).await?;
        }
        Ok(touched)
    }

    /// Deletes the rows of `kind` that `where_clause` (a [`push_clause`] template) selects, with their
    /// properties.
    async fn delete_rows(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &Kind,
        where_clause: &str,
        id: i64,
    ) -> Result<(), RegistryError> {
        let selection = format!("SELECT id FROM {} WHERE {where_clause}", kind.table);
        self.delete_properties(tx, kind, &selection, id).await?;
        let mut sql = self.sql();
        sql.push(&format!("DELETE FROM {} WHERE ", kind.table));
        push_clause(&mut sql, where_clause, id);
        tx.execute(&sql).await.map_err(db_error)?;
        Ok(())
    }

    /// Fails with Conflict if `where_clause` (a [`push_clause`] template) selects a row of `referrer`.
    async fn refuse_if_referenced(
        &self,
        tx: &mut Box<dyn Transaction>,
        target: &Kind,
        id: i64,
        referrer: &Kind,
        where_clause: &str,
    ) -> Result<(), RegistryError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT id FROM {} WHERE ", referrer.table));
        push_clause(&mut sql, where_clause, id);
        sql.push(" LIMIT 1");
        if let Some(row) = tx.read(&sql, &[Col::Int]).await.map_err(db_error)?.first() {
            return Err(RegistryError::Conflict(format!(
                "{} {id} is still referenced by {} {}; delete that first",
                target.label,
                referrer.label,
                row[0].as_int().unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl SqlStore {
    /// [`RegistryStore::create`] inside the caller's transaction, which the caller commits (so another
    /// store can make a registry write part of its own change). A write the catalog shows appends to the
    /// change log, which must stay its transaction's last statement.
    pub async fn create_in(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &'static Kind,
        draft: Draft,
        attach: Attach,
    ) -> Result<Record, RegistryError> {
        let now = now_millis();
        let mut values = draft.values;
        let properties = draft.properties.unwrap_or_default();
        for field in kind.fields {
            if let Some(default) = field.default {
                values.entry(field.wire).or_insert_with(|| Scalar::Text(default.to_owned()));
            }
        }
        if kind.generated_name && !values.contains_key("name") {
            values.insert("name", Scalar::Text(uuid::Uuid::new_v4().to_string()));
        }
        let mut columns: Vec<(&'static str, Value)> = Vec::with_capacity(kind.fields.len() + 6);
        let mut run = None;
        match attach {
            Attach::Nothing => {}
            Attach::Parent(parent_id) => {
                let parent = kind.parent.ok_or_else(|| {
                    RegistryError::Invalid(format!("a {} cannot be attached to a parent", kind.label))
                })?;
                columns.push((parent.column, Value::Int(parent_id)));
            }
            Attach::ExperimentRun(run_id) => {
                let mut sql = self.sql();
                sql.push("SELECT experiment_id FROM experiment_run WHERE id = ").arg(Value::Int(run_id));
                let rows = tx.read(&sql, &[Col::Int]).await.map_err(db_error)?;
                let experiment_id =
                    rows.first().and_then(|row| row[0].as_int()).ok_or_else(|| not_found(&EXPERIMENT_RUN, run_id))?;
                values.insert("experimentId", Scalar::Int(experiment_id));
                values.insert("experimentRunId", Scalar::Int(run_id));
                run = Some((experiment_id, run_id));
            }
        }

        check_name_length(kind, &values, &columns)?;

        // A metric logged again to the same run updates the metric and extends its history.
        if let (Some((experiment_id, run_id)), true) = (run, kind == &METRIC) {
            let name = text_value(&values, "name").unwrap_or_default();
            if let Some(existing) = self.run_metric(tx, run_id, name).await? {
                self.append_history(tx, &values, &properties, now, experiment_id, run_id).await?;
                let before = self.state_digest(tx, kind, existing).await?;
                let update = Draft { values, properties: Some(properties) };
                self.update_row(tx, kind, existing, &update, None, now).await?;
                self.audit(tx, "update", kind, existing, before).await?;
                return self.get_in(tx, kind, existing).await;
            }
        }

        columns.extend([
            ("create_time", Value::Int(now)),
            ("update_time", Value::Int(now)),
            (PROPERTIES_COLUMN, properties_json(&properties)),
        ]);
        if let Some(artifact_type) = kind.stored_artifact_type() {
            columns.push(("artifact_type", Value::Text(artifact_type.to_owned())));
        }
        for field in kind.fields {
            if let Some(scalar) = values.get(field.wire) {
                columns.push((field.column, scalar_value(scalar)));
            }
        }
        let name = text_value(&values, "name");
        let id = match self.insert_row(tx, kind, &columns).await {
            Ok(id) => id,
            Err(DbError::ForeignKey(_)) => return Err(self.missing_reference(kind, &values, attach).await),
            Err(error) => return Err(write_error(kind, name, error)),
        };
        self.insert_properties(tx, kind, id, &properties).await?;
        if kind == &REGISTERED_MODEL {
            self.grant_creator(tx, id).await?;
        }
        if let (Some((experiment_id, run_id)), true) = (run, kind == &METRIC) {
            self.append_history(tx, &values, &properties, now, experiment_id, run_id).await?;
        }
        let parent = match attach {
            Attach::Parent(parent_id) => Some(parent_id),
            _ => kind
                .parent
                .and_then(|parent| kind.fields.iter().find(|field| field.column == parent.column))
                .and_then(|field| match values.get(field.wire) {
                    Some(Scalar::Int(id)) => Some(*id),
                    _ => None,
                }),
        };
        let record = Record { id, kind, parent, create_time: now, update_time: now, version: 1, values, properties };
        self.audit(tx, "create", kind, id, None).await?;
        let model = if kind == &MODEL_VERSION { parent.unwrap_or_default() } else { id };
        let known = (model, text_value(&record.values, "name").map(str::to_owned));
        self.announce(tx, true, kind, id, Some(known)).await?;
        let entry = self.catalog_entry(tx, kind, id).await?;
        self.log(tx, entry).await?;
        Ok(record)
    }

    /// [`RegistryStore::update`] inside the caller's transaction (see [`SqlStore::create_in`]).
    pub async fn update_in(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &'static Kind,
        id: i64,
        draft: Draft,
        expected_version: Option<i64>,
    ) -> Result<(), RegistryError> {
        let now = now_millis();
        let before = self.state_digest(tx, kind, id).await?;
        let touched = self.update_row(tx, kind, id, &draft, expected_version, now).await?;
        if touched == 0 {
            let current = self.get_in(tx, kind, id).await?;
            return Err(RegistryError::PreconditionFailed(format!(
                "{} {id} was modified since it was read (version {}, expected {})",
                kind.label,
                current.version,
                expected_version.unwrap_or_default()
            )));
        }
        self.audit(tx, "update", kind, id, before).await?;
        self.announce(tx, false, kind, id, None).await?;
        let entry = self.catalog_entry(tx, kind, id).await?;
        self.log(tx, entry).await
    }

    /// [`RegistryStore::get`] as the caller's transaction sees it.
    async fn get_in(
        &self,
        tx: &mut Box<dyn Transaction>,
        kind: &'static Kind,
        id: i64,
    ) -> Result<Record, RegistryError> {
        let mut sql = self.select(kind);
        sql.push(" WHERE t.id = ").arg(Value::Int(id));
        let row = tx.read(&sql, &layout(kind).cols).await.map_err(db_error)?.into_iter().next();
        record_from_row(kind, row.ok_or_else(|| not_found(kind, id))?)
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn create(&self, kind: &'static Kind, draft: Draft, attach: Attach) -> Result<Record, RegistryError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let record = self.create_in(&mut tx, kind, draft, attach).await?;
        tx.commit().await.map_err(|error| write_error(kind, None, error))?;
        Ok(record)
    }

    async fn get(&self, kind: &'static Kind, id: i64) -> Result<Record, RegistryError> {
        let mut sql = self.select(kind);
        sql.push(" WHERE t.id = ").arg(Value::Int(id));
        if let Some(artifact_type) = kind.stored_artifact_type() {
            sql.push(" AND t.artifact_type = ").arg(Value::Text(artifact_type.to_owned()));
        }
        let row = self.db.read(&sql, &layout(kind).cols).await.map_err(db_error)?.into_iter().next();
        record_from_row(kind, row.ok_or_else(|| not_found(kind, id))?)
    }

    async fn update(
        &self,
        kind: &'static Kind,
        id: i64,
        draft: Draft,
        expected_version: Option<i64>,
    ) -> Result<Record, RegistryError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        self.update_in(&mut tx, kind, id, draft, expected_version).await?;
        tx.commit().await.map_err(|error| write_error(kind, None, error))?;
        self.get(kind, id).await
    }

    async fn list(&self, kind: &'static Kind, query: &ListQuery) -> Result<Page, RegistryError> {
        let layout = layout(kind);
        // An id-ordered list with a custom-property equality reads that property's value index, which is
        // sorted by entity id, and stops after one page instead of probing every row of the table.
        let driver = match (&query.filter, query.order) {
            (Some(filter), OrderField::Id) => equality_driver(kind, filter),
            _ => None,
        };
        let id_column = if driver.is_some() { "d.entity_id" } else { "t.id" };
        let mut sql = self.select_columns(kind);
        match driver {
            Some(driver) => push_driven_from(&mut sql, kind, driver),
            None => {
                sql.push(&format!(" FROM {} t WHERE 1 = 1", kind.table));
            }
        }
        if let Some(artifact_type) = kind.stored_artifact_type() {
            sql.push(" AND t.artifact_type = ").arg(Value::Text(artifact_type.to_owned()));
        }
        if let Some((column, parent_id)) = query.parent {
            sql.push(&format!(" AND t.{column} = ")).arg(Value::Int(parent_id));
        }
        if let Some((column, parent_ids)) = &query.parents {
            sql.push(&format!(" AND t.{column} IN (NULL"));
            for parent_id in parent_ids {
                sql.push(", ").arg(Value::Int(*parent_id));
            }
            sql.push(")");
        }
        if let Some(viewer) = &query.visible_to {
            grants::push_visibility(&mut sql, kind, viewer);
        }
        if let Some(filter) = &query.filter {
            sql.push(" AND ");
            push_condition(&mut sql, kind, filter)?;
        }
        let sort_column = match query.order {
            OrderField::Id => "id",
            OrderField::CreateTime => "create_time",
            OrderField::LastUpdateTime => "update_time",
            OrderField::Name => "name",
        };
        let (comparison, direction) = if query.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some(cursor) = &query.after {
            let sort_value = match &cursor.sort_value {
                CursorValue::Int(number) => Value::Int(*number),
                CursorValue::Text(text) => Value::Text(text.clone()),
            };
            if sort_column == "id" {
                sql.push(&format!(" AND {id_column} {comparison} ")).arg(Value::Int(cursor.id));
            } else {
                sql.push(&format!(" AND (t.{sort_column} {comparison} ")).arg(sort_value.clone());
                sql.push(&format!(" OR (t.{sort_column} = ")).arg(sort_value);
                sql.push(&format!(" AND t.id {comparison} ")).arg(Value::Int(cursor.id)).push("))");
            }
        }
        if sort_column == "id" {
            sql.push(&format!(" ORDER BY {id_column} {direction}"));
        } else {
            sql.push(&format!(" ORDER BY t.{sort_column} {direction}, t.id {direction}"));
        }
        sql.push(&format!(" LIMIT {}", u64::from(query.page_size) + 1));

        let rows = self.db.read(&sql, &layout.cols).await.map_err(db_error)?;
        let has_more = rows.len() > query.page_size as usize;
        let items = rows
            .into_iter()
            .take(query.page_size as usize)
            .map(|row| record_from_row(kind, row))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if has_more {
            items.last().map(|last| Cursor {
                id: last.id,
                sort_value: match query.order {
                    OrderField::Id => CursorValue::Int(last.id),
                    OrderField::CreateTime => CursorValue::Int(last.create_time),
                    OrderField::LastUpdateTime => CursorValue::Int(last.update_time),
                    OrderField::Name => CursorValue::Text(last.text("name").unwrap_or_default().to_owned()),
                },
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn delete(&self, kind: &'static Kind, id: i64) -> Result<(), RegistryError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let mut sql = self.sql();
        sql.push(&format!("SELECT id FROM {} WHERE id = ", kind.table)).arg(Value::Int(id));
        if let Some(artifact_type) = kind.stored_artifact_type() {
            sql.push(" AND artifact_type = ").arg(Value::Text(artifact_type.to_owned()));
        }
        if tx.read(&sql, &[Col::Int]).await.map_err(db_error)?.is_empty() {
            return Err(not_found(kind, id));
        }
        let before = self.state_digest(&mut tx, kind, id).await?;
        let entry = self.catalog_entry(&mut tx, kind, id).await?;
        if kind == &REGISTERED_MODEL {
            let versions = "model_version_id IN (SELECT id FROM model_version WHERE registered_model_id = {id})";
            self.refuse_if_referenced(&mut tx, kind, id, &INFERENCE_SERVICE, "registered_model_id = {id}").await?;
            self.refuse_if_referenced(&mut tx, kind, id, &INFERENCE_SERVICE, versions).await?;
            self.refuse_if_referenced(&mut tx, kind, id, &SERVE_MODEL, versions).await?;
            self.delete_rows(&mut tx, &schema::ANY_ARTIFACT, versions, id).await?;
            self.delete_rows(&mut tx, &MODEL_VERSION, "registered_model_id = {id}", id).await?;
            let mut grants = self.sql();
            grants.push("DELETE FROM model_permission WHERE registered_model_id = ").arg(Value::Int(id));
            tx.execute(&grants).await.map_err(db_error)?;
        } else if kind == &MODEL_VERSION {
            self.refuse_if_referenced(&mut tx, kind, id, &INFERENCE_SERVICE, "model_version_id = {id}").await?;
            self.refuse_if_referenced(&mut tx, kind, id, &SERVE_MODEL, "model_version_id = {id}").await?;
            self.delete_rows(&mut tx, &schema::ANY_ARTIFACT, "model_version_id = {id}", id).await?;
        } else if !kind.is_artifact() {
            return Err(RegistryError::Invalid(format!("{}s cannot be deleted", kind.label)));
        }
        self.delete_rows(&mut tx, kind, "id = {id}", id).await?;
        self.audit(&mut tx, "delete", kind, id, before).await?;
        self.log(&mut tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn permissions(&self, model: i64) -> Result<ModelPermissions, RegistryError> {
        self.read_permissions(model).await
    }

    async fn set_permission(
        &self,
        model: i64,
        principal: &Principal,
        level: Option<Level>,
    ) -> Result<ModelPermissions, RegistryError> {
        self.write_permission(model, principal, level).await
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        let mut sql = self.sql();
        sql.push("SELECT CAST(1 AS BIGINT)");
        self.db.read(&sql, &[Col::Int]).await.map_err(db_error)?;
        Ok(())
    }

    async fn reset(&self) -> Result<(), RegistryError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let mut statements = vec!["DELETE FROM custom_property".to_owned(), "DELETE FROM model_permission".to_owned()];
        statements.extend(schema::TABLES_CHILDREN_FIRST.iter().map(|kind| format!("DELETE FROM {}", kind.table)));
        for statement in statements {
            let mut sql = self.sql();
            sql.push(&statement);
            tx.execute(&sql).await.map_err(db_error)?;
        }
        let reset =
            audit::Record { action: "registry.reset".into(), entity: "registry/*".into(), ..Default::default() };
        audit::append(&mut *tx, self.db.dialect(), reset).await.map_err(db_error)?;
        let everything = changes::registry_entry(&mut *tx, self.db.dialect(), ModelOf::All).await.map_err(db_error)?;
        self.log(&mut tx, everything).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }
}
