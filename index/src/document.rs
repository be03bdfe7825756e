//! The only place that maps a [`ModelRecord`] to index documents (see [`crate::schema`] for the layout),
//! and back: each model document stores its record as JSON, which detail and artifact reads return.

use std::collections::BTreeMap;

use modelcat_sources::{ArtifactKind, MetadataValue, ModelRecord};
use tantivy::TantivyDocument;
use tantivy::schema::OwnedValue;

use crate::DocKey;
use crate::schema::{ARTIFACT, Fields, MODEL};

/// Word prefixes shorter than this are not indexed (a one-letter prefix matches nearly everything).
const MIN_PREFIX: usize = 2;
/// Longer word prefixes are not indexed; longer query words match whole words only.
pub const MAX_PREFIX: usize = 20;

/// A model as stored in the index: its record plus the identity the catalog shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredModel {
    pub source_id: String,
    pub id: u64,
    pub record: ModelRecord,
}

/// [`StoredModel`]'s serialized form, written without cloning the record.
#[derive(serde::Serialize)]
struct StoredModelRef<'a> {
    source_id: &'a str,
    id: u64,
    record: &'a ModelRecord,
}

/// A stable id for a key: the same model keeps its id across reloads and restarts.
pub fn stable_id(key: &str) -> u64 {
    // Kubeflow ids are decimal strings; stay within 15 digits so JavaScript clients keep them exact.
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % 1_000_000_000_000_000 + 1
}

/// The documents of one model: the model itself, then one per artifact.
pub fn model_documents(fields: &Fields, source_id: &str, record: &ModelRecord, hash: u64) -> Vec<TantivyDocument> {
    let key = DocKey { source_id: source_id.to_owned(), name: record.name.clone() }.to_string();
    let id = stable_id(&key);
    let mut documents = Vec::with_capacity(1 + record.artifacts.len());

    let mut doc = TantivyDocument::new();
    doc.add_text(fields.kind, MODEL);
    doc.add_text(fields.key, &key);
    doc.add_text(fields.source, source_id);
    doc.add_u64(fields.id, id);
    doc.add_u64(fields.hash, hash);
    doc.add_text(fields.name_sort, record.name.to_lowercase());
    if let Some(time) = record.create_time {
        doc.add_i64(fields.create_time, time);
    }
    if let Some(time) = record.update_time {
        doc.add_i64(fields.update_time, time);
    }
    doc.add_text(fields.name, &record.name);
    doc.add_text(fields.name_prefix, word_prefixes(&record.name));
    let meta: Vec<&str> = [&record.provider, &record.library_name, &record.license, &record.maturity]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .chain(record.tasks.iter().map(String::as_str))
        .collect();
    let meta = meta.join(" ");
    let prefixed = format!("{meta} {}", record.description.as_deref().unwrap_or_default());
    doc.add_text(fields.meta_prefix, word_prefixes(&prefixed));
    doc.add_text(fields.meta, meta);
    if let Some(description) = &record.description {
        doc.add_text(fields.description, description);
    }
    if let Some(readme) = &record.readme {
        doc.add_text(fields.readme, readme);
    }

    let mut values = Values::default();
    values.string("name", &record.name);
    values.string("source_id", source_id);
    for (field, value) in [
        ("description", &record.description),
        ("provider", &record.provider),
        ("license", &record.license),
        ("licenseLink", &record.license_link),
        ("libraryName", &record.library_name),
        ("maturity", &record.maturity),
        ("externalId", &record.external_id),
    ] {
        if let Some(value) = value {
            values.string(field, value);
        }
    }
    for (field, items) in [("tasks", &record.tasks), ("language", &record.language)] {
        if !items.is_empty() {
            values.array(field, items);
        }
    }
    values.times(id, record.create_time, record.update_time);
    values.properties(&record.properties);
    let mut minima: BTreeMap<&str, f64> = BTreeMap::new();
    let mut maxima: BTreeMap<&str, f64> = BTreeMap::new();
    for artifact in &record.artifacts {
        for (name, value) in &artifact.common.properties {
            let number = match value {
                MetadataValue::Int(number) => *number as f64,
                MetadataValue::Double(number) if number.is_finite() => *number,
                _ => continue,
            };
            minima.entry(name).and_modify(|min| *min = min.min(number)).or_insert(number);
            maxima.entry(name).and_modify(|max| *max = max.max(number)).or_insert(number);
        }
    }
    values.numbers("an", minima);
    values.numbers("ax", maxima);
    values.write(fields, &mut doc);
    let stored = StoredModelRef { source_id, id, record };
    doc.add_text(fields.payload, serde_json::to_string(&stored).expect("records serialize"));
    documents.push(doc);

    for (position, artifact) in record.artifacts.iter().enumerate() {
        let mut doc = TantivyDocument::new();
        doc.add_text(fields.kind, ARTIFACT);
        doc.add_text(fields.key, &key);
        // Every document has a sort name, so the column is dense and sorting models skips a rank lookup.
        doc.add_text(fields.name_sort, "");
        doc.add_text(fields.source, source_id);
        let mut values = Values::default();
        values.string("artifactType", artifact.kind.wire_type());
        match &artifact.kind {
            ArtifactKind::Model { uri } => values.string("uri", uri),
            ArtifactKind::Metrics { metrics_type } => values.string("metricsType", metrics_type),
        }
        let common = &artifact.common;
        for (field, value) in
            [("name", &common.name), ("description", &common.description), ("externalId", &common.external_id)]
        {
            if let Some(value) = value {
                values.string(field, value);
            }
        }
        values.times(artifact_id(&key, position), common.create_time, common.update_time);
        values.properties(&common.properties);
        values.write(fields, &mut doc);
        documents.push(doc);
    }
    documents
}

/// The stable id of a model's artifact, by its position in the model.
pub fn artifact_id(key: &str, position: usize) -> u64 {
    stable_id(&format!("{key}#{position}"))
}

/// Lowercased edge n-grams of each word, so a query word matches the words it begins.
fn word_prefixes(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()) {
        let word = word.to_lowercase();
        for (count, (end, c)) in word.char_indices().enumerate() {
            let end = end + c.len_utf8();
            if count + 1 >= MIN_PREFIX && count < MAX_PREFIX {
                out.push_str(&word[..end]);
                out.push(' ');
            }
        }
    }
    out
}

/// The typed JSON object `v` of one document and the property paths it names.
#[derive(Default)]
struct Values {
    groups: BTreeMap<&'static str, BTreeMap<String, OwnedValue>>,
}

impl Values {
    fn put(&mut self, group: &'static str, name: &str, value: OwnedValue) {
        self.groups.entry(group).or_default().insert(name.to_owned(), value);
    }

    fn string(&mut self, field: &str, value: &str) {
        self.put("s", field, OwnedValue::Str(value.to_owned()));
    }

    fn array(&mut self, field: &str, items: &[String]) {
        self.put("s", field, OwnedValue::Array(items.iter().cloned().map(OwnedValue::Str).collect()));
        self.put("j", field, OwnedValue::Str(serde_json::to_string(items).expect("strings serialize")));
    }

    fn times(&mut self, id: u64, create: Option<i64>, update: Option<i64>) {
        self.put("i", "id", OwnedValue::I64(id as i64));
        for (field, time) in [("createTimeSinceEpoch", create), ("lastUpdateTimeSinceEpoch", update)] {
            if let Some(time) = time {
                self.put("i", field, OwnedValue::I64(time));
            }
        }
    }

    fn properties(&mut self, properties: &BTreeMap<String, MetadataValue>) {
        for (name, value) in properties {
            let (group, value) = match value {
                MetadataValue::String(text) => ("ps", OwnedValue::Str(text.clone())),
                MetadataValue::Int(number) => ("pi", OwnedValue::I64(*number)),
                MetadataValue::Double(number) => ("pd", OwnedValue::F64(*number)),
                MetadataValue::Bool(flag) => ("pb", OwnedValue::Bool(*flag)),
            };
            self.put(group, name, value);
        }
    }

    fn numbers(&mut self, group: &'static str, numbers: BTreeMap<&str, f64>) {
        for (name, number) in numbers {
            self.put(group, name, OwnedValue::F64(number));
        }
    }

    fn write(self, fields: &Fields, doc: &mut TantivyDocument) {
        let mut object = BTreeMap::new();
        for (group, values) in self.groups {
            if !matches!(group, "j" | "an" | "ax") {
                for name in values.keys() {
                    doc.add_text(fields.props, format!("{group}:{name}"));
                }
            }
            object.insert(group.to_owned(), OwnedValue::Object(values.into_iter().collect()));
        }
        doc.add_object(fields.values, object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_each_word_from_two_letters() {
        assert_eq!(word_prefixes("Granite-8b x"), "gr gra gran grani granit granite 8b ");
    }

    #[test]
    fn ids_are_stable_and_bounded() {
        assert_eq!(stable_id("a:b"), stable_id("a:b"));
        assert_ne!(stable_id("a:b"), stable_id("a:c"));
        assert!(stable_id("x") <= 1_000_000_000_000_000);
    }
}
