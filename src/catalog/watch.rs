//! File watching for hot reload: directories, not files, so Kubernetes ConfigMap `..data` symlink swaps
//! and editors' write-to-temp-then-rename saves are both seen. Events are debounced, then reported as the
//! set of directories that changed; the reloader re-reads what lives there and skips files whose content
//! hash did not change.

use std::collections::HashSet;
use std::path::PathBuf;
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
                // Reads raise access events too; only changes matter (or reading would trigger reading).
                let dirs: HashSet<PathBuf> = events
                    .iter()
                    .filter(|event| !matches!(event.kind, notify::EventKind::Access(_)))
                    .flat_map(|event| event.paths.iter())
                    .filter_map(|path| path.parent().map(PathBuf::from))
                    .collect();
                if !dirs.is_empty() {
                    let _ = commands.send(Command::Changed(dirs.into_iter().collect()));
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
