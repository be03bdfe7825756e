//! A cluster of real `modelcat serve` processes sharing one database, for the scale-out tests: start,
//! `kill -9`, graceful stop, pause (`SIGSTOP`) and resume, restart on the same data directory. Every node
//! runs with authentication on, as by default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::eventually;

pub const CATALOG: &str = "/api/model_catalog/v1alpha1";
pub const REGISTRY: &str = "/api/model_registry/v1alpha3";

/// The admin token every node accepts (`MODELCAT_ADMIN_TOKEN`) and its client sends; peers in the
/// federation tests follow one another with it (`tokenEnv: MODELCAT_ADMIN_TOKEN`).
pub static ADMIN_TOKEN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| modelcat::auth::token::Plaintext::generate().expose().to_owned());

/// Replication settings of every node (short, so faults show quickly).
#[derive(Debug, Clone)]
pub struct Timing {
    pub lease_ttl_ms: u64,
    pub poll_interval_ms: u64,
    pub log_retention_secs: u64,
    pub heartbeat_ms: u64,
    pub replica_timeout_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_ttl_ms: 3000,
            poll_interval_ms: 1000,
            log_retention_secs: 86_400,
            heartbeat_ms: 200,
            replica_timeout_ms: 2000,
        }
    }
}

/// One `modelcat serve` process.
pub struct Node {
    pub id: String,
    pub address: String,
    port: u16,
    dir: PathBuf,
    database_url: String,
    child: Option<Child>,
    client: reqwest::Client,
    /// `RUST_LOG` of the process.
    log_filter: &'static str,
}

impl Node {
    /// Starts replica `id` with its data under `root/id`, serving `sources` (a sources file, may be
    /// empty), and waits until it is ready.
    pub async fn start(root: &Path, id: &str, database_url: &str, sources: &str, timing: &Timing) -> Node {
        let mut node = Node::spawn(root, id, database_url, sources, timing);
        node.wait_ready().await;
        node
    }

    /// Starts the process like [`Node::start`] without waiting for anything.
    pub fn spawn(root: &Path, id: &str, database_url: &str, sources: &str, timing: &Timing) -> Node {
        Node::spawn_logging(root, id, database_url, sources, timing, "info")
    }

    /// [`Node::spawn`] with `RUST_LOG` set to `log_filter`.
    pub fn spawn_logging(
        root: &Path,
        id: &str,
        database_url: &str,
        sources: &str,
        timing: &Timing,
        log_filter: &'static str,
    ) -> Node {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).expect("node dir");
        std::fs::write(dir.join("sources.yaml"), sources).expect("sources file");
        let config = format!(
            "catalog:\n  sources: [{sources}]\n  reload_debounce_ms: 50\nreplication:\n  replica_id: {id}\n  \
             lease_ttl_ms: {}\n  poll_interval_ms: {}\n  log_retention_secs: {}\n  heartbeat_ms: {}\n  \
             replica_timeout_ms: {}\ntesting:\n  reset_endpoint: true\n",
            timing.lease_ttl_ms,
            timing.poll_interval_ms,
            timing.log_retention_secs,
            timing.heartbeat_ms,
            timing.replica_timeout_ms,
            sources = dir.join("sources.yaml").display(),
        );
        std::fs::write(dir.join("modelcat.yaml"), config).expect("config file");
        modelcat::install_crypto_provider();
        let port = free_port();
        let client = crate::helpers::authorized_client(&ADMIN_TOKEN);
        let mut node = Node {
            id: id.to_owned(),
            address: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            database_url: database_url.to_owned(),
            child: None,
            client,
            log_filter,
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_modelcat"))
            .arg("serve")
            .arg("--config")
            .arg(self.dir.join("modelcat.yaml"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--database-url")
            .arg(&self.database_url)
            .env("RUST_LOG", self.log_filter)
            .env("MODELCAT_ADMIN_TOKEN", ADMIN_TOKEN.as_str())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("modelcat serve starts");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let ready = eventually(Duration::from_secs(60), || async {
            let response = self.client.get(format!("{}/readyz", self.address)).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "replica {} did not get ready; its log:\n{}", self.id, self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("modelcat.log")
    }

    /// Replaces the node's sources file (the catalog reloads it).
    pub fn set_sources(&self, sources: &str) {
        std::fs::write(self.dir.join("sources.yaml"), sources).expect("sources file");
    }

    /// Where the node keeps its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.pid()).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// `kill -9`: no shutdown, no lease release.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.take().expect("running").wait();
    }

    /// `SIGTERM`, then waits for the process to exit (graceful shutdown).
    pub fn stop(&mut self) {
        self.signal("-TERM");
        let _ = self.child.take().expect("running").wait();
    }

    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Starts the process again on the same data directory and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the replica first");
        self.launch();
        self.wait_ready().await;
    }

    pub async fn get(&self, path: &str) -> Option<Value> {
        let response = self.client.get(format!("{}{path}", self.address)).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.json().await.ok()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self.client.post(format!("{}{path}", self.address)).json(&body).send().await.expect("sent");
        assert!(response.status().is_success(), "POST {path} on {}: {}", self.id, response.status());
        response.json().await.expect("json")
    }

    /// Registers model `name` (description `first`) with version `v1` and a model artifact
    /// `s3://bucket/<name>`; returns its id.
    pub async fn register(&self, name: &str) -> String {
        let body = serde_json::json!({"name": name, "description": "first"});
        let model = self.post(&format!("{REGISTRY}/registered_models"), body).await;
        let id = model["id"].as_str().expect("id").to_owned();
        let version = serde_json::json!({"name": "v1", "registeredModelId": id});
        let version = self.post(&format!("{REGISTRY}/registered_models/{id}/versions"), version).await;
        let version_id = version["id"].as_str().expect("id");
        let artifact = serde_json::json!({"artifactType": "model-artifact", "name": "weights", "uri": format!("s3://bucket/{name}")});
        self.post(&format!("{REGISTRY}/model_versions/{version_id}/artifacts"), artifact).await;
        id
    }

    pub async fn delete(&self, path: &str) {
        let response = self.client.delete(format!("{}{path}", self.address)).send().await.expect("sent");
        assert!(response.status().is_success(), "DELETE {path} on {}: {}", self.id, response.status());
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        let response = self.client.patch(format!("{}{path}", self.address)).json(&body).send().await.expect("sent");
        assert!(response.status().is_success(), "PATCH {path} on {}: {}", self.id, response.status());
        response.json().await.expect("json")
    }

    /// The catalog status (`…/status`), with this replica's position and leases.
    pub async fn status(&self) -> Value {
        self.get(&format!("{CATALOG}/status")).await.unwrap_or_default()
    }

    /// The lease names this replica holds.
    pub async fn leases(&self) -> Vec<String> {
        let status = self.status().await;
        let leases = status["replica"]["leases"].as_array().cloned().unwrap_or_default();
        leases.iter().filter_map(|lease| lease["name"].as_str().map(str::to_owned)).collect()
    }

    /// Every model name the catalog serves for `source`, read page by page.
    pub async fn catalog_names(&self, source: &str) -> Option<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        let mut token = String::new();
        loop {
            let path = format!("{CATALOG}/models?source={source}&pageSize=1000&nextPageToken={}", urlencode(&token));
            let page = self.get(&path).await?;
            for item in page["items"].as_array()? {
                names.insert(item["name"].as_str()?.to_owned());
            }
            token = page["nextPageToken"].as_str().unwrap_or_default().to_owned();
            if token.is_empty() {
                return Some(names);
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// The names of the registered models the store holds and the catalog should show (not archived).
pub async fn live_models(database_url: &str) -> BTreeSet<String> {
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM registered_model WHERE state IS DISTINCT FROM 'ARCHIVED'")
            .fetch_all(&pool)
            .await
            .expect("query");
    pool.close().await;
    names.into_iter().collect()
}

/// Waits until every node's catalog shows exactly `expected` for `source`; returns the nodes that never
/// did, with what they showed.
pub async fn converge(nodes: &[&Node], source: &str, expected: &BTreeSet<String>, within: Duration) -> Vec<String> {
    let mut laggards = Vec::new();
    for node in nodes {
        let seen = eventually(within, || async {
            let names = node.catalog_names(source).await?;
            (names == *expected).then_some(())
        })
        .await;
        if seen.is_none() {
            let names = node.catalog_names(source).await.unwrap_or_default();
            let missing: Vec<_> = expected.difference(&names).take(5).collect();
            let extra: Vec<_> = names.difference(expected).take(5).collect();
            laggards.push(format!("{}: {} models, missing {missing:?}, extra {extra:?}", node.id, names.len()));
        }
    }
    laggards
}
