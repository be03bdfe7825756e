//! modelcat: a federated catalog and registry for ML models, in one binary.
//!
//! This crate is the server: the shared persistence layer ([`store`]: SQLite or PostgreSQL, migrations,
//! the change log and leases), this process as one of several replicas ([`replica`]), who may do what
//! ([`auth`]: identities, roles, API tokens), the registry store ([`registry`]), its HTTP APIs ([`api`]) and web UI ([`ui`]), configuration
//! ([`config`]), the catalog service ([`catalog`]), the Hugging Face mirror ([`mirror`], served by
//! [`api::hf`]) and the application skeleton ([`app`]). [`fake_hub`] is a faithful stand-in for the Hub,
//! for tests and benchmarks. Catalog sources live in `modelcat-sources` and the
//! search index in `modelcat-index`.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod catalog;
pub mod config;
pub mod fake_hub;
pub mod federation;
pub mod governance;
pub mod hex;
pub mod mcp;
pub mod mirror;
pub mod nullable;
pub use modelcat_index::filter;
pub mod pagination;
pub mod private_file;
pub mod registry;
pub mod replica;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod webhooks;

pub use app::{AppState, Application};

/// Installs the process's TLS crypto provider (ring), which every HTTP client needs before it is built.
/// Idempotent; the binary calls it first thing, and [`Application::build`] and the Hub client call it too.
pub fn install_crypto_provider() {
    // A second install reports the provider already there; that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
