//! The store's replication parts on both backends: the change log never lets a reader skip an entry that
//! commits late, and a lease's fence refuses the writes of a holder that lost it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use modelcat::mirror::store::{MirrorStore, MirroredRepo, StoreError};
use modelcat::store::changes::{self, Entry};
use modelcat::store::{Backend, lease};

use crate::helpers::PostgresDatabase;

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
    modelcat::store::connect(&format!("sqlite://{}", dir.path().join("store.db").display())).await.expect("sqlite")
}

/// Concurrent writers append while a reader numbers and follows "everything after my position" as fast
/// as it can; in the end the reader has seen every committed entry. Each writer holds its transaction
/// open a while after appending, which is when a later entry could otherwise be numbered and read first.
async fn readers_never_skip_late_commits(backend: Arc<dyn Backend>) {
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (backend, done) = (backend.clone(), done.clone());
        async move {
            let mut position = 0;
            let mut seen = BTreeSet::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                changes::sequence(&*backend).await.expect("sequence");
                for change in changes::read_after(&*backend, position, 1000).await.expect("read") {
                    position = change.seq;
                    seen.insert(change.name.expect("name"));
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }
    });
    let writers = (0..8).map(|writer| {
        let backend = backend.clone();
        tokio::spawn(async move {
            for number in 0..40 {
                let mut transaction = backend.begin().await.expect("begin");
                let entry = Entry::hf("src", Some(&format!("w{writer}-{number}")));
                changes::append(&mut *transaction, backend.dialect(), &[entry]).await.expect("append");
                tokio::time::sleep(Duration::from_micros(200 * (number % 3))).await;
                transaction.commit().await.expect("commit");
            }
        })
    });
    for writer in futures_util::future::join_all(writers).await {
        writer.expect("writer");
    }
    done.store(true, Ordering::Release);
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), 8 * 40, "the reader skipped entries that committed after a later one");
    let bounds = changes::bounds(&*backend).await.expect("bounds");
    assert!(bounds.covers(&bounds.epoch, bounds.head) && !bounds.epoch.is_empty());
}

fn repo(id: &str) -> MirroredRepo {
    MirroredRepo {
        repo_id: id.to_owned(),
        sha: "abc".to_owned(),
        last_modified: None,
        info: format!("{{\"id\": \"{id}\", \"sha\": \"abc\"}}"),
        refs: "{}".to_owned(),
        files: Vec::new(),
    }
}

/// A holder whose lease expired and was taken over cannot write under its old fence; the new holder can,
/// and only its write is logged.
async fn stale_fences_are_refused(backend: Arc<dyn Backend>) {
    let store = MirrorStore::new(backend.clone());
    let ttl = Duration::from_millis(300);
    let old = lease::acquire(&*backend, "hf:hub", "r1", ttl).await.unwrap().expect("free lease");
    assert!(lease::acquire(&*backend, "hf:hub", "r2", ttl).await.unwrap().is_none(), "held leases are not taken");
    store.put("hub", &[repo("a/one")], &[], Some(&old)).await.expect("the holder writes");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let new = lease::acquire(&*backend, "hf:hub", "r2", ttl).await.unwrap().expect("expired lease is taken");
    assert!(new.fence > old.fence);
    changes::sequence(&*backend).await.unwrap();
    let head = changes::bounds(&*backend).await.unwrap().head;
    let refused = store.put("hub", &[repo("a/two")], &[], Some(&old)).await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    assert!(store.repo("a/two").await.unwrap().is_none(), "a fenced write left data behind");
    changes::sequence(&*backend).await.unwrap();
    assert_eq!(changes::bounds(&*backend).await.unwrap().head, head, "a fenced write was logged");
    let mut renewed = old.clone();
    assert!(!lease::renew(&*backend, &mut renewed, ttl).await.unwrap(), "a lost lease cannot be renewed");
    store.put("hub", &[repo("a/two")], &[], Some(&new)).await.expect("the new holder writes");
    changes::sequence(&*backend).await.unwrap();
    let logged = changes::read_after(&*backend, head, 10).await.unwrap();
    assert_eq!(logged.iter().map(|change| change.name.clone()).collect::<Vec<_>>(), [Some("a/two".to_owned())]);
    // A released lease is free at once.
    lease::release(&*backend, &new).await.unwrap();
    assert!(lease::acquire(&*backend, "hf:hub", "r3", ttl).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_change_log_keeps_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    readers_never_skip_late_commits(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_change_log_keeps_commit_order() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    readers_never_skip_late_commits(modelcat::store::connect(&database.url).await.unwrap()).await;
    database.drop_blocking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stale_fences_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    stale_fences_are_refused(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stale_fences_are_refused() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    stale_fences_are_refused(modelcat::store::connect(&database.url).await.unwrap()).await;
    database.drop_blocking();
}

/// Compaction keeps the newest entry of each thing that changed, and a reader from the start still learns
/// of every thing; entries appended after a round are compacted by the next.
async fn compaction_keeps_the_newest_entry_of_each_thing(backend: Arc<dyn Backend>) {
    let append = |entries: Vec<Entry>| {
        let backend = backend.clone();
        async move {
            let mut transaction = backend.begin().await.expect("begin");
            changes::append(&mut *transaction, backend.dialect(), &entries).await.expect("append");
            transaction.commit().await.expect("commit");
            changes::sequence(&*backend).await.expect("sequence");
        }
    };
    let registry = |id: i64| Entry {
        domain: changes::Domain::Registry,
        source_id: String::new(),
        name: Some(format!("m{id}")),
        entity_id: Some(id),
    };
    append(vec![registry(1), registry(2), Entry::hf("hub", Some("org/a")), Entry::hf("hub", None)]).await;
    append(vec![registry(1), Entry::hf("hub", Some("org/a")), Entry::hf("hub", None), Entry::hf("other", None)]).await;
    append(vec![registry(1)]).await;
    let head = changes::bounds(&*backend).await.expect("bounds").head;
    assert_eq!(changes::compact(&*backend).await.expect("compact"), 4);
    let left = changes::read_after(&*backend, 0, 100).await.expect("read");
    let keys: Vec<_> =
        left.iter().map(|change| (change.source_id.clone(), change.name.clone(), change.entity_id)).collect();
    assert_eq!(
        keys,
        vec![
            (String::new(), Some("m2".to_owned()), Some(2)),
            ("hub".to_owned(), Some("org/a".to_owned()), None),
            ("hub".to_owned(), None, None),
            ("other".to_owned(), None, None),
            (String::new(), Some("m1".to_owned()), Some(1)),
        ]
    );
    assert_eq!(changes::bounds(&*backend).await.expect("bounds").head, head, "the head stays");
    assert_eq!(changes::compact(&*backend).await.expect("compact"), 0, "nothing new, nothing to do");
    append(vec![registry(2)]).await;
    assert_eq!(changes::compact(&*backend).await.expect("compact"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_compaction_keeps_the_newest_entry_of_each_thing() {
    let dir = tempfile::tempdir().expect("temp dir");
    compaction_keeps_the_newest_entry_of_each_thing(sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_compaction_keeps_the_newest_entry_of_each_thing() {
    let Some(database) = PostgresDatabase::from_env().await else { return };
    let backend = modelcat::store::connect(&database.url).await.expect("postgres");
    compaction_keeps_the_newest_entry_of_each_thing(backend).await;
    database.drop_blocking();
}
