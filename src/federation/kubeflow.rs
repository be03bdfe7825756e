//! The polled peer protocols: a full listing of a Kubeflow Model Catalog or Model Registry as records.
//!
//! - `kubeflow-catalog` (`/api/model_catalog/v1alpha1`): every model of the peer's sources (those named
//!   in `sources`, or all), with its artifacts. Kubeflow catalog ids do not survive a restart, so records
//!   are keyed by the peer's source and the model's name. Listing the models is what finds deletions,
//!   so every poll lists them all; the artifacts (one request per model) are fetched only for models
//!   whose `lastUpdateTimeSinceEpoch` moved, except in a periodic full sweep.
//! - `kubeflow-registry` (`/api/model_registry/v1alpha3`): every registered model that is not archived,
//!   with the model artifacts of its live versions, as modelcat's own registry source maps them; the
//!   records' peer source is `registry`.
//!
//! The caller applies the listing as a snapshot: what it no longer holds is removed (guarded).

use std::collections::HashMap;

use modelcat_sources::peer::{PeerParams, Protocol};
use modelcat_sources::{ArtifactRecord, ModelRecord, record_from_api};
use serde_json::Value as Json;

use super::client::{PeerClient, PeerError};

const CATALOG: &str = "/api/model_catalog/v1alpha1";
const REGISTRY: &str = "/api/model_registry/v1alpha3";
const PAGE_SIZE: &str = "200";

/// What the previous listing brought, by peer source and name: a catalog model whose
/// `lastUpdateTimeSinceEpoch` did not move keeps these artifacts instead of fetching them again.
pub type Known = HashMap<(String, String), (Option<i64>, Vec<ArtifactRecord>)>;

/// Every record the peer offers, with the peer source it belongs to. `known` (empty for a full sweep)
/// spares the artifact requests of unchanged catalog models.
pub async fn list(
    client: &PeerClient,
    params: &PeerParams,
    known: &Known,
) -> Result<Vec<(String, ModelRecord)>, PeerError> {
    match params.protocol {
        Protocol::KubeflowRegistry => registry(client).await,
        _ => catalog(client, params, known).await,
    }
}

/// Every item of a paged Kubeflow list.
async fn all_items(client: &PeerClient, path: &str, query: &[(&str, String)]) -> Result<Vec<Json>, PeerError> {
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let mut page_query = query.to_vec();
        page_query.push(("pageSize", PAGE_SIZE.to_owned()));
        if !token.is_empty() {
            page_query.push(("nextPageToken", token.clone()));
        }
        let page = client.document(path, &page_query).await?;
        let got = page.get("items").and_then(Json::as_array).cloned().unwrap_or_default();
        let empty = got.is_empty();
        items.extend(got);
        token = page.get("nextPageToken").and_then(Json::as_str).unwrap_or_default().to_owned();
        if token.is_empty() || empty {
            return Ok(items);
        }
    }
}

fn text<'a>(item: &'a Json, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Json::as_str)
}

fn unreadable(what: &str, error: String) -> PeerError {
    PeerError::Invalid(format!("the peer sent an unreadable {what}: {error}"))
}

async fn catalog(
    client: &PeerClient,
    params: &PeerParams,
    known: &Known,
) -> Result<Vec<(String, ModelRecord)>, PeerError> {
    let sources = all_items(client, &format!("{CATALOG}/sources"), &[]).await?;
    let wanted =
        |id: &str| params.sources.as_ref().is_none_or(|ids| ids.iter().any(|wanted| wanted == "*" || wanted == id));
    let mut records = Vec::new();
    for source in sources.iter().filter_map(|source| text(source, "id")).filter(|id| wanted(id)) {
        let models = all_items(client, &format!("{CATALOG}/models"), &[("source", source.to_owned())]).await?;
        for model in models {
            let Some(name) = text(&model, "name") else { continue };
            let mut record = record_from_api(&model, &[]).map_err(|error| unreadable("model", error))?;
            match known.get(&(source.to_owned(), name.to_owned())) {
                Some((updated, artifacts)) if record.update_time.is_some() && *updated == record.update_time => {
                    record.artifacts = artifacts.clone();
                }
                _ => {
                    let path = format!("{CATALOG}/sources/{}/models/{}/artifacts", encode(source), encode(name));
                    let artifacts = all_items(client, &path, &[]).await?;
                    record = record_from_api(&model, &artifacts).map_err(|error| unreadable("model", error))?;
                }
            }
            records.push((source.to_owned(), record));
        }
    }
    Ok(records)
}

async fn registry(client: &PeerClient) -> Result<Vec<(String, ModelRecord)>, PeerError> {
    let live = |item: &Json| text(item, "state") != Some("ARCHIVED");
    let mut records = Vec::new();
    for model in
        all_items(client, &format!("{REGISTRY}/registered_models"), &[]).await?.iter().filter(|model| live(model))
    {
        let Some(id) = text(model, "id") else { continue };
        let mut artifacts = Vec::new();
        let versions = all_items(client, &format!("{REGISTRY}/registered_models/{}/versions", encode(id)), &[]).await?;
        for version in versions.iter().filter(|version| live(version)) {
            let Some(version_id) = text(version, "id") else { continue };
            let path = format!("{REGISTRY}/model_versions/{}/artifacts", encode(version_id));
            let model_artifacts = all_items(client, &path, &[]).await?;
            artifacts.extend(model_artifacts.into_iter().filter(|artifact| {
                text(artifact, "artifactType") == Some("model-artifact")
                    && text(artifact, "uri").is_some_and(|uri| !uri.is_empty())
            }));
        }
        let record = record_from_api(model, &artifacts).map_err(|error| unreadable("registered model", error))?;
        records.push(("registry".to_owned(), record));
    }
    Ok(records)
}

/// A path segment, percent-encoded (model names may hold `/`).
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
