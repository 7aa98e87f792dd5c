//! One watcher per workspace: the lock `.deltasync/watch.lock` (held for the process's
//! lifetime), the record `.deltasync/watch.json` that `deltasync status` reads, the
//! [`Recorder`] that keeps it and logs what the watcher did, and `status`'s view of it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deltasync_engine::{EngineError, STATE_DIR, SyncReport};
use deltasync_store::now_ms;
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

/// How often an idle watcher records that the remote still answers.
const CONTACT_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the record of a running watcher and logs what it did: syncs, errors, files held back
/// (each problem once).
pub struct Recorder {
    state_dir: PathBuf,
    record: Record,
    /// When the record was last written.
    saved_at: Option<Instant>,
}

impl Recorder {
    /// The record of this process, started now, written at once.
    pub fn start(state_dir: &Path, poll: Duration) -> Recorder {
        let mut r = Recorder {
            state_dir: state_dir.to_path_buf(),
            record: Record {
                pid: std::process::id(),
                started_ms: now_ms(),
                poll_interval_ms: poll.as_millis() as u64,
                ..Record::default()
            },
            saved_at: None,
        };
        r.save();
        r
    }

    /// A sync succeeded: logs what it did (when it changed something), its conflicts and the
    /// files it held back.
    pub fn synced(&mut self, r: &SyncReport, took: Duration) {
        let now = now_ms();
        let (mut up, mut down, mut merged) = (0, 0, 0);
        for c in r.collections.values() {
            up += c.up.new + c.up.updated + c.up.deleted;
            down += c.down.new + c.down.updated + c.down.deleted;
            merged += c.merged;
        }
        if let Some(seq) = r.committed {
            self.record.last_push_ms = Some(now);
            self.record.last_push_seq = Some(seq);
        }
        let pulled = down + merged > 0;
        if pulled {
            self.record.last_pull_ms = Some(now);
        }
        let changed = r.committed.is_some() || pulled;
        if changed {
            tracing::info!(
                up,
                down,
                merged,
                commit = r.committed,
                head = r.head,
                ms = took.as_millis() as u64,
                "synced"
            );
        }
        for c in &r.conflicts {
            tracing::warn!(
                conflict = %format!("{}/{} field '{}' (receipt {})", c.collection, c.entity_id, c.field.join("."), c.id),
                "both devices changed this field; the other value is kept in the receipt (deltasync conflicts)"
            );
        }
        self.problems(r.problems.clone());
        self.contact_ok();
        if changed {
            self.save();
        }
    }

    /// The remote answered.
    pub fn contact_ok(&mut self) {
        let had_error = self.record.last_error.take().is_some();
        let first = self.record.last_contact_ms.is_none();
        self.record.last_error_ms = None;
        self.record.last_contact_ms = Some(now_ms());
        if had_error {
            tracing::info!("the remote answers again");
        }
        // An idle poll changes only the time of the last contact: saved now and then.
        if had_error
            || first
            || self
                .saved_at
                .is_none_or(|t| t.elapsed() >= CONTACT_SAVE_INTERVAL)
        {
            self.save();
        }
    }

    /// A poll or a sync (`what`) failed; it is tried again after `retry_in`.
    pub fn failed(&mut self, what: &str, e: &EngineError, retry_in: Duration) {
        let mut text = chain_text(what, e);
        if let Some(hint) = crate::hints::engine(e) {
            text.push_str(&format!(" (hint: {hint})"));
        }
        let retry_in_ms = retry_in.as_millis() as u64;
        if e.is_temporary() {
            tracing::warn!(error = %text, retry_in_ms, "temporary failure");
        } else {
            tracing::error!(error = %text, retry_in_ms, "failed");
        }
        self.record.last_error = Some(text);
        self.record.last_error_ms = Some(now_ms());
        self.save();
    }

    /// The files held back now (each new one is logged once).
    pub fn problems(&mut self, mut problems: Vec<String>) {
        problems.sort();
        problems.dedup();
        for p in &problems {
            if !self.record.problems.contains(p) {
                tracing::warn!(problem = %p, "file held back: nothing is pushed for it until it is valid again");
            }
        }
        if problems != self.record.problems {
            self.record.problems = problems;
            self.save();
        }
    }

    /// The watcher stops.
    pub fn stopped(&mut self) {
        self.record.stopped_ms = Some(now_ms());
        self.save();
    }

    fn save(&mut self) {
        self.saved_at = Some(Instant::now());
        if let Err(e) = write(&self.state_dir, &self.record) {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the watcher's record");
        }
    }
}

/// `what: error: cause: …`, each cause once (library errors often repeat their source in
/// their own message), as the binary prints errors.
fn chain_text(what: &str, e: &dyn std::error::Error) -> String {
    let mut out = what.to_owned();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The watcher's state for `status --json`.
pub fn status_json(dir: &Path) -> serde_json::Value {
    let state_dir = dir.join(STATE_DIR);
    let running = is_running(&state_dir);
    let rec = read(&state_dir);
    serde_json::json!({ "running": running, "record": rec })
}

/// The watcher's last error and when it happened, if its record has one (cleared by a later
/// success).
pub fn last_error(dir: &Path) -> Option<(String, u64)> {
    let r = read(&dir.join(STATE_DIR))?;
    Some((r.last_error?, r.last_error_ms.unwrap_or(r.started_ms)))
}

/// Prints the watcher's state for `status`.
pub fn print_status(dir: &Path) {
    let state_dir = dir.join(STATE_DIR);
    let running = is_running(&state_dir);
    let rec = read(&state_dir);
    let ago = |ms: Option<u64>| match ms {
        Some(ms) => format!("{} s ago", ago_s(ms)),
        None => "never".to_string(),
    };
    match (&rec, running) {
        (Some(r), true) => println!(
            "watcher:  running (pid {}, for {} s, polling every {} ms)",
            r.pid,
            ago_s(r.started_ms),
            r.poll_interval_ms
        ),
        (None, true) => println!("watcher:  running"),
        (_, false) => println!("watcher:  not running"),
    }
    if let Some(r) = rec {
        println!(
            "  last push {}{}, last pull {}, last contact with the remote {}",
            ago(r.last_push_ms),
            r.last_push_seq
                .map(|s| format!(" (seq {s})"))
                .unwrap_or_default(),
            ago(r.last_pull_ms),
            ago(r.last_contact_ms)
        );
        if let Some(e) = &r.last_error {
            println!("  last error ({}): {e}", ago(r.last_error_ms));
        }
        for p in &r.problems {
            println!("  held back: {p}");
        }
    }
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

    #[test]
    fn the_record_follows_typed_reports_and_errors() {
        use deltasync_engine::CollectionReport;
        use deltasync_remote::RemoteError;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".deltasync");
        std::fs::create_dir_all(&state).unwrap();
        let mut r = Recorder::start(&state, Duration::from_secs(5));
        assert_eq!(read(&state).unwrap().poll_interval_ms, 5000);

        // Nothing happened: no push, no pull.
        r.synced(&SyncReport::default(), Duration::ZERO);
        let rec = read(&state).unwrap();
        assert!(rec.last_contact_ms.is_some());
        assert_eq!((rec.last_push_seq, rec.last_pull_ms), (None, None));

        let mut report = SyncReport {
            committed: Some(7),
            head: 7,
            problems: vec!["tasks/t9.json: invalid JSON".into()],
            ..SyncReport::default()
        };
        let mut c = CollectionReport::default();
        c.down.updated = 2;
        report.collections.insert("tasks".into(), c);
        r.synced(&report, Duration::from_millis(3));
        let rec = read(&state).unwrap();
        assert_eq!(rec.last_push_seq, Some(7));
        assert!(rec.last_pull_ms.is_some());
        assert_eq!(rec.problems, ["tasks/t9.json: invalid JSON"]);

        let e = EngineError::Remote(RemoteError::Transient {
            what: "GET meta.json".into(),
            detail: "connection reset".into(),
        });
        r.failed("polling", &e, Duration::from_secs(1));
        let rec = read(&state).unwrap();
        assert_eq!(
            rec.last_error.as_deref(),
            Some("polling: GET meta.json: temporary failure: connection reset")
        );
        r.contact_ok();
        assert_eq!(read(&state).unwrap().last_error, None);
        r.stopped();
        assert!(read(&state).unwrap().stopped_ms.is_some());
    }
}
