//! `TestApp`: a real modelcat server on a free port, on a fresh SQLite file or PostgreSQL database.

use std::time::Duration;

use modelcat::Application;
use modelcat::auth::AuthSettings;
use modelcat::auth::token::Plaintext;
use modelcat::config::{ApiSettings, LogFormat, Settings};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

/// The store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BASE: &str = "/api/model_registry/v1alpha3";

/// A running server and a client for it; stops the server (and drops its database) when dropped.
///
/// Authentication is on, as by default: `client` sends an admin token (`admin_token`), and
/// `anonymous` sends none.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub anonymous: reqwest::Client,
    pub admin_token: String,
    pub data_dir: std::path::PathBuf,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    _data_dir: tempfile::TempDir,
    database: Option<PostgresDatabase>,
}

/// A reply: status, headers and JSON body (`Value::Null` when the body is empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    /// Spawns a server on `backend`; returns `None` (after saying why) when PostgreSQL is not configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, ApiSettings::default()).await
    }

    pub async fn spawn_with(backend: Backend, api: ApiSettings) -> Option<TestApp> {
        Self::spawn_configured(backend, |settings| settings.api = api).await
    }

    /// Spawns a server after `configure` adjusts its settings.
    pub async fn spawn_configured(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (database_url, database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", data_dir.path().join("registry.db").display()), None),
            Backend::Postgres => {
                let database = PostgresDatabase::from_env().await?;
                (database.url.clone(), Some(database))
            }
        };
        let admin_token = Plaintext::generate();
        let auth = AuthSettings { admin_token: Some(admin_token.clone()), ..AuthSettings::default() };
        let settings = Settings {
            auth,
            audit_checkpoint_interval: Duration::ZERO,
            audit_retention: None,
            webhooks: Default::default(),
            trusted_keys: Vec::new(),
            public_base_url: None,
            replication: Default::default(),
            hub_cache_bytes: modelcat::mirror::DEFAULT_CACHE_BYTES,
            listen: "127.0.0.1:0".into(),
            database_url: database_url.clone(),
            data_dir: data_dir.path().join("data"),
            api: ApiSettings::default(),
            reset_endpoint: true,
            log_format: LogFormat::Text,
            catalog: modelcat::catalog::CatalogSettings::new(&data_dir.path().join("data"), Vec::new()),
        };
        let mut settings = settings;
        configure(&mut settings);
        let application = Application::build(settings).await.expect("application builds");
        application.catalog().progress().wait().await;
        let address = format!("http://127.0.0.1:{}", application.port());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        let admin_token = admin_token.expose().to_owned();
        let client = authorized_client(&admin_token);
        let anonymous = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let data = data_dir.path().join("data");
        Some(TestApp {
            address,
            client,
            anonymous,
            admin_token,
            data_dir: data,
            database_url,
            shutdown: Some(shutdown),
            _data_dir: data_dir,
            database,
        })
    }

    /// Sends a request to `path` (relative to the server root) with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, &format!("{BASE}{path}"), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, &format!("{BASE}{path}"), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, &format!("{BASE}{path}"), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, &format!("{BASE}{path}"), None).await
    }

    /// GET with query parameters (URL-encoded by the client).
    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let request = self.client.get(format!("{}{BASE}{path}", self.address)).query(query);
        reply(request.send().await.expect("request sent")).await
    }

    /// Creates an entity, asserting 201, and returns its id.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let created = self.post(path, body).await;
        assert_eq!(created.status, StatusCode::CREATED, "POST {path}: {}", created.body);
        created.body["id"].as_str().expect("id").to_owned()
    }
}

/// A client that sends `token` as its bearer credential.
pub fn authorized_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(30)).build().expect("client")
}

/// Retries `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(database) = self.database.take() {
            database.drop_blocking();
        }
    }
}

/// A throwaway database on the test PostgreSQL server, dropped with [`PostgresDatabase::drop_blocking`].
pub struct PostgresDatabase {
    server_url: String,
    pub name: String,
    pub url: String,
}

impl PostgresDatabase {
    /// A new database on `MODELCAT_TEST_POSTGRES_URL`'s server; `None` (after saying why) when it is not
    /// set outside CI.
    pub async fn from_env() -> Option<PostgresDatabase> {
        let Ok(server_url) = std::env::var("MODELCAT_TEST_POSTGRES_URL") else {
            assert!(std::env::var_os("CI").is_none(), "MODELCAT_TEST_POSTGRES_URL must be set under CI");
            eprintln!("skipped: MODELCAT_TEST_POSTGRES_URL is not set");
            return None;
        };
        Some(PostgresDatabase::create(&server_url).await)
    }

    pub async fn create(server_url: &str) -> PostgresDatabase {
        let name = format!("modelcat_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(server_url).await.expect("connect to MODELCAT_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        let (base, _) = server_url.rsplit_once('/').expect("database URL with a path");
        PostgresDatabase { server_url: server_url.to_owned(), url: format!("{base}/{name}"), name }
    }

    /// Drops the database from a fresh runtime (Drop cannot await).
    pub fn drop_blocking(self) {
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&self.server_url).await {
                    let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// Instantiates every listed test once per backend, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! conformance_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await.expect("sqlite");
                    super::$test(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                        super::$test(&app).await;
                    }
                }
            )*
        }
    };
}
