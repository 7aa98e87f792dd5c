//! `verify`: the remote's files read directly and compared with the local collections.

use super::*;

/// Options of [`Engine::verify`]. Every entity is compared by version and content hash,
/// whatever the options; they say how many differing entities are compared field by field to
/// tell which fields differ.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Differing entities compared field by field per collection (ignored with `deep`).
    pub sample: usize,
    /// Compare every differing entity field by field.
    pub deep: bool,
    /// Floating-point fields within this absolute difference are equal.
    pub tolerance: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            sample: 5,
            deep: false,
            tolerance: 0.0,
        }
    }
}

/// One collection's verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectionVerify {
    /// Live entities on the remote.
    pub remote: u64,
    /// Entities in the local files.
    pub local: u64,
    /// Ids that are local but not on the remote.
    pub missing_remotely: Vec<String>,
    /// Ids that are on the remote but not local.
    pub missing_locally: Vec<String>,
    /// Local files that could not be read.
    pub unreadable: Vec<String>,
    /// Entities on both sides, each compared by content hash.
    pub checked: u64,
    /// Of those, entities whose content differs.
    pub differing: u64,
    /// Ids whose remote version this device has not applied yet (it is behind: sync).
    pub behind: Vec<String>,
}

impl CollectionVerify {
    /// Whether remote and local agree.
    pub fn ok(&self) -> bool {
        self.missing_remotely.is_empty()
            && self.missing_locally.is_empty()
            && self.unreadable.is_empty()
            && self.differing == 0
            && self.behind.is_empty()
    }
}

/// A field that differs between the remote and the local copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Collection.
    pub collection: String,
    /// Entity id.
    pub id: String,
    /// Dotted path of the field (`""`: the whole entity).
    pub field: String,
    /// The remote value (`null`: absent).
    pub remote: Value,
    /// The local value (`null`: absent).
    pub local: Value,
}

/// The outcome of [`Engine::verify`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Per configured collection.
    pub collections: BTreeMap<String, CollectionVerify>,
    /// Field differences found by the spot or deep check.
    pub differences: Vec<Difference>,
    /// Remote integrity problems: checksums, missing files, versions going backwards.
    pub integrity: Vec<String>,
    /// Deltas on the remote that no meta refers to (warnings: lost races, crashes).
    pub orphans: Vec<String>,
    /// Files read on the remote (snapshot and deltas) and their checksums verified.
    pub files_checked: u64,
    /// The remote's head (seq of its last commit).
    pub remote_head: u64,
    /// The head this device last synced to; below `remote_head` when it is behind.
    pub local_head: u64,
    /// Whether everything matches.
    pub ok: bool,
}

/// The remote state read directly from the remote's files, with what was wrong.
pub(crate) struct RemoteState {
    pub(crate) meta: Meta,
    pub(crate) records: BTreeMap<(String, String), EntityRecord>,
    pub(crate) problems: Vec<String>,
    pub(crate) files: u64,
}

impl Engine {
    /// Reads the remote state from the remote's files (snapshot, then deltas in seq
    /// order), checking checksums and versions. Read-only.
    pub(crate) fn read_remote_state(&self) -> Result<RemoteState, EngineError> {
        // The remote's own files, not this device's copies of its deltas.
        let store = self.uncached_store();
        let (mut meta, _) = store.read_meta_as_is()?;
        let mut problems = Vec::new();
        // A damaged or missing link is a finding: the deltas from the newest down to it are
        // still checked.
        // The deltas the walk read are checked from what it read, not downloaded again.
        let mut walked = match store.complete(&mut meta, None) {
            Ok(read) => read,
            Err(e) => {
                problems.push(e.to_string());
                Default::default()
            }
        };
        let mut records: BTreeMap<(String, String), EntityRecord> = BTreeMap::new();
        let mut files = 0;
        let mut floor = 0;
        if let Some(r) = &meta.snapshot {
            files += 1;
            floor = r.head;
            match store.read_snapshot(r) {
                Ok((snap, _)) => {
                    for rec in snap.records {
                        if rec.version > snap.head {
                            problems.push(format!(
                                "{}: {}/{} has version {} above the snapshot's head {}",
                                r.name, rec.collection, rec.id, rec.version, snap.head
                            ));
                        }
                        records.insert((rec.collection.clone(), rec.id.clone()), rec);
                    }
                    if snap.head != r.head {
                        problems.push(format!(
                            "{}: head {} but meta.json says {}",
                            r.name, snap.head, r.head
                        ));
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let mut last = floor;
        for d in &meta.deltas {
            files += 1;
            if d.seq <= last {
                problems.push(format!(
                    "meta.json: delta {} has seq {} after seq {last} (versions go backwards)",
                    d.path, d.seq
                ));
            }
            last = last.max(d.seq);
            let read = match walked.remove(&d.path) {
                Some(delta) => Ok(delta),
                None => store.read_delta(d),
            };
            match read {
                Ok(delta) => {
                    if delta.seq != d.seq {
                        problems.push(format!(
                            "{}: seq {} but meta.json says {}",
                            d.path, delta.seq, d.seq
                        ));
                    }
                    for rec in delta.records {
                        let key = (rec.collection.clone(), rec.id.clone());
                        if let Some(prev) = records.get(&key)
                            && prev.version >= rec.version
                        {
                            problems.push(format!(
                                "{}: {}/{} goes from version {} back to {}",
                                d.path, rec.collection, rec.id, prev.version, rec.version
                            ));
                        }
                        records.insert(key, rec);
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if last > meta.head {
            problems.push(format!(
                "meta.json: head {} is below its last delta's seq {last}",
                meta.head
            ));
        }
        Ok(RemoteState {
            meta,
            records,
            problems,
            files,
        })
    }

    /// Compares the remote with the local files (see [`VerifyOptions`]). Sends no write
    /// request and changes nothing locally.
    pub fn verify(
        &self,
        opts: &VerifyOptions,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, EngineError> {
        let remote = self.read_remote_state()?;
        let local_head = self
            .state()
            .get("meta")?
            .and_then(|m| Meta::from_bytes(m.as_bytes()).ok())
            .map(|m| m.head)
            .unwrap_or(0);
        let mirror: BTreeMap<(String, String), u64> = self
            .state()
            .all_mirror()?
            .into_iter()
            .map(|(c, id, m)| ((c, id), m.version))
            .collect();
        let mut report = VerifyReport {
            integrity: remote.problems.clone(),
            files_checked: remote.files,
            remote_head: remote.meta.head,
            local_head,
            ..VerifyReport::default()
        };
        // Deltas no meta refers to, in the current generation's folder.
        let generation = remote
            .meta
            .snapshot
            .as_ref()
            .map(|s| s.generation)
            .unwrap_or(0);
        let folder = format!("{DELTAS_DIR}/g{generation}");
        for f in self.store().remote().list(&folder)? {
            let path = format!("{folder}/{}", f.name);
            if !f.is_dir && !remote.meta.references(&path) {
                report.orphans.push(path);
            }
        }
        let mut to_compare = Vec::new();
        for (name, cconf) in &self.config().collections {
            let scan = crate::collections::scan(self.root(), &cconf.kind())?;
            let live: BTreeMap<&str, &EntityRecord> = remote
                .records
                .range((name.clone(), String::new())..)
                .take_while(|((c, _), _)| c == name)
                .filter(|(_, r)| !r.is_deleted)
                .map(|((_, id), r)| (id.as_str(), r))
                .collect();
            let mut cv = CollectionVerify {
                remote: live.len() as u64,
                local: scan.entities.len() as u64,
                unreadable: scan.held.iter().cloned().collect(),
                ..CollectionVerify::default()
            };
            for id in scan.entities.keys() {
                if !live.contains_key(id.as_str()) && !scan.held.contains(id) {
                    cv.missing_remotely.push(id.clone());
                }
            }
            // Every entity: the version this device applied, and the content by hash.
            let mut differing = Vec::new();
            for (id, record) in &live {
                let applied = mirror.get(&(name.clone(), id.to_string())).copied();
                if applied.is_none_or(|v| v < record.version) {
                    cv.behind.push(id.to_string());
                }
                let Some(local) = scan.entities.get(*id) else {
                    if !scan.held.contains(*id) {
                        cv.missing_locally.push(id.to_string());
                    }
                    continue;
                };
                cv.checked += 1;
                if content_hash(&record.data) != content_hash(local) {
                    differing.push(*id);
                }
            }
            // Field by field: every differing entity with `deep`, else a sample of them (and
            // with a tolerance, every one: a difference may be within it).
            if !opts.deep && opts.tolerance == 0.0 {
                cv.differing = differing.len() as u64;
                if differing.len() > opts.sample {
                    fastrand::shuffle(&mut differing);
                    differing.truncate(opts.sample);
                    differing.sort();
                }
            }
            for id in differing {
                to_compare.push((
                    name.clone(),
                    id.to_string(),
                    live[id].data.clone(),
                    scan.entities[id].clone(),
                ));
            }
            report.collections.insert(name.clone(), cv);
        }
        let count_here = opts.deep || opts.tolerance != 0.0;
        if opts.deep {
            progress.start("comparing entities", to_compare.len() as u64);
        }
        for (collection, id, r, l) in to_compare {
            let mut diffs = Vec::new();
            diff_values(&r, &l, &mut Vec::new(), opts.tolerance, &mut diffs);
            let cv = report
                .collections
                .get_mut(&collection)
                .expect("inserted above");
            if count_here && !diffs.is_empty() {
                cv.differing += 1;
            }
            for (field, rv, lv) in diffs {
                report.differences.push(Difference {
                    collection: collection.clone(),
                    id: id.clone(),
                    field,
                    remote: rv,
                    local: lv,
                });
            }
            if opts.deep {
                progress.advance(1);
            }
        }
        if opts.deep {
            progress.finish();
        }
        report.ok = report.integrity.is_empty()
            && report.local_head >= report.remote_head
            && report.collections.values().all(|c| c.ok());
        Ok(report)
    }
}

/// Field-by-field difference of two JSON values: (dotted path, remote, local) per leaf that
/// differs. Numbers are equal when their text is (as everywhere in deltasync: `1` and `1.0`
/// differ); with a `tolerance` above 0, also when within it as floating point.
pub fn diff_values(
    remote: &Value,
    local: &Value,
    path: &mut Vec<String>,
    tolerance: f64,
    out: &mut Vec<(String, Value, Value)>,
) {
    match (remote, local) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                path.push(k.clone());
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(x, y, path, tolerance, out),
                    (x, y) => out.push((
                        path.join("."),
                        x.cloned().unwrap_or(Value::Null),
                        y.cloned().unwrap_or(Value::Null),
                    )),
                }
                path.pop();
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let equal = a == b
                || (tolerance > 0.0
                    && match (a.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => (x - y).abs() <= tolerance,
                        _ => false,
                    });
            if !equal {
                out.push((path.join("."), remote.clone(), local.clone()));
            }
        }
        (a, b) if a == b => {}
        _ => out.push((path.join("."), remote.clone(), local.clone())),
    }
}
