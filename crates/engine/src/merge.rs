//! Three-way, field-level merge of one entity (DESIGN §4). Pure: no I/O, no clock reads.
//!
//! [`merge3`] takes the base (the content this device last synced), the local and the remote
//! version of one entity and a [`Strategy`], and returns the merged value together with every
//! value that lost ([`FieldConflict`]): nothing is dropped silently.
//!
//! Under [`Strategy::Merge`] and [`Strategy::LatestWins`] the result does not depend on which
//! side is called local: two devices that each merge the other's change converge on the same
//! content. Winners are chosen by `(clock, device)`, and, for the rare case where both are
//! equal, by the canonical JSON of the value.
//!
//! ```
//! use deltasync_engine::merge::{merge3, Side, Strategy};
//! use deltasync_meta::Hlc;
//! use serde_json::json;
//!
//! let base = json!({"title": "buy milk", "done": false});
//! let local = json!({"title": "buy oat milk", "done": false});
//! let remote = json!({"title": "buy milk", "done": true});
//! let out = merge3(
//!     Some(&base),
//!     Side { value: Some(&local), clock: Hlc { ms: 1, counter: 0 }, device: "phone" },
//!     Side { value: Some(&remote), clock: Hlc { ms: 2, counter: 0 }, device: "laptop" },
//!     Strategy::Merge,
//! );
//! assert_eq!(out.value, Some(json!({"title": "buy oat milk", "done": true})));
//! assert!(out.conflicts.is_empty());
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use deltasync_meta::{ConflictKind, Hlc, canonical_json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a collection resolves an entity that changed on both sides. Set per collection; written
/// in kebab-case (`merge`, `latest-wins`, `remote-wins`, `local-wins`, `manual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Field-level three-way merge; the same field changed on both sides goes to the later
    /// `(clock, device)` and the other value becomes a conflict.
    #[default]
    Merge,
    /// The whole entity of the later `(clock, device)` wins.
    LatestWins,
    /// The remote's whole entity wins (even a deletion).
    RemoteWins,
    /// The local whole entity wins (even a deletion).
    LocalWins,
    /// Keep local and queue the conflict for a person.
    Manual,
}

impl Strategy {
    /// Every strategy, in the order they are documented.
    pub const ALL: [Strategy; 5] = [
        Strategy::Merge,
        Strategy::LatestWins,
        Strategy::RemoteWins,
        Strategy::LocalWins,
        Strategy::Manual,
    ];

    /// The name used in configuration files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Merge => "merge",
            Strategy::LatestWins => "latest-wins",
            Strategy::RemoteWins => "remote-wins",
            Strategy::LocalWins => "local-wins",
            Strategy::Manual => "manual",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown merge strategy `{given}`: expected one of {valid}", valid = valid_names())]
pub struct UnknownStrategy {
    /// The name that was given.
    pub given: String,
}

fn valid_names() -> String {
    Strategy::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| UnknownStrategy {
                given: s.to_string(),
            })
    }
}

/// One side of a merge: its content and who wrote it when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side<'a> {
    /// The entity's JSON; `None` when it is deleted or absent on this side.
    pub value: Option<&'a Value>,
    /// Hybrid logical clock of this side's last change.
    pub clock: Hlc,
    /// Device id of this side's last change.
    pub device: &'a str,
}

/// A value that lost a merge, kept so that a person can take it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldConflict {
    /// Path of the field inside the entity; empty for the whole entity.
    pub field: Vec<String>,
    /// What kind of conflict it was.
    pub kind: ConflictKind,
    /// The value that was kept (`null` when the field or entity is absent).
    pub kept: Value,
    /// Device that wrote the kept value.
    pub kept_by: String,
    /// The value that lost (`null` when the field or entity is absent).
    pub lost: Value,
    /// Device that wrote the losing value.
    pub lost_by: String,
    /// When the kept value was written (its side's clock).
    pub kept_at: Hlc,
    /// When the losing value was written (its side's clock).
    pub lost_at: Hlc,
}

/// What [`merge3`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The merged entity; `None` when the result is a deletion.
    pub value: Option<Value>,
    /// Every value that lost, in field order (local's key order, then remote's new keys).
    pub conflicts: Vec<FieldConflict>,
}

/// Merges one entity three ways.
///
/// `base` is the content this device last synced (`None`: never synced, or a tombstone, which
/// is merged as an empty base so that nothing is dropped). Equality is JSON equality: key order
/// never counts. If the sides agree, or only one changed since the base, that side is taken
/// without conflict whatever the strategy. Otherwise `strategy` decides; see [`Strategy`].
pub fn merge3(
    base: Option<&Value>,
    local: Side<'_>,
    remote: Side<'_>,
    strategy: Strategy,
) -> MergeOutcome {
    let (l, r) = (local.value, remote.value);
    if l == r || r == base {
        return unchanged(l);
    }
    if l == base {
        return unchanged(r);
    }
    match strategy {
        Strategy::Merge => {
            let mut merger = Merger {
                local,
                remote,
                conflicts: Vec::new(),
            };
            let value = merger.merge(&mut Vec::new(), base, l, r);
            MergeOutcome {
                value,
                conflicts: merger.conflicts,
            }
        }
        Strategy::LatestWins => match later(&local, l, &remote, r) {
            Winner::Local => whole(&local, &remote, None),
            Winner::Remote => whole(&remote, &local, None),
        },
        Strategy::RemoteWins => whole(&remote, &local, None),
        Strategy::LocalWins => whole(&local, &remote, None),
        Strategy::Manual => whole(&local, &remote, Some(ConflictKind::Manual)),
    }
}

fn unchanged(value: Option<&Value>) -> MergeOutcome {
    MergeOutcome {
        value: value.cloned(),
        conflicts: Vec::new(),
    }
}

/// The whole entity of `kept` wins; `lost` becomes one conflict on the whole entity. Without an
/// explicit kind: `DeleteEdit` when an edit was kept over a deletion, `Field` otherwise.
fn whole(kept: &Side<'_>, lost: &Side<'_>, kind: Option<ConflictKind>) -> MergeOutcome {
    let kind = kind.unwrap_or(if kept.value.is_some() && lost.value.is_none() {
        ConflictKind::DeleteEdit
    } else {
        ConflictKind::Field
    });
    MergeOutcome {
        value: kept.value.cloned(),
        conflicts: vec![conflict(
            Vec::new(),
            kind,
            kept,
            kept.value,
            lost,
            lost.value,
        )],
    }
}

fn conflict(
    field: Vec<String>,
    kind: ConflictKind,
    kept: &Side<'_>,
    kept_value: Option<&Value>,
    lost: &Side<'_>,
    lost_value: Option<&Value>,
) -> FieldConflict {
    FieldConflict {
        field,
        kind,
        kept: kept_value.cloned().unwrap_or(Value::Null),
        kept_by: kept.device.to_string(),
        lost: lost_value.cloned().unwrap_or(Value::Null),
        lost_by: lost.device.to_string(),
        kept_at: kept.clock,
        lost_at: lost.clock,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Local,
    Remote,
}

/// Which of two differing values was written last: the greater `(clock, device)`, then, so
/// that every device decides alike whichever side it calls local, the greater canonical JSON
/// (a deletion sorts first). Never depends on the argument order except for equal values.
fn later(
    local: &Side<'_>,
    local_value: Option<&Value>,
    remote: &Side<'_>,
    remote_value: Option<&Value>,
) -> Winner {
    let order = (local.clock, local.device)
        .cmp(&(remote.clock, remote.device))
        .then_with(|| {
            local_value
                .map(canonical_json)
                .cmp(&remote_value.map(canonical_json))
        });
    match order {
        Ordering::Less => Winner::Remote,
        Ordering::Equal | Ordering::Greater => Winner::Local,
    }
}

struct Merger<'a> {
    local: Side<'a>,
    remote: Side<'a>,
    conflicts: Vec<FieldConflict>,
}

impl Merger<'_> {
    /// Merges the values found at `path` on each side.
    fn merge(
        &mut self,
        path: &mut Vec<String>,
        base: Option<&Value>,
        l: Option<&Value>,
        r: Option<&Value>,
    ) -> Option<Value> {
        if l == r || r == base {
            return l.cloned();
        }
        if l == base {
            return r.cloned();
        }
        let (local, remote) = (self.local, self.remote);
        match (l, r) {
            (Some(Value::Object(lm)), Some(Value::Object(rm))) => {
                let bm = base.and_then(Value::as_object);
                let mut out = Map::new();
                let keys = lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k)));
                for key in keys {
                    path.push(key.clone());
                    let merged =
                        self.merge(path, bm.and_then(|b| b.get(key)), lm.get(key), rm.get(key));
                    path.pop();
                    if let Some(value) = merged {
                        out.insert(key.clone(), value);
                    }
                }
                Some(Value::Object(out))
            }
            (Some(_), None) => Some(self.edit_over_delete(path, &local, l, &remote)),
            (None, Some(_)) => Some(self.edit_over_delete(path, &remote, r, &local)),
            (Some(_), Some(_)) => {
                let (kept, kept_value, lost, lost_value) = match later(&local, l, &remote, r) {
                    Winner::Local => (&local, l, &remote, r),
                    Winner::Remote => (&remote, r, &local, l),
                };
                self.conflicts.push(conflict(
                    path.clone(),
                    ConflictKind::Field,
                    kept,
                    kept_value,
                    lost,
                    lost_value,
                ));
                kept_value.cloned()
            }
            // Both absent: equal, returned above.
            (None, None) => None,
        }
    }

    /// One side deleted what the other changed: the change survives.
    fn edit_over_delete(
        &mut self,
        path: &[String],
        editor: &Side<'_>,
        edit: Option<&Value>,
        deleter: &Side<'_>,
    ) -> Value {
        let kind = if path.is_empty() {
            ConflictKind::DeleteEdit
        } else {
            ConflictKind::Field
        };
        self.conflicts
            .push(conflict(path.to_vec(), kind, editor, edit, deleter, None));
        edit.cloned().unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests;
