//! Local state in SQLite under `.deltasync/state.db`.
//!
//! Per entity it keeps two things that are usually equal:
//! - the **base**: the content this device last agreed on with the remote (what the three-way
//!   merge starts from), with its version and hash;
//! - the **mirror**: the remote's record as of the deltas applied here (version, clock,
//!   device, tombstone, content).
//!
//! They differ only while a local file cannot be read (the pull is held back) or between the
//! steps of one sync. Besides: the applied deltas, the meta etag, the device id and clock, the
//! conflict receipts, per-collection sync statistics and the pending-commit journal.

use std::path::{Path, PathBuf};

use deltasync_meta::{ConflictReceipt, Hlc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Errors of the local state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite failed.
    #[error("local state (.deltasync/state.db): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored JSON could not be decoded.
    #[error("local state holds invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The state folder could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An entity's base is recorded as its mirror's content (see [`State::base`]), but the mirror
    /// no longer holds it: the database was changed by something that does not keep that
    /// rule (an older deltasync). `deltasync repair` rebuilds the state from the remote.
    #[error(
        "local state (.deltasync/state.db): the base of {collection}/{id} is lost (the database was changed by an older deltasync?); run `deltasync repair`"
    )]
    LostBase {
        /// The collection.
        collection: String,
        /// The entity.
        id: String,
    },
    /// The state database cannot be opened or used: a read-only workspace, a full disk, or a
    /// damaged file.
    #[error("{path}: {detail}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
        /// Whether it may pass: another deltasync process holds the database.
        busy: bool,
    },
}

impl StateError {
    /// Whether trying again can help: the database is busy or locked by another deltasync
    /// process on this workspace (SQLITE_BUSY / SQLITE_LOCKED past the 10 s busy timeout).
    pub fn is_temporary(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match self {
            StateError::Sqlite(e) => {
                matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked))
            }
            StateError::Open { busy, .. } => *busy,
            _ => false,
        }
    }
}

/// The base and mirror of one entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityState {
    /// Version of the base (0 when there is none).
    pub base_version: u64,
    /// Hash of the base content; `None` for a tombstone or no base.
    pub base_hash: Option<String>,
    /// Whether a base exists at all.
    pub has_base: bool,
    /// Mirror: version of the remote record (0: none known).
    pub m_version: u64,
    /// Mirror: hash of the remote content (`None`: tombstone).
    pub m_hash: Option<String>,
    /// Mirror: whether a remote record is known.
    pub has_mirror: bool,
}

/// A remote record as mirrored locally, with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorRecord {
    /// Version.
    pub version: u64,
    /// Clock of the last change.
    pub clock: Hlc,
    /// Device of the last change.
    pub device: String,
    /// Content; `None` for a tombstone.
    pub content: Option<serde_json::Value>,
    /// The record's fields this version does not know, kept with it (a compaction writes them
    /// into the snapshot).
    #[serde(default, skip_serializing_if = "deltasync_meta::Extra::is_empty")]
    pub extra: deltasync_meta::Extra,
}

/// Per-collection statistics of the last sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionSyncState {
    /// When, ms since the Unix epoch.
    pub last_sync_ms: u64,
    /// Records pushed.
    pub up: u64,
    /// Records pulled.
    pub down: u64,
    /// How long it took, ms.
    pub duration_ms: u64,
}

/// The local state database.
#[derive(Debug)]
pub struct State {
    conn: Connection,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
  collection TEXT NOT NULL,
  id TEXT NOT NULL,
  has_base INTEGER NOT NULL DEFAULT 0,
  base_version INTEGER NOT NULL DEFAULT 0,
  base_hash TEXT,
  base_content TEXT,
  base_clock_ms INTEGER NOT NULL DEFAULT 0,
  base_clock_c INTEGER NOT NULL DEFAULT 0,
  has_mirror INTEGER NOT NULL DEFAULT 0,
  m_version INTEGER NOT NULL DEFAULT 0,
  m_hash TEXT,
  m_clock_ms INTEGER NOT NULL DEFAULT 0,
  m_clock_c INTEGER NOT NULL DEFAULT 0,
  m_device TEXT NOT NULL DEFAULT '',
  m_content TEXT,
  m_extra TEXT,
  PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied_deltas (path TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (
  id TEXT PRIMARY KEY,
  json TEXT NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0,
  to_push INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_state (
  collection TEXT PRIMARY KEY,
  last_sync_ms INTEGER NOT NULL, up INTEGER NOT NULL, down INTEGER NOT NULL, duration_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (delta_path TEXT PRIMARY KEY, json TEXT NOT NULL);
"#;

/// The version of [`SCHEMA`] (`PRAGMA user_version`): 0, a database from before versions
/// were kept; 1, `entities.m_extra` added; 2, the stat cache (`file_stamps`, [`stamps`]);
/// 3, bases shared with the mirror (`base_content` `''`, see [`State::base`]). The
/// partial indexes, the `recheck` table and its triggers that let a sync plan only what may
/// have changed ([`scope`]) are added to any database that lacks them, with no new version:
/// a binary that does not know them reads and writes the database as before, and SQLite
/// keeps them up to date for it.
const SCHEMA_VERSION: i64 = 3;

/// Creates the tables and brings an older database up to [`SCHEMA_VERSION`].
fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "was written by a newer deltasync (state version {found}; this one knows up to \
                 {SCHEMA_VERSION}): run that version, or move the .deltasync folder away and \
                 sync again (the device then starts over from the remote, keeping every edit)"
            )),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    // Version 2: a new table, created as the others are (an older database simply has no
    // stat cache yet: its first sync reads every file, as before), and the journal's seq and
    // state beside its JSON, so that a fetch can ask for them without parsing every entry
    // (an import's entry holds every entity). Entries written before have them NULL.
    conn.execute_batch(stamps::SCHEMA)?;
    if conn.prepare("SELECT state FROM journal LIMIT 0").is_err() {
        conn.execute_batch(
            "ALTER TABLE journal ADD COLUMN seq INTEGER; ALTER TABLE journal ADD COLUMN state TEXT;",
        )?;
        // Filled in once here where SQLite can read JSON; `pending_states` parses any entry
        // left without them.
        let _ = conn.execute_batch(
            "UPDATE journal SET seq = json_extract(json, '$.seq'), state = json_extract(json, '$.state')",
        );
    }
    // The journal's heads (seq, state, meta etag) in a table of their own, kept by triggers
    // (`journal::HEADS_SCHEMA`), with no new version: reading or updating a column of a
    // `journal` row makes SQLite walk the row's whole JSON, which for an import's entry is
    // every entity. A binary that does not know the table writes `journal` as before and the
    // triggers keep the heads.
    let had_heads = conn.prepare("SELECT 1 FROM journal_heads LIMIT 0").is_ok();
    conn.execute_batch(journal::HEADS_SCHEMA)?;
    if !had_heads {
        conn.execute_batch(journal::FILL_HEADS)?;
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1
        && conn
            .prepare("SELECT m_extra FROM entities LIMIT 0")
            .is_err()
    {
        conn.execute_batch("ALTER TABLE entities ADD COLUMN m_extra TEXT")?;
    }
    let had_recheck = conn.prepare("SELECT 1 FROM recheck LIMIT 0").is_ok();
    conn.execute_batch(&scope::schema())?;
    if !had_recheck {
        conn.execute_batch(scope::RECHECK_ALL)?;
    }
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}

/// The unknown fields of a mirrored record, from `m_extra`.
fn extra_of(text: Option<String>) -> Result<deltasync_meta::Extra, StateError> {
    Ok(match text {
        Some(t) => deltasync_meta::parse_deep(t.as_bytes())?,
        None => deltasync_meta::Extra::new(),
    })
}

/// What to tell about a state database that cannot be opened.
fn open_error(path: &Path, e: rusqlite::Error) -> StateError {
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    let detail = match code {
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!(
                "cannot be opened for writing ({e}): deltasync needs to write its local state \
                 there; is the workspace read-only, or owned by another user?"
            )
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => format!(
            "is damaged ({e}). Your files are not affected: move the .deltasync folder away and \
             sync again — the device then starts over from the remote, merging its \
             files with it, and keeps every edit"
        ),
        Some(ErrorCode::DiskFull) => format!("the disk is full ({e})"),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("is in use by another deltasync process ({e}); try again when it has finished")
        }
        _ => e.to_string(),
    };
    StateError::Open {
        path: path.to_path_buf(),
        detail,
        busy: matches!(
            code,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        ),
    }
}

/// The statement that sets an entity's mirror, the row inserted whole when new (an empty row
/// grown by an update moved every B-tree page of a bootstrap twice), followed by `$when`, a
/// condition on the update. A base shared with the old content keeps it (see
/// [`State::base`]).
macro_rules! upsert_mirror {
    ($when:literal) => {
        concat!(
            "INSERT INTO entities(collection, id, has_mirror, m_version, m_hash, m_clock_ms, m_clock_c, m_device, m_content, m_extra)
               VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(collection, id) DO UPDATE SET
               base_content = CASE WHEN base_content = '' AND base_hash IS m_hash AND base_hash IS NOT excluded.m_hash THEN m_content ELSE base_content END,
               has_mirror = 1, m_version = excluded.m_version, m_hash = excluded.m_hash,
               m_clock_ms = excluded.m_clock_ms, m_clock_c = excluded.m_clock_c,
               m_device = excluded.m_device, m_content = excluded.m_content, m_extra = excluded.m_extra",
            $when
        )
    };
}

fn hash_of(content: &Option<serde_json::Value>) -> Option<String> {
    content.as_ref().map(deltasync_meta::content_hash)
}

impl State {
    /// Opens (creating) the database in `dir` (the workspace's `.deltasync/`).
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("state.db");
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // Statement journals (an UPDATE that fires triggers opens one) in memory: in a temp
            // file they cost a write per page per statement, 1.5 million writes in a bootstrap
            // of 100,000 entities. They hold the pages of one statement at a time.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            migrate(&conn)?;
            // Every statement of the per-entity paths stays prepared.
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Open {
                path: path.clone(),
                detail: format!(
                    "cannot create its folder ({e}): is the workspace writable by this user?"
                ),
                busy: false,
            })
            .and_then(|()| open().map_err(|e| open_error(&path, e)))?;
        Ok(State { conn: opened })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Self, StateError> {
        let conn = Connection::open_in_memory()?;
        migrate(&conn)?;
        Ok(State { conn })
    }

    /// Runs `f` in one transaction: all of it is applied or none.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&State) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// A key-value setting.
    pub fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// The length in bytes of a key-value setting, without reading it (SQLite's `length` of a
    /// text counts characters; the cast to a blob counts bytes).
    pub fn len_of(&self, key: &str) -> Result<Option<u64>, StateError> {
        Ok(self
            .row(
                "SELECT length(CAST(value AS BLOB)) FROM kv WHERE key = ?1",
                [key],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|n| n as u64))
    }

    /// Sets a key-value setting.
    pub fn set(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.exec(
            "INSERT INTO kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Stores the local copy of meta.json and its etag, with a new revision
    /// ([`State::meta_key`]); returns the revision.
    pub fn set_meta(&self, text: &str, etag: &str) -> Result<String, StateError> {
        let rev = format!("{:016x}", fastrand::u64(..));
        self.set("meta", text)?;
        self.set("meta_etag", etag)?;
        self.set(META_REV, &rev)?;
        Ok(rev)
    }

    /// What identifies the stored copy of meta.json without reading it: its etag and its
    /// revision (new at every [`State::set_meta`], by this process or another); `None` when
    /// there is no copy.
    pub fn meta_key(&self) -> Result<Option<(String, Option<String>)>, StateError> {
        Ok(match self.get("meta_etag")? {
            Some(etag) => Some((etag, self.get(META_REV)?)),
            None => None,
        })
    }

    /// Removes a key-value setting.
    pub fn unset(&self, key: &str) -> Result<(), StateError> {
        self.exec("DELETE FROM kv WHERE key = ?1", [key])?;
        Ok(())
    }

    /// The clock last issued or seen.
    pub fn clock(&self) -> Result<Hlc, StateError> {
        Ok(match self.get("hlc")? {
            Some(s) => deltasync_meta::parse_deep(s.as_bytes())?,
            None => Hlc::default(),
        })
    }

    /// Stores the clock.
    pub fn set_clock(&self, h: Hlc) -> Result<(), StateError> {
        self.set("hlc", &serde_json::to_string(&h)?)
    }

    /// The state (without contents) of every entity, keyed by (collection, id).
    pub fn all_states(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, String), EntityState>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT collection, id, has_base, base_version, base_hash, has_mirror, m_version, m_hash FROM entities",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                EntityState {
                    has_base: r.get(2)?,
                    base_version: r.get::<_, i64>(3)? as u64,
                    base_hash: r.get(4)?,
                    has_mirror: r.get(5)?,
                    m_version: r.get::<_, i64>(6)? as u64,
                    m_hash: r.get(7)?,
                },
            ))
        })?;
        let mut out = std::collections::BTreeMap::new();
        for row in rows {
            let (k, v) = row?;
            out.insert(k, v);
        }
        Ok(out)
    }

    /// The base content of an entity: `None` when there is no base, `Some(None)` for a
    /// tombstone.
    ///
    /// A base that is its mirror's content (set by [`State::set_base_to_mirror`]) is stored
    /// once, shared: its `base_content` is `''`, which no JSON text is, and its `base_hash` is
    /// `m_hash`; every change of the mirror first copies the content into `base_content`
    /// (a new device's bootstrap stored every content twice). An older deltasync fails to
    /// parse `''` rather than take it for something else; a shared base whose mirror moved
    /// without that copy is [`StateError::LostBase`].
    pub fn base(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<(u64, Option<serde_json::Value>)>, StateError> {
        // A base shared with the mirror is the mirror's content, which must then have the
        // base's hash.
        let row: Option<(bool, i64, Option<String>, bool)> = self.row(
                "SELECT has_base, base_version,
                   CASE WHEN base_content = '' AND base_hash IS m_hash THEN m_content ELSE base_content END,
                   base_content = '' AND base_hash IS NOT m_hash
                 FROM entities WHERE collection = ?1 AND id = ?2",
                params![collection, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, Option<bool>>(3)?.unwrap_or(false))),
            )
            .optional()?;
        match row {
            Some((true, _, _, true)) => Err(StateError::LostBase {
                collection: collection.to_owned(),
                id: id.to_owned(),
            }),
            Some((true, v, content, false)) => Ok(Some((
                v as u64,
                content
                    .map(|c| deltasync_meta::parse_deep(c.as_bytes()))
                    .transpose()?,
            ))),
            _ => Ok(None),
        }
    }

    /// The clock of the base's version (the default clock when unknown).
    pub fn base_clock(&self, collection: &str, id: &str) -> Result<Hlc, StateError> {
        let row: Option<(i64, i64)> = self.row(
                "SELECT base_clock_ms, base_clock_c FROM entities WHERE collection = ?1 AND id = ?2 AND has_base = 1",
                params![collection, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row
            .map(|(ms, c)| Hlc {
                ms: ms as u64,
                counter: c as u32,
            })
            .unwrap_or_default())
    }

    /// The mirrored remote record of an entity.
    pub fn mirror(&self, collection: &str, id: &str) -> Result<Option<MirrorRecord>, StateError> {
        type Row = (bool, i64, i64, i64, String, Option<String>, Option<String>);
        let row: Option<Row> = self.row(
                "SELECT has_mirror, m_version, m_clock_ms, m_clock_c, m_device, m_content, m_extra FROM entities WHERE collection = ?1 AND id = ?2",
                params![collection, id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        match row {
            Some((true, v, ms, c, device, content, extra)) => Ok(Some(MirrorRecord {
                version: v as u64,
                clock: Hlc {
                    ms: ms as u64,
                    counter: c as u32,
                },
                device,
                content: content
                    .map(|c| deltasync_meta::parse_deep(c.as_bytes()))
                    .transpose()?,
                extra: extra_of(extra)?,
            })),
            _ => Ok(None),
        }
    }

    /// Runs `sql` as a statement prepared once per connection (SQLite's parse of the SQL
    /// text was an eighth of a 100k bootstrap's CPU when every call prepared it again).
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, rusqlite::Error> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// The one row `sql` returns, through a statement prepared once per connection.
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        self.conn.prepare_cached(sql)?.query_row(params, f)
    }

    fn ensure_row(&self, collection: &str, id: &str) -> Result<(), StateError> {
        self.exec(
            "INSERT OR IGNORE INTO entities(collection, id) VALUES (?1, ?2)",
            params![collection, id],
        )?;
        Ok(())
    }

    /// Sets the base of an entity (`None` removes it). The base's clock is taken from the
    /// mirror when the mirror holds the same version (set the mirror first).
    pub fn set_base(
        &self,
        collection: &str,
        id: &str,
        base: Option<(u64, &Option<serde_json::Value>)>,
    ) -> Result<(), StateError> {
        self.ensure_row(collection, id)?;
        match base {
            Some((version, content)) => {
                let text = content.as_ref().map(serde_json::to_string).transpose()?;
                self.exec(
                    "UPDATE entities SET has_base = 1, base_version = ?3, base_hash = ?4, base_content = ?5,
                       base_clock_ms = CASE WHEN has_mirror = 1 AND m_version = ?3 THEN m_clock_ms ELSE base_clock_ms END,
                       base_clock_c = CASE WHEN has_mirror = 1 AND m_version = ?3 THEN m_clock_c ELSE base_clock_c END
                     WHERE collection = ?1 AND id = ?2",
                    params![collection, id, version as i64, hash_of(content), text],
                )?;
            }
            None => {
                self.exec(
                    "UPDATE entities SET has_base = 0, base_version = 0, base_hash = NULL, base_content = NULL WHERE collection = ?1 AND id = ?2",
                    params![collection, id],
                )?;
            }
        }
        Ok(())
    }

    /// Sets the mirror of an entity (`None` removes it).
    pub fn set_mirror(
        &self,
        collection: &str,
        id: &str,
        mirror: Option<&MirrorRecord>,
    ) -> Result<(), StateError> {
        match mirror {
            Some(m) => {
                self.upsert_mirror(upsert_mirror!(""), collection, id, m)?;
            }
            None => {
                self.ensure_row(collection, id)?;
                self.exec(
                    "UPDATE entities SET
                       base_content = CASE WHEN base_content = '' AND base_hash IS m_hash THEN m_content ELSE base_content END,
                       has_mirror = 0, m_version = 0, m_hash = NULL, m_content = NULL, m_extra = NULL
                     WHERE collection = ?1 AND id = ?2",
                    params![collection, id],
                )?;
            }
        }
        Ok(())
    }

    /// Sets the mirror of an entity to `mirror` unless the one held is as new or newer (a
    /// snapshot read over what a fetch applied before); says whether it did. One statement:
    /// a new device's bootstrap makes one per entity.
    pub fn set_mirror_if_newer(
        &self,
        collection: &str,
        id: &str,
        mirror: &MirrorRecord,
    ) -> Result<bool, StateError> {
        let sql = upsert_mirror!(
            " WHERE entities.has_mirror = 0 OR excluded.m_version > entities.m_version"
        );
        Ok(self.upsert_mirror(sql, collection, id, mirror)? == 1)
    }

    /// Runs one of the [`upsert_mirror!`] statements for `m`; the number of rows it changed.
    fn upsert_mirror(
        &self,
        sql: &str,
        collection: &str,
        id: &str,
        m: &MirrorRecord,
    ) -> Result<usize, StateError> {
        let text = m.content.as_ref().map(serde_json::to_string).transpose()?;
        let extra = (!m.extra.is_empty())
            .then(|| serde_json::to_string(&m.extra))
            .transpose()?;
        Ok(self.exec(
            sql,
            params![
                collection,
                id,
                m.version as i64,
                hash_of(&m.content),
                m.clock.ms as i64,
                m.clock.counter as i64,
                m.device,
                text,
                extra
            ],
        )?)
    }

    /// Forgets everything this device knew of the remote — bases, mirror, applied deltas, the
    /// commit journal and the cached meta.json — keeping conflict receipts and the device id,
    /// so that the next sync meets the remote as a first sync does: local entities it lacks
    /// are pushed, the ones on both sides merged, the others pulled (`repair`).
    pub fn forget_remote(&self) -> Result<(), StateError> {
        self.conn.execute_batch(
            "DELETE FROM entities;
             DELETE FROM applied_deltas;
             DELETE FROM journal;
             DELETE FROM kv WHERE key IN ('meta', 'meta_etag', 'meta_rev', 'generation', 'supersedes', \
               'force_push', 'meta_read_ms', 'reread_meta', 'recommitted');",
        )?;
        Ok(())
    }

    /// Every entity's mirror, sorted by (collection, id).
    pub fn all_mirror(&self) -> Result<Vec<(String, String, MirrorRecord)>, StateError> {
        let mut out = Vec::new();
        self.for_each_mirror(|c, id, m| {
            out.push((c, id, m));
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands every entity's mirror to `f`, sorted by (collection, id), one at a time (a
    /// compaction writes them into the snapshot without holding them all).
    pub fn for_each_mirror(
        &self,
        mut f: impl FnMut(String, String, MirrorRecord) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT collection, id, m_version, m_clock_ms, m_clock_c, m_device, m_content, m_extra FROM entities WHERE has_mirror = 1 ORDER BY collection, id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let content: Option<String> = r.get(6)?;
            let m = MirrorRecord {
                version: r.get::<_, i64>(2)? as u64,
                clock: Hlc {
                    ms: r.get::<_, i64>(3)? as u64,
                    counter: r.get::<_, i64>(4)? as u32,
                },
                device: r.get(5)?,
                content: content
                    .map(|t| deltasync_meta::parse_deep(t.as_bytes()))
                    .transpose()?,
                extra: extra_of(r.get(7)?)?,
            };
            f(r.get(0)?, r.get(1)?, m)?;
        }
        Ok(())
    }

    /// Whether a delta was applied here.
    pub fn is_applied(&self, path: &str) -> Result<bool, StateError> {
        Ok(self
            .row(
                "SELECT 1 FROM applied_deltas WHERE path = ?1",
                [path],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records a delta as applied.
    pub fn mark_applied(&self, path: &str, seq: u64) -> Result<(), StateError> {
        self.exec(
            "INSERT OR REPLACE INTO applied_deltas(path, seq) VALUES (?1, ?2)",
            params![path, seq as i64],
        )?;
        Ok(())
    }

    /// How many deltas this device remembers having applied (those of the current snapshot
    /// generation: [`State::set_generation`] forgets the folded ones).
    pub fn applied_deltas(&self) -> Result<u64, StateError> {
        let n: i64 = self.row("SELECT COUNT(*) FROM applied_deltas", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The deltas this device remembers having applied: (path, seq).
    pub fn applied_list(&self) -> Result<Vec<(String, u64)>, StateError> {
        let mut st = self.conn.prepare("SELECT path, seq FROM applied_deltas")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that this device now reads the remote from the snapshot of `generation`,
    /// which folds every commit up to `head`: the rows of the deltas it folds are forgotten
    /// (a meta.json of that generation never lists them again), so the table holds the
    /// deltas since the snapshot, not every delta ever applied.
    pub fn set_generation(&self, generation: u64, head: u64) -> Result<(), StateError> {
        self.set("generation", &generation.to_string())?;
        self.conn
            .execute("DELETE FROM applied_deltas WHERE seq <= ?1", [head as i64])?;
        Ok(())
    }

    /// Forgets that a delta was applied (a commit of ours that was lost).
    pub fn unmark_applied(&self, path: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM applied_deltas WHERE path = ?1", [path])?;
        Ok(())
    }

    /// Stores or replaces a conflict receipt; `to_push` marks it for the next commit.
    pub fn put_conflict(&self, c: &ConflictReceipt, to_push: bool) -> Result<(), StateError> {
        self.exec(
            "INSERT INTO conflicts(id, json, resolved, to_push) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET json = excluded.json, resolved = MAX(conflicts.resolved, excluded.resolved),
               to_push = MAX(conflicts.to_push, excluded.to_push)",
            params![c.id, deltasync_meta::to_string_kept(c), c.resolved, to_push],
        )?;
        Ok(())
    }

    /// Every conflict receipt, open first.
    pub fn conflicts(&self) -> Result<Vec<ConflictReceipt>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json, resolved FROM conflicts ORDER BY resolved, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (json, resolved) = row?;
            let mut c: ConflictReceipt = deltasync_meta::from_slice_kept(json.as_bytes())?;
            c.resolved |= resolved;
            out.push(c);
        }
        Ok(out)
    }

    /// Receipts waiting to be pushed.
    pub fn conflicts_to_push(&self) -> Result<Vec<ConflictReceipt>, StateError> {
        Ok(self
            .conflicts()?
            .into_iter()
            .filter(|c| self.is_to_push(&c.id).unwrap_or(false))
            .collect())
    }

    fn is_to_push(&self, id: &str) -> Result<bool, StateError> {
        Ok(self
            .row("SELECT to_push FROM conflicts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(false))
    }

    /// Marks receipts as pushed.
    pub fn conflicts_pushed(&self, ids: &[String]) -> Result<(), StateError> {
        for id in ids {
            self.conn
                .execute("UPDATE conflicts SET to_push = 0 WHERE id = ?1", [id])?;
        }
        Ok(())
    }

    /// Marks receipts to be pushed again (their commit was lost).
    pub fn conflicts_to_push_again(&self, ids: &[String]) -> Result<(), StateError> {
        for id in ids {
            self.conn
                .execute("UPDATE conflicts SET to_push = 1 WHERE id = ?1", [id])?;
        }
        Ok(())
    }

    /// Records the statistics of a collection's sync.
    pub fn set_sync_state(
        &self,
        collection: &str,
        s: &CollectionSyncState,
    ) -> Result<(), StateError> {
        self.exec(
            "INSERT OR REPLACE INTO sync_state(collection, last_sync_ms, up, down, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![collection, s.last_sync_ms as i64, s.up as i64, s.down as i64, s.duration_ms as i64],
        )?;
        Ok(())
    }

    /// The statistics of a collection's last sync.
    pub fn sync_state(&self, collection: &str) -> Result<Option<CollectionSyncState>, StateError> {
        Ok(self
            .row(
                "SELECT last_sync_ms, up, down, duration_ms FROM sync_state WHERE collection = ?1",
                [collection],
                |r| {
                    Ok(CollectionSyncState {
                        last_sync_ms: r.get::<_, i64>(0)? as u64,
                        up: r.get::<_, i64>(1)? as u64,
                        down: r.get::<_, i64>(2)? as u64,
                        duration_ms: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()?)
    }
}

/// Reads and writes of large pulls.
mod bulk;
/// The pending-commit journal.
mod journal;
/// The stat cache.
mod stamps;

/// Entity states by key and by small sets; what a sync needs to plan only what may have
/// changed.
mod scope;

pub use journal::{BeforeCommit, JournalHead, JournalState, PendingCommit};

/// State key of the revision in [`State::meta_key`].
const META_REV: &str = "meta_rev";

#[cfg(test)]
mod tests;
