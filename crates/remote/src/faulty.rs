//! `Faulty`: a layer that injects the faults of servers that break their promises (for tests).

use crate::{
    Capabilities, CasClass, Etag, Forward, GetResult, ObjectInfo, PutMode, Remote, RemoteError,
    check_path,
};
use std::sync::{Mutex, MutexGuard};

/// Faults a [`Faulty`] layer injects (and so a [`MemoryRemote`](crate::MemoryRemote), which
/// applies one), to test that the protocol survives servers that break their promises.
/// [`Faults::default()`] injects none.
///
/// Rates are probabilities in `0.0..=1.0`, drawn from the layer's seeded RNG
/// ([`Faulty::new`], [`MemoryRemote::with_seed`](crate::MemoryRemote::with_seed)), so a run is
/// reproducible for a given seed and sequence of calls.
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
    ///
    /// This is how a backend makes its ETags, which no layer can change: the in-memory
    /// backend keeps it ([`MemoryRemote::set_faults`](crate::MemoryRemote::set_faults)); a
    /// [`Faulty`] layer over another backend ignores it (a WebDAV server has it or not, and
    /// says so in [`Capabilities::stale_etags`]).
    pub reuse_etag_within_second: bool,
}

/// A layer that injects [`Faults`] into the requests to the remote it wraps, drawing them from
/// a seeded RNG: transient errors before a request, lost answers after a write, truncated
/// bodies, stale If-Match successes, ignored preconditions. Its [`Capabilities`] say what is
/// left of the wrapped remote's promises (ignored preconditions: no compare-and-swap; stale
/// If-Match successes: not atomic). With [`Faults::default()`] it changes nothing.
///
/// A request with a path the remote refuses (escaping the root, the root where a file is
/// needed) is passed on without a draw, so that the inner remote's error comes back.
///
/// ```
/// use deltasync_remote::{Faults, Faulty, LocalFolder, PutMode, Remote};
///
/// let dir = tempfile::tempdir().unwrap();
/// let remote = Faulty::new(LocalFolder::new(dir.path()).unwrap(), 7);
/// remote.set_faults(Faults { transient_error_rate: 1.0, ..Faults::default() });
/// let e = remote.put("a.json", b"{}", &PutMode::CreateOnly).unwrap_err();
/// assert!(e.is_temporary());
/// remote.set_faults(Faults::default());
/// remote.put("a.json", b"{}", &PutMode::CreateOnly).unwrap();
/// ```
#[derive(Debug)]
pub struct Faulty<R> {
    inner: R,
    draws: Mutex<Draws>,
}

#[derive(Debug)]
struct Draws {
    faults: Faults,
    rng: fastrand::Rng,
}

impl Draws {
    /// Draws `true` with probability `rate`; draws nothing when `rate` is not positive, so that
    /// a fault that is off does not shift the sequence of the others.
    fn draw(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.f64() < rate
    }
}

/// What a request is, for messages.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Put,
    Head,
    List,
    Delete,
}

impl<R> Faulty<R> {
    /// Wraps `inner` without faults; the faults set later draw from an RNG seeded with `seed`.
    pub fn new(inner: R, seed: u64) -> Self {
        Faulty {
            inner,
            draws: Mutex::new(Draws {
                faults: Faults::default(),
                rng: fastrand::Rng::with_seed(seed),
            }),
        }
    }

    /// Sets the faults to inject from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.draws().faults = faults;
    }

    /// The faults being injected.
    pub fn faults(&self) -> Faults {
        self.draws().faults.clone()
    }

    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn draws(&self) -> MutexGuard<'_, Draws> {
        // Every change under the lock is one assignment or one draw: a poisoned lock is usable.
        self.draws
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Draws a transient failure for a request to `path`; none for a path the remote will
    /// refuse anyway (`allow_root`: the root is a valid path for this request).
    fn transient(&self, op: Op, path: &str, allow_root: bool) -> Result<(), RemoteError> {
        if check_path(path).is_err() || (path.is_empty() && !allow_root) {
            return Ok(());
        }
        let mut draws = self.draws();
        let rate = draws.faults.transient_error_rate;
        if draws.draw(rate) {
            tracing::debug!(?op, path, "faulty layer: injected transient error");
            return Err(transient(op, path, "injected transient error"));
        }
        Ok(())
    }
}

fn transient(op: Op, path: &str, detail: &str) -> RemoteError {
    RemoteError::Transient {
        what: format!("{op:?} {path}"),
        detail: detail.to_string(),
    }
}

impl<R: Remote> Forward for Faulty<R> {
    fn inner(&self) -> &dyn Remote {
        &self.inner
    }

    fn read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        self.transient(Op::Get, path, false)?;
        let mut answer = self.forward_read(path, if_none_match, max_len)?;
        if let GetResult::Found { body, .. } = &mut answer
            && !body.is_empty()
        {
            let mut draws = self.draws();
            let rate = draws.faults.truncate_body_rate;
            if draws.draw(rate) {
                let keep = draws.rng.usize(..body.len());
                tracing::debug!(path, keep, "faulty layer: injected truncated body");
                body.truncate(keep);
            }
        }
        Ok(answer)
    }

    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        self.transient(Op::Put, path, false)?;
        let faults = self.faults();
        let mode = if faults.ignore_preconditions {
            &PutMode::Overwrite
        } else {
            mode
        };
        let etag = match self.forward_write(path, body, mode, mtime) {
            Err(e)
                if e.is_precondition_failed()
                    && matches!(mode, PutMode::UpdateIfMatch(_))
                    && faults.stale_if_match_succeeds > 0.0 =>
            {
                // A stale ETag, unless the file is missing (an If-Match on it still fails).
                let exists = self.inner.head(path)?.is_some_and(|info| !info.is_dir);
                if !exists || !self.draws().draw(faults.stale_if_match_succeeds) {
                    return Err(e);
                }
                tracing::debug!(path, "faulty layer: injected stale If-Match success");
                self.forward_write(path, body, &PutMode::Overwrite, mtime)?
            }
            answer => answer?,
        };
        let mut draws = self.draws();
        let rate = draws.faults.lost_response_rate;
        if draws.draw(rate) {
            tracing::debug!(path, "faulty layer: injected lost response");
            return Err(transient(
                Op::Put,
                path,
                "injected lost response (the write was applied)",
            ));
        }
        Ok(etag)
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        self.transient(Op::Head, path, false)?;
        self.inner.head(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        self.transient(Op::List, dir, true)?;
        self.inner.list(dir)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.transient(Op::Delete, path, false)?;
        self.inner.delete(path)
    }

    /// One draw per path, as the paths are deleted one by one.
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        self.delete_each(paths)
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        let faults = self.faults();
        if faults.ignore_preconditions {
            capabilities.cas = CasClass::None;
        } else if faults.stale_if_match_succeeds > 0.0 && capabilities.cas != CasClass::None {
            capabilities.cas = CasClass::NonAtomic;
        }
        capabilities
    }
}
