//! modelcat: a federated catalog and registry for ML models, in one binary.
//!
//! This crate is the server: the registry store ([`registry`]), its HTTP APIs ([`api`]), configuration
//! ([`config`]) and the application skeleton ([`app`]). Catalog sources live in `modelcat-sources` and the
//! search index in `modelcat-index`.

pub mod api;
pub mod app;
pub mod bench;
pub mod catalog;
pub mod config;
pub use modelcat_index::filter;
pub mod pagination;
pub mod registry;
pub mod telemetry;

pub use app::{AppState, Application};
