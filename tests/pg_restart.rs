//! A PostgreSQL restart under running replicas: every one recovers with no manual step. Its own test
//! binary, because restarting the server interrupts every other test using it (cargo runs test binaries
//! one after another). Needs the server on this machine (`pg_ctlcluster`); skipped, saying why, otherwise.

#[expect(dead_code, reason = "shared with the api test binary, which uses the rest")]
#[path = "api/cluster.rs"]
mod cluster;
#[expect(dead_code, reason = "shared with the api test binary, which uses the rest")]
#[path = "api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use cluster::{Node, REGISTRY, Timing, converge, live_models};
use helpers::{PostgresDatabase, eventually};

/// Restarts the local cluster; `false` when this machine cannot.
fn restart_postgres() -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else { return false };
    let Some(version) = versions.flatten().next().map(|entry| entry.file_name()) else { return false };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect"])
        .arg(&version)
        .args(["main", "restart"])
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether this process runs as root (pg_ctlcluster restarts the cluster as its owner).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
}

/// When the server process started.
async fn postmaster_start(url: &str) -> String {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let started: String =
        sqlx::query_scalar("SELECT pg_postmaster_start_time()::text").fetch_one(&pool).await.expect("query");
    pool.close().await;
    started
}

/// Registers a model, retrying while the server comes back (a request that was in flight on a dropped
/// connection may fail; the client retries, as any would).
async fn register(node: &Node, name: &str) {
    let client = helpers::authorized_client(&cluster::ADMIN_TOKEN);
    let registered = eventually(Duration::from_secs(30), || async {
        let response = client
            .post(format!("{}{REGISTRY}/registered_models", node.address))
            .json(&json!({"name": name}))
            .send()
            .await
            .ok()?;
        // A retry after an acknowledged-but-unanswered write finds the name taken: it is there.
        matches!(response.status().as_u16(), 201 | 409).then_some(())
    })
    .await;
    assert!(registered.is_some(), "{} never accepted {name}", node.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_recover_from_a_postgres_restart() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    if !std::path::Path::new("/etc/postgresql").exists() || !is_root() {
        eprintln!("skipped: restarting PostgreSQL needs its cluster on this machine (/etc/postgresql) and root");
        database.drop_blocking();
        return;
    }
    modelcat::install_crypto_provider();
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let first = Node::start(root.path(), "r1", &database.url, "", &timing).await;
    let second = Node::start(root.path(), "r2", &database.url, "", &timing).await;
    for number in 0..5 {
        register(&first, &format!("before-{number}")).await;
    }
    let expected = live_models(&database.url).await;
    assert!(converge(&[&first, &second], "registry", &expected, Duration::from_secs(15)).await.is_empty());

    let started_before = postmaster_start(&database.url).await;
    assert!(restart_postgres(), "pg_ctlcluster restart failed");
    assert_ne!(postmaster_start(&database.url).await, started_before, "the server did not restart");
    for number in 0..5 {
        register(&second, &format!("after-{number}")).await;
        register(&first, &format!("after-first-{number}")).await;
    }
    let expected = live_models(&database.url).await;
    assert_eq!(expected.len(), 15);
    let laggards = converge(&[&first, &second], "registry", &expected, Duration::from_secs(30)).await;
    assert!(laggards.is_empty(), "{laggards:?}");
    for node in [&first, &second] {
        let ready = eventually(Duration::from_secs(10), || async {
            let response = reqwest::get(format!("{}/readyz", node.address)).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "{} is not ready after the restart", node.id);
    }
    drop((first, second));
    database.drop_blocking();
}
