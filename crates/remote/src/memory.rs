//! The in-memory backend, for tests: its files, with the `Faulty` and `Counting` layers applied.

use crate::{
    Capabilities, CasClass, Counting, Etag, Faults, Faulty, GetResult, ObjectInfo, PutMode, Remote,
    RemoteError, RequestStats, check_path,
};
use deltasync_meta::now_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// [`Faults::reuse_etag_within_second`]: how this backend makes ETags.
    reuse_etag_within_second: bool,
}

/// The files, a backend that keeps every promise (with the ETags that
/// [`Faults::reuse_etag_within_second`] asks for); faults and counts are the layers'.
#[derive(Debug)]
struct Files {
    state: Mutex<State>,
    seed: u64,
}

/// The layers every [`MemoryRemote`] applies, once, over its files.
type Layers = Counting<Faulty<Files>>;

/// An in-memory remote for tests: thread-safe, with atomic compare-and-swap unless told
/// otherwise by [`Faults`]. ETags are a per-remote write counter (`m1`, `m2`, …), so every write
/// gets a new ETag, even of the same content.
///
/// It is its files under the two layers of this crate, applied once: [`Faulty`] (the faults
/// of [`set_faults`](Self::set_faults), drawn from the seed) and, outside it, [`Counting`]
/// ([`stats`](Self::stats): every request, injected failures too).
///
/// Cloning is cheap and the clones share the same files, faults and statistics, so a test can
/// keep a handle while the code under test owns another.
///
/// Folders are implicit: a folder exists while a file exists below it. Writing below a path
/// that is a file, or onto a path that is a folder, fails as on a file system.
#[derive(Debug, Clone)]
pub struct MemoryRemote {
    layers: Arc<Layers>,
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
        let files = Files {
            state: Mutex::new(State {
                files: BTreeMap::new(),
                writes: 0,
                reuse_etag_within_second: false,
            }),
            seed,
        };
        MemoryRemote {
            layers: Arc::new(Counting::new(Faulty::new(files, seed))),
        }
    }

    /// Sets the faults to inject from now on: the request faults to the [`Faulty`] layer,
    /// [`Faults::reuse_etag_within_second`] to the files.
    pub fn set_faults(&self, faults: Faults) {
        self.files_().state().reuse_etag_within_second = faults.reuse_etag_within_second;
        self.layers.inner().set_faults(faults);
    }

    /// The faults being injected.
    pub fn faults(&self) -> Faults {
        self.layers.inner().faults()
    }

    /// A copy of every file: path → content.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files_()
            .state()
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
        self.files_().state().write(path, bytes, None)
    }

    /// Deletes a file or folder unconditionally, bypassing faults and statistics; returns
    /// whether anything was there. The empty path deletes everything.
    pub fn raw_delete(&self, path: &str) -> bool {
        self.files_().state().remove(path)
    }

    /// Requests and bytes served since creation or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> RequestStats {
        self.layers.stats()
    }

    /// Sets the statistics back to zero.
    pub fn reset_stats(&self) {
        self.layers.reset();
    }

    fn files_(&self) -> &Files {
        self.layers.inner().inner()
    }
}

impl Remote for MemoryRemote {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        self.layers.get(path, if_none_match)
    }

    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        self.layers.get_max(path, if_none_match, max_len)
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        self.layers.put(path, body, mode)
    }

    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        self.layers.put_with_mtime(path, body, mode, mtime)
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        Remote::head(&*self.layers, path)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        Remote::list(&*self.layers, dir)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        Remote::delete(&*self.layers, path)
    }

    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        Remote::delete_many(&*self.layers, paths)
    }

    fn capabilities(&self) -> Capabilities {
        Remote::capabilities(&*self.layers)
    }

    fn describe(&self) -> String {
        Remote::describe(&*self.layers)
    }
}

impl Files {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks the path (`allow_root`: the root is a valid path for this request) and locks.
    fn begin(&self, path: &str, allow_root: bool) -> Result<MutexGuard<'_, State>, RemoteError> {
        check_path(path)?;
        if path.is_empty() && !allow_root {
            return Err(crate::PathError {
                path: String::new(),
                reason: "empty path (the root) where a file path is needed",
            }
            .into());
        }
        Ok(self.state())
    }
}

impl State {
    fn write(&mut self, path: &str, body: &[u8], mtime_s: Option<u64>) -> Etag {
        self.writes += 1;
        let now = now_ms();
        let mtime_s = mtime_s.unwrap_or(now / 1000);
        let etag = match self.files.get(path) {
            Some(old) if self.reuse_etag_within_second && old.mtime_s == mtime_s => {
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

impl Remote for Files {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        let state = self.begin(path, false)?;
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
        Ok(GetResult::Found {
            body: file.body.clone(),
            etag: Some(file.etag.clone()),
        })
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
        let state = self.begin(path, false)?;
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
        let state = self.begin(dir, true)?;
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
        self.begin(path, false)?.remove(path);
        Ok(())
    }

    /// Atomic compare-and-swap, unless a rewrite can keep its ETag
    /// ([`Faults::reuse_etag_within_second`]): then a stale If-Match can succeed.
    fn capabilities(&self) -> Capabilities {
        let reuse = self.state().reuse_etag_within_second;
        Capabilities {
            cas: if reuse {
                CasClass::NonAtomic
            } else {
                CasClass::Atomic
            },
            conditional_get: true,
            recursive_delete: true,
            weak_window_ms: 0,
            stale_etags: reuse,
            networked: false,
            retries_reads: false,
        }
    }

    fn describe(&self) -> String {
        format!("memory (seed {})", self.seed)
    }
}

impl Files {
    fn put_inner(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        let mut state = self.begin(path, false)?;
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
        match mode {
            PutMode::CreateOnly if state.files.contains_key(path) => return Err(failed()),
            PutMode::UpdateIfMatch(expected)
                if state
                    .files
                    .get(path)
                    .is_none_or(|file| file.etag != *expected) =>
            {
                return Err(failed());
            }
            _ => {}
        }
        Ok(Some(state.write(path, body, mtime)))
    }
}

fn len64(body: &[u8]) -> u64 {
    u64::try_from(body.len()).unwrap_or(u64::MAX)
}
