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
mod properties;
#[cfg(test)]
mod tests;
