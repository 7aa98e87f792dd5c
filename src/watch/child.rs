//! One sync, run as a child process (`deltasync -C ROOT sync --json`).
//!
//! A sync scans every local file and holds the collections in memory (about 4 KB per entity);
//! malloc keeps that memory after the sync is over, so a watcher that synced in-process would
//! stay as large as its largest sync for weeks. A child gives it all back when it exits, and
//! the watcher stays small. Crash safety is the engine's either way (the commit journal in
//! the shared local state); the child runs in its own process group, so a Ctrl-C in a terminal
//! reaches the watcher only, which waits for the sync to finish before it exits.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What a sync did, from its `--json` report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The commit made, if any.
    pub committed: Option<u64>,
    /// The remote head after the sync.
    pub head: u64,
    /// Entities pushed, pulled and merged.
    pub up: u64,
    /// Entities pulled.
    pub down: u64,
    /// Entities merged.
    pub merged: u64,
    /// Conflicts recorded: "collection/id field".
    pub conflicts: Vec<String>,
    /// Local files held back.
    pub problems: Vec<String>,
    /// Entities not written because the app was saving them.
    pub deferred: usize,
}

/// Why a sync failed, and whether trying again later can help.
#[derive(Debug)]
pub struct Failure {
    /// The child's error message.
    pub message: String,
    /// Exit code 3 (or killed by a signal): try again later.
    pub temporary: bool,
}

/// Runs `deltasync -C root sync --json` and reads its report.
pub fn sync(root: &Path) -> Result<Outcome, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure {
        message: format!("cannot find the deltasync binary: {e}"),
        temporary: false,
    })?;
    let out = Command::new(exe)
        .arg("-C")
        .arg(root)
        .args(["sync", "--json"])
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .map_err(|e| Failure {
            message: format!("cannot start a sync: {e}"),
            temporary: true,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The child's own log lines go to ours (its final error line is returned instead).
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("error: ") {
            continue;
        }
        if line.contains(" WARN ") || line.contains(" ERROR ") {
            tracing::warn!("sync: {line}");
        } else {
            tracing::debug!("sync: {line}");
        }
    }
    let code = out.status.code();
    let ok = [crate::exit::OK, crate::exit::ATTENTION].map(i32::from);
    match code {
        Some(c) if ok.contains(&c) => {}
        _ => {
            let message = stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("error: "))
                .map(|l| l.trim_start_matches("error: ").to_string())
                .unwrap_or_else(|| format!("sync exited with {}", out.status));
            return Err(Failure {
                message,
                temporary: code.is_none_or(|c| c == i32::from(crate::exit::TEMPORARY)),
            });
        }
    }
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| Failure {
        message: format!("unreadable sync report: {e}"),
        temporary: false,
    })?;
    Ok(outcome_of(&report))
}

fn outcome_of(r: &Value) -> Outcome {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let sum = |c: &Value| n(&c["new"]) + n(&c["updated"]) + n(&c["deleted"]);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Outcome {
        committed: r["committed"].as_u64(),
        head: n(&r["head"]),
        problems: strings(&r["problems"]),
        deferred: r["deferred"].as_array().map_or(0, Vec::len),
        ..Outcome::default()
    };
    if let Some(cs) = r["collections"].as_object() {
        for c in cs.values() {
            out.up += sum(&c["up"]);
            out.down += sum(&c["down"]);
            out.merged += n(&c["merged"]);
        }
    }
    if let Some(cs) = r["conflicts"].as_array() {
        for c in cs {
            out.conflicts.push(format!(
                "{}/{} field '{}' (receipt {})",
                c["collection"].as_str().unwrap_or("?"),
                c["entityId"].as_str().unwrap_or("?"),
                c["field"]
                    .as_array()
                    .map(|f| f
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("."))
                    .unwrap_or_default(),
                c["id"].as_str().unwrap_or("?"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sync_report_is_summed_up() {
        let o = outcome_of(&json!({
            "dry_run": false,
            "collections": {
                "tasks": {"up": {"new": 2, "updated": 1, "deleted": 0},
                          "down": {"new": 0, "updated": 3, "deleted": 1},
                          "unchanged": 5, "merged": 1, "held": 1},
                "notes": {"up": {"new": 1, "updated": 0, "deleted": 0},
                          "down": {"new": 0, "updated": 0, "deleted": 0},
                          "unchanged": 0, "merged": 0, "held": 0}
            },
            "committed": 7, "head": 7,
            "conflicts": [{"id": "r1", "collection": "tasks", "entityId": "t1", "field": ["a", "b"]}],
            "problems": ["tasks/t9.json: expected value at line 1 column 1"],
            "deferred": ["tasks/t2"], "retries": 0, "recommitted": 0
        }));
        assert_eq!(o.committed, Some(7));
        assert_eq!((o.up, o.down, o.merged, o.deferred), (4, 4, 1, 1));
        assert_eq!(o.conflicts, ["tasks/t1 field 'a.b' (receipt r1)"]);
        assert_eq!(o.problems.len(), 1);
    }
}
