//! `Forward`: the base of every `Remote` layer, passing each request on to the remote it wraps.

use crate::{Capabilities, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError};

/// A [`Remote`] layer: a wrapper that passes every request on to [`inner`](Forward::inner)
/// unless it overrides the request's method. Every `Forward` is a `Remote` (a blanket impl maps
/// the trait's methods onto these), so a layer writes only what it changes, as OpenDAL's
/// `LayeredAccess` does. The layers of this crate are [`Retry`](crate::Retry) (retries of
/// idempotent requests), [`Counting`](crate::Counting) (requests and bytes) and
/// [`Faulty`](crate::Faulty) (injected faults); tests build their own (a remote that freezes
/// meta.json, one that dies after k requests).
///
/// The hooks are one per kind of request, so that a layer sees each request once whichever
/// method the caller used: [`read`](Forward::read) is both [`Remote::get`] and
/// [`Remote::get_max`] (the store reads meta.json with a size limit), [`write`](Forward::write)
/// is both [`Remote::put`] and [`Remote::put_with_mtime`]. The defaults call the same method
/// of the inner remote, so a layer that overrides nothing changes nothing (WebDAV's streaming
/// size limit, Nextcloud's mtime and S3's batch delete reach the backend).
///
/// ```
/// use deltasync_remote::{Forward, GetResult, MemoryRemote, PutMode, Remote, RemoteError, Etag};
///
/// /// A server (or a caching proxy) that answers 304 to every read of meta.json.
/// struct Always304(MemoryRemote);
///
/// impl Forward for Always304 {
///     fn inner(&self) -> &dyn Remote {
///         &self.0
///     }
///     fn read(&self, path: &str, inm: Option<&Etag>, max: Option<u64>)
///         -> Result<GetResult, RemoteError> {
///         if path == "meta.json" {
///             return Ok(GetResult::NotModified);
///         }
///         self.forward_read(path, inm, max)
///     }
/// }
///
/// let remote = Always304(MemoryRemote::new());
/// Remote::put(&remote, "meta.json", b"{}", &PutMode::CreateOnly).unwrap();
/// assert_eq!(Remote::get(&remote, "meta.json", None).unwrap(), GetResult::NotModified);
/// ```
pub trait Forward: Send + Sync {
    /// The remote requests go on to.
    fn inner(&self) -> &dyn Remote;

    /// Every read: [`Remote::get`] (`max_len` `None`) and [`Remote::get_max`].
    fn read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        self.forward_read(path, if_none_match, max_len)
    }

    /// Every write: [`Remote::put`] (`mtime` `None`) and [`Remote::put_with_mtime`].
    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        self.forward_write(path, body, mode, mtime)
    }

    /// [`Remote::head`].
    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        self.inner().head(path)
    }

    /// [`Remote::list`].
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        self.inner().list(dir)
    }

    /// [`Remote::delete`].
    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.inner().delete(path)
    }

    /// [`Remote::delete_many`]. The default hands the whole batch to the inner remote, so a
    /// layer that overrides [`delete`](Forward::delete) and must see each path overrides this
    /// too (with [`delete_each`](Forward::delete_each)).
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        self.inner().delete_many(paths)
    }

    /// [`Remote::capabilities`]: a layer that changes what the remote does (ignores
    /// preconditions, reuses ETags) says so here.
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// [`Remote::describe`].
    fn describe(&self) -> String {
        self.inner().describe()
    }

    /// [`Remote::forget`]: a layer that keeps copies drops its own, then passes it on.
    fn forget(&self, path: &str) {
        self.inner().forget(path)
    }

    /// The read as the inner remote does it, for an override that passes a request on.
    fn forward_read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        match max_len {
            None => self.inner().get(path, if_none_match),
            Some(max_len) => self.inner().get_max(path, if_none_match, max_len),
        }
    }

    /// The write as the inner remote does it, for an override that passes a request on.
    fn forward_write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        match mtime {
            None => self.inner().put(path, body, mode),
            Some(mtime) => self.inner().put_with_mtime(path, body, mode, mtime),
        }
    }

    /// Deletes `paths` one by one through this layer's [`delete`](Forward::delete), stopping at
    /// the first error: a `delete_many` for layers that see every path.
    fn delete_each(&self, paths: &[String]) -> Result<(), RemoteError> {
        paths.iter().try_for_each(|p| Forward::delete(self, p))
    }
}

impl<F: Forward> Remote for F {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        self.read(path, if_none_match, None)
    }

    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        self.read(path, if_none_match, Some(max_len))
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        self.write(path, body, mode, None)
    }

    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        self.write(path, body, mode, Some(mtime))
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        Forward::head(self, path)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        Forward::list(self, dir)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        Forward::delete(self, path)
    }

    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        Forward::delete_many(self, paths)
    }

    fn capabilities(&self) -> Capabilities {
        Forward::capabilities(self)
    }

    fn describe(&self) -> String {
        Forward::describe(self)
    }

    fn forget(&self, path: &str) {
        Forward::forget(self, path)
    }
}
