//! Index behaviour on a small in-memory catalog.

use std::collections::BTreeMap;

use modelcat_sources::{ArtifactCommon, ArtifactKind, ArtifactRecord, MetadataValue, ModelRecord};

use super::*;

fn model(name: &str, provider: &str, license: &str, tasks: &[&str]) -> ModelRecord {
    ModelRecord {
        name: name.into(),
        provider: Some(provider.into()),
        license: Some(license.into()),
        description: Some(format!("{name} is a model by {provider}")),
        tasks: tasks.iter().map(|task| (*task).to_owned()).collect(),
        language: vec!["en".into()],
        ..ModelRecord::default()
    }
}

fn perf(hardware: &str, ttft: f64, count: i64) -> ArtifactRecord {
    let properties = BTreeMap::from([
        ("hardware_type".to_owned(), MetadataValue::String(hardware.into())),
        ("ttft_p90".to_owned(), MetadataValue::Double(ttft)),
        ("hardware_count".to_owned(), MetadataValue::Int(count)),
    ]);
    ArtifactRecord {
        kind: ArtifactKind::Metrics { metrics_type: "performance-metrics".into() },
        common: ArtifactCommon { properties, ..ArtifactCommon::default() },
    }
}

async fn catalog() -> CatalogIndex {
    let (index, fresh) = CatalogIndex::open(&Storage::Memory, DEFAULT_WRITER_BYTES).unwrap();
    assert!(fresh);
    let mut granite = model("ibm/granite-8b-code", "IBM", "apache-2.0", &["text-generation"]);
    granite.properties.insert("validated".into(), MetadataValue::String("yes".into()));
    granite.properties.insert("size".into(), MetadataValue::Int(8));
    granite.artifacts = vec![perf("H100", 50.0, 2), perf("A100", 300.0, 1)];
    let mut llama = model("meta/Llama-3-70b", "Meta", "llama3", &["text-generation", "chat"]);
    llama.properties.insert("accuracy".into(), MetadataValue::Double(0.9));
    llama.artifacts = vec![perf("H100", 400.0, 8), perf("A100", 40.0, 1)];
    let mut bert = model("google/bert-base", "Google", "apache-2.0", &["fill-mask"]);
    bert.properties.insert("validated".into(), MetadataValue::String(String::new()));
    let changes = [("a", granite), ("a", llama), ("b", bert)].map(|(source, record)| Change::Upsert {
        source_id: source.into(),
        hash: record.content_hash(),
        record: Arc::new(record),
    });
    index.apply(changes.to_vec()).await.unwrap();
    index
}

fn names(index: &CatalogIndex, q: Option<&str>, filter: &str) -> Vec<String> {
    let expr = filter::parse(filter).unwrap();
    let search = Search { q, filter: expr.as_ref(), limit: 10, ..Search::default() };
    index.search(&search).unwrap().models.into_iter().map(|model| model.record.name).collect()
}

#[tokio::test]
async fn text_matches_word_prefixes_and_ranks_names_first() {
    let index = catalog().await;
    assert_eq!(names(&index, Some("gran"), ""), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, Some("GOOGLE"), ""), vec!["google/bert-base"]);
    assert_eq!(names(&index, Some("text gen"), ""), vec!["ibm/granite-8b-code", "meta/Llama-3-70b"]);
    assert!(names(&index, Some("granite nothing"), "").is_empty(), "every word must match");
    let search = Search { q: Some("meta"), sort: Some(SortBy::Relevance), limit: 10, ..Search::default() };
    let hits = index.search(&search).unwrap();
    assert_eq!(hits.models[0].record.name, "meta/Llama-3-70b");
}

#[tokio::test]
async fn filters_cover_fields_properties_and_operators() {
    let index = catalog().await;
    let all = vec!["google/bert-base", "ibm/granite-8b-code", "meta/Llama-3-70b"];
    assert_eq!(names(&index, None, ""), all, "name order is case-insensitive");
    assert_eq!(names(&index, None, "license = 'apache-2.0'"), vec!["google/bert-base", "ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "license != 'apache-2.0'"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "tasks = 'chat'"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "tasks IN ('chat', 'fill-mask')"), vec!["google/bert-base", "meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "name LIKE '%granite%'"), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "name ILIKE 'META/%'"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "name NOT LIKE '%e%'").len(), 0);
    assert_eq!(names(&index, None, r#"language LIKE '%"en"%'"#), all);
    assert_eq!(names(&index, None, "validated = 'yes'"), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "validated.string_value IS NULL"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "validated = ''"), vec!["google/bert-base"]);
    assert_eq!(names(&index, None, "size >= 8"), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "size.int_value > 7.5"), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "accuracy > 0.5"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "NOT provider = 'IBM' AND source_id = 'a'"), vec!["meta/Llama-3-70b"]);
    assert_eq!(names(&index, None, "(provider = 'IBM' OR provider = 'Google') AND license = 'apache-2.0'").len(), 2);
    assert!(
        index
            .search(&Search { filter: filter::parse("name > 3").unwrap().as_ref(), limit: 1, ..Search::default() })
            .is_err()
    );
}

#[tokio::test]
async fn anded_artifact_conditions_hold_on_one_artifact() {
    let index = catalog().await;
    assert_eq!(names(&index, None, "artifacts.ttft_p90 < 100"), vec!["ibm/granite-8b-code", "meta/Llama-3-70b"]);
    // granite's fast artifact is an H100; llama's fast one an A100.
    let same = "artifacts.hardware_type = 'H100' AND artifacts.ttft_p90.double_value < 100";
    assert_eq!(names(&index, None, same), vec!["ibm/granite-8b-code"]);
    assert_eq!(names(&index, None, "artifacts.hardware_count > 4 OR license = 'apache-2.0'").len(), 3);
}

#[tokio::test]
async fn sorts_sources_facets_and_options() {
    let index = catalog().await;
    let search = Search { sort: Some(SortBy::Number("v.an.ttft_p90".into())), limit: 10, ..Search::default() };
    let order: Vec<_> = index.search(&search).unwrap().models.into_iter().map(|m| m.record.name).collect();
    assert_eq!(order, vec!["meta/Llama-3-70b", "ibm/granite-8b-code", "google/bert-base"], "missing values last");
    let only_b = ["b".to_owned()];
    let facets = ["license".to_owned(), "source_id".to_owned()];
    let hits =
        index.search(&Search { sources: Some(&only_b), facets: &facets, limit: 10, ..Search::default() }).unwrap();
    assert_eq!((hits.models.len(), hits.more), (1, false));
    assert_eq!(hits.facets["license"], vec![("apache-2.0".to_owned(), 1)]);
    let options = index.filter_options(None).unwrap();
    assert_eq!(options["license"], PropertyOptions::Strings(vec![("apache-2.0".into(), 2), ("llama3".into(), 1)]));
    assert_eq!(options["size.int_value"], PropertyOptions::Range { min: 8.0, max: 8.0 });
    assert_eq!(options["artifacts.ttft_p90.double_value"], PropertyOptions::Range { min: 40.0, max: 400.0 });
    assert!(matches!(&options["artifacts.hardware_type.string_value"], PropertyOptions::Strings(v) if v.len() == 2));
    // bert's empty `validated` is a value, but no option to pick.
    assert_eq!(options["validated.string_value"], PropertyOptions::Strings(vec![("yes".into(), 1)]));
    assert_eq!(index.counts().unwrap(), BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]));
}

#[tokio::test]
async fn changes_replace_and_delete() {
    let index = catalog().await;
    let hashes = index.source_hashes("a").unwrap();
    assert_eq!(hashes.len(), 2);
    let generation = index.generation();
    let mut bert = model("google/bert-base", "Google", "mit", &[]);
    bert.description = Some("changed".into());
    let changes = vec![
        Change::Upsert { source_id: "b".into(), hash: bert.content_hash(), record: Arc::new(bert) },
        Change::Delete(DocKey { source_id: "a".into(), name: "ibm/granite-8b-code".into() }),
    ];
    assert!(index.apply(changes).await.unwrap() > generation);
    assert_eq!(names(&index, None, "license = 'mit'"), vec!["google/bert-base"]);
    assert_eq!(
        names(&index, None, "artifacts.hardware_type = 'H100'"),
        vec!["meta/Llama-3-70b"],
        "artifacts went with their model"
    );
    index.apply(vec![Change::DeleteSource("a".into())]).await.unwrap();
    assert_eq!(names(&index, None, ""), vec!["google/bert-base"]);
    let key = DocKey { source_id: "b".into(), name: "google/bert-base".into() };
    assert_eq!(index.get(&key).unwrap().unwrap().record.description.as_deref(), Some("changed"));
}

#[tokio::test]
async fn a_directory_index_survives_reopening_and_rebuilds_on_version_change() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Directory(dir.path().join("index"));
    {
        let (index, fresh) = CatalogIndex::open(&storage, DEFAULT_WRITER_BYTES).unwrap();
        assert!(fresh);
        let record = model("x", "X", "mit", &[]);
        index.apply(vec![Change::Upsert { source_id: "s".into(), hash: 1, record: Arc::new(record) }]).await.unwrap();
        index.close().await;
        assert!(index.apply(vec![Change::DeleteSource("s".into())]).await.is_err(), "closed");
    }
    let (index, fresh) = CatalogIndex::open(&storage, DEFAULT_WRITER_BYTES).unwrap();
    assert!(!fresh);
    assert_eq!(index.source_hashes("s").unwrap()["x"], 1);
    index.close().await;
    std::fs::write(dir.path().join("index/modelcat-schema-version"), "0").unwrap();
    let (index, fresh) = CatalogIndex::open(&storage, DEFAULT_WRITER_BYTES).unwrap();
    assert!(fresh && index.source_hashes("s").unwrap().is_empty());
}

#[tokio::test]
async fn checkpoints_and_source_states_commit_with_their_changes_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Directory(dir.path().join("index"));
    let (index, _) = CatalogIndex::open(&storage, DEFAULT_WRITER_BYTES).unwrap();
    let upsert = |source: &str| Change::Upsert {
        source_id: source.into(),
        hash: 1,
        record: Arc::new(model("x", "X", "mit", &[])),
    };
    let state = |source: &str, state: Option<&str>| Change::SourceState {
        source_id: source.into(),
        state: state.map(str::to_owned),
    };
    index
        .apply(vec![upsert("a"), state("a", Some("digest-a")), Change::Checkpoint("{\"position\":3}".into())])
        .await
        .unwrap();
    index.apply(vec![upsert("b"), state("b", Some("digest-b"))]).await.unwrap();
    index.apply(vec![Change::DeleteSource("b".into())]).await.unwrap();
    index.close().await;
    let (index, fresh) = CatalogIndex::open(&storage, DEFAULT_WRITER_BYTES).unwrap();
    assert!(!fresh);
    assert_eq!(index.source_state("a").unwrap().as_deref(), Some("digest-a"), "kept by later commits");
    assert_eq!(index.source_state("b").unwrap(), None, "forgotten with its source");
    assert_eq!(index.checkpoint().unwrap().as_deref(), Some("{\"position\":3}"));
    index.apply(vec![state("a", None)]).await.unwrap();
    assert_eq!(index.source_state("a").unwrap(), None);
    // A payload written before sources had states is the checkpoint itself.
    assert_eq!(
        Payload::read(Some("{\"epoch\":\"e\",\"position\":1}".into())).checkpoint.as_deref(),
        Some("{\"epoch\":\"e\",\"position\":1}")
    );
}

#[tokio::test]
async fn compaction_merges_segments_and_keeps_every_model() {
    let index = catalog().await;
    for name in ["a/one", "a/two", "a/three"] {
        let record = model(name, "X", "mit", &[]);
        index.apply(vec![Change::Upsert { source_id: "c".into(), hash: 1, record: Arc::new(record) }]).await.unwrap();
    }
    assert!(index.segments() > 1);
    assert!(index.compact().await.unwrap() > 1);
    assert_eq!(index.segments(), 1);
    assert_eq!(names(&index, None, "").len(), 6);
    assert_eq!(index.compact().await.unwrap(), 1, "nothing left to merge");
}

#[tokio::test]
async fn the_directory_forgets_files_of_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = CatalogIndex::open(&Storage::Directory(dir.path().join("index")), MIN_WRITER_BYTES).unwrap();
    for round in 0..150u64 {
        let record = model(&format!("m/{}", round % 5), "X", "mit", &[]);
        index
            .apply(vec![Change::Upsert { source_id: "s".into(), hash: round, record: Arc::new(record) }])
            .await
            .unwrap();
    }
    // 150 commits wrote about 1,000 files; the map holds only those of live segments (and merges').
    let mapped = index.mapped_files();
    assert!(mapped > 0 && mapped < 150, "{mapped} files mapped for {} segments", index.segments());
    index.close().await;
}

#[tokio::test]
async fn pages_by_name_read_only_the_first_matches_yet_agree_with_a_full_sort() {
    let (index, _) = CatalogIndex::open(&Storage::Memory, DEFAULT_WRITER_BYTES).unwrap();
    // Four commits (segments), names in no particular order, mixed case, a name in two sources, and
    // artifacts (which sort first, nameless).
    let mut expected = Vec::new();
    for batch in 0..4u64 {
        let changes: Vec<Change> = (0..50u64)
            .map(|n| {
                let number = (n * 37 + batch * 11) % 200;
                let name = if number % 3 == 0 { format!("Org/M-{number:03}") } else { format!("org/m-{number:03}") };
                let mut record = model(&name, "P", "mit", &["chat"]);
                record.artifacts = vec![perf("H100", 1.0, 1)];
                let source = if number == 7 { "b" } else { "a" };
                expected.push((name.to_lowercase(), source.to_owned()));
                Change::Upsert { source_id: source.into(), hash: record.content_hash(), record: Arc::new(record) }
            })
            .collect();
        index.apply(changes).await.unwrap();
    }
    let extra = model("org/m-007", "P", "mit", &["chat"]);
    index
        .apply(vec![Change::Upsert { source_id: "a".into(), hash: extra.content_hash(), record: Arc::new(extra) }])
        .await
        .unwrap();
    expected.push(("org/m-007".into(), "a".into()));
    // Deleted documents are skipped.
    index.apply(vec![Change::Delete(DocKey { source_id: "a".into(), name: "org/m-010".into() })]).await.unwrap();
    expected.retain(|(name, source)| !(name == "org/m-010" && source == "a"));
    expected.sort();
    expected.dedup();
    assert!(index.segments() > 1, "several segments");

    let page = |q: Option<&'static str>, offset: usize, descending: bool| {
        let search = Search { q, offset, limit: 7, descending, ..Search::default() };
        let hits = index.search(&search).unwrap();
        (hits.models.into_iter().map(|model| model.record.name.to_lowercase()).collect::<Vec<_>>(), hits.more)
    };
    let names: Vec<String> = expected.iter().map(|(name, _)| name.clone()).collect();
    for offset in [0, 5, 50, names.len() - 3] {
        let (found, more) = page(None, offset, false);
        let end = (offset + 7).min(names.len());
        assert_eq!(found, names[offset..end], "page at {offset}");
        assert_eq!(more, end < names.len());
        // Text queries page the same way; descending order takes the full sort.
        assert_eq!(page(Some("org"), offset, false).0, found);
        let reversed: Vec<String> = names.iter().rev().skip(offset).take(7).cloned().collect();
        assert_eq!(page(None, offset, true).0, reversed);
    }
    assert_eq!(page(Some("m-007"), 0, false).0, ["org/m-007", "org/m-007"]);
}
