//! The registry as a catalog source (id `registry` by default).
//!
//! Every registered model that is not `ARCHIVED` is a catalog model: its catalog fields (description,
//! readme, provider, license, tasks, …) and custom properties, with the model artifacts of its live
//! versions as artifacts. Archiving a model removes it from the catalog; restoring it brings it back;
//! deleting it removes it.
//!
//! The catalog hears of registry writes through the change log (each logs the registered model it
//! touched, see [`crate::registry::sql_store`]), on this replica and every other one alike.

use std::sync::Arc;

use async_trait::async_trait;
use modelcat_sources::{
    ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord, RecordOutcome, Source, SourceError,
    SourceId, SourceSnapshot, SyncState,
};

use crate::filter::{CompareOp, Expr, Literal, Property};
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

    /// The catalog record of one registered model; `None` when it is gone or archived.
    pub async fn model(&self, id: i64) -> Result<Option<ModelRecord>, RegistryError> {
        match self.store.get(&REGISTERED_MODEL, id).await {
            Ok(model) => self.record(&model).await,
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn record(&self, model: &Record) -> Result<Option<ModelRecord>, RegistryError> {
        if model.text("state") == Some("ARCHIVED") {
            return Ok(None);
        }
        let text = |field: &str| model.text(field).map(str::to_owned);
        let list = |field: &str| match model.values.get(field) {
            Some(Scalar::List(items)) => items.clone(),
            _ => Vec::new(),
        };
        let mut artifacts = Vec::new();
        for version in all(&*self.store, &MODEL_VERSION, Some(("registered_model_id", model.id))).await? {
            if version.text("state") == Some("ARCHIVED") {
                continue;
            }
            for artifact in all(&*self.store, &MODEL_ARTIFACT, Some(("model_version_id", version.id))).await? {
                let Some(uri) = artifact.text("uri").filter(|uri| !uri.is_empty()) else { continue };
                let mut properties = properties(&artifact);
                properties.insert(
                    "model_version".to_owned(),
                    MetadataValue::String(version.text("name").unwrap_or_default().to_owned()),
                );
                artifacts.push(ArtifactRecord {
                    kind: ArtifactKind::Model { uri: uri.to_owned() },
                    common: ArtifactCommon {
                        name: artifact.text("name").map(str::to_owned),
                        description: artifact.text("description").map(str::to_owned),
                        external_id: artifact.text("externalId").map(str::to_owned),
                        create_time: Some(artifact.create_time),
                        update_time: Some(artifact.update_time),
                        properties,
                    },
                });
            }
        }
        Ok(Some(ModelRecord {
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
        }))
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

/// Every row of a kind (optionally under one parent), page by page.
async fn all(
    store: &dyn RegistryStore,
    kind: &'static Kind,
    parent: Option<(&'static str, i64)>,
) -> Result<Vec<Record>, RegistryError> {
    let mut rows = Vec::new();
    let mut query = ListQuery { parent, ..ListQuery::all(PAGE) };
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
        let mut query = ListQuery { filter: Some(live), ..ListQuery::all(PAGE) };
        let mut snapshot = SourceSnapshot::default();
        loop {
            let page = self
                .store
                .list(&REGISTERED_MODEL, &query)
                .await
                .map_err(|error| SourceError::Fetch(error.to_string()))?;
            for model in &page.items {
                let record = self.record(model).await.map_err(|error| SourceError::Fetch(error.to_string()))?;
                if let Some(record) = record {
                    snapshot.records.insert(record.name.clone(), RecordOutcome::Changed(Box::new(record)));
                }
            }
            match page.next {
                Some(cursor) => query.after = Some(cursor),
                None => return Ok(Some(snapshot)),
            }
        }
    }
}
