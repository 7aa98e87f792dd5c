//! The in-memory backend, for tests, with fault injection.

use crate::counting::{Counters, Op};
use crate::{
    Capabilities, CasClass, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError,
    RequestStats, check_path,
};
use deltasync_meta::now_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Faults a [`MemoryRemote`] injects, to test that the protocol survives servers that break
/// their promises. [`Faults::default()`] injects none.
///
/// Rates are probabilities in `0.0..=1.0`, drawn from the remote's seeded RNG
/// ([`MemoryRemote::with_seed`]), so a run is reproducible for a given seed and sequence of
/// calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Probability that a `put` with [`PutMode::UpdateIfMatch`] and a stale ETag succeeds anyway,
    /// as on a server whose compare-and-swap is not atomic (two racing writers both win). An
    /// If-Match on a missing file still fails.
    pub stale_if_match_succeeds: f64,
    /// Preconditions are ignored: [`PutMode::CreateOnly`] and [`PutMode::UpdateIfMatch`] always
    /// write (nginx, `rclone serve webdav`).
    pub ignore_preconditions: bool,
    /// Probability that any operation fails with [`RemoteError::Transient`] before doing
    /// anything.
    pub transient_error_rate: f64,
    /// Probability that a successful `put` is applied but answered with
    /// [`RemoteError::Transient`] (the response was lost).
    pub lost_response_rate: f64,
    /// Probability that a `get` returns a truncated body (with the file's real ETag).
    pub truncate_body_rate: f64,
    /// A rewrite keeps the file's ETag when its modification time in whole seconds is
    /// unchanged — the time given to [`Remote::put_with_mtime`], else the current second —
    /// as Nextcloud's file cache does: a conditional GET then answers "not modified" over
    /// changed content, and a stale If-Match succeeds.
    pub reuse_etag_within_second: bool,
}

#[derive(Debug, Clone)]
struct File {
    body: Vec<u8>,
    etag: Etag,
    modified_ms: u64,
    /// The modification time in whole seconds (for [`Faults::reuse_etag_within_second`]).
    mtime_s: u64,
}

#[derive(Debug)]
struct State {
    files: BTreeMap<String, File>,
    writes: u64,
    faults: Faults,
    rng: fastrand::Rng,
    seed: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    counters: Counters,
}

/// An in-memory remote for tests: thread-safe, with atomic compare-and-swap unless told
/// otherwise by [`Faults`]. ETags are a per-remote write counter (`m1`, `m2`, …), so every write
/// gets a new ETag, even of the same content.
///
/// Cloning is cheap and the clones share the same files, faults and statistics, so a test can
/// keep a handle while the code under test owns another.
///
/// Folders are implicit: a folder exists while a file exists below it. Writing below a path
/// that is a file, or onto a path that is a folder, fails as on a file system.
#[derive(Debug, Clone)]
pub struct MemoryRemote {
    shared: Arc<Shared>,
}

impl Default for MemoryRemote {
    fn default() -> Self {
        MemoryRemote::new()
    }
}

impl MemoryRemote {
    /// A new empty remote without faults, its RNG seeded with 0.
    pub fn new() -> Self {
        MemoryRemote::with_seed(0)
    }

    /// A new empty remote without faults whose fault injection draws from an RNG seeded with
    /// `seed`.
    pub fn with_seed(seed: u64) -> Self {
        MemoryRemote {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    files: BTreeMap::new(),
                    writes: 0,
                    faults: Faults::default(),
                    rng: fastrand::Rng::with_seed(seed),
                    seed,
                }),
                counters: Counters::default(),
            }),
        }
    }

    /// Sets the faults to inject from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// The faults being injected.
    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    /// A copy of every file: path → content.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.state()
            .files
            .iter()
            .map(|(path, file)| (path.clone(), file.body.clone()))
            .collect()
    }

    /// Writes `bytes` at `path` unconditionally, bypassing faults and statistics, and returns
    /// the new ETag: for tests that corrupt or replace files behind the protocol's back.
    ///
    /// # Panics
    ///
    /// If `path` is not a valid remote path (a bug in the test).
    pub fn raw_put(&self, path: &str, bytes: &[u8]) -> Etag {
        if let Err(e) = check_path(path) {
            panic!("MemoryRemote::raw_put: {e}");
        }
        assert!(!path.is_empty(), "MemoryRemote::raw_put: empty path");
        self.state().write(path, bytes, None)
    }

    /// Deletes a file or folder unconditionally, bypassing faults and statistics; returns
    /// whether anything was there. The empty path deletes everything.
    pub fn raw_delete(&self, path: &str) -> bool {
        self.state().remove(path)
    }

    /// Requests and bytes served since creation or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> RequestStats {
        self.shared.counters.snapshot()
    }

    /// Sets the statistics back to zero.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the request, checks the path and draws a transient failure.
    fn begin(
        &self,
        op: Op,
        path: &str,
        allow_root: bool,
    ) -> Result<MutexGuard<'_, State>, RemoteError> {
        self.shared.counters.request(op);
        check_path(path)?;
        if path.is_empty() && !allow_root {
            return Err(crate::PathError {
                path: String::new(),
                reason: "empty path (the root) where a file path is needed",
            }
            .into());
        }
        let mut state = self.state();
        let rate = state.faults.transient_error_rate;
        if state.draw(rate) {
            tracing::debug!(?op, path, "memory remote: injected transient error");
            return Err(transient(op, path, "injected transient error"));
        }
        Ok(state)
    }
}

fn transient(op: Op, path: &str, detail: &str) -> RemoteError {
    RemoteError::Transient {
        what: format!("{op:?} {path}"),
        detail: detail.to_string(),
    }
}

impl State {
    /// Draws `true` with probability `rate`; draws nothing when `rate` is not positive, so that
    /// a fault that is off does not shift the sequence of the others.
    fn draw(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.f64() < rate
    }

    fn write(&mut self, path: &str, body: &[u8], mtime_s: Option<u64>) -> Etag {
        self.writes += 1;
        let now = now_ms();
        let mtime_s = mtime_s.unwrap_or(now / 1000);
        let etag = match self.files.get(path) {
            Some(old) if self.faults.reuse_etag_within_second && old.mtime_s == mtime_s => {
                old.etag.clone()
            }
            _ => Etag(format!("m{}", self.writes)),
        };
        self.files.insert(
            path.to_string(),
            File {
                body: body.to_vec(),
                etag: etag.clone(),
                modified_ms: now,
                mtime_s,
            },
        );
        etag
    }

    fn is_dir(&self, path: &str) -> bool {
        if path.is_empty() {
            return true;
        }
        let prefix = format!("{path}/");
        self.files
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// The first proper ancestor of `path` that is a file.
    fn file_ancestor<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|ancestor| self.files.contains_key(*ancestor))
    }

    fn remove(&mut self, path: &str) -> bool {
        let mut removed = self.files.remove(path).is_some();
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let below: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.files.remove(&p);
            removed = true;
        }
        removed
    }
}

impl Remote for MemoryRemote {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        let answer = self.get_inner(path, if_none_match);
        self.shared.counters.get_answer(&answer);
        answer
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        self.put_inner(path, body, mode, None)
    }

    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        self.put_inner(path, body, mode, Some(mtime))
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        let state = self.begin(Op::Head, path, false)?;
        if let Some(file) = state.files.get(path) {
            return Ok(Some(ObjectInfo {
                name: path.to_string(),
                size: len64(&file.body),
                etag: Some(file.etag.clone()),
                is_dir: false,
                modified_ms: Some(file.modified_ms),
            }));
        }
        if state.is_dir(path) {
            return Ok(Some(ObjectInfo {
                name: path.to_string(),
                size: 0,
                etag: None,
                is_dir: true,
                modified_ms: None,
            }));
        }
        Ok(None)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        let state = self.begin(Op::List, dir, true)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        for (path, file) in state
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
        {
            let rest = &path[prefix.len()..];
            match rest.split_once('/') {
                Some((sub, _)) => {
                    dirs.insert(sub.to_string());
                }
                None => files.push(ObjectInfo {
                    name: rest.to_string(),
                    size: len64(&file.body),
                    etag: Some(file.etag.clone()),
                    is_dir: false,
                    modified_ms: Some(file.modified_ms),
                }),
            }
        }
        files.extend(dirs.into_iter().map(|name| ObjectInfo {
            name,
            size: 0,
            etag: None,
            is_dir: true,
            modified_ms: None,
        }));
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        let mut state = self.begin(Op::Delete, path, false)?;
        state.remove(path);
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        let state = self.state();
        let faults = &state.faults;
        let cas = if faults.ignore_preconditions {
            CasClass::None
        } else if faults.stale_if_match_succeeds > 0.0 || faults.reuse_etag_within_second {
            CasClass::NonAtomic
        } else {
            CasClass::Atomic
        };
        Capabilities {
            cas,
            conditional_get: true,
            recursive_delete: true,
            weak_window_ms: 0,
            stale_etags: faults.reuse_etag_within_second,
            networked: false,
            retries_reads: false,
        }
    }

    fn describe(&self) -> String {
        format!("memory (seed {})", self.state().seed)
    }
}

impl MemoryRemote {
    fn put_inner(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        self.shared.counters.up(body.len());
        let mut state = self.begin(Op::Put, path, false)?;
        if let Some(file) = state.file_ancestor(path) {
            return Err(RemoteError::Permanent {
                what: format!("PUT {path}"),
                detail: format!("'{file}' is a file, not a folder"),
            });
        }
        if state.is_dir(path) {
            return Err(RemoteError::Permanent {
                what: format!("PUT {path}"),
                detail: "the path is a folder".into(),
            });
        }
        let failed = || RemoteError::PreconditionFailed {
            path: path.to_string(),
        };
        if !state.faults.ignore_preconditions {
            match mode {
                PutMode::CreateOnly => {
                    if state.files.contains_key(path) {
                        return Err(failed());
                    }
                }
                PutMode::UpdateIfMatch(expected) => match state.files.get(path) {
                    None => return Err(failed()),
                    Some(file) if file.etag == *expected => {}
                    Some(_) => {
                        let rate = state.faults.stale_if_match_succeeds;
                        if !state.draw(rate) {
                            return Err(failed());
                        }
                        tracing::debug!(path, "memory remote: injected stale If-Match success");
                    }
                },
                PutMode::Overwrite => {}
            }
        }
        let etag = state.write(path, body, mtime);
        let rate = state.faults.lost_response_rate;
        if state.draw(rate) {
            tracing::debug!(path, "memory remote: injected lost response");
            return Err(transient(
                Op::Put,
                path,
                "injected lost response (the write was applied)",
            ));
        }
        Ok(Some(etag))
    }

    fn get_inner(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
    ) -> Result<GetResult, RemoteError> {
        let mut state = self.begin(Op::Get, path, false)?;
        let Some(file) = state.files.get(path) else {
            if state.is_dir(path) {
                return Err(RemoteError::Permanent {
                    what: format!("GET {path}"),
                    detail: "the path is a folder".into(),
                });
            }
            return Ok(GetResult::NotFound);
        };
        if if_none_match == Some(&file.etag) {
            return Ok(GetResult::NotModified);
        }
        let mut body = file.body.clone();
        let etag = file.etag.clone();
        let rate = state.faults.truncate_body_rate;
        if !body.is_empty() && state.draw(rate) {
            let keep = state.rng.usize(..body.len());
            tracing::debug!(path, keep, "memory remote: injected truncated body");
            body.truncate(keep);
        }
        Ok(GetResult::Found {
            body,
            etag: Some(etag),
        })
    }
}

fn len64(body: &[u8]) -> u64 {
    u64::try_from(body.len()).unwrap_or(u64::MAX)
}
