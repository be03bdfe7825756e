//! Server settings: defaults, then `config/modelcat.yaml`, then `MODELCAT_*` environment variables, then
//! command-line flags, each overriding the one before.
//!
//! The file is parsed strictly: an unknown key is an error naming the file, line and column. A missing
//! file is fine when it is the default path (the defaults apply) and an error when it was asked for.
//! Server settings are read once at start; changing them needs a restart.
//!
//! Paths written in the file (`data_dir`, `catalog.sources`, `catalog.index_dir`) resolve against the
//! file's directory, so a config works from any working directory; paths from flags and the environment
//! resolve against the working directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/modelcat.yaml";

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on, e.g. `0.0.0.0:8080` (port 0 picks a free port).
    pub listen: String,
    /// `sqlite://PATH` (default: `<data_dir>/registry.db`) or `postgres://…`.
    pub database_url: String,
    /// Where runtime data lives.
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    /// Enables `POST /api/model_registry/v1alpha3/testing/reset` (never in production).
    pub reset_endpoint: bool,
    pub log_format: LogFormat,
    pub catalog: crate::catalog::CatalogSettings,
    /// The absolute URL clients reach this server at (e.g. `https://modelcat.example.com`), used for the
    /// Hub API's `Link` headers; without it they are built from the request's `Host` header.
    pub public_base_url: Option<String>,
    pub replication: crate::replica::ReplicationSettings,
    /// The byte budget of parsed Hub repo documents cached for the Hub-compatible API.
    pub hub_cache_bytes: u64,
    /// Who may do what (the `auth` section and `MODELCAT_ADMIN_TOKEN`).
    pub auth: crate::auth::AuthSettings,
    /// How often the audit log's head is signed, when it moved (`audit.checkpoint_interval_secs`).
    pub audit_checkpoint_interval: std::time::Duration,
    /// How long audit entries are kept (`audit.retention_days`); `None` keeps them all.
    pub audit_retention: Option<std::time::Duration>,
    /// Webhook deliveries (the `webhooks` section).
    pub webhooks: crate::webhooks::WebhookSettings,
    /// The public keys model signatures are verified against (`governance.trusted_keys`).
    pub trusted_keys: Vec<crate::governance::signatures::TrustedKey>,
}

/// The `memory` section as written: budgets in MiB.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MemoryFileSettings {
    search_cache_mb: u64,
    hub_cache_mb: u64,
    index_writer_mb: usize,
}

impl Default for MemoryFileSettings {
    fn default() -> Self {
        MemoryFileSettings {
            search_cache_mb: crate::catalog::DEFAULT_SEARCH_CACHE_BYTES >> 20,
            hub_cache_mb: crate::mirror::DEFAULT_CACHE_BYTES >> 20,
            index_writer_mb: modelcat_index::DEFAULT_WRITER_BYTES >> 20,
        }
    }
}

/// The `replication` section as written (times in milliseconds, the retention in seconds).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ReplicationFileSettings {
    replica_id: Option<String>,
    lease_ttl_ms: u64,
    log_retention_secs: u64,
    heartbeat_ms: u64,
    replica_timeout_ms: u64,
    poll_interval_ms: u64,
}

impl Default for ReplicationFileSettings {
    fn default() -> Self {
        let defaults = crate::replica::ReplicationSettings::default();
        ReplicationFileSettings {
            replica_id: None,
            lease_ttl_ms: defaults.lease_ttl.as_millis() as u64,
            log_retention_secs: defaults.log_retention.as_secs(),
            heartbeat_ms: defaults.heartbeat.as_millis() as u64,
            replica_timeout_ms: defaults.replica_timeout.as_millis() as u64,
            poll_interval_ms: defaults.poll_interval.as_millis() as u64,
        }
    }
}

impl ReplicationFileSettings {
    fn settings(self) -> crate::replica::ReplicationSettings {
        use std::time::Duration;
        crate::replica::ReplicationSettings {
            replica_id: self.replica_id,
            lease_ttl: Duration::from_millis(self.lease_ttl_ms),
            log_retention: Duration::from_secs(self.log_retention_secs),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            replica_timeout: Duration::from_millis(self.replica_timeout_ms),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        }
    }
}

/// The `catalog` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CatalogFileSettings {
    /// Sources files, layered in order (Kubeflow's sources.yaml format).
    sources: Option<Vec<PathBuf>>,
    /// Where the search index lives (default `<data_dir>/index`).
    index_dir: Option<PathBuf>,
    /// The source id registered models appear under; `null` keeps them out of the catalog.
    registry_source: Option<String>,
    /// How long file changes settle before a reload.
    reload_debounce_ms: u64,
}

impl Default for CatalogFileSettings {
    fn default() -> Self {
        CatalogFileSettings {
            sources: None,
            index_dir: None,
            registry_source: Some("registry".to_owned()),
            reload_debounce_ms: 100,
        }
    }
}

/// The default sources file, relative to the working directory (optional: no file, no sources).
pub const DEFAULT_SOURCES_PATH: &str = "config/sources.yaml";

/// HTTP limits, cross-origin access and the alpha paths' deprecation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Page size of registry lists that give no `pageSize`.
    pub default_page_size: u32,
    /// Largest page served; larger requests get this many items and a `nextPageToken`.
    pub max_page_size: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 408.
    pub request_timeout_secs: u64,
    /// Which other origins' pages may call the API from a browser (none by default).
    pub cors: crate::api::cors::CorsSettings,
    /// Which other origins' pages may show UI pages in a frame (`frame-ancestors`; none by default).
    pub frame_ancestors: Vec<String>,
    /// Deprecation headers on the Kubeflow alpha paths; `None` (the default) sends none.
    pub alpha_deprecation: Option<crate::api::families::AlphaDeprecation>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            default_page_size: 100,
            max_page_size: 1000,
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            cors: crate::api::cors::CorsSettings::default(),
            frame_ancestors: Vec::new(),
            alpha_deprecation: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    public_base_url: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    api: ApiSettings,
    #[serde(default)]
    testing: TestingSettings,
    #[serde(default)]
    log: LogSettings,
    #[serde(default)]
    catalog: CatalogFileSettings,
    #[serde(default)]
    replication: ReplicationFileSettings,
    #[serde(default)]
    memory: MemoryFileSettings,
    #[serde(default)]
    auth: crate::auth::settings::AuthFileSettings,
    #[serde(default)]
    audit: AuditFileSettings,
    #[serde(default)]
    webhooks: crate::webhooks::WebhookSettings,
    #[serde(default)]
    governance: GovernanceFileSettings,
}

/// The `governance` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernanceFileSettings {
    #[serde(default)]
    trusted_keys: Vec<TrustedKeyFile>,
}

/// A key model signatures may be made with: a name, and a PEM file holding its ECDSA P-256 public key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedKeyFile {
    id: String,
    public_key_file: PathBuf,
}

/// The `audit` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuditFileSettings {
    checkpoint_interval_secs: u64,
    retention_days: Option<u32>,
}

impl Default for AuditFileSettings {
    fn default() -> Self {
        AuditFileSettings { checkpoint_interval_secs: 60, retention_days: None }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestingSettings {
    #[serde(default)]
    reset_endpoint: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSettings {
    #[serde(default)]
    format: LogFormat,
}

/// Values given by environment or flags; `None` keeps the file's value. (No `Debug`: it may hold a
/// secret.)
#[derive(Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    /// Sources files (`--sources`, repeatable; `MODELCAT_SOURCES`, comma-separated).
    pub sources: Option<Vec<PathBuf>>,
    pub public_base_url: Option<String>,
    /// An admin token from the environment (`MODELCAT_ADMIN_TOKEN`), accepted and never stored.
    pub admin_token: Option<String>,
}

/// Where the store is, for commands that open it without serving (`mirror`, `token`).
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Configuration file [default: config/modelcat.yaml, if present].
    #[arg(long, env = "MODELCAT_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL [default: the server's, sqlite://<data-dir>/registry.db].
    #[arg(long, env = "MODELCAT_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory for runtime data [default: data].
    #[arg(long, env = "MODELCAT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The settings the server would use.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Settings::load(Overrides {
            config: self.config.clone(),
            database_url: self.database_url.clone(),
            data_dir: self.data_dir.clone(),
            ..Overrides::default()
        })
    }

    /// Opens (and migrates) the database the server would use.
    pub async fn connect(self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Backend>> {
        use anyhow::Context as _;
        let settings = self.settings()?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
        crate::store::connect(&settings.database_url).await.context("cannot open the store")
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads the settings: defaults < file < overrides.
    pub fn load(overrides: Overrides) -> Result<Settings, ConfigError> {
        let explicit = overrides.config.is_some();
        let path = overrides.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => parse_file(&path, &text)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => FileSettings::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        // Paths written in the file are relative to the file, as paths in sources files are; paths from
        // flags and the environment, and the defaults, to the working directory.
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let in_file = |written: PathBuf| base.join(written);
        let data_dir = overrides.data_dir.or(file.data_dir.map(in_file)).unwrap_or_else(|| PathBuf::from("data"));
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("registry.db").display()));
        let explicit_sources = overrides.sources.is_some() || file.catalog.sources.is_some();
        let sources = overrides
            .sources
            .or(file.catalog.sources.map(|paths| paths.into_iter().map(in_file).collect()))
            .unwrap_or_else(|| vec![PathBuf::from(DEFAULT_SOURCES_PATH)])
            .into_iter()
            .map(|path| std::path::absolute(&path).unwrap_or(path))
            .collect();
        let catalog = crate::catalog::CatalogSettings {
            sources,
            sources_optional: !explicit_sources,
            index_dir: Some(file.catalog.index_dir.map(in_file).unwrap_or_else(|| data_dir.join("index"))),
            registry_source: file.catalog.registry_source,
            debounce: std::time::Duration::from_millis(file.catalog.reload_debounce_ms),
            search_cache_bytes: file.memory.search_cache_mb << 20,
            index_writer_bytes: file.memory.index_writer_mb << 20,
        };
        let auth = file
            .auth
            .settings(overrides.admin_token.as_deref())
            .map_err(|problems| ConfigError::Invalid(problems.join("; ")))?;
        let mut trusted_keys = Vec::new();
        for key in file.governance.trusted_keys {
            let path = in_file(key.public_key_file);
            let pem =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let trusted = crate::governance::signatures::TrustedKey::from_pem(&key.id, &pem).map_err(|problem| {
                ConfigError::Invalid(format!("governance.trusted_keys {:?} ({}): {problem}", key.id, path.display()))
            })?;
            trusted_keys.push(trusted);
        }
        let settings = Settings {
            trusted_keys,
            auth,
            audit_checkpoint_interval: std::time::Duration::from_secs(file.audit.checkpoint_interval_secs),
            audit_retention: file
                .audit
                .retention_days
                .map(|days| std::time::Duration::from_secs(u64::from(days) * 86_400)),
            catalog,
            listen: overrides.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:8080".to_owned()),
            database_url,
            data_dir,
            api: file.api,
            reset_endpoint: file.testing.reset_endpoint,
            log_format: overrides.log_format.unwrap_or(file.log.format),
            public_base_url: overrides
                .public_base_url
                .or(file.public_base_url)
                .map(|url| url.trim_end_matches('/').to_owned()),
            replication: file.replication.settings(),
            hub_cache_bytes: file.memory.hub_cache_mb << 20,
            webhooks: file.webhooks,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Collects every problem into one error.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.webhooks.problems();
        if self.api.default_page_size == 0 {
            problems.push("api.default_page_size must be at least 1".to_owned());
        }
        if self.api.max_page_size < self.api.default_page_size {
            problems.push("api.max_page_size must be at least api.default_page_size".to_owned());
        }
        if self.api.max_body_bytes < 1024 {
            problems.push("api.max_body_bytes must be at least 1024".to_owned());
        }
        let replication = &self.replication;
        if replication.lease_ttl < std::time::Duration::from_secs(1) {
            problems.push("replication.lease_ttl_ms must be at least 1000".to_owned());
        }
        if replication.heartbeat.is_zero() || replication.poll_interval.is_zero() {
            problems.push("replication.heartbeat_ms and replication.poll_interval_ms must be at least 1".to_owned());
        }
        if replication.replica_timeout <= replication.heartbeat * 2 {
            problems.push("replication.replica_timeout_ms must exceed twice replication.heartbeat_ms".to_owned());
        }
        if replication.replica_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            problems.push("replication.replica_id must not be empty".to_owned());
        }
        if self.catalog.index_writer_bytes < modelcat_index::MIN_WRITER_BYTES {
            problems.push("memory.index_writer_mb must be at least 15".to_owned());
        }
        problems.extend(self.api.cors.problems().into_iter().map(|problem| format!("api.{problem}")));
        let framing = self.api.frame_ancestors.iter().filter_map(|origin| crate::api::cors::origin_problem(origin));
        problems.extend(framing.map(|problem| format!("api.frame_ancestors: {problem}")));
        if let Some(Err(problem)) = self.api.alpha_deprecation.as_ref().map(|deprecation| deprecation.headers()) {
            problems.push(problem);
        }
        if self.api.request_timeout_secs == 0 {
            problems.push("api.request_timeout_secs must be at least 1".to_owned());
        }
        let known_scheme =
            ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| self.database_url.starts_with(scheme));
        if !known_scheme {
            problems.push(format!("database_url {:?} must start with sqlite: or postgres://", self.database_url));
        }
        if let Some(url) = &self.public_base_url
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            problems.push(format!("public_base_url {url:?} must be an absolute http:// or https:// URL"));
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems.join("; "))) }
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileSettings::default());
    }
    serde_norway::from_str(text).map_err(|error| {
        let location =
            error.location().map(|at| format!(" at line {}, column {}", at.line(), at.column())).unwrap_or_default();
        ConfigError::Parse { path: path.to_owned(), message: format!("{error}{location}") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let error = parse_file(Path::new("x.yaml"), "listen: 127.0.0.1:1\napi:\n  default_pagesize: 5\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("x.yaml") && message.contains("default_pagesize") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn overrides_win_and_defaults_fill_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("modelcat.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:9000\ndata_dir: /srv/modelcat\napi:\n  default_page_size: 20\n")
            .expect("write");
        let settings = Settings::load(Overrides { config: Some(path.clone()), ..Overrides::default() }).expect("loads");
        assert_eq!(settings.listen, "127.0.0.1:9000");
        assert_eq!(settings.database_url, "sqlite:///srv/modelcat/registry.db");
        assert_eq!(settings.api.default_page_size, 20);
        assert_eq!(settings.api.max_page_size, 1000);
        let overrides = Overrides { config: Some(path), listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        assert_eq!(Settings::load(overrides).expect("loads").listen, "127.0.0.1:0");
        let missing = Overrides { config: Some(dir.path().join("absent.yaml")), ..Overrides::default() };
        assert!(matches!(Settings::load(missing), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn paths_in_the_file_resolve_against_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("etc").join("modelcat.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        std::fs::write(
            &path,
            "data_dir: ../state
catalog:
  sources: [sources.yaml]
  index_dir: idx
",
        )
        .expect("write");
        let settings = Settings::load(Overrides { config: Some(path.clone()), ..Overrides::default() }).expect("loads");
        assert_eq!(settings.data_dir, dir.path().join("etc/../state"));
        assert_eq!(settings.catalog.sources, vec![dir.path().join("etc/sources.yaml")]);
        assert_eq!(settings.catalog.index_dir, Some(dir.path().join("etc/idx")));
        // A flag is the caller's path, relative to the working directory.
        let overrides = Overrides { config: Some(path), data_dir: Some(PathBuf::from("here")), ..Overrides::default() };
        assert_eq!(Settings::load(overrides).expect("loads").data_dir, PathBuf::from("here"));
    }
}
