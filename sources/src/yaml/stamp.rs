//! A file's stamp: what `stat` says about its identity and last change, as text for a [`SyncState`].
//!
//! Two equal stamps mean the file was not written in between, provided the first was taken long enough
//! after the file's last change: timestamps have a granularity (a few milliseconds, or seconds on some
//! file systems), so a write in the same tick as the previous one could leave them equal. A stamp is
//! therefore only given for a file whose last change is [`SETTLED`] old; any later write then carries a
//! newer time. (git's index guards against "racily clean" files the same way.) The change time (`ctime`)
//! cannot be set by tools such as `touch`, and a file replaced by a rename has another inode.
//!
//! [`SyncState`]: crate::SyncState

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How old a file's last change must be for its stamp to be trusted.
const SETTLED: Duration = Duration::from_secs(2);

/// The stamp of the file at `path` (following symlinks), or `None` when it cannot be read, changed too
/// recently to be trusted, or the platform has no inode numbers.
pub fn of(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    let settled = SystemTime::now().checked_sub(SETTLED)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(u64::try_from(metadata.ctime()).ok()?, u32::try_from(metadata.ctime_nsec()).ok()?);
        if metadata.modified().ok()? > settled || changed > settled {
            return None;
        }
        Some(format!(
            "{}:{}:{}:{}.{:09}:{}.{:09}",
            metadata.dev(),
            metadata.ino(),
            metadata.len(),
            metadata.mtime(),
            metadata.mtime_nsec(),
            metadata.ctime(),
            metadata.ctime_nsec()
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = (metadata, settled);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn a_fresh_change_has_no_stamp_and_a_settled_one_keeps_it_until_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.yaml");
        std::fs::write(&path, "models: []\n").unwrap();
        // Just written: its change time is now, so no stamp is trusted yet.
        assert_eq!(of(&path), None);
        aged(&path);
        // Setting the modification time changed the change time to now.
        assert_eq!(of(&path), None);
        if cfg!(not(unix)) {
            return;
        }
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        let stamp = of(&path).expect("a settled file has a stamp");
        std::fs::read(&path).unwrap();
        assert_eq!(of(&path).as_ref(), Some(&stamp), "reading changes nothing");
        std::fs::write(&path, "models: [] \n").unwrap();
        assert_eq!(of(&path), None, "written again: too fresh");
        aged(&path);
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        assert_ne!(of(&path), Some(stamp), "written again: another stamp");
    }
}
