//! Maintenance of the remote: `compact` here, `verify` in `maintenance/verify.rs`.
//!
//! **compact** folds the deltas meta lists into a new snapshot (generation + 1) built from
//! this device's mirror (after a fetch, the mirror *is* the remote state), so it costs a few
//! requests however many deltas there are: the deltas' bytes for the archive come from a
//! local cache filled when they were fetched or written here. In order:
//!
//! 1. fetch; build the snapshot (dropping tombstones older than the retention period);
//! 2. write the snapshot (create-only, unique name) and the archive of the folded deltas
//!    (`archive/g<N>-<first>-<last>-<hex>.zip`, create-only) — history is safe before anything
//!    refers to the new snapshot;
//! 3. commit meta by compare-and-swap (on 412: delete both files, start again);
//! 4. delete the delta folders of folded generations (one request each) once their newest
//!    file is [`SETTLE_MS`] old — a writer that read the old meta may still be creating a
//!    delta there; its commit fails and is made again — or, on servers whose If-Match is not
//!    atomic (a racing writer may have "won" with a meta that still lists them), once it is
//!    older than the grace period;
//! 5. remove unreferenced deltas of the current generation and old snapshots once older
//!    than the grace period (a device whose commit was lost makes it again from its
//!    journal, not from the orphan).
//!
//! **verify** is read-only on the remote and locally: it reads the remote's files directly
//! (checksums, versions, orphans), scans the local collections and compares them.

use std::collections::{BTreeMap, BTreeSet};

use deltasync_meta::{DELTAS_DIR, DeltaRef, EntityRecord, Meta, SnapshotWriter, content_hash};
use deltasync_remote::CasClass;
use deltasync_store::{StoreError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::progress::Progress;
use crate::{Engine, EngineError};

mod verify;
pub use verify::*;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// `[compact]` in deltasync.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactSettings {
    /// Tombstones older than this many days are dropped by compaction.
    #[serde(default = "default_tombstone_days")]
    pub tombstone_days: u64,
    /// Orphan deltas and old snapshots are removed once older than this many hours.
    #[serde(default = "default_grace_hours")]
    pub orphan_grace_hours: u64,
    /// Compact automatically once meta lists this many deltas (0: never).
    #[serde(default)]
    pub auto_after: u64,
    /// Compact automatically once this device's copy of meta.json, which lists every delta
    /// since the snapshot (about 200 bytes each), is larger than this many KiB (0: never;
    /// default 64, about 300 commits): that bounds the deltas a new device walks through. A
    /// format-2 remote's meta.json stays small whatever this says; on a format-1 remote,
    /// whose meta.json every commit uploads and which grows with the entities changed since
    /// the snapshot, a compaction from the device that just synced downloads nothing and
    /// upgrades the remote.
    #[serde(default = "default_auto_meta_kib")]
    pub auto_meta_kib: u64,
}

fn default_auto_meta_kib() -> u64 {
    64
}

fn default_tombstone_days() -> u64 {
    90
}
fn default_grace_hours() -> u64 {
    24
}

impl Default for CompactSettings {
    fn default() -> Self {
        CompactSettings {
            tombstone_days: default_tombstone_days(),
            orphan_grace_hours: default_grace_hours(),
            auto_after: 0,
            auto_meta_kib: default_auto_meta_kib(),
        }
    }
}

impl CompactSettings {
    /// Whether these are the defaults (not written to deltasync.toml).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Options of [`Engine::compact_with`].
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Say what would be done; write nothing.
    pub dry_run: bool,
    /// Tombstone retention in ms (default: the configuration's).
    pub tombstone_retention_ms: Option<u64>,
    /// Orphan grace period in ms (default: the configuration's).
    pub orphan_grace_ms: Option<u64>,
    /// How old the newest file of a folded generation's delta folder must be before the
    /// folder is removed, in ms (default: 2 minutes).
    pub settle_ms: Option<u64>,
}

/// A writer that read a meta of an older generation may still be creating its delta in that
/// generation's folder (its commit then fails and is made again): folded folders are removed
/// once their newest file is this old.
pub const SETTLE_MS: u64 = 2 * 60 * 1000;

/// What a compaction did (or, dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The new snapshot generation (`None`: nothing was folded).
    pub generation: Option<u64>,
    /// The new snapshot's file name.
    pub snapshot: Option<String>,
    /// Its size in bytes.
    pub snapshot_size: u64,
    /// Deltas folded.
    pub folded: u64,
    /// Seqs folded (first, last).
    pub seqs: Option<(u64, u64)>,
    /// Entities (tombstones included) in the snapshot.
    pub entities: u64,
    /// Tombstones dropped (older than the retention period).
    pub tombstones_dropped: u64,
    /// The archive written.
    pub archive: Option<String>,
    /// Files and folders removed (folded deltas, orphans, old snapshots).
    pub removed: Vec<String>,
    /// Orphans kept because they are younger than the grace period.
    pub orphans_kept: u64,
    /// Deltas whose bytes had to be downloaded (not in the local cache).
    pub downloaded: u64,
    /// Compare-and-swap rounds lost to other devices.
    pub retries: u32,
}

/// The ms time in a delta's name (`<device>-<ms>-<hex>.json`).
fn time_of_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    let mut parts = stem.rsplitn(3, '-');
    let _hex = parts.next()?;
    parts.next()?.parse().ok()
}

fn generation_of_dir(name: &str) -> Option<u64> {
    name.strip_prefix('g')?.parse().ok()
}

impl Engine {
    /// Compacts the remote (see the module documentation). Holds the remote's lease on
    /// servers without compare-and-swap.
    pub fn compact_with(
        &mut self,
        opts: &CompactOptions,
        progress: &dyn Progress,
    ) -> Result<CompactReport, EngineError> {
        if opts.dry_run {
            return self.compact_round(opts, progress);
        }
        self.with_lease(|e| e.compact_round(opts, progress))
    }

    /// After a sync: compacts when the local copy of meta.json as the sync left it (complete:
    /// every delta since the snapshot) lists `compact.auto_after` deltas or more, or is larger
    /// than `compact.auto_meta_kib`; returns the report when it
    /// did. Sends no request when it does not compact (it looks at the local copy of
    /// meta.json), and downloads nothing when it does: this device has just synced.
    pub fn maybe_compact(&mut self) -> Result<Option<CompactReport>, EngineError> {
        let settings = self.config().compact.clone();
        if settings.auto_after == 0 && settings.auto_meta_kib == 0 {
            return Ok(None);
        }
        // Every sync asks: the size alone, not a copy of a meta.json that may be megabytes.
        let Some(size) = self.state().len_of("meta")? else {
            return Ok(None);
        };
        let by_size = settings.auto_meta_kib > 0 && size > settings.auto_meta_kib * 1024;
        let by_count = settings.auto_after > 0
            && self
                .cached_meta()?
                .is_some_and(|(meta, _)| meta.deltas.len() as u64 >= settings.auto_after);
        if !by_size && !by_count {
            return Ok(None);
        }
        self.compact_with(&CompactOptions::default(), &crate::progress::NoProgress)
            .map(Some)
    }

    fn compact_round(
        &mut self,
        opts: &CompactOptions,
        progress: &dyn Progress,
    ) -> Result<CompactReport, EngineError> {
        let settings = self.config().compact.clone();
        let retention = opts
            .tombstone_retention_ms
            .unwrap_or(settings.tombstone_days.saturating_mul(DAY_MS));
        let grace = opts
            .orphan_grace_ms
            .unwrap_or(settings.orphan_grace_hours.saturating_mul(3600 * 1000));
        let settle = opts.settle_ms.unwrap_or(SETTLE_MS);
        // On servers whose If-Match is not atomic a racing writer may "win" over the
        // compaction with a meta that still lists the folded deltas: keep them for the grace
        // period there.
        let settle = if self.store().remote().capabilities().cas == CasClass::NonAtomic {
            settle.max(grace)
        } else {
            settle
        };
        let mut retry = self.commit_retry();
        let mut report = CompactReport {
            dry_run: opts.dry_run,
            ..CompactReport::default()
        };
        loop {
            let (meta, etag, _) = self.fetch()?;
            if !meta.writable() && !opts.dry_run {
                return Err(EngineError::ReadOnly(meta.min_writer));
            }
            if meta.deltas.is_empty() {
                report.removed =
                    self.remove_orphans(&meta, grace, settle, opts.dry_run, &mut report)?;
                return Ok(report);
            }
            let old_generation = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
            let generation = old_generation + 1;
            let now = now_ms();
            let folded: Vec<String> = meta.deltas.iter().map(|d| d.path.clone()).collect();
            // The snapshot is written record by record from the local state: only its bytes
            // are held, not every entity as a value.
            let mut snapshot = SnapshotWriter::new(generation, meta.head, now);
            let (mut kept, mut dropped) = (0, 0);
            self.state().for_each_mirror(|collection, id, m| {
                if m.content.is_none() && m.clock.ms.saturating_add(retention) <= now {
                    dropped += 1;
                    return Ok(());
                }
                kept += 1;
                if !opts.dry_run {
                    snapshot.push(&EntityRecord {
                        collection,
                        id,
                        version: m.version,
                        last_modified_at: m.clock,
                        last_modified_by: m.device,
                        is_deleted: m.content.is_none(),
                        data: m.content.unwrap_or(Value::Null),
                        extra: m.extra,
                    });
                }
                Ok(())
            })?;
            report.generation = Some(generation);
            report.folded = meta.deltas.len() as u64;
            report.seqs = Some((
                meta.deltas.iter().map(|d| d.seq).min().unwrap_or(0),
                meta.deltas.iter().map(|d| d.seq).max().unwrap_or(0),
            ));
            report.tombstones_dropped = dropped;
            report.entities = kept;
            if opts.dry_run {
                report.removed = self.remove_orphans(&meta, grace, settle, true, &mut report)?;
                return Ok(report);
            }
            let conflicts: Vec<_> = self
                .state()
                .conflicts()?
                .into_iter()
                .filter(|c| !c.resolved)
                .collect();
            // Every device this one knows of (its copy of meta.json gathers them from the
            // deltas and the snapshot it started from): meta.json does not list them.
            let bytes = snapshot.finish(&conflicts, &folded, &meta.devices);
            let snap_ref = self
                .store()
                .write_snapshot_bytes(generation, meta.head, &bytes)?;
            drop(bytes);
            // The folded deltas' bytes, for the archive: from the local cache, else fetched.
            progress.start("archiving deltas", meta.deltas.len() as u64);
            let mut deltas = Vec::with_capacity(meta.deltas.len());
            let mut sorted: Vec<&DeltaRef> = meta.deltas.iter().collect();
            sorted.sort_by_key(|d| d.seq);
            for d in sorted {
                if !self.holds_copy(&d.path) {
                    report.downloaded += 1;
                }
                let bytes = match self.store().read_bytes_verified(&d.path, &d.sha256, d.size) {
                    Ok(b) => b,
                    Err(e) => {
                        self.store().delete_quietly(&snap_ref.name);
                        return Err(e.into());
                    }
                };
                deltas.push((d.clone(), bytes));
                progress.advance(1);
            }
            progress.finish();
            let archive = match self
                .store()
                .write_archive(old_generation, &snap_ref.name, &deltas)
            {
                Ok(a) => a,
                Err(e) => {
                    self.store().delete_quietly(&snap_ref.name);
                    return Err(e.into());
                }
            };
            let mut next = Meta::clone(&meta);
            next.snapshot = Some(snap_ref.clone());
            next.deltas.clear();
            next.entity_versions.clear();
            // A remote of an older format becomes format 2 here: its meta.json stops growing.
            next.upgrade();
            match self.store().commit_meta(&mut next, &etag) {
                Ok(new_etag) => {
                    let next = std::sync::Arc::new(next);
                    let kept = self.state_mut().transaction(|s| {
                        // Our own commits folded here are in the snapshot: confirmed.
                        for p in s.journal_heads()? {
                            if folded.contains(&p.delta_path) {
                                s.remove_pending(&p.delta_path)?;
                            }
                        }
                        s.set_generation(generation, meta.head)?;
                        let kept = Engine::store_meta(s, next.clone(), &new_etag)?;
                        s.set(crate::sync::REREAD_META, "1")?;
                        Ok(kept)
                    })?;
                    self.keep_meta(kept);
                    report.snapshot = Some(snap_ref.name.clone());
                    report.snapshot_size = snap_ref.size;
                    report.archive = Some(archive);
                    let folder = format!("{DELTAS_DIR}/g{old_generation}");
                    // This device's copies of the folded deltas: the archive holds them now.
                    self.store().remote().forget(&folder);
                    let mut more = self.remove_orphans(&next, grace, settle, false, &mut report)?;
                    report.removed.append(&mut more);
                    return Ok(report);
                }
                Err(StoreError::Conflict) => {
                    self.store().delete_quietly(&snap_ref.name);
                    self.store().delete_quietly(&archive);
                    report.retries += 1;
                    if !retry.wait() {
                        return Err(EngineError::TooManyRetries(retry.rounds()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes (or, `dry_run`, lists) what no meta refers to: the delta folders of folded
    /// generations once their newest file is `settle` ms old (one request each), and
    /// unreferenced deltas of the current generation and old snapshots once older than
    /// `grace` ms.
    fn remove_orphans(
        &self,
        meta: &Meta,
        grace: u64,
        settle: u64,
        dry_run: bool,
        report: &mut CompactReport,
    ) -> Result<Vec<String>, EngineError> {
        let now = now_ms();
        let old = |t: Option<u64>| t.is_some_and(|t| t.saturating_add(grace) <= now);
        let current = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
        let remote = self.store().remote().clone();
        let mut removed = Vec::new();
        for dir in remote.list(DELTAS_DIR)? {
            let Some(g) = generation_of_dir(&dir.name).filter(|_| dir.is_dir) else {
                continue;
            };
            let folder = format!("{DELTAS_DIR}/{}", dir.name);
            let files = remote.list(&folder)?;
            if g < current {
                let settled = files.iter().all(|f| {
                    let t = time_of_name(&f.name).or(f.modified_ms);
                    t.is_some_and(|t| t.saturating_add(settle) <= now)
                });
                if settled {
                    if !dry_run {
                        self.store().delete_quietly(&folder);
                    }
                    removed.push(folder);
                } else {
                    report.orphans_kept += files.len() as u64;
                }
                continue;
            }
            let mut to_remove = Vec::new();
            for f in files.iter().filter(|f| !f.is_dir) {
                let path = format!("{folder}/{}", f.name);
                if meta.references(&path) {
                    continue;
                } else if old(time_of_name(&f.name).or(f.modified_ms)) {
                    to_remove.push(path);
                } else {
                    report.orphans_kept += 1;
                }
            }
            if !dry_run {
                self.store().delete_many_quietly(&to_remove);
            }
            removed.extend(to_remove);
        }
        let current_name = meta.snapshot.as_ref().map(|s| s.name.as_str());
        for f in remote.list("")? {
            let is_snapshot = f.name == deltasync_meta::DATA_FILE
                || (f.name.starts_with("data-g") && f.name.ends_with(".json"));
            if f.is_dir || !is_snapshot || Some(f.name.as_str()) == current_name {
                continue;
            }
            if old(f.modified_ms) {
                if !dry_run {
                    self.store().delete_quietly(&f.name);
                }
                removed.push(f.name);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_diffs() {
        assert_eq!(
            time_of_name("dev-1-2-1700000000000-00c0ffee.json"),
            Some(1_700_000_000_000)
        );
        assert_eq!(generation_of_dir("g12"), Some(12));
        let mut out = Vec::new();
        diff_values(
            &json!({"a": 1.0, "b": {"c": "x"}, "d": 1}),
            &json!({"a": 1.0000001, "b": {"c": "y"}, "e": 2}),
            &mut Vec::new(),
            0.001,
            &mut out,
        );
        let fields: Vec<&str> = out.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(fields, vec!["b.c", "d", "e"]);
    }
}
