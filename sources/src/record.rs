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
pub enum ArtifactRecord {
    Model {
        name: Option<String>,
        uri: String,
        properties: BTreeMap<String, MetadataValue>,
    },
    /// `metrics_type` is `performance-metrics` or `accuracy-metrics`.
    Metrics {
        name: Option<String>,
        metrics_type: String,
        properties: BTreeMap<String, MetadataValue>,
    },
}
