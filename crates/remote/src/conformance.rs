//! The behaviour suite every backend must pass: the semantics documented in the crate docs,
//! checked through the [`Remote`] trait only, so the same suite runs against the local folder,
//! the in-memory remote and real WebDAV servers.
//!
//! Everything happens under a unique prefix (`conformance-<random>/`) that is deleted at the
//! end, also when a check fails. What a backend does not promise (see [`Capabilities`]) is not
//! asserted: the stale If-Match and racing checks are skipped unless its compare-and-swap is
//! [`CasClass::Atomic`] (or, for the sequential ones, [`CasClass::WeakWindow`]), and the
//! precondition checks unless it honours preconditions at all. [`run`] says what was skipped.
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

    fn get_missing_check(&mut self) -> Check {
        const C: &str = "get-missing";
        let missing = self.path("missing.json");
        self.get_missing(C, &missing)?;
        let bogus = Etag("deltasync-conformance-bogus".into());
        match self.get(C, &missing, Some(&bogus))? {
            GetResult::NotFound => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {missing} with If-None-Match: expected NotFound, got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        if let Some(info) = self.ok(C, &format!("head {missing}"), self.remote.head(&missing))? {
            return Err(self.fail(C, format!("head {missing}: expected None, got {info:?}")));
        }
        let dir = self.path("missing-dir");
        let entries = self.list(C, &dir)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} (missing): expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.passed(C);
        Ok(())
    }

    /// Creates `a.json` = "first"; returns its ETag.
    fn create_only(&mut self) -> Result<Etag, ConformanceFailure> {
        const C: &str = "create-only";
        let a = self.path("a.json");
        let put = self.put(C, &a, b"first", &PutMode::CreateOnly)?;
        let etag = self.get_body(C, &a, b"first")?;
        self.same_etag(C, &a, put.as_ref(), &etag)?;
        if self.honours_preconditions() {
            self.put_refused(C, &a, b"second", &PutMode::CreateOnly)?;
            let after = self.get_body(C, &a, b"first")?;
            if after != etag {
                return Err(self.fail(
                    C,
                    format!("a refused create changed the ETag of {a} from '{etag}' to '{after}'"),
                ));
            }
            self.passed(C);
        } else {
            self.skip(
                C,
                "preconditions are ignored (cas: none): only the first create checked",
            );
        }
        Ok(etag)
    }

    fn conditional_get(&mut self, e1: &Etag) -> Check {
        const C: &str = "conditional-get";
        if !self.caps.conditional_get {
            self.skip(C, "conditional_get is false");
            return Ok(());
        }
        let a = self.path("a.json");
        match self.get(C, &a, Some(e1))? {
            GetResult::NotModified => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {a} with If-None-Match '{e1}' (current): expected NotModified, got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        let bogus = Etag("deltasync-conformance-bogus".into());
        match self.get(C, &a, Some(&bogus))? {
            GetResult::Found { body, .. } if body == b"first" => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {a} with a different If-None-Match: expected Found(\"first\"), \
                         got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        self.passed(C);
        Ok(())
    }

    /// Updates `a.json` twice with If-Match ("second", then "third" with the ETag the first
    /// update returned); returns the last ETag.
    fn update_if_match(&mut self, e1: &Etag) -> Result<Etag, ConformanceFailure> {
        const C: &str = "update-if-match";
        let a = self.path("a.json");
        self.wait_weak_window();
        let put = self.put(C, &a, b"second", &PutMode::UpdateIfMatch(e1.clone()))?;
        let e2 = self.get_body(C, &a, b"second")?;
        self.same_etag(C, &a, put.as_ref(), &e2)?;
        if e2 == *e1 {
            let seen = format!("the ETag of {a} stayed '{e1}' although its content changed");
            if self.cas_is_strict() {
                return Err(self.fail(C, seen));
            }
            self.report.notes.push(seen);
        }
        // The ETag a put returns must be usable for the next If-Match.
        let usable = put.unwrap_or_else(|| e2.clone());
        self.wait_weak_window();
        let put = self.put(C, &a, b"third", &PutMode::UpdateIfMatch(usable))?;
        let e3 = self.get_body(C, &a, b"third")?;
        self.same_etag(C, &a, put.as_ref(), &e3)?;
        self.passed(C);
        Ok(e3)
    }

    fn stale_if_match(&mut self, e1: &Etag, e3: &Etag) -> Check {
        const C: &str = "stale-if-match";
        if !self.cas_is_strict() {
            self.skip(
                C,
                format!("cas is {}: a stale If-Match may succeed", self.caps.cas),
            );
            return Ok(());
        }
        let a = self.path("a.json");
        if e1 == e3 {
            return Err(self.fail(C, format!("the first and third ETags of {a} are equal")));
        }
        self.put_refused(C, &a, b"stale", &PutMode::UpdateIfMatch(e1.clone()))?;
        let now = self.get_body(C, &a, b"third")?;
        if now != *e3 {
            return Err(self.fail(
                C,
                format!("a refused If-Match changed the ETag of {a} from '{e3}' to '{now}'"),
            ));
        }
        self.passed(C);
        Ok(())
    }

    fn if_match_missing(&mut self) -> Check {
        const C: &str = "if-match-missing";
        if !self.honours_preconditions() {
            self.skip(C, "preconditions are ignored (cas: none)");
            return Ok(());
        }
        let path = self.path("never-created.json");
        let bogus = Etag("deltasync-conformance-bogus".into());
        self.put_refused(C, &path, b"x", &PutMode::UpdateIfMatch(bogus))?;
        self.get_missing(C, &path)?;
        self.passed(C);
        Ok(())
    }

    fn overwrite(&mut self) -> Check {
        const C: &str = "overwrite";
        let a = self.path("a.json");
        let put = self.put(C, &a, b"fourth", &PutMode::Overwrite)?;
        let etag = self.get_body(C, &a, b"fourth")?;
        self.same_etag(C, &a, put.as_ref(), &etag)?;
        let o = self.path("o.json");
        self.put(C, &o, b"new", &PutMode::Overwrite)?;
        self.get_body(C, &o, b"new")?;
        self.passed(C);
        Ok(())
    }

    fn bodies(&mut self) -> Check {
        const C: &str = "bodies";
        let empty = self.path("empty.bin");
        self.put(C, &empty, b"", &PutMode::CreateOnly)?;
        self.get_body(C, &empty, b"")?;
        let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let bin = self.path("binary.bin");
        self.put(C, &bin, &binary, &PutMode::CreateOnly)?;
        self.get_body(C, &bin, &binary)?;
        self.passed(C);
        Ok(())
    }

    fn nested_parents(&mut self) -> Check {
        const C: &str = "nested-parents";
        let deep = self.path("n1/n2/n3.json");
        self.put(C, &deep, b"deep", &PutMode::CreateOnly)?;
        self.get_body(C, &deep, b"deep")?;
        let n1 = self.path("n1");
        let entries = self.list(C, &n1)?;
        if !matches!(entries.as_slice(), [e] if e.name == "n2" && e.is_dir) {
            return Err(self.fail(
                C,
                format!("list {n1}: expected [n2/], got {}", show_names(&entries)),
            ));
        }
        let n2 = self.path("n1/n2");
        let entries = self.list(C, &n2)?;
        if !matches!(entries.as_slice(), [e] if e.name == "n3.json" && !e.is_dir && e.size == 4) {
            return Err(self.fail(
                C,
                format!(
                    "list {n2}: expected [n3.json (4 B)], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.passed(C);
        Ok(())
    }

    fn list_and_head(&mut self) -> Check {
        const C: &str = "list";
        // A name with a space, a plus and non-ASCII letters, to catch encoding mistakes.
        let files: [(&str, &[u8]); 3] = [
            ("f1.json", b"abc"),
            ("f2.json", b"hello"),
            ("s p+\u{e9}\u{4e2d}.json", b"odd name"),
        ];
        let mut etags = Vec::new();
        for (name, body) in files {
            let path = self.path(&format!("l/{name}"));
            self.put(C, &path, body, &PutMode::CreateOnly)?;
            etags.push(self.get_body(C, &path, body)?);
        }
        self.put(C, &self.path("l/sub/g.json"), b"g", &PutMode::CreateOnly)?;
        let dir = self.path("l");
        let mut entries = self.list(C, &dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut expected: Vec<(String, bool, u64)> = files
            .iter()
            .map(|(name, body)| (name.to_string(), false, body.len() as u64))
            .chain([("sub".to_string(), true, 0)])
            .collect();
        expected.sort();
        let seen: Vec<(String, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.clone(), e.is_dir, if e.is_dir { 0 } else { e.size }))
            .collect();
        if seen != expected {
            return Err(self.fail(
                C,
                format!(
                    "list {dir}: expected [f1.json (3 B), f2.json (5 B), {} (8 B), sub/], got {}",
                    files[2].0,
                    show_names(&entries)
                ),
            ));
        }
        for entry in &entries {
            if let Some(i) = files.iter().position(|(name, _)| *name == entry.name)
                && let Some(etag) = &entry.etag
                && *etag != etags[i]
            {
                return Err(self.fail(
                    C,
                    format!(
                        "list {dir}: {} has the ETag '{etag}' but get gives '{}'",
                        entry.name, etags[i]
                    ),
                ));
            }
        }
        let top = self.list(C, &self.prefix)?;
        for (name, is_dir) in [("a.json", false), ("l", true), ("n1", true)] {
            if !top.iter().any(|e| e.name == name && e.is_dir == is_dir) {
                return Err(self.fail(
                    C,
                    format!(
                        "list {}: expected {name}{} among the entries, got {}",
                        self.prefix,
                        if is_dir { "/" } else { "" },
                        show_names(&top)
                    ),
                ));
            }
        }
        self.passed(C);

        const H: &str = "head";
        let f1 = self.path("l/f1.json");
        let info = self.ok(H, &format!("head {f1}"), self.remote.head(&f1))?;
        let good = info.as_ref().is_some_and(|i| {
            i.name == f1
                && i.size == 3
                && !i.is_dir
                && i.etag.as_ref().is_none_or(|e| *e == etags[0])
        });
        if !good {
            return Err(self.fail(
                H,
                format!(
                    "head {f1}: expected name '{f1}', 3 bytes, a file, ETag '{}' if any; got {info:?}",
                    etags[0]
                ),
            ));
        }
        if let Some(info) = self.ok(H, &format!("head {dir}"), self.remote.head(&dir))?
            && !info.is_dir
        {
            return Err(self.fail(H, format!("head {dir} (a folder): got a file: {info:?}")));
        }
        self.passed(H);
        Ok(())
    }

    fn delete(&mut self) -> Check {
        const C: &str = "delete";
        let f1 = self.path("l/f1.json");
        self.ok(C, &format!("delete {f1}"), self.remote.delete(&f1))?;
        self.get_missing(C, &f1)?;
        if let Some(info) = self.ok(C, &format!("head {f1}"), self.remote.head(&f1))? {
            return Err(self.fail(
                C,
                format!("head {f1} after delete: expected None, got {info:?}"),
            ));
        }
        let dir = self.path("l");
        let entries = self.list(C, &dir)?;
        if entries.iter().any(|e| e.name == "f1.json") {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} after deleting f1.json: got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.ok(
            C,
            &format!("delete {f1} (missing)"),
            self.remote.delete(&f1),
        )?;
        self.ok(
            C,
            &format!("delete {dir} (a folder)"),
            self.remote.delete(&dir),
        )?;
        let entries = self.list(C, &dir)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} after deleting it: expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.get_missing(C, &self.path("l/f2.json"))?;
        self.get_missing(C, &self.path("l/sub/g.json"))?;
        let top = self.list(C, &self.prefix)?;
        if top.iter().any(|e| e.name == "l") {
            return Err(self.fail(
                C,
                format!(
                    "list {} after deleting l/: got {}",
                    self.prefix,
                    show_names(&top)
                ),
            ));
        }
        let never = self.path("never-was/deep.json");
        self.ok(
            C,
            &format!("delete {never} (missing)"),
            self.remote.delete(&never),
        )?;
        self.passed(C);
        Ok(())
    }

    /// Runs `put` from `RACERS` threads at once; returns which succeeded (by index) and the
    /// first unexpected error.
    fn race(
        &self,
        check: &'static str,
        path: &str,
        mode: &PutMode,
    ) -> Result<Vec<usize>, ConformanceFailure> {
        const RACERS: usize = 4;
        let barrier = Barrier::new(RACERS);
        let results: Vec<Result<Option<Etag>, RemoteError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..RACERS)
                .map(|i| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        self.remote.put(path, format!("racer {i}").as_bytes(), mode)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut winners = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(_) => winners.push(i),
                Err(e) if e.is_precondition_failed() => {}
                Err(e) => {
                    return Err(ConformanceFailure {
                        remote: self.report.remote.clone(),
                        check,
                        detail: format!("racing put {path} ({mode:?}), racer {i}: {e}"),
                        source: Some(e),
                    });
                }
            }
        }
        if winners.len() != 1 {
            return Err(self.fail(
                check,
                format!(
                    "{RACERS} racing puts of {path} ({mode:?}): expected exactly one winner, \
                     got {winners:?}"
                ),
            ));
        }
        let expected = format!("racer {}", winners[0]);
        self.get_body(check, path, expected.as_bytes())?;
        Ok(winners)
    }

    fn race_create_only(&mut self) -> Check {
        const C: &str = "race-create-only";
        if self.caps.cas != CasClass::Atomic {
            self.skip(
                C,
                format!("cas is {}: racing writers may both win", self.caps.cas),
            );
            return Ok(());
        }
        self.race(C, &self.path("race-create.json"), &PutMode::CreateOnly)?;
        self.passed(C);
        Ok(())
    }

    fn race_update_if_match(&mut self) -> Check {
        const C: &str = "race-update-if-match";
        if self.caps.cas != CasClass::Atomic {
            self.skip(
                C,
                format!("cas is {}: racing writers may both win", self.caps.cas),
            );
            return Ok(());
        }
        let path = self.path("race-update.json");
        let put = self.put(C, &path, b"base", &PutMode::CreateOnly)?;
        let etag = self.get_body(C, &path, b"base")?;
        self.same_etag(C, &path, put.as_ref(), &etag)?;
        self.race(C, &path, &PutMode::UpdateIfMatch(etag))?;
        self.passed(C);
        Ok(())
    }

    fn cleanup(&mut self) -> Check {
        const C: &str = "cleanup";
        let prefix = self.prefix.clone();
        self.ok(C, &format!("delete {prefix}"), self.remote.delete(&prefix))?;
        let entries = self.list(C, &prefix)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {prefix} after deleting it: expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.get_missing(C, &self.path("a.json"))?;
        self.passed(C);
        Ok(())
    }
}
