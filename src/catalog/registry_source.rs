//! The registry as a catalog source (id `registry` by default).
//!
//! Every registered model that is not `ARCHIVED` is a catalog model: its catalog fields (description,
//! readme, provider, license, tasks, …) and custom properties, with the model artifacts of its live
//! versions as artifacts. Archiving a model removes it from the catalog; restoring it brings it back;
//! deleting it removes it. Only models everyone may read are catalog models
//! ([`crate::registry::permissions`]): a private model stays out of the catalog, its counts and facets.
//!
//! The catalog hears of registry writes through the change log (each logs the registered model it
//! touched, see [`crate::registry::sql_store`]), on this replica and every other one alike.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use modelcat_sources::{
    ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord, RecordOutcome, Source, SourceError,
    SourceId, SourceSnapshot, SyncState,
};

use crate::filter::{CompareOp, Expr, Literal, Property};
use crate::registry::permissions::Viewer;
use crate::registry::schema::{Kind, MODEL_ARTIFACT, MODEL_VERSION, REGISTERED_MODEL};
use crate::registry::{ListQuery, MetaValue, Record, RegistryError, RegistryStore, Scalar};

/// Reads registered models as catalog records.
#[derive(Clone)]
pub struct RegistrySource {
    id: SourceId,
    store: Arc<dyn RegistryStore>,
}

impl std::fmt::Debug for RegistrySource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RegistrySource").field("id", &self.id).finish()
    }
}

const PAGE: u32 = 1000;

impl RegistrySource {
    pub fn new(id: SourceId, store: Arc<dyn RegistryStore>) -> RegistrySource {
        RegistrySource { id, store }
    }

    /// The catalog records of registered models by id, read in three queries per thousand models; ids
    /// that are gone or archived are absent.
    pub async fn models(&self, ids: &[i64]) -> Result<HashMap<i64, ModelRecord>, RegistryError> {
        let mut records = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(PAGE as usize) {
            let id_in = Expr::In {
                property: Property { path: vec!["id".into()], suffix: None },
                values: chunk.iter().map(|id| Literal::Int(*id)).collect(),
                negated: false,
            };
            let query = ListQuery { filter: Some(id_in), visible_to: Some(Viewer::default()), ..ListQuery::all(PAGE) };
            let models = all(&*self.store, &REGISTERED_MODEL, query).await?;
            records.extend(self.records(models).await?);
        }
        Ok(records)
    }

    /// The catalog records of `models` (the archived ones left out), with the model artifacts of their
    /// live versions.
    async fn records(&self, models: Vec<Record>) -> Result<HashMap<i64, ModelRecord>, RegistryError> {
        let live: Vec<Record> = models.into_iter().filter(|model| model.text("state") != Some("ARCHIVED")).collect();
        let model_ids = live.iter().map(|model| model.id).collect();
        let versions = ListQuery { parents: Some(("registered_model_id", model_ids)), ..ListQuery::all(PAGE) };
        let versions: Vec<Record> = all(&*self.store, &MODEL_VERSION, versions)
            .await?
            .into_iter()
            .filter(|version| version.text("state") != Some("ARCHIVED"))
            .collect();
        let version_ids = versions.iter().map(|version| version.id).collect();
        let artifacts = ListQuery { parents: Some(("model_version_id", version_ids)), ..ListQuery::all(PAGE) };
        let mut artifacts_by_version: HashMap<i64, Vec<Record>> = HashMap::new();
        for artifact in all(&*self.store, &MODEL_ARTIFACT, artifacts).await? {
            if let Some(version) = artifact.parent {
                artifacts_by_version.entry(version).or_default().push(artifact);
            }
        }
        let mut artifacts_by_model: HashMap<i64, Vec<ArtifactRecord>> = HashMap::new();
        for version in &versions {
            let Some(model) = version.parent else { continue };
            let entry = artifacts_by_model.entry(model).or_default();
            for artifact in artifacts_by_version.remove(&version.id).unwrap_or_default() {
                entry.extend(artifact_record(version, &artifact));
            }
        }
        Ok(live
            .iter()
            .map(|model| (model.id, model_record(model, artifacts_by_model.remove(&model.id).unwrap_or_default())))
            .collect())
    }
}

/// A model artifact of a version as a catalog artifact; `None` without a URI.
fn artifact_record(version: &Record, artifact: &Record) -> Option<ArtifactRecord> {
    let uri = artifact.text("uri").filter(|uri| !uri.is_empty())?;
    let mut properties = properties(artifact);
    properties
        .insert("model_version".to_owned(), MetadataValue::String(version.text("name").unwrap_or_default().to_owned()));
    Some(ArtifactRecord {
        kind: ArtifactKind::Model { uri: uri.to_owned() },
        common: ArtifactCommon {
            name: artifact.text("name").map(str::to_owned),
            description: artifact.text("description").map(str::to_owned),
            external_id: artifact.text("externalId").map(str::to_owned),
            create_time: Some(artifact.create_time),
            update_time: Some(artifact.update_time),
            properties,
        },
    })
}

/// A registered model as a catalog record.
fn model_record(model: &Record, artifacts: Vec<ArtifactRecord>) -> ModelRecord {
    let text = |field: &str| model.text(field).map(str::to_owned);
    let list = |field: &str| match model.values.get(field) {
        Some(Scalar::List(items)) => items.clone(),
        _ => Vec::new(),
    };
    ModelRecord {
        name: text("name").unwrap_or_default(),
        description: text("description"),
        readme: text("readme"),
        provider: text("provider"),
        license: text("license"),
        license_link: text("licenseLink"),
        library_name: text("libraryName"),
        maturity: text("maturity"),
        logo: text("logo"),
        language: list("language"),
        tasks: list("tasks"),
        external_id: text("externalId"),
        create_time: Some(model.create_time),
        update_time: Some(model.update_time),
        properties: properties(model),
        artifacts,
    }
}

fn properties(record: &Record) -> std::collections::BTreeMap<String, MetadataValue> {
    let value = |value: &MetaValue| match value {
        MetaValue::String(text) => Some(MetadataValue::String(text.clone())),
        MetaValue::Int(number) => Some(MetadataValue::Int(*number)),
        MetaValue::Double(number) => Some(MetadataValue::Double(*number)),
        MetaValue::Bool(flag) => Some(MetadataValue::Bool(*flag)),
        _ => None,
    };
    record.properties.iter().filter_map(|(name, meta)| Some((name.clone(), value(meta)?))).collect()
}

/// Every row of a kind that `query` selects, page by page.
async fn all(
    store: &dyn RegistryStore,
    kind: &'static Kind,
    mut query: ListQuery,
) -> Result<Vec<Record>, RegistryError> {
    let mut rows = Vec::new();
    loop {
        let page = store.list(kind, &query).await?;
        rows.extend(page.items);
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return Ok(rows),
        }
    }
}

#[async_trait]
impl Source for RegistrySource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    async fn fetch(&self, _previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        let live = Expr::Compare {
            property: Property { path: vec!["state".into()], suffix: None },
            op: CompareOp::Ne,
            value: Literal::String("ARCHIVED".into()),
        };
        let mut query = ListQuery { filter: Some(live), visible_to: Some(Viewer::default()), ..ListQuery::all(PAGE) };
        let mut snapshot = SourceSnapshot::default();
        loop {
            let page = self
                .store
                .list(&REGISTERED_MODEL, &query)
                .await
                .map_err(|error| SourceError::Fetch(error.to_string()))?;
            let records = self.records(page.items).await.map_err(|error| SourceError::Fetch(error.to_string()))?;
            for record in records.into_values() {
                snapshot.records.insert(record.name.clone(), RecordOutcome::Changed(Box::new(record)));
            }
            match page.next {
                Some(cursor) => query.after = Some(cursor),
                None => return Ok(Some(snapshot)),
            }
        }
    }
}
