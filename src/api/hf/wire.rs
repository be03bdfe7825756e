//! The Hub's wire shapes: the error envelope, `model_info` projections, tree items, and revision checks,
//! all over the stored raw documents (`hf-compat.md` §3–§6).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use crate::mirror::store::StoreError;

/// Fields the Hub sends in listings and for `expand`, never in a plain `model_info` document.
pub const LIST_ONLY: [&str; 2] = ["trendingScore", "downloadsAllTime"];

/// The `expand` values the Hub accepts (`ExpandModelProperty_T`).
pub const EXPAND_VALUES: &[&str] = &[
    "author",
    "baseModels",
    "cardData",
    "childrenModelCount",
    "config",
    "createdAt",
    "disabled",
    "downloads",
    "downloadsAllTime",
    "evalResults",
    "gated",
    "gguf",
    "inference",
    "inferenceProviderMapping",
    "lastModified",
    "library_name",
    "likes",
    "mask_token",
    "model-index",
    "pipeline_tag",
    "private",
    "resourceGroup",
    "safetensors",
    "sha",
    "siblings",
    "spaces",
    "tags",
    "transformersInfo",
    "trendingScore",
    "usedStorage",
    "widgetData",
];

/// The `expand` (or `expand[]`, repeated or comma-separated) values of a query; an unknown one is a 400.
pub fn expand_values(pairs: &[(String, String)]) -> Result<Vec<String>, HfError> {
    let values = pairs.iter().filter(|(key, _)| key == "expand" || key == "expand[]");
    let properties = values.flat_map(|(_, value)| value.split(',')).filter(|property| !property.is_empty());
    properties
        .map(|property| {
            if EXPAND_VALUES.contains(&property) {
                Ok(property.to_owned())
            } else {
                Err(HfError::bad_request(format!(
                    "invalid expand value {property:?}; allowed: {}",
                    EXPAND_VALUES.join(", ")
                )))
            }
        })
        .collect()
}

/// An error in the Hub's envelope: `X-Error-Code` (when one applies) and `X-Error-Message` headers and an
/// `{"error": …}` body. `huggingface_hub` picks its exception from `X-Error-Code`.
#[derive(Debug)]
pub struct HfError {
    pub status: StatusCode,
    pub code: Option<&'static str>,
    pub message: String,
    /// Sent with `EntryNotFound` so clients can cache the miss against the commit.
    pub commit: Option<String>,
}

impl HfError {
    pub fn repo_not_found(repo_id: &str) -> Self {
        HfError {
            status: StatusCode::NOT_FOUND,
            code: Some("RepoNotFound"),
            message: format!("Repository not found: {repo_id} is not mirrored here"),
            commit: None,
        }
    }

    pub fn revision_not_found(revision: &str, why: &str) -> Self {
        HfError {
            status: StatusCode::NOT_FOUND,
            code: Some("RevisionNotFound"),
            message: format!("Invalid rev id: {revision}{why}"),
            commit: None,
        }
    }

    pub fn entry_not_found(message: String, commit: &str) -> Self {
        HfError { status: StatusCode::NOT_FOUND, code: Some("EntryNotFound"), message, commit: Some(commit.to_owned()) }
    }

    pub fn gated(repo_id: &str) -> Self {
        HfError {
            status: StatusCode::FORBIDDEN,
            code: Some("GatedRepo"),
            message: format!(
                "Access to model {repo_id} is restricted: it is a gated model, and this mirror does not serve its files"
            ),
            commit: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        HfError { status: StatusCode::BAD_REQUEST, code: None, message: message.into(), commit: None }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        HfError { status: StatusCode::NOT_FOUND, code: Some("EntryNotFound"), message: message.into(), commit: None }
    }
}

impl From<StoreError> for HfError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "mirror store failed");
        HfError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: "internal error reading the mirror".to_owned(),
            commit: None,
        }
    }
}

impl IntoResponse for HfError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        if let Some(code) = self.code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        // Header values must be visible ASCII; the body keeps the exact text.
        let ascii: String =
            self.message.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        if let Ok(value) = HeaderValue::from_str(&ascii) {
            headers.insert("x-error-message", value);
        }
        if let Some(commit) = self.commit.and_then(|commit| HeaderValue::from_str(&commit).ok()) {
            headers.insert("x-repo-commit", commit);
        }
        response
    }
}

/// Checks that `revision` names the mirrored commit: `main`, the commit itself, or a branch or tag (by name
/// or full ref) that points at it.
pub fn check_revision(revision: &str, sha: &str, refs: &Json) -> Result<(), HfError> {
    if revision == sha || revision == "main" {
        return Ok(());
    }
    let refs = ["branches", "tags", "converts", "pullRequests"]
        .iter()
        .filter_map(|kind| refs.get(*kind)?.as_array())
        .flatten();
    for reference in refs {
        let named = [reference.get("name"), reference.get("ref")]
            .iter()
            .any(|name| name.and_then(|name| name.as_str()) == Some(revision));
        if named {
            return match reference.get("targetCommit").and_then(Json::as_str) {
                Some(target) if target == sha => Ok(()),
                target => Err(HfError::revision_not_found(
                    revision,
                    &format!(" (it points at commit {}; this mirror holds only {sha})", target.unwrap_or("unknown")),
                )),
            };
        }
    }
    Err(HfError::revision_not_found(revision, ""))
}

/// Siblings without their blob fields (what `model_info` serves without `blobs=true`).
fn plain_siblings(siblings: &Json) -> Json {
    match siblings.as_array() {
        Some(siblings) => siblings.iter().map(|sibling| json!({ "rfilename": sibling.get("rfilename") })).collect(),
        None => Json::Array(Vec::new()),
    }
}

/// `model_info`: with `expand`, only `_id`, `id` and the asked keys; otherwise the whole document, with
/// sibling sizes and hashes only for `blobs=true`.
pub fn model_info(info: &Map<String, Json>, expand: &[String], blobs: bool) -> Json {
    if !expand.is_empty() {
        return expanded(info, expand);
    }
    let mut document = info.clone();
    // As on the Hub: these come with listings and `expand` only.
    for key in LIST_ONLY {
        document.remove(key);
    }
    if !blobs && let Some(siblings) = document.get_mut("siblings") {
        *siblings = plain_siblings(siblings);
    }
    document.entry("siblings").or_insert_with(|| Json::Array(Vec::new()));
    Json::Object(document)
}

/// `_id`, `id` and the `expand`ed keys present in the document.
pub fn expanded(info: &Map<String, Json>, expand: &[String]) -> Json {
    let mut item = Map::new();
    for key in ["_id", "id"].into_iter().chain(expand.iter().map(String::as_str)) {
        if let Some(value) = info.get(key) {
            let value = if key == "siblings" { plain_siblings(value) } else { value.clone() };
            item.insert(key.to_owned(), value);
        }
    }
    Json::Object(item)
}

/// A list item with `full`, `cardData` and `config` applied over the default item.
pub fn list_item(default: &Map<String, Json>, info: &Map<String, Json>, full: bool, card: bool, config: bool) -> Json {
    let mut item = default.clone();
    let mut copy = |key: &str| {
        if let Some(value) = info.get(key) {
            let value = if key == "siblings" { plain_siblings(value) } else { value.clone() };
            item.insert(key.to_owned(), value);
        }
    };
    if full {
        for key in ["author", "sha", "lastModified", "gated", "disabled", "siblings"] {
            copy(key);
        }
    }
    if card {
        copy("cardData");
    }
    if config {
        copy("config");
    }
    Json::Object(item)
}

/// A mirrored file as the resolve and tree routes see it.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// The git blob id.
    pub blob_id: String,
    /// The LFS `sha256`, `size` and `pointerSize`, for LFS files.
    pub lfs: Option<(String, u64, u64)>,
}

impl FileEntry {
    /// The `ETag` the Hub sends: the LFS sha256 for LFS files, the git blob id otherwise.
    pub fn etag(&self) -> &str {
        self.lfs.as_ref().map_or(&self.blob_id, |(sha256, _, _)| sha256)
    }

    fn tree_item(&self) -> Json {
        let mut item = json!({"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path});
        if let Some((sha256, size, pointer)) = &self.lfs {
            item["lfs"] = json!({"oid": sha256, "size": size, "pointerSize": pointer});
        }
        item
    }
}

/// The files a `model_info` document (with blobs) lists.
pub fn files(info: &Map<String, Json>) -> Vec<FileEntry> {
    let Some(siblings) = info.get("siblings").and_then(Json::as_array) else { return Vec::new() };
    siblings
        .iter()
        .filter_map(|sibling| {
            let path = sibling.get("rfilename")?.as_str()?.to_owned();
            let lfs = sibling.get("lfs").and_then(|lfs| {
                Some((
                    lfs.get("sha256")?.as_str()?.to_owned(),
                    lfs.get("size")?.as_u64()?,
                    lfs.get("pointerSize").and_then(Json::as_u64).unwrap_or(0),
                ))
            });
            let size = sibling.get("size").and_then(Json::as_u64).or(lfs.as_ref().map(|(_, size, _)| *size))?;
            let blob_id = sibling.get("blobId").and_then(Json::as_str).unwrap_or_default().to_owned();
            Some(FileEntry { path, size, blob_id, lfs })
        })
        .collect()
}

/// Tree items under `dir` (`""` for the root): files and directories, direct children only unless
/// `recursive`. `None` when `dir` is not a directory of the repo.
pub fn tree(files: &[FileEntry], sha: &str, dir: &str, recursive: bool) -> Option<Vec<Json>> {
    let dir = dir.trim_matches('/');
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    let mut dirs = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for file in files {
        let Some(rest) = file.path.strip_prefix(&prefix) else { continue };
        let parts: Vec<&str> = rest.split('/').collect();
        // Directories between `dir` and the file: all of them when recursive, the first otherwise.
        let depth = if recursive { parts.len() - 1 } else { (parts.len() - 1).min(1) };
        for end in 1..=depth {
            dirs.insert(format!("{prefix}{}", parts[..end].join("/")));
        }
        if recursive || parts.len() == 1 {
            items.push(file.tree_item());
        }
    }
    if !dir.is_empty() && items.is_empty() && dirs.is_empty() {
        return None;
    }
    let folders = dirs.into_iter().map(|path| {
        let oid = crate::hex::encode(&sha1_digest(format!("{sha}:{path}").as_bytes()));
        json!({"type": "directory", "oid": oid, "size": 0, "path": path})
    });
    let mut all: Vec<Json> = folders.chain(items).collect();
    all.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Some(all)
}

/// Items for `paths-info`: the files and directories among `paths` that exist.
pub fn paths_info(files: &[FileEntry], sha: &str, paths: &[String]) -> Vec<Json> {
    let mut items = Vec::new();
    for path in paths {
        let path = path.trim_matches('/');
        if let Some(file) = files.iter().find(|file| file.path == path) {
            items.push(file.tree_item());
        } else if files.iter().any(|file| file.path.starts_with(&format!("{path}/"))) {
            let oid = crate::hex::encode(&sha1_digest(format!("{sha}:{path}").as_bytes()));
            items.push(json!({"type": "directory", "oid": oid, "size": 0, "path": path}));
        }
    }
    items
}

fn sha1_digest(bytes: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes).to_vec()
}

/// The `Content-Type` of a served file.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "json" => "application/json",
        "md" | "txt" | "yaml" | "yml" | "py" | "jinja" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A `Range` that cannot be satisfied (answered 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A single byte range of a file of `size` bytes: `Ok(None)` for no (or an ignorable) Range header.
pub fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|header| header.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None); // Multiple ranges: answer the whole file, as RFC 9110 allows.
    }
    let (start, end) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().map_err(|_| Unsatisfiable)?;
            if suffix == 0 || size == 0 {
                return Err(Unsatisfiable);
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (start, "") => (start.parse().map_err(|_| Unsatisfiable)?, size.saturating_sub(1)),
        (start, end) => (
            start.parse().map_err(|_| Unsatisfiable)?,
            end.parse::<u64>().map_err(|_| Unsatisfiable)?.min(size.saturating_sub(1)),
        ),
    };
    if start >= size || start > end {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-0"), 10), Ok(Some((0, 0))));
        assert_eq!(byte_range(Some("bytes=2-"), 10), Ok(Some((2, 9))));
        assert_eq!(byte_range(Some("bytes=0-100000"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Err(Unsatisfiable));
    }

    #[test]
    fn revisions() {
        let refs = json!({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": "abc"}],
                          "tags": [{"name": "v1.0", "ref": "refs/tags/v1.0", "targetCommit": "abc"},
                                   {"name": "v0.1", "ref": "refs/tags/v0.1", "targetCommit": "old"}]});
        for ok in ["main", "abc", "v1.0", "refs/tags/v1.0", "refs/heads/main"] {
            assert!(check_revision(ok, "abc", &refs).is_ok(), "{ok}");
        }
        let old = check_revision("v0.1", "abc", &refs).unwrap_err();
        assert_eq!(old.code, Some("RevisionNotFound"));
        assert!(old.message.contains("points at commit old"));
        assert!(check_revision("nope", "abc", &refs).is_err());
    }

    #[test]
    fn trees() {
        let file = |path: &str| FileEntry { path: path.into(), size: 1, blob_id: "b".into(), lfs: None };
        let files = vec![file("README.md"), file("onnx/model.onnx"), file("onnx/sub/x.bin")];
        let paths =
            |items: Vec<Json>| items.iter().map(|item| item["path"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(paths(tree(&files, "s", "", false).unwrap()), vec!["README.md", "onnx"]);
        assert_eq!(
            paths(tree(&files, "s", "", true).unwrap()),
            vec!["README.md", "onnx", "onnx/model.onnx", "onnx/sub", "onnx/sub/x.bin"]
        );
        assert_eq!(paths(tree(&files, "s", "onnx", false).unwrap()), vec!["onnx/model.onnx", "onnx/sub"]);
        assert!(tree(&files, "s", "missing", false).is_none());
    }
}
