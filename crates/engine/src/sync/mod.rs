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
//!
//! Each step has its file: [`fetch`], [`plan`], [`execute`], [`commit`] (the whole commit
//! protocol and its journal); this one holds the engine itself, the round that runs the steps
//! under the lease, and the status. Errors are in [`error`], options and reports in
//! [`report`], the field-level dry run in [`preview`].

mod commit;
mod early;
mod error;
mod execute;
mod fetch;
mod plan;
mod preview;
mod report;

pub(crate) use early::*;
pub use error::EngineError;
pub(crate) use execute::*;
pub use execute::{FLUSHING, WRITE_CHUNK};
pub use fetch::STALE_ETAG_BOUND;
pub(crate) use fetch::*;
pub use plan::FULL_SCAN_INTERVAL;
pub(crate) use plan::*;
pub use preview::{
    Action, Decision, DeviceName, EntityPreview, FieldPreview, MassDeleteRefusal, Preview,
    SideName, Written,
};
pub use report::{CollectionReport, CollectionStatus, HeldFile, Status, SyncOptions, SyncReport};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltasync_lock::{Backoff, Lease, LeaseConfig, LeaseError};
use deltasync_meta::{
    ConflictReceipt, DELTAS_DIR, Delta, EntityRecord, FORMAT_VERSION, Hlc, Meta, Snapshot,
    StreamError, content_hash,
};
use deltasync_remote::{Cached, CasClass, Etag, Remote, RemoteError};
use deltasync_store::{MetaRead, Store, StoreError, now_ms};
use serde::Serialize;
use serde_json::Value;

use crate::collections::{self, CollectionError, Scan, Write};
use crate::config::{Config, ConfigError};
use crate::merge::{Side, merge3};
use crate::planner::{self, BaseSide, Change, EntityKey, LocalSide, Op, RemoteSide};
use crate::state::{
    BeforeCommit, CollectionSyncState, JournalHead, JournalState, MirrorRecord, PendingCommit,
    State, StateError,
};

/// The folder of local state inside a workspace.
pub const STATE_DIR: &str = ".deltasync";

/// The sync engine of one workspace.
pub struct Engine {
    root: PathBuf,
    config: Config,
    state: State,
    store: Store,
    /// The remote under the store, seen as the [`Cached`] layer that keeps this device's copies
    /// of deltas (`.deltasync/cache/deltas/`): compaction asks it which it holds.
    cache: Arc<Cached<Arc<dyn Remote>>>,
    device_id: String,
    lease: LeaseConfig,
    /// The local copy of meta.json, parsed, under the [`State::meta_key`] it was read with:
    /// a fetch answered 304 (and `status`) takes it from here instead of parsing it again.
    meta_cache: std::sync::Mutex<Option<CachedMeta>>,
    /// How long a file must have been unchanged before a scan for its stat to stand in for
    /// it next time ([`collections::RACY_WINDOW`]).
    racy_window: Duration,
    /// How many local writes of a `dir` collection are made and recorded at once
    /// ([`WRITE_CHUNK`] unless set).
    write_chunk: usize,
}

/// The parsed local copy of meta.json and the state's [`State::meta_key`] it belongs to.
pub(crate) struct CachedMeta {
    key: (String, Option<String>),
    meta: Arc<Meta>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.root)
            .field("device_id", &self.device_id)
            .finish()
    }
}

impl Engine {
    /// Opens a workspace with a given configuration and remote (tests, an app with its own
    /// backend; [`crate::Workspace::open`] opens the remote its configuration names).
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
        let backoff = if remote.capabilities().weak_window_ms > 0 || remote.capabilities().networked
        {
            Backoff::standard()
        } else {
            Backoff::new(
                std::time::Duration::from_millis(2),
                std::time::Duration::from_millis(200),
                8,
            )
        };
        // Deltas never change: each is downloaded once per device, whoever reads it (the fetch,
        // the chain walk, log, compaction's archive).
        let cache = Arc::new(Cached::new(
            remote,
            root.join(STATE_DIR).join("cache").join(DELTAS_DIR),
        ));
        Ok(Engine {
            root: root.to_path_buf(),
            config,
            state,
            store: Store::new(cache.clone()).with_backoff(backoff),
            cache,
            device_id,
            lease: LeaseConfig::default(),
            meta_cache: std::sync::Mutex::new(None),
            racy_window: collections::RACY_WINDOW,
            write_chunk: WRITE_CHUNK,
        })
    }

    /// Sets the timing of the lease taken on remotes without compare-and-swap.
    pub fn set_lease_config(&mut self, lease: LeaseConfig) {
        self.lease = lease;
    }

    /// Sets how long a file must have been unchanged, before a scan, for its stat to stand in
    /// for reading it at the next sync ([`collections::RACY_WINDOW`] unless set). Lower it
    /// only where nothing writes a file in the same clock tick as a scan reads it (tests of
    /// the stat cache).
    pub fn set_racy_window(&mut self, window: Duration) {
        self.racy_window = window;
    }

    /// Sets how many local writes of a `dir` collection a sync makes, and records the bases
    /// of, at once ([`WRITE_CHUNK`] unless set; at least 1): what a large pull (a new device's
    /// bootstrap) holds in memory is one chunk of contents. Lower it in tests to make a small
    /// pull take many chunks.
    pub fn set_write_chunk(&mut self, n: usize) {
        self.write_chunk = n.max(1);
    }

    /// Makes the next sync read every local file, whatever the stat cache says (it does so by
    /// itself every [`FULL_SCAN_INTERVAL`]).
    pub fn forget_file_stats(&self) -> Result<(), EngineError> {
        self.state.forget_known_files()?;
        // A sync handed a watcher's touched paths reads every file too.
        self.state.unset(plan::FULL_SCAN_MS)?;
        Ok(())
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
        // The work is done (or failed on its own): a lease left behind expires by itself,
        // so failing to release it is worth a warning, never the result's place.
        if let Err(e) = lease.release() {
            tracing::warn!(error = %e, "could not release the remote's lease; it expires by itself");
        }
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
        self.sync_scoped(opts, None, progress)
    }

    /// [`Engine::sync`] for a file watcher that knows the local changes by path: a `dir`
    /// collection not touched as a whole reads only the `touched` files, besides the entities
    /// the remote changed and those whose base changed since their file was read, and takes
    /// no other entity for changed or deleted (an edit nobody reported is found by the next
    /// sync that lists the folder, or by the full scan every [`FULL_SCAN_INTERVAL`], which
    /// this sync makes too when it is due).
    pub fn sync_touched(
        &mut self,
        opts: &SyncOptions,
        touched: &BTreeSet<crate::Touched>,
    ) -> Result<SyncReport, EngineError> {
        self.sync_scoped(opts, Some(touched), &crate::progress::NoProgress)
    }

    fn sync_scoped(
        &mut self,
        opts: &SyncOptions,
        touched: Option<&BTreeSet<crate::Touched>>,
        progress: &dyn crate::progress::Progress,
    ) -> Result<SyncReport, EngineError> {
        if opts.dry_run {
            return self.sync_unleased_scoped(opts, touched, progress);
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
        self.with_lease(|e| e.sync_unleased_scoped(opts, touched, progress))
    }

    pub(crate) fn sync_unleased(
        &mut self,
        opts: &SyncOptions,
        progress: &dyn crate::progress::Progress,
    ) -> Result<SyncReport, EngineError> {
        self.sync_unleased_scoped(opts, None, progress)
    }

    /// One sync under the lease; `touched`: see [`Engine::sync_touched`].
    fn sync_unleased_scoped(
        &mut self,
        opts: &SyncOptions,
        touched: Option<&BTreeSet<crate::Touched>>,
        progress: &dyn crate::progress::Progress,
    ) -> Result<SyncReport, EngineError> {
        let started = Instant::now();
        self.recover_staging()?;
        let mut retry = self.commit_retry();
        let mut report = SyncReport {
            dry_run: opts.dry_run,
            ..SyncReport::default()
        };
        let mut round = 0;
        // Rounds of this sync whose commit went unanswered (seq, what the round counted): a
        // later round's fetch may find the commit in meta.json and finish it.
        let mut unanswered: Vec<(u64, BTreeMap<String, CollectionReport>)> = Vec::new();
        // Seqs of this device's commits that this sync's fetches found and finished.
        let mut finished = Vec::new();
        loop {
            let fetched = self.fetch_finishing(progress, !opts.dry_run)?;
            finished.extend(fetched.finished);
            let (meta, etag) = (fetched.meta, fetched.etag);
            if !meta.writable() && !opts.dry_run {
                return Err(EngineError::ReadOnly(meta.min_writer));
            }
            let planned = self.plan_scoped(!opts.dry_run, touched)?;
            report.collections = collection_reports(&planned);
            report.problems = planned.problems();
            report.head = meta.head;
            self.check_mass_delete(&planned, opts)?;
            if opts.dry_run {
                report.conflicts = self.preview_conflicts(&planned)?;
                return Ok(report);
            }
            let outgoing = self.execute(&planned, &mut report, progress, fetched.staged)?;
            let receipts = self.state.conflicts_to_push()?;
            if outgoing.is_empty() && receipts.is_empty() {
                self.count_unanswered(&mut report, &unanswered, &finished, round);
                self.finish_stats(&report, started)?;
                return Ok(report);
            }
            let counted = report.collections.clone();
            match self.commit(&meta, &etag, outgoing, receipts) {
                Ok(seq) => {
                    self.count_unanswered(&mut report, &unanswered, &finished, round);
                    report.committed = Some(seq);
                    report.head = seq;
                    report.retries = round;
                    report.recommitted = self.state.recommitted()?;
                    self.finish_stats(&report, started)?;
                    return Ok(report);
                }
                Err(EngineError::Store(StoreError::CommitUnknown)) => {
                    tracing::debug!(round, "our commit's answer was lost; the next fetch tells");
                    unanswered.push((meta.head + 1, counted));
                    if !retry.wait() {
                        return Err(EngineError::TooManyRetries(round + 1));
                    }
                }
                // Someone committed first: the next fetch pulls their work.
                Err(EngineError::Store(StoreError::Conflict)) => {
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

    /// Adds to `report` the rounds of this sync whose commit went unanswered and that a later
    /// fetch found in meta.json (and finished): their commit is this sync's too, with what
    /// they pushed and pulled, so the report says what was committed, not just what the last
    /// round had left to do.
    fn count_unanswered(
        &self,
        report: &mut SyncReport,
        unanswered: &[(u64, BTreeMap<String, CollectionReport>)],
        finished: &[u64],
        round: u32,
    ) {
        for (seq, counted) in unanswered {
            if !finished.contains(seq) {
                continue; // lost, and made again by a later round
            }
            report.committed = report.committed.max(Some(*seq));
            report.head = report.head.max(*seq);
            report.retries = round;
            for (c, r) in counted {
                let into = report.collections.entry(c.clone()).or_default();
                into.up.new += r.up.new;
                into.up.updated += r.up.updated;
                into.up.deleted += r.up.deleted;
                into.down.new += r.down.new;
                into.down.updated += r.down.updated;
                into.down.deleted += r.down.deleted;
                into.merged += r.merged;
            }
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

    /// Status of the workspace (no request): the remote as this device last saw it, what
    /// needs a person (held files, open receipts), and the local changes not pushed yet (the
    /// collections are scanned).
    pub fn status(&self) -> Result<Status, EngineError> {
        let meta = self.cached_meta()?.map(|(m, _)| m);
        let head = meta.as_ref().map(|m| m.head).unwrap_or(0);
        let mut collections = BTreeMap::new();
        let states = self.state.all_states()?;
        let forced = self.state.forced()?;
        let scans = self.scan_all(&states, &forced, false)?;
        let mut held = Vec::new();
        let mut last_checked_ms = self
            .state
            .get(fetch::META_READ_MS)?
            .and_then(|v| v.parse::<u64>().ok());
        for name in self.config.collections.keys() {
            let remote_entities = states
                .iter()
                .filter(|((c, _), s)| c == name && s.has_mirror && s.m_hash.is_some())
                .count() as u64;
            let (scan, _) = &scans[name];
            let state_of = |id: &str| states.get(&(name.clone(), id.to_owned()));
            // Changed here: content other than the base (without a base: other than the
            // remote's), or a base that is no longer here (deleted); held ones not counted.
            let mut local_changes = scan
                .entities
                .iter()
                .filter(|(id, v)| {
                    let hash = Some(content_hash(v));
                    match state_of(id) {
                        Some(st) if st.has_base => st.base_hash != hash,
                        Some(st) => st.m_hash != hash,
                        None => true,
                    }
                })
                .count() as u64;
            if !scan.whole_collection_held {
                local_changes += states
                    .iter()
                    .filter(|((c, id), st)| {
                        c == name
                            && st.has_base
                            && st.base_hash.is_some()
                            && !scan.has(id)
                            && !scan.held.contains(id)
                    })
                    .count() as u64;
            }
            for p in &scan.problems {
                held.push(report::HeldFile {
                    collection: name.clone(),
                    file: p.file.clone(),
                    reason: p.message.clone(),
                    ids: p.ids.clone().unwrap_or_default(),
                });
            }
            let last_sync = self.state.sync_state(name)?;
            if let Some(l) = &last_sync {
                last_checked_ms = last_checked_ms.max(Some(l.last_sync_ms));
            }
            collections.insert(
                name.clone(),
                CollectionStatus {
                    remote_entities,
                    local_changes,
                    last_sync,
                },
            );
        }
        let capabilities = self.store.remote().capabilities();
        let open_receipts: Vec<ConflictReceipt> = self
            .state
            .conflicts()?
            .into_iter()
            .filter(|c| !c.resolved)
            .collect();
        Ok(Status {
            device_id: self.device_id.clone(),
            device: self.config.device.clone(),
            remote: self.store.remote().describe(),
            head,
            unconfirmed_commits: self.state.pending_states()?.len(),
            open_conflicts: open_receipts.len(),
            open_receipts,
            held,
            last_checked_ms,
            remote_class: capabilities.cas.to_string(),
            weak_window_ms: capabilities.weak_window_ms,
            recorded_verdict: meta.and_then(|m| m.server.clone()),
            collections,
        })
    }

    /// The devices this device knows of, id → name, from its copy of meta.json (no request),
    /// this device's own name included.
    pub fn device_names(&self) -> Result<BTreeMap<String, String>, EngineError> {
        let mut names: BTreeMap<String, String> = self
            .cached_meta()?
            .map(|(m, _)| {
                m.devices
                    .iter()
                    .map(|(id, d)| (id.clone(), d.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        names.insert(self.device_id.clone(), self.config.device.clone());
        Ok(names)
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

fn collection_reports(planned: &Planned) -> BTreeMap<String, CollectionReport> {
    let summary = planned.plan.summary();
    planned
        .scans
        .keys()
        .map(|c| {
            let s = summary.get(c).copied().unwrap_or_default();
            let mut down = s.down;
            down.new += planned.fresh.get(c).copied().unwrap_or(0);
            let report = CollectionReport {
                up: s.up,
                down,
                unchanged: s.unchanged + planned.unplanned.get(c).copied().unwrap_or(0),
                merged: s.conflicts,
                held: s.held,
            };
            (c.clone(), report)
        })
        .collect()
}
