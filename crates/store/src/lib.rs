//! The split-lite layout of a deltasync remote.
//!
//! ```text
//! <root>/
//!   meta.json                 the commit point, rewritten only with If-Match
//!   data.json                 snapshot generation 0 (later: data-g<N>.json)
//!   deltas/g<N>/<name>.json   immutable deltas, one per commit, grouped by generation
//!   archive/                  zipped deltas folded into a snapshot
//! ```
//!
//! [`Store`] reads and writes these files, verifying every checksum on read, and commits
//! `meta.json` by compare-and-swap.
//!
//! ```
//! use std::sync::Arc;
//! use deltasync_remote::MemoryRemote;
//! use deltasync_store::{MetaRead, Store};
//!
//! let store = Store::new(Arc::new(MemoryRemote::new()));
//! store.init(None).unwrap();
//! match store.read_meta(None).unwrap() {
//!     MetaRead::Fresh { meta, .. } => assert_eq!(meta.head, 0),
//!     other => panic!("{other:?}"),
//! }
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;

pub mod archive;
mod chain;

pub use chain::ReadDeltas;

use deltasync_lock::{Backoff, CasError, cas_write, retry_transient};
use deltasync_meta::{
    DATA_FILE, DELTAS_DIR, Delta, DeltaRef, FormatError, META_FILE, Meta, Snapshot, SnapshotRef,
    sha256_hex, verify_sha256,
};
use deltasync_remote::{CasClass, Etag, GetResult, PutMode, Remote, RemoteError, Retry};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The remote failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A file is malformed, too new, or fails its checksum.
    #[error("{path}: {source}")]
    Format {
        /// The remote path.
        path: String,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// A file meta refers to is missing.
    #[error("{0} is referenced by meta.json but missing on the remote")]
    Missing(String),
    /// There is no meta.json: the remote was never initialised.
    #[error("the remote has no meta.json: it was never initialised")]
    NotInitialised,
    /// Someone else committed first.
    #[error("someone else committed first")]
    Conflict,
    /// A commit's answer was lost: whether it happened is known only after reading meta again.
    #[error("the outcome of a commit is unknown (its answer was lost); the next sync finds out")]
    CommitUnknown,
    /// A file on the remote is damaged: it read the same, unreadable, twice (an answer cut in
    /// transit reads differently the second time). A retry will not help; `remedy` says what
    /// does.
    #[error("{path} on the remote is damaged ({detail}): {remedy}")]
    Damaged {
        /// The remote path.
        path: String,
        /// What is wrong with it.
        detail: String,
        /// What heals it.
        remedy: Remedy,
    },
    /// A zip archive (archive/ or a backup) is damaged or not one.
    #[error("{path} is damaged: {detail}")]
    Archive {
        /// The archive.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl StoreError {
    /// Whether a retry later can help.
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::Remote(e) => e.is_temporary(),
            StoreError::Conflict | StoreError::CommitUnknown => true,
            // A file meta listed was removed by a compaction that happened since: read meta
            // again.
            StoreError::Missing(_) => true,
            // A truncated body (a proxy cut it) reads as a checksum or JSON error: try again.
            StoreError::Format { source, .. } => !matches!(source, FormatError::TooNew { .. }),
            _ => false,
        }
    }
}

impl From<CasError> for StoreError {
    fn from(e: CasError) -> Self {
        match e {
            CasError::Conflict => StoreError::Conflict,
            CasError::Unknown => StoreError::CommitUnknown,
            CasError::Remote(r) => StoreError::Remote(r),
        }
    }
}

/// The answer of [`Store::read_meta`].
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per sync; boxing would only add an allocation
pub enum MetaRead {
    /// The etag we hold is current: nothing new (one request, no body).
    NotModified,
    /// meta.json and its etag.
    Fresh {
        /// The parsed meta.
        meta: Meta,
        /// Its etag.
        etag: Etag,
        /// Its size in bytes.
        size: u64,
    },
}

/// Reads and writes the split-lite layout on a remote.
///
/// Retries: the remote it is given is put under a [`Retry`] layer (unless it retries its reads
/// itself, as the HTTP backends do), so every idempotent request through the store, and through
/// [`Store::remote`], is retried by exactly one layer. Writes are retried here, each as what it
/// is: a create-only write of a new name again (a 412 then is our own lost write, checked by
/// reading it), meta.json's compare-and-swap by `deltasync_lock::cas_write`, which reads back
/// before it writes again.
#[derive(Clone)]
pub struct Store {
    /// The remote as given, before the [`Retry`] layer.
    given: Arc<dyn Remote>,
    /// `given` under the [`Retry`] layer (or `given`, if it retries its reads itself).
    remote: Arc<dyn Remote>,
    backoff: Backoff,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("remote", &self.remote.describe())
            .finish()
    }
}

/// The most a meta.json may hold (it lists the deltas since the last compaction and the
/// versions they changed: a few MB for tens of thousands of them). A larger answer is refused
/// before it is read into memory.
pub const MAX_META_BYTES: u64 = 64 << 20;

/// The most any other file read without a size from meta.json may hold (archives, backups,
/// a first `data.json`).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// How many times a file that does not parse is read before it is called damaged: the same
/// bytes every time (a write under way, or an answer cut in transit, reads differently).
const DAMAGE_READS: u32 = 3;

/// The pause before reading an unreadable file again, times the reads so far.
const REREAD_PAUSE: std::time::Duration = std::time::Duration::from_millis(150);

/// What heals a damaged file on the remote ([`StoreError::Damaged`]). The text says it in the
/// library's terms; the binary adds the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// meta.json: put a good copy back from a backup, or move it away and repair the remote
    /// from a device that has all the data.
    RestoreMeta,
    /// A delta or snapshot: a compaction on a device that has synced it writes a new snapshot
    /// from its own copy, which every device then reads instead.
    CompactFromSyncedDevice,
}

impl std::fmt::Display for Remedy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Remedy::RestoreMeta => {
                "put a good copy of meta.json back (from a backup), or move it away and repair \
                 the remote from a device that has all the data"
            }
            Remedy::CompactFromSyncedDevice => {
                "compact from a device that has synced it: that writes a new snapshot from its \
                 own copy, which every device then reads instead"
            }
        })
    }
}

/// The path of a delta of generation `generation` with a unique `name`.
pub fn delta_path(generation: u64, name: &str) -> String {
    format!("{DELTAS_DIR}/g{generation}/{name}.json")
}

/// A new file name for the snapshot of a generation: `data.json` for generation 0,
/// `data-g<N>-<8 hex random>.json` after, so that two devices compacting at once never write
/// the same file.
pub fn snapshot_name(generation: u64) -> String {
    if generation == 0 {
        DATA_FILE.to_string()
    } else {
        format!("data-g{generation}-{:08x}.json", fastrand::u32(..))
    }
}

impl Store {
    /// A store over `remote` with the standard backoff; its idempotent requests are retried by
    /// a [`Retry`] layer unless it retries them itself ([`Retry::over`]).
    pub fn new(remote: Arc<dyn Remote>) -> Self {
        let backoff = Backoff::standard();
        Store {
            remote: Retry::over(remote.clone(), backoff.clone()),
            given: remote,
            backoff,
        }
    }

    /// Uses `backoff` as the template for retries: the [`Retry`] layer's and the writes'.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.remote = Retry::over(self.given.clone(), backoff.clone());
        self.backoff = backoff;
        self
    }

    /// The backoff retries start from.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The remote, under the [`Retry`] layer: its reads, heads, listings and deletes are
    /// retried (once, by one layer); its writes are not.
    pub fn remote(&self) -> &Arc<dyn Remote> {
        &self.remote
    }

    /// A write that is safe to repeat (create-only, of a new name), retried with the backoff.
    fn retry<T>(&self, op: impl FnMut() -> Result<T, RemoteError>) -> Result<T, RemoteError> {
        retry_transient(&mut self.backoff.clone(), op)
    }

    /// Creates an empty layout (data.json and meta.json at head 0) if the remote has no
    /// meta.json; returns whether it did. `server` is the probe result to record.
    pub fn init(&self, server: Option<serde_json::Value>) -> Result<bool, StoreError> {
        if let GetResult::Found { .. } = self.remote.get_max(META_FILE, None, MAX_META_BYTES)? {
            return Ok(false);
        }
        let now = now_ms();
        let snapshot = Snapshot::empty(now);
        let bytes = snapshot.to_bytes();
        // Create-only: if another device initialised meanwhile, an existing data.json is
        // theirs and fine to keep; it is checked against their meta.
        match self.retry(|| self.remote.put(DATA_FILE, &bytes, &PutMode::CreateOnly)) {
            Ok(_) => {}
            Err(e) if e.is_precondition_failed() => {}
            Err(e) => return Err(e.into()),
        }
        let data = match self.remote.get_max(DATA_FILE, None, MAX_FILE_BYTES)? {
            GetResult::Found { body, .. } => body,
            _ => return Err(StoreError::Missing(DATA_FILE.into())),
        };
        let parsed = Snapshot::from_bytes(&data).map_err(|source| StoreError::Format {
            path: DATA_FILE.into(),
            source,
        })?;
        let mut meta = Meta::new(parsed.head);
        meta.snapshot = Some(SnapshotRef {
            generation: parsed.generation,
            name: DATA_FILE.into(),
            size: data.len() as u64,
            sha256: sha256_hex(&data),
            head: parsed.head,
        });
        meta.server = server;
        meta.last_sync_timestamp = now;
        meta.mtime = Some(now / 1000);
        match cas_write(
            self.remote.as_ref(),
            META_FILE,
            &meta.to_bytes(),
            None,
            meta.mtime,
            &mut self.backoff.clone(),
        ) {
            Ok(_) => Ok(true),
            Err(CasError::Conflict | CasError::Unknown) => Ok(false),
            Err(CasError::Remote(e)) => Err(e.into()),
        }
    }

    /// Reads meta.json unconditionally ([`Store::read_meta`] with no etag) and completes it
    /// ([`Store::complete`], reading every delta since the snapshot of a format-2 meta.json):
    /// its content and etag. [`Store::read_meta_complete`] takes a copy to start from.
    pub fn read_meta_fresh(&self) -> Result<(Meta, Etag), StoreError> {
        let (meta, etag, _) = self.read_meta_complete(None)?;
        Ok((meta, etag))
    }

    /// Reads meta.json, conditionally on the etag we hold, as it is: a format-2 meta.json lists
    /// only its newest delta ([`Store::complete`] finds the others). One that does not parse is
    /// read again: the same bytes three times are [`StoreError::Damaged`], other bytes (an answer
    /// cut in transit, a write under way) a temporary [`StoreError::Format`]. A 304 to a read
    /// without an etag is refused (temporary).
    pub fn read_meta(&self, known: Option<&Etag>) -> Result<MetaRead, StoreError> {
        let mut previous: Option<Vec<u8>> = None;
        let mut known = known;
        let mut reads = 0;
        loop {
            reads += 1;
            let (body, etag) = match self.remote.get_max(META_FILE, known, MAX_META_BYTES)? {
                GetResult::NotModified if known.is_some() => {
                    return Ok(MetaRead::NotModified);
                }
                // A server or proxy that says "not modified" to a read with no condition:
                // nothing to compare with, so no answer at all.
                GetResult::NotModified => {
                    return Err(StoreError::Remote(RemoteError::Transient {
                        what: format!("GET {META_FILE}"),
                        detail: "the server answered 304 Not Modified to a read that asked \
                                     for no condition (a caching proxy in the way?)"
                            .into(),
                    }));
                }
                GetResult::NotFound => return Err(StoreError::NotInitialised),
                GetResult::Found { body, etag } => (body, etag),
            };
            match Meta::from_bytes(&body) {
                Ok(meta) => {
                    let etag = etag.unwrap_or_else(|| Etag(sha256_hex(&body)));
                    return Ok(MetaRead::Fresh {
                        meta,
                        etag,
                        size: body.len() as u64,
                    });
                }
                Err(source @ FormatError::TooNew { .. }) => {
                    return Err(StoreError::Format {
                        path: META_FILE.into(),
                        source,
                    });
                }
                Err(source) => match previous {
                    Some(first) if first != body => {
                        return Err(StoreError::Format {
                            path: META_FILE.into(),
                            source,
                        });
                    }
                    _ if reads >= DAMAGE_READS => {
                        return Err(StoreError::Damaged {
                            path: META_FILE.into(),
                            detail: source.to_string(),
                            remedy: Remedy::RestoreMeta,
                        });
                    }
                    _ => {
                        previous = Some(body);
                        known = None;
                        std::thread::sleep(REREAD_PAUSE * reads);
                    }
                },
            }
        }
    }

    /// Reads a file meta.json describes — `size` bytes with this `sha256` — reading no more
    /// than that, and parses it. A failure is read again: the same bytes three times are
    /// [`StoreError::Damaged`], other bytes a temporary [`StoreError::Format`].
    fn read_parsed<T>(
        &self,
        path: &str,
        sha256: &str,
        size: u64,
        parse: impl Fn(&[u8]) -> Result<T, FormatError>,
    ) -> Result<(T, Vec<u8>), StoreError> {
        let mut previous: Option<Vec<u8>> = None;
        let mut reads = 0;
        loop {
            reads += 1;
            let body = match self.remote.get_max(path, None, size)? {
                GetResult::Found { body, .. } => body,
                _ => return Err(StoreError::Missing(path.to_string())),
            };
            let parsed = verify_sha256(path, &body, sha256).and_then(|()| parse(&body));
            if parsed.is_err() {
                // A local copy (the `Cached` layer) that fails is not read again.
                self.remote.forget(path);
            }
            match (parsed, previous) {
                (Ok(v), _) => return Ok((v, body)),
                (Err(source), Some(first)) if first != body => {
                    return Err(StoreError::Format {
                        path: path.to_string(),
                        source,
                    });
                }
                (Err(source), _) if reads >= DAMAGE_READS => {
                    return Err(StoreError::Damaged {
                        path: path.to_string(),
                        detail: source.to_string(),
                        remedy: Remedy::CompactFromSyncedDevice,
                    });
                }
                (Err(_), _) => {
                    previous = Some(body);
                    std::thread::sleep(REREAD_PAUSE * reads);
                }
            }
        }
    }

    /// For a file meta.json named that was not there ([`StoreError::Missing`]): reads
    /// meta.json again. Still named by it, the file is lost ([`StoreError::Damaged`]); no
    /// longer (a compaction removed it meanwhile), the error stays temporary.
    pub fn confirm_missing(&self, error: StoreError) -> StoreError {
        let StoreError::Missing(path) = &error else {
            return error;
        };
        let damaged = || StoreError::Damaged {
            path: path.clone(),
            detail: "meta.json names it, but it is not there".into(),
            remedy: Remedy::CompactFromSyncedDevice,
        };
        let Ok(MetaRead::Fresh { mut meta, .. }) = self.read_meta(None) else {
            return error;
        };
        if meta.references(path) || meta.snapshot.as_ref().is_some_and(|s| &s.name == path) {
            return damaged();
        }
        // A format-2 meta.json names the older deltas through the chain.
        match self.complete(&mut meta, None) {
            Ok(_) if meta.references(path) => damaged(),
            Err(StoreError::Missing(p)) if &p == path => damaged(),
            _ => error,
        }
    }

    /// [`Store::read_parsed`] without parsing.
    fn read_verified(&self, path: &str, sha256: &str, size: u64) -> Result<Vec<u8>, StoreError> {
        Ok(self.read_parsed(path, sha256, size, |_| Ok(()))?.1)
    }

    /// Reads and verifies the snapshot meta refers to.
    pub fn read_snapshot(&self, r: &SnapshotRef) -> Result<(Snapshot, u64), StoreError> {
        let (snap, body) = self.read_parsed(&r.name, &r.sha256, r.size, Snapshot::from_bytes)?;
        Ok((snap, body.len() as u64))
    }

    /// Reads and verifies the snapshot meta refers to without building its records: returns
    /// the snapshot with `records` empty ([`Snapshot::without_records`]) and the file's
    /// bytes, whose records the caller reads one at a time with [`Snapshot::stream`]. Bytes
    /// that match their checksum and then fail to stream are damaged: see
    /// [`Store::damaged_snapshot`].
    pub fn read_snapshot_bytes(&self, r: &SnapshotRef) -> Result<(Snapshot, Vec<u8>), StoreError> {
        self.read_parsed(&r.name, &r.sha256, r.size, Snapshot::without_records)
    }

    /// The error for the snapshot `r`, read with [`Store::read_snapshot_bytes`], whose records
    /// then failed to parse (`source`): its bytes match the checksum meta.json gives, so
    /// reading it again gives the same ([`StoreError::Damaged`]).
    pub fn damaged_snapshot(&self, r: &SnapshotRef, source: FormatError) -> StoreError {
        StoreError::Damaged {
            path: r.name.clone(),
            detail: source.to_string(),
            remedy: Remedy::CompactFromSyncedDevice,
        }
    }

    /// Reads and verifies a delta meta refers to.
    pub fn read_delta(&self, r: &DeltaRef) -> Result<Delta, StoreError> {
        Ok(self
            .read_parsed(&r.path, &r.sha256, r.size, Delta::from_bytes)?
            .0)
    }

    /// Writes a delta create-only under a unique name in the current generation's folder and
    /// returns the reference to put in meta. Safe to retry: the name is new each call.
    pub fn write_delta(&self, delta: &Delta, generation: u64) -> Result<DeltaRef, StoreError> {
        let name = format!(
            "{}-{}-{:08x}",
            sanitize_device(&delta.device),
            delta.time,
            fastrand::u32(..)
        );
        let path = delta_path(generation, &name);
        let bytes = delta.to_bytes();
        match self.retry(|| self.remote.put(&path, &bytes, &PutMode::CreateOnly)) {
            Ok(_) => {}
            // A lost response to our own create: the file is there; check it is ours.
            Err(e) if e.is_precondition_failed() => {
                self.read_verified(&path, &sha256_hex(&bytes), bytes.len() as u64)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(DeltaRef {
            path,
            seq: delta.seq,
            device: delta.device.clone(),
            time: delta.time,
            entities: delta.records.len() as u64,
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        })
    }

    /// Writes a snapshot create-only under its generation's name and returns the reference
    /// to put in meta.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotRef, StoreError> {
        self.write_snapshot_bytes(snapshot.generation, snapshot.head, &snapshot.to_bytes())
    }

    /// Writes a snapshot's bytes (made by [`deltasync_meta::SnapshotWriter`]) of `generation`,
    /// folding commits up to `head`, create-only under a new name, as
    /// [`Store::write_snapshot`] does.
    pub fn write_snapshot_bytes(
        &self,
        generation: u64,
        head: u64,
        bytes: &[u8],
    ) -> Result<SnapshotRef, StoreError> {
        let name = snapshot_name(generation);
        self.retry(|| self.remote.put(&name, bytes, &PutMode::CreateOnly))?;
        Ok(SnapshotRef {
            generation,
            name,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            head,
        })
    }

    /// Commits `meta` if meta.json's etag is still `expected`. `meta` is the meta.json it
    /// replaces with the changes of this commit; its [`Meta::mtime`] is set here to one
    /// strictly greater than the replaced one's ([`Meta::next_mtime`]) and written with it, so
    /// that no two commits share an ETag on Nextcloud, whatever the clocks say. Keep the
    /// updated `meta` as the copy of what was written.
    pub fn commit_meta(&self, meta: &mut Meta, expected: &Etag) -> Result<Etag, StoreError> {
        meta.mtime = Some(meta.next_mtime(now_ms() / 1000));
        let bytes = meta.to_bytes();
        let window = self.remote.capabilities().weak_window_ms;
        let mut backoff = self.backoff.clone();
        loop {
            match cas_write(
                self.remote.as_ref(),
                META_FILE,
                &bytes,
                Some(expected),
                meta.mtime,
                &mut backoff,
            ) {
                // A server with a weak-ETag window refuses every If-Match right after a
                // write: wait the window out once before calling it a conflict.
                Err(CasError::Conflict) if window > 0 && backoff.attempts() == 0 => {
                    std::thread::sleep(std::time::Duration::from_millis(window));
                    backoff.next_delay();
                }
                Ok(etag) if self.remote.capabilities().cas == CasClass::None => {
                    // The server ignores If-Match: read back that meta holds our bytes. If not,
                    // someone overwrote it (the lease was not honoured): the next fetch decides.
                    return match self.remote.get_max(META_FILE, None, MAX_META_BYTES)? {
                        GetResult::Found { body, .. } if body == bytes => Ok(etag),
                        _ => Err(StoreError::CommitUnknown),
                    };
                }
                other => return other.map_err(StoreError::from),
            }
        }
    }

    /// Deletes a file best-effort (an orphan delta after a lost race).
    pub fn delete_quietly(&self, path: &str) {
        if let Err(e) = self.remote.delete(path) {
            tracing::debug!(error = %e, path, "could not delete");
        }
    }

    /// Deletes files best-effort, batched where the remote can ([`Remote::delete_many`]: S3's
    /// DeleteObjects).
    pub fn delete_many_quietly(&self, paths: &[String]) {
        if paths.is_empty() {
            return;
        }
        if let Err(e) = self.remote.delete_many(paths) {
            tracing::debug!(error = %e, count = paths.len(), "could not delete");
        }
    }
}

fn sanitize_device(device: &str) -> String {
    device
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect()
}

/// Milliseconds since the Unix epoch (the one clock reading, [`deltasync_meta::now_ms`]).
pub use deltasync_meta::now_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_meta::{EntityRecord, Hlc};
    use deltasync_remote::MemoryRemote;

    fn store() -> (Arc<MemoryRemote>, Store) {
        let mem = Arc::new(MemoryRemote::new());
        let store = Store::new(mem.clone()).with_backoff(Backoff::quick());
        (mem, store)
    }

    /// A server (or a caching proxy) that answers 304 to every read of meta.json.
    struct Always304(Arc<MemoryRemote>);

    impl deltasync_remote::Forward for Always304 {
        fn inner(&self) -> &dyn Remote {
            &*self.0
        }
        fn read(
            &self,
            path: &str,
            inm: Option<&Etag>,
            max_len: Option<u64>,
        ) -> Result<GetResult, RemoteError> {
            if path == META_FILE {
                return Ok(GetResult::NotModified);
            }
            self.forward_read(path, inm, max_len)
        }
    }

    /// Issue 11: a 304 to a read that sent no etag panicked the engine (`unreachable!`).
    #[test]
    fn not_modified_to_an_unconditional_read_is_a_temporary_error() {
        let (mem, store) = store();
        store.init(None).unwrap();
        let lying = Store::new(Arc::new(Always304(mem))).with_backoff(Backoff::quick());
        let e = lying.read_meta_fresh().unwrap_err();
        assert!(e.is_temporary(), "{e:?}");
        assert!(e.to_string().contains("304"), "{e}");
        assert!(matches!(lying.read_meta(None), Err(StoreError::Remote(_))));
    }

    fn delta(seq: u64) -> Delta {
        Delta {
            format: 1,
            min_reader: 1,
            seq,
            device: "dev/../1".into(),
            device_name: None,
            time: 5,
            supersedes: None,
            prev: None,
            records: vec![EntityRecord {
                collection: "tasks".into(),
                id: "a".into(),
                version: seq,
                last_modified_at: Hlc { ms: 5, counter: 0 },
                last_modified_by: "dev1".into(),
                is_deleted: false,
                data: serde_json::json!({"title": "x"}),
                extra: Default::default(),
            }],
            conflicts: vec![],
        }
    }

    #[test]
    fn init_is_idempotent() {
        let (_, s) = store();
        assert!(s.init(None).unwrap());
        assert!(!s.init(None).unwrap());
    }

    #[test]
    fn delta_round_trip_and_corruption_detected() {
        let (mem, s) = store();
        s.init(None).unwrap();
        let r = s.write_delta(&delta(1), 0).unwrap();
        assert!(r.path.starts_with("deltas/g0/dev1-5-"), "{}", r.path);
        assert_eq!(s.read_delta(&r).unwrap(), delta(1));
        let mut bytes = mem.files()[&r.path].clone();
        bytes.truncate(bytes.len() - 3);
        mem.raw_put(&r.path, &bytes);
        // The same damaged bytes on every read: damage, with what to do.
        let err = s.read_delta(&r).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(!err.is_temporary());
        assert!(
            matches!(
                err,
                StoreError::Damaged {
                    remedy: Remedy::CompactFromSyncedDevice,
                    ..
                }
            ),
            "{err}"
        );
        // A truncated answer (other bytes each time) stays temporary.
        mem.set_faults(deltasync_remote::Faults {
            truncate_body_rate: 1.0,
            ..Default::default()
        });
        mem.raw_put(&r.path, &delta(1).to_bytes());
        let err = s.read_delta(&r).unwrap_err();
        assert!(err.is_temporary(), "{err}");
    }

    #[test]
    fn commit_needs_current_etag() {
        let (_, s) = store();
        s.init(None).unwrap();
        let MetaRead::Fresh { mut meta, etag, .. } = s.read_meta(None).unwrap() else {
            panic!()
        };
        assert!(matches!(
            s.read_meta(Some(&etag)).unwrap(),
            MetaRead::NotModified
        ));
        meta.head = 1;
        let e2 = s.commit_meta(&mut meta, &etag).unwrap();
        meta.head = 2;
        assert!(matches!(
            s.commit_meta(&mut meta, &etag),
            Err(StoreError::Conflict)
        ));
        s.commit_meta(&mut meta, &e2).unwrap();
    }

    #[test]
    fn uninitialised_remote_says_so() {
        let (_, s) = store();
        let err = s.read_meta(None).unwrap_err();
        assert!(matches!(err, StoreError::NotInitialised), "{err}");
        assert!(err.to_string().contains("never initialised"), "{err}");
    }
}
