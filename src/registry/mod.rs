//! The core metadata store: registered models, versions, artifacts, serving and experiments.
//!
//! [`RegistryStore`] is the contract every backend meets; [`open`] connects to the database named by a
//! URL ([`crate::store::connect`]: SQLite or PostgreSQL), both driven by the same [`sql_store::SqlStore`].
//! Every write that changes what the catalog shows (a registered model, its versions or their model
//! artifacts) appends to the change log ([`crate::store::changes`]) in the same transaction. Entities are [`Record`]s shaped by their [`schema::Kind`]; the API turns them
//! into Kubeflow wire JSON. The conformance suite in `tests/api` runs unchanged against both backends.
//!
//! Rules the store enforces for every backend:
//! - names are unique per kind, or per parent for children (versions per model, artifacts per version or
//!   run, runs per experiment, inference services per environment, serves per inference service);
//!   `externalId` is unique per kind; violations are [`RegistryError::Conflict`];
//! - a reference to a missing parent or entity is [`RegistryError::NotFound`];
//! - updates replace the custom-property map only when one is given, and bump the row version
//!   (the API's ETag); an update with a stale expected version is [`RegistryError::PreconditionFailed`];
//! - deletes cascade to owned children (a model's versions, a version's artifacts) and are refused with
//!   [`RegistryError::Conflict`] while an inference service or serve still references the entity.

pub mod permissions;
pub mod schema;
mod sql_filter;
pub mod sql_store;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::filter::Expr;
use permissions::{Level, ModelPermissions, Principal, Viewer};
use schema::Kind;

/// A stored field value, typed by its [`schema::FieldType`].
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Double(f64),
    List(Vec<String>),
}

/// A typed custom property value (Kubeflow's `MetadataValue`). Its serde form is the store's own (the
/// serialized property map on each entity row), not the wire form, which the API renders.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MetaValue {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Base64-encoded `google.protobuf.Struct`.
    Struct(String),
    /// A type URL and a base64-encoded message.
    Proto {
        type_url: String,
        value: String,
    },
}

/// Custom properties by name.
pub type Properties = BTreeMap<String, MetaValue>;

/// One stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: i64,
    /// The concrete kind; for artifacts, the kind named by the row's `artifact_type`.
    pub kind: &'static Kind,
    /// The entity it is attached to through its kind's [`schema::Parent`] column (a version's model, a
    /// model artifact's version), if any.
    pub parent: Option<i64>,
    pub create_time: i64,
    pub update_time: i64,
    /// Incremented by every update; rendered as the ETag.
    pub version: i64,
    /// Field values by wire name; unset fields are absent.
    pub values: BTreeMap<&'static str, Scalar>,
    pub properties: Properties,
}

impl Record {
    pub fn text(&self, wire: &str) -> Option<&str> {
        match self.values.get(wire) {
            Some(Scalar::Text(text)) => Some(text),
            _ => None,
        }
    }

    pub fn int(&self, wire: &str) -> Option<i64> {
        match self.values.get(wire) {
            Some(Scalar::Int(number)) => Some(*number),
            _ => None,
        }
    }
}

/// The fields of a create or a partial update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub values: BTreeMap<&'static str, Scalar>,
    /// `None` keeps the stored properties on update (and means none on create).
    pub properties: Option<Properties>,
}

/// Where a new entity is attached, beyond the parent ids among its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Nothing,
    /// The kind's [`schema::Parent`] whose column is not a wire field: the model version of an artifact,
    /// the inference service of a serve.
    Parent(i64),
    /// A run: metrics also append to the run's metric history, and a metric logged again under the same
    /// name updates the existing one.
    ExperimentRun(i64),
}

/// The sort key of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    Id,
    CreateTime,
    LastUpdateTime,
    Name,
}

/// A position in a sorted list: the sort value and id of the last row of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub sort_value: CursorValue,
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    Int(i64),
    Text(String),
}

/// A list request, already validated.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Expr>,
    /// Restricts rows to children of one parent: the column and the parent id.
    pub parent: Option<(&'static str, i64)>,
    /// Restricts rows to children of any of several parents: the column and the parent ids.
    pub parents: Option<(&'static str, Vec<i64>)>,
    pub order: OrderField,
    pub descending: bool,
    pub page_size: u32,
    pub after: Option<Cursor>,
    /// Only rows of registered models this caller may read (models, their versions, and the artifacts
    /// of those versions); `None` for every row.
    pub visible_to: Option<Viewer>,
}

impl ListQuery {
    /// The first page of everything, in id order.
    pub fn all(page_size: u32) -> Self {
        ListQuery {
            filter: None,
            parent: None,
            parents: None,
            order: OrderField::Id,
            descending: false,
            page_size,
            after: None,
            visible_to: None,
        }
    }
}

/// One page of a list; `next` is set when more rows follow.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Record>,
    pub next: Option<Cursor>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Backend(#[source] crate::store::DbError),
    #[error("cannot open the store: {0}")]
    Open(#[from] crate::store::OpenError),
}

/// The registry's storage contract; see the module docs for the rules every implementation keeps.
#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Creates an entity (and attaches an artifact); returns it as stored.
    async fn create(&self, kind: &'static Kind, draft: Draft, attach: Attach) -> Result<Record, RegistryError>;

    /// Returns an entity; for artifact kinds any artifact type matches, and callers check `record.kind`.
    async fn get(&self, kind: &'static Kind, id: i64) -> Result<Record, RegistryError>;

    /// Applies a partial update; `expected_version` guards against lost updates.
    async fn update(
        &self,
        kind: &'static Kind,
        id: i64,
        draft: Draft,
        expected_version: Option<i64>,
    ) -> Result<Record, RegistryError>;

    /// Lists entities of a kind (for the `artifact` table: of that artifact type, or of any with
    /// [`schema::ANY_ARTIFACT`]).
    async fn list(&self, kind: &'static Kind, query: &ListQuery) -> Result<Page, RegistryError>;

    /// Deletes an entity and the children it owns.
    async fn delete(&self, kind: &'static Kind, id: i64) -> Result<(), RegistryError>;

    /// A registered model's name and permission grants.
    async fn permissions(&self, model: i64) -> Result<ModelPermissions, RegistryError>;

    /// Grants `level` on `model` to `principal` (`None` removes the grant), as the current audit actor;
    /// audited, and logged so the catalog shows or hides the model.
    async fn set_permission(
        &self,
        model: i64,
        principal: &Principal,
        level: Option<Level>,
    ) -> Result<ModelPermissions, RegistryError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), RegistryError>;

    /// Deletes every entity (test hook, enabled by configuration only).
    async fn reset(&self) -> Result<(), RegistryError>;
}

/// Opens the store for a database URL, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn RegistryStore>, RegistryError> {
    Ok(Arc::new(sql_store::SqlStore::new(crate::store::connect(url).await?)))
}

pub use crate::store::now_millis;
