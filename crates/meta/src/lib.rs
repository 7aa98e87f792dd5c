//! The remote format of deltasync (version 2; version 1 is read too), as plain types with no
//! I/O.
//!
//! A remote holds `meta.json` (the commit point, [`Meta`]), `data.json` (the compacted
//! snapshot, [`Snapshot`]) and one immutable file per commit under `deltas/` ([`Delta`]).
//! Every one of them carries entity records ([`EntityRecord`]) and conflict receipts
//! ([`ConflictReceipt`]). `docs/format.md` is the normative description; the golden files
//! in `testdata/` freeze it.
//!
//! All maps are `BTreeMap`s so that what is written is deterministic. Fields of meta.json that
//! this version does not know (a newer writer's optional fields) are kept in
//! [`Meta::unknown`] and written back when meta.json is rewritten.
//!
//! ```
//! use deltasync_meta::{Meta, sha256_hex};
//!
//! let meta = Meta::new(0);
//! let bytes = meta.to_bytes();
//! let back = Meta::from_bytes(&bytes).unwrap();
//! assert_eq!(back, meta);
//! assert_eq!(back.head, 0);
//! assert_eq!(sha256_hex(b"").len(), 64);
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod hlc;
mod meta_json;
mod snapshot_writer;
mod stream;
mod unknown;
pub use hlc::{Hlc, now_ms};
pub use meta_json::{DeltaRef, DeviceInfo, Meta, SnapshotRef, UnknownFields, VersionMap};
pub use snapshot_writer::SnapshotWriter;
pub use stream::StreamError;
pub use unknown::{Extra, WithExtra, from_slice_kept, to_string_kept};
use unknown::{Kept, KeptRef};

/// The format version this library writes: 2, whose meta.json lists only the newest delta and
/// each delta names the one before it ([`Delta::prev`]), so that meta.json stays the same size
/// whatever the number of commits since the snapshot (`docs/format.md`).
pub const FORMAT_VERSION: u32 = 2;
/// The first format whose meta.json lists only the newest delta (the rest are found through
/// [`Delta::prev`]). A remote of an older format is read as it is and written in its own
/// format until a compaction upgrades it.
pub const CHAINED_FORMAT: u32 = 2;
/// The oldest format this library can read.
pub const MIN_READABLE_FORMAT: u32 = 1;

/// Name of the commit point at the remote root.
pub const META_FILE: &str = "meta.json";
/// Name of the first snapshot (generation 0). Later generations are `data-g<N>-<8 hex>.json`.
pub const DATA_FILE: &str = "data.json";
/// Folder holding the deltas, one sub-folder per snapshot generation.
pub const DELTAS_DIR: &str = "deltas";
/// Folder holding zipped deltas that were folded into a snapshot.
pub const ARCHIVE_DIR: &str = "archive";

/// Errors of decoding remote files.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes are not valid JSON of the expected shape.
    #[error("{what} is not valid: {source}")]
    Json {
        /// Which file kind was being decoded.
        what: &'static str,
        /// The parser's error (line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The file needs a newer reader than this one.
    #[error(
        "{what} needs a reader of format {needed} or newer; this deltasync reads format {FORMAT_VERSION}: upgrade deltasync"
    )]
    TooNew {
        /// Which file kind.
        what: &'static str,
        /// The minimum reader version the file asks for.
        needed: u32,
    },
    /// A file's checksum does not match what refers to it.
    #[error("{what} is corrupt: sha256 {actual} but {expected} expected")]
    Checksum {
        /// Which file.
        what: String,
        /// The checksum recorded by the referrer.
        expected: String,
        /// The checksum of the bytes read.
        actual: String,
    },
}

/// The lowercase hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` against an expected sha256 (hex), naming `what` on mismatch.
pub fn verify_sha256(what: &str, bytes: &[u8], expected: &str) -> Result<(), FormatError> {
    let actual = sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(FormatError::Checksum {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionProbe {
    #[serde(default = "one")]
    min_reader: u32,
}

fn one() -> u32 {
    1
}

fn check_reader(what: &'static str, min_reader: u32) -> Result<(), FormatError> {
    if min_reader > FORMAT_VERSION {
        Err(FormatError::TooNew {
            what,
            needed: min_reader,
        })
    } else {
        Ok(())
    }
}

/// Parses JSON however deeply it is nested: past serde_json's recursion limit (128) it is
/// read again without the limit, on a stack grown on the heap. Deltas and snapshots are read
/// so (and the local state that mirrors them), so that one record too deep for a local file
/// is held by the reader instead of making the whole file, and every sync, fail. What is
/// read is size-capped where it is read.
pub fn parse_deep<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Err(e)
            if e.to_string().starts_with("recursion limit exceeded")
                && nesting_depth(bytes) <= MAX_NESTING =>
        {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            de.disable_recursion_limit();
            let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
            de.end()?;
            Ok(value)
        }
        other => other,
    }
}

/// How deep [`parse_deep`] reads: far past anything a person writes, and shallow enough that
/// the recursive drop, clone and serialisation of a `serde_json::Value` stay well inside a
/// thread's stack. Deeper is refused with serde_json's recursion error.
pub const MAX_NESTING: usize = 2048;

/// The deepest nesting of arrays and objects in JSON text (brackets inside strings do not
/// count). A linear scan, done before anything deeper than serde_json's limit is parsed.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// One entity as stored on the remote (in data.json and in deltas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRecord {
    /// Collection name.
    pub collection: String,
    /// Entity id (any string; never trusted as a path).
    pub id: String,
    /// The seq of the commit that last wrote this entity.
    pub version: u64,
    /// Hybrid logical clock of the last change.
    pub last_modified_at: Hlc,
    /// Device id of the last change.
    pub last_modified_by: String,
    /// Tombstone. Written only when true (format 2; format 1 wrote `false` too, and every
    /// reader takes a missing one as `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_deleted: bool,
    /// The entity's JSON (an object); `null` for a tombstone.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Fields of the record this version does not know (a newer writer's), kept with this
    /// version of the record: written back where the record is (a snapshot), dropped when a
    /// new version replaces it. Read and written only inside a delta or snapshot.
    #[serde(skip)]
    pub extra: Extra,
}

impl WithExtra for EntityRecord {
    fn extra(&self) -> &Extra {
        &self.extra
    }
    fn set_extra(&mut self, extra: Extra) {
        self.extra = extra;
    }
}

/// A value that lost a conflict, kept so that a person can take it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictReceipt {
    /// Unique id of the receipt (device id, time, random suffix).
    pub id: String,
    /// Collection of the entity.
    pub collection: String,
    /// Entity id.
    pub entity_id: String,
    /// Path of the field inside the entity (empty: the whole entity).
    pub field: Vec<String>,
    /// What kind of conflict it was.
    pub kind: ConflictKind,
    /// The value that was kept (`null` when the field or entity is absent).
    pub kept: serde_json::Value,
    /// Device that wrote the kept value.
    pub kept_by: String,
    /// The value that lost (`null` when the field or entity is absent).
    pub lost: serde_json::Value,
    /// Device that wrote the losing value.
    pub lost_by: String,
    /// When the kept value was written (its side's clock); absent in receipts of older
    /// writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_at: Option<Hlc>,
    /// When the losing value was written (its side's clock); absent in receipts of older
    /// writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_at: Option<Hlc>,
    /// When the conflict was found.
    pub at: Hlc,
    /// Whether a person resolved it (a resolution travels as a new receipt state).
    #[serde(default)]
    pub resolved: bool,
    /// Fields of the receipt this version does not know, kept with it (in deltas, snapshots
    /// and the local state: [`to_string_kept`]).
    #[serde(skip)]
    pub extra: Extra,
}

impl WithExtra for ConflictReceipt {
    fn extra(&self) -> &Extra {
        &self.extra
    }
    fn set_extra(&mut self, extra: Extra) {
        self.extra = extra;
    }
}

/// The kinds of conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// The same field changed on both sides to different values.
    Field,
    /// Deleted on one side, edited on the other: the edit was kept.
    DeleteEdit,
    /// The collection's strategy is `manual`: local kept, queued for a person.
    Manual,
}

/// One commit's file under `deltas/`. Immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    /// Format version of this file.
    pub format: u32,
    /// Minimum reader version.
    pub min_reader: u32,
    /// The seq this delta was written for (meta is authoritative).
    pub seq: u64,
    /// Device id of the writer.
    pub device: String,
    /// The writer's human name (format 2: meta.json no longer lists the devices, so names
    /// travel with the commits); absent in deltas of earlier writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Wall-clock time, ms since the Unix epoch.
    pub time: u64,
    /// Path of an earlier delta of the same device that this one replaces (a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// The delta committed just before this one in the same snapshot generation (the newest
    /// one the meta.json it was written against listed); `None` for the first delta after the
    /// snapshot, and in deltas of format-1 writers. Format 2's meta.json lists only the
    /// newest delta: a reader finds the others by following these links back to the
    /// snapshot.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "meta_json::link"
    )]
    pub prev: Option<DeltaRef>,
    /// Changed entities.
    #[serde(with = "unknown::kept_vec")]
    pub records: Vec<EntityRecord>,
    /// Conflict receipts created or resolved by this commit (written only when there are
    /// some; every reader takes a missing list as empty).
    #[serde(
        default,
        with = "unknown::kept_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conflicts: Vec<ConflictReceipt>,
}

impl Delta {
    /// Parses a delta.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let probe: VersionProbe = parse_deep(bytes).map_err(|source| FormatError::Json {
            what: "delta",
            source,
        })?;
        check_reader("delta", probe.min_reader)?;
        parse_deep(bytes).map_err(|source| FormatError::Json {
            what: "delta",
            source,
        })
    }

    /// Serialises a delta (compact: deltas are read by machines).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("format types always serialise")
    }
}

/// `data.json` (or `data-g<N>-<8 hex>.json`): every entity with versions and tombstones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Format version of this file.
    pub format: u32,
    /// Minimum reader version.
    pub min_reader: u32,
    /// Generation number.
    pub generation: u64,
    /// The seq up to which commits are folded in.
    pub head: u64,
    /// Wall-clock time it was written, ms since the Unix epoch.
    pub time: u64,
    /// Every entity, sorted by (collection, id).
    #[serde(with = "unknown::kept_vec")]
    pub records: Vec<EntityRecord>,
    /// Conflict receipts still open.
    #[serde(default, with = "unknown::kept_vec")]
    pub conflicts: Vec<ConflictReceipt>,
    /// Paths of the deltas folded into this snapshot (those the previous meta listed), so a
    /// device can tell that a commit of its own made it in rather than being lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<String>,
    /// The devices that committed up to `head`, by device id (their names and last commit
    /// times, from the deltas folded in and the previous snapshot); absent in snapshots of
    /// earlier writers, whose meta.json listed them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, DeviceInfo>,
}

impl Snapshot {
    /// An empty snapshot of generation 0.
    pub fn empty(time: u64) -> Self {
        Snapshot {
            format: FORMAT_VERSION,
            min_reader: 1,
            generation: 0,
            head: 0,
            time,
            records: Vec::new(),
            conflicts: Vec::new(),
            folded: Vec::new(),
            devices: BTreeMap::new(),
        }
    }

    /// Parses a snapshot.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let probe: VersionProbe = parse_deep(bytes).map_err(|source| FormatError::Json {
            what: "data.json",
            source,
        })?;
        check_reader("data.json", probe.min_reader)?;
        parse_deep(bytes).map_err(|source| FormatError::Json {
            what: "data.json",
            source,
        })
    }

    /// Serialises a snapshot (compact).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("format types always serialise")
    }
}

/// The canonical bytes of a JSON value: object keys sorted, no white space. Used for content
/// hashes, so that key order and formatting never count as a change.
///
/// Numbers are written as their text, as read (serde_json's `arbitrary_precision`): a number
/// is its text, so `1`, `1.0` and `1e0` are different values here as they are for `==`, and
/// a change from one to another is an edit. The only spelling that is not kept is that of an
/// exponent, which parsing writes one way (`1E2` and `1e2` are `1e+2`), so equal values always
/// hash alike, on every device.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(value: &serde_json::Value, out: &mut Vec<u8>) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).expect("string serialises"));
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, out);
                }
                out.push(b']');
            }
            other => out.extend(serde_json::to_vec(other).expect("scalar serialises")),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// sha256 (hex) of the canonical form of a JSON value.
pub fn content_hash(value: &serde_json::Value) -> String {
    sha256_hex(&canonical_json(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_ignores_key_order() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": null}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a": {"x": null, "y": [1,2]}, "b": 1 }"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":{"x":null,"y":[1,2]},"b":1}"#
        );
        assert_ne!(content_hash(&a), content_hash(&json!({"b": 2})));
    }

    #[test]
    fn too_new_meta_is_refused() {
        let mut m = Meta::new(3);
        m.min_reader = FORMAT_VERSION + 1;
        let err = Meta::from_bytes(&m.to_bytes()).unwrap_err();
        assert!(matches!(err, FormatError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade"));
    }

    #[test]
    fn mtimes_strictly_increase() {
        let mut m = Meta::new(1);
        assert_eq!(m.next_mtime(100), 100);
        m.mtime = Some(100);
        assert_eq!(m.next_mtime(100), 101, "same second: one more");
        m.mtime = Some(105);
        assert_eq!(m.next_mtime(100), 106, "a clock behind the last writer's");
        assert_eq!(m.next_mtime(200), 200);
        let back = Meta::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.mtime, Some(105));
        assert!(
            !String::from_utf8(Meta::new(1).to_bytes())
                .unwrap()
                .contains("mtime")
        );
    }

    #[test]
    fn truncated_meta_is_a_json_error() {
        let bytes = Meta::new(1).to_bytes();
        let err = Meta::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, FormatError::Json { .. }));
    }

    #[test]
    fn checksum_mismatch_names_the_file() {
        let err = verify_sha256("deltas/g0/x.json", b"abc", &sha256_hex(b"abd")).unwrap_err();
        assert!(err.to_string().contains("deltas/g0/x.json"));
        verify_sha256("x", b"abc", &sha256_hex(b"abc")).unwrap();
    }
}
