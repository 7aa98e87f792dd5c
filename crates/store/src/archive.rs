//! Zip archives: the deltas a compaction folded (`archive/`) and whole-remote backups.
//!
//! An archive of folded deltas is `archive/g<N>-<first seq>-<last seq>-<8 hex>.zip`: the
//! deltas of generation N, each under its own file name, and `index.json` (an
//! [`ArchiveIndex`]) listing them with their checksums. It is written create-only *before*
//! the meta commit that folds them, so that no crash can lose history; an archive of a
//! compaction that lost its race is deleted best-effort, and readers take each delta (by
//! path) once, whichever archive holds it.
//!
//! ```
//! use deltasync_store::archive::{read_zip, write_zip};
//!
//! let zip = write_zip(&[("a.json".into(), b"{}".to_vec())]).unwrap();
//! assert_eq!(read_zip(&zip).unwrap(), vec![("a.json".to_string(), b"{}".to_vec())]);
//! ```

use std::io::{Cursor, Read, Write};

use deltasync_meta::{Delta, DeltaRef, sha256_hex, verify_sha256};
use deltasync_remote::{GetResult, PutMode};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// The folder of archives at the remote root.
pub const ARCHIVE_DIR: &str = "archive";

/// The member of an archive that lists its deltas.
pub const INDEX_MEMBER: &str = "index.json";

/// `index.json` of an archive of folded deltas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveIndex {
    /// Format of this file: 1.
    pub format: u32,
    /// The generation whose deltas these are.
    pub generation: u64,
    /// The snapshot (file name) they were folded into.
    pub snapshot: String,
    /// The deltas, in seq order, as meta listed them; each member is the last segment of
    /// `path`.
    pub deltas: Vec<DeltaRef>,
}

/// An error of the zip layer.
fn zip_error(path: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Archive {
        path: path.to_string(),
        detail: e.to_string(),
    }
}

/// Builds a zip (deflate) of `members` (name, bytes), in order.
pub fn write_zip(members: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        w.start_file(name.as_str(), options)
            .map_err(std::io::Error::other)?;
        w.write_all(bytes)?;
    }
    Ok(w.finish().map_err(std::io::Error::other)?.into_inner())
}

/// How much a zip may inflate to, in all: JSON deltas deflate to a fifth or a tenth, so 32
/// times the archive plus 64 MiB is room enough; a zip bomb is refused while it inflates,
/// before anything is checked against a checksum.
pub fn max_inflated(compressed: usize) -> u64 {
    (compressed as u64)
        .saturating_mul(32)
        .saturating_add(64 << 20)
}

/// Reads every member of a zip: (name, bytes), in archive order, refusing one that inflates
/// past [`max_inflated`] in all.
pub fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(z.len().min(1 << 16));
    let mut left = max_inflated(bytes.len());
    for i in 0..z.len() {
        let f = z.by_index(i).map_err(|e| e.to_string())?;
        let name = f.name().map_err(|e| e.to_string())?.to_string();
        if f.size() > left {
            return Err(format!("{name} inflates to more than the archive can hold"));
        }
        let mut buf = Vec::new();
        f.take(left + 1)
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        if buf.len() as u64 > left {
            return Err(format!("{name} inflates to more than the archive can hold"));
        }
        left -= buf.len() as u64;
        out.push((name, buf));
    }
    Ok(out)
}

/// The path of a new archive of generation `generation`'s deltas `first..=last`.
pub fn archive_path(generation: u64, first: u64, last: u64) -> String {
    format!(
        "{ARCHIVE_DIR}/g{generation}-{first}-{last}-{:08x}.zip",
        fastrand::u32(..)
    )
}

/// The (generation, first seq, last seq) of an archive's file name, if it is one.
pub fn parse_archive_name(name: &str) -> Option<(u64, u64, u64)> {
    let stem = name
        .rsplit('/')
        .next()?
        .strip_prefix('g')?
        .strip_suffix(".zip")?;
    let mut parts = stem.split('-');
    let g = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((g, first, last))
}

/// A folded-delta archive read back: its index and its deltas (verified).
#[derive(Debug, Clone)]
pub struct FoldedArchive {
    /// Its path.
    pub path: String,
    /// Its index.
    pub index: ArchiveIndex,
    /// Every delta, with the reference meta had for it.
    pub deltas: Vec<(DeltaRef, Delta)>,
}

impl Store {
    /// Writes an archive of folded deltas create-only: `deltas` are (reference, bytes), the
    /// bytes verified against the reference first. Returns its path.
    pub fn write_archive(
        &self,
        generation: u64,
        snapshot: &str,
        deltas: &[(DeltaRef, Vec<u8>)],
    ) -> Result<String, StoreError> {
        let first = deltas.first().map(|d| d.0.seq).unwrap_or(0);
        let last = deltas.last().map(|d| d.0.seq).unwrap_or(0);
        let path = archive_path(generation, first, last);
        let index = ArchiveIndex {
            format: 1,
            generation,
            snapshot: snapshot.to_string(),
            deltas: deltas.iter().map(|(r, _)| r.clone()).collect(),
        };
        let mut members = vec![(
            INDEX_MEMBER.to_string(),
            serde_json::to_vec(&index).expect("index serialises"),
        )];
        for (r, bytes) in deltas {
            verify_sha256(&r.path, bytes, &r.sha256).map_err(|source| StoreError::Format {
                path: r.path.clone(),
                source,
            })?;
            members.push((member_name(&r.path), bytes.clone()));
        }
        let zip = write_zip(&members).map_err(|e| zip_error(&path, e))?;
        self.retry(|| self.remote.put(&path, &zip, &PutMode::CreateOnly))?;
        Ok(path)
    }

    /// The archives of folded deltas on the remote: (path, generation, first, last), by
    /// first seq.
    pub fn list_archives(&self) -> Result<Vec<(String, u64, u64, u64)>, StoreError> {
        let mut out: Vec<_> = match self.remote.list(ARCHIVE_DIR) {
            Ok(list) => list
                .into_iter()
                .filter(|o| !o.is_dir)
                .filter_map(|o| {
                    let (g, a, b) = parse_archive_name(&o.name)?;
                    Some((format!("{ARCHIVE_DIR}/{}", o.name), g, a, b))
                })
                .collect(),
            Err(e) => return Err(e.into()),
        };
        out.sort_by_key(|a| (a.2, a.3, a.0.clone()));
        Ok(out)
    }

    /// Reads an archive of folded deltas, verifying every delta against the index.
    pub fn read_archive(&self, path: &str) -> Result<FoldedArchive, StoreError> {
        let body = match self.remote.get_max(path, None, crate::MAX_FILE_BYTES)? {
            GetResult::Found { body, .. } => body,
            _ => return Err(StoreError::Missing(path.to_string())),
        };
        let members = read_zip(&body).map_err(|e| zip_error(path, e))?;
        let index_bytes = members
            .iter()
            .find(|(n, _)| n == INDEX_MEMBER)
            .map(|(_, b)| b)
            .ok_or_else(|| zip_error(path, "no index.json"))?;
        let index: ArchiveIndex =
            serde_json::from_slice(index_bytes).map_err(|e| zip_error(path, e))?;
        let mut deltas = Vec::with_capacity(index.deltas.len());
        for r in &index.deltas {
            let name = member_name(&r.path);
            let bytes = members
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b)
                .ok_or_else(|| zip_error(path, format!("{name} is missing")))?;
            verify_sha256(&r.path, bytes, &r.sha256).map_err(|source| StoreError::Format {
                path: format!("{path}:{name}"),
                source,
            })?;
            let d = Delta::from_bytes(bytes).map_err(|source| StoreError::Format {
                path: format!("{path}:{name}"),
                source,
            })?;
            deltas.push((r.clone(), d));
        }
        Ok(FoldedArchive {
            path: path.to_string(),
            index,
            deltas,
        })
    }

    /// Reads a file's bytes as they are (an archive for a backup).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        match self.remote.get_max(path, None, crate::MAX_FILE_BYTES)? {
            GetResult::Found { body, .. } => Ok(body),
            _ => Err(StoreError::Missing(path.to_string())),
        }
    }

    /// Reads a file's bytes, verified against `sha256` (a delta's bytes for an archive).
    pub fn read_bytes_verified(
        &self,
        path: &str,
        sha256: &str,
        size: u64,
    ) -> Result<Vec<u8>, StoreError> {
        self.read_verified(path, sha256, size)
    }
}

/// The member name of a delta inside an archive: the last segment of its path.
pub fn member_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// sha256 (hex) of a member's bytes, for manifests.
pub fn member_sha256(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = archive_path(3, 10, 42);
        assert_eq!(parse_archive_name(&p), Some((3, 10, 42)));
        assert_eq!(parse_archive_name("archive/other.zip"), None);
    }

    #[test]
    fn zip_round_trip_and_damage_detected() {
        let members = vec![
            ("index.json".to_string(), b"{\"a\":1}".to_vec()),
            ("d.json".to_string(), vec![b'x'; 5000]),
        ];
        let zip = write_zip(&members).unwrap();
        assert!(zip.len() < 1000, "deflated: {}", zip.len());
        assert_eq!(read_zip(&zip).unwrap(), members);
        let mut bad = zip.clone();
        bad.truncate(bad.len() / 2);
        assert!(read_zip(&bad).is_err());
    }
}
