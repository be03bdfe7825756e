//! HTTP integration tests: one binary, each test against a real server over HTTP.

mod audit;
mod auth;
mod catalog;
mod cluster;
mod embedding;
mod federation;
mod first_run;
mod governance;
mod helpers;
mod hf;
mod leakage;
mod mcp;
mod oidc;
mod permissions;
mod registry;
mod replicas;
mod service;
mod startup;
mod store;
mod ui;
mod webhooks;
