//! Entity states looked up by key and by small sets, so that a sync plans only the entities
//! that may have changed: the ones the remote moved (`unsettled`), the ones whose base changed
//! under a file nobody read since (`recheck`), counts for the report and the mass-delete
//! guard, and the stats of the stat cache's files (`known_stats`).
//!
//! The sets are kept by SQLite itself: partial indexes on `entities`, and the `recheck` table
//! filled by triggers on every change of a base and on every stat cache row that does not
//! hold its entity's base, whoever makes the change (a sync, the journal's recovery, a
//! restore) — unless the stat cache says the file holds the new base, which also takes the
//! entity out (a push of a change a sync read: its row went in when it was read). A sync empties it of
//! the entities it read and found unchanged, so every entity out of it whose file is in the
//! stat cache has that file's content as its base.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, params};

use super::{EntityState, State, StateError};
#[cfg(test)]
use crate::collections::KnownFile;
use crate::collections::{FileStat, KnownStats};

/// A row the remote moved since its base (or with only one of base and mirror): the planner
/// may find something to do. The complement (among rows with a base or a mirror) is settled:
/// base and mirror are one version with one content.
pub(super) const UNSETTLED: &str = "(has_base = 1 OR has_mirror = 1) AND NOT (has_base = 1 AND has_mirror = 1 AND m_version = base_version AND m_hash IS base_hash)";

/// A row whose base holds content (not a tombstone).
const LIVE: &str = "has_base = 1 AND base_hash IS NOT NULL";

/// A row the plan of every entity counts.
const SYNCED: &str = "(has_base = 1 OR has_mirror = 1)";

/// In a trigger on `entities`: the stat cache says the entity's file holds its new base (a
/// push of what a sync just read), so the file needs no second look.
const STAMP_IS_BASE: &str = "EXISTS (SELECT 1 FROM file_stamps f WHERE f.collection = new.collection AND f.id = new.id AND new.has_base = 1 AND f.hash = new.base_hash)";

/// Created by `migrate` where missing. The indexes that are counted hold the columns of their
/// condition, so that SQLite, which checks the condition again on every entry, counts without
/// reading the table. `recheck` starts with every entity (a database from
/// before it cannot say which bases changed under an unread file): [`RECHECK_ALL`].
pub(super) fn schema() -> String {
    format!(
        r#"
CREATE INDEX IF NOT EXISTS entities_unsettled ON entities(collection, id) WHERE {UNSETTLED};
DROP INDEX IF EXISTS entities_live;
CREATE INDEX IF NOT EXISTS entities_live_ids ON entities(collection, id, has_base, base_hash) WHERE {LIVE};
CREATE INDEX IF NOT EXISTS entities_synced ON entities(collection, has_base, has_mirror) WHERE {SYNCED};
CREATE TABLE IF NOT EXISTS recheck (
  collection TEXT NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS recheck_base_update AFTER UPDATE OF has_base, base_hash ON entities
  WHEN (old.has_base IS NOT new.has_base OR old.base_hash IS NOT new.base_hash) AND NOT {STAMP_IS_BASE}
  BEGIN INSERT OR IGNORE INTO recheck(collection, id) VALUES (new.collection, new.id); END;
CREATE TRIGGER IF NOT EXISTS recheck_base_settled AFTER UPDATE OF has_base, base_hash ON entities
  WHEN {STAMP_IS_BASE}
  BEGIN DELETE FROM recheck WHERE collection = new.collection AND id = new.id; END;
CREATE TRIGGER IF NOT EXISTS recheck_base_insert AFTER INSERT ON entities
  WHEN new.has_base = 1 AND NOT {STAMP_IS_BASE}
  BEGIN INSERT OR IGNORE INTO recheck(collection, id) VALUES (new.collection, new.id); END;
CREATE TRIGGER IF NOT EXISTS recheck_base_delete AFTER DELETE ON entities
  BEGIN INSERT OR IGNORE INTO recheck(collection, id) VALUES (old.collection, old.id); END;
CREATE TRIGGER IF NOT EXISTS recheck_stamp AFTER INSERT ON file_stamps
  WHEN new.file_hash <> '' AND NOT EXISTS (SELECT 1 FROM entities e
    WHERE e.collection = new.collection AND e.id = new.id AND e.has_base = 1 AND e.base_hash = new.hash)
  BEGIN INSERT OR IGNORE INTO recheck(collection, id) VALUES (new.collection, new.id); END;
"#
    )
}

/// For a database that had no `recheck` before: every entity is to be read again, and the
/// stat cache (which may hold files read for entities that have no row) is forgotten.
pub(super) const RECHECK_ALL: &str = "INSERT OR IGNORE INTO recheck(collection, id) SELECT collection, id FROM entities; DELETE FROM file_stamps;";

fn state_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<EntityState> {
    Ok(EntityState {
        has_base: r.get(at)?,
        base_version: r.get::<_, i64>(at + 1)? as u64,
        base_hash: r.get(at + 2)?,
        has_mirror: r.get(at + 3)?,
        m_version: r.get::<_, i64>(at + 4)? as u64,
        m_hash: r.get(at + 5)?,
    })
}

impl State {
    /// The state (without contents) of one entity; `None` when it has no row.
    pub fn entity_state(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<EntityState>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT has_base, base_version, base_hash, has_mirror, m_version, m_hash FROM entities WHERE collection = ?1 AND id = ?2",
        )?;
        Ok(stmt
            .query_row(params![collection, id], |r| state_of(r, 0))
            .optional()?)
    }

    /// The states of the entities of `collection` (all of them).
    pub fn states_of(&self, collection: &str) -> Result<BTreeMap<String, EntityState>, StateError> {
        self.states_where(collection, "", "1")
    }

    /// The entities of `collection` that the remote moved since their base, or that have only
    /// one of base and mirror: the only ones whose plan can differ from "unchanged" while
    /// their local file holds their base.
    pub fn unsettled(&self, collection: &str) -> Result<BTreeMap<String, EntityState>, StateError> {
        self.states_where(collection, "INDEXED BY entities_unsettled", UNSETTLED)
    }

    /// The states of `collection` where `cond` holds, read through `index` (`INDEXED BY …`:
    /// SQLite, without statistics, would walk the table by its primary key instead).
    pub(super) fn states_where(
        &self,
        collection: &str,
        index: &str,
        cond: &str,
    ) -> Result<BTreeMap<String, EntityState>, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, has_base, base_version, base_hash, has_mirror, m_version, m_hash FROM entities {index} WHERE collection = ?1 AND {cond}"
        ))?;
        let rows = stmt.query_map([collection], |r| {
            Ok((r.get::<_, String>(0)?, state_of(r, 1)?))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (id, st) = row?;
            out.insert(id, st);
        }
        Ok(out)
    }

    /// How many entities of `collection` have a base holding content (not a tombstone).
    pub fn live_count(&self, collection: &str) -> Result<u64, StateError> {
        self.count_where(collection, "entities_live_ids", LIVE)
    }

    /// How many entities of `collection` have a base or a mirror: the entities a plan of
    /// every entity counts, besides local files new to both.
    pub fn synced_count(&self, collection: &str) -> Result<u64, StateError> {
        self.count_where(collection, "entities_synced", SYNCED)
    }

    fn count_where(&self, collection: &str, index: &str, cond: &str) -> Result<u64, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT count(*) FROM entities INDEXED BY {index} WHERE collection = ?1 AND {cond}"
        ))?;
        Ok(stmt.query_row([collection], |r| r.get::<_, i64>(0))? as u64)
    }

    /// The hash of the content of an entity's base, when it holds content (read from an index:
    /// a full scan asks for every entity it reads).
    pub fn live_base_hash(&self, collection: &str, id: &str) -> Result<Option<String>, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT base_hash FROM entities INDEXED BY entities_live_ids WHERE collection = ?1 AND id = ?2 AND {LIVE}"
        ))?;
        Ok(stmt
            .query_row(params![collection, id], |r| r.get(0))
            .optional()?)
    }

    /// The ids of `collection` whose base holds content.
    pub fn live_ids(&self, collection: &str) -> Result<Vec<String>, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id FROM entities INDEXED BY entities_live_ids WHERE collection = ?1 AND {LIVE}"
        ))?;
        let rows = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The entities of `collection` to read again however quiet their files: their base
    /// changed, or a file was read that does not hold it, since a sync last read them and
    /// found them unchanged.
    pub fn recheck(&self, collection: &str) -> Result<BTreeSet<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM recheck WHERE collection = ?1")?;
        let rows = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes `ids` out of [`State::recheck`]: a sync read them and found them unchanged.
    pub fn rechecked(&self, collection: &str, ids: &[&str]) -> Result<(), StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM recheck WHERE collection = ?1 AND id = ?2")?;
        for id in ids {
            stmt.execute(params![collection, id])?;
        }
        Ok(())
    }

    /// Empties [`State::recheck`] of `collection` (a scan read all of it).
    pub fn rechecked_all(&self, collection: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM recheck WHERE collection = ?1", [collection])?;
        Ok(())
    }

    /// The stats of the stat cache's files of a `dir` collection: what a lean scan may take
    /// by its stat ([`crate::collections::scan_dir_lean`]). Those that may not hold their
    /// entity's base are in [`State::recheck`], which the caller leaves out.
    pub fn known_stats(&self, collection: &str) -> Result<KnownStats, StateError> {
        // Room for every entity that has a base or a mirror: about as many as the files.
        let room = self.synced_count(collection)? as usize;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, size, mtime_ns, ctime_ns, ino FROM file_stamps WHERE collection = ?1 AND id <> ''",
        )?;
        let mut rows = stmt.query([collection])?;
        let mut out = KnownStats::with_capacity(room);
        while let Some(r) = rows.next()? {
            let stat = FileStat {
                size: r.get::<_, i64>(1)? as u64,
                mtime_ns: r.get(2)?,
                ctime_ns: r.get(3)?,
                ino: r.get::<_, i64>(4)? as u64,
            };
            let id = r.get_ref(0)?;
            let id = id.as_str().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, id.data_type(), Box::new(e))
            })?;
            out.insert(id, stat);
        }
        Ok(out)
    }

    /// The query plan SQLite chooses for `sql` (tests: the partial indexes are used).
    #[cfg(test)]
    pub(crate) fn query_plan(&self, sql: &str) -> Result<String, StateError> {
        let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(3))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mirror(v: u64, content: serde_json::Value) -> super::super::MirrorRecord {
        super::super::MirrorRecord {
            version: v,
            clock: Default::default(),
            device: "d".into(),
            content: Some(content),
            extra: Default::default(),
        }
    }

    #[test]
    fn unsettled_live_synced_and_recheck() {
        let s = State::in_memory().unwrap();
        let a = Some(json!({"n": 1}));
        // settled
        s.set_mirror("t", "a", Some(&mirror(1, json!({"n": 1}))))
            .unwrap();
        s.set_base("t", "a", Some((1, &a))).unwrap();
        // remote moved
        s.set_mirror("t", "b", Some(&mirror(2, json!({"n": 2}))))
            .unwrap();
        s.set_base("t", "b", Some((1, &a))).unwrap();
        // mirror only
        s.set_mirror("t", "c", Some(&mirror(3, json!({"n": 3}))))
            .unwrap();
        // settled tombstone
        s.set_mirror(
            "t",
            "d",
            Some(&super::super::MirrorRecord {
                content: None,
                ..mirror(4, json!({}))
            }),
        )
        .unwrap();
        s.set_base("t", "d", Some((4, &None))).unwrap();
        assert_eq!(
            s.unsettled("t").unwrap().keys().collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(s.live_count("t").unwrap(), 2);
        assert_eq!(s.live_ids("t").unwrap(), ["a", "b"]);
        assert_eq!(
            s.live_base_hash("t", "a").unwrap(),
            a.as_ref().map(deltasync_meta::content_hash)
        );
        assert_eq!(s.live_base_hash("t", "d").unwrap(), None, "a tombstone");
        assert_eq!(s.synced_count("t").unwrap(), 4);
        assert_eq!(s.synced_count("u").unwrap(), 0);
        assert_eq!(s.entity_state("t", "b").unwrap().unwrap().m_version, 2);
        assert!(s.entity_state("t", "zz").unwrap().is_none());
        // Every base set is to be read again.
        assert_eq!(
            s.recheck("t").unwrap().into_iter().collect::<Vec<_>>(),
            ["a", "b", "d"]
        );
        s.rechecked("t", &["a", "b"]).unwrap();
        s.set_base("t", "a", Some((1, &a))).unwrap();
        assert_eq!(s.recheck("t").unwrap().len(), 1, "same base: no recheck");
        s.set_base("t", "a", None).unwrap();
        assert!(s.recheck("t").unwrap().contains("a"));
        s.rechecked_all("t").unwrap();
        assert!(s.recheck("t").unwrap().is_empty());
    }

    #[test]
    fn a_stamp_that_is_not_the_base_is_rechecked_and_a_base_its_stamp_holds_is_not() {
        let s = State::in_memory().unwrap();
        let a = Some(json!({"n": 1}));
        let b = Some(json!({"n": 2}));
        let h = |v: &Option<serde_json::Value>| deltasync_meta::content_hash(v.as_ref().unwrap());
        s.set_base("t", "a", Some((1, &a))).unwrap();
        s.set_base("t", "b", Some((1, &a))).unwrap();
        s.rechecked_all("t").unwrap();
        let k = |hash: String| KnownFile {
            stat: FileStat::default(),
            file_hash: "f".into(),
            hash,
        };
        s.set_known_files(
            "t",
            &[("a".into(), k(h(&a))), ("b".into(), k(h(&b)))],
            &[],
            false,
        )
        .unwrap();
        // b's file holds other content than its base.
        assert_eq!(
            s.recheck("t").unwrap().into_iter().collect::<Vec<_>>(),
            ["b"]
        );
        // b's base becomes what its file holds (a push of what was read): out of recheck;
        // a's base becomes something its file does not hold.
        s.set_base("t", "b", Some((2, &b))).unwrap();
        s.set_base("t", "a", Some((2, &b))).unwrap();
        assert_eq!(
            s.recheck("t").unwrap().into_iter().collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(s.known_stats("t").unwrap().len(), 2);
    }

    #[test]
    fn the_partial_indexes_are_used() {
        let s = State::in_memory().unwrap();
        for (cond, index) in [
            (UNSETTLED, "entities_unsettled"),
            (LIVE, "entities_live_ids"),
            (SYNCED, "entities_synced"),
        ] {
            let plan = s
                .query_plan(&format!(
                    "SELECT id FROM entities INDEXED BY {index} WHERE collection = 't' AND {cond}"
                ))
                .unwrap();
            assert!(plan.contains(index), "{cond}: {plan}");
        }
    }
}
