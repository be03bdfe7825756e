//! The peer source's settings (`type: peer` properties) and the origin chain peer records carry.
//!
//! A peer is another registry whose models join this catalog: another modelcat (followed through its
//! change feed), a Kubeflow Model Catalog or a Kubeflow Model Registry (both polled). Fetching lives in
//! the server (it needs HTTP and the store); this module is pure.
//!
//! Properties (camelCase, like the rest of the sources file):
//! - `url` (required): the peer's base URL, `http://` or `https://`.
//! - `protocol`: `modelcat` (default), `kubeflow-catalog` or `kubeflow-registry`.
//! - `sources`: which of the peer's sources to take; absent means those that originated there (not what
//!   the peer itself took from its own peers), `["*"]` means all of them.
//! - `tokenEnv` or `tokenFile`: where the bearer token is read from (never the token itself).
//! - `caFile`: a PEM file of extra CA certificates to trust.
//! - `syncInterval` (polled protocols, and the retry pace of the feed): a Go duration, default `5m`.
//! - `maxHops`: how many registries a record may have crossed before reaching this one (default 4).
//! - `allowMassRemoval`: let a snapshot remove more than half of this source's records (default false).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;

use crate::hf::parse_go_duration;
use crate::{MetadataValue, ModelRecord};

/// How often polled protocols sync when `syncInterval` is not given.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(300);
/// How many hops a record may take when `maxHops` is not given.
pub const DEFAULT_MAX_HOPS: usize = 4;

/// How a peer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Another modelcat's change feed (`/api/modelcat/v1/changes`).
    Modelcat,
    /// A Kubeflow Model Catalog (`/api/model_catalog/v1alpha1`), polled.
    KubeflowCatalog,
    /// A Kubeflow Model Registry (`/api/model_registry/v1alpha3`), polled.
    KubeflowRegistry,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Modelcat => "modelcat",
            Protocol::KubeflowCatalog => "kubeflow-catalog",
            Protocol::KubeflowRegistry => "kubeflow-registry",
        }
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFrom {
    Env(String),
    File(PathBuf),
}

/// A validated `peer` source.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerParams {
    /// The peer's base URL, without a trailing slash.
    pub url: String,
    pub protocol: Protocol,
    /// The peer's sources to take; `None` takes those that originated there.
    pub sources: Option<Vec<String>>,
    pub token: Option<TokenFrom>,
    pub ca_file: Option<PathBuf>,
    pub sync_interval: Duration,
    pub max_hops: usize,
    pub allow_mass_removal: bool,
}

impl PeerParams {
    /// Validates a `peer` source's properties; relative file paths resolve against `base_dir`.
    pub fn parse(properties: &BTreeMap<String, Json>, base_dir: &Path) -> Result<PeerParams, String> {
        const KNOWN: &[&str] = &[
            "url",
            "protocol",
            "sources",
            "tokenEnv",
            "tokenFile",
            "caFile",
            "syncInterval",
            "maxHops",
            "allowMassRemoval",
        ];
        if let Some(unknown) = properties.keys().find(|key| !KNOWN.contains(&key.as_str())) {
            return Err(format!("unknown peer property {unknown:?} (expected one of {})", KNOWN.join(", ")));
        }
        let text = |key: &str| -> Result<Option<String>, String> {
            match properties.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(value)) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
                Some(_) => Err(format!("properties.{key} must be a non-empty string")),
            }
        };
        let url = text("url")?.ok_or("a peer source needs properties.url")?.trim_end_matches('/').to_owned();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!("properties.url {url:?} must be an http:// or https:// URL"));
        }
        let protocol = match text("protocol")?.as_deref() {
            None | Some("modelcat") => Protocol::Modelcat,
            Some("kubeflow-catalog") => Protocol::KubeflowCatalog,
            Some("kubeflow-registry") => Protocol::KubeflowRegistry,
            Some(other) => {
                return Err(format!(
                    "properties.protocol {other:?} is not one of modelcat, kubeflow-catalog, kubeflow-registry"
                ));
            }
        };
        let sources = match properties.get("sources") {
            None | Some(Json::Null) => None,
            Some(Json::Array(items)) if !items.is_empty() => Some(
                items
                    .iter()
                    .map(|item| item.as_str().filter(|id| !id.trim().is_empty()).map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("properties.sources must be a list of source ids")?,
            ),
            Some(_) => return Err("properties.sources must be a non-empty list of source ids".into()),
        };
        let token = match (text("tokenEnv")?, text("tokenFile")?) {
            (Some(_), Some(_)) => return Err("give properties.tokenEnv or properties.tokenFile, not both".into()),
            (Some(var), None) => Some(TokenFrom::Env(var)),
            (None, Some(file)) => Some(TokenFrom::File(base_dir.join(file))),
            (None, None) => None,
        };
        let sync_interval = match text("syncInterval")? {
            Some(duration) => parse_go_duration(&duration)
                .filter(|interval| !interval.is_zero())
                .ok_or_else(|| format!("properties.syncInterval {duration:?} is not a duration such as 30s or 5m"))?,
            None => DEFAULT_SYNC_INTERVAL,
        };
        let max_hops = match properties.get("maxHops") {
            None | Some(Json::Null) => DEFAULT_MAX_HOPS,
            Some(value) => value
                .as_u64()
                .filter(|hops| (1..=32).contains(hops))
                .ok_or("properties.maxHops must be an integer from 1 to 32")? as usize,
        };
        let allow_mass_removal = match properties.get("allowMassRemoval") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(allow)) => *allow,
            Some(_) => return Err("properties.allowMassRemoval must be true or false".into()),
        };
        Ok(PeerParams {
            url,
            protocol,
            sources,
            token,
            ca_file: text("caFile")?.map(|file| base_dir.join(file)),
            sync_interval,
            max_hops,
            allow_mass_removal,
        })
    }
}

/// One registry a record passed through: the instance and the source it was in there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hop {
    pub instance: String,
    pub source: String,
}

/// The properties a peer record carries its origin in (shown by the catalog API, `origin_instance`
/// also as a facet).
pub mod origin_property {
    /// The instance the record originated at.
    pub const INSTANCE: &str = "origin_instance";
    /// The source it originated in, there.
    pub const SOURCE: &str = "origin_source";
    /// Every hop, `instance:source` joined by ` > `, origin first.
    pub const CHAIN: &str = "origin_chain";
    /// How many hops it took.
    pub const HOPS: &str = "origin_hops";
    pub const ALL: &[&str] = &[INSTANCE, SOURCE, CHAIN, HOPS];
}

/// The origin chain a record carries (empty for a record that originated in this instance).
pub fn origin_of(record: &ModelRecord) -> Vec<Hop> {
    let Some(MetadataValue::String(chain)) = record.properties.get(origin_property::CHAIN) else { return Vec::new() };
    let hops = chain.split(" > ").filter_map(|hop| hop.split_once(':'));
    hops.map(|(instance, source)| Hop { instance: instance.to_owned(), source: source.to_owned() }).collect()
}

/// Writes `chain` into the record's origin properties (replacing any there).
pub fn set_origin(record: &mut ModelRecord, chain: &[Hop]) {
    strip_origin(record);
    let (Some(first), properties) = (chain.first(), &mut record.properties) else { return };
    let text = |value: &str| MetadataValue::String(value.to_owned());
    properties.insert(origin_property::INSTANCE.to_owned(), text(&first.instance));
    properties.insert(origin_property::SOURCE.to_owned(), text(&first.source));
    let joined: Vec<String> = chain.iter().map(|hop| format!("{}:{}", hop.instance, hop.source)).collect();
    properties.insert(origin_property::CHAIN.to_owned(), text(&joined.join(" > ")));
    properties.insert(origin_property::HOPS.to_owned(), MetadataValue::Int(chain.len() as i64));
}

/// Removes the origin properties (a feed sends the chain beside the record instead).
pub fn strip_origin(record: &mut ModelRecord) {
    for key in origin_property::ALL {
        record.properties.remove(*key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(json: Json) -> BTreeMap<String, Json> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn settings_are_validated() {
        let base = Path::new("/etc/modelcat");
        let params = PeerParams::parse(
            &properties(serde_json::json!({"url": "http://a:8080/", "tokenFile": "a.token", "maxHops": 2})),
            base,
        )
        .unwrap();
        assert_eq!(params.url, "http://a:8080");
        assert_eq!(params.protocol, Protocol::Modelcat);
        assert_eq!(params.token, Some(TokenFrom::File(base.join("a.token"))));
        assert_eq!(params.max_hops, 2);
        assert!(!params.allow_mass_removal);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"url": "ftp://a"}),
            serde_json::json!({"url": "http://a", "protocol": "grpc"}),
            serde_json::json!({"url": "http://a", "token": "secret"}),
            serde_json::json!({"url": "http://a", "tokenEnv": "A", "tokenFile": "b"}),
            serde_json::json!({"url": "http://a", "sources": []}),
            serde_json::json!({"url": "http://a", "maxHops": 0}),
        ] {
            let error = PeerParams::parse(&properties(bad.clone()), base).unwrap_err();
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn origin_round_trips_through_properties() {
        let mut record = ModelRecord { name: "m".into(), ..ModelRecord::default() };
        assert!(origin_of(&record).is_empty());
        let chain = vec![
            Hop { instance: "a1".into(), source: "registry".into() },
            Hop { instance: "b2".into(), source: "team-a".into() },
        ];
        set_origin(&mut record, &chain);
        assert_eq!(origin_of(&record), chain);
        assert_eq!(record.properties[origin_property::HOPS], MetadataValue::Int(2));
        strip_origin(&mut record);
        assert!(record.properties.is_empty());
    }
}
