//! The YAML catalog source: one Kubeflow catalog file (`source`, `models`, each model's fields and
//! `artifacts`), parsed strictly. An unknown key, a duplicate or missing model name, or a model artifact
//! without `uri` fails the whole file with the parser's message and position; the caller keeps the last
//! good records. A file whose bytes did not change since the previous fetch is not parsed again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::parse_yaml;
use crate::{
    ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord, RecordOutcome, Source, SourceError,
    SourceId, SourceSnapshot, SyncState,
};

/// The `SyncState` key holding the hash of the last file content fetched.
const CONTENT_HASH: &str = "content_hash";

/// A YAML catalog file.
#[derive(Debug)]
pub struct YamlSource {
    id: SourceId,
    path: PathBuf,
}

impl YamlSource {
    pub fn new(id: SourceId, path: PathBuf) -> YamlSource {
        YamlSource { id, path }
    }
}

#[async_trait::async_trait]
impl Source for YamlSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        // Read and parse at most one catalog per core at a time: more only adds memory churn.
        let _permit = parse_slots().acquire().await.map_err(|error| SourceError::Fetch(error.to_string()))?;
        let path = self.path.clone();
        let previous_hash = previous.get(CONTENT_HASH).cloned();
        let read = tokio::task::spawn_blocking(move || std::fs::read(&path));
        let bytes = read
            .await
            .map_err(|error| SourceError::Fetch(error.to_string()))?
            .map_err(|error| SourceError::Fetch(format!("cannot read {}: {error}", self.path.display())))?;
        let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
        if previous_hash.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        let path = self.path.clone();
        let records = tokio::task::spawn_blocking(move || parse_catalog(&bytes))
            .await
            .map_err(|error| SourceError::Fetch(error.to_string()))?
            .map_err(|message| SourceError::Fetch(format!("{}: {message}", path.display())))?;
        let records = records.into_iter().map(|record| (record.name.clone(), RecordOutcome::Changed(Box::new(record))));
        Ok(Some(SourceSnapshot {
            records: records.collect(),
            state: SyncState::from([(CONTENT_HASH.into(), hash)]),
            problem: None,
        }))
    }
}

fn parse_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)))
}

/// Parses a catalog file's bytes into records, strictly.
pub fn parse_catalog(bytes: &[u8]) -> Result<Vec<ModelRecord>, String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))?;
    let catalog: RawCatalog = parse_yaml(text)?;
    let mut seen = BTreeMap::new();
    let mut records = Vec::with_capacity(catalog.models.len());
    for (position, model) in catalog.models.into_iter().enumerate() {
        let record = model.into_record().map_err(|message| format!("models[{position}]: {message}"))?;
        if let Some(first) = seen.insert(record.name.clone(), position) {
            return Err(format!("models[{position}]: name {:?} repeats models[{first}]", record.name));
        }
        records.push(record);
    }
    Ok(records)
}

/// A model as the Kubeflow catalog or registry APIs answer it (the fields a catalog file has, plus ids and
/// server fields, which are ignored), with its artifacts from a separate call.
pub fn record_from_api(model: &serde_json::Value, artifacts: &[serde_json::Value]) -> Result<ModelRecord, String> {
    const MODEL: &[&str] = &[
        "name",
        "description",
        "readme",
        "maturity",
        "language",
        "tasks",
        "provider",
        "logo",
        "license",
        "licenseLink",
        "libraryName",
        "externalId",
        "createTimeSinceEpoch",
        "lastUpdateTimeSinceEpoch",
        "customProperties",
    ];
    const ARTIFACT: &[&str] = &[
        "artifactType",
        "metricsType",
        "name",
        "description",
        "uri",
        "externalId",
        "createTimeSinceEpoch",
        "lastUpdateTimeSinceEpoch",
        "customProperties",
    ];
    let known = |value: &serde_json::Value, keys: &[&str]| -> serde_json::Value {
        let object = value.as_object().into_iter().flatten();
        let kept = object.filter(|(key, value)| keys.contains(&key.as_str()) && !value.is_null());
        serde_json::Value::Object(kept.map(|(key, value)| (key.clone(), value.clone())).collect())
    };
    let mut raw = known(model, MODEL);
    raw["artifacts"] = serde_json::Value::Array(artifacts.iter().map(|artifact| known(artifact, ARTIFACT)).collect());
    let raw: RawModel = serde_json::from_value(raw).map_err(|error| error.to_string())?;
    raw.into_record()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[allow(dead_code, reason = "a display string; the source's name comes from the sources file")]
    source: Option<String>,
    #[serde(default)]
    models: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawModel {
    name: Option<String>,
    description: Option<String>,
    readme: Option<String>,
    maturity: Option<String>,
    language: Option<Vec<String>>,
    tasks: Option<Vec<String>>,
    provider: Option<String>,
    logo: Option<String>,
    license: Option<String>,
    license_link: Option<String>,
    library_name: Option<String>,
    external_id: Option<String>,
    create_time_since_epoch: Option<Millis>,
    last_update_time_since_epoch: Option<Millis>,
    custom_properties: Option<BTreeMap<String, RawMetadata>>,
    artifacts: Option<Vec<RawArtifact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawArtifact {
    artifact_type: Option<String>,
    metrics_type: Option<String>,
    name: Option<String>,
    description: Option<String>,
    uri: Option<String>,
    external_id: Option<String>,
    create_time_since_epoch: Option<Millis>,
    last_update_time_since_epoch: Option<Millis>,
    custom_properties: Option<BTreeMap<String, RawMetadata>>,
}

/// Kubeflow writes times (and int values) as strings of digits; plain numbers are accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Millis {
    Number(i64),
    Text(String),
}

impl Millis {
    /// An optional time or integer field.
    pub(crate) fn field(value: Option<Millis>, field: &str) -> Result<Option<i64>, String> {
        value.map(|value| value.parse(field)).transpose()
    }

    pub(crate) fn parse(self, field: &str) -> Result<i64, String> {
        match self {
            Millis::Number(number) => Ok(number),
            Millis::Text(text) => text.trim().parse().map_err(|_| format!("{field}: {text:?} is not an integer")),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Double {
    Number(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetadata {
    #[serde(rename = "metadataType")]
    metadata_type: Option<String>,
    string_value: Option<String>,
    int_value: Option<Millis>,
    double_value: Option<Double>,
    bool_value: Option<bool>,
}

impl RawMetadata {
    fn into_value(self, name: &str) -> Result<MetadataValue, String> {
        let field = format!("customProperties.{name}");
        let value = match (self.string_value, self.int_value, self.double_value, self.bool_value) {
            (Some(text), None, None, None) => MetadataValue::String(text),
            (None, Some(int), None, None) => MetadataValue::Int(int.parse(&field)?),
            (None, None, Some(Double::Number(number)), None) => MetadataValue::Double(number),
            (None, None, Some(Double::Text(text)), None) => {
                MetadataValue::Double(text.trim().parse().map_err(|_| format!("{field}: {text:?} is not a number"))?)
            }
            (None, None, None, Some(flag)) => MetadataValue::Bool(flag),
            _ => return Err(format!("{field}: give exactly one of string_value, int_value, double_value, bool_value")),
        };
        let expected = match value {
            MetadataValue::String(_) => "MetadataStringValue",
            MetadataValue::Int(_) => "MetadataIntValue",
            MetadataValue::Double(_) => "MetadataDoubleValue",
            MetadataValue::Bool(_) => "MetadataBoolValue",
        };
        match self.metadata_type {
            Some(declared) if declared != expected => Err(format!("{field}: metadataType {declared} does not match")),
            _ => Ok(value),
        }
    }
}

pub(crate) fn properties(
    raw: Option<BTreeMap<String, RawMetadata>>,
) -> Result<BTreeMap<String, MetadataValue>, String> {
    raw.unwrap_or_default().into_iter().map(|(name, value)| Ok((name.clone(), value.into_value(&name)?))).collect()
}

impl RawModel {
    fn into_record(self) -> Result<ModelRecord, String> {
        let name = self.name.filter(|name| !name.trim().is_empty()).ok_or("`name` is required")?;
        let artifacts = self.artifacts.unwrap_or_default().into_iter().enumerate().map(|(position, artifact)| {
            artifact.into_record().map_err(|message| format!("{name}: artifacts[{position}]: {message}"))
        });
        Ok(ModelRecord {
            artifacts: artifacts.collect::<Result<_, _>>()?,
            properties: properties(self.custom_properties).map_err(|message| format!("{name}: {message}"))?,
            create_time: Millis::field(self.create_time_since_epoch, "createTimeSinceEpoch")?,
            update_time: Millis::field(self.last_update_time_since_epoch, "lastUpdateTimeSinceEpoch")?,
            name,
            description: self.description,
            readme: self.readme,
            provider: self.provider,
            license: self.license,
            license_link: self.license_link,
            library_name: self.library_name,
            maturity: self.maturity,
            logo: self.logo,
            language: self.language.unwrap_or_default(),
            tasks: self.tasks.unwrap_or_default(),
            external_id: self.external_id,
        })
    }
}

impl RawArtifact {
    fn into_record(self) -> Result<ArtifactRecord, String> {
        let common = ArtifactCommon {
            name: self.name,
            description: self.description,
            external_id: self.external_id,
            create_time: Millis::field(self.create_time_since_epoch, "createTimeSinceEpoch")?,
            update_time: Millis::field(self.last_update_time_since_epoch, "lastUpdateTimeSinceEpoch")?,
            properties: properties(self.custom_properties)?,
        };
        match self.artifact_type.as_deref().unwrap_or("model-artifact") {
            "model-artifact" => {
                let uri = self.uri.filter(|uri| !uri.is_empty()).ok_or("a model-artifact needs a `uri`")?;
                Ok(ArtifactRecord { kind: ArtifactKind::Model { uri }, common })
            }
            "metrics-artifact" => {
                let metrics_type = self.metrics_type.unwrap_or_else(|| "performance-metrics".to_owned());
                if !matches!(metrics_type.as_str(), "performance-metrics" | "accuracy-metrics") {
                    return Err(format!("metricsType {metrics_type:?}: use performance-metrics or accuracy-metrics"));
                }
                Ok(ArtifactRecord { kind: ArtifactKind::Metrics { metrics_type }, common })
            }
            other => Err(format!("artifactType {other:?}: use model-artifact or metrics-artifact")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_models_with_artifacts() {
        let text = r#"
source: Test
models:
  - name: org/m
    tasks: [text-generation]
    createTimeSinceEpoch: "1736899200000"
    customProperties:
      validated: {metadataType: MetadataStringValue, string_value: ""}
      size: {int_value: "7"}
    artifacts:
      - uri: oci://r/m:1
      - artifactType: metrics-artifact
        metricsType: accuracy-metrics
        customProperties: {score: {double_value: 0.5}}
"#;
        let records = parse_catalog(text.as_bytes()).unwrap();
        let model = &records[0];
        assert_eq!(model.create_time, Some(1_736_899_200_000));
        assert_eq!(model.properties["size"], MetadataValue::Int(7));
        assert_eq!(model.artifacts.len(), 2);
        assert!(
            matches!(&model.artifacts[1].kind, ArtifactKind::Metrics { metrics_type } if metrics_type == "accuracy-metrics")
        );
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        let unknown = parse_catalog(b"models:\n  - name: a\n    colour: red\n").unwrap_err();
        assert!(unknown.contains("colour") && unknown.contains("line 3"), "{unknown}");
        let duplicate = parse_catalog(b"models:\n  - name: a\n  - name: a\n").unwrap_err();
        assert!(duplicate.contains("repeats"), "{duplicate}");
        let no_uri = parse_catalog(b"models:\n  - name: a\n    artifacts: [{name: x}]\n").unwrap_err();
        assert!(no_uri.contains("uri"), "{no_uri}");
        assert!(parse_catalog(b"models: [{name: a, createTimeSinceEpoch: soon}]").is_err());
    }

    #[tokio::test]
    async fn unchanged_files_are_not_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "models: [{name: a}]").unwrap();
        let source = YamlSource::new(SourceId::parse("c").unwrap(), path.clone());
        let first = source.fetch(&SyncState::new()).await.unwrap().expect("first fetch");
        assert_eq!(first.records.len(), 1);
        assert!(source.fetch(&first.state).await.unwrap().is_none());
        std::fs::write(&path, "models: [{name: a}, {name: b}]").unwrap();
        assert_eq!(source.fetch(&first.state).await.unwrap().expect("changed").records.len(), 2);
        std::fs::remove_file(&path).unwrap();
        assert!(source.fetch(&first.state).await.unwrap_err().to_string().contains("cannot read"));
    }
}
