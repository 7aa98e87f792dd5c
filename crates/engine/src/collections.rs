//! Reading and writing the app's local collections.
//!
//! A collection is where an app keeps one kind of entity in the workspace ([`CollectionKind`]):
//!
//! - **dir**: one `<stem>.json` per entity, the file holding the entity object, the stem being
//!   the id encoded by [`crate::ids`];
//! - **file**: one JSON document; at a JSON pointer inside it (or at its root) either an array of
//!   objects carrying an id field, or an object mapping id → entity object.
//!
//! [`scan`] reads a collection into a [`Scan`]: the entities, the problems found, the ids that
//! exist but cannot be read right now (`held`: never to be taken as deleted) and a
//! [`Fingerprint`] of what was read. [`apply`] writes a batch of [`Write`]s back, and never
//! over a save the app made after the scan:
//!
//! - dir: each file is written atomically (a temporary `.<stem>.deltasync-tmp-<rand>` in the same
//!   folder, fsync, rename; such temporary files older than [`STALE_TEMP_AGE`], left by a
//!   process killed while writing, are removed by the next scan). Just before the rename (or the delete) the file is checked against
//!   the fingerprint (size, mtime and content hash); a file the app changed, created or removed
//!   meanwhile is left alone and its id returned in [`ApplyReport::skipped`], for the caller to
//!   retry next round. A new file is linked into place only if no file has appeared there.
//! - file: the document is re-read; if its hash differs from the fingerprint, nothing is written
//!   and [`CollectionError::ChangedMeanwhile`] is returned (rescan, merge, retry). Otherwise all
//!   the writes go in at once and the document is replaced atomically, after one more check.
//!
//! Writing a document changes only the collection's part of it: every byte outside the
//! collection's array or map stays as it was (other keys, their order, number spellings,
//! formatting), entities that are not written keep their exact text, updated entities stay in
//! their place with their keys in their previous order, new ones are appended, deleted ones
//! removed. New text follows the document's style: indent of 2 or 4 spaces or tabs, or compact
//! one-line, `": "` or `":"`, CRLF line ends, a UTF-8 byte order mark. An updated file in a dir
//! collection keeps its style the same way; a new one is written with a 2-space indent and a
//! trailing newline.
//!
//! When the pointer's target (or the whole document) does not exist, the collection is empty,
//! and the first write creates it: the missing objects along the pointer are added, and the
//! collection itself is created as an **array** when the configuration names an id field
//! (`create_as_array`: `@id`, `@uid`…), as a **map** otherwise. A `null` at the pointer is an
//! empty collection too.
//!
//! Symbolic links: in a `dir` collection a link to a file is followed for reading, and writes go
//! to the file it points to (the link stays; the file may be outside the collection); a delete
//! removes the link, never its target. A link whose target is missing (or a loop) is held, like
//! any unreadable file, and so are entities that links make one file (a link to another
//! entity's file, two links to one file): a write to one would change the other. A `file` collection's document may be a link the same way.
//!
//! One entity that cannot be stored or synced never stops the others: an entity read here that
//! is nested deeper than [`MAX_ENTITY_DEPTH`] is held, and [`apply`] refuses a write it cannot
//! carry out ([`Refusal`]: an id that cannot be a file name, a value that is not an object or is
//! too deep) on its own, listing it in [`ApplyReport::refused`], and writes the rest.
//!
//! Nothing here prints; problems are returned as values and errors as [`CollectionError`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use deltasync_meta::sha256_hex;
use serde_json::{Map, Value};

use crate::ids::{self, IdError};

pub use limits::{MAX_ENTITY_DEPTH, Refusal};
pub use staged::{NotStaged, Staged, StagedJson, discard_staging, stage};
pub use stamps::{FileStat, IdHasher, Known, KnownFile, KnownStats, RACY_WINDOW};

/// The id field used when none is configured; see [`CollectionKind::File`].
pub const DEFAULT_ID_FIELD: &str = "id";

/// How old a temporary file of ours must be before a scan takes it for the remains of an
/// interrupted write and removes it (a write in progress takes milliseconds).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Where and how an app keeps one collection. Paths are relative to the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionKind {
    /// One `<stem>.json` per entity in a folder; the file holds the entity object.
    Dir {
        /// The folder, relative to the workspace.
        path: PathBuf,
    },
    /// One JSON document holding the entities.
    File {
        /// The document, relative to the workspace.
        path: PathBuf,
        /// JSON pointer (RFC 6901, e.g. `/task/entities`) to the collection inside the
        /// document; `None` or `""` for the root.
        pointer: Option<String>,
        /// The id field of the objects when the collection is an array (numbers are accepted
        /// and read as their string form); [`DEFAULT_ID_FIELD`] unless configured.
        id_field: String,
        /// Whether the collection, while it does not exist yet, is created as an array of
        /// objects carrying `id_field` (true when an id field is configured) rather than as a
        /// map. An existing collection keeps its shape either way.
        create_as_array: bool,
    },
}

/// Something found while scanning that the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    /// The file concerned.
    pub file: PathBuf,
    /// What is wrong, for people; for invalid JSON it includes the line and column.
    pub message: String,
    /// The entity ids concerned, when known.
    pub ids: Option<Vec<String>>,
    /// 1-based line of the problem in the file, when it has one.
    pub line: Option<usize>,
    /// 1-based column (in bytes) of the problem in the file, when it has one.
    pub column: Option<usize>,
}

/// What one file looked like when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, when the file system gives one.
    pub mtime: Option<SystemTime>,
    /// sha256 (hex) of the bytes.
    pub hash: String,
}

/// What a scan read, so that [`apply`] can tell whether the app saved something in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// A dir collection.
    Dir {
        /// Every entity file read, by id.
        files: BTreeMap<String, FileStamp>,
        /// Ids whose file exists but could not be read or parsed; [`apply`] never writes them.
        held: BTreeSet<String>,
    },
    /// A file collection.
    File {
        /// sha256 (hex) of the document's bytes; `None` when it does not exist.
        hash: Option<String>,
    },
}

/// The result of [`scan`].
#[derive(Debug, Clone)]
pub struct Scan {
    /// The entities, id → object.
    pub entities: BTreeMap<String, Value>,
    /// Problems found, for the user.
    pub problems: Vec<ScanProblem>,
    /// Ids whose file or entry exists but cannot be read or parsed now: never to be taken as
    /// deleted, nothing to be written for them.
    pub held: BTreeSet<String>,
    /// A file collection's document (or its collection part) is unusable: nothing may be pushed
    /// or deleted for this collection. `entities` is then empty and `held` lists every id seen.
    pub whole_collection_held: bool,
    /// What was read; pass it to [`apply`].
    pub fingerprint: Fingerprint,
    /// Entities that were not read because their file's stat is what [`Known`] says it was
    /// when it was read, or (a `file` collection) because their text in the document is one
    /// [`Known`] holds ([`scan_known`]): id → content hash. They are in the fingerprint, not
    /// in `entities`. Always empty from [`scan`].
    pub known: BTreeMap<String, String>,
    /// The stat of each file read by this scan that may stand in for reading it next time
    /// (read whole and cleanly, its last change before [`Known::trust_before`], unchanged
    /// while it was read), by entity id (`""`: a `file` collection's document).
    pub stats: BTreeMap<String, FileStat>,
    /// How many files a lean scan ([`scan_dir_lean`]) took by their stat (which ones: the
    /// [`KnownStats`] it was given): their entities hold what they held when read, and they
    /// are in neither `known` nor the fingerprint (nothing may be written to them with this
    /// scan's fingerprint). Always 0 from [`scan`] and [`scan_known`].
    pub unchanged: usize,
    /// A `file` collection: the sha256 of the text (the value's bytes in the document) of each
    /// entity read (in `entities`), by id, for the stat cache; those [`Scan::known`] by their
    /// text keep what the cache says. Empty for a `dir` collection.
    pub texts: BTreeMap<String, String>,
}

impl Scan {
    /// The content hash of a local entity, read or [`Scan::known`]; `None` when absent.
    pub fn local_hash(&self, id: &str) -> Option<String> {
        match self.entities.get(id) {
            Some(v) => Some(deltasync_meta::content_hash(v)),
            None => self.known.get(id).cloned(),
        }
    }

    /// Whether the entity exists locally (read or known), readable; a lean scan's unchanged
    /// files are in its [`KnownStats`].
    pub fn has(&self, id: &str) -> bool {
        self.entities.contains_key(id) || self.known.contains_key(id)
    }
}

/// One change to make to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create or replace an entity (a JSON object).
    Put {
        /// The entity id.
        id: String,
        /// The entity object.
        value: Value,
    },
    /// Remove an entity (nothing to do if it is absent).
    Delete {
        /// The entity id.
        id: String,
    },
}

impl Write {
    /// The entity id written.
    pub fn id(&self) -> &str {
        match self {
            Write::Put { id, .. } | Write::Delete { id } => id,
        }
    }
}

/// The result of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Ids written by a `Put`, in the order of the writes.
    pub written: Vec<String>,
    /// Ids removed by a `Delete` (or found already absent), in the order of the writes.
    pub deleted: Vec<String>,
    /// Ids left alone because the app changed their file after the scan, because they are
    /// held, or because their write was refused (then also in `refused`): the caller records
    /// nothing for them and retries them next round; nothing was lost.
    pub skipped: Vec<String>,
    /// Writes refused on their own, with the reason: these entities cannot be stored here as
    /// they are (their ids are in `skipped` too). Retrying does not help; report them.
    pub refused: Vec<Refusal>,
    /// The fingerprint after these writes: the expected one with this call's own writes folded
    /// in (useful to recognise the engine's own saves in a file watcher).
    pub fingerprint: Fingerprint,
}

impl ApplyReport {
    /// The report, or its first refused write as [`CollectionError::Refused`] (naming `path`,
    /// the collection's folder or document): for a caller that writes what a person asked
    /// for, to whom a refusal is an error rather than an entity to hold.
    pub fn refusal_as_error(mut self, path: &Path) -> Result<ApplyReport, CollectionError> {
        if self.refused.is_empty() {
            return Ok(self);
        }
        Err(CollectionError::Refused {
            path: path.to_owned(),
            refusal: self.refused.swap_remove(0),
        })
    }
}

/// Errors reading or writing a collection. Each names the file or folder concerned.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// An I/O operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename"…).
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A collection path that is absolute or leaves the workspace.
    #[error("collection path {} must be relative and stay inside the workspace", path.display())]
    BadPath {
        /// The configured path.
        path: PathBuf,
    },
    /// A dir collection's path exists but is not a folder.
    #[error("{} is not a folder", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The JSON pointer is not valid RFC 6901.
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    BadPointer {
        /// The pointer.
        pointer: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The document changed since the scan: nothing was written. Rescan and retry.
    #[error("{} changed since it was read; nothing was written", path.display())]
    ChangedMeanwhile {
        /// The document.
        path: PathBuf,
    },
    /// The collection is held (its document or its collection part is unusable): nothing can
    /// be written until the file is repaired.
    #[error("{} cannot be written: {reason}", path.display())]
    Held {
        /// The document.
        path: PathBuf,
        /// Why, as in the scan problem.
        reason: String,
    },
    /// A write that cannot be carried out (nothing was written).
    #[error("cannot write entity {id:?} to {}: {reason}", path.display())]
    InvalidWrite {
        /// The collection's folder or document.
        path: PathBuf,
        /// The entity id.
        id: String,
        /// Why.
        reason: String,
    },
    /// An entity id that cannot be a file name in a dir collection (nothing was written).
    #[error("entity id {id:?} cannot be stored in {}: {source}", path.display())]
    Id {
        /// The collection's folder.
        path: PathBuf,
        /// The id.
        id: String,
        /// Why.
        #[source]
        source: IdError,
    },
    /// A write refused on its own ([`ApplyReport::refused`]), as an error for a caller that
    /// writes one entity on a person's request ([`ApplyReport::refusal_as_error`]).
    #[error("{}: {refusal}", path.display())]
    Refused {
        /// The collection's folder or document.
        path: PathBuf,
        /// Why the write was refused.
        #[source]
        refusal: Refusal,
    },
    /// The fingerprint passed to [`apply`] was made for the other kind of collection.
    #[error("fingerprint does not belong to collection {}", path.display())]
    WrongFingerprint {
        /// The collection's folder or document.
        path: PathBuf,
    },
}

impl CollectionError {
    /// Whether trying again (after a rescan) may succeed without anyone fixing anything.
    pub fn is_temporary(&self) -> bool {
        match self {
            CollectionError::ChangedMeanwhile { .. } => true,
            CollectionError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> CollectionError {
    CollectionError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Reads a collection. Paths in `kind` are relative to `workspace`.
///
/// A missing folder or document is an empty collection. Files and entries that cannot be used
/// are reported in [`Scan::problems`] (and their ids, when known, in [`Scan::held`]) rather
/// than failing the scan; only an I/O error on the collection itself is an `Err`.
pub fn scan(workspace: &Path, kind: &CollectionKind) -> Result<Scan, CollectionError> {
    scan_known(workspace, kind, &Known::nothing())
}

/// [`scan`], reading only the files whose stat differs from what `known` says it was when
/// they were read: the others are [`Scan::known`] by their content hash. A `dir` collection
/// still lists its folder and stats every file; a symbolic link is always read. A `file`
/// collection's document whose stat is known is not read at all, one whose bytes are known is
/// not analysed, and in one analysed only the entries whose text is not known are parsed
/// ([`Scan::texts`]). The files read whose stat may
/// stand in for them next time are in [`Scan::stats`].
#[tracing::instrument(skip_all, err, fields(kind = ?kind, known = known.files.len()))]
pub fn scan_known(
    workspace: &Path,
    kind: &CollectionKind,
    known: &Known,
) -> Result<Scan, CollectionError> {
    match kind {
        CollectionKind::Dir { path } => dir::scan(&resolve(workspace, path)?, known, None, None),
        CollectionKind::File {
            path,
            pointer,
            id_field,
            ..
        } => {
            let tokens = parse_pointer(pointer.as_deref().unwrap_or(""))?;
            doc::scan(&resolve(workspace, path)?, &tokens, id_field, known)
        }
    }
}

/// [`scan_known`] of a `dir` collection (`path`: its folder, relative to `workspace`) for a
/// caller that needs nothing of the files whose stat is known: those are marked in `known`
/// ([`KnownStats::is_unchanged`]) and counted in [`Scan::unchanged`], and are in neither
/// [`Scan::known`] nor the fingerprint, so that a scan of a large folder holds no more than
/// the files it reads. `trust_before` is [`Known::trust_before`].
#[tracing::instrument(skip_all, err, fields(known = known.len()))]
pub fn scan_dir_lean(
    workspace: &Path,
    path: &Path,
    known: &mut KnownStats,
    trust_before: SystemTime,
) -> Result<Scan, CollectionError> {
    let plain = Known {
        files: Default::default(),
        trust_before,
    };
    dir::scan(&resolve(workspace, path)?, &plain, Some(known), None)
}

/// What [`scan_dir_full_lean`] asks of each entity it reads: its id, the entity, the file's
/// stat when it may be remembered ([`Scan::stats`]) and the sha256 of its bytes; `true` when
/// the entity is unchanged, and the scan may drop it.
pub type Unchanged<'a> = dyn FnMut(&str, &Value, Option<FileStat>, &str) -> bool + 'a;

/// [`scan_dir_lean`] reading every file, for a full scan that holds only what changed: each
/// entity read is handed to `unchanged`, and one it calls unchanged is dropped from the scan
/// (marked in `known` and counted in [`Scan::unchanged`], like a file taken by its stat).
/// `known` should be empty: every file is read.
pub fn scan_dir_full_lean(
    workspace: &Path,
    path: &Path,
    known: &mut KnownStats,
    trust_before: SystemTime,
    unchanged: &mut Unchanged<'_>,
) -> Result<Scan, CollectionError> {
    let plain = Known {
        files: Default::default(),
        trust_before,
    };
    dir::scan(
        &resolve(workspace, path)?,
        &plain,
        Some(known),
        Some(unchanged),
    )
}

/// The files of `ids` alone in a `dir` collection (`path`: its folder, relative to
/// `workspace`), read by the rules of [`scan`], for a caller that knows that no other file
/// changed (a file watcher's paths): an id whose file is missing is absent from the result,
/// like a deleted one in a scan. The stats of files changed before `trust_before` are in
/// [`Scan::stats`]. `None` when one of the files is a symbolic link: entities that links make
/// one file are found by a scan of the whole folder only.
pub fn read_dir_ids(
    workspace: &Path,
    path: &Path,
    ids: &BTreeSet<String>,
    trust_before: SystemTime,
) -> Result<Option<Scan>, CollectionError> {
    dir::read_ids(&resolve(workspace, path)?, ids, trust_before)
}

/// What one file of a `dir` collection holds, read by the rules of [`scan`]
/// ([`read_dir_entity`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EntityFile {
    /// The entity's file, with the entity object in it.
    Entity {
        /// The entity id (decoded from the file name).
        id: String,
        /// The entity object.
        value: Value,
        /// What the file looked like when it was read.
        stamp: FileStamp,
    },
    /// The entity's file exists but cannot be used now (unreadable, half-written, not a JSON
    /// object, a link to nothing, nested too deep): held, never taken as a deletion.
    Held {
        /// The entity id.
        id: String,
        /// Why, as a scan reports it.
        problem: ScanProblem,
    },
    /// No file at the path: the entity is deleted here (or never existed).
    Absent {
        /// The entity id.
        id: String,
    },
    /// Not an entity's file: an editor's or a temporary file, a name that is not
    /// `<stem>.json`, or a stem that is not an encoded id (a scan reports that one).
    NotAnEntity,
}

/// Whether a `dir` collection takes a file named `name` for an entity's file: `<stem>.json`,
/// and not an editor's or a temporary file (`.*`, `*~`, `*.tmp`, `*.swp`, `#*#`, ours). The
/// stem may still fail to decode ([`crate::ids::decode_stem`]).
pub fn is_entity_file_name(name: &str) -> bool {
    !dir::is_ignored(name) && name.len() > ".json".len() && name.ends_with(".json")
}

/// Reads one file of a `dir` collection by the rules of [`scan`], for a caller that looks at
/// single files (a file watcher). Two entities that symbolic links make one file are held by a
/// scan of the whole folder, not here.
pub fn read_dir_entity(path: &Path) -> EntityFile {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return EntityFile::NotAnEntity;
    };
    if !is_entity_file_name(name) {
        return EntityFile::NotAnEntity;
    }
    let stem = &name[..name.len() - ".json".len()];
    match ids::decode_stem(stem) {
        Ok(id) => dir::read_entity(path, id),
        Err(_) => EntityFile::NotAnEntity,
    }
}

/// Writes `writes` to a collection, checking first that what is there is still what the scan
/// that produced `expected` read (see the module documentation).
///
/// A batch that writes an id twice is refused as a whole (nothing is written). A write that
/// cannot be carried out — an id that cannot be a file name in a dir collection, an empty id or
/// one that disagrees with the id field of an array, a value that is not an object or is nested
/// too deep — is refused on its own ([`ApplyReport::refused`]) and the rest goes in. In a dir
/// collection an I/O error stops the batch: writes before it are done (each one atomically),
/// and a rescan shows where things stand.
#[tracing::instrument(skip_all, err, fields(kind = ?kind, writes = writes.len()))]
pub fn apply(
    workspace: &Path,
    kind: &CollectionKind,
    writes: &[Write],
    expected: &Fingerprint,
) -> Result<ApplyReport, CollectionError> {
    match kind {
        CollectionKind::Dir { path } => dir::apply(&resolve(workspace, path)?, writes, expected),
        CollectionKind::File {
            path,
            pointer,
            id_field,
            create_as_array,
        } => {
            let tokens = parse_pointer(pointer.as_deref().unwrap_or(""))?;
            doc::apply(
                &resolve(workspace, path)?,
                &doc::Layout {
                    tokens: &tokens,
                    id_field,
                    create_as_array: *create_as_array,
                },
                writes,
                expected,
            )
        }
    }
}

/// `workspace/rel`, refusing absolute paths and `..`.
fn resolve(workspace: &Path, rel: &Path) -> Result<PathBuf, CollectionError> {
    let ok = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(CollectionError::BadPath {
            path: rel.to_owned(),
        });
    }
    Ok(workspace.join(rel))
}

/// Splits an RFC 6901 pointer into unescaped tokens.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<String>, CollectionError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |reason| CollectionError::BadPointer {
        pointer: pointer.to_owned(),
        reason,
    };
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(bad("it must be empty or start with '/'"));
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(bad("'~' must be followed by '0' or '1'")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Checks the batch: ids unique.
fn check_batch(path: &Path, writes: &[Write]) -> Result<(), CollectionError> {
    let mut seen = BTreeSet::new();
    for w in writes {
        if !seen.insert(w.id()) {
            return Err(CollectionError::InvalidWrite {
                path: path.to_owned(),
                id: w.id().to_owned(),
                reason: "the batch writes this id twice".to_owned(),
            });
        }
    }
    Ok(())
}

/// The file to write for `path`: a symbolic link's target (so that the link survives), else
/// `path` itself.
fn real_path(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits off a UTF-8 byte order mark (some Windows editors write one).
fn split_bom(bytes: &[u8]) -> (&[u8], &[u8]) {
    if bytes.starts_with(BOM) {
        bytes.split_at(BOM.len())
    } else {
        (&[], bytes)
    }
}

/// A file's stamp and bytes, read through one handle; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<(FileStamp, Vec<u8>)>, io::Error> {
    Ok(read_file_stat(path)?.map(|(stamp, _, bytes)| (stamp, bytes)))
}

/// A file read with [`read_file_stat`]: its stamp, its stat (`None`: it changed while it
/// was read) and its bytes.
type StatRead = (FileStamp, Option<FileStat>, Vec<u8>);

/// [`read_file`] with the file's stat, taken through the handle before reading; the stat is
/// `None` when the file changed while it was read (its stat after the read differs), so
/// that no scan takes it for what was read.
fn read_file_stat(path: &Path) -> Result<Option<StatRead>, io::Error> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a folder where a file was expected",
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    let stat = FileStat::of(&meta);
    let after = f.metadata().map(|m| FileStat::of(&m)).ok();
    Ok(Some((
        FileStamp {
            size: meta.len(),
            mtime: meta.modified().ok(),
            hash: sha256_hex(&bytes),
        },
        (after == Some(stat) && bytes.len() as u64 == stat.size).then_some(stat),
        bytes,
    )))
}

/// The stamp of a file just written with `bytes`.
fn stamp_written(path: &Path, bytes: &[u8]) -> Result<FileStamp, CollectionError> {
    stamp_hashed(path, sha256_hex(bytes))
}

/// [`stamp_written`] for bytes whose sha256 is `hash`.
fn stamp_hashed(path: &Path, hash: String) -> Result<FileStamp, CollectionError> {
    let meta = fs::metadata(path).map_err(|e| io_err("read metadata of", path, e))?;
    Ok(FileStamp {
        size: meta.len(),
        mtime: meta.modified().ok(),
        hash,
    })
}

/// 1-based line and byte column of `offset` in `text`.
fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

/// A problem for invalid JSON, with serde_json's line and column.
/// The problem of an entity with a repeated key ([`spans::duplicate_key`]).
fn twice(key: &str) -> String {
    format!("has the key {key:?} twice in one object: which value is meant? entity held")
}

fn json_problem(file: &Path, e: &serde_json::Error, ids: Option<Vec<String>>) -> ScanProblem {
    ScanProblem {
        file: file.to_owned(),
        message: format!("invalid JSON: {e}"),
        ids,
        line: Some(e.line()),
        column: Some(e.column()),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Temporary files and atomic replacement.
mod atomic;

/// What one entity may be; writes refused on their own.
mod limits;

/// `dir` collections.
mod dir;

/// A new `dir` collection written whole through a staging folder.
mod staged;

/// Finding values in JSON text by byte position. The text has been validated by serde_json
/// before any of this runs; the functions still return `None` instead of panicking on
/// anything unexpected.
mod spans;

/// Formatting: detecting a document's style and writing values in it.
mod style;

/// `file` collections: one JSON document.
mod doc;

/// Change detection by stat.
mod stamps;

#[cfg(test)]
mod tests;
