//! Mirror bundles: the whole mirror as one gzip-compressed file of JSON lines, to carry to an air-gapped
//! machine.
//!
//! Layout: a header line `{"format":"modelcat-hf-mirror","version":1}`, one line per repo (documents, the
//! sources mirroring it, and each file base64-encoded with its SHA-256), and a trailer
//! `{"end":{"repos":N,"sha256":…}}` whose digest covers every line before it. [`import`] reads the bundle
//! twice: it verifies everything first (format, every file digest, the count and the trailer digest, so a
//! truncated or altered bundle is refused) and only then writes, one transaction per batch of repos.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::hex::encode as hex;

use super::Mirror;
use super::store::{MirroredRepo, StoreError};

const FORMAT: &str = "modelcat-hf-mirror";
const VERSION: u64 = 1;
/// Repos written per transaction on import.
const IMPORT_BATCH: usize = 256;

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("not a valid mirror bundle: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    format: String,
    version: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RepoLine {
    repo_id: String,
    sha: String,
    last_modified: Option<String>,
    info: String,
    refs: String,
    sources: Vec<String>,
    files: Vec<FileLine>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileLine {
    path: String,
    sha256: String,
    content: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Trailer {
    end: End,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct End {
    repos: u64,
    sha256: String,
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default)]
pub struct BundleSummary {
    pub repos: u64,
    pub files: u64,
    /// Bytes of mirrored file content.
    pub bytes: u64,
}

/// Writes every mirrored repo to `path`; `on_repo` is called after each.
pub async fn export(mirror: &Mirror, path: &Path, on_repo: &dyn Fn(u64)) -> Result<BundleSummary, BundleError> {
    let io = |error| BundleError::Io { path: path.display().to_string(), error };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = Lines::new(GzEncoder::new(BufWriter::new(file), Compression::default()));
    out.line(&Header { format: FORMAT.to_owned(), version: VERSION }).map_err(io)?;
    let mut summary = BundleSummary::default();
    let mut after: Option<String> = None;
    loop {
        let page = mirror.store.export_page(after.as_deref()).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.repo_id.clone());
        for (repo, sources) in page {
            summary.repos += 1;
            summary.files += repo.files.len() as u64;
            summary.bytes += repo.files.iter().map(|(_, content)| content.len() as u64).sum::<u64>();
            let files = repo
                .files
                .iter()
                .map(|(path, content)| FileLine {
                    path: path.clone(),
                    sha256: crate::hex::sha256(content),
                    content: BASE64.encode(content),
                })
                .collect();
            let line = RepoLine {
                repo_id: repo.repo_id,
                sha: repo.sha,
                last_modified: repo.last_modified,
                info: repo.info,
                refs: repo.refs,
                sources,
                files,
            };
            out.line(&line).map_err(io)?;
            on_repo(summary.repos);
        }
    }
    let digest = hex(&out.digest.clone().finalize());
    out.line(&Trailer { end: End { repos: summary.repos, sha256: digest } }).map_err(io)?;
    out.writer.finish().and_then(|mut inner| inner.flush()).map_err(io)?;
    Ok(summary)
}

/// Verifies the bundle at `path`, then writes its repos into the mirror (replacing repos it already
/// holds); `on_repo` is called after each batch with the repos written so far.
pub async fn import(mirror: &Mirror, path: &Path, on_repo: &dyn Fn(u64)) -> Result<BundleSummary, BundleError> {
    let verify_path = path.to_owned();
    let expected = tokio::task::spawn_blocking(move || read(&verify_path, &mut |_| Ok(())))
        .await
        .map_err(|error| BundleError::Invalid(error.to_string()))??;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(IMPORT_BATCH);
    let read_path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        read(&read_path, &mut |repo| {
            sender.blocking_send(repo).map_err(|_| BundleError::Invalid("the import stopped".into()))
        })
    });
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut written = 0u64;
    while let Some(repo) = receiver.recv().await {
        batch.push(repo);
        if batch.len() == IMPORT_BATCH {
            written += write_batch(mirror, &mut batch).await?;
            on_repo(written);
        }
    }
    written += write_batch(mirror, &mut batch).await?;
    on_repo(written);
    reader.await.map_err(|error| BundleError::Invalid(error.to_string()))??;
    mirror.reload_listing().await?;
    Ok(expected)
}

/// Writes a batch: one transaction per source, the repo's first source writing its content.
async fn write_batch(mirror: &Mirror, batch: &mut Vec<(MirroredRepo, Vec<String>)>) -> Result<u64, StoreError> {
    let count = batch.len() as u64;
    let mut by_source: std::collections::BTreeMap<String, (Vec<MirroredRepo>, Vec<String>)> = Default::default();
    for (repo, sources) in batch.drain(..) {
        let mut sources = sources.into_iter();
        let first = sources.next().unwrap_or_else(|| "imported".to_owned());
        for other in sources {
            by_source.entry(other).or_default().1.push(repo.repo_id.clone());
        }
        by_source.entry(first).or_default().0.push(repo);
    }
    // Content first, then the memberships that refer to content written under another source.
    for (source, (repos, _)) in &by_source {
        mirror.store.put(source, repos, &[], None).await?;
    }
    for (source, (_, members)) in &by_source {
        mirror.store.put(source, &[], members, None).await?;
    }
    Ok(count)
}

/// Reads and verifies a bundle, handing each repo to `each`.
fn read(
    path: &Path,
    each: &mut dyn FnMut((MirroredRepo, Vec<String>)) -> Result<(), BundleError>,
) -> Result<BundleSummary, BundleError> {
    let io = |error| BundleError::Io { path: path.display().to_string(), error };
    let invalid = |why: String| BundleError::Invalid(why);
    let file = std::fs::File::open(path).map_err(io)?;
    let mut lines = BufReader::new(GzDecoder::new(BufReader::new(file))).lines();
    let mut digest = Sha256::new();
    let mut next = |digest: &mut Sha256| -> Result<Option<String>, BundleError> {
        match lines.next() {
            None => Ok(None),
            Some(Ok(line)) => {
                digest.update(line.as_bytes());
                digest.update(b"\n");
                Ok(Some(line))
            }
            Some(Err(error)) => Err(invalid(format!("cannot read it ({error}); is it truncated?"))),
        }
    };
    let header = next(&mut digest)?.ok_or_else(|| invalid("it is empty".into()))?;
    let header: Header = serde_json::from_str(&header).map_err(|error| invalid(format!("header: {error}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(invalid(format!(
            "format {} version {} is not {FORMAT} version {VERSION}",
            header.format, header.version
        )));
    }
    let mut summary = BundleSummary::default();
    loop {
        let before = digest.clone();
        let line = next(&mut digest)?.ok_or_else(|| invalid("it ends without its trailer; is it truncated?".into()))?;
        if let Ok(trailer) = serde_json::from_str::<Trailer>(&line) {
            let actual = hex(&before.finalize());
            if trailer.end.repos != summary.repos || trailer.end.sha256 != actual {
                return Err(invalid(format!(
                    "the trailer says {} repos with digest {}, the bundle holds {} with digest {actual}",
                    trailer.end.repos, trailer.end.sha256, summary.repos
                )));
            }
            return Ok(summary);
        }
        let repo: RepoLine =
            serde_json::from_str(&line).map_err(|error| invalid(format!("repo {}: {error}", summary.repos + 1)))?;
        let mut files = Vec::with_capacity(repo.files.len());
        for file in repo.files {
            let content = BASE64
                .decode(&file.content)
                .map_err(|error| invalid(format!("{}/{}: {error}", repo.repo_id, file.path)))?;
            if crate::hex::sha256(&content) != file.sha256 {
                return Err(invalid(format!("{}/{}: content does not match its SHA-256", repo.repo_id, file.path)));
            }
            summary.files += 1;
            summary.bytes += content.len() as u64;
            files.push((file.path, content));
        }
        summary.repos += 1;
        let mirrored = MirroredRepo {
            repo_id: repo.repo_id,
            sha: repo.sha,
            last_modified: repo.last_modified,
            info: repo.info,
            refs: repo.refs,
            files,
        };
        each((mirrored, repo.sources))?;
    }
}

/// A line writer that digests what it writes.
struct Lines<W: Write> {
    writer: W,
    digest: Sha256,
}

impl<W: Write> Lines<W> {
    fn new(writer: W) -> Self {
        Lines { writer, digest: Sha256::new() }
    }

    fn line(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.digest.update(&line);
        self.writer.write_all(&line)
    }
}
