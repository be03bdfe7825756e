//! Scale-out: several `modelcat serve` processes on one PostgreSQL database (and one on SQLite), with the
//! faults the change log and the leases exist for: concurrent writes through every replica, `kill -9` and
//! `SIGSTOP` of a lease holder mid-sync, the listener's connections terminated, a replica away past the
//! log's retention. (A PostgreSQL restart has its own test binary, `tests/pg_restart.rs`, since it
//! interrupts every other test using the server.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use modelcat::fake_hub::FakeHub;
use serde_json::json;

use crate::cluster::{Node, REGISTRY, Timing, converge, live_models};
use crate::helpers::{PostgresDatabase, eventually};

const CONVERGED: Duration = Duration::from_secs(15);

/// Registers `count` models through `node`, each with a version and a model artifact; archives every
/// fifth model and deletes every seventh.
async fn write_models(node: &Node, prefix: &str, count: usize) {
    for number in 0..count {
        let id = node.register(&format!("{prefix}-{number:03}")).await;
        if number % 5 == 4 {
            node.patch(&format!("{REGISTRY}/registered_models/{id}"), json!({"state": "ARCHIVED"})).await;
        }
        if number % 7 == 6 {
            let deleted = crate::helpers::authorized_client(&crate::cluster::ADMIN_TOKEN)
                .delete(format!("{}{REGISTRY}/registered_models/{id}", node.address))
                .send()
                .await
                .expect("sent");
            assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
        }
    }
}

async fn cluster(database: &PostgresDatabase, root: &std::path::Path, sources: &str, timing: &Timing) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ["r1", "r2", "r3"] {
        nodes.push(Node::start(root, id, &database.url, sources, timing).await);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_through_every_replica_converge() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    let nodes = cluster(&database, root.path(), "", &Timing::default()).await;
    let prefixes: Vec<String> = nodes.iter().map(|node| format!("m-{}", node.id)).collect();
    let writers = nodes.iter().zip(&prefixes).map(|(node, prefix)| write_models(node, prefix, 40));
    futures_util::future::join_all(writers).await;
    let expected = live_models(&database.url).await;
    assert_eq!(expected.len(), 3 * (40 - 8 - 5 + 1), "archived and deleted models are not live");
    let laggards = converge(&nodes.iter().collect::<Vec<_>>(), "registry", &expected, CONVERGED).await;
    assert!(laggards.is_empty(), "replicas did not converge: {laggards:?}");
    // Each replica shows its position, and has applied the whole log.
    for node in &nodes {
        let status = node.status().await;
        let replica = &status["replica"];
        assert_eq!(replica["id"], node.id.as_str());
        assert!(replica["position"].as_i64().unwrap_or_default() > 0, "{status}");
    }
    drop(nodes);
    database.drop_blocking();
}

/// Three replicas with one `hf` source over a slow fake Hub, so a sync takes several seconds.
async fn hf_cluster(database: &PostgresDatabase, root: &std::path::Path, timing: &Timing) -> (Arc<FakeHub>, Vec<Node>) {
    let hub = Arc::new(FakeHub::new(300, 100));
    hub.faults().latency_micros.store(15_000, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (url, task) = hub.serve(listener).await.expect("serve");
    std::mem::forget(task);
    let sources = format!(
        "model_catalogs:\n  - id: hub\n    name: Hub\n    type: hf\n    includedModels: [gen/*]\n    \
         properties: {{url: \"{url}\", syncInterval: 1h, maxConcurrency: 2}}\n"
    );
    let nodes = cluster(database, root, &sources, timing).await;
    (hub, nodes)
}

/// The position of the node holding the `hub` source's lease.
async fn holder(nodes: &[Node]) -> Option<usize> {
    holder_among(&nodes.iter().collect::<Vec<_>>()).await
}

async fn holder_among(nodes: &[&Node]) -> Option<usize> {
    for (position, node) in nodes.iter().enumerate() {
        if node.leases().await.contains(&"hf:hub".to_owned()) {
            return Some(position);
        }
    }
    None
}

async fn mirrored(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hf_source_repo WHERE source_id = 'hub'")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_lease_holder_is_replaced_and_the_sync_continues() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let (hub, mut nodes) = hf_cluster(&database, root.path(), &timing).await;
    let first = eventually(Duration::from_secs(10), || holder(&nodes)).await.expect("a replica holds the lease");
    // Exactly one replica syncs.
    for (position, node) in nodes.iter().enumerate() {
        assert_eq!(node.leases().await.contains(&"hf:hub".to_owned()), position == first);
    }
    eventually(Duration::from_secs(30), || async { (mirrored(&database.url).await >= 50).then_some(()) })
        .await
        .expect("the sync makes progress");
    nodes[first].kill();
    let killed_at = Instant::now();
    let done_before_kill = mirrored(&database.url).await;
    assert!(done_before_kill < 300, "the sync finished before the kill ({done_before_kill} models)");
    let requests_before = hub.requests();
    let survivors: Vec<&Node> = nodes.iter().enumerate().filter(|(n, _)| *n != first).map(|(_, node)| node).collect();
    let next = eventually(Duration::from_secs(10), || holder_among(&survivors)).await;
    let next = survivors[next.expect("another replica takes the lease")].id.clone();
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_millis(timing.lease_ttl_ms) + Duration::from_secs(3),
        "took over after {failover:?}"
    );
    let expected: BTreeSet<String> = hub.model_ids().into_iter().filter(|id| id.starts_with("gen/")).collect();
    let laggards = converge(&survivors, "hub", &expected, Duration::from_secs(60)).await;
    assert!(laggards.is_empty(), "{laggards:?}");
    // The new holder fetched only what was not mirrored: about 5 requests a model, plus the listing.
    let requests = hub.requests() - requests_before;
    let missing = (300 - done_before_kill) as u64;
    assert!(requests <= 5 * missing + 20, "{next} sent {requests} requests for {missing} missing models");
    drop(nodes);
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_lease_holder_cannot_write_after_takeover() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let (_hub, nodes) = hf_cluster(&database, root.path(), &timing).await;
    let first = eventually(Duration::from_secs(10), || holder(&nodes)).await.expect("a replica holds the lease");
    eventually(Duration::from_secs(30), || async { (mirrored(&database.url).await >= 30).then_some(()) })
        .await
        .expect("the sync makes progress");
    nodes[first].pause();
    let others: Vec<&Node> = nodes.iter().enumerate().filter(|(n, _)| *n != first).map(|(_, node)| node).collect();
    let taken = eventually(Duration::from_secs(15), || holder_among(&others)).await;
    nodes[first].resume();
    assert!(taken.is_some(), "nobody took over from the paused holder");
    // The woken ex-holder's next write is refused by its stale fence, and it stops syncing.
    let fenced = eventually(Duration::from_secs(15), || async {
        let log = nodes[first].log();
        (log.contains("no longer held") || log.contains("lost the sync lease")).then_some(())
    })
    .await;
    assert!(fenced.is_some(), "the paused holder was not fenced; its log:\n{}", nodes[first].log());
    assert!(!nodes[first].leases().await.contains(&"hf:hub".to_owned()));
    // Everything still converges on every replica, the woken one included.
    let expected: BTreeSet<String> = (0..300).map(|number| format!("gen/model-{number:05}")).collect();
    let laggards = converge(&nodes.iter().collect::<Vec<_>>(), "hub", &expected, Duration::from_secs(60)).await;
    assert!(laggards.is_empty(), "{laggards:?}");
    drop(nodes);
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_stop_hands_the_lease_over_at_once() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    // A long lease: only the hand-over on shutdown can make the takeover quick.
    let timing = Timing { lease_ttl_ms: 30_000, ..Timing::default() };
    let (_hub, mut nodes) = hf_cluster(&database, root.path(), &timing).await;
    let first = eventually(Duration::from_secs(10), || holder(&nodes)).await.expect("a replica holds the lease");
    nodes[first].stop();
    let stopped_at = Instant::now();
    let survivors: Vec<&Node> = nodes.iter().enumerate().filter(|(n, _)| *n != first).map(|(_, node)| node).collect();
    eventually(Duration::from_secs(10), || holder_among(&survivors))
        .await
        .expect("another replica takes the released lease");
    let taken = stopped_at.elapsed();
    assert!(taken < Duration::from_secs(5), "hand-over took {taken:?} with a 30 s lease");
    drop(nodes);
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_listener_connections_miss_nothing() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    // No polling safety net within the test's time: only notifications and reconnect catch-ups count.
    let timing = Timing { poll_interval_ms: 600_000, ..Timing::default() };
    let nodes = cluster(&database, root.path(), "", &timing).await;
    write_models(&nodes[0], "before", 5).await;
    let expected = live_models(&database.url).await;
    assert!(converge(&nodes.iter().collect::<Vec<_>>(), "registry", &expected, CONVERGED).await.is_empty());

    let admin = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let terminate = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()";
    let terminated: i64 = sqlx::query_scalar(terminate).fetch_one(&admin).await.expect("terminate");
    assert_eq!(terminated, 3, "one listener per replica");
    // Writes while the listeners are down (and again right after, racing their reconnects).
    write_models(&nodes[1], "during", 10).await;
    let _: i64 = sqlx::query_scalar(terminate).fetch_one(&admin).await.expect("terminate");
    write_models(&nodes[2], "after", 10).await;
    admin.close().await;
    let expected = live_models(&database.url).await;
    let laggards = converge(&nodes.iter().collect::<Vec<_>>(), "registry", &expected, CONVERGED).await;
    assert!(laggards.is_empty(), "{laggards:?}");
    drop(nodes);
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_away_past_the_retention_rebuilds() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing { log_retention_secs: 1, replica_timeout_ms: 1000, ..Timing::default() };
    let mut nodes = cluster(&database, root.path(), "", &timing).await;
    write_models(&nodes[0], "first", 5).await;
    let expected = live_models(&database.url).await;
    assert!(converge(&nodes.iter().collect::<Vec<_>>(), "registry", &expected, CONVERGED).await.is_empty());
    nodes[2].stop();
    write_models(&nodes[0], "second", 10).await;
    // Once r3 is no longer live, the others prune what it has not applied.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let pruned = eventually(Duration::from_secs(20), || async {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = 'log_pruned_through'")
                .fetch_optional(&pool)
                .await
                .ok()?;
        let head: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM change_log").fetch_one(&pool).await.ok()?;
        (value?.parse::<i64>().ok()? >= head).then_some(())
    })
    .await;
    pool.close().await;
    assert!(pruned.is_some(), "the log was not pruned");
    nodes[2].restart().await;
    let status = nodes[2].status().await;
    assert_eq!(status["replica"]["resumedFromCheckpoint"], false, "{status}");
    let expected = live_models(&database.url).await;
    assert!(converge(&[&nodes[2]], "registry", &expected, CONVERGED).await.is_empty());
    // A replica restarted within the retention resumes from its checkpoint instead.
    nodes[1].stop();
    nodes[1].restart().await;
    let status = nodes[1].status().await;
    assert_eq!(status["replica"]["resumedFromCheckpoint"], true, "{status}");
    write_models(&nodes[0], "third", 3).await;
    let expected = live_models(&database.url).await;
    let laggards = converge(&nodes.iter().collect::<Vec<_>>(), "registry", &expected, CONVERGED).await;
    assert!(laggards.is_empty(), "{laggards:?}");
    drop(nodes);
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sqlite_replica_resumes_from_its_checkpoint() {
    let root = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", root.path().join("registry.db").display());
    let mut node = Node::start(root.path(), "solo", &url, "", &Timing::default()).await;
    write_models(&node, "solo", 8).await;
    let names = |count: usize| -> BTreeSet<String> {
        (0..count).filter(|n| n % 5 != 4 && n % 7 != 6).map(|n| format!("solo-{n:03}")).collect()
    };
    assert!(converge(&[&node], "registry", &names(8), CONVERGED).await.is_empty());
    node.stop();
    node.restart().await;
    let status = node.status().await;
    assert_eq!(status["replica"]["resumedFromCheckpoint"], true, "{status}");
    assert_eq!(node.catalog_names("registry").await, Some(names(8)));
    // Writes after the restart are followed as before.
    write_models(&node, "more", 3).await;
    let mut expected = names(8);
    expected.extend((0..3).map(|n| format!("more-{n:03}")));
    assert!(converge(&[&node], "registry", &expected, CONVERGED).await.is_empty());
}
