//! State reads and writes of large pulls (a new device's bootstrap): a mirror's version
//! looked up alone, and a base recorded as a copy of the mirror inside SQLite, without
//! decoding, re-encoding and hashing the content again.

use super::*;

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
               base_content = m_content, base_clock_ms = m_clock_ms, base_clock_c = m_clock_c
             WHERE collection = ?1 AND id = ?2 AND has_mirror = 1 AND m_version = ?3",
            params![collection, id, version as i64],
        )?;
        Ok(n == 1)
    }
}
