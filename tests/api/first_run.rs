//! A first run as a new user makes it: the container image started exactly as its Dockerfile says, and
//! the root path pointing somewhere useful.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::cluster::free_port;
use crate::helpers::eventually;

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The image's final stage, read from the Dockerfile: its `COPY` lines lay the project's files out under
/// `image` (absolute paths moved under it), and its `ENV` block, paths moved the same way, is the whole
/// environment. Docker cannot run on these machines; this is as close as a test gets.
fn image_environment(image: &Path) -> Vec<(String, String)> {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(project.join("Dockerfile")).expect("Dockerfile");
    let stage = dockerfile.rsplit("\nFROM ").next().expect("a final stage");
    let inside = |path: &str| image.join(path.trim_start_matches('/'));
    for line in stage.lines().filter(|line| line.starts_with("COPY ") && !line.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [_, from, to] = parts[..] else { panic!("a COPY of one path: {line}") };
        copy_tree(&project.join(from), &inside(to));
    }
    let block = stage.split("\nENV ").nth(1).expect("an ENV block");
    let mut environment = Vec::new();
    for line in block.lines() {
        let pair = line.trim().trim_end_matches('\\').trim();
        let (key, value) = pair.split_once('=').expect("KEY=VALUE");
        let value = if value.starts_with('/') { inside(value).display().to_string() } else { value.to_owned() };
        environment.push((key.to_owned(), value));
        if !line.trim_end().ends_with('\\') {
            break;
        }
    }
    environment
}

#[tokio::test]
async fn the_image_starts_with_its_samples_from_any_working_directory() {
    let root = tempfile::tempdir().expect("temp dir");
    let image = root.path().join("image");
    let mut environment = image_environment(&image);
    assert!(environment.iter().any(|(key, _)| key == "MODELCAT_CONFIG"), "{environment:?}");
    let data = environment.iter().find(|(key, _)| key == "MODELCAT_DATA_DIR").expect("a data dir").1.clone();
    std::fs::create_dir_all(&data).expect("data dir");
    // The one change: a free local port instead of the image's 0.0.0.0:8080.
    let port = free_port();
    environment.retain(|(key, _)| key != "MODELCAT_LISTEN");
    environment.push(("MODELCAT_LISTEN".to_owned(), format!("127.0.0.1:{port}")));
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("working dir");
    let log = std::fs::File::create(root.path().join("modelcat.log")).expect("log");
    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_modelcat"))
            .arg("serve")
            .env_clear()
            .envs(environment)
            .current_dir(&elsewhere)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("modelcat serve starts"),
    );
    let address = format!("http://127.0.0.1:{port}");
    modelcat::install_crypto_provider();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let ready = eventually(Duration::from_secs(60), || async {
        let response = client.get(format!("{address}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let logged = || std::fs::read_to_string(root.path().join("modelcat.log")).unwrap_or_default();
    assert!(ready.is_some(), "the image's start did not get ready; its log:\n{}", logged());

    // The sample sources serve, read anonymously as the defaults allow.
    let sources: Value = client
        .get(format!("{address}/api/model_catalog/v1alpha1/sources"))
        .send()
        .await
        .expect("sources")
        .json()
        .await
        .expect("json");
    let items = sources["items"].as_array().expect("items");
    for id in ["example", "open_models"] {
        let source = items.iter().find(|source| source["id"] == id).unwrap_or_else(|| panic!("{id}: {sources}"));
        assert_eq!(source["status"], "available", "{source}\n{}", logged());
    }
    let models: Value = client
        .get(format!("{address}/api/model_catalog/v1alpha1/models?source=open_models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert!(models["size"].as_u64().is_some_and(|size| size > 0), "{models}");
    // Runtime data lands in the data directory, nothing in the working directory.
    assert!(Path::new(&data).join("registry.db").exists());
    assert!(Path::new(&data).join("admin-token").exists());
    assert_eq!(std::fs::read_dir(&elsewhere).expect("working dir").count(), 0, "the working directory stays empty");

    // The root leads to the web UI, which shows the sample catalogs; `/api` lists the APIs.
    let home = client.get(format!("{address}/")).send().await.expect("root");
    assert_eq!(home.status(), 307);
    assert_eq!(home.headers()["location"], "/ui");
    let ui = client.get(format!("{address}/ui")).send().await.expect("ui");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.expect("html").contains("class=\"card\""), "the UI lists sample models");
    let listing: Value = client.get(format!("{address}/api")).send().await.expect("api").json().await.expect("json");
    assert!(listing["families"].as_array().is_some_and(|families| !families.is_empty()), "{listing}");
}
