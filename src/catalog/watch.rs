//! File watching for hot reload: directories, not files, so Kubernetes ConfigMap `..data` symlink swaps
//! and editors' write-to-temp-then-rename saves are both seen. Events are debounced, then reported as the
//! paths that changed; the reloader re-reads the files they concern ([`touches`]) and skips those whose
//! content did not change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::reload::Command;

pub struct Watcher {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watched: HashSet<PathBuf>,
}

impl Watcher {
    pub fn start(debounce: Duration, commands: mpsc::UnboundedSender<Command>) -> notify::Result<Watcher> {
        let debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| match result {
            Ok(events) => {
                // Reads raise access events too; only changes matter (or reading would trigger reading). A
                // read's access-time update still comes as a metadata change: the file's stamp then shows
                // it unchanged without reading it.
                let paths: HashSet<PathBuf> = events
                    .iter()
                    .filter(|event| !matches!(event.kind, notify::EventKind::Access(_)))
                    .flat_map(|event| event.paths.iter().cloned())
                    .collect();
                if !paths.is_empty() {
                    let _ = commands.send(Command::Changed(paths.into_iter().collect()));
                }
            }
            Err(errors) => errors.iter().for_each(|error| tracing::warn!(%error, "file watcher error")),
        })?;
        Ok(Watcher { debouncer, watched: HashSet::new() })
    }

    /// Watches exactly these directories (those that exist; a missing one is retried on the next call).
    pub fn watch_dirs(&mut self, dirs: HashSet<PathBuf>) {
        for gone in self.watched.difference(&dirs).cloned().collect::<Vec<_>>() {
            let _ = self.debouncer.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for dir in dirs {
            if self.watched.contains(&dir) {
                continue;
            }
            let target = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.clone() };
            match self.debouncer.watch(&target, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(error) => tracing::warn!(dir = %target.display(), %error, "cannot watch directory"),
            }
        }
    }
}

/// Whether a change of the `changed` paths concerns `file`: the file itself, its directory, or an entry
/// beside it whose name starts with `..` (Kubernetes swaps a mounted ConfigMap's files at once by renaming
/// its `..data` symlink, and the file's own path sees no event). Events in the same directory about other
/// files do not concern it, so an edit of one catalog re-reads only that one.
pub fn touches(changed: &HashSet<PathBuf>, file: &Path) -> bool {
    // The watcher reports paths under the directory it was given; a file in the working directory is
    // watched as `.`, so its events read `./name`.
    let plain = |path: &Path| path.strip_prefix(".").map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf());
    let file = plain(file);
    let dir = file.parent().unwrap_or(Path::new(""));
    changed.iter().map(|path| plain(path)).any(|path| {
        path == file
            || path == dir
            || (path.parent() == Some(dir)
                && path.file_name().is_some_and(|name| name.as_encoded_bytes().starts_with(b"..")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(paths: &[&str]) -> HashSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_file_is_touched_by_its_own_events_its_directory_and_configmap_swaps() {
        let file = Path::new("/etc/catalogs/models.yaml");
        assert!(touches(&changed(&["/etc/catalogs/models.yaml"]), file));
        // An editor's save renames a temporary file over it: the rename names both.
        assert!(touches(&changed(&["/etc/catalogs/.models.yaml.tmp", "/etc/catalogs/models.yaml"]), file));
        assert!(touches(&changed(&["/etc/catalogs"]), file));
        assert!(touches(&changed(&["/etc/catalogs/..data", "/etc/catalogs/..2026_12_07_23_59_59.1"]), file));
        assert!(!touches(&changed(&["/etc/catalogs/other.yaml"]), file));
        assert!(!touches(&changed(&["/etc/catalogs/.models.yaml.tmp"]), file));
        assert!(!touches(&changed(&["/etc/other/models.yaml", "/etc/other/..data"]), file));
    }

    #[test]
    fn a_file_in_the_working_directory_matches_the_events_of_dot() {
        assert!(touches(&changed(&["./models.yaml"]), Path::new("models.yaml")));
        assert!(touches(&changed(&["./..data"]), Path::new("models.yaml")));
        assert!(!touches(&changed(&["./other.yaml"]), Path::new("models.yaml")));
    }
}
