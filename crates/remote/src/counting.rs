//! A layer that counts requests and bytes, to hold the sync protocol to a request budget.

use crate::{Etag, Forward, GetResult, ObjectInfo, PutMode, Remote, RemoteError};
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests and bytes counted by [`Counting`] (which [`MemoryRemote`](crate::MemoryRemote) applies).
///
/// Every call is one request, whatever its outcome (a failed precondition or a transient error
/// still costs a round trip).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// `get` requests, including those answered `NotModified` or `NotFound`.
    pub gets: u64,
    /// Of the `gets`, those answered `NotModified` (no body transferred).
    pub not_modified: u64,
    /// `put` requests.
    pub puts: u64,
    /// `head` requests.
    pub heads: u64,
    /// `list` requests.
    pub lists: u64,
    /// `delete` requests.
    pub deletes: u64,
    /// Bytes of bodies sent by `put` (every attempt).
    pub bytes_up: u64,
    /// Bytes of bodies received by `get`.
    pub bytes_down: u64,
}

impl RequestStats {
    /// The number of requests of every kind.
    pub fn requests(&self) -> u64 {
        self.gets + self.puts + self.heads + self.lists + self.deletes
    }
}

/// The operations that are counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// `get` and `get_max`.
    Get,
    Put,
    Head,
    List,
    Delete,
}

/// Atomic counters behind a [`RequestStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    gets: AtomicU64,
    not_modified: AtomicU64,
    puts: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, op: Op) {
        let counter = match op {
            Op::Get => &self.gets,
            Op::Put => &self.puts,
            Op::Head => &self.heads,
            Op::List => &self.lists,
            Op::Delete => &self.deletes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn not_modified(&self) {
        self.not_modified.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn up(&self, bytes: usize) {
        self.bytes_up.fetch_add(len64(bytes), Ordering::Relaxed);
    }

    pub(crate) fn down(&self, bytes: usize) {
        self.bytes_down.fetch_add(len64(bytes), Ordering::Relaxed);
    }

    /// Counts the answer of a `get`.
    pub(crate) fn get_answer(&self, answer: &Result<GetResult, RemoteError>) {
        match answer {
            Ok(GetResult::NotModified) => self.not_modified(),
            Ok(GetResult::Found { body, .. }) => self.down(body.len()),
            Ok(GetResult::NotFound) | Err(_) => {}
        }
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestStats {
            gets: load(&self.gets),
            not_modified: load(&self.not_modified),
            puts: load(&self.puts),
            heads: load(&self.heads),
            lists: load(&self.lists),
            deletes: load(&self.deletes),
            bytes_up: load(&self.bytes_up),
            bytes_down: load(&self.bytes_down),
        }
    }

    pub(crate) fn reset(&self) {
        for c in [
            &self.gets,
            &self.not_modified,
            &self.puts,
            &self.heads,
            &self.lists,
            &self.deletes,
            &self.bytes_up,
            &self.bytes_down,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

fn len64(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Wraps a remote and counts what goes through it: requests per operation and bytes up and
/// down. Thread-safe; the counters are shared by every thread using the layer.
///
/// ```
/// use deltasync_remote::{Counting, MemoryRemote, PutMode, Remote};
///
/// let remote = Counting::new(MemoryRemote::new());
/// remote.put("a.json", b"{}", &PutMode::CreateOnly).unwrap();
/// remote.get("a.json", None).unwrap();
/// let stats = remote.stats();
/// assert_eq!((stats.puts, stats.gets, stats.requests()), (1, 1, 2));
/// assert_eq!((stats.bytes_up, stats.bytes_down), (2, 2));
/// ```
#[derive(Debug)]
pub struct Counting<R> {
    inner: R,
    counters: Counters,
}

impl<R> Counting<R> {
    /// Wraps `inner`, with every counter at zero.
    pub fn new(inner: R) -> Self {
        Counting {
            inner,
            counters: Counters::default(),
        }
    }

    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The wrapped remote, unwrapped.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// What was counted since creation or the last [`reset`](Counting::reset).
    pub fn stats(&self) -> RequestStats {
        self.counters.snapshot()
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        self.counters.reset();
    }
}

impl<R: Remote> Forward for Counting<R> {
    fn inner(&self) -> &dyn Remote {
        &self.inner
    }

    fn read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        self.counters.request(Op::Get);
        let answer = self.forward_read(path, if_none_match, max_len);
        self.counters.get_answer(&answer);
        answer
    }

    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        self.counters.request(Op::Put);
        self.counters.up(body.len());
        self.forward_write(path, body, mode, mtime)
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        self.counters.request(Op::Head);
        self.inner.head(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        self.counters.request(Op::List);
        self.inner.list(dir)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.counters.request(Op::Delete);
        self.inner.delete(path)
    }

    /// One request per path, as the paths are deleted one by one.
    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        self.delete_each(paths)
    }
}
