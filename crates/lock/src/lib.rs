//! The compare-and-swap commit of deltasync's `meta.json`.
//!
//! `meta.json` is rewritten only with `If-Match: <etag read>`. This crate holds the pieces of
//! that protocol that do not depend on the layout: a [`retry_transient`] wrapper for writes
//! that are safe to repeat, with a jittered, bounded [`Backoff`] (the one the HTTP backends and
//! the `Retry` layer retry with, re-exported from `deltasync-remote`), and [`cas_write`], the
//! conditional write that turns a 412 into [`CasError::Conflict`] and a lost response into a
//! question answered by reading the file back.
//!
//! Reads are not retried here: the remote given is expected to retry its idempotent requests
//! itself (`deltasync_remote::Retry`, which the store applies, or an HTTP backend's own
//! retries), so that one read is retried by one layer.
//!
//! ```
//! use deltasync_lock::{cas_write, Backoff, CasError};
//! use deltasync_remote::{MemoryRemote, PutMode, Remote};
//!
//! let remote = MemoryRemote::new();
//! let first = remote.put("meta.json", b"1", &PutMode::CreateOnly).unwrap().unwrap();
//! let second = cas_write(&remote, "meta.json", b"2", Some(&first), None, &mut Backoff::quick()).unwrap();
//! // A writer still holding the first etag loses.
//! let err = cas_write(&remote, "meta.json", b"3", Some(&first), None, &mut Backoff::quick()).unwrap_err();
//! assert!(matches!(err, CasError::Conflict));
//! assert_ne!(Some(second), None);
//! ```
#![forbid(unsafe_code)]

mod lease;
pub use lease::{LEASE_FILE, Lease, LeaseConfig, LeaseError, LeaseInfo, break_lease, read_lease};

/// The jittered, bounded backoff of the commit protocol's retries: the one in
/// [`deltasync_remote`], which the HTTP backends' own retries use too.
pub use deltasync_remote::Backoff;
use deltasync_remote::{Etag, GetResult, PutMode, Remote, RemoteError};

/// Runs `op`, retrying temporary failures with `backoff`. Only for operations that are safe to
/// repeat: a create-only write of immutable content under a new name, an overwrite of our own
/// lease. (Reads, heads, listings and deletes are retried by the remote's `Retry` layer.)
pub fn retry_transient<T>(
    backoff: &mut Backoff,
    mut op: impl FnMut() -> Result<T, RemoteError>,
) -> Result<T, RemoteError> {
    loop {
        match op() {
            // A timeout has taken its whole deadline already: retried, a slow server would hold
            // a sync for many deadlines. The next sync tries again.
            Err(e) if e.is_temporary() && !e.is_timeout() => {
                tracing::debug!(error = %e, "temporary failure, retrying");
                if !backoff.wait() {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// Errors of [`cas_write`].
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// Someone else wrote the file first: read it again, merge, retry.
    #[error("someone else committed first")]
    Conflict,
    /// A write's answer was lost and the file now holds something else: our write may or may
    /// not have happened before someone else's. Only a later read can tell (does the file
    /// refer to what we wrote?); nothing written for this attempt may be cleaned up.
    #[error("the outcome of the write is unknown (its answer was lost and the file changed since)")]
    Unknown,
    /// The remote failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Writes `body` to `path` if its ETag is still `expected` (`None`: only if it does not exist),
/// with the modification time `mtime` (Unix seconds) where the backend takes one
/// ([`Remote::put_with_mtime`]).
///
/// A temporary failure is retried, but a PUT whose response was lost may have been applied: so
/// before each retry the file is read back. If it holds exactly `body`, the write happened and
/// its ETag is returned; if it holds something else, someone else wrote and the answer is
/// [`CasError::Conflict`]. A write refused because another writer held the file's lock (423)
/// wrote nothing: that is a conflict too. `backoff` paces the writes; the reads back are
/// retried by `remote` itself (its `Retry` layer, or an HTTP backend's own retries).
pub fn cas_write(
    remote: &dyn Remote,
    path: &str,
    body: &[u8],
    expected: Option<&Etag>,
    mtime: Option<u64>,
    backoff: &mut Backoff,
) -> Result<Etag, CasError> {
    let mode = match expected {
        Some(e) => PutMode::UpdateIfMatch(e.clone()),
        None => PutMode::CreateOnly,
    };
    // Set once a PUT failed in a way that may hide its success.
    let mut uncertain = false;
    let lost = |uncertain: bool| {
        if uncertain {
            CasError::Unknown
        } else {
            CasError::Conflict
        }
    };
    loop {
        let put = match mtime {
            Some(mtime) => remote.put_with_mtime(path, body, &mode, mtime),
            None => remote.put(path, body, &mode),
        };
        match put {
            Ok(Some(etag)) => return Ok(etag),
            Ok(None) => {
                // Written, but the server gave no ETag: learn it by reading back. If the file
                // already holds something else, our write happened and was overwritten.
                return read_back(remote, path, body)?.ok_or(CasError::Unknown);
            }
            Err(e) if e.is_precondition_failed() || e.is_locked() => return Err(lost(uncertain)),
            Err(e) if e.is_temporary() => {
                tracing::debug!(error = %e, path, "commit write failed temporarily");
                uncertain = true;
                if !backoff.wait() {
                    return Err(CasError::Unknown);
                }
                match read_limited(remote, path, body)? {
                    GetResult::Found { body: now, etag } if now == body => {
                        if let Some(etag) = etag {
                            return Ok(etag);
                        }
                        return read_back(remote, path, body)?.ok_or(CasError::Unknown);
                    }
                    GetResult::Found { etag, .. } => {
                        if etag.as_ref() != expected {
                            return Err(CasError::Unknown);
                        }
                        // Unchanged: the write did not happen; try again.
                    }
                    GetResult::NotFound if expected.is_none() => {}
                    GetResult::NotFound | GetResult::NotModified => return Err(CasError::Unknown),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The most a file written by compare-and-swap is read back (the store's meta.json limit), or
/// the length written if that is more.
const READ_BACK_LIMIT: u64 = 64 << 20;

/// Reads `path` with a size limit: what it may hold is the body written, or what another writer
/// put there (which may be longer).
fn read_limited(remote: &dyn Remote, path: &str, body: &[u8]) -> Result<GetResult, RemoteError> {
    remote.get_max(path, None, READ_BACK_LIMIT.max(body.len() as u64))
}

/// Reads `path` back: `Some(etag)` when it holds exactly `body`.
fn read_back(remote: &dyn Remote, path: &str, body: &[u8]) -> Result<Option<Etag>, RemoteError> {
    match read_limited(remote, path, body)? {
        GetResult::Found { body: now, etag } if now == body => Ok(Some(
            etag.unwrap_or_else(|| Etag(deltasync_meta::sha256_hex(body))),
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_remote::{Faults, MemoryRemote};

    #[test]
    fn stale_etag_conflicts() {
        let r = MemoryRemote::new();
        let e1 = cas_write(&r, "m", b"a", None, None, &mut Backoff::quick()).unwrap();
        let _e2 = cas_write(&r, "m", b"b", Some(&e1), None, &mut Backoff::quick()).unwrap();
        assert!(matches!(
            cas_write(&r, "m", b"c", Some(&e1), None, &mut Backoff::quick()),
            Err(CasError::Conflict)
        ));
        assert!(matches!(
            cas_write(&r, "m", b"c", None, None, &mut Backoff::quick()),
            Err(CasError::Conflict)
        ));
    }

    #[test]
    fn lost_response_is_resolved_by_reading_back() {
        let r = MemoryRemote::with_seed(7);
        let e1 = cas_write(&r, "m", b"a", None, None, &mut Backoff::quick()).unwrap();
        r.set_faults(Faults {
            lost_response_rate: 1.0,
            ..Faults::default()
        });
        // Every PUT is applied but answered with an error: the read-back must find our body.
        let got = cas_write(&r, "m", b"b", Some(&e1), None, &mut Backoff::quick());
        r.set_faults(Faults::default());
        let etag = got.unwrap();
        match r.get("m", None).unwrap() {
            GetResult::Found { body, etag: now } => {
                assert_eq!(body, b"b");
                assert_eq!(now, Some(etag));
            }
            other => panic!("{other:?}"),
        }
    }
}
