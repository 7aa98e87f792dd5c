//! Step 2 of a sync, plan: the local files scanned and each entity planned from (local,
//! base, mirror), with the remote's history where an entity has no base; the mass-delete guard.

use super::*;

use std::collections::HashMap;
use std::time::SystemTime;

use crate::collections::{CollectionKind, Known, KnownFile};

/// The lean and the touched scan of a `dir` collection.
mod scope;

/// State key: when (ms) a scan last read every file, ignoring the stat cache.
pub(crate) const FULL_SCAN_MS: &str = "full_scan_ms";

/// How often a sync reads every file even where the stat cache says a file is unchanged: the
/// safety net of change detection by stat (an edit that kept a file's size, times and inode,
/// a file system whose times cannot be trusted).
pub const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(3600);

pub(crate) struct Planned {
    pub(crate) scans: BTreeMap<String, Scan>,
    pub(crate) plan: planner::Plan,
    /// The states of the planned entities.
    pub(crate) states: BTreeMap<(String, String), crate::state::EntityState>,
    /// Per collection: entities left out of the plan because nothing can have changed them
    /// (unchanged, see [`Engine::plan_scoped`]).
    pub(crate) unplanned: BTreeMap<String, u64>,
    /// Per `dir` collection: fresh entities (remote content, no base, no local file) left out
    /// of the plan, each a pull that [`Engine::execute`] makes page by page.
    pub(crate) fresh: BTreeMap<String, u64>,
}

impl Planned {
    /// The scans' problems (files held back), each as "file: what is wrong".
    pub(crate) fn problems(&self) -> Vec<String> {
        self.scans
            .values()
            .flat_map(|s| {
                s.problems
                    .iter()
                    .map(|p| format!("{}: {}", p.file.display(), p.message))
            })
            .collect()
    }
}

/// One collection scanned for a plan.
pub(super) struct Part {
    pub(super) scan: Scan,
    /// States of the entities to plan, by id: every entity of the collection, or (a scoped
    /// scan) the ones that may have changed.
    pub(super) states: BTreeMap<String, crate::state::EntityState>,
    /// Ids to plan besides those of `states` and the scan's local entities (absent here).
    pub(super) extra: BTreeSet<String>,
    /// Stat cache entries to forget: found changed or gone.
    pub(super) forget: Vec<String>,
    /// Entities left out of the plan, unchanged.
    pub(super) unplanned: u64,
    /// Fresh entities left out of the plan, to be pulled ([`Planned::fresh`]).
    pub(super) fresh: u64,
    /// The collection's entities to read again ([`crate::state::State::recheck`]).
    pub(super) recheck: BTreeSet<String>,
    /// Files a full scan read and dropped as unchanged, for the stat cache.
    pub(super) put: Vec<(String, KnownFile)>,
}

impl Engine {
    /// Scans every collection, reading only the files whose stat changed since they were
    /// read (the stat cache, [`collections::scan_known`]), or every file when `full`. A file
    /// is taken by its stat only when the entity it held is the base, and not forced into the
    /// next commit: every entity the round may push or merge is read, so its content is at
    /// hand.
    pub(crate) fn scan_all(
        &self,
        states: &BTreeMap<(String, String), crate::state::EntityState>,
        forced: &BTreeMap<(String, String), u64>,
        full: bool,
    ) -> Result<BTreeMap<String, (Scan, Vec<String>)>, EngineError> {
        let trust_before = self.trust_before();
        let mut scans = BTreeMap::new();
        for (name, c) in &self.config.collections {
            let state_of = |id: &str| states.get(&(name.clone(), id.to_owned()));
            let scan = self.scan_one(name, &c.kind(), &state_of, forced, full, trust_before)?;
            scans.insert(name.clone(), scan);
        }
        Ok(scans)
    }

    /// The time before which a file's last change must lie for a scan to remember its stat.
    pub(super) fn trust_before(&self) -> SystemTime {
        SystemTime::now()
            .checked_sub(self.racy_window)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// [`Engine::scan_all`] of one collection; also returns every id the stat cache held.
    fn scan_one<'a>(
        &self,
        name: &str,
        kind: &CollectionKind,
        state_of: &dyn Fn(&str) -> Option<&'a crate::state::EntityState>,
        forced: &BTreeMap<(String, String), u64>,
        full: bool,
        trust_before: SystemTime,
    ) -> Result<(Scan, Vec<String>), EngineError> {
        let mut files = if full {
            HashMap::new()
        } else {
            self.state.known_files(name)?
        };
        let is_base = |id: &String, k: &KnownFile| {
            !forced.contains_key(&(name.to_owned(), id.clone()))
                && state_of(id)
                    .is_some_and(|st| st.has_base && st.base_hash.as_ref() == Some(&k.hash))
        };
        // Every id the cache held, to forget those found changed or gone.
        let mut ids = Vec::new();
        match kind {
            CollectionKind::Dir { .. } => files.retain(|id, k| {
                let keep = is_base(id, k);
                if !keep {
                    ids.push(id.clone());
                }
                keep
            }),
            // An entity whose row does not hold its base is parsed, and the document (its
            // row gone) analysed: every entity the round may push or merge is read.
            CollectionKind::File { .. } => {
                let mut dropped = false;
                files.retain(|id, k| {
                    let keep = id.is_empty() || is_base(id, k);
                    if !keep {
                        ids.push(id.clone());
                        dropped = true;
                    }
                    keep
                });
                if dropped {
                    files.remove("");
                    ids.push(String::new());
                }
            }
        }
        let known = Known {
            files,
            trust_before,
        };
        let scan = collections::scan_known(&self.root, kind, &known)?;
        ids.extend(known.files.into_keys());
        Ok((scan, ids))
    }

    /// One collection scanned whole, with the states of all its entities (a `file`
    /// collection, or a full scan).
    fn part_whole(
        &self,
        name: &str,
        kind: &CollectionKind,
        forced: &BTreeMap<(String, String), u64>,
        full: bool,
        trust_before: SystemTime,
    ) -> Result<Part, EngineError> {
        let mut states = self.state.states_of(name)?;
        let state_of = |id: &str| states.get(id);
        let (mut scan, known) = self.scan_one(name, kind, &state_of, forced, full, trust_before)?;
        let forget = match &scan.fingerprint {
            // A document held whole keeps the rows of its entities for when it is valid again.
            collections::Fingerprint::File { .. } if scan.whole_collection_held => Vec::new(),
            // The rows of entities neither read nor taken by their text (gone, held, or read
            // again); the document's own row is remembered (or forgotten) with the entities'.
            collections::Fingerprint::File { .. } => known
                .into_iter()
                .filter(|id| {
                    !id.is_empty()
                        && !scan.known.contains_key(id)
                        && !scan.entities.contains_key(id)
                })
                .collect(),
            collections::Fingerprint::Dir { .. } => known
                .into_iter()
                .filter(|id| !(scan.known.contains_key(id) || scan.stats.contains_key(id)))
                .collect(),
        };
        let recheck = self.state.recheck(name)?;
        // An entity of a document taken by its text (or the document by its stat or bytes)
        // holds its base and is not forced (`scan_one`); if the remote has not moved it since
        // and no base changed under it, it is unchanged: left out of the plan, as a `dir`
        // collection's unchanged files are.
        let mut unplanned = 0;
        if matches!(scan.fingerprint, collections::Fingerprint::File { .. }) {
            scan.known.retain(|id, hash| {
                let settled = !recheck.contains(id)
                    && states.get(id).is_some_and(|st| {
                        st.has_base
                            && st.has_mirror
                            && st.m_version == st.base_version
                            && st.m_hash == st.base_hash
                            && st.base_hash.as_ref() == Some(hash)
                    });
                if settled {
                    states.remove(id);
                    unplanned += 1;
                }
                !settled
            });
        }
        Ok(Part {
            scan,
            states,
            extra: BTreeSet::new(),
            forget,
            unplanned,
            fresh: 0,
            recheck,
            put: Vec::new(),
        })
    }

    /// Records in the stat cache what the scans read (`hashes`: the content hash of every
    /// entity read), forgets what they found changed or gone, and takes the entities read and
    /// found unchanged out of the recheck list ([`crate::state::State::recheck`]).
    fn remember_scans(
        &mut self,
        parts: &BTreeMap<String, Part>,
        hashes: &BTreeMap<EntityKey, String>,
        plan: &planner::Plan,
        full: bool,
    ) -> Result<(), EngineError> {
        let mut changes = Vec::new();
        for (c, part) in parts {
            let scan = &part.scan;
            let hash_of = |id: &str| {
                hashes
                    .get(&EntityKey::new(c.as_str(), id))
                    .cloned()
                    .unwrap_or_default()
            };
            let mut put: Vec<(String, KnownFile)> = Vec::new();
            let mut rechecked: Vec<&str> = Vec::new();
            let mut forget_doc: Vec<String> = Vec::new();
            match &scan.fingerprint {
                collections::Fingerprint::Dir { files, .. } => {
                    for (id, stat) in &scan.stats {
                        if let Some(stamp) = files.get(id) {
                            put.push((
                                id.clone(),
                                KnownFile {
                                    stat: *stat,
                                    file_hash: stamp.hash.clone(),
                                    hash: hash_of(id),
                                },
                            ));
                        }
                    }
                    // Looked at (read, or found absent) and unchanged.
                    for id in &part.recheck {
                        let op = plan.ops.get(&EntityKey::new(c.as_str(), id.as_str()));
                        if op.is_none_or(|op| *op == Op::Unchanged) && !scan.held.contains(id) {
                            rechecked.push(id);
                        }
                    }
                }
                collections::Fingerprint::File { hash } => {
                    // Each entity parsed, by its text (those taken by their text keep their
                    // rows). Rows are by content, true whenever the document was read.
                    for (id, text_hash) in &scan.texts {
                        if scan.entities.contains_key(id) {
                            put.push((
                                id.clone(),
                                KnownFile {
                                    stat: Default::default(),
                                    file_hash: text_hash.clone(),
                                    hash: hash_of(id),
                                },
                            ));
                        }
                    }
                    // The document's row says that its bytes hold the entities of the rows:
                    // written when its stat can be trusted, else forgotten once they change.
                    match (scan.stats.get(""), hash) {
                        (Some(stat), Some(file_hash)) => put.push((
                            String::new(),
                            KnownFile {
                                stat: *stat,
                                file_hash: file_hash.clone(),
                                hash: String::new(),
                            },
                        )),
                        _ if !put.is_empty() || !part.forget.is_empty() => {
                            forget_doc = vec![String::new()];
                        }
                        _ => {}
                    }
                }
            }
            let is_file = matches!(scan.fingerprint, collections::Fingerprint::File { .. });
            if full
                || !put.is_empty()
                || !part.put.is_empty()
                || !part.forget.is_empty()
                || !rechecked.is_empty()
                || is_file
            {
                changes.push((
                    c,
                    put,
                    &part.put,
                    &part.forget,
                    forget_doc,
                    rechecked,
                    is_file,
                ));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        Ok(self.state.transaction(|s| {
            for (c, put, dropped, remove, forget_doc, rechecked, is_file) in &changes {
                s.set_known_files(c, put, remove, full)?;
                s.set_known_files(c, &[], forget_doc, false)?;
                s.set_known_files(c, dropped, &[], false)?;
                // A document is read whole whenever it changes: nothing to recheck there.
                if *is_file {
                    s.rechecked_all(c)?;
                } else {
                    s.rechecked(c, rechecked)?;
                }
            }
            if full {
                s.set(FULL_SCAN_MS, &now_ms().to_string())?;
            }
            Ok(())
        })?)
    }

    /// Whether the next scan reads every file: none was made yet, or the last is older than
    /// [`FULL_SCAN_INTERVAL`].
    fn full_scan_due(&self) -> Result<bool, EngineError> {
        Ok(self
            .state
            .get(FULL_SCAN_MS)?
            .and_then(|v| v.parse::<u64>().ok())
            .is_none_or(|t| now_ms().saturating_sub(t) >= FULL_SCAN_INTERVAL.as_millis() as u64))
    }

    /// Step 2: scans the local files and plans every entity. `remember`: record what the scan
    /// read in the stat cache (not in a dry run, which changes nothing), and leave the fresh
    /// entities of `dir` collections to [`Engine::execute`] ([`Planned::fresh`]); a dry run
    /// plans them one by one, to show them.
    pub(crate) fn plan(&mut self, remember: bool) -> Result<Planned, EngineError> {
        self.plan_scoped(remember, None)
    }

    /// [`Engine::plan`], planning only the entities that may have changed.
    ///
    /// A `dir` collection (unless a full scan is due) is scanned lean: a file whose stat is
    /// what it was when it was read, and which then held its entity's base, is left out of
    /// the plan (unchanged) unless the remote moved the entity since its base, its base
    /// changed since its file was read, or it is forced into the next commit — those are
    /// read and planned, and so is every entity read, held or gone. With `touched` (a file
    /// watcher's paths), a `dir` collection not touched as a whole is not even listed: only
    /// the touched files and the entities above are read and planned, and no other entity is
    /// taken for deleted. A `file` collection, and every collection in a full scan, is
    /// planned whole.
    pub(crate) fn plan_scoped(
        &mut self,
        remember: bool,
        touched: Option<&BTreeSet<crate::Touched>>,
    ) -> Result<Planned, EngineError> {
        let forced = self.state.forced()?;
        let full = self.full_scan_due()?;
        let trust_before = self.trust_before();
        let mut parts = BTreeMap::new();
        for (name, c) in &self.config.collections {
            let kind = c.kind();
            let part = match &kind {
                CollectionKind::Dir { path } => {
                    self.part_scoped(name, path, &forced, touched, full, trust_before, remember)?
                }
                _ => self.part_whole(name, &kind, &forced, full, trust_before)?,
            };
            parts.insert(name.clone(), part);
        }
        let mut local = BTreeMap::new();
        let mut base = BTreeMap::new();
        let mut remote = BTreeMap::new();
        let mut read_hashes = BTreeMap::new();
        for (c, part) in &parts {
            for (id, st) in &part.states {
                let key = EntityKey::new(c.as_str(), id.as_str());
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
                    // Content decides, not only versions: after a commit lost to a racing
                    // writer two records can share a seq, so a mirror that differs from the
                    // base counts as changed even when its version is not higher.
                    let version = if st.has_base
                        && st.m_hash != st.base_hash
                        && st.m_version <= st.base_version
                    {
                        st.base_version + 1
                    } else {
                        st.m_version
                    };
                    remote.insert(
                        key,
                        RemoteSide {
                            version,
                            hash: st.m_hash.clone(),
                        },
                    );
                }
            }
            let scan = &part.scan;
            for (id, value) in &scan.entities {
                let key = EntityKey::new(c.as_str(), id.as_str());
                let hash = content_hash(value);
                read_hashes.insert(key.clone(), hash.clone());
                local.insert(
                    key,
                    LocalSide {
                        hash: Some(hash),
                        unreadable: false,
                    },
                );
            }
            for (id, hash) in &scan.known {
                local.insert(
                    EntityKey::new(c.as_str(), id.as_str()),
                    LocalSide {
                        hash: Some(hash.clone()),
                        unreadable: false,
                    },
                );
            }
            let held: Box<dyn Iterator<Item = &String>> = if scan.whole_collection_held {
                Box::new(part.states.keys().chain(scan.held.iter()))
            } else {
                Box::new(scan.held.iter())
            };
            for id in held {
                local.insert(
                    EntityKey::new(c.as_str(), id.as_str()),
                    LocalSide {
                        hash: None,
                        unreadable: true,
                    },
                );
            }
            for id in &part.extra {
                let key = EntityKey::new(c.as_str(), id.as_str());
                local.entry(key).or_default();
            }
        }
        // Without a base (lost state, or a new device with files of its own), content equal to
        // an earlier version on the remote is an old copy, not an edit.
        // Not for an entity of a commit lost to a racing writer (forced): its base was undone,
        // and its local content is our edit going out again, even where the remote's history
        // holds it (another device read the lost commit and committed on top of it).
        let mut wanted = planner::needs_history(&local, &base, &remote);
        wanted.retain(|k| !forced.contains_key(&(k.collection.clone(), k.id.clone())));
        let earlier = self.earlier_contents(wanted);
        let mut plan = planner::plan_with_history(&local, &base, &remote, &earlier);
        // An id planned only because it was looked at, known to no side: nothing to plan.
        plan.ops.retain(|k, op| {
            *op != Op::Unchanged
                || local
                    .get(k)
                    .is_some_and(|l| l.hash.is_some() || l.unreadable)
                || base.contains_key(k)
                || remote.contains_key(k)
        });
        if remember {
            self.remember_scans(&parts, &read_hashes, &plan, full)?;
        }
        let mut states = BTreeMap::new();
        let mut scans = BTreeMap::new();
        let mut unplanned = BTreeMap::new();
        let mut fresh = BTreeMap::new();
        for (c, part) in parts {
            for (id, st) in part.states {
                states.insert((c.clone(), id), st);
            }
            unplanned.insert(c.clone(), part.unplanned);
            fresh.insert(c.clone(), part.fresh);
            scans.insert(c, part.scan);
        }
        Ok(Planned {
            scans,
            plan,
            states,
            unplanned,
            fresh,
        })
    }

    /// Content hashes the remote held before its current record, for `keys`, from every delta
    /// still on the remote (archives included). Reads nothing when `keys` is empty, as it
    /// almost always is; a history that cannot be read leaves the entities to the merge.
    pub(crate) fn earlier_contents(
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

    pub(crate) fn check_mass_delete(
        &self,
        planned: &Planned,
        opts: &SyncOptions,
    ) -> Result<(), EngineError> {
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
            let total = self.state.live_count(c)?;
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
}
