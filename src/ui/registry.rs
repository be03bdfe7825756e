//! `/ui/registry`: registered models with filters on state, owner, name and properties; one model with
//! its versions and their artifacts; and "register from catalog" (`POST /ui/register`).
//!
//! Every read and write goes through the Kubeflow registry API in process ([`Apis::registry`]) as the
//! page's caller: the same validation, per-model permissions and audit records as over HTTP, and the API's
//! error messages on the page.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value as Json, json};

use super::in_process::{Apis, text, time};
use super::{Readable, UiError, format, session};
use crate::api::params::{Params, form_pairs};
use crate::app::AppState;
use crate::auth::Identity;

/// Registered models per page.
const PAGE_SIZE: u32 = 25;
/// Versions shown on a model's page, newest first.
const VERSIONS_SHOWN: u32 = 50;

/// A filterQuery string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Custom properties as (name, text) rows.
fn properties(value: &Json) -> Vec<(String, String)> {
    let Some(map) = value["customProperties"].as_object() else { return Vec::new() };
    map.iter()
        .map(|(name, property)| {
            let shown = ["string_value", "int_value", "double_value", "bool_value"]
                .iter()
                .find_map(|key| property.get(*key))
                .map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_owned))
                .unwrap_or_default();
            (name.clone(), shown)
        })
        .collect()
}

struct ModelRow {
    href: String,
    name: String,
    owner: String,
    state: String,
    updated: String,
    description: String,
}

#[derive(Template)]
#[template(path = "registry.html")]
struct RegistryPage {
    frame: super::frame::Frame,
    q: String,
    state: String,
    owner: String,
    filter: String,
    rows: Vec<ModelRow>,
    next: Option<String>,
}

/// `GET /ui/registry`: `q` (name contains), `state`, `owner`, `filter` (a `filterQuery` on any field or
/// property), `pageToken`.
pub async fn list(
    Extension(apis): Extension<Apis>,
    identity: Option<Extension<Identity>>,
    params: Params,
) -> Result<Response, UiError> {
    let api = &apis.registry;
    let identity = identity.map(|Extension(identity)| identity);
    let field = |name: &str| params.get(name).unwrap_or_default().trim().to_owned();
    let (q, state, owner, filter) = (field("q"), field("state"), field("owner"), field("filter"));
    let mut conditions = Vec::new();
    if !q.is_empty() {
        conditions.push(format!("name ILIKE {}", literal(&format!("%{q}%"))));
    }
    match state.as_str() {
        "" => {}
        "LIVE" | "ARCHIVED" => conditions.push(format!("state = {}", literal(&state))),
        other => return Err(UiError::bad_request(format!("state {other:?} is unknown: use LIVE or ARCHIVED"))),
    }
    if !owner.is_empty() {
        conditions.push(format!("owner = {}", literal(&owner)));
    }
    if !filter.is_empty() {
        conditions.push(format!("({filter})"));
    }
    let mut query = vec![
        ("pageSize".to_owned(), PAGE_SIZE.to_string()),
        ("orderBy".to_owned(), "LAST_UPDATE_TIME".to_owned()),
        ("sortOrder".to_owned(), "DESC".to_owned()),
    ];
    if !conditions.is_empty() {
        query.push(("filterQuery".to_owned(), conditions.join(" AND ")));
    }
    let token = field("pageToken");
    if !token.is_empty() {
        query.push(("nextPageToken".to_owned(), token));
    }
    let page = api.get(&format!("/registered_models?{}", format::query(&query)), identity.as_ref()).await?;
    let rows = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|model| ModelRow {
            href: format!("/ui/registry/models/{}", text(model, "id")),
            name: text(model, "name"),
            owner: text(model, "owner"),
            state: text(model, "state"),
            updated: time(model, "lastUpdateTimeSinceEpoch"),
            description: text(model, "description"),
        })
        .collect();
    let next = page["nextPageToken"].as_str().filter(|token| !token.is_empty()).map(|token| {
        let mut pairs: Vec<(String, String)> = [("q", &q), ("state", &state), ("owner", &owner), ("filter", &filter)]
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        pairs.push(("pageToken".to_owned(), token.to_owned()));
        format!("/ui/registry?{}", format::query(&pairs))
    });
    Ok(super::render(&RegistryPage { frame: Default::default(), q, state, owner, filter, rows, next }))
}

struct ArtifactRow {
    name: String,
    kind: String,
    uri: String,
}

struct VersionView {
    name: String,
    state: String,
    author: String,
    created: String,
    description: String,
    properties: Vec<(String, String)>,
    /// The catalog model it was registered from, when it was.
    catalog: Option<String>,
    artifacts: Vec<ArtifactRow>,
}

#[derive(Template)]
#[template(path = "registry_model.html")]
struct RegistryModelPage {
    frame: super::frame::Frame,
    name: String,
    owner: String,
    state: String,
    description: String,
    updated: String,
    properties: Vec<(String, String)>,
    versions: Vec<VersionView>,
    api: String,
}

/// `GET /ui/registry/models/{id}`.
pub async fn model(
    Extension(apis): Extension<Apis>,
    identity: Option<Extension<Identity>>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let api = &apis.registry;
    let identity = identity.map(|Extension(identity)| identity);
    let identity = identity.as_ref();
    let id = crate::api::registry::path_id(&id).map_err(|error| UiError::bad_request(error.message))?;
    let model = api.get(&format!("/registered_models/{id}"), identity).await?;
    let query = format!("pageSize={VERSIONS_SHOWN}&orderBy=CREATE_TIME&sortOrder=DESC");
    let versions = api.get(&format!("/registered_models/{id}/versions?{query}"), identity).await?;
    let mut shown = Vec::new();
    for version in versions["items"].as_array().into_iter().flatten() {
        let artifacts =
            api.get(&format!("/model_versions/{}/artifacts?pageSize=50", text(version, "id")), identity).await?;
        let properties = properties(version);
        let catalog_of = |name: &str| properties.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let catalog = catalog_of("catalog_source_id")
            .zip(catalog_of("catalog_model_name"))
            .map(|(source, name)| super::model::url(&source, &name, None));
        shown.push(VersionView {
            name: text(version, "name"),
            state: text(version, "state"),
            author: text(version, "author"),
            created: time(version, "createTimeSinceEpoch"),
            description: text(version, "description"),
            properties,
            catalog,
            artifacts: artifacts["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|artifact| ArtifactRow {
                    name: text(artifact, "name"),
                    kind: text(artifact, "artifactType"),
                    uri: text(artifact, "uri"),
                })
                .collect(),
        });
    }
    Ok(super::render(&RegistryModelPage {
        frame: Default::default(),
        name: text(&model, "name"),
        owner: text(&model, "owner"),
        state: text(&model, "state"),
        description: text(&model, "description"),
        updated: time(&model, "lastUpdateTimeSinceEpoch"),
        properties: properties(&model),
        versions: shown,
        api: format!("{}/registered_models/{id}", crate::api::registry::BASE_PATH),
    }))
}

/// `POST /ui/register`: form fields `source` and `name` (the catalog model), `model_name` and
/// `version_name` (what to register it as). Creates the registered model unless one of that name exists,
/// then a version carrying the catalog source as properties, then the catalog model's artifacts.
pub async fn register(
    State(state): State<AppState>,
    Extension(apis): Extension<Apis>,
    readable: Readable,
    identity: Option<Extension<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    session::same_origin(&headers)?;
    let api = &apis.registry;
    let identity = identity.map(|Extension(identity)| identity);
    let identity = identity.as_ref();
    let fields = form_pairs(std::str::from_utf8(&body).unwrap_or_default());
    let field = |name: &str| {
        fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim().to_owned()).unwrap_or_default()
    };
    let (source, name) = (field("source"), field("name"));
    let model_name = Some(field("model_name")).filter(|text| !text.is_empty()).unwrap_or_else(|| name.clone());
    let version_name = field("version_name");
    if version_name.is_empty() {
        return Err(UiError::bad_request("Give the version a name."));
    }
    let model = super::catalog_model(&state, &readable, &source, &name).await?;
    let record = &model.record;
    let string = |text: &str| json!({"metadataType": "MetadataStringValue", "string_value": text});
    let mut provenance = serde_json::Map::new();
    provenance.insert("catalog_source_id".into(), string(&source));
    provenance.insert("catalog_model_name".into(), string(&record.name));
    for (key, value) in [("provider", &record.provider), ("license", &record.license)] {
        if let Some(value) = value {
            provenance.insert(key.into(), string(value));
        }
    }
    let subject = identity.map_or("anonymous", |identity| identity.subject.as_str());
    let existing = api
        .get(&format!("/registered_model?{}", format::query(&[("name".into(), model_name.clone())])), identity)
        .await;
    let registered = match existing {
        Ok(found) => found,
        Err(error) if error.status == StatusCode::NOT_FOUND => {
            let body = json!({"name": model_name, "description": record.description, "owner": subject,
                              "customProperties": provenance});
            api.call(Method::POST, "/registered_models", identity, Some(body)).await?
        }
        Err(error) => return Err(error),
    };
    let model_id = text(&registered, "id");
    let body = json!({"name": version_name, "author": subject, "description": record.description,
                      "customProperties": provenance});
    let version =
        api.call(Method::POST, &format!("/registered_models/{model_id}/versions"), identity, Some(body)).await?;
    let version_id = text(&version, "id");
    let uris = record.artifacts.iter().filter_map(|artifact| match &artifact.kind {
        modelcat_sources::ArtifactKind::Model { uri } => Some((artifact.common.name.clone(), uri.clone())),
        modelcat_sources::ArtifactKind::Metrics { .. } => None,
    });
    for (at, (artifact_name, uri)) in uris.enumerate() {
        let name = artifact_name.unwrap_or_else(|| format!("{version_name}-artifact-{}", at + 1));
        let body = json!({"artifactType": "model-artifact", "name": name, "uri": uri});
        api.call(Method::POST, &format!("/model_versions/{version_id}/artifacts"), identity, Some(body)).await?;
    }
    Ok(Redirect::to(&format!("/ui/registry/models/{model_id}")).into_response())
}
