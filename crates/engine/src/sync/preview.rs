//! The field-level dry run: what a sync would do to each entity and each of its fields, as
//! typed values for the caller to print ([`Engine::preview`]). Nothing is written.

use super::*;

/// What a sync would do, entity by entity and field by field. Made by [`Engine::preview`]
/// after a fetch (the mirror is brought up to date, as a dry run always did); nothing else
/// changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preview {
    /// Always `true`: nothing was changed (the key a sync report has too).
    pub dry_run: bool,
    /// The remote head the plan was made against.
    pub head: u64,
    /// Counts per collection, as a sync reports them.
    pub collections: BTreeMap<String, CollectionReport>,
    /// Every entity the sync would move, merge or hold, by collection and id. Entities whose
    /// content moves nowhere are only counted.
    pub entities: Vec<EntityPreview>,
    /// The conflict receipts the sync would record.
    pub conflicts: Vec<ConflictReceipt>,
    /// Local files that cannot be read: nothing would be pushed for them.
    pub problems: Vec<String>,
    /// The mass delete the sync would refuse, if it would.
    pub refused: Option<MassDeleteRefusal>,
    /// The devices this device knows of ([`Engine::device_names`]), by name.
    pub devices: Vec<DeviceName>,
}

/// A push the mass-delete guard refuses ([`EngineError::MassDelete`], as data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MassDeleteRefusal {
    /// What the error says.
    pub message: String,
    /// The collection.
    pub collection: String,
    /// Deletions planned.
    pub deletes: u64,
    /// Entities the collection had.
    pub total: u64,
    /// The configured threshold in percent.
    pub percent: u64,
}

impl MassDeleteRefusal {
    /// The error a sync would end with.
    pub fn to_error(&self) -> EngineError {
        EngineError::MassDelete {
            collection: self.collection.clone(),
            deletes: self.deletes,
            total: self.total,
            percent: self.percent,
        }
    }
}

/// A device's id and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DeviceName {
    /// Its name (given at `init`; two devices may share one).
    pub name: String,
    /// Its id.
    pub id: String,
}

/// What a sync would do to one entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityPreview {
    /// Its collection.
    pub collection: String,
    /// Its id.
    pub id: String,
    /// The planned action.
    pub action: Action,
    /// This device's change (push, merge): who made it and when the file was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<Written>,
    /// The remote's change (pull, merge): who wrote the remote record and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Written>,
    /// Field by field, what changes and how it is decided (empty for a hold).
    pub fields: Vec<FieldPreview>,
}

/// The action a sync would take on one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Changed here only: this device's content goes to the remote.
    Push {
        /// What it does on the remote.
        change: Change,
    },
    /// Changed on the remote only: the remote's content is written here.
    Pull {
        /// What it does to the local file.
        change: Change,
    },
    /// Changed on both sides: merged (per field with the `merge` strategy), written here and
    /// pushed; values that lose become conflict receipts.
    Merge {
        /// The collection's strategy, which decides a conflict.
        strategy: crate::merge::Strategy,
    },
    /// The local file cannot be read: nothing is done for it this round.
    Hold {
        /// Why (the file and what is wrong with it).
        reason: String,
    },
}

/// Who wrote one side's content, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The device id.
    pub device: String,
    /// When (the side's clock), ms since the Unix epoch.
    pub time_ms: u64,
}

/// One field of an entity that changed on either side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldPreview {
    /// The path of the field inside the entity (`[]`: the whole entity).
    pub path: Vec<String>,
    /// Its value at the last sync (the merge base); absent when the field was not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
    /// Its value here; absent when the field is not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<Value>,
    /// Its value on the remote; absent when the field is not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Value>,
    /// How the sync decides it.
    pub decision: Decision,
}

/// How a sync decides one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Decision {
    /// This device's value goes to the remote.
    Push,
    /// The remote's value is written here.
    Pull,
    /// Both sides changed it to the same value: nothing moves.
    Same,
    /// Both sides changed it (or one side deleted what the other changed): `kept` wins, the
    /// other value is kept in a conflict receipt.
    Conflict {
        /// The side whose value is kept.
        kept: SideName,
        /// Device that wrote the kept value.
        kept_by: String,
        /// When the kept value was written, ms since the Unix epoch.
        kept_at_ms: u64,
        /// Device that wrote the losing value.
        lost_by: String,
        /// When the losing value was written, ms since the Unix epoch.
        lost_at_ms: u64,
        /// Why the kept side wins, for people (the later edit, the strategy, an edit over a
        /// deletion).
        why: String,
    },
}

/// One side of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideName {
    /// This device.
    Local,
    /// The remote.
    Remote,
}

impl Engine {
    /// The field-level dry run: fetches (bringing the mirror up to date, as a dry run does),
    /// plans, and says for each entity the action and for each changed field its values and
    /// how it is decided. Writes no local file, no base and nothing to the remote; a plan
    /// that the mass-delete guard would refuse is returned with [`Preview::refused`] set.
    pub fn preview(
        &mut self,
        progress: &dyn crate::progress::Progress,
    ) -> Result<Preview, EngineError> {
        let (meta, _, _) = self.fetch_with(progress)?;
        let planned = self.plan(false)?;
        let mut out = Preview {
            dry_run: true,
            head: meta.head,
            collections: collection_reports(&planned),
            devices: {
                let mut d: Vec<DeviceName> = self
                    .device_names()?
                    .into_iter()
                    .map(|(id, name)| DeviceName { name, id })
                    .collect();
                d.sort();
                d
            },
            ..Preview::default()
        };
        out.problems = planned.problems();
        out.refused = match self.check_mass_delete(&planned, &SyncOptions::default()) {
            Ok(()) => None,
            Err(
                ref e @ EngineError::MassDelete {
                    ref collection,
                    deletes,
                    total,
                    percent,
                },
            ) => Some(MassDeleteRefusal {
                message: e.to_string(),
                collection: collection.clone(),
                deletes,
                total,
                percent,
            }),
            Err(e) => return Err(e),
        };
        for (key, op) in &planned.plan.ops {
            let Some(cconf) = self.config.collections.get(&key.collection) else {
                continue;
            };
            let scan = &planned.scans[&key.collection];
            let local = scan.entities.get(&key.id);
            let base = self.state.base(&key.collection, &key.id)?;
            let base = base.as_ref().and_then(|(_, c)| c.as_ref());
            let mirror = || self.state.mirror(&key.collection, &key.id);
            let local_written = || -> Result<Written, EngineError> {
                let at = self.edit_clock(&key.collection, cconf, scan, &key.id, false)?;
                Ok(Written {
                    device: self.device_id.clone(),
                    time_ms: at.ms,
                })
            };
            let remote_written = |m: &MirrorRecord| Written {
                device: m.device.clone(),
                time_ms: m.clock.ms,
            };
            let entity = match op {
                Op::Unchanged | Op::Adopt => continue,
                Op::Hold => EntityPreview {
                    collection: key.collection.clone(),
                    id: key.id.clone(),
                    action: Action::Hold {
                        reason: hold_reason(scan, &key.id),
                    },
                    local: None,
                    remote: None,
                    fields: Vec::new(),
                },
                Op::Push(change) => EntityPreview {
                    collection: key.collection.clone(),
                    id: key.id.clone(),
                    action: Action::Push { change: *change },
                    local: Some(local_written()?),
                    remote: None,
                    fields: one_side(base, local, Decision::Push, true),
                },
                Op::Pull(change) => {
                    let m = mirror()?;
                    let content = m.as_ref().and_then(|m| m.content.as_ref());
                    EntityPreview {
                        collection: key.collection.clone(),
                        id: key.id.clone(),
                        action: Action::Pull { change: *change },
                        local: None,
                        remote: m.as_ref().map(remote_written),
                        fields: one_side(base, content, Decision::Pull, false),
                    }
                }
                Op::Merge => {
                    let at = self.edit_clock(&key.collection, cconf, scan, &key.id, false)?;
                    let (outcome, m) =
                        self.merge_entity(&key.collection, &key.id, local, at, cconf.strategy)?;
                    let remote = m.as_ref().and_then(|m| m.content.as_ref());
                    let fields = merged_fields(
                        base,
                        local,
                        remote,
                        &outcome,
                        cconf.strategy,
                        &self.device_id,
                    );
                    for fc in &outcome.conflicts {
                        out.conflicts
                            .push(self.receipt(&key.collection, &key.id, fc.clone(), at));
                    }
                    EntityPreview {
                        collection: key.collection.clone(),
                        id: key.id.clone(),
                        action: Action::Merge {
                            strategy: cconf.strategy,
                        },
                        local: Some(local_written()?),
                        remote: m.as_ref().map(remote_written),
                        fields,
                    }
                }
            };
            out.entities.push(entity);
        }
        Ok(out)
    }
}

/// Why an entity is held: the scan's problem that names it, else the collection's first.
fn hold_reason(scan: &Scan, id: &str) -> String {
    let named = scan.problems.iter().find(|p| {
        p.ids
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|i| i == id))
    });
    let stem_matches = || {
        scan.problems.iter().find(|p| {
            p.file
                .file_stem()
                .is_some_and(|s| s.to_string_lossy() == id)
        })
    };
    match named
        .or_else(stem_matches)
        .or_else(|| scan.problems.first())
    {
        Some(p) => format!("{}: {}", p.file.display(), p.message),
        None => "its local file cannot be read".into(),
    }
}

/// The value at `path` inside `v` (`None`: absent there).
fn at<'a>(v: Option<&'a Value>, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v?, |cur, key| cur.as_object()?.get(key))
}

/// The paths at which `a` and `b` differ, to the depth at which both are objects (an object
/// against anything else, or a key present on one side only, is one path).
fn changed_paths(
    a: Option<&Value>,
    b: Option<&Value>,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    if a == b {
        return;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(k.clone());
                changed_paths(x.get(k), y.get(k), path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// The paths changed from `base` to `new` at the level of top-level fields, where an absent
/// entity counts as an empty object (a created or deleted entity lists its fields).
fn entity_paths(base: Option<&Value>, new: Option<&Value>) -> Vec<Vec<String>> {
    let empty = Value::Object(Default::default());
    let mut out = Vec::new();
    changed_paths(
        Some(base.unwrap_or(&empty)),
        Some(new.unwrap_or(&empty)),
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// Fields of an entity changed on one side only (a push when `local`, a pull otherwise).
fn one_side(
    base: Option<&Value>,
    new: Option<&Value>,
    decision: Decision,
    local: bool,
) -> Vec<FieldPreview> {
    entity_paths(base, new)
        .into_iter()
        .map(|path| {
            let old = at(base, &path).cloned();
            let new = at(new, &path).cloned();
            FieldPreview {
                base: old.clone(),
                local: if local { new.clone() } else { old.clone() },
                remote: if local { old } else { new },
                path,
                decision: decision.clone(),
            }
        })
        .collect()
}

/// Whether one path is the other or inside it.
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Fields of an entity changed on both sides: each side's changes from the base, decided as
/// `outcome` (the merge the sync would make) decides them.
fn merged_fields(
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
    outcome: &crate::merge::MergeOutcome,
    strategy: crate::merge::Strategy,
    this_device: &str,
) -> Vec<FieldPreview> {
    let mut paths: BTreeSet<Vec<String>> = entity_paths(base, local).into_iter().collect();
    paths.extend(entity_paths(base, remote));
    // A path inside another changed path is shown by the outer one.
    let outer: Vec<Vec<String>> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q.len() < p.len() && p.starts_with(q)))
        .cloned()
        .collect();
    let result = outcome.value.as_ref();
    outer
        .into_iter()
        .map(|path| {
            let (b, l, r) = (at(base, &path), at(local, &path), at(remote, &path));
            let merged = at(result, &path);
            let decision = match outcome.conflicts.iter().find(|c| overlaps(&c.field, &path)) {
                Some(c) => {
                    let kept_local = merged == l && (merged != r || c.kept_by == this_device);
                    Decision::Conflict {
                        kept: if kept_local {
                            SideName::Local
                        } else {
                            SideName::Remote
                        },
                        kept_by: c.kept_by.clone(),
                        kept_at_ms: c.kept_at.ms,
                        lost_by: c.lost_by.clone(),
                        lost_at_ms: c.lost_at.ms,
                        why: why_kept(c, strategy),
                    }
                }
                None if l == r => Decision::Same,
                None if merged == l => Decision::Push,
                None => Decision::Pull,
            };
            FieldPreview {
                path,
                base: b.cloned(),
                local: l.cloned(),
                remote: r.cloned(),
                decision,
            }
        })
        .collect()
}

/// Why the kept value of a conflict wins, in the words of the strategy.
fn why_kept(c: &crate::merge::FieldConflict, strategy: crate::merge::Strategy) -> String {
    use crate::merge::Strategy;
    use deltasync_meta::ConflictKind;
    match (strategy, c.kind) {
        (_, ConflictKind::DeleteEdit) => "an edit is kept over a deletion".into(),
        (Strategy::Manual, _) => {
            "strategy manual: this device's value stays until a person resolves it".into()
        }
        (Strategy::RemoteWins, _) => "strategy remote-wins".into(),
        (Strategy::LocalWins, _) => "strategy local-wins".into(),
        (_, _) if c.lost.is_null() && !c.kept.is_null() => "a change is kept over a removal".into(),
        (Strategy::LatestWins, _) => "strategy latest-wins: the later edit".into(),
        (Strategy::Merge, _) => "the later edit".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{Side, Strategy, merge3};
    use deltasync_meta::Hlc;
    use serde_json::json;

    fn s(path: &[&str]) -> Vec<String> {
        path.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_merge_names_each_field_and_how_it_is_decided() {
        let base = json!({"title": "milk", "prio": 1, "done": false, "meta": {"x": 1}});
        let local = json!({"title": "oat milk", "prio": 2, "done": false, "meta": {"x": 1}});
        let remote =
            json!({"title": "soy milk", "prio": 1, "done": true, "meta": {"x": 1, "y": 2}});
        let out = merge3(
            Some(&base),
            Side {
                value: Some(&local),
                clock: Hlc { ms: 10, counter: 0 },
                device: "laptop",
            },
            Side {
                value: Some(&remote),
                clock: Hlc { ms: 20, counter: 0 },
                device: "phone",
            },
            Strategy::Merge,
        );
        let fields = merged_fields(
            Some(&base),
            Some(&local),
            Some(&remote),
            &out,
            Strategy::Merge,
            "laptop",
        );
        let got: Vec<(Vec<String>, Decision)> = fields
            .iter()
            .map(|f| (f.path.clone(), f.decision.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (s(&["done"]), Decision::Pull),
                (s(&["meta", "y"]), Decision::Pull),
                (s(&["prio"]), Decision::Push),
                (
                    s(&["title"]),
                    Decision::Conflict {
                        kept: SideName::Remote,
                        kept_by: "phone".into(),
                        kept_at_ms: 20,
                        lost_by: "laptop".into(),
                        lost_at_ms: 10,
                        why: "the later edit".into(),
                    }
                ),
            ]
        );
        let title = &fields[3];
        assert_eq!(
            (
                title.base.clone(),
                title.local.clone(),
                title.remote.clone()
            ),
            (
                Some(json!("milk")),
                Some(json!("oat milk")),
                Some(json!("soy milk"))
            )
        );
        assert_eq!(fields[1].base, None, "meta.y was not there");
    }

    #[test]
    fn a_whole_entity_strategy_decides_every_field_and_a_create_lists_its_fields() {
        let base = json!({"a": 1, "b": 1});
        let local = json!({"a": 2, "b": 1});
        let remote = json!({"a": 1, "b": 3});
        let out = merge3(
            Some(&base),
            Side {
                value: Some(&local),
                clock: Hlc { ms: 30, counter: 0 },
                device: "laptop",
            },
            Side {
                value: Some(&remote),
                clock: Hlc { ms: 20, counter: 0 },
                device: "phone",
            },
            Strategy::RemoteWins,
        );
        let fields = merged_fields(
            Some(&base),
            Some(&local),
            Some(&remote),
            &out,
            Strategy::RemoteWins,
            "laptop",
        );
        assert_eq!(fields.len(), 2);
        for f in &fields {
            match &f.decision {
                Decision::Conflict { kept, why, .. } => {
                    assert_eq!(*kept, SideName::Remote, "{:?}", f.path);
                    assert_eq!(why, "strategy remote-wins");
                }
                other => panic!("{:?}: {other:?}", f.path),
            }
        }
        let created = one_side(
            None,
            Some(&json!({"t": "x", "n": {"k": 1}})),
            Decision::Push,
            true,
        );
        let paths: Vec<Vec<String>> = created.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths, vec![s(&["n"]), s(&["t"])]);
        assert_eq!(created[0].local, Some(json!({"k": 1})));
        assert_eq!(created[0].remote, None);
    }
}
