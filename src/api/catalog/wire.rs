//! Catalog wire JSON (`catalog.yaml`, v1alpha1): `CatalogModel` (note the snake_case `source_id`),
//! `CatalogArtifact` (discriminated by `artifactType`), `CatalogSource` and the list envelope. Times and
//! ids are decimal strings; custom properties use the registry's `{metadataType, <type>_value}` shape.

use std::collections::BTreeMap;

use modelcat_index::StoredModel;
use modelcat_sources::{ArtifactKind, MetadataValue};
use serde_json::{Map, Value as Json, json};

use crate::catalog::SourceView;
use crate::catalog::artifacts::Artifact;

/// A catalog list: `items`, `size`, `pageSize` and `nextPageToken` (empty on the last page).
pub fn list(items: Vec<Json>, page_size: usize, next_page_token: Option<String>) -> Map<String, Json> {
    let mut body = Map::new();
    body.insert("size".into(), json!(items.len()));
    body.insert("items".into(), Json::Array(items));
    body.insert("pageSize".into(), json!(page_size));
    body.insert("nextPageToken".into(), json!(next_page_token.unwrap_or_default()));
    body
}

pub fn properties(properties: &BTreeMap<String, MetadataValue>) -> Json {
    let entries = properties.iter().map(|(name, value)| {
        let rendered = match value {
            MetadataValue::String(text) => json!({"metadataType": "MetadataStringValue", "string_value": text}),
            MetadataValue::Int(number) => json!({"metadataType": "MetadataIntValue", "int_value": number.to_string()}),
            MetadataValue::Double(number) => json!({"metadataType": "MetadataDoubleValue", "double_value": number}),
            MetadataValue::Bool(flag) => json!({"metadataType": "MetadataBoolValue", "bool_value": flag}),
        };
        (name.clone(), rendered)
    });
    Json::Object(entries.collect())
}

fn put(object: &mut Map<String, Json>, key: &str, value: Option<&String>) {
    if let Some(value) = value {
        object.insert(key.into(), json!(value));
    }
}

fn put_time(object: &mut Map<String, Json>, key: &str, value: Option<i64>) {
    if let Some(value) = value {
        object.insert(key.into(), json!(value.to_string()));
    }
}

pub fn model(stored: &StoredModel) -> Json {
    let record = &stored.record;
    let mut object = Map::new();
    object.insert("id".into(), json!(stored.id.to_string()));
    object.insert("name".into(), json!(record.name));
    object.insert("source_id".into(), json!(stored.source_id));
    put(&mut object, "description", record.description.as_ref());
    put(&mut object, "readme", record.readme.as_ref());
    put(&mut object, "maturity", record.maturity.as_ref());
    object.insert("language".into(), json!(record.language));
    object.insert("tasks".into(), json!(record.tasks));
    put(&mut object, "provider", record.provider.as_ref());
    put(&mut object, "logo", record.logo.as_ref());
    put(&mut object, "license", record.license.as_ref());
    put(&mut object, "licenseLink", record.license_link.as_ref());
    put(&mut object, "libraryName", record.library_name.as_ref());
    put(&mut object, "externalId", record.external_id.as_ref());
    put_time(&mut object, "createTimeSinceEpoch", record.create_time);
    put_time(&mut object, "lastUpdateTimeSinceEpoch", record.update_time);
    object.insert("customProperties".into(), properties(&record.properties));
    Json::Object(object)
}

pub fn artifact(artifact: &Artifact) -> Json {
    let common = &artifact.record.common;
    let mut object = Map::new();
    object.insert("artifactType".into(), json!(artifact.record.kind.wire_type()));
    match &artifact.record.kind {
        ArtifactKind::Model { uri } => object.insert("uri".into(), json!(uri)),
        ArtifactKind::Metrics { metrics_type } => object.insert("metricsType".into(), json!(metrics_type)),
    };
    object.insert("id".into(), json!(artifact.id.to_string()));
    put(&mut object, "name", common.name.as_ref());
    put(&mut object, "description", common.description.as_ref());
    put(&mut object, "externalId", common.external_id.as_ref());
    put_time(&mut object, "createTimeSinceEpoch", common.create_time);
    put_time(&mut object, "lastUpdateTimeSinceEpoch", common.update_time);
    object.insert("customProperties".into(), properties(&common.properties));
    Json::Object(object)
}

/// A `CatalogSource`; `asset_type` is `models` or `mcp_servers`, whose include/exclude patterns are
/// spelled `includedServers` / `excludedServers`.
pub fn source(source: &SourceView, asset_type: &str) -> Json {
    let mut object = Map::new();
    object.insert("id".into(), json!(source.config.id.as_str()));
    object.insert("name".into(), json!(source.config.name));
    object.insert("enabled".into(), json!(source.config.enabled));
    object.insert("labels".into(), json!(source.config.labels));
    object.insert("status".into(), json!(source.status.as_str()));
    object.insert("error".into(), source.error.as_ref().map_or(Json::Null, |error| json!(error)));
    let (included, excluded) = if asset_type == "mcp_servers" {
        ("includedServers", "excludedServers")
    } else {
        ("includedModels", "excludedModels")
    };
    if !source.config.included_models.is_empty() {
        object.insert(included.into(), json!(source.config.included_models));
    }
    if !source.config.excluded_models.is_empty() {
        object.insert(excluded.into(), json!(source.config.excluded_models));
    }
    object.insert("assetType".into(), json!(asset_type));
    if let Some(sync) = &source.sync {
        object.insert("sync".into(), sync_status(sync));
    }
    Json::Object(object)
}

/// A syncing source's progress (modelcat addition): `firstSyncDone` is false until its first sync has
/// finished, so an empty source that is still syncing is not mistaken for an empty one.
pub fn sync_status(sync: &modelcat_sources::SyncStatus) -> Json {
    let time = |value: Option<i64>| value.map(|time| time.to_string());
    json!({
        "state": if sync.syncing { "syncing" } else { "idle" },
        "firstSyncDone": sync.first_sync_done,
        "listed": sync.listed,
        "done": sync.done,
        "failed": sync.failed,
        "startedAtSinceEpoch": time(sync.started_at),
        "finishedAtSinceEpoch": time(sync.finished_at),
        "lastSuccessSinceEpoch": time(sync.last_success_at),
        "lastSummary": sync.summary,
    })
}
