//! Step 2 of a sync, plan: the local files scanned and each entity planned from (local,
//! base, mirror), with the remote's history where an entity has no base; the mass-delete guard.

use super::*;

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
    pub(crate) fn scan_all(&self) -> Result<BTreeMap<String, Scan>, EngineError> {
        let mut scans = BTreeMap::new();
        for (name, c) in &self.config.collections {
            scans.insert(name.clone(), collections::scan(&self.root, &c.kind())?);
        }
        Ok(scans)
    }

    /// Step 2: scans the local files and plans every entity.
    pub(crate) fn plan(&self) -> Result<Planned, EngineError> {
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
        // Not for an entity of a commit lost to a racing writer (forced): its base was undone,
        // and its local content is our edit going out again, even where the remote's history
        // holds it (another device read the lost commit and committed on top of it).
        let forced = self.state.forced()?;
        let mut wanted = planner::needs_history(&local, &base, &remote);
        wanted.retain(|k| !forced.contains_key(&(k.collection.clone(), k.id.clone())));
        let earlier = self.earlier_contents(wanted);
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
