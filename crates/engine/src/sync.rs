//! Push and pull: the [`Engine`] of one workspace.
//!
//! One sync round is:
//! 1. **fetch**: a conditional GET of meta.json; our pending commits are confirmed, finished
//!    (after a crash) or found lost and undone; every delta meta lists that was not applied
//!    here is read, verified and applied to the *mirror* (the local copy of the remote state);
//! 2. **plan**: the local files are scanned and each entity is planned from (local, base,
//!    mirror) by [`crate::planner::plan`];
//! 3. **execute**: pulls and merges are written to the local files (never over a save the app
//!    made meanwhile) and bases updated;
//! 4. **commit**: the changed entities go into one delta (create-only), then meta.json is
//!    written with If-Match. On 412 the round starts again after a jittered backoff.
//!
//! Every step leaves a state the next run can finish from: see `docs/architecture.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltasync_lock::{Backoff, Lease, LeaseConfig, LeaseError};
use deltasync_meta::{
    ConflictReceipt, Delta, EntityRecord, FORMAT_VERSION, Hlc, Meta, content_hash,
};
use deltasync_remote::{CasClass, Etag, Remote, RemoteError};
use deltasync_store::{MetaRead, Store, StoreError, now_ms};
use serde::Serialize;
use serde_json::Value;

use crate::collections::{self, CollectionError, Scan, Write};
use crate::config::{Config, ConfigError};
use crate::merge::{Side, merge3};
use crate::planner::{self, BaseSide, Change, EntityKey, LocalSide, Op, RemoteSide};
use crate::state::{
    BeforeCommit, CollectionSyncState, MirrorRecord, PendingCommit, State, StateError,
};

/// The folder of local state inside a workspace.
pub const STATE_DIR: &str = ".deltasync";

/// Errors of the engine. [`EngineError::is_temporary`] says whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The remote layout failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A local collection failed.
    #[error(transparent)]
    Collection(#[from] CollectionError),
    /// The remote's lease (for servers without compare-and-swap) is held by another device.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A collection name that the configuration does not have.
    #[error("unknown collection '{name}'; valid collections: {valid}")]
    UnknownCollection {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        valid: String,
    },
    /// A push would delete too much of a collection (more than the configured share and
    /// count, or all of more than two).
    #[error(
        "refusing to delete {deletes} of {total} entities in '{collection}' (more than {percent}%, or all of them): \
         if this is intended, run again with --allow-mass-delete"
    )]
    MassDelete {
        /// The collection.
        collection: String,
        /// Deletions planned.
        deletes: u64,
        /// Entities the collection had.
        total: u64,
        /// The configured threshold in percent.
        percent: u64,
    },
    /// Other devices kept committing first.
    #[error("gave up after {0} attempts: other devices kept committing first; try again")]
    TooManyRetries(u32),
    /// The remote's format is newer than this client can write.
    #[error(
        "the remote is format {0} which this deltasync (format {FORMAT_VERSION}) can read but not write: upgrade deltasync"
    )]
    ReadOnly(u32),
    /// A conflict receipt that does not exist.
    #[error("no conflict with id '{0}'")]
    NoSuchConflict(String),
    /// An entity that does not exist.
    #[error("no {collection} entity with id '{id}'")]
    NoSuchEntity {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
    },
    /// The remote has lost commits this device applied: emptied, initialised again, or put
    /// back from an older copy. Nothing was changed; `repair` puts this device's data back.
    #[error(
        "the remote {remote} is behind this device: {detail}. Nothing was changed, here or there. \
         `deltasync repair --dry-run` shows what putting this device's data back on it would do; \
         `deltasync repair` does it (on every device that has data the remote lost)"
    )]
    RemoteBehind {
        /// The remote.
        remote: String,
        /// What was found.
        detail: String,
    },
    /// `update` of a field inside one that is not an object.
    #[error(
        "{collection}/{id}: '{field}' is not an object, so '{path}' cannot be set inside it; nothing was changed (set '{field}' itself to replace it)"
    )]
    NotAnObject {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
        /// The field on the way that is not an object.
        field: String,
        /// The field asked for.
        path: String,
    },
    /// A past state cannot be rebuilt: commits are missing from the archives.
    #[error("{0}")]
    History(String),
}

impl EngineError {
    /// Whether a retry later can help.
    pub fn is_temporary(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_temporary(),
            EngineError::Remote(e) => e.is_temporary(),
            EngineError::TooManyRetries(_) => true,
            EngineError::Lease(e) => e.is_temporary(),
            EngineError::Collection(e) => matches!(e, CollectionError::ChangedMeanwhile { .. }),
            _ => false,
        }
    }
}

/// Options of [`Engine::sync`].
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Plan and report, change nothing (local files, base, remote).
    pub dry_run: bool,
    /// Allow a push that deletes more than the configured share of a collection.
    pub allow_mass_delete: bool,
}

/// What a sync did (or, dry run, would do) for one collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CollectionReport {
    /// Outgoing changes.
    pub up: planner::Counts,
    /// Incoming changes.
    pub down: planner::Counts,
    /// Entities with no change.
    pub unchanged: u64,
    /// Entities changed on both sides (merged).
    pub merged: u64,
    /// Entities held back (their local file is unreadable).
    pub held: u64,
}

/// The outcome of a sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per collection.
    pub collections: BTreeMap<String, CollectionReport>,
    /// The seq of the commit made, if any.
    pub committed: Option<u64>,
    /// The remote head after the sync.
    pub head: u64,
    /// Conflict receipts created by this sync.
    pub conflicts: Vec<ConflictReceipt>,
    /// Local files that could not be read (invalid JSON, …): nothing was pushed for them.
    pub problems: Vec<String>,
    /// Entities not written locally because the app saved them meanwhile (retried next time).
    pub deferred: Vec<String>,
    /// Commit attempts lost to other devices before this one succeeded.
    pub retries: u32,
    /// Commits of ours that another device's write overwrote and that were made again.
    pub recommitted: u64,
}

/// Status of a workspace, for `deltasync status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This device's id.
    pub device_id: String,
    /// The device's name.
    pub device: String,
    /// The remote, without credentials.
    pub remote: String,
    /// The head of the last meta seen.
    pub head: u64,
    /// Commits not yet confirmed by a later meta.
    pub unconfirmed_commits: usize,
    /// Open conflict receipts.
    pub open_conflicts: usize,
    /// Per collection: entity count (mirror) and last sync.
    pub collections: BTreeMap<String, CollectionStatus>,
}

/// Status of one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionStatus {
    /// Entities on the remote (live).
    pub remote_entities: u64,
    /// The last sync's statistics.
    pub last_sync: Option<CollectionSyncState>,
}

/// The sync engine of one workspace.
pub struct Engine {
    root: PathBuf,
    config: Config,
    state: State,
    store: Store,
    device_id: String,
    lease: LeaseConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.root)
            .field("device_id", &self.device_id)
            .finish()
    }
}

struct Planned {
    scans: BTreeMap<String, Scan>,
    plan: planner::Plan,
    states: BTreeMap<(String, String), crate::state::EntityState>,
}

/// State key: the time (ms) meta.json was last read with its body.
const META_READ_MS: &str = "meta_read_ms";
/// State key, set after each commit of ours: read meta.json with its body next time.
pub(crate) const REREAD_META: &str = "reread_meta";

/// Commit rounds a sync or compaction tries at least before giving up on a busy remote.
const MAX_ROUNDS: u32 = 10;

/// How long a sync keeps trying to commit on a network remote that other devices keep
/// committing to: with 8 devices committing at once on Nextcloud (slow, non-atomic writes that
/// answer 423), ten quick rounds were not enough for 11–14 % of syncs.
const NETWORK_COMMIT_BUDGET: Duration = Duration::from_secs(120);

/// How long a device may take a "not modified" answer on trust on a remote whose ETags can go
/// stale ([`deltasync_remote::Capabilities::stale_etags`]): after that, and after each of its
/// own commits, meta.json is read unconditionally. This bounds how long a device can miss a
/// commit whose meta.json kept the ETag of the one it replaced.
pub const STALE_ETAG_BOUND: Duration = Duration::from_secs(30);

/// When a commit round lost to another device may be tried again: at least
/// [`MAX_ROUNDS`] rounds, and on a network remote for [`NETWORK_COMMIT_BUDGET`], with jittered
/// exponential backoff.
pub(crate) struct CommitRetry {
    backoff: Backoff,
    rounds: u32,
    started: Instant,
    budget: Duration,
}

impl CommitRetry {
    /// Waits before the next round; false when it is time to give up.
    pub(crate) fn wait(&mut self) -> bool {
        self.rounds += 1;
        if self.rounds >= MAX_ROUNDS && self.started.elapsed() >= self.budget {
            return false;
        }
        self.backoff.wait()
    }

    /// Rounds lost so far.
    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }
}

/// An entity written locally by a pull or merge: its id, the base to record once the write
/// is done (`None`: no base), and what to push after it (`Some(None)`: a delete).
type AfterWrite = (
    String,
    Option<(u64, Option<Value>)>,
    Option<(Option<Value>, Hlc)>,
);

/// An entity to push: collection, id, content (`None`: a delete) and the clock of the change.
type Outgoing = (String, String, Option<Value>, Hlc);

impl Engine {
    /// Opens a workspace, with the remote from its configuration.
    pub fn open(
        root: &Path,
        remote_options: &deltasync_remote::WebDavOptions,
    ) -> Result<Self, EngineError> {
        let config = Config::load(root)?;
        let remote = deltasync_remote::open(&config.remote, remote_options)?;
        Self::with_remote(root, config, remote)
    }

    /// Opens a workspace with a given configuration and remote (tests, embedding apps).
    pub fn with_remote(
        root: &Path,
        config: Config,
        remote: Arc<dyn Remote>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let state = State::open(&root.join(STATE_DIR))?;
        let device_id = match state.get("device_id")? {
            Some(id) => id,
            None => {
                let id = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
                state.set("device_id", &id)?;
                id
            }
        };
        let backoff =
            if remote.capabilities().weak_window_ms > 0 || remote.describe().starts_with("http") {
                Backoff::standard()
            } else {
                Backoff::new(
                    std::time::Duration::from_millis(2),
                    std::time::Duration::from_millis(200),
                    8,
                )
            };
        Ok(Engine {
            root: root.to_path_buf(),
            config,
            state,
            store: Store::new(remote).with_backoff(backoff),
            device_id,
            lease: LeaseConfig::default(),
        })
    }

    /// Sets the timing of the lease taken on remotes without compare-and-swap.
    pub fn set_lease_config(&mut self, lease: LeaseConfig) {
        self.lease = lease;
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store (remote layout).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The local state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The local state, for transactions (maintenance, records).
    pub(crate) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Creates the remote layout if the remote is empty; returns whether it did.
    pub fn init_remote(&self, server: Option<Value>) -> Result<bool, EngineError> {
        Ok(self.store.init(server)?)
    }

    /// Checks a collection name, with the valid names in the error.
    pub fn check_collection(&self, name: &str) -> Result<(), EngineError> {
        if self.config.collections.contains_key(name) {
            Ok(())
        } else {
            Err(EngineError::UnknownCollection {
                name: name.to_string(),
                valid: self.config.collection_names(),
            })
        }
    }

    fn cached_meta(&self) -> Result<Option<(Meta, Etag)>, EngineError> {
        match (self.state.get("meta")?, self.state.get("meta_etag")?) {
            (Some(m), Some(e)) => Ok(Some((
                Meta::from_bytes(m.as_bytes()).map_err(|source| StoreError::Format {
                    path: "local copy of meta.json".into(),
                    source,
                })?,
                Etag(e),
            ))),
            _ => Ok(None),
        }
    }

    /// Step 1: brings the mirror up to date with the remote. Returns the current meta, its
    /// etag, and how many deltas were applied.
    pub fn fetch(&mut self) -> Result<(Meta, Etag, usize), EngineError> {
        self.fetch_with(&crate::progress::NoProgress)
    }

    /// [`Engine::fetch`], reporting the reading of a snapshot and of deltas to `progress`
    /// (a new device's first sync reads the whole snapshot).
    pub fn fetch_with(
        &mut self,
        progress: &dyn crate::progress::Progress,
    ) -> Result<(Meta, Etag, usize), EngineError> {
        let cached = self.cached_meta()?;
        // On a remote whose ETags can go stale, a "not modified" is taken on trust only for a
        // while, and not right after our own commit (a racing writer in the same second can
        // leave meta.json with the ETag we were given).
        let reread = self.store.remote().capabilities().stale_etags
            && (self.state.get(REREAD_META)?.is_some()
                || self
                    .state
                    .get(META_READ_MS)?
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none_or(|t| {
                        now_ms().saturating_sub(t) >= STALE_ETAG_BOUND.as_millis() as u64
                    }));
        let known = match &cached {
            Some((_, e)) if !reread => Some(e),
            _ => None,
        };
        let read_at = now_ms();
        let answer = match self.store.read_meta(known) {
            // This device synced there: the remote was emptied, not never initialised.
            Err(StoreError::NotInitialised) if cached.is_some() => {
                let head = cached.as_ref().map(|(m, _)| m.head).unwrap_or(0);
                return Err(self.remote_behind(format!(
                    "it has no meta.json, although this device synced there up to commit {head} \
                     (the remote was emptied or moved)"
                )));
            }
            other => other?,
        };
        let (meta, etag) = match answer {
            MetaRead::NotModified => {
                // The store answers "not modified" only to a read with our etag, so there is
                // a cached meta; a broken answer is temporary rather than a panic.
                let Some((m, e)) = cached else {
                    return Err(
                        StoreError::Remote(deltasync_remote::RemoteError::Transient {
                            what: "GET meta.json".into(),
                            detail: "304 Not Modified without a condition".into(),
                        })
                        .into(),
                    );
                };
                // The meta we hold is current: a commit attempted since (a crash before or
                // during its meta write) is decided against it now.
                if self.state.pending()?.iter().any(|p| p.state == "attempted") {
                    self.reconcile_journal(&m, &e, &[])?;
                }
                return Ok((m, e, 0));
            }
            MetaRead::Fresh { meta, etag, .. } => (meta, etag),
        };
        // A new device (or a new snapshot generation) starts from the snapshot.
        let known_generation = self
            .state
            .get("generation")?
            .and_then(|g| g.parse::<u64>().ok());
        let snapshot = match &meta.snapshot {
            Some(r) if known_generation != Some(r.generation) => {
                progress.start("downloading snapshot", 0);
                let snap = self
                    .store
                    .read_snapshot(r)
                    .map_err(|e| self.store.confirm_missing(e))?
                    .0;
                progress.finish();
                Some((r.generation, snap))
            }
            _ => None,
        };
        let folded = snapshot
            .as_ref()
            .map(|(_, s)| s.folded.as_slice())
            .unwrap_or(&[]);
        let cached_meta = cached.map(|(m, _)| m);
        self.check_not_behind(&meta, cached_meta.as_ref(), known_generation)?;
        self.check_history(&meta, cached_meta.as_ref(), known_generation)?;
        self.reconcile_journal(&meta, &etag, folded)?;
        let mut applied = 0;
        if let Some((generation, snapshot)) = &snapshot {
            let mut clock = self.state.clock()?;
            progress.start("reading snapshot", snapshot.records.len() as u64);
            self.state.transaction(|s| {
                for (i, r) in snapshot.records.iter().enumerate() {
                    if i % 1000 == 999 {
                        progress.advance(1000);
                    }
                    let newer = match s.mirror(&r.collection, &r.id)? {
                        Some(m) => r.version > m.version,
                        None => true,
                    };
                    if newer {
                        s.set_mirror(&r.collection, &r.id, Some(&mirror_of(r)))?;
                    }
                    clock = clock.max(r.last_modified_at);
                }
                for c in &snapshot.conflicts {
                    s.put_conflict(c, false)?;
                }
                s.set_clock(clock)?;
                s.set("generation", &generation.to_string())
            })?;
            progress.finish();
            applied += 1;
        }
        let mut deltas: Vec<_> = meta.deltas.iter().collect();
        deltas.sort_by_key(|d| d.seq);
        for d in deltas {
            if self.state.is_applied(&d.path)? {
                continue;
            }
            let delta = self
                .store
                .read_delta(d)
                .map_err(|e| self.store.confirm_missing(e))?;
            crate::maintenance::cache_delta(&self.root, d, &delta);
            let mut clock = self.state.clock()?;
            self.state.transaction(|s| {
                for r in &delta.records {
                    s.set_mirror(&r.collection, &r.id, Some(&mirror_of(r)))?;
                    clock = clock.max(r.last_modified_at);
                }
                for c in &delta.conflicts {
                    s.put_conflict(c, false)?;
                }
                s.set_clock(clock)?;
                s.mark_applied(&d.path, d.seq)
            })?;
            applied += 1;
        }
        self.state.transaction(|s| {
            s.set(
                "meta",
                std::str::from_utf8(&meta.to_bytes()).unwrap_or("{}"),
            )?;
            s.set("meta_etag", &etag.0)?;
            s.set(META_READ_MS, &read_at.to_string())?;
            s.unset(REREAD_META)
        })?;
        Ok((meta, etag, applied))
    }

    /// Refuses a remote that is behind what this device applied: a lower head, or an older
    /// snapshot generation (emptied and initialised again, or put back from an older copy).
    fn check_not_behind(
        &self,
        meta: &Meta,
        cached: Option<&Meta>,
        known_generation: Option<u64>,
    ) -> Result<(), EngineError> {
        let Some(cached) = cached else {
            return Ok(());
        };
        if meta.head < cached.head {
            return Err(self.remote_behind(format!(
                "it is at commit {}, and this device has applied commits up to commit {} (the \
                 remote was emptied and initialised again, or put back from an older copy)",
                meta.head, cached.head
            )));
        }
        let generation = meta.snapshot.as_ref().map(|s| s.generation);
        if let (Some(now), Some(known)) = (generation, known_generation)
            && now < known
        {
            return Err(self.remote_behind(format!(
                "its snapshot is generation {now}, and this device has read generation {known} \
                 (the remote was put back from an older copy)"
            )));
        }
        Ok(())
    }

    /// Refuses a remote whose history differs from what this device applied: a delta at a seq
    /// this device has passed, which it never applied (put back from an older copy that others
    /// have committed on top of since). Only on remotes whose compare-and-swap is atomic,
    /// within one snapshot generation, below the newest commit this device saw, and not at the
    /// seq of a commit of ours still in the journal.
    fn check_history(
        &self,
        meta: &Meta,
        cached: Option<&Meta>,
        known_generation: Option<u64>,
    ) -> Result<(), EngineError> {
        let Some(cached) = cached else {
            return Ok(());
        };
        if meta.snapshot.as_ref().map(|s| s.generation) != known_generation {
            return Ok(());
        }
        // Where two writers can both win, history below the head can change as commits are
        // lost and made again (the property test finds such runs): there, only a remote that
        // went back is refused (check_not_behind).
        if !matches!(
            self.store.remote().capabilities().cas,
            CasClass::Atomic | CasClass::WeakWindow
        ) {
            return Ok(());
        }
        let ours: BTreeSet<u64> = self.state.pending()?.iter().map(|p| p.seq).collect();
        // Within a generation the list only grows: every delta below the head this device saw
        // is in the meta.json it last read (no query per delta on this path of every fetch).
        let seen: BTreeSet<&str> = cached.deltas.iter().map(|d| d.path.as_str()).collect();
        for d in &meta.deltas {
            if d.seq < cached.head && !ours.contains(&d.seq) && !seen.contains(d.path.as_str()) {
                return Err(self.remote_behind(format!(
                    "its commit {} ({}) is not the one this device applied at that point (the \
                     remote was put back from an older copy, and others have committed since)",
                    d.seq, d.path
                )));
            }
        }
        Ok(())
    }

    fn remote_behind(&self, detail: String) -> EngineError {
        EngineError::RemoteBehind {
            remote: self.store.remote().describe(),
            detail,
        }
    }

    /// Confirms, finishes or undoes the commits recorded in the journal against `meta`.
    fn reconcile_journal(
        &mut self,
        meta: &Meta,
        etag: &Etag,
        folded_now: &[String],
    ) -> Result<u64, EngineError> {
        let mut lost = 0;
        for p in self.state.pending()? {
            let referenced = meta.references(&p.delta_path);
            // Folded into a snapshot written since we last looked: it made it.
            let folded = folded_now.contains(&p.delta_path);
            match (p.state.as_str(), referenced || folded) {
                // Crashed after writing meta, before the local transaction: finish it.
                ("attempted", true) => {
                    // If meta is still the one we wrote (our delta is its last), nobody has
                    // confirmed the commit yet: a racing writer may still overwrite it, so it
                    // stays in the journal as unconfirmed, like any other commit.
                    let ours_is_last = !folded
                        && meta.head == p.seq
                        && meta.deltas.last().is_some_and(|d| d.path == p.delta_path);
                    self.state.transaction(|s| {
                        finish_commit(s, &p)?;
                        s.conflicts_pushed(&p.receipts)?;
                        s.unset("supersedes")?;
                        // The commit carried every forced entity (they are pushed whenever set).
                        s.unset(FORCED)?;
                        if ours_is_last {
                            let mut p = p.clone();
                            p.state = "unconfirmed".into();
                            p.meta_etag = Some(etag.0.clone());
                            s.put_pending(&p)
                        } else {
                            s.remove_pending(&p.delta_path)
                        }
                    })?;
                }
                // The meta write never happened, or a racing writer overwrote it before anyone
                // confirmed it: the delta is an orphan. Its entities are still dirty here and
                // go out again; they are also pushed even if this device has changed them back
                // meanwhile, because another device may have read the orphan.
                ("attempted", false) => {
                    // A delta that never reached the server cannot have been read by anyone.
                    let written = self.store.remote().head(&p.delta_path)?.is_some();
                    self.state.transaction(|s| {
                        if written {
                            s.set("supersedes", &p.delta_path)?;
                            add_forced(s, &p)?;
                        }
                        s.remove_pending(&p.delta_path)
                    })?;
                }
                ("unconfirmed", true) => {
                    // Confirmed once a meta written by someone else lists it: a new ETag, or
                    // (the ETag can be reused on Nextcloud) commits on top of it.
                    if folded
                        || p.meta_etag.as_deref() != Some(etag.0.as_str())
                        || meta.head > p.seq
                    {
                        self.state.remove_pending(&p.delta_path)?;
                    }
                }
                ("unconfirmed", false) => {
                    // Two writers both "won" (a server whose If-Match is not atomic) and ours
                    // was overwritten: undo it locally so that its entities are dirty again
                    // and go out in the next commit, merged on top of the winner.
                    tracing::warn!(delta = %p.delta_path, seq = p.seq, "a commit of ours was lost to a racing writer; committing it again");
                    self.state.transaction(|s| {
                        for b in &p.before {
                            s.set_mirror(&b.collection, &b.id, b.mirror.as_ref())?;
                            s.set_base(
                                &b.collection,
                                &b.id,
                                b.base.as_ref().map(|(v, c)| (*v, c)),
                            )?;
                        }
                        s.unmark_applied(&p.delta_path)?;
                        s.conflicts_to_push_again(&p.receipts)?;
                        // Another device may have read the lost commit: whatever this device
                        // holds for its entities now is pushed, even if it equals the base.
                        add_forced(s, &p)?;
                        s.set("supersedes", &p.delta_path)?;
                        let n: u64 = s
                            .get("recommitted")?
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        s.set("recommitted", &(n + 1).to_string())?;
                        s.remove_pending(&p.delta_path)
                    })?;
                    lost += 1;
                }
                _ => self.state.remove_pending(&p.delta_path)?,
            }
        }
        Ok(lost)
    }

    fn scan_all(&self) -> Result<BTreeMap<String, Scan>, EngineError> {
        let mut scans = BTreeMap::new();
        for (name, c) in &self.config.collections {
            scans.insert(name.clone(), collections::scan(&self.root, &c.kind())?);
        }
        Ok(scans)
    }

    /// Step 2: scans the local files and plans every entity.
    fn plan(&self) -> Result<Planned, EngineError> {
        let scans = self.scan_all()?;
        let states = self.state.all_states()?;
        let mut local = BTreeMap::new();
        let mut base = BTreeMap::new();
        let mut remote = BTreeMap::new();
        for ((c, id), st) in &states {
            if !self.config.collections.contains_key(c) {
                continue;
            }
            let key = EntityKey {
                collection: c.clone(),
                id: id.clone(),
            };
            if st.has_base {
                base.insert(
                    key.clone(),
                    BaseSide {
                        version: st.base_version,
                        hash: st.base_hash.clone(),
                    },
                );
            }
            if st.has_mirror {
                // Content decides, not only versions: after a commit lost to a racing writer
                // two records can share a seq, so a mirror that differs from the base counts
                // as changed even when its version is not higher.
                let version = if st.has_base
                    && st.m_hash != st.base_hash
                    && st.m_version <= st.base_version
                {
                    st.base_version + 1
                } else {
                    st.m_version
                };
                remote.insert(
                    key.clone(),
                    RemoteSide {
                        version,
                        hash: st.m_hash.clone(),
                    },
                );
            }
        }
        for (c, scan) in &scans {
            for (id, value) in &scan.entities {
                local.insert(
                    EntityKey {
                        collection: c.clone(),
                        id: id.clone(),
                    },
                    LocalSide {
                        hash: Some(content_hash(value)),
                        unreadable: false,
                    },
                );
            }
            let held: Box<dyn Iterator<Item = &String>> = if scan.whole_collection_held {
                Box::new(
                    states
                        .keys()
                        .filter(|(cc, _)| cc == c)
                        .map(|(_, id)| id)
                        .chain(scan.held.iter()),
                )
            } else {
                Box::new(scan.held.iter())
            };
            for id in held {
                local.insert(
                    EntityKey {
                        collection: c.clone(),
                        id: id.clone(),
                    },
                    LocalSide {
                        hash: None,
                        unreadable: true,
                    },
                );
            }
        }
        // Without a base (lost state, or a new device with files of its own), content equal to
        // an earlier version on the remote is an old copy, not an edit.
        let earlier = self.earlier_contents(planner::needs_history(&local, &base, &remote));
        let plan = planner::plan_with_history(&local, &base, &remote, &earlier);
        Ok(Planned {
            scans,
            plan,
            states,
        })
    }

    /// Content hashes the remote held before its current record, for `keys`, from every delta
    /// still on the remote (archives included). Reads nothing when `keys` is empty, as it
    /// almost always is; a history that cannot be read leaves the entities to the merge.
    fn earlier_contents(
        &self,
        keys: BTreeSet<&EntityKey>,
    ) -> BTreeMap<EntityKey, BTreeSet<String>> {
        let mut out: BTreeMap<EntityKey, BTreeSet<String>> = BTreeMap::new();
        if keys.is_empty() {
            return out;
        }
        let deltas = match self.all_deltas(&crate::progress::NoProgress) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the remote's history; merging without it");
                return out;
            }
        };
        for (_, delta, _) in deltas {
            for r in delta.records {
                let key = EntityKey {
                    collection: r.collection,
                    id: r.id,
                };
                if !r.is_deleted && keys.contains(&key) {
                    out.entry(key).or_default().insert(content_hash(&r.data));
                }
            }
        }
        out
    }

    fn check_mass_delete(&self, planned: &Planned, opts: &SyncOptions) -> Result<(), EngineError> {
        if opts.allow_mass_delete {
            return Ok(());
        }
        let mut deletes: BTreeMap<&str, u64> = BTreeMap::new();
        for (k, op) in &planned.plan.ops {
            if matches!(op, Op::Push(Change::Delete)) {
                *deletes.entry(k.collection.as_str()).or_default() += 1;
            }
        }
        for (c, n) in deletes {
            let total = planned
                .states
                .iter()
                .filter(|((cc, _), st)| cc == c && st.has_base && st.base_hash.is_some())
                .count() as u64;
            let ratio = self.config.sync.mass_delete_ratio;
            // Emptying a collection of more than two entities is refused however small it
            // is: an app that wrote a fresh, empty document is the common way to lose one.
            let empties = n == total && total > 2;
            if empties
                || (n > self.config.sync.mass_delete_min && (n as f64) > ratio * total as f64)
            {
                return Err(EngineError::MassDelete {
                    collection: c.to_string(),
                    deletes: n,
                    total,
                    percent: (ratio * 100.0).round() as u64,
                });
            }
        }
        Ok(())
    }

    /// Runs `f` holding the remote's lease when the remote ignores preconditions (no
    /// compare-and-swap); directly otherwise.
    pub(crate) fn with_lease<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if self.store.remote().capabilities().cas != CasClass::None {
            return f(self);
        }
        let remote = self.store.remote().clone();
        let lease = Lease::acquire(
            remote.as_ref(),
            &self.device_id,
            &self.config.device,
            self.lease.clone(),
        )?;
        let out = f(self);
        lease.release()?;
        out
    }

    /// Runs one sync: fetch, plan, write locally, commit; retried on commit races. On a
    /// remote that ignores preconditions, the whole sync holds the remote's lease.
    pub fn sync(&mut self, opts: &SyncOptions) -> Result<SyncReport, EngineError> {
        self.sync_with(opts, &crate::progress::NoProgress)
    }

    /// [`Engine::sync`], reporting long phases (a new device's first sync: the snapshot) to
    /// `progress`.
    pub fn sync_with(
        &mut self,
        opts: &SyncOptions,
        progress: &dyn crate::progress::Progress,
    ) -> Result<SyncReport, EngineError> {
        if opts.dry_run {
            return self.sync_unleased(opts, progress);
        }
        // A restore killed while it wrote the local files: finish it first, so that no
        // device ever adopts half of it as ordinary edits.
        if let Some(target) = self.pending_restore()? {
            tracing::warn!(
                entities = target.len(),
                "finishing a restore that was interrupted before its commit"
            );
            return self.finish_restore(&target, progress);
        }
        self.with_lease(|e| e.sync_unleased(opts, progress))
    }

    pub(crate) fn sync_unleased(
        &mut self,
        opts: &SyncOptions,
        progress: &dyn crate::progress::Progress,
    ) -> Result<SyncReport, EngineError> {
        let started = Instant::now();
        let mut retry = self.commit_retry();
        let mut report = SyncReport {
            dry_run: opts.dry_run,
            ..SyncReport::default()
        };
        let mut round = 0;
        loop {
            let (meta, etag, _) = self.fetch_with(progress)?;
            if !meta.writable() && !opts.dry_run {
                return Err(EngineError::ReadOnly(meta.min_writer));
            }
            let planned = self.plan()?;
            report.collections = collection_reports(&planned);
            report.problems = planned
                .scans
                .values()
                .flat_map(|s| {
                    s.problems
                        .iter()
                        .map(|p| format!("{}: {}", p.file.display(), p.message))
                })
                .collect();
            report.head = meta.head;
            self.check_mass_delete(&planned, opts)?;
            if opts.dry_run {
                report.conflicts = self.preview_conflicts(&planned)?;
                return Ok(report);
            }
            let outgoing = self.execute(&planned, &mut report)?;
            let receipts = self.state.conflicts_to_push()?;
            if outgoing.is_empty() && receipts.is_empty() {
                self.finish_stats(&report, started)?;
                return Ok(report);
            }
            match self.commit(&meta, &etag, outgoing, receipts) {
                Ok(seq) => {
                    report.committed = Some(seq);
                    report.head = seq;
                    report.retries = round;
                    report.recommitted = self
                        .state
                        .get("recommitted")?
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    self.finish_stats(&report, started)?;
                    return Ok(report);
                }
                // Someone committed first, or our commit's answer was lost: the next fetch
                // pulls their work (and finds out about ours from the journal).
                Err(EngineError::Store(StoreError::Conflict | StoreError::CommitUnknown)) => {
                    tracing::debug!(round, "someone committed first; pulling and trying again");
                    if !retry.wait() {
                        return Err(EngineError::TooManyRetries(round + 1));
                    }
                }
                Err(e) => return Err(e),
            }
            round += 1;
        }
    }

    pub(crate) fn commit_retry(&self) -> CommitRetry {
        let (backoff, budget) = if self.store.remote().describe().starts_with("http") {
            (
                Backoff::new(Duration::from_millis(50), Duration::from_secs(4), u32::MAX),
                NETWORK_COMMIT_BUDGET,
            )
        } else {
            (
                Backoff::new(
                    Duration::from_millis(1),
                    Duration::from_millis(50),
                    MAX_ROUNDS,
                ),
                Duration::ZERO,
            )
        };
        CommitRetry {
            backoff,
            rounds: 0,
            started: Instant::now(),
            budget,
        }
    }

    fn finish_stats(&self, report: &SyncReport, started: Instant) -> Result<(), EngineError> {
        let now = now_ms();
        let ms = started.elapsed().as_millis() as u64;
        for (c, r) in &report.collections {
            self.state.set_sync_state(
                c,
                &CollectionSyncState {
                    last_sync_ms: now,
                    up: r.up.new + r.up.updated + r.up.deleted,
                    down: r.down.new + r.down.updated + r.down.deleted,
                    duration_ms: ms,
                },
            )?;
        }
        Ok(())
    }

    /// Step 3: writes pulls and merges locally, updates bases; returns the records to push
    /// (without version and clock yet): (collection, id, content or None for a delete).
    fn execute(
        &mut self,
        planned: &Planned,
        report: &mut SyncReport,
    ) -> Result<Vec<Outgoing>, EngineError> {
        let mut outgoing = Vec::new();
        let forced = forced(&self.state)?;
        // Per collection: local writes, the base to record once written, and pushes that
        // depend on the write.
        for (cname, cconf) in &self.config.collections {
            // Receipts are recorded with the bases, after the local writes, so that a crash in
            // between leaves neither (the merge is simply done again).
            let mut receipts: Vec<(String, ConflictReceipt)> = Vec::new();
            let scan = &planned.scans[cname];
            let strategy = cconf.strategy;
            let mut writes: Vec<Write> = Vec::new();
            let mut after_write: Vec<AfterWrite> = Vec::new();
            let mut adopt: Vec<(String, u64, Option<Value>)> = Vec::new();
            for (key, op) in planned.plan.ops.range(
                EntityKey {
                    collection: cname.clone(),
                    id: String::new(),
                }..,
            ) {
                if &key.collection != cname {
                    break;
                }
                let id = &key.id;
                let local = scan.entities.get(id);
                match op {
                    Op::Hold => {}
                    Op::Unchanged | Op::Adopt
                        if forced.get(&(cname.clone(), id.clone())).is_some_and(|seq| {
                            planned
                                .states
                                .get(&(cname.clone(), id.clone()))
                                .is_none_or(|st| st.m_version < *seq)
                        }) =>
                    {
                        let clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        outgoing.push((cname.clone(), id.clone(), local.cloned(), clock));
                    }
                    Op::Unchanged => {}
                    Op::Push(_) => {
                        let clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        outgoing.push((cname.clone(), id.clone(), local.cloned(), clock));
                    }
                    Op::Adopt => {
                        let m = self.state.mirror(cname, id)?;
                        if let Some(m) = m {
                            adopt.push((id.clone(), m.version, m.content));
                        }
                    }
                    Op::Pull(_) => {
                        let Some(m) = self.state.mirror(cname, id)? else {
                            continue;
                        };
                        if local.map(content_hash) == m.content.as_ref().map(content_hash) {
                            adopt.push((id.clone(), m.version, m.content));
                            continue;
                        }
                        writes.push(match &m.content {
                            Some(v) => Write::Put {
                                id: id.clone(),
                                value: v.clone(),
                            },
                            None => Write::Delete { id: id.clone() },
                        });
                        after_write.push((id.clone(), Some((m.version, m.content.clone())), None));
                    }
                    Op::Merge => {
                        let local_clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        let (outcome, m) =
                            self.merge_entity(cname, id, local, local_clock, strategy)?;
                        let (m_content, m_version) = match &m {
                            Some(m) => (m.content.as_ref(), m.version),
                            None => (None, 0),
                        };
                        for fc in outcome.conflicts {
                            receipts.push((id.clone(), self.receipt(cname, id, fc, local_clock)));
                        }
                        let merged = outcome.value;
                        let local_differs =
                            local.map(content_hash) != merged.as_ref().map(content_hash);
                        let remote_differs =
                            m_content.map(content_hash) != merged.as_ref().map(content_hash);
                        // The merged version comes after both sides it merges.
                        let merged_clock = m
                            .as_ref()
                            .map(|m| local_clock.observe(m.clock, now_ms()))
                            .unwrap_or(local_clock);
                        let push = if remote_differs {
                            Some((merged.clone(), merged_clock))
                        } else {
                            None
                        };
                        let new_base = if m.is_some() {
                            Some((m_version, m_content.cloned()))
                        } else {
                            None
                        };
                        if local_differs {
                            writes.push(match &merged {
                                Some(v) => Write::Put {
                                    id: id.clone(),
                                    value: v.clone(),
                                },
                                None => Write::Delete { id: id.clone() },
                            });
                            after_write.push((id.clone(), new_base, push));
                        } else {
                            // Nothing to write locally: record the base now.
                            if let Some((v, c)) = new_base {
                                adopt.push((id.clone(), v, c));
                            }
                            if let Some((p, clock)) = push {
                                outgoing.push((cname.clone(), id.clone(), p, clock));
                            }
                        }
                    }
                }
            }
            // Local writes, never over a save the app made since the scan.
            let mut skipped: BTreeSet<String> = BTreeSet::new();
            // Writes the collection cannot make (an id too long for a file name, a value that
            // is not an object, too deep): held with a reason, the rest goes on.
            let mut refused: BTreeSet<String> = BTreeSet::new();
            if !writes.is_empty() {
                match collections::apply(&self.root, &cconf.kind(), &writes, &scan.fingerprint) {
                    Ok(r) => {
                        skipped.extend(r.skipped);
                        for why in r.refused {
                            refused.insert(why.id().to_owned());
                            report.problems.push(format!("{cname}: {why}"));
                        }
                    }
                    Err(CollectionError::ChangedMeanwhile { .. }) => {
                        skipped.extend(after_write.iter().map(|(id, _, _)| id.clone()));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            for id in skipped.difference(&refused) {
                report.deferred.push(format!("{cname}/{id}"));
            }
            receipts.retain(|(id, _)| !skipped.contains(id));
            self.state.transaction(|s| {
                for (_, r) in &receipts {
                    s.put_conflict(r, true)?;
                }
                for (id, v, c) in &adopt {
                    s.set_base(cname, id, Some((*v, c)))?;
                }
                for (id, base, _) in &after_write {
                    if skipped.contains(id) {
                        continue;
                    }
                    match base {
                        Some((v, c)) => s.set_base(cname, id, Some((*v, c)))?,
                        None => s.set_base(cname, id, None)?,
                    }
                }
                Ok(())
            })?;
            report
                .conflicts
                .extend(receipts.into_iter().map(|(_, r)| r));
            for (id, _, push) in after_write {
                if skipped.contains(&id) {
                    continue;
                }
                if let Some((p, clock)) = push {
                    outgoing.push((cname.clone(), id, p, clock));
                }
            }
        }
        // Forced entities that exist nowhere any more (created by the lost commit, deleted
        // here since): a tombstone replaces what other devices took from the lost delta.
        for (c, id) in forced.keys() {
            let key = EntityKey {
                collection: c.clone(),
                id: id.clone(),
            };
            if self.config.collections.contains_key(c) && !planned.plan.ops.contains_key(&key) {
                let clock = self.state.clock()?.tick(now_ms());
                self.state.set_clock(clock)?;
                outgoing.push((c.clone(), id.clone(), None, clock));
            }
        }
        Ok(outgoing)
    }

    /// The clock of a local change: when the app saved it (the file's mtime), but never
    /// before the version it was made on — a change is always later than what it changed, so
    /// a device whose wall clock is wrong wins only against edits made concurrently, never
    /// against edits made after seeing its own. Without an mtime (a deletion): now.
    fn edit_clock(
        &self,
        collection: &str,
        cconf: &crate::config::CollectionConfig,
        scan: &Scan,
        id: &str,
        store: bool,
    ) -> Result<Hlc, EngineError> {
        let saved = match &scan.fingerprint {
            collections::Fingerprint::Dir { files, .. } => files.get(id).and_then(|f| f.mtime),
            collections::Fingerprint::File { .. } => std::fs::metadata(self.root.join(&cconf.path))
                .and_then(|m| m.modified())
                .ok(),
        }
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
        let base = self.state.base_clock(collection, id)?;
        let after_base = Hlc {
            ms: base.ms,
            counter: base.counter.saturating_add(1),
        };
        let device = self.state.clock()?;
        let clock = match saved {
            Some(ms) => Hlc { ms, counter: 0 }.max(after_base),
            None => device.tick(now_ms()).max(after_base),
        };
        if store {
            self.state.set_clock(device.max(clock))?;
        }
        Ok(clock)
    }

    /// Three-way merge of one entity: local content (changed at `local_clock`) against the
    /// mirror, from the base. Returns the outcome and the mirror record.
    fn merge_entity(
        &self,
        collection: &str,
        id: &str,
        local: Option<&Value>,
        local_clock: Hlc,
        strategy: crate::merge::Strategy,
    ) -> Result<(crate::merge::MergeOutcome, Option<MirrorRecord>), EngineError> {
        let m = self.state.mirror(collection, id)?;
        let base = self.state.base(collection, id)?;
        let base_content = base.as_ref().and_then(|(_, c)| c.as_ref());
        let (m_content, m_clock, m_device) = match &m {
            Some(m) => (m.content.as_ref(), m.clock, m.device.as_str()),
            None => (None, Hlc::default(), ""),
        };
        let outcome = merge3(
            base_content,
            Side {
                value: local,
                clock: local_clock,
                device: &self.device_id,
            },
            Side {
                value: m_content,
                clock: m_clock,
                device: m_device,
            },
            strategy,
        );
        Ok((outcome, m))
    }

    fn receipt(
        &self,
        collection: &str,
        id: &str,
        fc: crate::merge::FieldConflict,
        at: Hlc,
    ) -> ConflictReceipt {
        ConflictReceipt {
            id: format!("{}-{}-{:04x}", self.device_id, now_ms(), fastrand::u16(..)),
            collection: collection.to_string(),
            entity_id: id.to_string(),
            field: fc.field,
            kind: fc.kind,
            kept: fc.kept,
            kept_by: fc.kept_by,
            lost: fc.lost,
            lost_by: fc.lost_by,
            at,
            resolved: false,
            extra: Default::default(),
        }
    }

    /// The conflicts a sync would record, without recording them (dry run).
    fn preview_conflicts(&self, planned: &Planned) -> Result<Vec<ConflictReceipt>, EngineError> {
        let mut out = Vec::new();
        for (key, op) in &planned.plan.ops {
            if *op != Op::Merge {
                continue;
            }
            let Some(cconf) = self.config.collections.get(&key.collection) else {
                continue;
            };
            let scan = &planned.scans[&key.collection];
            let local = scan.entities.get(&key.id);
            let at = self.edit_clock(&key.collection, cconf, scan, &key.id, false)?;
            let (outcome, _) =
                self.merge_entity(&key.collection, &key.id, local, at, cconf.strategy)?;
            for fc in outcome.conflicts {
                out.push(self.receipt(&key.collection, &key.id, fc, at));
            }
        }
        Ok(out)
    }

    /// Step 4: one delta, then meta.json by compare-and-swap.
    fn commit(
        &mut self,
        meta: &Meta,
        etag: &Etag,
        outgoing: Vec<Outgoing>,
        receipts: Vec<ConflictReceipt>,
    ) -> Result<u64, EngineError> {
        let seq = meta.head + 1;
        let time = now_ms();
        let mut records = Vec::with_capacity(outgoing.len());
        let mut before = Vec::with_capacity(outgoing.len());
        for (c, id, content, clock) in outgoing {
            before.push(BeforeCommit {
                collection: c.clone(),
                id: id.clone(),
                base: self.state.base(&c, &id)?,
                mirror: self.state.mirror(&c, &id)?,
            });
            records.push(EntityRecord {
                collection: c,
                id,
                version: seq,
                last_modified_at: clock,
                last_modified_by: self.device_id.clone(),
                is_deleted: content.is_none(),
                data: content.unwrap_or(Value::Null),
                // A new version of the record: what a newer writer said of the last one
                // does not hold for it.
                extra: Default::default(),
            });
        }
        let supersedes = self.state.get("supersedes")?;
        let delta = Delta {
            format: FORMAT_VERSION,
            min_reader: 1,
            seq,
            device: self.device_id.clone(),
            time,
            supersedes: supersedes.clone(),
            records,
            conflicts: receipts.clone(),
        };
        let generation = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
        let dref = self.store.write_delta(&delta, generation)?;
        crate::maintenance::cache_delta(&self.root, &dref, &delta);
        let mut pending = PendingCommit {
            delta_path: dref.path.clone(),
            seq,
            state: "attempted".into(),
            meta_etag: None,
            before,
            records: delta.records.clone(),
            receipts: receipts.iter().map(|r| r.id.clone()).collect(),
        };
        self.state.put_pending(&pending)?;
        let mut next = meta.clone();
        next.head = seq;
        next.deltas.push(dref.clone());
        for r in &delta.records {
            next.entity_versions
                .entry(r.collection.clone())
                .or_default()
                .insert(r.id.clone(), seq);
        }
        next.last_sync_timestamp = time;
        let dev = next.devices.entry(self.device_id.clone()).or_default();
        dev.name = self.config.device.clone();
        dev.last_commit = time;
        match self.store.commit_meta(&mut next, etag) {
            Ok(new_etag) => {
                pending.state = "unconfirmed".into();
                pending.meta_etag = Some(new_etag.0.clone());
                let ids: Vec<String> = receipts.iter().map(|r| r.id.clone()).collect();
                let meta_text = String::from_utf8(next.to_bytes()).unwrap_or_default();
                self.state.transaction(|s| {
                    finish_commit(s, &pending)?;
                    s.put_pending(&pending)?;
                    s.conflicts_pushed(&ids)?;
                    s.unset("supersedes")?;
                    s.unset(FORCED)?;
                    s.set("meta", &meta_text)?;
                    s.set("meta_etag", &new_etag.0)?;
                    s.set(REREAD_META, "1")
                })?;
                Ok(seq)
            }
            // A plain 412: meta was never written with our delta. The delta is an orphan
            // that the next commit names in `supersedes`; it is left for compaction to remove
            // after a grace period rather than deleted now, in case a slow reader holds a meta
            // that lists it (on a server whose If-Match is not atomic, one might).
            Err(StoreError::Conflict) => {
                self.state.transaction(|s| {
                    s.remove_pending(&dref.path)?;
                    s.set("supersedes", &dref.path)
                })?;
                Err(StoreError::Conflict.into())
            }
            // Unknown outcome: the journal entry stays "attempted" and the next fetch decides.
            Err(e) => Err(e.into()),
        }
    }

    /// Folds every delta into a new snapshot (generation + 1) built from this device's
    /// mirror, archives the folded deltas and commits meta by compare-and-swap; returns the
    /// new generation (`None`: nothing to fold). The folded deltas' folder is removed at
    /// once, which suits a remote nobody else writes to at that moment (tests, the demo);
    /// [`Engine::compact_with`] with default options (the `compact` command) waits until no
    /// writer can still be creating a delta there.
    pub fn compact(&mut self) -> Result<Option<u64>, EngineError> {
        let report = self.compact_with(
            &crate::maintenance::CompactOptions {
                settle_ms: Some(0),
                ..Default::default()
            },
            &crate::progress::NoProgress,
        )?;
        Ok(report.generation)
    }

    /// Status of the workspace (no request).
    pub fn status(&self) -> Result<Status, EngineError> {
        let head = self.cached_meta()?.map(|(m, _)| m.head).unwrap_or(0);
        let mut collections = BTreeMap::new();
        let states = self.state.all_states()?;
        for name in self.config.collections.keys() {
            let remote_entities = states
                .iter()
                .filter(|((c, _), s)| c == name && s.has_mirror && s.m_hash.is_some())
                .count() as u64;
            collections.insert(
                name.clone(),
                CollectionStatus {
                    remote_entities,
                    last_sync: self.state.sync_state(name)?,
                },
            );
        }
        Ok(Status {
            device_id: self.device_id.clone(),
            device: self.config.device.clone(),
            remote: self.store.remote().describe(),
            head,
            unconfirmed_commits: self.state.pending()?.len(),
            open_conflicts: self
                .state
                .conflicts()?
                .iter()
                .filter(|c| !c.resolved)
                .count(),
            collections,
        })
    }

    /// Every conflict receipt this device knows, open first.
    pub fn conflicts(&self) -> Result<Vec<ConflictReceipt>, EngineError> {
        Ok(self.state.conflicts()?)
    }

    /// Resolves a conflict by taking the value this device wrote (`take_local`) or the other
    /// device's, writing it into the local entity. The next sync pushes it and the resolution.
    pub fn resolve_conflict(
        &mut self,
        id: &str,
        take_local: bool,
    ) -> Result<ConflictReceipt, EngineError> {
        let mut receipt = self
            .state
            .conflicts()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| EngineError::NoSuchConflict(id.to_string()))?;
        self.check_collection(&receipt.collection)?;
        let mine_is_lost = receipt.lost_by == self.device_id;
        let take_lost = if take_local {
            mine_is_lost
        } else {
            !mine_is_lost
        };
        let value = if take_lost {
            receipt.lost.clone()
        } else {
            receipt.kept.clone()
        };
        let kind = self.config.collections[&receipt.collection].kind();
        let scan = collections::scan(&self.root, &kind)?;
        let current = scan.entities.get(&receipt.entity_id).cloned();
        let new = set_path(current, &receipt.field, value);
        let write = match new {
            Some(v) => Write::Put {
                id: receipt.entity_id.clone(),
                value: v,
            },
            None => Write::Delete {
                id: receipt.entity_id.clone(),
            },
        };
        let r = collections::apply(&self.root, &kind, &[write], &scan.fingerprint)?
            .refusal_as_error(
                &self
                    .root
                    .join(&self.config.collections[&receipt.collection].path),
            )?;
        if !r.skipped.is_empty() {
            return Err(CollectionError::ChangedMeanwhile {
                path: self.root.clone(),
            }
            .into());
        }
        receipt.resolved = true;
        self.state.put_conflict(&receipt, true)?;
        Ok(receipt)
    }
}

/// Sets `value` at `path` inside `entity` (`null` at the root deletes the entity; `null` at a
/// field removes it).
fn set_path(entity: Option<Value>, path: &[String], value: Value) -> Option<Value> {
    if path.is_empty() {
        return if value.is_null() { None } else { Some(value) };
    }
    let mut root = entity.unwrap_or_else(|| Value::Object(Default::default()));
    let mut cur = &mut root;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let obj = cur.as_object_mut().expect("object ensured above");
        if i + 1 == path.len() {
            if value.is_null() {
                obj.remove(key);
            } else {
                obj.insert(key.clone(), value);
            }
            break;
        }
        cur = obj
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Some(root)
}

fn mirror_of(r: &EntityRecord) -> MirrorRecord {
    MirrorRecord {
        version: r.version,
        clock: r.last_modified_at,
        device: r.last_modified_by.clone(),
        content: if r.is_deleted {
            None
        } else {
            Some(r.data.clone())
        },
        extra: r.extra.clone(),
    }
}

const FORCED: &str = "force_push";

/// Entities to push in the next commit whatever the planner says (see `add_forced`), with
/// the seq of the lost commit that wrote them.
fn forced(s: &State) -> Result<BTreeMap<(String, String), u64>, StateError> {
    Ok(match s.get(FORCED)? {
        Some(text) => serde_json::from_str::<Vec<((String, String), u64)>>(&text)?
            .into_iter()
            .collect(),
        None => BTreeMap::new(),
    })
}

/// Marks the entities of a lost commit to be pushed in the next commit: other devices may
/// have applied the lost delta, and only a newer record replaces what they took from it.
/// (An entity that someone wrote at or after the lost seq needs no push: that record, read
/// after the lost one everywhere, replaces it already.)
fn add_forced(s: &State, p: &PendingCommit) -> Result<(), StateError> {
    let mut map = forced(s)?;
    for r in &p.records {
        map.insert((r.collection.clone(), r.id.clone()), p.seq);
    }
    let list: Vec<_> = map.into_iter().collect();
    s.set(FORCED, &serde_json::to_string(&list)?)
}

/// The local side of a commit known to be in meta: base and mirror take the records.
fn finish_commit(s: &State, p: &PendingCommit) -> Result<(), StateError> {
    for r in &p.records {
        let m = mirror_of(r);
        s.set_mirror(&r.collection, &r.id, Some(&m))?;
        s.set_base(&r.collection, &r.id, Some((r.version, &m.content)))?;
    }
    s.mark_applied(&p.delta_path, p.seq)
}

fn collection_reports(planned: &Planned) -> BTreeMap<String, CollectionReport> {
    let mut out: BTreeMap<String, CollectionReport> = planned
        .scans
        .keys()
        .map(|c| (c.clone(), CollectionReport::default()))
        .collect();
    for (k, op) in &planned.plan.ops {
        let Some(r) = out.get_mut(&k.collection) else {
            continue;
        };
        match op {
            Op::Unchanged | Op::Adopt => r.unchanged += 1,
            Op::Hold => r.held += 1,
            Op::Merge => r.merged += 1,
            Op::Push(c) => bump(&mut r.up, *c),
            Op::Pull(c) => bump(&mut r.down, *c),
        }
    }
    out
}

fn bump(c: &mut planner::Counts, change: Change) {
    match change {
        Change::Create => c.new += 1,
        Change::Update => c.updated += 1,
        Change::Delete => c.deleted += 1,
    }
}
