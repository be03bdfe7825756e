//! The sources file: Kubeflow's `sources.yaml`, layered and validated.
//!
//! Shape (strict: an unknown key is an error naming the file, line and column):
//! `model_catalogs` (or the legacy `catalogs`; `model_catalogs` wins on the same id), `mcp_catalogs` (MCP
//! server catalogs, YAML files only, as upstream), `labels` and `namedQueries` (scoped by `assetType`,
//! models by default). Several files are layered in order: sources
//! merge by `id` field by field (a later file may hold just `{id, enabled: true}`), lists replace wholesale,
//! named queries merge per field, and defaults apply after the merge.
//!
//! Validation collects every problem into one [`ConfigError`]; a config that fails is rejected whole so the
//! caller keeps the previous one. What is *not* a config error: an unknown `type`, or a provider whose
//! properties are wrong. Those land in [`SourceConfig::kind`] as an error, so that one source shows
//! `status: error` while the others serve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::{NameFilter, SourceId};

/// A validated, merged sources configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourcesConfig {
    /// Model sources in the order they were first defined.
    pub sources: Vec<SourceConfig>,
    /// MCP server sources (`mcp_catalogs`), in the order they were first defined; their `included_models`
    /// and `excluded_models` hold `includedServers` and `excludedServers`.
    pub mcp_sources: Vec<SourceConfig>,
    /// Label definitions: JSON objects with a `name` (string or null) and any other string keys.
    pub labels: Vec<serde_json::Map<String, Json>>,
    pub named_queries: NamedQueries,
    /// Named queries with `assetType: mcp_servers`.
    pub mcp_named_queries: NamedQueries,
}

/// Named queries for models: name → field → `{operator, value}`.
pub type NamedQueries = BTreeMap<String, BTreeMap<String, FieldFilter>>;

/// One model source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub id: SourceId,
    pub name: String,
    pub enabled: bool,
    pub labels: Vec<String>,
    pub included_models: Vec<String>,
    pub excluded_models: Vec<String>,
    /// The provider, or why this source cannot be built (it then shows `status: error`).
    pub kind: Result<SourceKind, String>,
}

impl SourceConfig {
    /// The compiled include/exclude filter (validated when the config was built).
    pub fn name_filter(&self) -> NameFilter {
        NameFilter::new(&self.included_models, &self.excluded_models).expect("patterns validated with the config")
    }
}

/// The closed set of source providers.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A YAML catalog file, resolved against the directory of the sources file that named it.
    Yaml { path: PathBuf },
    /// The Hugging Face Hub, mirrored into the store.
    Hf(crate::hf::HfParams),
    /// Another registry: a modelcat, a Kubeflow Model Catalog or a Kubeflow Model Registry.
    Peer(crate::peer::PeerParams),
    /// modelcat's own registered models: built in, never read from a sources file.
    Registry,
}

/// One condition of a named query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFilter {
    pub operator: String,
    pub value: Json,
}

/// A sources configuration that cannot be used; every problem found, one per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    model_catalogs: Option<Vec<RawSource>>,
    #[serde(default)]
    catalogs: Option<Vec<RawSource>>,
    #[serde(default)]
    mcp_catalogs: Option<Vec<RawSource>>,
    #[serde(default)]
    labels: Option<Vec<BTreeMap<String, Option<String>>>>,
    #[serde(default, rename = "namedQueries")]
    named_queries: Option<BTreeMap<String, RawNamedQuery>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSource {
    id: String,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    enabled: Option<bool>,
    labels: Option<Vec<String>>,
    included_models: Option<Vec<String>>,
    excluded_models: Option<Vec<String>>,
    /// MCP sources' spelling of `includedModels` / `excludedModels`.
    included_servers: Option<Vec<String>>,
    excluded_servers: Option<Vec<String>>,
    asset_type: Option<String>,
    properties: Option<BTreeMap<String, Json>>,
    /// Not in the file: the directory relative paths in `properties` resolve against.
    #[serde(skip)]
    base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawNamedQuery {
    Scoped {
        #[serde(rename = "assetType")]
        asset_type: Option<String>,
        filters: BTreeMap<String, FieldFilter>,
    },
    Flat(BTreeMap<String, FieldFilter>),
}

/// Parses and layers sources files given as `(path, contents)`; the path names the file in errors and
/// anchors relative catalog paths.
pub fn parse(files: &[(PathBuf, String)]) -> Result<SourcesConfig, ConfigError> {
    let mut problems = Vec::new();
    let mut merged: Vec<RawSource> = Vec::new();
    let mut merged_mcp: Vec<RawSource> = Vec::new();
    let mut labels = Vec::new();
    let mut named_queries = NamedQueries::new();
    let mut mcp_named_queries = NamedQueries::new();
    for (path, text) in files {
        let file: RawFile = match parse_yaml(text) {
            Ok(file) => file,
            Err(message) => {
                problems.push(format!("{}: {message}", path.display()));
                continue;
            }
        };
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Legacy `catalogs` first, so `model_catalogs` wins on the same id.
        let lists = [
            ("catalogs", file.catalogs, false),
            ("model_catalogs", file.model_catalogs, false),
            ("mcp_catalogs", file.mcp_catalogs, true),
        ];
        for (key, list, mcp) in lists {
            let merged = if mcp { &mut merged_mcp } else { &mut merged };
            let mut seen = std::collections::BTreeSet::new();
            for mut source in list.into_iter().flatten() {
                if !seen.insert(source.id.clone()) {
                    problems.push(format!("{}: {key}: source id {:?} is defined twice", path.display(), source.id));
                }
                source.base_dir = base_dir.clone();
                match merged.iter_mut().find(|existing| existing.id == source.id) {
                    Some(existing) => merge(existing, source),
                    None => merged.push(source),
                }
            }
        }
        if let Some(file_labels) = file.labels {
            labels = file_labels;
        }
        for (name, query) in file.named_queries.into_iter().flatten() {
            let (queries, filters) = match query {
                RawNamedQuery::Scoped { asset_type: Some(asset), filters } => match asset.as_str() {
                    "models" => (&mut named_queries, filters),
                    "mcp_servers" => (&mut mcp_named_queries, filters),
                    other => {
                        problems.push(format!(
                            "{}: named query {name:?}: assetType {other:?} is not models or mcp_servers",
                            path.display()
                        ));
                        continue;
                    }
                },
                RawNamedQuery::Scoped { filters, .. } | RawNamedQuery::Flat(filters) => (&mut named_queries, filters),
            };
            queries.entry(name).or_default().extend(filters);
        }
    }
    let mut sources = Vec::with_capacity(merged.len());
    for raw in merged {
        match validate(raw) {
            Ok(source) => sources.push(source),
            Err(problem) => problems.push(problem),
        }
    }
    let mut mcp_sources = Vec::with_capacity(merged_mcp.len());
    for raw in merged_mcp {
        if sources.iter().any(|source| source.id.as_str() == raw.id) {
            problems.push(format!("source id {:?} names both a model and an MCP source", raw.id));
            continue;
        }
        match validate_mcp(raw) {
            Ok(source) => mcp_sources.push(source),
            Err(problem) => problems.push(problem),
        }
    }
    let mut label_objects = Vec::with_capacity(labels.len());
    for label in labels {
        if !label.contains_key("name") {
            problems.push("every entry of `labels` needs a `name` (use `name: null` for unlabelled sources)".into());
            continue;
        }
        label_objects
            .push(label.into_iter().map(|(key, value)| (key, value.map_or(Json::Null, Json::String))).collect());
    }
    if problems.is_empty() {
        Ok(SourcesConfig { sources, mcp_sources, labels: label_objects, named_queries, mcp_named_queries })
    } else {
        Err(ConfigError { problems })
    }
}

/// Overlays a later definition of the same source, field by field.
fn merge(base: &mut RawSource, later: RawSource) {
    macro_rules! overlay {
        ($($field:ident),*) => { $( if later.$field.is_some() { base.$field = later.$field; } )* };
    }
    let properties_given = later.properties.is_some();
    overlay!(
        name,
        kind,
        enabled,
        labels,
        included_models,
        excluded_models,
        included_servers,
        excluded_servers,
        asset_type,
        properties
    );
    if properties_given {
        base.base_dir = later.base_dir;
    }
}

fn validate(raw: RawSource) -> Result<SourceConfig, String> {
    let id = SourceId::parse(&raw.id).map_err(|error| error.to_string())?;
    let name = raw.name.filter(|name| !name.trim().is_empty()).ok_or(format!("source {id}: `name` is required"))?;
    if raw.included_servers.is_some() || raw.excluded_servers.is_some() {
        return Err(format!("source {id}: includedServers and excludedServers belong to mcp_catalogs"));
    }
    let properties = raw.properties.unwrap_or_default();
    let mut included_models = raw.included_models.unwrap_or_default();
    let mut excluded_models: Vec<String> =
        raw.excluded_models.unwrap_or_default().into_iter().chain(legacy_excludes(&properties)).collect();
    let hf = (raw.kind.as_deref() == Some("hf")).then(|| {
        crate::hf::HfParams::parse(&properties, &included_models, &excluded_models).map(
            |(params, included, excluded)| {
                // allowedOrganization scopes the patterns the catalog filters with, too.
                (included_models, excluded_models) = (included, excluded);
                params
            },
        )
    });
    NameFilter::new(&included_models, &excluded_models).map_err(|error| format!("source {id}: {error}"))?;
    if let Some(asset) = raw.asset_type.as_deref().filter(|asset| *asset != "models") {
        return Err(format!("source {id}: assetType {asset:?} does not belong in model_catalogs"));
    }
    let kind = match raw.kind.as_deref() {
        Some("yaml") => yaml_kind(&properties, &raw.base_dir),
        Some("hf") => hf.expect("parsed above").map(SourceKind::Hf),
        Some("peer") => crate::peer::PeerParams::parse(&properties, &raw.base_dir).map(SourceKind::Peer),
        Some(other) => Err(format!("unknown source type {other:?} (expected yaml, hf or peer)")),
        None => Err("the source has no `type` (expected yaml, hf or peer)".to_owned()),
    };
    Ok(SourceConfig {
        id,
        name,
        enabled: raw.enabled.unwrap_or(true),
        labels: raw.labels.unwrap_or_default(),
        included_models,
        excluded_models,
        kind,
    })
}

/// An MCP source: a YAML file of servers, filtered by `includedServers` / `excludedServers`.
fn validate_mcp(raw: RawSource) -> Result<SourceConfig, String> {
    let id = SourceId::parse(&raw.id).map_err(|error| error.to_string())?;
    let name = raw.name.filter(|name| !name.trim().is_empty()).ok_or(format!("MCP source {id}: `name` is required"))?;
    if raw.included_models.is_some() || raw.excluded_models.is_some() {
        return Err(format!("MCP source {id}: use includedServers and excludedServers"));
    }
    if let Some(asset) = raw.asset_type.as_deref().filter(|asset| *asset != "mcp_servers") {
        return Err(format!("MCP source {id}: assetType {asset:?} does not belong in mcp_catalogs"));
    }
    let included = raw.included_servers.unwrap_or_default();
    let excluded = raw.excluded_servers.unwrap_or_default();
    NameFilter::new(&included, &excluded).map_err(|error| format!("MCP source {id}: {error}"))?;
    let properties = raw.properties.unwrap_or_default();
    let kind = match raw.kind.as_deref() {
        Some("yaml") => yaml_kind(&properties, &raw.base_dir),
        Some(other) => Err(format!("unknown MCP source type {other:?} (expected yaml)")),
        None => Err("the source has no `type` (expected yaml)".to_owned()),
    };
    Ok(SourceConfig {
        id,
        name,
        enabled: raw.enabled.unwrap_or(true),
        labels: raw.labels.unwrap_or_default(),
        included_models: included,
        excluded_models: excluded,
        kind,
    })
}

/// `properties.excludedModels` on YAML sources is a legacy spelling still honoured upstream.
fn legacy_excludes(properties: &BTreeMap<String, Json>) -> Vec<String> {
    match properties.get("excludedModels") {
        Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn yaml_kind(properties: &BTreeMap<String, Json>, base_dir: &Path) -> Result<SourceKind, String> {
    match properties.get("yamlCatalogPath") {
        Some(Json::String(path)) if !path.trim().is_empty() => {
            Ok(SourceKind::Yaml { path: normalize(&base_dir.join(path)) })
        }
        Some(_) => Err("properties.yamlCatalogPath must be a non-empty string".to_owned()),
        None => Err("a yaml source needs properties.yamlCatalogPath".to_owned()),
    }
}

/// Removes `.` and resolves `..` lexically (`config/../catalogs/a.yaml` is `catalogs/a.yaml`), so paths
/// read well in messages and match the watcher's event paths.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(normal.components().next_back(), Some(Component::Normal(_))) => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Strict YAML decoding with the parser's line and column in the message.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_norway::from_str(text).map_err(|error| {
        let location = error.location().map(|at| format!(" (line {}, column {})", at.line(), at.column()));
        let message = error.to_string();
        // serde_norway usually puts the location in its message already.
        match location {
            Some(location) if !message.contains("line ") => format!("{message}{location}"),
            _ => message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(texts: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        texts.iter().map(|(path, text)| (PathBuf::from(path), (*text).to_owned())).collect()
    }

    #[test]
    fn layers_merge_by_id_field_by_field() {
        let base = "model_catalogs:\n- {id: a, name: A, type: yaml, enabled: false, properties: {yamlCatalogPath: a.yaml}}\n- {id: b, name: B, type: hf, includedModels: ['org/*']}\n";
        let overlay =
            "model_catalogs:\n- {id: a, enabled: true}\nlabels:\n- {name: x, displayName: X}\n- {name: null}\n";
        let config = parse(&files(&[("/etc/mc/base.yaml", base), ("/other/overlay.yaml", overlay)])).unwrap();
        let a = &config.sources[0];
        assert!(a.enabled);
        assert_eq!(a.kind, Ok(SourceKind::Yaml { path: PathBuf::from("/etc/mc/a.yaml") }));
        assert_eq!(normalize(Path::new("/etc/mc/../catalogs/./b.yaml")), PathBuf::from("/etc/catalogs/b.yaml"));
        assert_eq!(normalize(Path::new("../x/../y.yaml")), PathBuf::from("../y.yaml"));
        assert_eq!(config.sources[1].included_models, vec!["org/*"]);
        assert_eq!(config.labels.len(), 2);
        assert_eq!(config.labels[1]["name"], Json::Null);
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_column() {
        let text = "model_catalogs:\n  - id: a\n    name: A\n    typo: yaml\n";
        let error = parse(&files(&[("s.yaml", text)])).unwrap_err().to_string();
        assert!(error.starts_with("s.yaml: ") && error.contains("typo") && error.contains("line 4"), "{error}");
    }

    #[test]
    fn unknown_types_fail_only_their_source() {
        let text = "catalogs:\n- {id: a, name: A, type: ftp}\n- {id: b, name: B, type: yaml, properties: {yamlCatalogPath: b.yaml, extra: 1}}\n";
        let config = parse(&files(&[("s.yaml", text)])).unwrap();
        assert!(config.sources[0].kind.as_ref().unwrap_err().contains("unknown source type \"ftp\""));
        assert!(config.sources[1].kind.is_ok());
    }

    #[test]
    fn legacy_excludes_are_validated_and_kept() {
        let blank =
            "catalogs:\n- {id: e, name: E, type: yaml, properties: {yamlCatalogPath: e.yaml, excludedModels: [' ']}}\n";
        assert!(parse(&files(&[("s.yaml", blank)])).is_err());
        let legacy = "catalogs:\n- {id: e, name: E, type: yaml, excludedModels: [a], properties: {yamlCatalogPath: e.yaml, excludedModels: [b]}}\n";
        assert_eq!(parse(&files(&[("s.yaml", legacy)])).unwrap().sources[0].excluded_models, vec!["a", "b"]);
    }

    #[test]
    fn problems_are_collected() {
        let text =
            "catalogs:\n- {id: a, type: yaml}\n- {id: 'b c', name: B}\n- {id: d, name: D, includedModels: ['']}\n";
        let error = parse(&files(&[("s.yaml", text)])).unwrap_err();
        assert_eq!(error.problems.len(), 3, "{error}");
    }

    #[test]
    fn named_queries_merge_per_field_and_skip_other_assets() {
        let one = "namedQueries:\n  fast: {ttft_p90: {operator: '<', value: 100}}\n  mcp: {assetType: mcp_servers, filters: {x: {operator: '=', value: true}}}\n";
        let two = "namedQueries:\n  fast: {license: {operator: '=', value: mit}}\n";
        let config = parse(&files(&[("1.yaml", one), ("2.yaml", two)])).unwrap();
        assert_eq!(config.named_queries.len(), 1);
        assert_eq!(config.named_queries["fast"].len(), 2);
        assert_eq!(config.mcp_named_queries["mcp"].len(), 1);
    }

    #[test]
    fn mcp_sources_are_yaml_files_with_their_own_ids() {
        let text = "model_catalogs:\n- {id: m, name: M, type: yaml, properties: {yamlCatalogPath: m.yaml}}\n\
                    mcp_catalogs:\n- {id: s, name: S, type: yaml, labels: [Tools], excludedServers: ['x-*'], \
                    properties: {yamlCatalogPath: ../s.yaml}}\n- {id: h, name: H, type: hf}\n";
        let config = parse(&files(&[("dir/1.yaml", text)])).unwrap();
        assert_eq!(config.sources.len(), 1);
        let [servers, hub] = &config.mcp_sources[..] else { panic!("two MCP sources") };
        assert_eq!(servers.kind, Ok(SourceKind::Yaml { path: PathBuf::from("s.yaml") }));
        assert_eq!(
            (servers.labels.clone(), servers.excluded_models.clone()),
            (vec!["Tools".into()], vec!["x-*".into()])
        );
        assert!(hub.kind.as_ref().is_err_and(|error| error.contains("expected yaml")));
        let clash = "model_catalogs:\n- {id: a, name: A, type: yaml, properties: {yamlCatalogPath: a.yaml}}\n\
                     mcp_catalogs:\n- {id: a, name: A, type: yaml, includedModels: [x], properties: {yamlCatalogPath: a.yaml}}\n";
        let error = parse(&files(&[("1.yaml", clash)])).unwrap_err();
        assert!(error.to_string().contains("both a model and an MCP source"), "{error}");
    }
}
