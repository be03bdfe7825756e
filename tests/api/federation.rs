//! Federation: real `modelcat serve` processes, each its own instance with its own SQLite store, following
//! one another through the change feed (and through the Kubeflow APIs), with the faults a federation
//! meets: a consumer away while its peer changes, a log pruned past its cursor, loops, a peer killed, a
//! wrong token, a suspicious mass removal.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{CATALOG, Node, REGISTRY, Timing};
use crate::helpers::{PostgresDatabase, eventually};

const FEED: &str = "/api/modelcat/v1";
const SETTLED: Duration = Duration::from_secs(20);

/// A GET with the nodes' admin token.
async fn admin_get(url: String) -> reqwest::Result<reqwest::Response> {
    crate::helpers::authorized_client(&crate::cluster::ADMIN_TOKEN).get(url).send().await
}

fn sqlite(root: &Path, name: &str) -> String {
    format!("sqlite://{}", root.join(format!("{name}.db")).display())
}

/// Starts instance `id` with its own store and no sources.
async fn instance(root: &Path, id: &str, timing: &Timing) -> Node {
    Node::start(root, id, &sqlite(root, id), "", timing).await
}

/// A sources file with one `modelcat` peer source per `(id, node, extra properties)`.
fn peers(peers: &[(&str, &Node, &str)]) -> String {
    let mut text = String::from("model_catalogs:\n");
    for (id, node, extra) in peers {
        text.push_str(&format!(
            "  - id: {id}\n    name: Peer {id}\n    type: peer\n    properties:\n      url: {}\n      syncInterval: 1s\n      \
             tokenEnv: MODELCAT_ADMIN_TOKEN\n",
            node.address
        ));
        for line in extra.lines().filter(|line| !line.trim().is_empty()) {
            text.push_str(&format!("      {line}\n"));
        }
    }
    text
}

async fn instance_id(node: &Node) -> String {
    node.status().await["replica"]["instance"].as_str().expect("instance id").to_owned()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Waits until `node` serves exactly `expected` under `source`.
async fn shows(node: &Node, source: &str, expected: &BTreeSet<String>) {
    let seen = eventually(SETTLED, || async { (node.catalog_names(source).await? == *expected).then_some(()) }).await;
    let now = node.catalog_names(source).await;
    let status = source_status(node, source).await;
    assert!(
        seen.is_some(),
        "{} source {source}: expected {expected:?}, serves {now:?} ({status}); log:\n{}",
        node.id,
        tail(node)
    );
}

fn tail(node: &Node) -> String {
    let log = node.log();
    log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A source's entry in the catalog status.
async fn source_status(node: &Node, source: &str) -> Value {
    let status = node.status().await;
    let sources = status["sources"].as_array().cloned().unwrap_or_default();
    sources.into_iter().find(|entry| entry["id"] == source).unwrap_or_default()
}

async fn feed(node: &Node, query: &str) -> (u16, Value) {
    let response = admin_get(format!("{}{FEED}/changes?{query}", node.address)).await.expect("sent");
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

/// Waits until A's log no longer covers the cursor B (stopped) stored for `source`.
async fn until_pruned_past(a: &Node, root: &Path, b: &str, source: &str) {
    let store = rusqlite::Connection::open(root.join(format!("{b}.db"))).expect("B's store");
    let cursor: String = store
        .query_row("SELECT cursor FROM peer_cursor WHERE source_id = ?1", [source], |row| row.get(0))
        .expect("B stored a cursor");
    let gone = eventually(SETTLED, || async { (feed(a, &format!("since={cursor}")).await.0 == 410).then_some(()) });
    assert!(gone.await.is_some(), "A's log was never pruned past B's cursor {cursor}");
}

/// Reads `node`'s feed from `cursor` until a change matches; returns it and the cursor after its page.
async fn next_change(node: &Node, cursor: &str, query: &str, wanted: impl Fn(&Value) -> bool) -> (Value, String) {
    let mut cursor = cursor.to_owned();
    for _ in 0..20 {
        let (status, page) = feed(node, &format!("since={cursor}&wait=2{query}")).await;
        assert_eq!(status, 200, "{page}");
        let found =
            page["changes"].as_array().and_then(|changes| changes.iter().find(|change| wanted(change)).cloned());
        cursor = page["cursor"].as_str().expect("cursor").to_owned();
        if let Some(change) = found {
            return (change, cursor);
        }
    }
    panic!("no such change in {}'s feed", node.id)
}

/// Reads `node`'s feed from `cursor` until a page waits a second and stays empty; returns the head.
async fn head(node: &Node, mut cursor: String) -> String {
    loop {
        let (_, page) = feed(node, &format!("since={cursor}&wait=1")).await;
        if page["changes"].as_array().is_some_and(Vec::is_empty) {
            return page["cursor"].as_str().expect("cursor").to_owned();
        }
        cursor = page["cursor"].as_str().expect("cursor").to_owned();
    }
}

/// The log head of `node`, once it stays put for two seconds.
async fn settled_head(node: &Node) -> Option<i64> {
    let mut last = -1;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let head = node.status().await["replica"]["head"].as_i64()?;
        if head == last {
            return Some(head);
        }
        last = head;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_serves_changes_snapshots_and_refuses_cursors_it_cannot_continue() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = instance(root.path(), "a", &Timing::default()).await;
    let me = instance_id(&a).await;

    let snapshot = admin_get(format!("{}{FEED}/snapshot", a.address)).await.expect("sent");
    assert_eq!(snapshot.headers()["content-type"], "application/x-ndjson");
    let text = snapshot.text().await.expect("body");
    let end: Value = serde_json::from_str(text.lines().last().expect("end line")).expect("json");
    assert_eq!(end["end"]["count"], 0, "{text}");
    let cursor = end["end"]["cursor"].as_str().expect("cursor").to_owned();

    let id = a.register("m1").await;
    // The registration is three writes; read pages until the last one's change arrived.
    let (change, cursor) = next_change(&a, &cursor, "", |change| {
        change["name"] == "m1" && change["record"]["artifacts"].as_array().is_some_and(|items| items.len() == 1)
    })
    .await;
    assert_eq!(change["op"], "upsert", "{change}");
    assert_eq!(change["source"], "registry");
    assert_eq!(change["origin"], json!([{"instance": me, "source": "registry"}]));
    assert_eq!(change["record"]["artifacts"][0]["kind"]["Model"]["uri"], "s3://bucket/m1", "{change}");
    let cursor = head(&a, cursor).await;

    // A long poll answers as soon as something changes.
    let waiting = {
        let url = format!("{}{FEED}/changes?since={cursor}&wait=30", a.address);
        tokio::spawn(async move { admin_get(url).await.expect("sent").json::<Value>().await.expect("json") })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    a.delete(&format!("{REGISTRY}/registered_models/{id}")).await;
    let page = waiting.await.expect("long poll");
    assert!(started.elapsed() < Duration::from_secs(10), "the long poll waited for its timeout");
    assert_eq!(page["changes"][0], json!({"op": "delete", "source": "registry", "name": "m1"}), "{page}");
    let cursor = head(&a, page["cursor"].as_str().unwrap().to_owned()).await;

    // Nothing new: an empty page whose cursor is the head.
    let (status, page) = feed(&a, &format!("since={cursor}")).await;
    assert_eq!((status, page["changes"].clone(), page["cursor"].as_str()), (200, json!([]), Some(cursor.as_str())));

    // A consumer never gets back what passed through it.
    a.register("m2").await;
    let (change, _) = next_change(&a, &cursor, &format!("&exclude={me}"), |change| change["name"] == "m2").await;
    assert_eq!(change["op"], "delete", "{change}");

    // Server-Sent Events from Last-Event-ID.
    let client = crate::helpers::authorized_client(&crate::cluster::ADMIN_TOKEN);
    let mut stream = client
        .get(format!("{}{FEED}/changes", a.address))
        .header("accept", "text/event-stream")
        .header("last-event-id", &cursor)
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut received = String::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = stream.chunk().await.expect("chunk") {
            received.push_str(&String::from_utf8_lossy(&chunk));
            if received.contains("\"m2\"") && received.contains("id: ") {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no m2 event with an id over SSE: {received}");
    assert!(received.contains("event: change"), "{received}");

    // Cursors that cannot be continued: 400 for garbage, 410 with a code otherwise.
    let epoch = cursor.rsplit_once('.').unwrap().0.to_owned();
    for (query, status, code) in [
        (String::new(), 400, "bad_request"),
        ("since=nonsense".to_owned(), 400, "bad_request"),
        (format!("since={cursor}&limit=x"), 400, "bad_request"),
        ("since=0000.1".to_owned(), 410, "cursor_epoch"),
        (format!("since={epoch}.99999999"), 410, "cursor_ahead"),
    ] {
        let (got, body) = feed(&a, &query).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()));
    }
    let unknown = admin_get(format!("{}{FEED}/nothing-here", a.address)).await.expect("sent");
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.expect("json")["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_follows_creates_updates_archives_and_deletes_and_catches_up_from_its_cursor() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let a = instance(root.path(), "a", &timing).await;
    let mut b = instance(root.path(), "b", &timing).await;
    b.set_sources(&peers(&[("team-a", &a, "")]));

    let keep = a.register("keep").await;
    let archive = a.register("archive-me").await;
    let delete = a.register("delete-me").await;
    shows(&b, "team-a", &set(&["keep", "archive-me", "delete-me"])).await;

    a.patch(&format!("{REGISTRY}/registered_models/{keep}"), json!({"description": "second"})).await;
    a.patch(&format!("{REGISTRY}/registered_models/{archive}"), json!({"state": "ARCHIVED"})).await;
    a.delete(&format!("{REGISTRY}/registered_models/{delete}")).await;
    shows(&b, "team-a", &set(&["keep"])).await;
    let updated = eventually(SETTLED, || async {
        let model = b.get(&format!("{CATALOG}/sources/team-a/models/keep")).await?;
        (model["description"] == "second").then_some(model)
    })
    .await
    .expect("the update reaches the peer");
    let origin = a.status().await["replica"]["instance"].clone();
    assert_eq!(updated["customProperties"]["origin_instance"]["string_value"], origin, "{updated}");
    assert_eq!(updated["customProperties"]["origin_source"]["string_value"], "registry");

    // Provenance as a facet.
    let faceted = b.get(&format!("{CATALOG}/models?source=team-a&facets=origin_instance")).await.expect("facets");
    assert_eq!(faceted["facets"]["origin_instance"][origin.as_str().unwrap()], 1, "{faceted}");

    // B away while A changes 100 models: B resumes from its cursor, without a snapshot.
    let snapshots_before = b.log().matches("snapshot of").count();
    b.stop();
    let mut expected = set(&["keep"]);
    for number in 0..100 {
        let name = format!("batch-{number:03}");
        a.register(&name).await;
        expected.insert(name);
    }
    b.restart().await;
    shows(&b, "team-a", &expected).await;
    assert_eq!(b.log().matches("snapshot of").count(), snapshots_before, "B took a snapshot: {}", tail(&b));
    assert_eq!(source_status(&b, "team-a").await["status"], "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_pruned_log_takes_a_snapshot_and_mass_removals_are_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let short = Timing { log_retention_secs: 1, ..Timing::default() };
    let a = instance(root.path(), "a", &short).await;
    let mut b = instance(root.path(), "b", &Timing::default()).await;
    b.set_sources(&peers(&[("team-a", &a, "")]));
    let mut ids = Vec::new();
    for number in 0..10 {
        ids.push(a.register(&format!("m{number}")).await);
    }
    let all: BTreeSet<String> = (0..10).map(|number| format!("m{number}")).collect();
    shows(&b, "team-a", &all).await;

    // Deleted while B is away, and the log pruned past B's cursor: B snapshots and removes them.
    b.stop();
    for id in &ids[..3] {
        a.delete(&format!("{REGISTRY}/registered_models/{id}")).await;
    }
    until_pruned_past(&a, root.path(), "b", "team-a").await;
    b.restart().await;
    let rest: BTreeSet<String> = (3..10).map(|number| format!("m{number}")).collect();
    shows(&b, "team-a", &rest).await;
    assert!(b.log().contains("cannot continue from our cursor"), "{}", tail(&b));

    // A snapshot that would remove most records is refused and reported; the records stay.
    b.stop();
    for id in &ids[3..9] {
        a.delete(&format!("{REGISTRY}/registered_models/{id}")).await;
    }
    until_pruned_past(&a, root.path(), "b", "team-a").await;
    b.restart().await;
    let refused = eventually(SETTLED, || async {
        let status = source_status(&b, "team-a").await;
        status["error"].as_str()?.contains("refused to remove 6 of 7").then_some(status)
    })
    .await;
    assert!(refused.is_some(), "no refusal shown: {}", source_status(&b, "team-a").await);
    assert_eq!(b.catalog_names("team-a").await, Some(rest));

    // Allowed explicitly, it goes through.
    let allowed = peers(&[("team-a", &a, "allowMassRemoval: true")]);
    b.set_sources(&allowed);
    shows(&b, "team-a", &set(&["m9"])).await;

    // A source removed from the config is forgotten with its cursor: added back, it starts over.
    let snapshots = b.log().matches("snapshot of").count();
    b.set_sources("");
    let removed = eventually(SETTLED, || async { source_status(&b, "team-a").await.is_null().then_some(()) });
    assert!(removed.await.is_some(), "the source was not removed");
    b.set_sources(&allowed);
    shows(&b, "team-a", &set(&["m9"])).await;
    assert_eq!(b.log().matches("snapshot of").count(), snapshots + 1, "{}", tail(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_settle_with_one_copy_of_each_record_and_logs_that_stop_growing() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let a = instance(root.path(), "a", &timing).await;
    let b = instance(root.path(), "b", &timing).await;
    let c = instance(root.path(), "c", &timing).await;

    // A ⇄ B.
    a.set_sources(&peers(&[("b", &b, "")]));
    b.set_sources(&peers(&[("a", &a, "")]));
    a.register("a1").await;
    a.register("a2").await;
    b.register("b1").await;
    shows(&b, "a", &set(&["a1", "a2"])).await;
    shows(&a, "b", &set(&["b1"])).await;
    let heads = (settled_head(&a).await, settled_head(&b).await);
    assert!(heads.0.is_some() && heads.1.is_some(), "the logs keep growing: {heads:?}");
    assert_eq!(a.catalog_names("b").await, Some(set(&["b1"])));

    // A → B → C → A: every source of the peer, so records travel two hops.
    let all = "sources: [\"*\"]";
    a.set_sources(&peers(&[("c", &c, all)]));
    b.set_sources(&peers(&[("a", &a, "")]));
    c.set_sources(&peers(&[("b", &b, all)]));
    shows(&c, "b", &set(&["a1", "a2", "b1"])).await;
    shows(&a, "c", &set(&["b1"])).await;
    shows(&a, "b", &BTreeSet::new()).await;
    for node in [&a, &b, &c] {
        assert!(settled_head(node).await.is_some(), "{}'s log keeps growing", node.id);
    }
    let chain = c.get(&format!("{CATALOG}/sources/b/models/a1")).await.expect("a1 on C");
    let hops = &chain["customProperties"]["origin_hops"];
    assert_eq!(hops["int_value"], "2", "{chain}");
    assert_eq!(a.catalog_names("registry").await, Some(set(&["a1", "a2"])));
    assert_eq!(a.catalog_names("c").await, Some(set(&["b1"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_down_keeps_its_records_shows_the_error_and_resumes() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let mut a = instance(root.path(), "a", &timing).await;
    let b = instance(root.path(), "b", &timing).await;
    b.set_sources(&peers(&[("team-a", &a, "")]));
    a.register("before").await;
    shows(&b, "team-a", &set(&["before"])).await;

    a.kill();
    let failing = eventually(SETTLED, || async {
        let status = source_status(&b, "team-a").await;
        status["error"].as_str().filter(|error| error.contains("cannot reach")).map(str::to_owned)
    })
    .await;
    assert!(failing.is_some(), "no error shown: {}", source_status(&b, "team-a").await);
    assert_eq!(b.catalog_names("team-a").await, Some(set(&["before"])));

    a.restart().await;
    a.register("after").await;
    shows(&b, "team-a", &set(&["before", "after"])).await;
    let healed = eventually(SETTLED, || async { source_status(&b, "team-a").await["error"].is_null().then_some(()) });
    assert!(healed.await.is_some(), "{}", source_status(&b, "team-a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_401_on_the_source_and_never_in_a_log() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let a = instance(root.path(), "a", &timing).await;
    a.register("secret-model").await;
    let b = instance(root.path(), "b", &timing).await;
    let token_file = b.dir().join("team-a.token");
    let wrong = modelcat::auth::token::Plaintext::generate().expose().to_owned();
    std::fs::write(&token_file, format!("{wrong}\n")).expect("token file");
    let sources = format!(
        "model_catalogs:\n  - id: team-a\n    name: Team A\n    type: peer\n    properties:\n      url: {}\n      \
         tokenFile: {}\n      syncInterval: 1s\n",
        a.address,
        token_file.display()
    );
    b.set_sources(&sources);
    let refused = eventually(SETTLED, || async {
        let status = source_status(&b, "team-a").await;
        status["error"].as_str().filter(|error| error.contains("401")).map(str::to_owned)
    })
    .await;
    let refused = match refused {
        Some(refused) => refused,
        None => panic!("no 401 shown: {}", source_status(&b, "team-a").await),
    };
    assert!(refused.contains("unknown token"), "{refused}");
    assert_eq!(source_status(&b, "team-a").await["status"], "error");

    // A follower token made on A, read again from the file, heals the source: following needs no more.
    let created = a.post(&format!("{FEED}/tokens"), json!({"name": "peer b", "role": "follower"})).await;
    let right = created["token"].as_str().expect("token").to_owned();
    std::fs::write(&token_file, &right).expect("token file");
    shows(&b, "team-a", &set(&["secret-model"])).await;
    let status = b.status().await.to_string();
    for secret in [&wrong, &right, &*crate::cluster::ADMIN_TOKEN] {
        assert!(!b.log().contains(secret.as_str()), "a token is in B's log");
        assert!(!a.log().contains(secret.as_str()), "a token is in A's log");
        assert!(!status.contains(secret.as_str()), "a token is in B's status");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeflow_catalog_and_registry_peers_are_polled() {
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let a = instance(root.path(), "a", &timing).await;
    let catalog = a.dir().join("team-models.yaml");
    std::fs::write(
        &catalog,
        "source: Team\nmodels:\n  - name: org/granite\n    provider: IBM\n    license: apache-2.0\n    artifacts:\n      \
         - uri: oci://registry/granite:1\n  - name: org/llama\n    provider: Meta\n",
    )
    .expect("catalog file");
    a.set_sources(&format!(
        "model_catalogs:\n  - id: team\n    name: Team\n    type: yaml\n    properties:\n      yamlCatalogPath: {}\n",
        catalog.display()
    ));
    let archived = a.register("fraud-detector").await;
    a.register("churn").await;
    a.patch(&format!("{REGISTRY}/registered_models/{archived}"), json!({"state": "ARCHIVED"})).await;
    shows(&a, "team", &set(&["org/granite", "org/llama"])).await;

    let b = instance(root.path(), "b", &timing).await;
    let sources = format!(
        "model_catalogs:\n  - id: kf-catalog\n    name: Kubeflow catalog\n    type: peer\n    properties:\n      url: {url}\n      \
         protocol: kubeflow-catalog\n      sources: [team]\n      syncInterval: 1s\n  - id: kf-registry\n    name: Kubeflow \
         registry\n    type: peer\n    properties:\n      url: {url}\n      protocol: kubeflow-registry\n      syncInterval: 1s\n      tokenEnv: MODELCAT_ADMIN_TOKEN\n",
        url = a.address
    );
    b.set_sources(&sources);
    shows(&b, "kf-catalog", &set(&["org/granite", "org/llama"])).await;
    shows(&b, "kf-registry", &set(&["churn"])).await;
    let granite =
        b.get(&format!("{CATALOG}/sources/kf-catalog/models/org%2Fgranite/artifacts")).await.expect("artifacts");
    assert_eq!(granite["items"][0]["uri"], "oci://registry/granite:1", "{granite}");
    let churn = b.get(&format!("{CATALOG}/sources/kf-registry/models/churn/artifacts")).await.expect("artifacts");
    assert_eq!(churn["items"][0]["uri"], "s3://bucket/churn", "{churn}");

    // Changes and removals arrive with the next poll.
    a.patch(&format!("{REGISTRY}/registered_models/{archived}"), json!({"state": "LIVE"})).await;
    std::fs::write(&catalog, "source: Team\nmodels:\n  - name: org/granite\n    provider: IBM\n")
        .expect("catalog file");
    shows(&b, "kf-registry", &set(&["churn", "fraud-detector"])).await;
    shows(&b, "kf-catalog", &set(&["org/granite"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_syncs_a_peer_and_another_takes_over_from_the_cursor_after_kill_9() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let root = tempfile::tempdir().expect("temp dir");
    let timing = Timing::default();
    let a = instance(root.path(), "a", &timing).await;
    let sources = peers(&[("team-a", &a, "")]);
    let mut replicas = vec![
        Node::start(root.path(), "b1", &database.url, &sources, &timing).await,
        Node::start(root.path(), "b2", &database.url, &sources, &timing).await,
    ];
    a.register("first").await;
    for replica in &replicas {
        shows(replica, "team-a", &set(&["first"])).await;
    }
    let lease = "peer:team-a".to_owned();
    let mut holders = Vec::new();
    for (position, replica) in replicas.iter().enumerate() {
        if replica.leases().await.contains(&lease) {
            holders.push(position);
        }
    }
    assert_eq!(holders.len(), 1, "exactly one replica syncs the peer");
    let survivor = 1 - holders[0];
    replicas[holders[0]].kill();

    a.register("second").await;
    shows(&replicas[survivor], "team-a", &set(&["first", "second"])).await;
    assert!(replicas[survivor].leases().await.contains(&lease));
    assert!(!replicas[survivor].log().contains("snapshot of"), "the new holder took a snapshot instead of resuming");
    drop(replicas);
    database.drop_blocking();
}
