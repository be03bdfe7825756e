//! MCP server catalogs: Kubeflow's YAML format (`mcp_servers:`, each server with its tools, endpoints,
//! artifacts, runtime metadata and security indicators), read into [`McpServer`] records.
//!
//! As upstream, a file that is not YAML of this shape fails whole (the caller keeps the last good
//! servers), while one bad server (no name, a duplicate name, a remote server without endpoints, an
//! endpoint or artifact URI of the wrong scheme) is left out and reported, and the others load: the
//! source is then partially available. Unknown keys are ignored, as upstream's decoder does. Runtime
//! metadata and artifacts are passed through as written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::MetadataValue;
use crate::config::parse_yaml;
use crate::yaml::{Millis, RawMetadata, properties};

/// One MCP server as its catalog describes it, in the API's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    /// Unique within its source.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(rename = "license_link", skip_serializing_if = "Option::is_none")]
    pub license_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub transports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub artifacts: Vec<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_metadata: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_indicators: Option<SecurityIndicators>,
    #[serde(skip)]
    pub custom_properties: BTreeMap<String, MetadataValue>,
    #[serde(skip)]
    pub create_time: Option<i64>,
    #[serde(skip)]
    pub update_time: Option<i64>,
    #[serde(skip)]
    pub tools: Vec<McpTool>,
}

/// Where a remote server answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<String>,
}

/// A server's security posture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityIndicators {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_source: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_endpoint: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sast: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_tools: Option<bool>,
}

impl SecurityIndicators {
    /// The indicators by their filter names.
    pub fn fields(&self) -> [(&'static str, Option<bool>); 4] {
        [
            ("verifiedSource", self.verified_source),
            ("secureEndpoint", self.secure_endpoint),
            ("sast", self.sast),
            ("readOnlyTools", self.read_only_tools),
        ]
    }
}

/// One tool a server exposes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `read_only`, `read_write` or `execute`.
    pub access_type: String,
    #[serde(default)]
    pub parameters: Vec<ToolParameter>,
}

/// One input parameter of a tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolParameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl McpServer {
    /// A hash of everything the server serves: it moves exactly when the server changes.
    pub fn content_hash(&self) -> u64 {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push_str(&serde_json::to_string(&self.tools).unwrap_or_default());
        text.push_str(&format!("{:?}{:?}{:?}", self.custom_properties, self.create_time, self.update_time));
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }
}

/// A parsed MCP catalog: the servers that loaded and a message per server left out.
#[derive(Debug, Default)]
pub struct McpCatalog {
    pub servers: Vec<McpServer>,
    pub problems: Vec<String>,
}

/// Parses an MCP catalog file's bytes; `Err` when the file as a whole cannot be read.
pub fn parse_mcp_catalog(bytes: &[u8]) -> Result<McpCatalog, String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))?;
    let raw: RawCatalog = parse_yaml(text)?;
    let mut catalog = McpCatalog::default();
    let mut seen = BTreeSet::new();
    for (position, server) in raw.mcp_servers.into_iter().enumerate() {
        match server.into_record() {
            Ok(server) if !seen.insert(server.name.clone()) => {
                catalog.problems.push(format!("mcp_servers[{position}]: {:?} is defined twice", server.name));
            }
            Ok(server) => catalog.servers.push(server),
            Err(message) => catalog.problems.push(format!("mcp_servers[{position}]: {message}")),
        }
    }
    Ok(catalog)
}

#[derive(Deserialize)]
struct RawCatalog {
    #[serde(default)]
    mcp_servers: Vec<RawServer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServer {
    name: Option<String>,
    external_id: Option<String>,
    description: Option<String>,
    provider: Option<String>,
    version: Option<String>,
    logo: Option<String>,
    license: Option<String>,
    #[serde(rename = "license_link")]
    license_link: Option<String>,
    documentation_url: Option<String>,
    repository_url: Option<String>,
    source_code: Option<String>,
    readme: Option<String>,
    published_date: Option<String>,
    #[serde(default)]
    transports: Vec<String>,
    #[serde(default)]
    tools: Vec<RawTool>,
    #[serde(default)]
    artifacts: Vec<Json>,
    deployment_mode: Option<String>,
    endpoints: Option<Endpoints>,
    runtime_metadata: Option<Json>,
    #[serde(default)]
    tags: Vec<String>,
    security_indicators: Option<SecurityIndicators>,
    custom_properties: Option<BTreeMap<String, RawMetadata>>,
    create_time_since_epoch: Option<Millis>,
    last_update_time_since_epoch: Option<Millis>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTool {
    name: Option<String>,
    description: Option<String>,
    access_type: Option<String>,
    #[serde(default)]
    parameters: Vec<ToolParameter>,
}

const ACCESS_TYPES: [&str; 3] = ["read_only", "read_write", "execute"];

impl RawServer {
    fn into_record(self) -> Result<McpServer, String> {
        let name = self.name.filter(|name| !name.trim().is_empty()).ok_or("`name` is required")?;
        let fail = |message: String| format!("{name}: {message}");
        if let Some(endpoints) = &self.endpoints {
            check_endpoints(endpoints).map_err(fail)?;
        }
        if self.deployment_mode.as_deref() == Some("remote")
            && self.endpoints.as_ref().is_none_or(|e| e.http.is_none() && e.sse.is_none() && e.websocket.is_none())
        {
            return Err(fail("deploymentMode 'remote' needs at least one endpoint".into()));
        }
        for (position, artifact) in self.artifacts.iter().enumerate() {
            match artifact.get("uri").and_then(Json::as_str) {
                Some(uri) if !uri.trim().is_empty() => {}
                _ => return Err(fail(format!("artifacts[{position}] needs a `uri`"))),
            }
        }
        let mut tools = Vec::with_capacity(self.tools.len());
        let mut tool_names = BTreeSet::new();
        for (position, tool) in self.tools.into_iter().enumerate() {
            let tool_name = tool.name.filter(|name| !name.trim().is_empty());
            let tool_name = tool_name.ok_or_else(|| fail(format!("tools[{position}]: `name` is required")))?;
            if !tool_names.insert(tool_name.clone()) {
                return Err(fail(format!("tools[{position}]: {tool_name:?} is defined twice")));
            }
            let access_type = tool.access_type.unwrap_or_else(|| "read_only".to_owned());
            if !ACCESS_TYPES.contains(&access_type.as_str()) {
                return Err(fail(format!(
                    "tools[{position}]: accessType {access_type:?} is not one of {}",
                    ACCESS_TYPES.join(", ")
                )));
            }
            tools.push(McpTool {
                name: tool_name,
                description: tool.description,
                access_type,
                parameters: tool.parameters,
            });
        }
        Ok(McpServer {
            custom_properties: properties(self.custom_properties).map_err(fail)?,
            create_time: Millis::field(self.create_time_since_epoch, "createTimeSinceEpoch")?,
            update_time: Millis::field(self.last_update_time_since_epoch, "lastUpdateTimeSinceEpoch")?,
            name,
            external_id: self.external_id,
            description: self.description,
            provider: self.provider,
            version: self.version,
            logo: self.logo,
            license: self.license,
            license_link: self.license_link,
            documentation_url: self.documentation_url,
            repository_url: self.repository_url,
            source_code: self.source_code,
            readme: self.readme,
            published_date: self.published_date,
            deployment_mode: self.deployment_mode,
            transports: self.transports,
            tags: self.tags,
            endpoints: self.endpoints,
            artifacts: self.artifacts,
            runtime_metadata: self.runtime_metadata,
            security_indicators: self.security_indicators,
            tools,
        })
    }
}

/// HTTP and SSE endpoints are http(s) URLs; WebSocket endpoints may also be ws(s).
fn check_endpoints(endpoints: &Endpoints) -> Result<(), String> {
    let web: &[&str] = &["http", "https"];
    let socket: &[&str] = &["http", "https", "ws", "wss"];
    for (field, url, schemes) in
        [("http", &endpoints.http, web), ("sse", &endpoints.sse, web), ("websocket", &endpoints.websocket, socket)]
    {
        let Some(url) = url else { continue };
        let scheme = url.split_once("://").map(|(scheme, rest)| (scheme, rest.is_empty()));
        if !matches!(scheme, Some((scheme, false)) if schemes.contains(&scheme)) {
            return Err(format!(
                "{field} endpoint {url:?} must be a URL with one of the schemes {}",
                schemes.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
mcp_servers:
  - name: calculator
    provider: Math Community
    license: MIT
    tags: [math]
    transports: [stdio]
    deploymentMode: local
    securityIndicators: {verifiedSource: true, sast: true}
    customProperties:
      tier: {metadataType: MetadataStringValue, string_value: gold}
    createTimeSinceEpoch: "1700000000000"
    artifacts: [{uri: "oci://quay.io/math/calculator:1.0"}]
    tools:
      - name: add
        accessType: read_only
        parameters: [{name: a, type: number, required: true}]
      - {name: divide}
  - name: weather
    deploymentMode: remote
  - name: bad-endpoint
    endpoints: {http: "ftp://example.com"}
  - name: calculator
  - description: nameless
"#;

    #[test]
    fn good_servers_load_and_bad_ones_are_reported() {
        let catalog = parse_mcp_catalog(CATALOG.as_bytes()).unwrap();
        assert_eq!(catalog.servers.len(), 1);
        let calculator = &catalog.servers[0];
        assert_eq!(calculator.tools.len(), 2);
        assert_eq!(calculator.tools[1].access_type, "read_only", "the default access type");
        assert_eq!(calculator.create_time, Some(1_700_000_000_000));
        assert_eq!(calculator.custom_properties["tier"], MetadataValue::String("gold".into()));
        assert_eq!(calculator.security_indicators.unwrap().verified_source, Some(true));
        let problems = catalog.problems.join("\n");
        for expected in ["weather: deploymentMode 'remote'", "bad-endpoint: http endpoint", "defined twice", "`name`"] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_catalog_fails_whole() {
        assert!(parse_mcp_catalog(b"mcp_servers: {not: a list}").is_err());
        assert!(parse_mcp_catalog(b"mcp_servers: [").is_err());
        assert!(parse_mcp_catalog(b"").unwrap().servers.is_empty());
    }
}
