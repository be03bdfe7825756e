//! HTTP integration tests: one binary, each test against a real server over HTTP.

mod catalog;
mod helpers;
mod hf;
mod registry;
mod service;
