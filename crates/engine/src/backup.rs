//! `backup` and `restore`.
//!
//! A backup is a zip (deflate) of the remote's whole state — `meta.json`, the snapshot it
//! names, the deltas it lists and the archives of folded deltas, each under its remote path —
//! and a `manifest.json` ([`BackupManifest`]) with the sha256 of every member.
//!
//! A restore checks every checksum before anything else (a damaged backup changes nothing),
//! compares the state it holds — or, with `--at SEQ`, the state as of commit SEQ rebuilt
//! from the archives — with the remote's, classifies the change ([`Safety`]) and writes it as
//! an ordinary new commit (the local files are set to the target state, then synced), so a
//! restore can itself be undone with `restore --at`.

use std::collections::BTreeMap;

use deltasync_meta::{
    ARCHIVE_DIR, Delta, DeviceInfo, EntityRecord, META_FILE, Meta, Snapshot, sha256_hex,
    verify_sha256,
};
use deltasync_store::archive::{read_zip, write_zip};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collections::{self, CollectionError, Write};
use crate::progress::Progress;
use crate::{Engine, EngineError, SyncOptions, SyncReport};

/// The manifest member of a backup.
pub const MANIFEST: &str = "manifest.json";

/// `manifest.json` of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    /// Format of the backup: 1.
    pub format: u32,
    /// When it was taken, ms since the Unix epoch.
    pub time: u64,
    /// The remote it was taken from (no credentials).
    pub remote: String,
    /// The remote's head (last commit seq) then.
    pub head: u64,
    /// Devices that had committed, as meta.json listed them.
    pub devices: BTreeMap<String, DeviceInfo>,
    /// Live entities per collection.
    pub counts: BTreeMap<String, u64>,
    /// Every other member: name → sha256 (hex).
    pub members: BTreeMap<String, String>,
}

/// How risky a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Safety {
    /// Nothing on the remote is overwritten or deleted (empty or identical remote).
    Safe,
    /// Entities changed since the backup are overwritten.
    Risky,
    /// Entities are deleted.
    Dangerous,
}

impl std::fmt::Display for Safety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Safety::Safe => "safe",
            Safety::Risky => "risky",
            Safety::Dangerous => "dangerous",
        })
    }
}

/// One change a restore makes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreChange {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// `create`, `overwrite` or `delete`.
    pub action: &'static str,
    /// The remote's current version of the entity.
    pub current_version: Option<u64>,
    /// This device has a change of it that it has not pushed yet (the restore replaces it).
    pub unsynced: bool,
}

/// The entities a restore sets: (collection, id) → content (`None`: absent).
pub type RestoreTarget = BTreeMap<(String, String), Option<Value>>;

/// State key: the target of a restore whose local writes may be under way (JSON list of
/// `[collection, id, content]`); a sync finishes it before anything else.
const RESTORE_JOURNAL: &str = "restore_target";

/// What a restore will do.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The state restored: the backup's head, or the `--at` seq.
    pub target_head: u64,
    /// The changes, by collection and id.
    pub changes: Vec<RestoreChange>,
    /// Entities that already match.
    pub unchanged: u64,
    /// How risky it is.
    pub safety: Safety,
    /// Collections in the target that this workspace does not configure (not restored).
    pub skipped_collections: Vec<String>,
    #[serde(skip)]
    target: BTreeMap<(String, String), Option<Value>>,
}

/// A backup read and verified.
#[derive(Debug, Clone)]
pub struct Backup {
    /// Its manifest.
    pub manifest: BackupManifest,
    files: BTreeMap<String, Vec<u8>>,
}

fn damaged(detail: impl std::fmt::Display) -> EngineError {
    deltasync_store::StoreError::Archive {
        path: "backup".into(),
        detail: detail.to_string(),
    }
    .into()
}

impl Backup {
    /// Reads a backup, checking the manifest and the sha256 of every member first.
    pub fn open(bytes: &[u8]) -> Result<Backup, EngineError> {
        let members = read_zip(bytes).map_err(damaged)?;
        let mut files: BTreeMap<String, Vec<u8>> = members.into_iter().collect();
        let manifest: BackupManifest = serde_json::from_slice(
            &files
                .remove(MANIFEST)
                .ok_or_else(|| damaged("no manifest.json"))?,
        )
        .map_err(|e| damaged(format!("manifest.json: {e}")))?;
        if manifest.format != 1 {
            return Err(damaged(format!(
                "backup format {} is not supported (this deltasync reads format 1)",
                manifest.format
            )));
        }
        for (name, sha) in &manifest.members {
            let bytes = files
                .get(name)
                .ok_or_else(|| damaged(format!("{name} is missing")))?;
            if sha256_hex(bytes) != *sha {
                return Err(damaged(format!("{name} fails its sha256 check")));
            }
        }
        if let Some(extra) = files.keys().find(|k| !manifest.members.contains_key(*k)) {
            return Err(damaged(format!("{extra} is not in the manifest")));
        }
        Ok(Backup { manifest, files })
    }

    fn meta(&self) -> Result<Meta, EngineError> {
        Meta::from_bytes(
            self.files
                .get(META_FILE)
                .ok_or_else(|| damaged("no meta.json"))?,
        )
        .map_err(damaged)
    }

    fn snapshot(&self, meta: &Meta) -> Result<Option<Snapshot>, EngineError> {
        let Some(r) = &meta.snapshot else {
            return Ok(None);
        };
        let bytes = self
            .files
            .get(&r.name)
            .ok_or_else(|| damaged(format!("{} is missing", r.name)))?;
        verify_sha256(&r.name, bytes, &r.sha256).map_err(damaged)?;
        Ok(Some(Snapshot::from_bytes(bytes).map_err(damaged)?))
    }

    fn deltas(&self, meta: &Meta) -> Result<Vec<Delta>, EngineError> {
        let mut out = Vec::new();
        for r in &meta.deltas {
            let bytes = self
                .files
                .get(&r.path)
                .ok_or_else(|| damaged(format!("{} is missing", r.path)))?;
            verify_sha256(&r.path, bytes, &r.sha256).map_err(damaged)?;
            out.push(Delta::from_bytes(bytes).map_err(damaged)?);
        }
        Ok(out)
    }

    /// The state the backup holds: (collection, id) → record.
    fn state(&self) -> Result<BTreeMap<(String, String), EntityRecord>, EngineError> {
        let meta = self.meta()?;
        let mut out = BTreeMap::new();
        if let Some(s) = self.snapshot(&meta)? {
            for r in s.records {
                out.insert((r.collection.clone(), r.id.clone()), r);
            }
        }
        for d in self.deltas(&meta)? {
            for r in d.records {
                out.insert((r.collection.clone(), r.id.clone()), r);
            }
        }
        Ok(out)
    }
}

/// Where a restore takes its state from.
#[derive(Debug)]
pub enum RestoreSource<'a> {
    /// A backup (its head, or the state as of `at` from the archives it holds).
    Backup(&'a Backup, Option<u64>),
    /// The remote's own history: the state as of commit `at`.
    History(u64),
}

impl Engine {
    /// Takes a backup of the remote: the zip's bytes and its manifest.
    pub fn backup(
        &self,
        progress: &dyn Progress,
    ) -> Result<(Vec<u8>, BackupManifest), EngineError> {
        let (meta, _) = self.read_remote_meta()?;
        let archives = self.store().list_archives()?;
        progress.start(
            "backing up",
            (1 + meta.deltas.len() + archives.len()) as u64,
        );
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        // Every delta since the snapshot listed (format 2's meta.json lists only the newest):
        // the backup holds them all, and reads them from this list.
        files.push((META_FILE.into(), meta.to_local_bytes()));
        if let Some(r) = &meta.snapshot {
            files.push((
                r.name.clone(),
                self.store()
                    .read_bytes_verified(&r.name, &r.sha256, r.size)?,
            ));
            progress.advance(1);
        }
        for d in &meta.deltas {
            files.push((
                d.path.clone(),
                self.store()
                    .read_bytes_verified(&d.path, &d.sha256, d.size)?,
            ));
            progress.advance(1);
        }
        for (path, ..) in &archives {
            files.push((path.clone(), self.store().read_file(path)?));
            progress.advance(1);
        }
        progress.finish();
        let members: BTreeMap<String, String> = files
            .iter()
            .map(|(n, b)| (n.clone(), sha256_hex(b)))
            .collect();
        let mut manifest = BackupManifest {
            format: 1,
            time: deltasync_store::now_ms(),
            remote: self.store().remote().describe(),
            head: meta.head,
            devices: meta.devices.clone(),
            counts: BTreeMap::new(),
            members,
        };
        let staged = Backup {
            manifest: manifest.clone(),
            files: files.iter().cloned().collect(),
        };
        for ((c, _), r) in staged.state()? {
            if !r.is_deleted {
                *manifest.counts.entry(c).or_insert(0) += 1;
            }
        }
        let mut all = vec![(
            MANIFEST.to_string(),
            serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
        )];
        all.extend(files);
        let zip = write_zip(&all).map_err(damaged)?;
        Ok((zip, manifest))
    }

    /// The state as of commit `at`, replayed from every archived and current delta (from the
    /// backup's archives, or the remote's).
    fn state_at(
        &self,
        at: u64,
        backup: Option<&Backup>,
        progress: &dyn Progress,
    ) -> Result<BTreeMap<(String, String), EntityRecord>, EngineError> {
        let deltas: Vec<(u64, Delta)> = match backup {
            None => self
                .all_deltas(progress)?
                .into_iter()
                .map(|(r, d, _)| (r.seq, d))
                .collect(),
            Some(b) => {
                let mut seen = std::collections::BTreeSet::new();
                let mut out = Vec::new();
                for (name, bytes) in &b.files {
                    if !name.starts_with(&format!("{ARCHIVE_DIR}/")) {
                        continue;
                    }
                    for (r, d) in read_folded(name, bytes)? {
                        if seen.insert(r.path.clone()) {
                            out.push((r.seq, d));
                        }
                    }
                }
                let meta = b.meta()?;
                for (r, d) in meta.deltas.iter().zip(b.deltas(&meta)?) {
                    if seen.insert(r.path.clone()) {
                        out.push((r.seq, d));
                    }
                }
                out.sort_by_key(|(s, _)| *s);
                out
            }
        };
        // Every commit from 1 to `at` must be there.
        let mut expected = 1;
        let mut state = BTreeMap::new();
        for (seq, d) in deltas {
            if seq > at {
                break;
            }
            if seq != expected {
                return Err(EngineError::History(format!(
                    "commit {expected} is in no archive (folded without one, or removed): the state as of commit {at} cannot be rebuilt"
                )));
            }
            expected += 1;
            for r in d.records {
                state.insert((r.collection.clone(), r.id.clone()), r);
            }
        }
        if expected <= at {
            return Err(EngineError::History(format!(
                "the history ends at commit {}: there is no commit {at}",
                expected - 1
            )));
        }
        Ok(state)
    }

    /// What a restore from `source` would change on the remote (fetches first).
    pub fn restore_plan(
        &mut self,
        source: RestoreSource<'_>,
        progress: &dyn Progress,
    ) -> Result<RestorePlan, EngineError> {
        let (records, target_head) = match source {
            RestoreSource::Backup(b, None) => (b.state()?, b.manifest.head),
            RestoreSource::Backup(b, Some(at)) => (self.state_at(at, Some(b), progress)?, at),
            RestoreSource::History(at) => (self.state_at(at, None, progress)?, at),
        };
        self.fetch()?;
        let mut target: BTreeMap<(String, String), Option<Value>> = records
            .into_iter()
            .map(|(k, r)| (k, (!r.is_deleted).then_some(r.data)))
            .collect();
        let mut current: BTreeMap<(String, String), (u64, Option<Value>)> = BTreeMap::new();
        for (c, id, m) in self.state().all_mirror()? {
            current.insert((c, id), (m.version, m.content));
        }
        // What the local files hold: a change not pushed yet is replaced by the restore too,
        // so it counts (a restore that looked safe reverted unsynced edits).
        let mut local: BTreeMap<(String, String), Value> = BTreeMap::new();
        for (name, cconf) in &self.config().collections {
            let scan = collections::scan(self.root(), &cconf.kind())?;
            for (id, v) in scan.entities {
                local.insert((name.clone(), id), v);
            }
        }
        let mut skipped = std::collections::BTreeSet::new();
        target.retain(|(c, _), _| {
            let ok = self.config().collections.contains_key(c);
            if !ok {
                skipped.insert(c.clone());
            }
            ok
        });
        let mut changes = Vec::new();
        let mut unchanged = 0;
        let mut keys: std::collections::BTreeSet<(String, String)> =
            target.keys().cloned().collect();
        keys.extend(
            current
                .keys()
                .filter(|(c, _)| self.config().collections.contains_key(c))
                .cloned(),
        );
        keys.extend(local.keys().cloned());
        for key in keys {
            let want = target.get(&key).cloned().flatten();
            let (version, remote_has) = match current.get(&key) {
                Some((v, c)) => (Some(*v), c.clone()),
                None => (None, None),
            };
            let (have, unsynced) = match local.get(&key) {
                Some(l) => (Some(l.clone()), remote_has.as_ref() != Some(l)),
                None => (remote_has, false),
            };
            let action = match (&want, &have) {
                (a, b) if a == b => {
                    unchanged += u64::from(a.is_some());
                    continue;
                }
                (Some(_), None) => "create",
                (Some(_), Some(_)) => "overwrite",
                (None, Some(_)) => "delete",
                (None, None) => continue,
            };
            changes.push(RestoreChange {
                collection: key.0.clone(),
                id: key.1.clone(),
                action,
                current_version: version,
                unsynced,
            });
        }
        let safety = if changes.iter().any(|c| c.action == "delete") {
            Safety::Dangerous
        } else if changes
            .iter()
            .any(|c| c.action == "overwrite" || c.unsynced)
        {
            Safety::Risky
        } else {
            Safety::Safe
        };
        Ok(RestorePlan {
            target_head,
            changes,
            unchanged,
            safety,
            skipped_collections: skipped.into_iter().collect(),
            target,
        })
    }

    /// Carries out a restore plan as one new commit: syncs (what this device has not pushed
    /// yet goes up first), records the target in the local state, sets the local files to it,
    /// and syncs again (mass deletes allowed: the person confirmed them). Nothing of the
    /// restore reaches the remote before every local file is written: killed on the way, the
    /// next sync finishes the restore first ([`Engine::sync`]), so every device ends with the
    /// whole restore, never a part of it.
    pub fn restore_apply(
        &mut self,
        plan: &RestorePlan,
        progress: &dyn Progress,
    ) -> Result<SyncReport, EngineError> {
        self.sync(&SyncOptions::default())?;
        let journal: Vec<(&String, &String, &Option<Value>)> =
            plan.target.iter().map(|((c, id), v)| (c, id, v)).collect();
        let text = serde_json::to_string(&journal).map_err(crate::state::StateError::from)?;
        self.state().set(RESTORE_JOURNAL, &text)?;
        self.finish_restore(&plan.target, progress)
    }

    /// The target of a restore that was interrupted before its commit, if there is one.
    pub(crate) fn pending_restore(&self) -> Result<Option<RestoreTarget>, EngineError> {
        let Some(text) = self.state().get(RESTORE_JOURNAL)? else {
            return Ok(None);
        };
        let list: Vec<(String, String, Option<Value>)> =
            serde_json::from_str(&text).map_err(crate::state::StateError::from)?;
        Ok(Some(
            list.into_iter().map(|(c, id, v)| ((c, id), v)).collect(),
        ))
    }

    /// Writes the local files of a restore's target (again: what is already written is left
    /// alone), commits, and forgets the restore.
    ///
    /// A file that holds neither the target nor what this device last synced (its base: the
    /// restore starts with a sync) was changed by the person after the restore began — in the
    /// app, between a kill and this run: it is newer than the restore, so it is kept, pushed,
    /// and named in the report (the restore's value is still in the history or the backup).
    pub(crate) fn finish_restore(
        &mut self,
        target: &RestoreTarget,
        progress: &dyn Progress,
    ) -> Result<SyncReport, EngineError> {
        let names: Vec<String> = self.config().collections.keys().cloned().collect();
        let mut kept_edits = Vec::new();
        progress.start("restoring", target.len() as u64);
        for name in names {
            let kind = self.config().collections[&name].kind();
            let scan = collections::scan(self.root(), &kind)?;
            let mut writes = Vec::new();
            let ids: std::collections::BTreeSet<String> = target
                .keys()
                .filter(|(c, _)| *c == name)
                .map(|(_, id)| id.clone())
                .chain(scan.entities.keys().cloned())
                .collect();
            for id in ids {
                let want = target.get(&(name.clone(), id.clone())).cloned().flatten();
                let have = scan.entities.get(&id);
                if want.as_ref() == have {
                    continue;
                }
                let base = self
                    .state()
                    .base(&name, &id)?
                    .and_then(|(_, content)| content);
                if have != base.as_ref() {
                    kept_edits.push(format!(
                        "{name}/{id} was changed after the restore began: the change is kept \
                         and the restore's value was not applied (restore again to apply it)"
                    ));
                    continue;
                }
                writes.push(match want {
                    Some(value) => Write::Put { id, value },
                    None => Write::Delete { id },
                });
            }
            progress.advance(target.keys().filter(|(c, _)| *c == name).count() as u64);
            if writes.is_empty() {
                continue;
            }
            let r = collections::apply(self.root(), &kind, &writes, &scan.fingerprint)?
                .refusal_as_error(&self.root().join(&self.config().collections[&name].path))?;
            if !r.skipped.is_empty() {
                return Err(CollectionError::ChangedMeanwhile {
                    path: self.root().to_path_buf(),
                }
                .into());
            }
        }
        progress.finish();
        let report = self.with_lease(|e| {
            e.sync_unleased(
                &SyncOptions {
                    dry_run: false,
                    allow_mass_delete: true,
                },
                progress,
            )
        })?;
        self.state().unset(RESTORE_JOURNAL)?;
        let mut report = report;
        report.problems.extend(kept_edits);
        Ok(report)
    }
}

fn read_folded(
    name: &str,
    bytes: &[u8],
) -> Result<Vec<(deltasync_meta::DeltaRef, Delta)>, EngineError> {
    use deltasync_store::archive::{ArchiveIndex, INDEX_MEMBER, member_name};
    let members: BTreeMap<String, Vec<u8>> = read_zip(bytes)
        .map_err(|e| damaged(format!("{name}: {e}")))?
        .into_iter()
        .collect();
    let index: ArchiveIndex = serde_json::from_slice(
        members
            .get(INDEX_MEMBER)
            .ok_or_else(|| damaged(format!("{name}: no index.json")))?,
    )
    .map_err(|e| damaged(format!("{name}: {e}")))?;
    let mut out = Vec::new();
    for r in index.deltas {
        let b = members
            .get(&member_name(&r.path))
            .ok_or_else(|| damaged(format!("{name}: {} is missing", r.path)))?;
        verify_sha256(&r.path, b, &r.sha256).map_err(damaged)?;
        out.push((r, Delta::from_bytes(b).map_err(damaged)?));
    }
    Ok(out)
}
