//! The stat cache in the local state: per entity file (and per `file` collection's document)
//! what a scan read — its stat, the hash of its bytes, the entity's content hash — so that the
//! next scan reads only the files whose stat changed (`collections::scan_known`).

use std::collections::HashMap;

use rusqlite::params;

use super::{State, StateError};
use crate::collections::{FileStat, KnownFile};

/// The table, created by `migrate` (schema version 2).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS file_stamps (
  collection TEXT NOT NULL,
  id TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  file_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (collection, id)
) WITHOUT ROWID;
"#;

impl State {
    /// What the scans of `collection` read and may not need to read again, by entity id
    /// (`""`: a `file` collection's document).
    pub fn known_files(&self, collection: &str) -> Result<HashMap<String, KnownFile>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, size, mtime_ns, ctime_ns, ino, file_hash, hash FROM file_stamps WHERE collection = ?1",
        )?;
        let rows = stmt.query_map([collection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                KnownFile {
                    stat: FileStat {
                        size: r.get::<_, i64>(1)? as u64,
                        mtime_ns: r.get(2)?,
                        ctime_ns: r.get(3)?,
                        ino: r.get::<_, i64>(4)? as u64,
                    },
                    file_hash: r.get(5)?,
                    hash: r.get(6)?,
                },
            ))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, k) = row?;
            out.insert(id, k);
        }
        Ok(out)
    }

    /// Records what a scan of `collection` read (`put`) and forgets what it found changed or
    /// gone (`remove`); `clear` forgets everything else of the collection first (a full scan).
    pub fn set_known_files(
        &self,
        collection: &str,
        put: &[(String, KnownFile)],
        remove: &[String],
        clear: bool,
    ) -> Result<(), StateError> {
        if clear {
            self.conn.execute(
                "DELETE FROM file_stamps WHERE collection = ?1",
                [collection],
            )?;
        }
        let mut del = self
            .conn
            .prepare_cached("DELETE FROM file_stamps WHERE collection = ?1 AND id = ?2")?;
        for id in remove {
            del.execute(params![collection, id])?;
        }
        let mut ins = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO file_stamps(collection, id, size, mtime_ns, ctime_ns, ino, file_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (id, k) in put {
            ins.execute(params![
                collection,
                id,
                k.stat.size as i64,
                k.stat.mtime_ns,
                k.stat.ctime_ns,
                k.stat.ino as i64,
                k.file_hash,
                k.hash
            ])?;
        }
        Ok(())
    }

    /// Forgets every file read: the next sync reads every file (the safety net of change
    /// detection by stat).
    pub fn forget_known_files(&self) -> Result<(), StateError> {
        self.conn.execute("DELETE FROM file_stamps", [])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_files_round_trip() {
        let mut s = State::in_memory().unwrap();
        let k = |n: u64| KnownFile {
            stat: FileStat {
                size: n,
                mtime_ns: -3,
                ctime_ns: 7,
                ino: u64::MAX,
            },
            file_hash: format!("f{n}"),
            hash: format!("h{n}"),
        };
        s.transaction(|s| {
            s.set_known_files("t", &[("a".into(), k(1)), ("b".into(), k(2))], &[], false)?;
            s.set_known_files("u", &[("a".into(), k(3))], &[], false)
        })
        .unwrap();
        let t = s.known_files("t").unwrap();
        assert_eq!((t.len(), &t["a"], &t["b"]), (2, &k(1), &k(2)));
        s.set_known_files("t", &[("c".into(), k(4))], &["a".into()], false)
            .unwrap();
        let t = s.known_files("t").unwrap();
        assert_eq!(t.keys().collect::<std::collections::BTreeSet<_>>().len(), 2);
        assert!(t.contains_key("b") && t.contains_key("c"));
        s.set_known_files("t", &[("d".into(), k(5))], &[], true)
            .unwrap();
        assert_eq!(s.known_files("t").unwrap().len(), 1);
        assert_eq!(s.known_files("u").unwrap()["a"], k(3));
        s.forget_known_files().unwrap();
        assert!(s.known_files("u").unwrap().is_empty());
    }
}
