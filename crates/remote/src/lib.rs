//! The storage trait of deltasync and its backends.
//!
//! A [`Remote`] is a dumb file store addressed by relative, `/`-separated paths
//! (`meta.json`, `deltas/g0/abc.json`). It offers conditional reads and writes by ETag, which is
//! all the commit protocol needs. Backends:
//!
//! - [`LocalFolder`]: a folder on this machine (the embedded default; a path or a `file://` URL);
//! - [`MemoryRemote`]: in memory, for tests, with the fault injection of the [`Faulty`] layer
//!   ([`Faults`]) and the counts of the [`Counting`] layer applied;
//! - [`WebDav`]: any WebDAV server, Nextcloud first. Its password is a [`Secret`] (never
//!   printed), read from an environment variable, a command, or the system keyring
//!   ([`Keyring`]).
//! - [`S3`]: an S3 bucket or a prefix of one (`s3://BUCKET/PREFIX`): AWS, MinIO, R2, Ceph,
//!   with [`S3Options`] and [`S3Credentials`].
//!
//! Cross-cutting behaviour wraps the trait as a layer, applied once, rather than living inside
//! a backend: a layer implements [`Forward`] (every request goes on to the remote it wraps
//! unless it overrides that request) and so is a [`Remote`]. [`Retry`] retries the temporary
//! failures of idempotent requests, [`Counting`] counts requests and bytes, [`Faulty`] injects
//! [`Faults`]. What a backend does itself, and what a layer leaves of it, is in
//! [`Capabilities`] (an HTTP backend retries its own reads, honouring `Retry-After`:
//! `retries_reads`, and [`Retry::over`] then adds no second layer).
//!
//! Semantics every backend keeps (tested by the shared behaviour suite):
//!
//! - `get` of a missing path is [`GetResult::NotFound`], never an error; with `if_none_match`
//!   equal to the current ETag it is [`GetResult::NotModified`] and transfers no body.
//! - `put` creates missing parent folders. [`PutMode::CreateOnly`] fails with
//!   [`RemoteError::PreconditionFailed`] when the path exists; [`PutMode::UpdateIfMatch`] fails
//!   with it when the current ETag differs (or the path is missing). A successful put returns
//!   the new ETag when the backend has one.
//! - `list` of a missing folder is empty. `delete` of a missing path succeeds; deleting a
//!   folder deletes what is in it.
//! - Whether a backend keeps its promises is in [`Capabilities`]; the commit protocol never
//!   relies on more than the capabilities say.
//!
//! ```
//! use deltasync_remote::{MemoryRemote, PutMode, Remote, GetResult};
//!
//! let remote = MemoryRemote::new();
//! let etag = remote.put("meta.json", b"{}", &PutMode::CreateOnly).unwrap().unwrap();
//! assert!(matches!(remote.get("meta.json", Some(&etag)).unwrap(), GetResult::NotModified));
//! assert!(remote.put("meta.json", b"{}", &PutMode::CreateOnly).unwrap_err().is_precondition_failed());
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

mod backoff;
mod cached;
pub mod conformance;
mod counting;
mod faulty;
mod http;
mod layer;
mod local;
mod memory;
mod path;
mod probe;
mod retry;
mod s3;
mod webdav;

pub use backoff::Backoff;
pub use cached::Cached;
pub use counting::{Counting, RequestStats};
pub use faulty::{Faults, Faulty};
pub use http::HttpPolicy;
pub use layer::Forward;
pub use local::LocalFolder;
pub use memory::MemoryRemote;
pub use path::{PathError, check_path};
pub use probe::{ProbeReport, probe, probe_s3, probe_webdav};
pub use retry::Retry;
pub use s3::{S3, S3Credentials, S3Options};
pub use webdav::{AppPassword, LoginFlow};
pub use webdav::{DEFAULT_KEYRING_TIMEOUT, KEYRING_SERVICE, Keyring};
pub use webdav::{PASSWORD_ENV, Secret, SecretError};
pub use webdav::{WebDav, WebDavOptions};

/// The most a folder's listing may hold, in bytes of the server's answer: 256 MiB (WebDAV's
/// `PROPFIND` answer, one file's properties included; S3's list pages together). A listing has
/// no size the format gives it, but it has a bound: a deltas folder holds what meta.json (at
/// most 64 MiB, some 250 bytes per delta) names, about 270,000 files, and each takes well under
/// 1 KiB of a listing. A larger answer is refused with [`RemoteError::ListingTooLarge`] once
/// that many bytes have come, never read to its end.
pub const MAX_LISTING_BYTES: u64 = 256 << 20;

/// An entity tag: an opaque version of a remote file, normalised (no quotes, no `W/`, no
/// `-gzip` suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Etag(pub String);

impl Etag {
    /// Normalises an ETag as servers send it: strips `W/`, quotes and a `-gzip` (or
    /// `;gzip`) suffix that some servers add when compressing.
    pub fn normalise(raw: &str) -> Etag {
        let mut s = raw.trim();
        if let Some(rest) = s.strip_prefix("W/") {
            s = rest;
        }
        let s = s.trim_matches('"');
        let s = s
            .strip_suffix("-gzip")
            .or_else(|| s.strip_suffix(";gzip"))
            .unwrap_or(s);
        Etag(s.to_string())
    }

    /// The ETag as a quoted header value.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer of [`Remote::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetResult {
    /// The path does not exist.
    NotFound,
    /// The ETag given as `if_none_match` is still current; no body was transferred.
    NotModified,
    /// The body and its ETag (if the backend has one).
    Found {
        /// The file's bytes.
        body: Vec<u8>,
        /// The file's ETag.
        etag: Option<Etag>,
    },
}

/// How [`Remote::put`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Only if nothing exists at the path (`If-None-Match: *`).
    CreateOnly,
    /// Only if the current ETag is this one (`If-Match`).
    UpdateIfMatch(Etag),
    /// Unconditionally.
    Overwrite,
}

/// What [`Remote::head`] and [`Remote::list`] tell of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name (in `list`: the last path segment; in `head`: the path asked for).
    pub name: String,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// ETag, when the backend gives one.
    pub etag: Option<Etag>,
    /// Whether this is a folder.
    pub is_dir: bool,
    /// Last modification, ms since the Unix epoch, when known.
    pub modified_ms: Option<u64>,
}

/// How far a backend's compare-and-swap can be trusted; found by probing (`doctor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasClass {
    /// Stale If-Match and `If-None-Match: *` on an existing file give 412, racing writers have
    /// exactly one winner, ETags change on every write.
    Atomic,
    /// Atomic, but ETags are weak for a short window after a write, during which every
    /// If-Match fails (Apache): wait the window out.
    WeakWindow,
    /// Preconditions are checked but not atomically, or a same-second rewrite keeps its ETag:
    /// a stale If-Match can succeed. Commits must be confirmed and re-made if lost.
    NonAtomic,
    /// Preconditions are ignored: a lease lock and read-back are needed.
    None,
}

impl fmt::Display for CasClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CasClass::Atomic => "atomic",
            CasClass::WeakWindow => "weak-window",
            CasClass::NonAtomic => "non-atomic",
            CasClass::None => "none",
        })
    }
}

/// What a backend promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// How far compare-and-swap can be trusted.
    pub cas: CasClass,
    /// Whether `get` answers `NotModified` to a current `if_none_match`.
    pub conditional_get: bool,
    /// Whether a delete of a folder removes its contents in one request.
    pub recursive_delete: bool,
    /// Milliseconds to wait after a write before an If-Match on it can succeed (Apache's weak
    /// ETag window); 0 elsewhere.
    pub weak_window_ms: u64,
    /// Whether a file can keep its ETag while its content changes (Nextcloud and wsgidav
    /// within one second, nginx): a `NotModified` answer is then no proof that nothing
    /// changed, and readers must read unconditionally now and then. True for every WebDAV
    /// server, whatever its probe said; false for folders and the in-memory remote.
    pub stale_etags: bool,
    /// Whether requests cross a network (WebDAV, S3): a round trip costs milliseconds and an
    /// answer can be lost, so the layers above wait longer between commit rounds and keep
    /// trying for longer. False for folders and the in-memory remote.
    pub networked: bool,
    /// Whether the remote retries transient failures of its idempotent requests (reads, heads,
    /// listings, deletes) itself: an HTTP backend within its deadlines (`HttpPolicy`), or any
    /// remote under a [`Retry`] layer. [`Retry::over`] then adds no layer, so that one read is
    /// never tried (backend retries × layer retries) times. Writes are never retried by a
    /// backend or a layer: only the store knows whether repeating one is safe.
    pub retries_reads: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            cas: CasClass::Atomic,
            conditional_get: true,
            recursive_delete: true,
            weak_window_ms: 0,
            stale_etags: false,
            networked: false,
            retries_reads: false,
        }
    }
}

/// Errors of remote operations. [`RemoteError::is_temporary`] says whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A precondition (If-Match, If-None-Match: *) failed: someone else wrote first.
    #[error("{path}: precondition failed (someone else wrote it first)")]
    PreconditionFailed {
        /// The path written.
        path: String,
    },
    /// The path is not acceptable (escapes the root, empty segment, …).
    #[error(transparent)]
    BadPath(#[from] PathError),
    /// Credentials refused (401/403). Never contains the password.
    #[error(
        "{url}: access denied for user '{user}' ({status}): check the user name and app password"
    )]
    Auth {
        /// The URL, without credentials.
        url: String,
        /// The user name.
        user: String,
        /// The HTTP status.
        status: u16,
    },
    /// The server refused the credentials or the request (S3: SignatureDoesNotMatch,
    /// InvalidAccessKeyId, RequestTimeTooSkewed, AccessDenied); `detail` says what to check.
    /// Never contains a secret.
    #[error("{what}: access denied: {detail}")]
    Denied {
        /// What was being done (method and address, never a signed URL).
        what: String,
        /// What the server said, and what to check.
        detail: String,
    },
    /// A write refused because another request holds the file's lock (HTTP 423): nothing was
    /// written. Temporary.
    #[error("{what}: the file is locked by another writer (HTTP 423); try again")]
    Locked {
        /// What was being done (method and path).
        what: String,
    },
    /// A request that did not finish within its deadline (connect, or the whole answer).
    /// Temporary, but not retried at once: it has already taken the whole deadline.
    #[error("{what}: {detail}")]
    TimedOut {
        /// What was being done (method and path).
        what: String,
        /// What happened, with the deadlines.
        detail: String,
    },
    /// A failure that may pass: connection reset, 423, 429, 5xx.
    #[error("{what}: temporary failure: {detail}")]
    Transient {
        /// What was being done (method and path).
        what: String,
        /// What happened.
        detail: String,
    },
    /// A failure a retry will not fix (other 4xx, TLS, unsupported method …).
    #[error("{what}: {detail}")]
    Permanent {
        /// What was being done.
        what: String,
        /// What happened.
        detail: String,
    },
    /// A file is larger than the format allows it to be (a meta.json over its limit, a delta or
    /// snapshot larger than meta.json says): damaged, or a server sending something else.
    #[error(
        "{path} is larger than it can be ({limit} bytes at most): the remote is damaged or the \
         server answers with something else"
    )]
    TooLarge {
        /// The remote path.
        path: String,
        /// The most it may hold.
        limit: u64,
    },
    /// A folder's listing is larger than [`MAX_LISTING_BYTES`]: more than any folder of a
    /// deltasync remote holds (meta.json, itself limited, names every file a folder needs), so
    /// a server answering with something else, or a folder filled by something else. Not read
    /// to its end; a retry will not help.
    #[error(
        "the listing of '{dir}' is larger than {limit} bytes, more than a deltasync folder \
         holds: the server answers with something else, or something else filled the folder"
    )]
    ListingTooLarge {
        /// The remote folder listed (`""`: the root).
        dir: String,
        /// The most a listing may hold, in bytes.
        limit: u64,
    },
    /// A local I/O error (local-folder backend).
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The remote URL is not understood.
    #[error(
        "unsupported remote '{0}': use a folder path, file://, http(s)://, nextcloud://, nextcloud+http:// or s3://"
    )]
    UnsupportedUrl(String),
}

impl RemoteError {
    /// Whether retrying the same operation later can succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            RemoteError::Transient { .. }
                | RemoteError::Locked { .. }
                | RemoteError::TimedOut { .. }
        )
    }

    /// Whether a request ran out of its deadline: temporary, but a retry at once would take
    /// the whole deadline again.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RemoteError::TimedOut { .. })
    }

    /// Whether a write was refused because the file was locked (423): nothing was written.
    pub fn is_locked(&self) -> bool {
        matches!(self, RemoteError::Locked { .. })
    }

    /// Whether this is a failed precondition (412).
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self, RemoteError::PreconditionFailed { .. })
    }
}

/// A dumb file store with conditional reads and writes. See the crate docs for the semantics
/// every backend keeps.
pub trait Remote: Send + Sync {
    /// Reads a file. With `if_none_match` equal to its current ETag: `NotModified`, no body.
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError>;

    /// [`Remote::get`] of a file that cannot be larger than `max_len` bytes: a larger one is
    /// [`RemoteError::TooLarge`], and backends that stream (WebDAV) stop reading there instead
    /// of holding whatever a broken or hostile server sends. The default reads, then checks.
    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        let answer = self.get(path, if_none_match)?;
        if let GetResult::Found { body, .. } = &answer
            && body.len() as u64 > max_len
        {
            return Err(RemoteError::TooLarge {
                path: path.to_string(),
                limit: max_len,
            });
        }
        Ok(answer)
    }

    /// Writes a file in the given mode, creating parent folders; returns the new ETag if the
    /// backend has one.
    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError>;

    /// [`Remote::put`], giving the file the modification time `mtime` (Unix seconds) where the
    /// backend takes one from the client (Nextcloud's `X-OC-MTime`, which decides whether its
    /// ETag changes); others ignore it. The default ignores it.
    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        let _ = mtime;
        self.put(path, body, mode)
    }

    /// Size and ETag of a file; `None` when missing.
    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError>;

    /// The entries of a folder (not recursive); empty when the folder is missing.
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError>;

    /// Deletes a file or a folder with its contents; a missing path is fine.
    fn delete(&self, path: &str) -> Result<(), RemoteError>;

    /// Deletes many files (not folders) at once; missing ones are fine. Backends with a batch
    /// request use it (S3's DeleteObjects, a thousand keys per request); the default deletes
    /// them one by one, stopping at the first error.
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        paths.iter().try_for_each(|p| self.delete(p))
    }

    /// What this backend promises.
    fn capabilities(&self) -> Capabilities;

    /// A description for messages: the URL or folder, never with credentials.
    fn describe(&self) -> String;

    /// Drops any local copy of `path` that a layer keeps ([`Cached`]): a reader calls it for
    /// a file that failed its checksum, so that the next read asks the server. Backends keep
    /// none: the default does nothing.
    fn forget(&self, path: &str) {
        let _ = path;
    }
}

impl<R: Remote + ?Sized> Remote for Arc<R> {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        (**self).get(path, if_none_match)
    }
    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        (**self).get_max(path, if_none_match, max_len)
    }
    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        (**self).put(path, body, mode)
    }
    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        (**self).put_with_mtime(path, body, mode, mtime)
    }
    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        (**self).head(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        (**self).list(dir)
    }
    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        (**self).delete(path)
    }
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        (**self).delete_many(paths)
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn forget(&self, path: &str) {
        (**self).forget(path)
    }
}

/// Opens a remote from a URL or path: a folder path or `file://…` gives [`LocalFolder`];
/// `http(s)://…`, `nextcloud://user@host/path` and `nextcloud+http://user@host/path` give
/// [`WebDav`] (credentials from `options`). `s3://` remotes are opened with [`S3::open`].
pub fn open(url: &str, options: &WebDavOptions) -> Result<Arc<dyn Remote>, RemoteError> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(Arc::new(LocalFolder::new(rest)?));
    }
    if ["http://", "https://", "nextcloud://", "nextcloud+http://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Ok(Arc::new(WebDav::open(url, options)?));
    }
    if url.contains("://") {
        return Err(RemoteError::UnsupportedUrl(url.to_string()));
    }
    Ok(Arc::new(LocalFolder::new(url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_normalised() {
        assert_eq!(Etag::normalise("W/\"abc\""), Etag("abc".into()));
        assert_eq!(Etag::normalise("\"abc-gzip\""), Etag("abc".into()));
        assert_eq!(Etag::normalise("abc"), Etag("abc".into()));
        assert_eq!(Etag("x".into()).quoted(), "\"x\"");
    }
}
