//! `log` (the commits) and `history` (every version of one entity), from the deltas meta
//! lists and the archives of folded deltas (`archive/`). Read-only.

use std::collections::{BTreeMap, BTreeSet};

use deltasync_meta::{Delta, DeltaRef};
use deltasync_store::MetaRead;
use serde::Serialize;
use serde_json::Value;

use crate::maintenance::diff_values;
use crate::progress::Progress;
use crate::{Engine, EngineError};

/// One commit, for `log`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Its seq.
    pub seq: u64,
    /// Device id of the writer.
    pub device: String,
    /// The device's name, when meta knows it.
    pub device_name: Option<String>,
    /// Wall-clock time of the commit, ms since the Unix epoch.
    pub time: u64,
    /// Entity records per collection.
    pub entities: BTreeMap<String, u64>,
    /// Conflict receipts it carried.
    pub conflicts: u64,
    /// Where the delta is: its path, or `archive.zip:name`.
    pub location: String,
}

/// One version of an entity, for `history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The version (the seq of the commit that wrote it).
    pub version: u64,
    /// Device id of the change.
    pub device: String,
    /// The device's name, when this device knows it (its copy of meta.json).
    pub device_name: Option<String>,
    /// When the change was made (its clock), ms since the Unix epoch.
    pub time: u64,
    /// Whether this version is a deletion.
    pub deleted: bool,
    /// Fields changed from the previous version known (dotted paths; all fields for the first).
    pub changed: Vec<String>,
    /// The content (`null` for a deletion).
    pub data: Value,
}

impl Engine {
    /// Every commit still on the remote (archived or listed by meta), by seq; each delta once.
    pub(crate) fn all_deltas(
        &self,
        progress: &dyn Progress,
    ) -> Result<Vec<(DeltaRef, Delta, String)>, EngineError> {
        let (meta, _) = self.read_remote_meta()?;
        let archives = self.store().list_archives()?;
        progress.start(
            "reading history",
            (archives.len() + meta.deltas.len()) as u64,
        );
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (path, ..) in archives {
            let a = self.store().read_archive(&path)?;
            for (r, d) in a.deltas {
                if seen.insert(r.path.clone()) {
                    let loc = format!("{path}:{}", deltasync_store::archive::member_name(&r.path));
                    out.push((r, d, loc));
                }
            }
            progress.advance(1);
        }
        for r in &meta.deltas {
            if seen.insert(r.path.clone()) {
                // What the fetch applied is read from this device's copy (the `Cached` layer).
                let d = self.store().read_delta(r)?;
                out.push((r.clone(), d, r.path.clone()));
            }
            progress.advance(1);
        }
        progress.finish();
        out.sort_by_key(|(r, _, _)| r.seq);
        Ok(out)
    }

    /// The commits, oldest first.
    pub fn log(&self, progress: &dyn Progress) -> Result<Vec<LogEntry>, EngineError> {
        // The names this device knows (its copy of meta.json), and those an older writer's
        // meta.json still lists.
        let mut names = self.device_names()?;
        if let MetaRead::Fresh { meta, .. } = self.store().read_meta(None)? {
            for (id, d) in meta.devices {
                names.entry(id).or_insert(d.name);
            }
        }
        Ok(self
            .all_deltas(progress)?
            .into_iter()
            .map(|(r, d, location)| {
                let mut entities = BTreeMap::new();
                for rec in &d.records {
                    *entities.entry(rec.collection.clone()).or_insert(0) += 1;
                }
                LogEntry {
                    seq: r.seq,
                    device_name: names.get(&r.device).cloned(),
                    device: r.device,
                    time: r.time,
                    entities,
                    conflicts: d.conflicts.len() as u64,
                    location,
                }
            })
            .collect())
    }

    /// Every version of one entity found in the archives and the current deltas, oldest
    /// first, with the fields each changed.
    pub fn history(
        &self,
        collection: &str,
        id: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        self.check_collection(collection)?;
        let names = self.device_names()?;
        let mut out: Vec<HistoryEntry> = Vec::new();
        let mut previous: Option<Value> = None;
        for (_, d, _) in self.all_deltas(progress)? {
            for rec in d.records {
                if rec.collection != collection || rec.id != id {
                    continue;
                }
                let data = if rec.is_deleted {
                    Value::Null
                } else {
                    rec.data
                };
                let mut diffs = Vec::new();
                let before = previous
                    .clone()
                    .unwrap_or(Value::Object(Default::default()));
                let after = if data.is_null() {
                    Value::Object(Default::default())
                } else {
                    data.clone()
                };
                diff_values(&before, &after, &mut Vec::new(), 0.0, &mut diffs);
                out.push(HistoryEntry {
                    version: rec.version,
                    device_name: names.get(&rec.last_modified_by).cloned(),
                    device: rec.last_modified_by,
                    time: rec.last_modified_at.ms,
                    deleted: rec.is_deleted,
                    changed: diffs.into_iter().map(|(f, _, _)| f).collect(),
                    data: data.clone(),
                });
                previous = Some(data);
            }
        }
        if out.is_empty() {
            return Err(EngineError::NoSuchEntity {
                collection: collection.into(),
                id: id.into(),
            });
        }
        Ok(out)
    }
}
