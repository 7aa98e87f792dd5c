//! Step 2 of a sync, plan: the local files scanned and each entity planned from (local,
//! base, mirror), with the remote's history where an entity has no base; the mass-delete guard.

use super::*;

use std::collections::HashMap;
use std::time::SystemTime;

use crate::collections::{CollectionKind, Known, KnownFile};

/// State key: when (ms) a scan last read every file, ignoring the stat cache.
pub(crate) const FULL_SCAN_MS: &str = "full_scan_ms";

/// How often a sync reads every file even where the stat cache says a file is unchanged: the
/// safety net of change detection by stat (an edit that kept a file's size, times and inode,
/// a file system whose times cannot be trusted).
pub const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(3600);

pub(crate) struct Planned {
    pub(crate) scans: BTreeMap<String, Scan>,
    pub(crate) plan: planner::Plan,
    pub(crate) states: BTreeMap<(String, String), crate::state::EntityState>,
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

impl Engine {
    /// Scans every collection, reading only the files whose stat changed since they were
    /// read (the stat cache, [`collections::scan_known`]), or every file when a full scan is
    /// due ([`FULL_SCAN_INTERVAL`]). A file is taken by its stat only when the entity it held
    /// is the base, and not forced into the next commit: every entity the round may push or
    /// merge is read, so its content is at hand.
    pub(crate) fn scan_all(
        &self,
        states: &BTreeMap<(String, String), crate::state::EntityState>,
        forced: &BTreeMap<(String, String), u64>,
        full: bool,
    ) -> Result<BTreeMap<String, (Scan, Vec<String>)>, EngineError> {
        let trust_before = SystemTime::now()
            .checked_sub(self.racy_window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut scans = BTreeMap::new();
        for (name, c) in &self.config.collections {
            let mut files = if full {
                HashMap::new()
            } else {
                self.state.known_files(name)?
            };
            let is_base = |id: &String, k: &KnownFile| {
                let key = (name.clone(), id.clone());
                !forced.contains_key(&key)
                    && states
                        .get(&key)
                        .is_some_and(|st| st.has_base && st.base_hash.as_ref() == Some(&k.hash))
            };
            // Every id the cache held, to forget those found changed or gone.
            let mut ids = Vec::new();
            match c.kind() {
                CollectionKind::Dir { .. } => files.retain(|id, k| {
                    let keep = is_base(id, k);
                    if !keep {
                        ids.push(id.clone());
                    }
                    keep
                }),
                // A document is taken whole or read whole.
                CollectionKind::File { .. } => {
                    if !files.iter().all(|(id, k)| id.is_empty() || is_base(id, k)) {
                        ids.extend(files.drain().map(|(id, _)| id));
                    }
                }
            }
            let known = Known {
                files,
                trust_before,
            };
            let scan = collections::scan_known(&self.root, &c.kind(), &known)?;
            ids.extend(known.files.into_keys());
            scans.insert(name.clone(), (scan, ids));
        }
        Ok(scans)
    }

    /// Records in the stat cache what the scans read (`hashes`: the content hash of every
    /// entity read), and forgets what they found changed or gone.
    fn remember_scans(
        &mut self,
        scans: &BTreeMap<String, (Scan, Vec<String>)>,
        hashes: &BTreeMap<EntityKey, String>,
        full: bool,
    ) -> Result<(), EngineError> {
        let mut changes = Vec::new();
        for (c, (scan, known)) in scans {
            // `known`: every id the stat cache held for the collection.
            let hash_of = |id: &str| {
                hashes
                    .get(&EntityKey::new(c.as_str(), id))
                    .cloned()
                    .unwrap_or_default()
            };
            let mut put: Vec<(String, KnownFile)> = Vec::new();
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
                }
                collections::Fingerprint::File { hash } => {
                    if let (Some(stat), Some(file_hash)) = (scan.stats.get(""), hash) {
                        put.push((
                            String::new(),
                            KnownFile {
                                stat: *stat,
                                file_hash: file_hash.clone(),
                                hash: String::new(),
                            },
                        ));
                        for id in scan.entities.keys() {
                            put.push((
                                id.clone(),
                                KnownFile {
                                    stat: *stat,
                                    file_hash: String::new(),
                                    hash: hash_of(id),
                                },
                            ));
                        }
                    }
                }
            }
            let remove: Vec<String> = match &scan.fingerprint {
                // A document taken whole keeps its entries; one read is remembered anew.
                collections::Fingerprint::File { .. } if !scan.known.is_empty() => Vec::new(),
                collections::Fingerprint::File { .. } => known.clone(),
                collections::Fingerprint::Dir { .. } => known
                    .iter()
                    .filter(|id| !(scan.known.contains_key(*id) || scan.stats.contains_key(*id)))
                    .cloned()
                    .collect(),
            };
            if full || !put.is_empty() || !remove.is_empty() {
                changes.push((c, put, remove));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        Ok(self.state.transaction(|s| {
            for (c, put, remove) in &changes {
                s.set_known_files(c, put, remove, full)?;
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
    /// read in the stat cache (not in a dry run, which changes nothing).
    pub(crate) fn plan(&mut self, remember: bool) -> Result<Planned, EngineError> {
        let states = self.state.all_states()?;
        let forced = self.state.forced()?;
        let full = self.full_scan_due()?;
        let scans = self.scan_all(&states, &forced, full)?;
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
        let mut read_hashes = BTreeMap::new();
        for (c, (scan, _)) in &scans {
            for (id, value) in &scan.entities {
                let key = EntityKey {
                    collection: c.clone(),
                    id: id.clone(),
                };
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
                    EntityKey {
                        collection: c.clone(),
                        id: id.clone(),
                    },
                    LocalSide {
                        hash: Some(hash.clone()),
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
        // Not for an entity of a commit lost to a racing writer (forced): its base was undone,
        // and its local content is our edit going out again, even where the remote's history
        // holds it (another device read the lost commit and committed on top of it).
        let forced = self.state.forced()?;
        let mut wanted = planner::needs_history(&local, &base, &remote);
        wanted.retain(|k| !forced.contains_key(&(k.collection.clone(), k.id.clone())));
        let earlier = self.earlier_contents(wanted);
        let plan = planner::plan_with_history(&local, &base, &remote, &earlier);
        if remember {
            self.remember_scans(&scans, &read_hashes, full)?;
        }
        Ok(Planned {
            scans: scans.into_iter().map(|(c, (scan, _))| (c, scan)).collect(),
            plan,
            states,
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
}
