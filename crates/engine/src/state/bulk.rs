//! State reads and writes of large pulls (a new device's bootstrap): the *fresh* entities
//! (a remote record with content, no base: new to this device) counted and read in pages
//! rather than planned one by one, a mirror's version looked up alone, and a base recorded
//! as the mirror's, shared with it inside SQLite ([`State::base`]), without decoding,
//! re-encoding and hashing the content again, nor storing it twice.

use std::collections::BTreeMap;

use super::scope::UNSETTLED;
use super::*;

/// An entity new to this device: the remote has content for it, this device no base.
const FRESH: &str = "has_base = 0 AND has_mirror = 1 AND m_hash IS NOT NULL";

/// A page of fresh entities ([`State::fresh_page`]): id, mirror version and content.
pub type FreshPage = Vec<(String, u64, serde_json::Value)>;

impl State {
    /// The version of the mirror of an entity (`None`: no remote record known), without
    /// reading its content.
    pub fn mirror_version(&self, collection: &str, id: &str) -> Result<Option<u64>, StateError> {
        let row: Option<(bool, i64)> = self
            .row(
                "SELECT has_mirror, m_version FROM entities WHERE collection = ?1 AND id = ?2",
                params![collection, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((true, v)) => Some(v as u64),
            _ => None,
        })
    }

    /// Sets the base of an entity to its mirror, as [`State::set_base`] with the mirror's
    /// version and content would (the clock included), if the mirror is still at `version`.
    /// Returns whether it did: `false` if the mirror moved or is gone meanwhile, and then
    /// nothing changed.
    pub fn set_base_to_mirror(
        &self,
        collection: &str,
        id: &str,
        version: u64,
    ) -> Result<bool, StateError> {
        let n = self.exec(
            "UPDATE entities SET has_base = 1, base_version = m_version, base_hash = m_hash,
               base_content = CASE WHEN m_hash IS NULL THEN NULL ELSE '' END,
               base_clock_ms = m_clock_ms, base_clock_c = m_clock_c
             WHERE collection = ?1 AND id = ?2 AND has_mirror = 1 AND m_version = ?3",
            params![collection, id, version as i64],
        )?;
        Ok(n == 1)
    }

    /// [`State::unsettled`] without the fresh entities (a remote record with content, no
    /// base), which a sync that writes them takes page by page ([`State::fresh_page`]).
    pub fn unsettled_not_fresh(
        &self,
        collection: &str,
    ) -> Result<BTreeMap<String, EntityState>, StateError> {
        self.states_where(
            collection,
            "INDEXED BY entities_unsettled",
            &format!("{UNSETTLED} AND NOT ({FRESH})"),
        )
    }

    /// How many entities of `collection` are fresh: a remote record with content, no base.
    pub fn fresh_count(&self, collection: &str) -> Result<u64, StateError> {
        let n: i64 = self.row(
            &format!(
                "SELECT COUNT(*) FROM entities INDEXED BY entities_unsettled WHERE collection = ?1 AND {UNSETTLED} AND {FRESH}"
            ),
            params![collection],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// [`State::fresh_page`] with each content as the JSON text stored, not parsed.
    pub fn fresh_page_text(
        &self,
        collection: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64, String)>, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, m_version, m_content FROM entities INDEXED BY entities_unsettled WHERE collection = ?1 AND id > ?2 AND {UNSETTLED} AND {FRESH} ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![collection, after, limit as i64], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets the base of every fresh entity of `collection` whose id is after `after` and at
    /// most `last` to its mirror, as [`State::set_base_to_mirror`] does one by one, in one
    /// statement (a page of [`State::fresh_page_text`]); returns how many.
    pub fn set_fresh_bases_to_mirror(
        &self,
        collection: &str,
        after: &str,
        last: &str,
    ) -> Result<usize, StateError> {
        Ok(self.exec(
            &format!(
                "UPDATE entities SET has_base = 1, base_version = m_version, base_hash = m_hash,
                   base_content = '', base_clock_ms = m_clock_ms, base_clock_c = m_clock_c
                 WHERE collection = ?1 AND id > ?2 AND id <= ?3 AND {FRESH}"
            ),
            params![collection, after, last],
        )?)
    }

    /// Up to `limit` fresh entities of `collection` whose ids come after `after`, in id
    /// order, with their mirror's version and content.
    pub fn fresh_page(
        &self,
        collection: &str,
        after: &str,
        limit: usize,
    ) -> Result<FreshPage, StateError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, m_version, m_content FROM entities INDEXED BY entities_unsettled WHERE collection = ?1 AND id > ?2 AND {UNSETTLED} AND {FRESH} ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![collection, after, limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, version, content) = row?;
            out.push((
                id,
                version as u64,
                deltasync_meta::parse_deep(content.as_bytes())?,
            ));
        }
        Ok(out)
    }
}

impl State {
    /// Whether any entity of `collection` has a base: a collection this device never synced
    /// has none.
    pub fn has_base_in(&self, collection: &str) -> Result<bool, StateError> {
        Ok(self
            .row(
                "SELECT 1 FROM entities INDEXED BY entities_synced WHERE collection = ?1 AND has_base = 1 LIMIT 1",
                params![collection],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Forgets every base of `collection` (the mirror stays): what a bootstrap recorded
    /// for files it could not move into place. Its entities are fresh again.
    pub fn forget_bases(&self, collection: &str) -> Result<(), StateError> {
        self.exec(
            "UPDATE entities SET has_base = 0, base_version = 0, base_hash = NULL, base_content = NULL,
               base_clock_ms = 0, base_clock_c = 0
             WHERE collection = ?1 AND has_base = 1",
            params![collection],
        )?;
        Ok(())
    }
}
