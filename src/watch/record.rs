//! One watcher per workspace: the lock `.deltasync/watch.lock` (held for the process's
//! lifetime) and the record `.deltasync/watch.json` that `deltasync status` reads.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The lock file, inside the workspace's state folder.
pub const LOCK_FILE: &str = "watch.lock";
/// The record file, inside the workspace's state folder.
pub const RECORD_FILE: &str = "watch.json";

/// What a watcher tells `status`: who it is and how things went. Times are Unix ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The watcher's process id.
    pub pid: u32,
    /// When it started.
    pub started_ms: u64,
    /// Its poll interval.
    pub poll_interval_ms: u64,
    /// When it last pushed a commit.
    pub last_push_ms: Option<u64>,
    /// The seq of that commit.
    pub last_push_seq: Option<u64>,
    /// When it last wrote changes from other devices into the local files.
    pub last_pull_ms: Option<u64>,
    /// When it last asked the remote (a poll or a sync) successfully.
    pub last_contact_ms: Option<u64>,
    /// The last error, until a later success.
    pub last_error: Option<String>,
    /// When that error happened.
    pub last_error_ms: Option<u64>,
    /// Local files held back right now (unreadable, invalid JSON): nothing is pushed for them.
    pub problems: Vec<String>,
    /// When it stopped (a signal); `None` while it runs or after a crash.
    pub stopped_ms: Option<u64>,
}

/// The lock of a running watcher; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct WatchLock {
    _file: File,
}

/// Takes the workspace's watcher lock, or says which process holds it.
pub fn acquire(state_dir: &Path) -> Result<WatchLock> {
    fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let started = read(state_dir)
                .filter(|r| holder.parse::<u32>().ok() == Some(r.pid))
                .map(|r| format!(", started {} s ago", ago_s(r.started_ms)))
                .unwrap_or_default();
            bail!(
                "another watcher is running on this workspace (pid {}{started}): {} is locked",
                if holder.is_empty() { "unknown" } else { holder },
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(WatchLock { _file: file })
}

/// Whether a watcher holds the lock now (a probe that takes and releases it when free).
pub fn is_running(state_dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(state_dir.join(LOCK_FILE))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

/// Reads the record; `None` when there is none (or it cannot be read).
pub fn read(state_dir: &Path) -> Option<Record> {
    let bytes = fs::read(state_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the record atomically (temporary file, rename).
pub fn write(state_dir: &Path, record: &Record) -> Result<()> {
    let path: PathBuf = state_dir.join(RECORD_FILE);
    let tmp = state_dir.join(format!(".{RECORD_FILE}.tmp-{}", std::process::id()));
    fs::write(&tmp, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Seconds since `ms` (Unix ms).
pub fn ago_s(ms: u64) -> u64 {
    deltasync_store::now_ms().saturating_sub(ms) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_the_first_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".deltasync");
        assert!(!is_running(&state));
        let lock = acquire(&state).unwrap();
        write(
            &state,
            &Record {
                pid: std::process::id(),
                started_ms: deltasync_store::now_ms(),
                ..Record::default()
            },
        )
        .unwrap();
        assert!(is_running(&state));
        let err = acquire(&state).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(lock);
        assert!(!is_running(&state));
        let _again = acquire(&state).unwrap();
        assert_eq!(read(&state).unwrap().pid, std::process::id());
    }
}
