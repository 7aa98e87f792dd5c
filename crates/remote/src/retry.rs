//! `Retry`: a layer that retries the temporary failures of idempotent requests (reads, heads,
//! listings, deletes) with a jittered, bounded backoff; writes pass through once.

use std::sync::Arc;

use crate::{Backoff, Capabilities, Etag, Forward, GetResult, ObjectInfo, Remote, RemoteError};

/// A layer that retries the idempotent requests of the remote it wraps — [`Remote::get`],
/// [`Remote::get_max`], [`Remote::head`], [`Remote::list`], [`Remote::delete`],
/// [`Remote::delete_many`] — after a temporary failure ([`RemoteError::is_temporary`]), waiting
/// a jittered exponential [`Backoff`] between tries (a fresh copy of the one it was made with,
/// for each request). A [`RemoteError::TimedOut`] is not retried: it has taken its whole
/// deadline already, and retried, a slow server would hold a sync for many deadlines.
///
/// Writes are passed on once, never retried here: whether a failed write may be repeated, and
/// what a 412 means after a lost answer, depends on what the write is for (a create-only
/// delta under a new name is read back and checked; a compare-and-swap of meta.json is read
/// back before anything else is tried), which only the store and the commit protocol know.
///
/// Apply it with [`Retry::over`], which adds it only where the remote does not retry its reads
/// itself ([`Capabilities::retries_reads`]: the HTTP backends do, honouring `Retry-After`), so
/// that one request is retried by one layer, never by two; the layer's own capabilities say
/// `retries_reads`, so applying it twice adds nothing. The store applies it to every remote it
/// is given (`deltasync_store::Store::new`).
///
/// ```
/// use std::sync::Arc;
/// use deltasync_remote::{Backoff, Faults, MemoryRemote, PutMode, Remote, Retry};
///
/// let memory = Arc::new(MemoryRemote::with_seed(1));
/// memory.put("a.json", b"{}", &PutMode::CreateOnly).unwrap();
/// memory.set_faults(Faults { transient_error_rate: 0.5, ..Faults::default() });
/// let remote = Retry::over(memory.clone(), Backoff::quick());
/// assert!(remote.capabilities().retries_reads);
/// // Half the requests fail, and each read is tried up to nine times.
/// for _ in 0..20 {
///     remote.get("a.json", None).unwrap();
/// }
/// // Applied again, it adds nothing.
/// let again = Retry::over(remote.clone(), Backoff::quick());
/// assert!(Arc::ptr_eq(&again, &remote));
/// ```
#[derive(Debug)]
pub struct Retry<R> {
    inner: R,
    backoff: Backoff,
}

impl<R> Retry<R> {
    /// Wraps `inner`, retrying with copies of `backoff`. This wraps whatever `inner` does; use
    /// [`Retry::over`] to retry only where nothing below does.
    pub fn new(inner: R, backoff: Backoff) -> Self {
        Retry { inner, backoff }
    }

    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Runs `op`, retrying its temporary failures (not timeouts) with a copy of the backoff.
    fn retrying<T>(
        &self,
        mut op: impl FnMut() -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let mut backoff = self.backoff.clone();
        loop {
            match op() {
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
}

impl Retry<Arc<dyn Remote>> {
    /// `remote` with its idempotent requests retried with `backoff`: under a `Retry` layer,
    /// unless it retries them itself already ([`Capabilities::retries_reads`]: an HTTP backend,
    /// or a remote under a `Retry` layer), in which case it is returned as it is.
    pub fn over(remote: Arc<dyn Remote>, backoff: Backoff) -> Arc<dyn Remote> {
        if remote.capabilities().retries_reads {
            remote
        } else {
            Arc::new(Retry::new(remote, backoff))
        }
    }
}

impl<R: Remote> Forward for Retry<R> {
    fn inner(&self) -> &dyn Remote {
        &self.inner
    }

    fn read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        self.retrying(|| self.forward_read(path, if_none_match, max_len))
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        self.retrying(|| self.inner.head(path))
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        self.retrying(|| self.inner.list(dir))
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.retrying(|| self.inner.delete(path))
    }

    /// The batch is retried whole: deleting a path that is gone already succeeds.
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        self.retrying(|| self.inner.delete_many(paths))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            retries_reads: true,
            ..self.inner.capabilities()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Faults, MemoryRemote, PutMode};

    fn failing() -> Arc<MemoryRemote> {
        let memory = Arc::new(MemoryRemote::with_seed(3));
        memory.put("a", b"x", &PutMode::CreateOnly).unwrap();
        memory.set_faults(Faults {
            transient_error_rate: 1.0,
            ..Faults::default()
        });
        memory
    }

    /// Each idempotent request is tried once and then once per retry the backoff allows.
    #[test]
    fn idempotent_requests_are_retried_within_the_backoff() {
        let memory = failing();
        memory.reset_stats();
        let remote = Retry::over(
            memory.clone(),
            Backoff::new(
                std::time::Duration::from_micros(10),
                std::time::Duration::from_micros(10),
                3,
            ),
        );
        assert!(remote.get("a", None).unwrap_err().is_temporary());
        assert!(remote.get_max("a", None, 10).is_err());
        assert!(remote.head("a").is_err());
        assert!(remote.list("").is_err());
        assert!(remote.delete("a").is_err());
        assert!(remote.delete_many(&["a".to_string()]).is_err());
        let stats = memory.stats();
        assert_eq!(stats.gets, 8, "{stats:?}");
        assert_eq!(stats.heads, 4, "{stats:?}");
        assert_eq!(stats.lists, 4, "{stats:?}");
        assert_eq!(stats.deletes, 8, "{stats:?}");
    }

    /// A write is sent once: only the store and the commit protocol know whether repeating it
    /// is safe.
    #[test]
    fn writes_are_not_retried() {
        let memory = failing();
        memory.reset_stats();
        let remote = Retry::over(memory.clone(), Backoff::quick());
        assert!(remote.put("b", b"y", &PutMode::Overwrite).is_err());
        assert!(
            remote
                .put_with_mtime("b", b"y", &PutMode::CreateOnly, 5)
                .is_err()
        );
        assert_eq!(memory.stats().puts, 2);
    }

    /// A remote that retries its reads itself gets no second layer.
    #[test]
    fn a_remote_that_retries_itself_is_left_alone() {
        let once = Retry::over(failing(), Backoff::quick());
        let twice = Retry::over(once.clone(), Backoff::quick());
        assert!(Arc::ptr_eq(&once, &twice));
    }
}
