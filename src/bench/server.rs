//! A `modelcat serve` child process of a benchmark (this binary's `serve`), so the load generator and
//! the servers are separate processes, as users run them.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The environment variable naming the command that runs servers instead of this binary, for example a
/// heap profiler wrapping it: `MODELCAT_BENCH_SERVER="heaptrack -o soak /path/to/modelcat"` (`serve …`
/// is appended). The process figures benches read from `/proc` are then the wrapper's.
pub const SERVER_COMMAND: &str = "MODELCAT_BENCH_SERVER";

/// One child `modelcat serve` with its data under `root/id`. It accepts [`Server::admin_token`]
/// (`MODELCAT_ADMIN_TOKEN`), which [`Server::client`] sends.
pub struct Server {
    pub id: String,
    pub address: String,
    pub dir: PathBuf,
    pub admin_token: String,
    database_url: String,
    child: Option<Child>,
}

/// One admin token for every server of this bench run (peers use it to follow each other).
pub fn bench_admin_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| crate::auth::token::Plaintext::generate().expose().to_owned())
}

impl Server {
    pub fn start(
        root: &Path,
        id: &str,
        database_url: &str,
        sources: &str,
        lease_ttl_ms: u64,
    ) -> anyhow::Result<Server> {
        Self::start_configured(root, id, database_url, sources, lease_ttl_ms, "")
    }

    /// Starts a server whose configuration also holds `more_config` (top-level YAML sections).
    pub fn start_configured(
        root: &Path,
        id: &str,
        database_url: &str,
        sources: &str,
        lease_ttl_ms: u64,
        more_config: &str,
    ) -> anyhow::Result<Server> {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("sources.yaml"), sources)?;
        let config = format!(
            "catalog:\n  sources: [{}]\nreplication:\n  replica_id: {id}\n  lease_ttl_ms: {lease_ttl_ms}\n{more_config}",
            dir.join("sources.yaml").display()
        );
        std::fs::write(dir.join("modelcat.yaml"), config)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut replica = Server {
            id: id.to_owned(),
            address: format!("http://127.0.0.1:{port}"),
            dir,
            admin_token: bench_admin_token().to_owned(),
            database_url: database_url.to_owned(),
            child: None,
        };
        replica.launch()?;
        Ok(replica)
    }

    pub fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("modelcat.log"))?;
        let listen = self.address.trim_start_matches("http://").to_owned();
        let mut command = match std::env::var(SERVER_COMMAND) {
            Ok(line) if !line.trim().is_empty() => {
                let mut words = line.split_whitespace();
                let mut command = Command::new(words.next().unwrap_or_default());
                command.args(words);
                command
            }
            _ => Command::new(std::env::current_exe()?),
        };
        let child = command
            .args(["serve", "--listen", &listen, "--database-url", &self.database_url])
            .arg("--config")
            .arg(self.dir.join("modelcat.yaml"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("MODELCAT_ADMIN_TOKEN", &self.admin_token)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // Its own process group, so stopping it stops a wrapper's children too.
            .process_group(0)
            .spawn()
            .context("starting a replica")?;
        self.child = Some(child);
        Ok(())
    }

    /// A client that sends the admin token.
    pub fn client(&self, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
        super::client(Some(&self.admin_token), idle_per_host)
    }

    pub async fn ready(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        self.ready_within(client, Duration::from_secs(60)).await
    }

    /// Waits until `/readyz` answers 200 (the catalog loaded), for at most `within`.
    pub async fn ready_within(&self, client: &reqwest::Client, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/readyz", self.address)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("replica {} did not get ready (see {})", self.id, self.dir.join("modelcat.log").display())
    }

    /// The search index's segment count, from `/metrics`.
    pub async fn index_segments(&self, client: &reqwest::Client) -> anyhow::Result<u64> {
        let metrics = client.get(format!("{}/metrics", self.address)).bearer_auth(&self.admin_token).send().await?;
        let text = metrics.error_for_status()?.text().await?;
        let segments =
            metric_sum(&text, "modelcat_index_segments").context("/metrics has no modelcat_index_segments")?;
        Ok(segments as u64)
    }

    /// The process's resident memory now and at its peak (`VmRSS`, `VmHWM`), and its heap (`RssAnon`).
    pub fn memory(&self) -> String {
        let process = self.pid().map(crate::telemetry::resources::Process::of).unwrap_or_default();
        let megabytes =
            |bytes: Option<u64>| bytes.map_or_else(|| "?".to_owned(), |bytes| format!("{} MB", bytes >> 20));
        format!(
            "resident {} (peak {}), heap {}",
            megabytes(process.resident_bytes),
            megabytes(process.peak_resident_bytes),
            megabytes(process.heap_bytes)
        )
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (it was not killed or stopped).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn kill(&mut self) {
        self.signal("-KILL");
    }

    pub fn terminate(&mut self) {
        self.signal("-TERM");
    }

    /// Signals the server's process group and waits for the server.
    fn signal(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args([signal, "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
        }
    }

    pub async fn holds(&self, client: &reqwest::Client, lease: &str) -> bool {
        let Ok(response) = client.get(format!("{}/api/model_catalog/v1alpha1/status", self.address)).send().await
        else {
            return false;
        };
        let status: Value = response.json().await.unwrap_or_default();
        let leases = status["replica"]["leases"].as_array().cloned().unwrap_or_default();
        leases.iter().any(|held| held["name"] == lease)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The sum of a metric's samples over all its labels in a Prometheus text page; `None` when absent.
pub fn metric_sum(text: &str, metric: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| line.strip_prefix(metric).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
