//! The MCP part of `modelcat bench catalog`: a generated MCP catalog beside the generated models, and
//! the MCP catalog's and the cross-asset search's scenarios against the same server.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::{Load, Random, expect_ok, scenario};

const DOMAINS: &[&str] = &[
    "postgres",
    "mysql",
    "kafka",
    "github",
    "gitlab",
    "jira",
    "slack",
    "kubernetes",
    "prometheus",
    "grafana",
    "s3",
    "weather",
    "calendar",
    "search",
    "browser",
    "files",
    "shell",
    "python",
    "notebook",
    "vector",
    "redis",
    "mongodb",
    "elastic",
    "stripe",
    "salesforce",
    "zendesk",
    "sentry",
    "docker",
    "terraform",
    "vault",
];
const VERBS: &[&str] = &["list", "get", "search", "create", "update", "delete", "describe", "run", "watch", "export"];
const LICENSES: &[&str] = &["Apache-2.0", "MIT", "BSD-3-Clause", "MPL-2.0", "proprietary"];

/// Writes `count` MCP servers to `mcp-servers.yaml` in `dir` and returns the sources-file section that
/// names it (empty for none).
pub fn generate(dir: &Path, count: usize) -> anyhow::Result<String> {
    if count == 0 {
        return Ok(String::new());
    }
    let mut random = Random(0x00c0_ffee_1234_5678);
    let mut text = String::from("mcp_servers:\n");
    for index in 0..count {
        let mut pick = |items: &[&'static str]| items[random.below(items.len() as u64) as usize];
        let domain = pick(DOMAINS);
        let license = pick(LICENSES);
        let remote = index % 3 == 0;
        writeln!(text, "  - name: {domain}-mcp-{index:05}")?;
        writeln!(text, "    description: Tools for {domain}, generated server number {index}.")?;
        writeln!(text, "    provider: Provider {}", index % 97)?;
        writeln!(text, "    license: {license}")?;
        writeln!(text, "    tags: [{domain}, generated]")?;
        writeln!(text, "    transports: [{}]", if remote { "http" } else { "stdio" })?;
        writeln!(text, "    deploymentMode: {}", if remote { "remote" } else { "local" })?;
        if remote {
            writeln!(text, "    endpoints: {{http: \"https://{domain}-{index}.mcp.example.com/mcp\"}}")?;
        }
        writeln!(
            text,
            "    securityIndicators: {{verifiedSource: {}, sast: {}, readOnlyTools: {}}}",
            index % 2 == 0,
            index % 5 == 0,
            index % 4 == 0
        )?;
        writeln!(text, "    tools:")?;
        for verb in VERBS.iter().take(2 + index % 6) {
            writeln!(text, "      - {{name: {verb}_{domain}, accessType: read_only}}")?;
        }
    }
    std::fs::write(dir.join("mcp-servers.yaml"), text)?;
    Ok("mcp_catalogs:\n  - {id: benchmcp, name: Bench MCP, type: yaml, properties: {yamlCatalogPath: mcp-servers.yaml}}\n"
        .to_owned())
}

struct Context {
    client: reqwest::Client,
    root: String,
}

/// A search word: a domain or its first letters.
fn word(seed: u64) -> String {
    let mut random = Random(seed | 1);
    let domain = DOMAINS[random.below(DOMAINS.len() as u64) as usize];
    domain.chars().take(3 + random.below(domain.len().saturating_sub(2).max(1) as u64) as usize).collect()
}

/// A model family name or its first letters, as the catalog bench's models use them.
fn family(seed: u64) -> String {
    let mut random = Random(seed | 1);
    let family = super::catalog::FAMILIES[random.below(super::catalog::FAMILIES.len() as u64) as usize];
    family.chars().take(3 + random.below(family.len().saturating_sub(2).max(1) as u64) as usize).collect()
}

/// Prints the MCP scenarios' rows under the catalog bench's table.
pub async fn scenarios(load: Load, client: reqwest::Client, port: u16) {
    let context = Arc::new(Context { client, root: format!("http://127.0.0.1:{port}") });
    scenario(load, "MCP q search", context.clone(), |context, seed| async move {
        let url = format!("{}/api/mcp_catalog/v1alpha1/mcp_servers", context.root);
        expect_ok(context.client.get(url).query(&[("q", word(seed).as_str())]).send().await?).await
    })
    .await
    .print();
    scenario(load, "MCP q + filterQuery + tools", context.clone(), |context, seed| async move {
        let url = format!("{}/api/mcp_catalog/v1alpha1/mcp_servers", context.root);
        let q = word(seed);
        let query = [
            ("q", q.as_str()),
            ("filterQuery", "verifiedSource = true AND license IN ('MIT', 'Apache-2.0')"),
            ("includeTools", "true"),
        ];
        expect_ok(context.client.get(url).query(&query).send().await?).await
    })
    .await
    .print();
    scenario(load, "search across models + MCP", context.clone(), |context, seed| async move {
        // Half the words are model families (many model hits), half MCP domains (many server hits).
        let q = if seed % 2 == 0 { word(seed) } else { family(seed) };
        let url = format!("{}/api/modelcat/v1/search", context.root);
        expect_ok(context.client.get(url).query(&[("q", q.as_str())]).send().await?).await
    })
    .await
    .print();
}
