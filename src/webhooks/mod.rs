//! Webhooks: signed HTTP deliveries of the outbox's events ([`crate::store::outbox`]) to subscribed
//! endpoints.
//!
//! Contract:
//! - Every event of a wanted type gets one delivery per enabled subscription, written in the same
//!   transaction as the change (so a crash between commit and delivery loses nothing: the dispatcher
//!   sends it after a restart). Delivery is at least once; receivers deduplicate by `webhook-id`.
//! - Deliveries follow Standard Webhooks 1.0 ([`signing`]): `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature` headers over the JSON payload.
//! - [`dispatcher`] retries a failed attempt (a non-2xx answer or a transport error) on
//!   `webhooks.retry_schedule_secs` (the specification's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
//!   24 h) and then marks it failed; a `410` disables the subscription.
//! - Destinations pass [`guard`]: no private, loopback or link-local address unless allowed.
//! - Every attempt is logged per delivery; an admin can send a delivery again, and rotate a secret while
//!   the old one keeps signing for `webhooks.rotation_window_hours`.
//! - Finished deliveries and events older than `webhooks.retention_days` are pruned.
//! - Subscriptions are managed over HTTP ([`crate::api::webhooks`]) and on the command line ([`cli`]).
//! - `catalog.*` events go only to the subscriptions that chose their source (`catalogSources`).

pub mod cli;
pub mod dispatcher;
pub mod guard;
pub mod signing;
pub mod store;

use std::time::Duration;

use serde::Deserialize;

use crate::store::DbError;

/// The most catalog sources one subscription may choose.
const MAX_CATALOG_SOURCES: usize = 64;

/// Checks the catalog source ids a subscription chooses (their events are
/// [`crate::catalog::events`]'); returns them sorted, without repeats.
pub fn check_catalog_sources(sources: Vec<String>) -> Result<Vec<String>, String> {
    if sources.len() > MAX_CATALOG_SOURCES {
        return Err(format!("catalogSources: at most {MAX_CATALOG_SOURCES} sources"));
    }
    let mut checked = Vec::with_capacity(sources.len());
    for source in sources {
        let id = modelcat_sources::SourceId::parse(&source).map_err(|error| format!("catalogSources: {error}"))?;
        checked.push(id.as_str().to_owned());
    }
    checked.sort();
    checked.dedup();
    Ok(checked)
}

/// What the HTTP layer needs of webhooks.
#[derive(Clone)]
pub struct Webhooks {
    pub store: store::WebhookStore,
    pub destinations: guard::Destinations,
    pub rotation_window: Duration,
}

/// Why a webhook request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// The `webhooks` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Networks deliveries may reach although private, loopback or link-local (e.g. `10.0.0.0/8`).
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Seconds to wait before each retry.
    pub retry_schedule_secs: Vec<u64>,
    /// Seconds an attempt may take.
    pub timeout_secs: u64,
    /// How long a rotated secret keeps signing.
    pub rotation_window_hours: u64,
    /// How long delivered and failed deliveries, and their events, are kept.
    pub retention_days: u64,
    /// How often the dispatcher looks for due deliveries.
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allowed_networks: Vec::new(),
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400],
            timeout_secs: 10,
            rotation_window_hours: 24,
            retention_days: 7,
            poll_interval_ms: 200,
        }
    }
}

impl WebhookSettings {
    pub fn destinations(&self) -> guard::Destinations {
        guard::Destinations::new(self.allowed_networks.clone())
    }

    pub fn rotation_window(&self) -> Duration {
        Duration::from_secs(self.rotation_window_hours * 3600)
    }

    /// Problems with the values, for the configuration's error.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.timeout_secs == 0 || self.poll_interval_ms == 0 {
            problems.push("webhooks.timeout_secs and webhooks.poll_interval_ms must be at least 1".to_owned());
        }
        if self.retention_days == 0 {
            problems.push("webhooks.retention_days must be at least 1".to_owned());
        }
        problems
    }
}
