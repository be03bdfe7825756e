//! Files only their owner may read: the bootstrap admin token, the audit checkpoint key.

use std::path::Path;

/// Writes `bytes` to a file only its owner can read, replacing an older one.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes.as_ref())?;
    file.sync_all()
}
