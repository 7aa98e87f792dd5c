//! The pending-commit journal in the local state: each commit of this device from before its
//! delta is written until another device's write confirms it (or it is found lost and made
//! again), with what its entities were before it, the delta it supersedes and the entities
//! forced into the next commit. The protocol that reads it is `sync::commit`.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{MirrorRecord, State, StateError};

/// The journal's heads, one row per entry of `journal`, kept by triggers so that they stay
/// right whoever writes `journal` (an older binary too: it writes `seq` and `state`, or only
/// the JSON, and replaces rows whole). `meta_etag` is this binary's: a row inserted or
/// replaced gets none, an update keeps it while the state stays, and a NULL `meta_etag` of an
/// `unconfirmed` entry is read from its JSON.
pub(super) const HEADS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS journal_heads (
  delta_path TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL, meta_etag TEXT
);
CREATE TRIGGER IF NOT EXISTS journal_heads_insert AFTER INSERT ON journal BEGIN
  INSERT OR REPLACE INTO journal_heads(delta_path, seq, state, meta_etag) VALUES (
    new.delta_path,
    coalesce(new.seq, json_extract(new.json, '$.seq')),
    coalesce(new.state, json_extract(new.json, '$.state')),
    NULL);
END;
CREATE TRIGGER IF NOT EXISTS journal_heads_update AFTER UPDATE ON journal BEGIN
  DELETE FROM journal_heads WHERE delta_path = old.delta_path AND old.delta_path <> new.delta_path;
  INSERT OR REPLACE INTO journal_heads(delta_path, seq, state, meta_etag) VALUES (
    new.delta_path,
    coalesce(new.seq, json_extract(new.json, '$.seq')),
    coalesce(new.state, json_extract(new.json, '$.state')),
    (SELECT meta_etag FROM journal_heads
      WHERE delta_path = new.delta_path
        AND state = coalesce(new.state, json_extract(new.json, '$.state'))));
END;
CREATE TRIGGER IF NOT EXISTS journal_heads_delete AFTER DELETE ON journal BEGIN
  DELETE FROM journal_heads WHERE delta_path = old.delta_path;
END;
"#;

/// Fills `journal_heads` from the entries of a database that had no such table (once).
pub(super) const FILL_HEADS: &str = r#"
INSERT OR REPLACE INTO journal_heads(delta_path, seq, state, meta_etag)
  SELECT delta_path, s, st, CASE WHEN st = 'unconfirmed' THEN json_extract(json, '$.meta_etag') END
  FROM (SELECT delta_path, json,
          coalesce(seq, json_extract(json, '$.seq')) AS s,
          coalesce(state, json_extract(json, '$.state')) AS st
        FROM journal);
"#;

/// Where a commit in the journal stands (stored as `"attempted"` / `"unconfirmed"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalState {
    /// The delta is written (or being written); whether meta.json was is not known.
    Attempted,
    /// meta.json lists the delta, as we wrote it; not yet seen under a meta.json someone else
    /// wrote (a racing writer on a non-atomic server may still overwrite it).
    Unconfirmed,
}

impl std::fmt::Display for JournalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JournalState::Attempted => "attempted",
            JournalState::Unconfirmed => "unconfirmed",
        })
    }
}

/// A commit recorded before meta.json is written, so that a crash can be recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCommit {
    /// Path of the delta.
    pub delta_path: String,
    /// Seq it was written for.
    pub seq: u64,
    /// Where the commit stands.
    pub state: JournalState,
    /// The meta etag after our write (for `unconfirmed`).
    pub meta_etag: Option<String>,
    /// What each entity's base and mirror were before the commit, to undo it if it is lost.
    pub before: Vec<BeforeCommit>,
    /// The records the commit wrote, to finish the local side after a crash.
    pub records: Vec<deltasync_meta::EntityRecord>,
    /// Ids of the conflict receipts the commit carried, to send again if it is lost.
    #[serde(default)]
    pub receipts: Vec<String>,
}

impl PendingCommit {
    /// What the commit protocol decides this entry by ([`JournalHead`]).
    pub fn head(&self) -> JournalHead {
        JournalHead {
            delta_path: self.delta_path.clone(),
            seq: self.seq,
            state: self.state,
            meta_etag: self.meta_etag.clone(),
        }
    }
}

/// A journal entry as the commit protocol decides it, read without the entry's records and
/// "before" (which, for an import, hold every entity): [`State::journal_heads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHead {
    /// Path of the delta.
    pub delta_path: String,
    /// Seq it was written for.
    pub seq: u64,
    /// Where the commit stands.
    pub state: JournalState,
    /// The meta etag after our write (for `unconfirmed`).
    pub meta_etag: Option<String>,
}

/// An entity's state before a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeforeCommit {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: String,
    /// The base (version, content) before; `None`: there was none.
    pub base: Option<(u64, Option<serde_json::Value>)>,
    /// The mirror before; `None`: none.
    pub mirror: Option<MirrorRecord>,
}

impl State {
    /// Writes a journal entry.
    pub fn put_pending(&self, p: &PendingCommit) -> Result<(), StateError> {
        self.exec(
            "INSERT OR REPLACE INTO journal(delta_path, json, seq, state) VALUES (?1, ?2, ?3, ?4)",
            params![
                p.delta_path,
                serde_json::to_string(p)?,
                p.seq as i64,
                p.state.to_string()
            ],
        )?;
        // (The trigger wrote the head, without the etag.)
        self.exec(
            "UPDATE journal_heads SET meta_etag = ?2 WHERE delta_path = ?1",
            params![p.delta_path, p.meta_etag],
        )?;
        Ok(())
    }

    /// Sets the meta etag of every `unconfirmed` entry to `etag` (the meta.json this device
    /// just wrote lists them all), in the entries' heads alone: an entry's JSON, which for an
    /// import holds every entity, is neither read nor rewritten. The head's etag is what
    /// [`State::journal_heads`] and [`State::pending_entry`] return.
    pub fn carry_unconfirmed(&self, etag: &str) -> Result<(), StateError> {
        self.exec(
            "UPDATE journal_heads SET meta_etag = ?1 WHERE state = 'unconfirmed'",
            [etag],
        )?;
        Ok(())
    }

    /// Every journal entry's [`JournalHead`], oldest seq first, from `journal_heads` without
    /// reading the entries (only an `unconfirmed` entry an older binary wrote, whose head has
    /// no etag, is parsed for it).
    pub fn journal_heads(&self) -> Result<Vec<JournalHead>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT h.delta_path, h.seq, h.state, h.meta_etag, \
               CASE WHEN h.state NOT IN ('attempted', 'unconfirmed') \
                 OR (h.state = 'unconfirmed' AND h.meta_etag IS NULL) \
                 THEN (SELECT json FROM journal j WHERE j.delta_path = h.delta_path) END \
             FROM journal_heads h",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (delta_path, seq, state, meta_etag, json) = row?;
            let state = match state.as_deref() {
                Some("attempted") => Some(JournalState::Attempted),
                Some("unconfirmed") => Some(JournalState::Unconfirmed),
                _ => None,
            };
            let head = match (seq, state, json) {
                (Some(seq), Some(state), None) => JournalHead {
                    delta_path,
                    seq: seq as u64,
                    state,
                    meta_etag,
                },
                (_, _, json) => {
                    let p: PendingCommit =
                        deltasync_meta::parse_deep(json.unwrap_or_default().as_bytes())?;
                    let mut head = p.head();
                    head.meta_etag = meta_etag.or(head.meta_etag);
                    head
                }
            };
            out.push(head);
        }
        out.sort_by_key(|h| h.seq);
        Ok(out)
    }

    /// The whole journal entry of the delta at `delta_path` (its `meta_etag` from the
    /// column, see [`State::carry_unconfirmed`]).
    pub fn pending_entry(&self, delta_path: &str) -> Result<Option<PendingCommit>, StateError> {
        let row = self
            .row(
                "SELECT j.json, h.meta_etag FROM journal j \
                 LEFT JOIN journal_heads h ON h.delta_path = j.delta_path WHERE j.delta_path = ?1",
                [delta_path],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        let Some((json, meta_etag)) = row else {
            return Ok(None);
        };
        let mut p: PendingCommit = deltasync_meta::parse_deep(json.as_bytes())?;
        if meta_etag.is_some() {
            p.meta_etag = meta_etag;
        }
        Ok(Some(p))
    }

    /// Removes a journal entry.
    pub fn remove_pending(&self, delta_path: &str) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM journal WHERE delta_path = ?1", [delta_path])?;
        Ok(())
    }

    /// The seq and state of every journal entry, oldest seq first ([`State::journal_heads`]).
    pub fn pending_states(&self) -> Result<Vec<(u64, JournalState)>, StateError> {
        Ok(self
            .journal_heads()?
            .into_iter()
            .map(|h| (h.seq, h.state))
            .collect())
    }

    /// Every journal entry, whole, oldest seq first (each parsed: a sync asks for
    /// [`State::journal_heads`] and the entries it needs instead).
    pub fn pending(&self) -> Result<Vec<PendingCommit>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT j.json, h.meta_etag FROM journal j \
             LEFT JOIN journal_heads h ON h.delta_path = j.delta_path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out: Vec<PendingCommit> = Vec::new();
        for row in rows {
            let (json, meta_etag) = row?;
            let mut p: PendingCommit = deltasync_meta::parse_deep(json.as_bytes())?;
            if meta_etag.is_some() {
                p.meta_etag = meta_etag;
            }
            out.push(p);
        }
        out.sort_by_key(|p| p.seq);
        Ok(out)
    }

    /// The delta the next commit replaces (an orphan of a lost or crashed commit of ours),
    /// named in that commit's `supersedes`.
    pub fn supersedes(&self) -> Result<Option<String>, StateError> {
        self.get(SUPERSEDES)
    }

    /// Sets [`State::supersedes`] (`None` clears it: the commit that named it is in).
    pub fn set_supersedes(&self, delta_path: Option<&str>) -> Result<(), StateError> {
        match delta_path {
            Some(p) => self.set(SUPERSEDES, p),
            None => self.unset(SUPERSEDES),
        }
    }

    /// Entities to push in the next commit whatever the planner says, with the seq of the
    /// lost commit that wrote them (see [`State::add_forced`]).
    pub fn forced(&self) -> Result<BTreeMap<(String, String), u64>, StateError> {
        Ok(match self.get(FORCED)? {
            Some(text) => serde_json::from_str::<Vec<((String, String), u64)>>(&text)?
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        })
    }

    /// Marks the entities of a lost commit to be pushed in the next commit: other devices may
    /// have applied the lost delta, and only a newer record replaces what they took from it.
    /// (An entity that someone wrote at or after the lost seq needs no push: that record,
    /// read after the lost one everywhere, replaces it already.)
    pub fn add_forced(&self, p: &PendingCommit) -> Result<(), StateError> {
        let keys: Vec<_> = p
            .records
            .iter()
            .map(|r| (r.collection.clone(), r.id.clone()))
            .collect();
        self.add_forced_keys(&keys, p.seq)
    }

    /// Forces `keys` into the next commit as [`State::add_forced`] does for a lost commit of
    /// seq `seq`.
    pub fn add_forced_keys(&self, keys: &[(String, String)], seq: u64) -> Result<(), StateError> {
        let mut map = self.forced()?;
        for k in keys {
            map.insert(k.clone(), seq);
        }
        let list: Vec<_> = map.into_iter().collect();
        self.set(FORCED, &serde_json::to_string(&list)?)
    }

    /// Clears [`State::forced`]: a commit carried them (they are pushed whenever set).
    pub fn clear_forced(&self) -> Result<(), StateError> {
        self.unset(FORCED)
    }

    /// How many commits of this device were lost to a racing writer and made again.
    pub fn recommitted(&self) -> Result<u64, StateError> {
        Ok(self
            .get(RECOMMITTED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Counts one more lost and remade commit.
    pub fn count_recommitted(&self) -> Result<(), StateError> {
        self.set(RECOMMITTED, &(self.recommitted()? + 1).to_string())
    }
}

/// State key of [`State::supersedes`].
const SUPERSEDES: &str = "supersedes";
/// State key of [`State::forced`] (JSON).
const FORCED: &str = "force_push";
/// State key of [`State::recommitted`].
const RECOMMITTED: &str = "recommitted";
