//! The application: opens the store, binds the listener and serves until told to stop.
//!
//! [`Application::build`] does all fallible setup (so `main` and tests see one error), exposes the bound
//! [`Application::port`] (listen on port 0 in tests), and [`Application::run_until`] serves until a
//! shutdown future completes, then drains in-flight requests.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::api;
use crate::api::registry::PageLimits;
use crate::auth::Authenticator;
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::mirror::Mirror;
use crate::mirror::store::MirrorStore;
use crate::registry::RegistryStore;
use crate::registry::sql_store::SqlStore;
use crate::replica::Replica;
use crate::{store, telemetry};

/// Bytes (estimated) of remembered catalog answer tags: about 40,000 (request, caller) pairs.
const TAG_MEMO_BYTES: u64 = 4 << 20;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<dyn RegistryStore>,
    pub catalog: Catalog,
    pub page_limits: PageLimits,
    pub metrics: PrometheusHandle,
    pub mirror: Mirror,
    /// The absolute base URL of `Link` headers (`public_base_url`); `None` uses the `Host` header.
    pub public_base_url: Option<String>,
    pub replica: Replica,
    /// Who sends each request (tokens, proxy headers).
    pub authenticator: Authenticator,
    /// The shared store (tokens are read from it directly).
    pub backend: Arc<dyn store::Backend>,
    /// Lifecycle, reviews, aliases and governance fields over the shared store.
    pub governance: crate::governance::store::GovernanceStore,
    /// This server's Ed25519 key: it signs audit checkpoints and evidence bundles.
    pub signer: Arc<crate::audit::checkpoint::Signer>,
    /// Webhook subscriptions and their delivery log.
    pub webhooks: crate::webhooks::Webhooks,
    /// Tags of catalog answers, remembered for conditional requests.
    pub tags: crate::api::conditional::TagMemo,
}

/// A built, bound, not yet serving application.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    port: u16,
    catalog: Catalog,
    replica: Replica,
    /// Chains and checkpoints the audit log; stopped with the server.
    audit: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens the store (migrating it) and binds the listen address.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        crate::install_crypto_provider();
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
        let backend = store::connect(&settings.database_url)
            .await
            .with_context(|| format!("cannot open the store at {}", redact(&settings.database_url)))?;
        let instance = store::instance_id(&*backend).await.context("cannot read the instance id")?;
        let replica = Replica::new(backend.clone(), instance, settings.replication.clone(), &settings.data_dir)
            .context("cannot read or create the replica id")?;
        let authenticator = start_auth(&settings, backend.clone()).await?;
        let registry: Arc<dyn RegistryStore> = Arc::new(SqlStore::new(backend.clone()));
        // The mirror's listing and the catalog load in the background (the catalog's progress).
        let mirror = Mirror::new(MirrorStore::new(backend.clone()), settings.hub_cache_bytes);
        let catalog = Catalog::start(settings.catalog.clone(), registry.clone(), mirror.clone(), replica.clone())
            .await
            .context("cannot start the catalog")?;
        tokio::spawn(replica.clone().run_housekeeping());
        let signer = crate::audit::checkpoint::Signer::load_or_create(&settings.data_dir)
            .context("cannot read or create the audit checkpoint key")?;
        let signer = Arc::new(signer);
        let audit = tokio::spawn(crate::audit::checkpoint::run(
            backend.clone(),
            signer.clone(),
            settings.audit_checkpoint_interval,
            settings.audit_retention,
        ));
        telemetry::spawn_upkeep();
        let webhook_store = crate::webhooks::store::WebhookStore::new(backend.clone());
        tokio::spawn(crate::webhooks::dispatcher::run(webhook_store.clone(), settings.webhooks.clone()));
        let state = AppState {
            registry,
            catalog: catalog.clone(),
            page_limits: PageLimits {
                default_page_size: settings.api.default_page_size,
                max_page_size: settings.api.max_page_size,
            },
            metrics: telemetry::metrics_handle(),
            mirror,
            public_base_url: settings.public_base_url.clone(),
            replica: replica.clone(),
            authenticator,
            governance: crate::governance::store::GovernanceStore::new(backend.clone(), settings.trusted_keys.clone()),
            signer,
            webhooks: crate::webhooks::Webhooks {
                store: webhook_store,
                destinations: settings.webhooks.destinations(),
                rotation_window: settings.webhooks.rotation_window(),
            },
            backend,
            tags: crate::api::conditional::memo(TAG_MEMO_BYTES),
        };
        let router = api::router(state, settings.api, settings.reset_endpoint);
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            listen = %settings.listen,
            port,
            database = %redact(&settings.database_url),
            replica = replica.id(),
            instance = replica.instance(),
            "modelcat listening (the catalog loads in the background; see /readyz)"
        );
        Ok(Application { listener, router, port, catalog, replica, audit })
    }

    /// The catalog this application serves.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // Peer addresses reach the auth layer, which trusts proxy headers only from configured addresses.
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await;
        // Hand leases over first, so another replica resumes syncing while this one finishes.
        self.replica.shutdown().await;
        self.audit.abort();
        self.catalog.close().await;
        served
    }
}

/// Sets up authentication: says loudly when it is off, and on a fresh database writes the bootstrap admin
/// token (unless `MODELCAT_ADMIN_TOKEN` gives one).
async fn start_auth(settings: &Settings, backend: Arc<dyn store::Backend>) -> anyhow::Result<Authenticator> {
    let auth = &settings.auth;
    if let Some(warning) = auth.warning() {
        tracing::warn!(listen = %settings.listen, "{warning}");
    } else if auth.tokens && auth.admin_token.is_none() {
        let written = crate::auth::tokens::bootstrap(&*backend, &settings.data_dir).await?;
        if let Some(path) = written {
            tracing::warn!(
                path = %path.display(),
                "created the bootstrap admin token (readable only by this user); use it to create more with \
                 POST /api/modelcat/v1/tokens or `modelcat token create`"
            );
        }
    }
    Ok(Authenticator::new(auth.clone(), backend))
}

/// Hides the password of a database URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
