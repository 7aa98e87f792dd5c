//! The behaviour suite every backend must pass: the semantics documented in the crate docs,
//! checked through the [`Remote`] trait only, so the same suite runs against the local folder,
//! the in-memory remote and real WebDAV servers.
//!
//! Everything happens under a unique prefix (`conformance-<random>/`) that is deleted at the
//! end, also when a check fails. What a backend does not promise (see [`Capabilities`]) is not
//! asserted: the stale If-Match and racing checks are skipped unless its compare-and-swap is
//! [`CasClass::Atomic`] (or, for the sequential ones, [`CasClass::WeakWindow`]), and the
//! precondition checks unless it honours preconditions at all. [`run`] says what was skipped.
//! The checks themselves are in `conformance/checks.rs`.
//!
//! ```
//! use deltasync_remote::{MemoryRemote, conformance};
//!
//! let report = conformance::run(&MemoryRemote::new()).unwrap();
//! assert!(report.skipped.is_empty());
//! ```

use crate::{Capabilities, CasClass, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError};
use std::sync::Barrier;
use std::time::Duration;

mod checks;

/// A check that failed: which one, what was expected and what the backend did.
#[derive(Debug, thiserror::Error)]
#[error("{remote}: conformance check '{check}' failed: {detail}")]
pub struct ConformanceFailure {
    /// The backend ([`Remote::describe`]).
    pub remote: String,
    /// The name of the failing check (`create-only`, `list`, …).
    pub check: &'static str,
    /// What was done, expected and seen.
    pub detail: String,
    /// The backend's error, when the check failed because an operation failed.
    #[source]
    pub source: Option<RemoteError>,
}

/// A check that was not asserted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The check.
    pub check: &'static str,
    /// Why it was skipped (what the capabilities do not promise).
    pub reason: String,
}

/// What [`run`] checked.
#[derive(Debug, Clone)]
pub struct ConformanceReport {
    /// The backend ([`Remote::describe`]).
    pub remote: String,
    /// The capabilities the backend declared, which decided what was asserted.
    pub capabilities: Capabilities,
    /// The checks that passed, in order.
    pub passed: Vec<&'static str>,
    /// The checks that were skipped.
    pub skipped: Vec<Skipped>,
    /// Observations that are not failures for this backend's class (a same-content ETag
    /// reused on a non-atomic server, …).
    pub notes: Vec<String>,
}

/// Runs every check on `remote`; `Ok` when all that its capabilities promise holds.
pub fn check_all(remote: &dyn Remote) -> Result<(), ConformanceFailure> {
    let report = run(remote)?;
    for skipped in &report.skipped {
        tracing::info!(check = skipped.check, reason = %skipped.reason, "conformance check skipped");
    }
    Ok(())
}

/// Runs every check on `remote` under a fresh `conformance-<random>` prefix and says what
/// passed and what was skipped.
pub fn run(remote: &dyn Remote) -> Result<ConformanceReport, ConformanceFailure> {
    run_in(remote, &format!("conformance-{:016x}", fastrand::u64(..)))
}

/// Runs every check on `remote` under `prefix` (a folder that should not exist yet; it is
/// deleted at the end).
pub fn run_in(remote: &dyn Remote, prefix: &str) -> Result<ConformanceReport, ConformanceFailure> {
    let mut suite = Suite {
        remote,
        prefix: prefix.to_string(),
        caps: remote.capabilities(),
        report: ConformanceReport {
            remote: remote.describe(),
            capabilities: remote.capabilities(),
            passed: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
        },
    };
    let outcome = suite.all();
    match outcome {
        Ok(()) => {
            suite.cleanup()?;
            Ok(suite.report)
        }
        Err(failure) => {
            if let Err(e) = remote.delete(prefix) {
                tracing::warn!(prefix, error = %e, "conformance: cannot clean up after a failure");
            }
            Err(failure)
        }
    }
}

type Check = Result<(), ConformanceFailure>;

struct Suite<'a> {
    remote: &'a dyn Remote,
    prefix: String,
    caps: Capabilities,
    report: ConformanceReport,
}

/// A short, readable rendering of what `get` answered.
fn show_get(answer: &GetResult) -> String {
    match answer {
        GetResult::NotFound => "NotFound".into(),
        GetResult::NotModified => "NotModified".into(),
        GetResult::Found { body, etag } => {
            format!(
                "Found({}, etag {})",
                show_body(body),
                show_etag(etag.as_ref())
            )
        }
    }
}

fn show_body(body: &[u8]) -> String {
    const MAX: usize = 48;
    let shown = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    let more = if body.len() > MAX { "…" } else { "" };
    format!("{} bytes {shown:?}{more}", body.len())
}

fn show_etag(etag: Option<&Etag>) -> String {
    etag.map_or_else(|| "none".into(), |e| format!("'{e}'"))
}

fn show_names(entries: &[ObjectInfo]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/", e.name)
            } else {
                format!("{} ({} B)", e.name, e.size)
            }
        })
        .collect();
    format!("[{}]", names.join(", "))
}

impl Suite<'_> {
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.prefix)
    }

    fn fail(&self, check: &'static str, detail: impl Into<String>) -> ConformanceFailure {
        ConformanceFailure {
            remote: self.report.remote.clone(),
            check,
            detail: detail.into(),
            source: None,
        }
    }

    /// Turns an unexpected error of `what` into a failure of `check`.
    fn ok<T>(
        &self,
        check: &'static str,
        what: &str,
        result: Result<T, RemoteError>,
    ) -> Result<T, ConformanceFailure> {
        result.map_err(|e| ConformanceFailure {
            remote: self.report.remote.clone(),
            check,
            detail: format!("{what}: expected success, got the error: {e}"),
            source: Some(e),
        })
    }

    fn skip(&mut self, check: &'static str, reason: impl Into<String>) {
        self.report.skipped.push(Skipped {
            check,
            reason: reason.into(),
        });
    }

    fn passed(&mut self, check: &'static str) {
        self.report.passed.push(check);
    }

    fn honours_preconditions(&self) -> bool {
        self.caps.cas != CasClass::None
    }

    fn cas_is_strict(&self) -> bool {
        matches!(self.caps.cas, CasClass::Atomic | CasClass::WeakWindow)
    }

    /// Waits out the weak-ETag window before an If-Match that should succeed.
    fn wait_weak_window(&self) {
        if self.caps.weak_window_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.caps.weak_window_ms));
        }
    }

    fn put(
        &self,
        check: &'static str,
        path: &str,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<Option<Etag>, ConformanceFailure> {
        let what = format!("put {path} ({mode:?}, {} bytes)", body.len());
        self.ok(check, &what, self.remote.put(path, body, mode))
    }

    /// A put that must fail with `PreconditionFailed`.
    fn put_refused(&self, check: &'static str, path: &str, body: &[u8], mode: &PutMode) -> Check {
        match self.remote.put(path, body, mode) {
            Err(e) if e.is_precondition_failed() => Ok(()),
            Err(e) => Err(ConformanceFailure {
                remote: self.report.remote.clone(),
                check,
                detail: format!(
                    "put {path} ({mode:?}): expected PreconditionFailed, got the error: {e}"
                ),
                source: Some(e),
            }),
            Ok(etag) => Err(self.fail(
                check,
                format!(
                    "put {path} ({mode:?}): expected PreconditionFailed, but it succeeded \
                     (etag {})",
                    show_etag(etag.as_ref())
                ),
            )),
        }
    }

    fn get(
        &self,
        check: &'static str,
        path: &str,
        inm: Option<&Etag>,
    ) -> Result<GetResult, ConformanceFailure> {
        self.ok(check, &format!("get {path}"), self.remote.get(path, inm))
    }

    /// A get that must find `expected`; returns the ETag, which must be there.
    fn get_body(
        &self,
        check: &'static str,
        path: &str,
        expected: &[u8],
    ) -> Result<Etag, ConformanceFailure> {
        match self.get(check, path, None)? {
            GetResult::Found {
                body,
                etag: Some(etag),
            } if body == expected => Ok(etag),
            GetResult::Found { body, etag: None } if body == expected => Err(self.fail(
                check,
                format!("get {path}: the body is right but there is no ETag"),
            )),
            other => Err(self.fail(
                check,
                format!(
                    "get {path}: expected Found({}), got {}",
                    show_body(expected),
                    show_get(&other)
                ),
            )),
        }
    }

    fn get_missing(&self, check: &'static str, path: &str) -> Check {
        match self.get(check, path, None)? {
            GetResult::NotFound => Ok(()),
            other => Err(self.fail(
                check,
                format!("get {path}: expected NotFound, got {}", show_get(&other)),
            )),
        }
    }

    fn list(&self, check: &'static str, dir: &str) -> Result<Vec<ObjectInfo>, ConformanceFailure> {
        self.ok(check, &format!("list {dir}"), self.remote.list(dir))
    }

    /// A put's returned ETag must be the one `get` then reports.
    fn same_etag(
        &self,
        check: &'static str,
        path: &str,
        from_put: Option<&Etag>,
        from_get: &Etag,
    ) -> Check {
        match from_put {
            Some(put) if put != from_get => Err(self.fail(
                check,
                format!("put {path} returned the ETag '{put}' but get then gives '{from_get}'"),
            )),
            _ => Ok(()),
        }
    }

    fn all(&mut self) -> Check {
        if let Some(first) = self.list("start", &self.prefix)?.first() {
            return Err(self.fail(
                "start",
                format!(
                    "the prefix {} is not empty (it holds '{}')",
                    self.prefix, first.name
                ),
            ));
        }
        self.get_missing_check()?;
        let e1 = self.create_only()?;
        self.conditional_get(&e1)?;
        let e3 = self.update_if_match(&e1)?;
        self.stale_if_match(&e1, &e3)?;
        self.if_match_missing()?;
        self.overwrite()?;
        self.bodies()?;
        self.nested_parents()?;
        self.list_and_head()?;
        self.delete()?;
        self.race_create_only()?;
        self.race_update_if_match()?;
        Ok(())
    }
}
