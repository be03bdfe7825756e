//! The YAML catalog source: one Kubeflow catalog file (`source`, `models`, each model's fields and
//! `artifacts`), parsed strictly. An unknown key, a duplicate or missing model name, or a model artifact
//! without `uri` fails the whole file with the parser's message and position; the caller keeps the last
//! good records. A file whose bytes did not change since the previous fetch is not parsed again.
//!
//! A file of the usual shape is parsed a group of models at a time ([`layout`]), in parallel, and an
//! edited file parses only the models whose text changed: the others are reported unchanged.
//!
//! A file whose stamp (device, inode, size, modification and change times) is the one recorded with the
//! previous fetch's content hash is not even read ([`stamp`]): a restart, or an event that only touched
//! the file's access time, costs a `stat`.

mod layout;
mod stamp;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use crate::config::parse_yaml;
use crate::{
    ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord, RecordOutcome, Source, SourceError,
    SourceId, SourceSnapshot, SyncState,
};
use layout::Layout;

/// The `SyncState` key holding the hash of the last file content fetched.
const CONTENT_HASH: &str = "content_hash";

/// The `SyncState` key holding the file's stamp when that content was read ([`stamp::of`]).
const FILE_STAMP: &str = "file_stamp";

/// A group of models is cut once it holds this many bytes of YAML: one group's parse is in memory at a
/// time per thread.
const GROUP_BYTES: usize = 1 << 20;

/// The digest of each model's text in a parsed file, with the model's name.
type Digests = HashMap<u64, String>;

/// A YAML catalog file.
#[derive(Debug)]
pub struct YamlSource {
    id: SourceId,
    path: PathBuf,
    /// The file hash of the last parse and its models' digests, for the next fetch after an edit.
    last: Mutex<Option<(String, Arc<Digests>)>>,
}

impl YamlSource {
    pub fn new(id: SourceId, path: PathBuf) -> YamlSource {
        YamlSource { id, path, last: Mutex::new(None) }
    }
}

#[async_trait::async_trait]
impl Source for YamlSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    async fn fetch(&self, previous: &SyncState) -> Result<Option<SourceSnapshot>, SourceError> {
        let path = self.path.clone();
        let previous_hash = previous.get(CONTENT_HASH).cloned();
        let previous_stamp = previous.get(FILE_STAMP).cloned().filter(|_| previous_hash.is_some());
        let read = tokio::task::spawn_blocking(move || {
            // Stamped before reading: a write in between makes the next fetch read again, never miss it.
            let stamp = stamp::of(&path);
            if stamp.is_some() && stamp == previous_stamp {
                return Ok(None);
            }
            std::fs::read(&path).map(|bytes| Some((bytes, stamp)))
        });
        let read = read
            .await
            .map_err(|error| SourceError::Fetch(error.to_string()))?
            .map_err(|error| SourceError::Fetch(format!("cannot read {}: {error}", self.path.display())))?;
        let Some((bytes, stamp)) = read else { return Ok(None) };
        let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
        if previous_hash.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        // Models the caller holds from the last parse need no parsing, if that parse is what it holds.
        let known = {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let same = last.as_ref().filter(|(file, _)| Some(file) == previous_hash.as_ref());
            same.map(|(_, digests)| digests.clone()).unwrap_or_default()
        };
        let path = self.path.clone();
        let (records, digests) = tokio::task::spawn_blocking(move || parse_models(&bytes, &known))
            .await
            .map_err(|error| SourceError::Fetch(error.to_string()))?
            .map_err(|message| SourceError::Fetch(format!("{}: {message}", path.display())))?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((hash.clone(), Arc::new(digests)));
        Ok(Some(SourceSnapshot {
            records: records.into_iter().collect(),
            state: SyncState::from_iter(
                [(CONTENT_HASH.to_owned(), hash)].into_iter().chain(stamp.map(|stamp| (FILE_STAMP.to_owned(), stamp))),
            ),
            problem: None,
        }))
    }
}

/// Parses a catalog file's bytes into records, strictly.
pub fn parse_catalog(bytes: &[u8]) -> Result<Vec<ModelRecord>, String> {
    let (models, _) = parse_models(bytes, &Digests::new())?;
    let records = models.into_iter().filter_map(|(_, outcome)| match outcome {
        RecordOutcome::Changed(record) => Some(*record),
        _ => None,
    });
    Ok(records.collect())
}

/// Parses a catalog file's models by name, in order. A model whose text has a digest in `known` is not
/// parsed but reported unchanged. Returns the digests for the next parse (none when the file was parsed
/// whole, its layout being unusual).
fn parse_models(bytes: &[u8], known: &Digests) -> Result<(Vec<(String, RecordOutcome)>, Digests), String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))?;
    let pieces = Layout::of(text).and_then(|layout| parse_pieces(text, &layout, known));
    let Some((models, digests)) = pieces else {
        let catalog: RawCatalog = parse_yaml(text)?;
        let records = catalog.models.into_iter().enumerate().map(|(position, model)| {
            let record = model.into_record().map_err(|message| format!("models[{position}]: {message}"))?;
            Ok((record.name.clone(), RecordOutcome::Changed(Box::new(record))))
        });
        return Ok((unique(records.collect::<Result<_, String>>()?)?, Digests::new()));
    };
    let mut named = Digests::with_capacity(models.len());
    let mut records = Vec::with_capacity(models.len());
    for (position, (model, digest)) in models.into_iter().zip(digests).enumerate() {
        let (name, outcome) = match model {
            Model::Known(name) => (name, RecordOutcome::Unchanged),
            Model::Parsed(record) => {
                let record = record.map_err(|message| format!("models[{position}]: {message}"))?;
                (record.name.clone(), RecordOutcome::Changed(Box::new(record)))
            }
        };
        named.insert(digest, name.clone());
        records.push((name, outcome));
    }
    Ok((unique(records)?, named))
}

/// One model of a file parsed in pieces.
enum Model {
    /// Its text is as last parsed: the model of this name.
    Known(String),
    Parsed(Result<ModelRecord, String>),
}

/// Parses a file in pieces, in parallel: the file without its models, then groups of the models not
/// `known`. `None` when any piece fails to parse alone (the whole file's parse then gives the error).
fn parse_pieces(text: &str, layout: &Layout, known: &Digests) -> Option<(Vec<Model>, Vec<u64>)> {
    parse_yaml::<RawCatalog>(&layout.skeleton).ok()?;
    let digests: Vec<u64> =
        layout.items.iter().map(|item| xxhash_rust::xxh3::xxh3_64(text[item.clone()].as_bytes())).collect();
    // Runs of models to parse (item indexes), cut at about GROUP_BYTES.
    let mut groups: Vec<Range<usize>> = Vec::new();
    for (index, item) in layout.items.iter().enumerate() {
        if known.contains_key(&digests[index]) {
            continue;
        }
        match groups.last_mut() {
            Some(group) if group.end == index && item.start - layout.items[group.start].start < GROUP_BYTES => {
                group.end = index + 1
            }
            _ => groups.push(index..index + 1),
        }
    }
    let parsed = in_parallel(&groups, |group| {
        let bytes = layout.items[group.start].start..layout.items[group.end - 1].end;
        let models: Vec<RawModel> = parse_yaml(&text[bytes]).ok()?;
        (models.len() == group.len()).then(|| models.into_iter().map(RawModel::into_record).collect::<Vec<_>>())
    });
    let mut parsed = parsed.into_iter().collect::<Option<Vec<_>>>()?.into_iter().flatten();
    let models = digests.iter().map(|digest| match known.get(digest) {
        Some(name) => Some(Model::Known(name.clone())),
        None => parsed.next().map(Model::Parsed),
    });
    Some((models.collect::<Option<Vec<_>>>()?, digests))
}

/// `work` applied to each item on up to one thread per core, the results in order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from).min(items.len());
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(index) else { return done };
                        done.push((index, work(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Fails on the first model name that repeats an earlier one.
fn unique(models: Vec<(String, RecordOutcome)>) -> Result<Vec<(String, RecordOutcome)>, String> {
    let mut seen = HashMap::with_capacity(models.len());
    for (position, (name, _)) in models.iter().enumerate() {
        if let Some(first) = seen.insert(name.as_str(), position) {
            return Err(format!("models[{position}]: name {name:?} repeats models[{first}]"));
        }
    }
    Ok(models)
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
mod tests;
