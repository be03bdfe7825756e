//! Normalized model records: what every source produces, in the Kubeflow catalog model's terms.

use std::collections::BTreeMap;

/// A typed property value (Kubeflow's `MetadataValue`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MetadataValue {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// One model as a source offers it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelRecord {
    /// Unique within its source (may contain `/`).
    pub name: String,
    pub description: Option<String>,
    pub readme: Option<String>,
    pub provider: Option<String>,
    pub license: Option<String>,
    pub license_link: Option<String>,
    pub library_name: Option<String>,
    pub maturity: Option<String>,
    pub logo: Option<String>,
    pub language: Vec<String>,
    pub tasks: Vec<String>,
    pub external_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub create_time: Option<i64>,
    pub update_time: Option<i64>,
    pub properties: BTreeMap<String, MetadataValue>,
    pub artifacts: Vec<ArtifactRecord>,
}

/// An artifact of a model: a model artifact with a `uri`, or a metrics artifact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArtifactRecord {
    pub kind: ArtifactKind,
    pub common: ArtifactCommon,
}

/// What kind of artifact, with the fields only that kind has.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ArtifactKind {
    Model {
        uri: String,
    },
    /// `metrics_type` is `performance-metrics` or `accuracy-metrics`.
    Metrics {
        metrics_type: String,
    },
}

impl ArtifactKind {
    /// The Kubeflow `artifactType` of this kind.
    pub fn wire_type(&self) -> &'static str {
        match self {
            ArtifactKind::Model { .. } => "model-artifact",
            ArtifactKind::Metrics { .. } => "metrics-artifact",
        }
    }
}

/// The fields every artifact has.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArtifactCommon {
    pub name: Option<String>,
    pub description: Option<String>,
    pub external_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub create_time: Option<i64>,
    pub update_time: Option<i64>,
    pub properties: BTreeMap<String, MetadataValue>,
}

impl ModelRecord {
    /// A hash of the whole record, stable across builds: equal hashes mean nothing to rewrite.
    pub fn content_hash(&self) -> u64 {
        self.content_hash_and_size().0
    }

    /// The [`ModelRecord::content_hash`] and the size of the JSON it hashes (a measure of the record's
    /// memory), in one pass.
    pub fn content_hash_and_size(&self) -> (u64, usize) {
        // serde_json writes token by token: buffer them so the hash sees a few large updates.
        let hasher = HashWriter { hasher: xxhash_rust::xxh3::Xxh3::new(), bytes: 0 };
        let mut buffered = std::io::BufWriter::with_capacity(16 * 1024, hasher);
        serde_json::to_writer(&mut buffered, self).expect("records serialize");
        let hasher = buffered.into_inner().unwrap_or_else(|_| unreachable!("hashing never fails"));
        (hasher.hasher.digest(), hasher.bytes)
    }
}

impl ModelRecord {
    /// The record as JSON with its [`ModelRecord::content_hash`] (the hash of exactly these bytes), for
    /// callers that store the JSON anyway: one serialization instead of two.
    pub fn to_json_with_hash(&self) -> (String, u64) {
        let json = serde_json::to_string(self).expect("records serialize");
        let hash = xxhash_rust::xxh3::xxh3_64(json.as_bytes());
        (json, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_hash_is_the_content_hash() {
        let mut record =
            ModelRecord { name: "org/model".into(), readme: Some("x".repeat(40_000)), ..ModelRecord::default() };
        record.properties.insert("size".into(), MetadataValue::Double(7.5));
        let (json, hash) = record.to_json_with_hash();
        assert_eq!(hash, record.content_hash());
        assert_eq!((hash, json.len()), record.content_hash_and_size());
    }
}

/// Feeds serialized bytes straight into the hash, without building them in memory first, and counts them.
struct HashWriter {
    hasher: xxhash_rust::xxh3::Xxh3,
    bytes: usize,
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(bytes);
        self.bytes += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
