//! The process's own resource figures, read from `/proc/self` (Linux; elsewhere they are absent).
//!
//! `heap` is `RssAnon` (resident anonymous memory: the allocator's heap, thread stacks), `file` is
//! `RssFile` (resident file-backed pages: the binary, and the index and database files mapped into
//! memory, which the kernel can drop under pressure), `resident` is `VmRSS` (both, and shared memory),
//! `peak_resident` is `VmHWM` (the highest `VmRSS` so far), `open_fds` counts `/proc/self/fd`.

/// One reading; a figure the platform does not give is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    pub heap_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub peak_resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
}

impl Process {
    /// This process.
    pub fn read() -> Process {
        Process::of("self")
    }

    /// The process with this id (`self` for this one), as benchmarks read their child servers.
    pub fn of(pid: impl std::fmt::Display) -> Process {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Process {
            heap_bytes: status_bytes(&status, "RssAnon:"),
            file_bytes: status_bytes(&status, "RssFile:"),
            resident_bytes: status_bytes(&status, "VmRSS:"),
            peak_resident_bytes: status_bytes(&status, "VmHWM:"),
            open_fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|entries| entries.count() as u64),
        }
    }
}

/// A `kB` field of `/proc/*/status`, in bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tmodelcat\nRssAnon:\t   61440 kB\nRssFile:\t   19456 kB\n";
        assert_eq!(status_bytes(status, "RssAnon:"), Some(61440 * 1024));
        assert_eq!(status_bytes(status, "RssShmem:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let process = Process::read();
        assert!(process.heap_bytes.is_some_and(|bytes| bytes > 0), "{process:?}");
        assert!(process.open_fds.is_some_and(|fds| fds >= 3), "{process:?}");
        assert!(process.peak_resident_bytes >= process.resident_bytes, "{process:?}");
    }
}
