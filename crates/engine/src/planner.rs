//! The sync planner: a pure function from the local, base and remote state of every entity to
//! what to do with it. No I/O; the caller reads the three sides, plans, then carries out.
//!
//! Each side is reduced to what deciding needs: the content hash ([`deltasync_meta::content_hash`])
//! and, for base and remote, the version. "Changed" compares content hashes, so reformatting a
//! file or reordering its keys is no change.
//!
//! Without a base (the local state was lost, or a new device found files of its own) the local
//! content is compared with the remote's: equal content is adopted, other content is merged as
//! an edit. The caller may also tell the planner which contents the remote held for an entity
//! before its current record ([`plan_with_history`]): local content equal to one of those is
//! not an edit but an old copy, and the remote's newer record is pulled over it.
//!
//! ```
//! use deltasync_engine::planner::{plan_entity, BaseSide, Change, LocalSide, Op, RemoteSide};
//!
//! let base = BaseSide { version: 3, hash: Some("h1".into()) };
//! let local = LocalSide { hash: Some("h2".into()), unreadable: false };
//! let remote = RemoteSide { version: 3, hash: Some("h1".into()) };
//! assert_eq!(plan_entity(&local, Some(&base), Some(&remote)), Op::Push(Change::Update));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// An entity as found in the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LocalSide {
    /// Content hash of the entity; `None` when it is absent locally.
    pub hash: Option<String>,
    /// The file exists but is not valid JSON (a half-written save, say). Never taken as a
    /// deletion: the entity is held until it reads again.
    pub unreadable: bool,
}

/// What this device last synced for an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseSide {
    /// The remote version that was synced.
    pub version: u64,
    /// Content hash that was synced; `None` when the base is a tombstone.
    pub hash: Option<String>,
}

/// An entity as the remote has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteSide {
    /// The seq of the commit that last wrote it.
    pub version: u64,
    /// Content hash; `None` for a tombstone.
    pub hash: Option<String>,
}

/// What a push or a pull does to the entity on the receiving side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// The receiving side does not have it (absent or a tombstone there).
    Create,
    /// The receiving side has other content.
    Update,
    /// The receiving side has it and it goes away.
    Delete,
}

/// What to do with one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Nothing to do.
    Unchanged,
    /// Local changed since the base and the remote did not: push the local content.
    Push(Change),
    /// The remote changed since the base and local did not: write the remote content locally.
    Pull(Change),
    /// Both changed to different content (including both created without a base): run
    /// [`crate::merge::merge3`], write the result locally and push it.
    Merge,
    /// Nothing to write on either side, but the remote's version moved: record the remote
    /// (version and content) as the new base, or forget the base if the remote no longer has
    /// the entity. Happens when both sides changed to the same content, or when the remote
    /// rewrote or purged a tombstone without changing content.
    Adopt,
    /// Local is unreadable: touch nothing this round.
    Hold,
}

/// Plans one entity.
///
/// Local changed: local hash ≠ base hash, where a tombstone base and no base both count as
/// absent content. Remote changed: the remote has a greater version than the base, or exists
/// with no base, or is gone while a base exists (its tombstone was purged). A remote change
/// that leaves the content as the base had it (a tombstone rewritten or purged) moves no
/// content: only the base is recorded ([`Op::Adopt`]) and a local change is simply pushed.
pub fn plan_entity(local: &LocalSide, base: Option<&BaseSide>, remote: Option<&RemoteSide>) -> Op {
    if local.unreadable {
        return Op::Hold;
    }
    let base_hash = base.and_then(|b| b.hash.as_deref());
    let local_hash = local.hash.as_deref();
    let remote_hash = remote.and_then(|r| r.hash.as_deref());

    let local_changed = local_hash != base_hash;
    let remote_moved = match (remote, base) {
        (Some(r), Some(b)) => r.version > b.version,
        (Some(_), None) | (None, Some(_)) => true,
        (None, None) => false,
    };
    let remote_changed = remote_moved && remote_hash != base_hash;

    match (local_changed, remote_changed) {
        (false, false) if remote_moved && base.is_some() => Op::Adopt,
        (false, false) => Op::Unchanged,
        (true, false) => Op::Push(change(base_hash, local_hash)),
        (false, true) => Op::Pull(change(base_hash, remote_hash)),
        (true, true) if local_hash == remote_hash => Op::Adopt,
        (true, true) => Op::Merge,
    }
}

/// Plans one entity like [`plan_entity`], knowing `earlier`: the content hashes the remote held
/// for it before its current record (from the deltas still on the remote; empty when unknown).
///
/// Only an entity without a base is planned differently: when its local content equals one of
/// the remote's earlier contents (and not the current one), the local copy is an old one — an
/// app re-saving a file it had, after this device lost its state — not an edit, and it is
/// planned as if that earlier content were the base: the remote's newer record is pulled (an
/// update, or a delete if the remote deleted it since).
pub fn plan_entity_with_history(
    local: &LocalSide,
    base: Option<&BaseSide>,
    remote: Option<&RemoteSide>,
    earlier: &BTreeSet<String>,
) -> Op {
    if base.is_none()
        && !local.unreadable
        && let (Some(hash), Some(r)) = (local.hash.as_deref(), remote)
        && r.version > 0
        && r.hash.as_deref() != Some(hash)
        && earlier.contains(hash)
    {
        let implied = BaseSide {
            version: 0,
            hash: Some(hash.to_owned()),
        };
        return plan_entity(local, Some(&implied), Some(r));
    }
    plan_entity(local, base, remote)
}

fn change(from: Option<&str>, to: Option<&str>) -> Change {
    match (from, to) {
        (None, _) => Change::Create,
        (Some(_), None) => Change::Delete,
        (Some(_), Some(_)) => Change::Update,
    }
}

/// Identifies an entity: its collection and id. Ordered by collection, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EntityKey {
    /// Collection name.
    pub collection: String,
    /// Entity id.
    pub id: String,
}

impl EntityKey {
    /// A key from a collection name and an id.
    pub fn new(collection: impl Into<String>, id: impl Into<String>) -> Self {
        EntityKey {
            collection: collection.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection, self.id)
    }
}

/// What to do with every entity known to any side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// One op per entity, in key order.
    pub ops: BTreeMap<EntityKey, Op>,
}

/// Counts of pushes or pulls by kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Entities created on the receiving side.
    pub new: u64,
    /// Entities updated on the receiving side.
    pub updated: u64,
    /// Entities deleted on the receiving side.
    pub deleted: u64,
}

impl Counts {
    fn add(&mut self, change: Change) {
        match change {
            Change::Create => self.new += 1,
            Change::Update => self.updated += 1,
            Change::Delete => self.deleted += 1,
        }
    }
}

/// What a plan does to one collection (a sync's [`crate::CollectionReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Pushes.
    pub up: Counts,
    /// Pulls.
    pub down: Counts,
    /// Entities whose content moves nowhere ([`Op::Unchanged`] and [`Op::Adopt`]).
    pub unchanged: u64,
    /// Entities changed on both sides ([`Op::Merge`]).
    pub conflicts: u64,
    /// Entities held because local is unreadable ([`Op::Hold`]).
    pub held: u64,
}

impl Plan {
    /// Counts per collection. Every collection with at least one entity in the plan appears.
    pub fn summary(&self) -> BTreeMap<String, Summary> {
        let mut out: BTreeMap<String, Summary> = BTreeMap::new();
        for (key, op) in &self.ops {
            let s = out.entry(key.collection.clone()).or_default();
            match *op {
                Op::Unchanged | Op::Adopt => s.unchanged += 1,
                Op::Push(change) => s.up.add(change),
                Op::Pull(change) => s.down.add(change),
                Op::Merge => s.conflicts += 1,
                Op::Hold => s.held += 1,
            }
        }
        out
    }
}

/// Plans every entity in the union of the three maps. An entity missing from `local` is
/// absent locally (and readable).
pub fn plan(
    local: &BTreeMap<EntityKey, LocalSide>,
    base: &BTreeMap<EntityKey, BaseSide>,
    remote: &BTreeMap<EntityKey, RemoteSide>,
) -> Plan {
    plan_with_history(local, base, remote, &BTreeMap::new())
}

/// [`plan`], knowing for some entities the contents the remote held before its current record
/// (`earlier`: content hashes by entity; see [`plan_entity_with_history`]). The caller needs to
/// fill it only for [`needs_history`]'s entities.
pub fn plan_with_history(
    local: &BTreeMap<EntityKey, LocalSide>,
    base: &BTreeMap<EntityKey, BaseSide>,
    remote: &BTreeMap<EntityKey, RemoteSide>,
    earlier: &BTreeMap<EntityKey, BTreeSet<String>>,
) -> Plan {
    let absent = LocalSide::default();
    let none = BTreeSet::new();
    let mut ops = BTreeMap::new();
    let keys = local.keys().chain(base.keys()).chain(remote.keys());
    for key in keys {
        if ops.contains_key(key) {
            continue;
        }
        let op = plan_entity_with_history(
            local.get(key).unwrap_or(&absent),
            base.get(key),
            remote.get(key),
            earlier.get(key).unwrap_or(&none),
        );
        ops.insert(key.clone(), op);
    }
    Plan { ops }
}

/// The entities whose plan can depend on the remote's earlier contents: present locally with
/// no base, and with content other than the remote's current record. Usually none; after a
/// device lost its local state, or on a new device that found files of its own, these are the
/// ones to look up in the remote's deltas before calling [`plan_with_history`].
pub fn needs_history<'a>(
    local: &'a BTreeMap<EntityKey, LocalSide>,
    base: &BTreeMap<EntityKey, BaseSide>,
    remote: &BTreeMap<EntityKey, RemoteSide>,
) -> BTreeSet<&'a EntityKey> {
    local
        .iter()
        .filter(|(key, l)| {
            !l.unreadable
                && l.hash.is_some()
                && !base.contains_key(*key)
                && remote.get(*key).is_some_and(|r| r.hash != l.hash)
        })
        .map(|(key, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Change::{Create, Delete, Update};
    use Op::{Adopt, Hold, Merge, Pull, Push, Unchanged};

    /// Local states of the table: absent, the content "B", other content "L", unreadable, or
    /// (extra rows) the content "R" that the newer remote has.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum L {
        Absent,
        Same,
        Changed,
        Unreadable,
        AsRemote,
    }

    /// Base states: none, live "B" at version 5, tombstone at version 5.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum B {
        None,
        Live,
        Tomb,
    }

    /// Remote states: none; the base's version 5 with the base's content (with no base: "B" at
    /// version 5); "R" at version 9; a tombstone at version 9; (extra rows) "X" at version 3.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum R {
        None,
        Same,
        NewerLive,
        NewerTomb,
        Older,
    }

    fn local(l: L) -> LocalSide {
        let hash = |h: &str| Some(h.to_string());
        match l {
            L::Absent => LocalSide {
                hash: None,
                unreadable: false,
            },
            L::Same => LocalSide {
                hash: hash("B"),
                unreadable: false,
            },
            L::Changed => LocalSide {
                hash: hash("L"),
                unreadable: false,
            },
            L::Unreadable => LocalSide {
                hash: None,
                unreadable: true,
            },
            L::AsRemote => LocalSide {
                hash: hash("R"),
                unreadable: false,
            },
        }
    }

    fn base(b: B) -> Option<BaseSide> {
        match b {
            B::None => None,
            B::Live => Some(BaseSide {
                version: 5,
                hash: Some("B".into()),
            }),
            B::Tomb => Some(BaseSide {
                version: 5,
                hash: None,
            }),
        }
    }

    fn remote(r: R, b: B) -> Option<RemoteSide> {
        let at = |version: u64, hash: Option<&str>| {
            Some(RemoteSide {
                version,
                hash: hash.map(str::to_string),
            })
        };
        match r {
            R::None => None,
            R::Same => at(5, if b == B::Tomb { None } else { Some("B") }),
            R::NewerLive => at(9, Some("R")),
            R::NewerTomb => at(9, None),
            R::Older => at(3, Some("X")),
        }
    }

    #[rustfmt::skip]
    const TABLE: &[(L, B, R, Op)] = &[
        // No base.
        (L::Absent,     B::None, R::None,      Unchanged),
        (L::Same,       B::None, R::None,      Push(Create)),
        (L::Changed,    B::None, R::None,      Push(Create)),
        (L::Unreadable, B::None, R::None,      Hold),
        (L::Absent,     B::None, R::Same,      Pull(Create)),
        (L::Same,       B::None, R::Same,      Adopt),          // both created the same
        (L::Changed,    B::None, R::Same,      Merge),          // both created, empty base
        (L::Unreadable, B::None, R::Same,      Hold),
        (L::Absent,     B::None, R::NewerLive, Pull(Create)),
        (L::Same,       B::None, R::NewerLive, Merge),
        (L::Changed,    B::None, R::NewerLive, Merge),
        (L::Unreadable, B::None, R::NewerLive, Hold),
        (L::Absent,     B::None, R::NewerTomb, Unchanged),      // nothing anywhere
        (L::Same,       B::None, R::NewerTomb, Push(Create)),
        (L::Changed,    B::None, R::NewerTomb, Push(Create)),
        (L::Unreadable, B::None, R::NewerTomb, Hold),
        // Live base "B" at version 5.
        (L::Absent,     B::Live, R::None,      Adopt),          // deleted on both (purged)
        (L::Same,       B::Live, R::None,      Pull(Delete)),   // tombstone purged = delete
        (L::Changed,    B::Live, R::None,      Merge),          // edit against delete
        (L::Unreadable, B::Live, R::None,      Hold),
        (L::Absent,     B::Live, R::Same,      Push(Delete)),
        (L::Same,       B::Live, R::Same,      Unchanged),
        (L::Changed,    B::Live, R::Same,      Push(Update)),
        (L::Unreadable, B::Live, R::Same,      Hold),           // never a delete
        (L::Absent,     B::Live, R::NewerLive, Merge),          // delete against edit
        (L::Same,       B::Live, R::NewerLive, Pull(Update)),
        (L::Changed,    B::Live, R::NewerLive, Merge),
        (L::Unreadable, B::Live, R::NewerLive, Hold),
        (L::Absent,     B::Live, R::NewerTomb, Adopt),          // deleted on both
        (L::Same,       B::Live, R::NewerTomb, Pull(Delete)),
        (L::Changed,    B::Live, R::NewerTomb, Merge),          // edit against delete
        (L::Unreadable, B::Live, R::NewerTomb, Hold),
        // Tombstone base at version 5.
        (L::Absent,     B::Tomb, R::None,      Adopt),          // tombstone purged: forget it
        (L::Same,       B::Tomb, R::None,      Push(Create)),
        (L::Changed,    B::Tomb, R::None,      Push(Create)),
        (L::Unreadable, B::Tomb, R::None,      Hold),
        (L::Absent,     B::Tomb, R::Same,      Unchanged),
        (L::Same,       B::Tomb, R::Same,      Push(Create)),
        (L::Changed,    B::Tomb, R::Same,      Push(Create)),
        (L::Unreadable, B::Tomb, R::Same,      Hold),
        (L::Absent,     B::Tomb, R::NewerLive, Pull(Create)),
        (L::Same,       B::Tomb, R::NewerLive, Merge),
        (L::Changed,    B::Tomb, R::NewerLive, Merge),
        (L::Unreadable, B::Tomb, R::NewerLive, Hold),
        (L::Absent,     B::Tomb, R::NewerTomb, Adopt),          // tombstone rewritten
        (L::Same,       B::Tomb, R::NewerTomb, Push(Create)),
        (L::Changed,    B::Tomb, R::NewerTomb, Push(Create)),
        (L::Unreadable, B::Tomb, R::NewerTomb, Hold),
        // Extra rows: both changed to the same content.
        (L::AsRemote,   B::None, R::NewerLive, Adopt),
        (L::AsRemote,   B::Live, R::NewerLive, Adopt),
        (L::AsRemote,   B::Tomb, R::NewerLive, Adopt),
        (L::AsRemote,   B::Live, R::Same,      Push(Update)),
        // Extra rows: a remote older than the base is not a remote change.
        (L::Same,       B::Live, R::Older,     Unchanged),
        (L::Changed,    B::Live, R::Older,     Push(Update)),
        (L::Absent,     B::Tomb, R::Older,     Unchanged),
    ];

    #[test]
    fn table_covers_every_cell() {
        let mut cells = Vec::new();
        for l in [L::Absent, L::Same, L::Changed, L::Unreadable] {
            for b in [B::None, B::Live, B::Tomb] {
                for r in [R::None, R::Same, R::NewerLive, R::NewerTomb] {
                    cells.push((l, b, r));
                }
            }
        }
        for cell in &cells {
            let rows = TABLE
                .iter()
                .filter(|(l, b, r, _)| (*l, *b, *r) == *cell)
                .count();
            assert_eq!(rows, 1, "{cell:?} appears {rows} times");
        }
        assert_eq!(cells.len(), 48);
    }

    #[test]
    fn plan_entity_table() {
        for &(l, b, r, expected) in TABLE {
            let got = plan_entity(&local(l), base(b).as_ref(), remote(r, b).as_ref());
            assert_eq!(got, expected, "local {l:?}, base {b:?}, remote {r:?}");
        }
    }

    /// Lost state: no base, local content "B" that the remote held at version 5, before its
    /// current record. An old copy, not an edit.
    #[test]
    fn without_a_base_an_old_copy_of_the_remote_is_no_edit() {
        let earlier: BTreeSet<String> = ["B".to_string(), "A".to_string()].into();
        #[rustfmt::skip]
        let rows: &[(L, R, Op)] = &[
            (L::Same,       R::NewerLive, Pull(Update)),   // was Merge: the old copy won
            (L::Same,       R::NewerTomb, Pull(Delete)),   // was Push(Create): a resurrection
            (L::Changed,    R::NewerLive, Merge),          // not a content the remote had
            (L::Changed,    R::NewerTomb, Push(Create)),
            (L::AsRemote,   R::NewerLive, Adopt),          // the current content
            (L::Absent,     R::NewerLive, Pull(Create)),
            (L::Unreadable, R::NewerLive, Hold),
            (L::Same,       R::None,      Push(Create)),   // nothing on the remote to pull
        ];
        for &(l, r, expected) in rows {
            let remote = remote(r, B::None);
            let got = plan_entity_with_history(&local(l), None, remote.as_ref(), &earlier);
            assert_eq!(got, expected, "local {l:?}, remote {r:?}");
        }
        // Unknown history: as before.
        let none = BTreeSet::new();
        let newer = remote(R::NewerLive, B::None);
        assert_eq!(
            plan_entity_with_history(&local(L::Same), None, newer.as_ref(), &none),
            Merge
        );
        // With a base, history changes nothing.
        for (l, b, r, expected) in TABLE.iter().copied() {
            let got = plan_entity_with_history(
                &local(l),
                base(b).as_ref(),
                remote(r, b).as_ref(),
                &earlier,
            );
            if b != B::None {
                assert_eq!(got, expected, "local {l:?}, base {b:?}, remote {r:?}");
            }
        }
    }

    #[test]
    fn history_is_needed_only_for_local_entities_without_a_base_that_differ() {
        let k = EntityKey::new;
        let side = |h: &str| LocalSide {
            hash: Some(h.into()),
            unreadable: false,
        };
        let at = |version: u64, h: &str| RemoteSide {
            version,
            hash: Some(h.into()),
        };
        let local = BTreeMap::from([
            (k("t", "differs"), side("a")),
            (k("t", "same"), side("b")),
            (k("t", "based"), side("c")),
            (k("t", "local-only"), side("d")),
            (
                k("t", "unreadable"),
                LocalSide {
                    hash: None,
                    unreadable: true,
                },
            ),
        ]);
        let base = BTreeMap::from([(
            k("t", "based"),
            BaseSide {
                version: 1,
                hash: Some("x".into()),
            },
        )]);
        let remote = BTreeMap::from([
            (k("t", "differs"), at(3, "z")),
            (k("t", "same"), at(3, "b")),
            (k("t", "based"), at(3, "z")),
            (k("t", "unreadable"), at(3, "z")),
        ]);
        let needed: Vec<String> = needs_history(&local, &base, &remote)
            .into_iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(needed, ["t/differs"]);
        let earlier = BTreeMap::from([(k("t", "differs"), BTreeSet::from(["a".to_string()]))]);
        let p = plan_with_history(&local, &base, &remote, &earlier);
        assert_eq!(p.ops[&k("t", "differs")], Pull(Update));
        assert_eq!(plan(&local, &base, &remote).ops[&k("t", "differs")], Merge);
    }

    #[test]
    fn unreadable_local_is_held_even_with_a_hash() {
        let local = LocalSide {
            hash: Some("B".into()),
            unreadable: true,
        };
        for b in [B::None, B::Live, B::Tomb] {
            let got = plan_entity(&local, base(b).as_ref(), remote(R::NewerLive, b).as_ref());
            assert_eq!(got, Hold);
        }
    }

    #[test]
    fn plan_covers_the_union_of_keys_and_summarises_per_collection() {
        let k = EntityKey::new;
        let live = |v: u64, h: &str| (v, Some(h.to_string()));
        let mut locals = BTreeMap::new();
        let mut bases = BTreeMap::new();
        let mut remotes = BTreeMap::new();
        let mut put = |key: EntityKey,
                       l: Option<&str>,
                       b: Option<(u64, Option<String>)>,
                       r: Option<(u64, Option<String>)>| {
            if let Some(h) = l {
                locals.insert(
                    key.clone(),
                    LocalSide {
                        hash: Some(h.to_string()),
                        unreadable: h == "?",
                    },
                );
            }
            if let Some((version, hash)) = b {
                bases.insert(key.clone(), BaseSide { version, hash });
            }
            if let Some((version, hash)) = r {
                remotes.insert(key, RemoteSide { version, hash });
            }
        };
        put(k("tasks", "1"), Some("a"), None, None); // local only: create up
        put(
            k("tasks", "2"),
            None,
            Some(live(1, "b")),
            Some(live(1, "b")),
        ); // deleted locally
        put(k("tasks", "3"), None, None, Some(live(4, "c"))); // remote only: create down
        put(
            k("tasks", "4"),
            Some("x"),
            Some(live(1, "d")),
            Some(live(2, "y")),
        ); // both
        put(
            k("tasks", "5"),
            Some("e"),
            Some(live(1, "e")),
            Some(live(1, "e")),
        ); // same
        put(
            k("notes", "1"),
            Some("f2"),
            Some(live(2, "f")),
            Some(live(2, "f")),
        ); // update up
        put(
            k("notes", "2"),
            Some("g"),
            Some(live(2, "g")),
            Some(live(3, "g2")),
        ); // update down
        put(
            k("notes", "3"),
            Some("h"),
            Some(live(2, "h")),
            Some((3, None)),
        ); // delete down
        put(
            k("notes", "4"),
            Some("?"),
            Some(live(2, "i")),
            Some(live(2, "i")),
        ); // unreadable
        put(k("notes", "5"), None, None, Some((3, None))); // remote tombstone only

        let plan = plan(&locals, &bases, &remotes);
        let ops: Vec<(String, Op)> = plan
            .ops
            .iter()
            .map(|(key, op)| (key.to_string(), *op))
            .collect();
        let expected: Vec<(String, Op)> = [
            ("notes/1", Push(Update)),
            ("notes/2", Pull(Update)),
            ("notes/3", Pull(Delete)),
            ("notes/4", Hold),
            ("notes/5", Unchanged),
            ("tasks/1", Push(Create)),
            ("tasks/2", Push(Delete)),
            ("tasks/3", Pull(Create)),
            ("tasks/4", Merge),
            ("tasks/5", Unchanged),
        ]
        .into_iter()
        .map(|(key, op)| (key.to_string(), op))
        .collect();
        assert_eq!(ops, expected);

        let summary = plan.summary();
        assert_eq!(summary.len(), 2);
        assert_eq!(
            summary["notes"],
            Summary {
                up: Counts {
                    new: 0,
                    updated: 1,
                    deleted: 0
                },
                down: Counts {
                    new: 0,
                    updated: 1,
                    deleted: 1
                },
                unchanged: 1,
                conflicts: 0,
                held: 1,
            }
        );
        assert_eq!(
            summary["tasks"],
            Summary {
                up: Counts {
                    new: 1,
                    updated: 0,
                    deleted: 1
                },
                down: Counts {
                    new: 1,
                    updated: 0,
                    deleted: 0
                },
                unchanged: 1,
                conflicts: 1,
                held: 0,
            }
        );
    }

    #[test]
    fn empty_plan_has_an_empty_summary() {
        let empty = plan(&BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new());
        assert!(empty.ops.is_empty());
        assert!(empty.summary().is_empty());
    }

    #[test]
    fn ops_and_summaries_serialise_for_json_output() {
        let ops = [Unchanged, Push(Create), Pull(Delete), Merge, Adopt, Hold];
        let json: Vec<String> = ops
            .iter()
            .map(|op| serde_json::to_string(op).unwrap())
            .collect();
        assert_eq!(
            json,
            [
                r#""unchanged""#,
                r#"{"push":"create"}"#,
                r#"{"pull":"delete"}"#,
                r#""merge""#,
                r#""adopt""#,
                r#""hold""#
            ]
        );
        let summary = serde_json::to_value(Summary::default()).unwrap();
        assert_eq!(
            summary,
            serde_json::json!({
                "up": {"new": 0, "updated": 0, "deleted": 0},
                "down": {"new": 0, "updated": 0, "deleted": 0},
                "unchanged": 0, "conflicts": 0, "held": 0
            })
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::{ProptestConfig, prop, prop_assert, prop_assert_eq, proptest};
    use proptest::strategy::Strategy as _;

    fn hash() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec!["h1", "h2", "h3"]).prop_map(str::to_string))
    }

    fn sides()
    -> impl proptest::strategy::Strategy<Value = (LocalSide, Option<BaseSide>, Option<RemoteSide>)>
    {
        (
            (hash(), prop::bool::weighted(0.1)),
            prop::option::of((0u64..4, hash())),
            prop::option::of((0u64..4, hash())),
        )
            .prop_map(|((lh, unreadable), b, r)| {
                let base = b.map(|(version, hash)| BaseSide { version, hash });
                // Versions are unique: at the base's version the remote has the base's content.
                let remote = r.map(|(version, hash)| match &base {
                    Some(b) if b.version == version => RemoteSide {
                        version,
                        hash: b.hash.clone(),
                    },
                    _ => RemoteSide { version, hash },
                });
                (
                    LocalSide {
                        hash: lh,
                        unreadable,
                    },
                    base,
                    remote,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn plans_never_clobber_an_unsynced_change((local, base, remote) in sides()) {
            let op = plan_entity(&local, base.as_ref(), remote.as_ref());
            let base_hash = base.as_ref().and_then(|b| b.hash.clone());
            let remote_hash = remote.as_ref().and_then(|r| r.hash.clone());
            if local.unreadable {
                prop_assert_eq!(op, Op::Hold);
            }
            match op {
                // A pull overwrites local: local must hold what was last synced.
                Op::Pull(_) => prop_assert_eq!(&local.hash, &base_hash),
                // A push overwrites the remote: the remote must not hold content we never saw.
                Op::Push(_) => prop_assert!(
                    remote.is_none() && base.is_none()
                        || remote_hash == base_hash
                        || remote.as_ref().zip(base.as_ref()).is_some_and(|(r, b)| r.version <= b.version)
                ),
                Op::Hold => prop_assert!(local.unreadable),
                Op::Unchanged | Op::Merge | Op::Adopt => {}
            }
            // Sides that agree on content never move content (unless the remote went back
            // behind the base, which is not a remote change: local is pushed again).
            let remote_behind = remote
                .as_ref()
                .zip(base.as_ref())
                .is_some_and(|(r, b)| r.version < b.version);
            if !local.unreadable && local.hash == remote_hash && !remote_behind {
                prop_assert!(matches!(op, Op::Unchanged | Op::Adopt), "{op:?}");
            }
        }

        #[test]
        fn history_only_ever_turns_an_old_copy_into_a_pull(
            (local, base, remote) in sides(),
            earlier in prop::collection::btree_set(
                prop::sample::select(vec!["h1", "h2", "h3"]).prop_map(str::to_string),
                0..3,
            ),
        ) {
            let without = plan_entity(&local, base.as_ref(), remote.as_ref());
            let with = plan_entity_with_history(&local, base.as_ref(), remote.as_ref(), &earlier);
            if with != without {
                // Only without a base, only for content the remote had before, and only to
                // take the remote's newer record.
                prop_assert!(base.is_none());
                prop_assert!(local.hash.as_ref().is_some_and(|h| earlier.contains(h)));
                prop_assert!(matches!(with, Op::Pull(Change::Update | Change::Delete)), "{with:?}");
            }
        }
    }
}
