//! The tantivy schema of the catalog index, and where each catalog field lives in it.
//!
//! Every model is one document (`kind = m`) and each of its artifacts another (`kind = a`); both carry the
//! model's `key` and `source`, so deleting by key or source removes a model with its artifacts. Filterable
//! values live in one JSON field `v`, typed by their top-level key so each JSON path has one value type:
//!
//! | path | holds |
//! |---|---|
//! | `s.<field>` / `i.<field>` | well-known string / integer fields (`name`, `license`, `tasks`, `createTimeSinceEpoch`, …) |
//! | `j.<field>` | array fields as JSON text, for Kubeflow's `language LIKE '%"en"%'` |
//! | `ps` `pi` `pd` `pb` `.<name>` | custom properties: string, int, double, bool |
//! | `an` / `ax` `.<name>` | on models: min / max of each numeric artifact property (artifact sorts, recommendations) |
//!
//! `props` lists the `<prefix>:<name>` paths a document has, which `filter_options` aggregates to find
//! every property without scanning documents.

use tantivy::schema::{
    FAST, Field, IndexRecordOption, JsonObjectOptions, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::RAW_TOKENIZER_NAME;

/// Bumped whenever the schema, the document mapping or the index settings change; an index of another
/// version is rebuilt. (2: documents sorted by `name_sort`.)
pub const SCHEMA_VERSION: u32 = 2;

/// The `kind` of model documents.
pub const MODEL: &str = "m";
/// The `kind` of artifact documents.
pub const ARTIFACT: &str = "a";

/// Well-known string fields of models, by their Kubeflow filter names.
pub const MODEL_STRINGS: &[&str] = &[
    "name",
    "source_id",
    "description",
    "provider",
    "license",
    "licenseLink",
    "libraryName",
    "maturity",
    "externalId",
];
/// Well-known model fields that `filter_options` lists and `/models?facets=` counts (besides `source_id`).
pub const FACETS: &[&str] = &["license", "provider", "tasks", "language", "libraryName", "maturity"];
/// String properties `/models?facets=` also counts: where a peer's record originated (see
/// `modelcat_sources::peer`).
pub const PROPERTY_FACETS: &[&str] = &["origin_instance", "origin_source"];
/// Well-known array fields of models.
pub const MODEL_ARRAYS: &[&str] = &["tasks", "language"];
/// Well-known integer fields of models and artifacts.
pub const INTS: &[&str] = &["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"];
/// Well-known string fields of artifacts.
pub const ARTIFACT_STRINGS: &[&str] = &["name", "description", "uri", "artifactType", "metricsType", "externalId"];

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub kind: Field,
    pub key: Field,
    pub source: Field,
    pub id: Field,
    pub hash: Field,
    pub name_sort: Field,
    pub create_time: Field,
    pub update_time: Field,
    pub name: Field,
    pub name_prefix: Field,
    pub meta: Field,
    pub meta_prefix: Field,
    pub description: Field,
    pub readme: Field,
    pub values: Field,
    pub props: Field,
    pub payload: Field,
}

impl Fields {
    pub fn build() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let raw =
            TextFieldIndexing::default().set_tokenizer(RAW_TOKENIZER_NAME).set_index_option(IndexRecordOption::Basic);
        let json = JsonObjectOptions::default().set_indexing_options(raw).set_fast(RAW_TOKENIZER_NAME);
        // Full text without positions: `q` matches words, never phrases, and positions would double the
        // postings of long readmes.
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("default").set_index_option(IndexRecordOption::WithFreqs),
        );
        // Values only sorted or aggregated, never searched: a column without an inverted index.
        let fast_only = TextOptions::default().set_fast(RAW_TOKENIZER_NAME);
        let fields = Fields {
            kind: builder.add_text_field("kind", STRING),
            key: builder.add_text_field("key", STRING | FAST),
            source: builder.add_text_field("source", STRING | FAST),
            id: builder.add_u64_field("id", FAST),
            hash: builder.add_u64_field("hash", FAST),
            name_sort: builder.add_text_field("name_sort", fast_only.clone()),
            create_time: builder.add_i64_field("create_time", FAST),
            update_time: builder.add_i64_field("update_time", FAST),
            name: builder.add_text_field("name", text.clone()),
            name_prefix: builder.add_text_field("name_prefix", text.clone()),
            meta: builder.add_text_field("meta", text.clone()),
            meta_prefix: builder.add_text_field("meta_prefix", text.clone()),
            description: builder.add_text_field("description", text.clone()),
            readme: builder.add_text_field("readme", text.clone()),
            values: builder.add_json_field("v", json),
            props: builder.add_text_field("props", fast_only),
            payload: builder.add_text_field("payload", STORED),
        };
        (builder.build(), fields)
    }
}

/// Escapes a property name for use as one segment of a JSON path.
pub fn json_segment(name: &str) -> String {
    name.replace('\\', "\\\\").replace('.', "\\.")
}

/// The full JSON path (with the `v.` field prefix) of a typed value, for aggregations and sorts.
pub fn value_path(prefix: &str, name: &str) -> String {
    format!("v.{prefix}.{}", json_segment(name))
}
