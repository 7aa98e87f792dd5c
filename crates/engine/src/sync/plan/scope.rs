//! The scoped scan of a `dir` collection for [`Engine::plan_scoped`]: the folder listed with
//! every file's stat but only the changed files read (lean), or, given a file watcher's
//! touched paths, only those files read; and which entities to plan.

use super::*;

use crate::Touched;
use crate::collections::{FileStat, KnownStats};
use crate::state::EntityState;

/// The ids behind the touched files of collection `name` (folder `folder`), or `None` when
/// the collection must be listed whole: touched as a whole, or a file name that is not the
/// one its id is stored under (a scan reports it, or finds two names for one id).
fn touched_ids(
    touched: &BTreeSet<Touched>,
    name: &str,
    folder: &std::path::Path,
) -> Option<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for t in touched {
        match t {
            Touched::Collection(c) if c == name => return None,
            Touched::File {
                collection,
                name: file,
            } if collection == name => {
                let id = crate::ids::decode_stem(file.strip_suffix(".json")?).ok()?;
                let path = crate::ids::entity_path(folder, &id).ok()?;
                if path.file_name()?.to_str()? != file {
                    return None;
                }
                ids.insert(id);
            }
            _ => {}
        }
    }
    Some(ids)
}

impl Engine {
    /// One `dir` collection (`path`, relative to the workspace) scanned for a plan of only
    /// what may have changed ([`Engine::plan_scoped`]). `full`: every file is read (the
    /// touched paths do not matter), and those whose entity is its base, settled, are
    /// dropped from the scan once read, their stats kept to be remembered.
    ///
    /// `fresh_apart`: where the folder is listed (not a touched sync), the fresh entities (a
    /// remote record with content, no base: new to this device, every entity of a bootstrap)
    /// are left out of the plan where no file of theirs was found and nothing else names them; the plan counts them ([`Part::fresh`]) and
    /// [`Engine::execute`] writes them page by page, so that a bootstrap never holds a state
    /// per entity.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn part_scoped(
        &self,
        name: &str,
        path: &std::path::Path,
        forced: &BTreeMap<(String, String), u64>,
        touched: Option<&BTreeSet<Touched>>,
        full: bool,
        trust_before: SystemTime,
        fresh_apart: bool,
    ) -> Result<Part, EngineError> {
        let folder = self.root.join(path);
        let only = touched
            .filter(|_| !full)
            .and_then(|t| touched_ids(t, name, &folder));
        // Only where the folder is listed: a touched sync does not see every file, and a
        // fresh entity's file it did not read would be found only at install (deferred).
        let fresh_apart = fresh_apart && only.is_none();
        // Read and planned whatever their files' stats say.
        let mut states: BTreeMap<String, EntityState> = if fresh_apart {
            self.state.unsettled_not_fresh(name)?
        } else {
            self.state.unsettled(name)?
        };
        // Planned whatever their files hold: the unsettled and the forced.
        let mut plan_anyway: BTreeSet<String> = states.keys().cloned().collect();
        plan_anyway.extend(
            forced
                .keys()
                .filter(|(c, _)| c == name)
                .map(|(_, id)| id.clone()),
        );
        // Read whatever their stats say: those, and the entities to check again (their base
        // changed since their stat was taken: every entity of a bootstrap).
        let recheck = self.state.recheck(name)?;
        let mut look = plan_anyway.clone();
        look.extend(recheck.iter().cloned());
        // What a full scan read and dropped, for the stat cache.
        let mut put = Vec::new();
        let read = match only {
            Some(ids) => {
                let mut want = look.clone();
                want.extend(ids);
                collections::read_dir_ids(&self.root, path, &want, trust_before)?
                    .map(|scan| (scan, want))
            }
            None => None,
        };
        // `known`: the folder was listed (every file seen, these by their stats), not only the
        // touched files read.
        let (scan, mut extra, known) = match read {
            Some((scan, want)) => (scan, want, None),
            None => {
                let mut known = if full {
                    KnownStats::with_capacity(self.state.synced_count(name)? as usize)
                } else {
                    let mut known = self.state.known_stats(name)?;
                    for id in &look {
                        known.remove(id);
                    }
                    known
                };
                // A file read and found to hold its entity's base, settled, is dropped from
                // the scan once read (its stat kept to be remembered): a full scan, or a
                // first sync after a bootstrap, which reads every file, holds only what
                // changed.
                let mut unchanged = |id: &str, v: &Value, stat: Option<FileStat>, file: &str| {
                    if plan_anyway.contains(id) {
                        return false;
                    }
                    // No base, no hash to compare (an import): the plan hashes it once.
                    let Ok(Some(base)) = self.state.live_base_hash(name, id) else {
                        return false;
                    };
                    let hash = content_hash(v);
                    let same = base == hash;
                    if same && let Some(stat) = stat {
                        put.push((
                            id.to_owned(),
                            KnownFile {
                                stat,
                                file_hash: file.to_owned(),
                                hash,
                            },
                        ));
                    }
                    same
                };
                let scan = collections::scan_dir_full_lean(
                    &self.root,
                    path,
                    &mut known,
                    trust_before,
                    &mut unchanged,
                )?;
                (scan, look, Some(known))
            }
        };
        // An entity to check again that the scan found holding its base is settled: not
        // planned (its stat is remembered, and the recheck done).
        if let Some(known) = &known {
            extra.retain(|id| plan_anyway.contains(id) || !known.is_unchanged(id));
        }
        for id in scan.entities.keys().chain(scan.held.iter()) {
            if !states.contains_key(id)
                && let Some(st) = self.state.entity_state(name, id)?
            {
                states.insert(id.clone(), st);
            }
        }
        for id in &extra {
            if !states.contains_key(id)
                && let Some(st) = self.state.entity_state(name, id)?
            {
                states.insert(id.clone(), st);
            }
        }
        let is_live = |st: &EntityState| st.has_base && st.base_hash.is_some();
        if let Some(known) = &known {
            let live = self.state.live_count(name)?;
            // Every entity with content in its base is unchanged, read, held, or gone.
            let seen = scan.unchanged as u64
                + states
                    .iter()
                    .filter(|(id, st)| {
                        is_live(st) && (scan.entities.contains_key(*id) || scan.held.contains(*id))
                    })
                    .count() as u64;
            if seen < live {
                for id in self.state.live_ids(name)? {
                    if known.is_unchanged(&id)
                        || scan.entities.contains_key(&id)
                        || scan.held.contains(&id)
                        || states.contains_key(&id)
                    {
                        continue;
                    }
                    if let Some(st) = self.state.entity_state(name, &id)? {
                        states.insert(id.clone(), st);
                    }
                    extra.insert(id);
                }
            }
        }
        // A collection held whole holds its fresh entities too: planned, as held.
        let fresh = if !fresh_apart {
            0
        } else if scan.whole_collection_held {
            for (id, st) in self.state.unsettled(name)? {
                states.entry(id).or_insert(st);
            }
            0
        } else {
            let planned_fresh = states
                .values()
                .filter(|st| !st.has_base && st.has_mirror && st.m_hash.is_some())
                .count() as u64;
            self.state.fresh_count(name)?.saturating_sub(planned_fresh)
        };
        let planned_rows = states
            .values()
            .filter(|st| st.has_base || st.has_mirror)
            .count() as u64;
        let unplanned = self
            .state
            .synced_count(name)?
            .saturating_sub(planned_rows + fresh);
        // Stat cache entries of files read again, or found gone, and not remembered anew. (The
        // entries of files gone from the folder without anyone looking stay until the next
        // full scan rewrites the cache: no file can have their stat.)
        let mut forget: BTreeSet<String> = BTreeSet::new();
        forget.extend(
            extra
                .iter()
                .chain(scan.entities.keys())
                .chain(scan.held.iter())
                .filter(|id| !scan.stats.contains_key(*id))
                .cloned(),
        );
        Ok(Part {
            scan,
            states,
            extra,
            forget: forget.into_iter().collect(),
            unplanned,
            fresh,
            recheck,
            put,
        })
    }
}
