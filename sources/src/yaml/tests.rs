//! The YAML source's parsing: whole files, pieces, edits, errors.

use super::*;

#[test]
fn parses_models_with_artifacts() {
    let text = r#"
source: Test
models:
  - name: org/m
    tasks: [text-generation]
    createTimeSinceEpoch: "1736899200000"
    customProperties:
      validated: {metadataType: MetadataStringValue, string_value: ""}
      size: {int_value: "7"}
    artifacts:
      - uri: oci://r/m:1
      - artifactType: metrics-artifact
        metricsType: accuracy-metrics
        customProperties: {score: {double_value: 0.5}}
"#;
    let records = parse_catalog(text.as_bytes()).unwrap();
    let model = &records[0];
    assert_eq!(model.create_time, Some(1_736_899_200_000));
    assert_eq!(model.properties["size"], MetadataValue::Int(7));
    assert_eq!(model.artifacts.len(), 2);
    assert!(
        matches!(&model.artifacts[1].kind, ArtifactKind::Metrics { metrics_type } if metrics_type == "accuracy-metrics")
    );
}

#[test]
fn errors_name_the_problem_and_position() {
    let unknown = parse_catalog(b"models:\n  - name: a\n    colour: red\n").unwrap_err();
    assert!(unknown.contains("colour") && unknown.contains("line 3"), "{unknown}");
    let duplicate = parse_catalog(b"models:\n  - name: a\n  - name: a\n").unwrap_err();
    assert!(duplicate.contains("repeats"), "{duplicate}");
    let no_uri = parse_catalog(b"models:\n  - name: a\n    artifacts: [{name: x}]\n").unwrap_err();
    assert!(no_uri.contains("uri"), "{no_uri}");
    assert!(parse_catalog(b"models: [{name: a, createTimeSinceEpoch: soon}]").is_err());
}

/// A catalog of `count` models of about 1 KB each, in the shapes files use.
fn catalog(count: usize) -> String {
    let mut text = String::from("source: Test # generated\nmodels:\n");
    for n in 0..count {
        let readme = format!("line {n}\n").repeat(100);
        text.push_str(&format!("  - name: org/m{n}\n    description: \"model {n}\"\n    readme: |\n"));
        text.extend(readme.lines().map(|line| format!("      {line}\n")));
        text.push_str(&format!("\n    tasks: [t{}]\n    customProperties: {{size: {{int_value: \"{n}\"}}}}\n", n % 7));
        text.push_str("  # a comment between models\n    artifacts:\n      - uri: oci://r/m:1\n");
    }
    text
}

fn whole(text: &str) -> Vec<ModelRecord> {
    let catalog: RawCatalog = parse_yaml(text).unwrap();
    catalog.models.into_iter().map(|model| model.into_record().unwrap()).collect()
}

#[test]
fn a_file_parsed_in_pieces_gives_what_the_whole_file_gives() {
    let text = catalog(3000);
    assert!(text.len() > 3 * GROUP_BYTES, "several groups, parsed in parallel");
    let (models, digests) = parse_models(text.as_bytes(), &Digests::new()).unwrap();
    assert_eq!(digests.len(), 3000, "parsed in pieces");
    let pieces: Vec<ModelRecord> = models
        .into_iter()
        .map(|(_, outcome)| match outcome {
            RecordOutcome::Changed(record) => *record,
            _ => panic!("nothing was known"),
        })
        .collect();
    assert_eq!(pieces, whole(&text));
    // Shapes the layout declines, or pieces that do not parse alone, are parsed whole, to the same end.
    let aliased = "models:\n- name: a\n  description: &d shared\n- name: b\n  description: *d\n";
    let records = parse_catalog(aliased.as_bytes()).unwrap();
    assert_eq!(records[1].description.as_deref(), Some("shared"));
    assert_eq!(parse_catalog(b"models: [{name: a}, {name: b}]").unwrap().len(), 2);
    let repeated = parse_catalog(b"models:\n  - name: a\n  - name: b\n  - name: a\n").unwrap_err();
    assert_eq!(repeated, r#"models[2]: name "a" repeats models[0]"#);
    let broken = parse_catalog(b"source: S\nmodels:\n  - name: a\n  - name: b\n    colour: red\n").unwrap_err();
    assert!(broken.contains("colour") && broken.contains("line 5"), "{broken}");
}

#[test]
fn an_edit_parses_only_the_models_whose_text_changed() {
    let text = catalog(50);
    let (_, known) = parse_models(text.as_bytes(), &Digests::new()).unwrap();
    let edited = text
        .replace("description: \"model 7\"", "description: \"model seven\"")
        .replace("  - name: org/m9\n", "  - name: org/m9b\n")
        .replace("source: Test", "source: Edited");
    let edited = format!("{edited}  - name: org/new\n");
    let (models, digests) = parse_models(edited.as_bytes(), &known).unwrap();
    let changed: Vec<&str> = models
        .iter()
        .filter(|(_, outcome)| matches!(outcome, RecordOutcome::Changed(_)))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(changed, ["org/m7", "org/m9b", "org/new"]);
    assert_eq!(models.len(), 51);
    assert!(matches!(models[0], (ref name, RecordOutcome::Unchanged) if name == "org/m0"));
    assert_eq!(digests.len(), 51);
    // A known model's name repeated by an edited one is still a repeat.
    let repeat = format!("{text}  - name: org/m3\n");
    assert!(parse_models(repeat.as_bytes(), &known).unwrap_err().contains("repeats models[3]"));
}

#[tokio::test]
async fn an_edited_file_reports_its_other_models_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "models:\n  - name: a\n  - name: b\n").unwrap();
    let source = YamlSource::new(SourceId::parse("c").unwrap(), path.clone());
    let first = source.fetch(&SyncState::new()).await.unwrap().expect("first fetch");
    std::fs::write(&path, "models:\n  - name: a\n  - name: b\n    description: new\n").unwrap();
    let second = source.fetch(&first.state).await.unwrap().expect("changed");
    assert!(matches!(second.records["a"], RecordOutcome::Unchanged));
    assert!(matches!(second.records["b"], RecordOutcome::Changed(_)));
    // A caller that holds another state than the last parse gets every model.
    let fresh = source.fetch(&SyncState::new()).await.unwrap().expect("changed");
    assert!(fresh.records.values().all(|outcome| matches!(outcome, RecordOutcome::Changed(_))));
}

#[tokio::test]
async fn unchanged_files_are_not_parsed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "models: [{name: a}]").unwrap();
    let source = YamlSource::new(SourceId::parse("c").unwrap(), path.clone());
    let first = source.fetch(&SyncState::new()).await.unwrap().expect("first fetch");
    assert_eq!(first.records.len(), 1);
    assert!(source.fetch(&first.state).await.unwrap().is_none());
    std::fs::write(&path, "models: [{name: a}, {name: b}]").unwrap();
    assert_eq!(source.fetch(&first.state).await.unwrap().expect("changed").records.len(), 2);
    std::fs::remove_file(&path).unwrap();
    assert!(source.fetch(&first.state).await.unwrap_err().to_string().contains("cannot read"));
}

#[cfg(unix)]
#[tokio::test]
async fn a_settled_file_is_not_read_again_until_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "models: [{name: a}]").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let source = YamlSource::new(SourceId::parse("c").unwrap(), path.clone());
    let first = source.fetch(&SyncState::new()).await.unwrap().expect("first fetch");
    assert!(first.state.contains_key(FILE_STAMP), "a settled file is stamped: {:?}", first.state);
    // With its stamp unchanged the file is not read: even a state whose hash could not match says so.
    let mut stale = first.state.clone();
    stale.insert(CONTENT_HASH.into(), "0".into());
    assert!(source.fetch(&stale).await.unwrap().is_none());
    // Rewritten in place, same size, old modification time: the change time gives it away.
    std::fs::write(&path, "models: [{name: b}]").unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
    let second = source.fetch(&first.state).await.unwrap().expect("the edit is seen");
    assert!(second.records.contains_key("b"));
    assert!(!second.state.contains_key(FILE_STAMP), "too fresh to stamp");
}
