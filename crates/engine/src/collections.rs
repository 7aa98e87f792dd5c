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
//!   folder, fsync, rename). Just before the rename (or the delete) the file is checked against
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
//! collection itself is created as an **array** when the collection's `id_field` is not the
//! default `id` (an id field was evidently chosen for an array), as a **map** otherwise. A
//! `null` at the pointer is an empty collection too.
//!
//! Nothing here prints; problems are returned as values and errors as [`CollectionError`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use deltasync_meta::sha256_hex;
use serde_json::{Map, Value};

use crate::ids::{self, IdError};

/// The id field used when none is configured; see [`CollectionKind::File`].
pub const DEFAULT_ID_FIELD: &str = "id";

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
    /// Ids left alone because the app changed their file after the scan, or because they are
    /// held: the caller retries them next round; nothing was lost.
    pub skipped: Vec<String>,
    /// The fingerprint after these writes: the expected one with this call's own writes folded
    /// in (useful to recognise the engine's own saves in a file watcher).
    pub fingerprint: Fingerprint,
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
#[tracing::instrument(skip_all, err, fields(kind = ?kind))]
pub fn scan(workspace: &Path, kind: &CollectionKind) -> Result<Scan, CollectionError> {
    match kind {
        CollectionKind::Dir { path } => dir::scan(&resolve(workspace, path)?),
        CollectionKind::File {
            path,
            pointer,
            id_field,
        } => {
            let tokens = parse_pointer(pointer.as_deref().unwrap_or(""))?;
            doc::scan(&resolve(workspace, path)?, &tokens, id_field)
        }
    }
}

/// Writes `writes` to a collection, checking first that what is there is still what the scan
/// that produced `expected` read (see the module documentation).
///
/// Before anything is written the batch is checked as a whole: each id at most once, every
/// `Put` value an object, every id usable (a file name in a dir collection; in an array, an id
/// field that agrees with the id). A failing check writes nothing. In a dir collection an I/O
/// error stops the batch: writes before it are done (each one atomically), and a rescan shows
/// where things stand.
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
        } => {
            let tokens = parse_pointer(pointer.as_deref().unwrap_or(""))?;
            doc::apply(
                &resolve(workspace, path)?,
                &tokens,
                id_field,
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
fn parse_pointer(pointer: &str) -> Result<Vec<String>, CollectionError> {
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

/// Checks the batch: ids unique, values objects.
fn check_batch(path: &Path, writes: &[Write]) -> Result<(), CollectionError> {
    let mut seen = BTreeSet::new();
    for w in writes {
        let invalid = |reason: &str| CollectionError::InvalidWrite {
            path: path.to_owned(),
            id: w.id().to_owned(),
            reason: reason.to_owned(),
        };
        if !seen.insert(w.id()) {
            return Err(invalid("the batch writes this id twice"));
        }
        if let Write::Put { value, .. } = w
            && !value.is_object()
        {
            return Err(invalid("an entity must be a JSON object"));
        }
    }
    Ok(())
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
    Ok(Some((
        FileStamp {
            size: meta.len(),
            mtime: meta.modified().ok(),
            hash: sha256_hex(&bytes),
        },
        bytes,
    )))
}

/// The stamp of a file just written with `bytes`.
fn stamp_written(path: &Path, bytes: &[u8]) -> Result<FileStamp, CollectionError> {
    let meta = fs::metadata(path).map_err(|e| io_err("read metadata of", path, e))?;
    Ok(FileStamp {
        size: meta.len(),
        mtime: meta.modified().ok(),
        hash: sha256_hex(bytes),
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
mod atomic {
    use super::*;

    /// Writes `bytes` to a new temporary file `.<base>.deltasync-tmp-<rand>` in `dir`, flushed to
    /// disk, with `perms` when given (those of the file it will replace).
    pub(super) fn write_temp(
        dir: &Path,
        base: &str,
        bytes: &[u8],
        perms: Option<fs::Permissions>,
    ) -> Result<PathBuf, CollectionError> {
        // Keep the temporary name within file name limits whatever the base.
        let mut cut = base.len().min(120);
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        let base = &base[..cut];
        let mut attempt = 0;
        loop {
            let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(10)
                .collect();
            let tmp = dir.join(format!(".{base}.deltasync-tmp-{suffix}"));
            let mut f = match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(io_err("create", &tmp, e)),
            };
            let written = (|| {
                f.write_all(bytes)?;
                if let Some(p) = perms {
                    f.set_permissions(p)?;
                }
                f.sync_all()
            })();
            return match written {
                Ok(()) => Ok(tmp),
                Err(e) => {
                    drop(f);
                    let _ = fs::remove_file(&tmp);
                    Err(io_err("write", &tmp, e))
                }
            };
        }
    }

    /// Moves `tmp` to `dest`. With `must_be_absent`, only if no file is at `dest` (a hard link
    /// refuses to replace one; where links are unsupported, a check then a rename). Otherwise
    /// only if `still_expected()` says `dest` is still what was read, checked just before the
    /// rename. Returns whether it was installed; `tmp` is gone either way.
    pub(super) fn install(
        tmp: &Path,
        dest: &Path,
        must_be_absent: bool,
        still_expected: impl FnOnce() -> Result<bool, CollectionError>,
    ) -> Result<bool, CollectionError> {
        let result = install_inner(tmp, dest, must_be_absent, still_expected);
        if !matches!(result, Ok(true)) || tmp.exists() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    fn install_inner(
        tmp: &Path,
        dest: &Path,
        must_be_absent: bool,
        still_expected: impl FnOnce() -> Result<bool, CollectionError>,
    ) -> Result<bool, CollectionError> {
        if must_be_absent {
            match fs::hard_link(tmp, dest) {
                Ok(()) => {
                    fs::remove_file(tmp).map_err(|e| io_err("remove", tmp, e))?;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                // No hard links here (FAT, some network file systems): check, then rename.
                Err(_) => {
                    if fs::symlink_metadata(dest).is_ok() {
                        return Ok(false);
                    }
                }
            }
        } else if !still_expected()? {
            return Ok(false);
        }
        fs::rename(tmp, dest).map_err(|e| io_err("rename into place", dest, e))?;
        Ok(true)
    }

    /// Makes renames in `dir` durable (best effort; not every platform can open a folder).
    pub(super) fn sync_dir(dir: &Path) {
        #[cfg(unix)]
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        #[cfg(not(unix))]
        let _ = dir;
    }
}

/// `dir` collections.
mod dir {
    use super::*;

    /// Editor and temporary files, never entities.
    pub(super) fn is_ignored(name: &str) -> bool {
        name.starts_with('.')
            || name.ends_with('~')
            || name.ends_with(".tmp")
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
            || name.contains(".json.tmp-")
            || name.contains(".deltasync-tmp-")
    }

    pub(super) fn scan(dir: &Path) -> Result<Scan, CollectionError> {
        let mut out = Scan {
            entities: BTreeMap::new(),
            problems: Vec::new(),
            held: BTreeSet::new(),
            whole_collection_held: false,
            fingerprint: Fingerprint::Dir {
                files: BTreeMap::new(),
                held: BTreeSet::new(),
            },
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(_) if dir.is_file() => {
                return Err(CollectionError::NotADirectory {
                    path: dir.to_owned(),
                });
            }
            Err(e) => return Err(io_err("list", dir, e)),
        };
        let mut files = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                let lossy = entry.file_name().to_string_lossy().into_owned();
                if !is_ignored(&lossy) && lossy.ends_with(".json") {
                    out.problems.push(problem(
                        &path,
                        "file name is not valid UTF-8; ignored".into(),
                        None,
                    ));
                }
                continue;
            };
            if is_ignored(&name) {
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let id = match ids::decode_stem(stem) {
                Ok(id) => id,
                Err(e) => {
                    out.problems
                        .push(problem(&path, format!("{e}; ignored"), None));
                    continue;
                }
            };
            let (stamp, bytes) = match read_file(&path) {
                Ok(Some(read)) => read,
                // Removed between the listing and the read: the app deleted it.
                Ok(None) => continue,
                Err(e) => {
                    out.problems.push(problem(
                        &path,
                        format!("cannot read: {e}; entity held"),
                        Some(vec![id.clone()]),
                    ));
                    out.held.insert(id);
                    continue;
                }
            };
            match serde_json::from_slice::<Value>(split_bom(&bytes).1) {
                Ok(Value::Object(map)) => {
                    out.entities.insert(id.clone(), Value::Object(map));
                    files.insert(id, stamp);
                }
                Ok(other) => {
                    out.problems.push(problem(
                        &path,
                        format!(
                            "holds a JSON {}, not an object; entity held",
                            type_name(&other)
                        ),
                        Some(vec![id.clone()]),
                    ));
                    out.held.insert(id);
                }
                Err(e) => {
                    out.problems
                        .push(json_problem(&path, &e, Some(vec![id.clone()])));
                    out.held.insert(id);
                }
            }
        }
        out.problems.sort_by(|a, b| a.file.cmp(&b.file));
        out.fingerprint = Fingerprint::Dir {
            files,
            held: out.held.clone(),
        };
        Ok(out)
    }

    fn problem(file: &Path, message: String, ids: Option<Vec<String>>) -> ScanProblem {
        ScanProblem {
            file: file.to_owned(),
            message,
            ids,
            line: None,
            column: None,
        }
    }

    /// The new file text for `value`, in the style of the file it replaces, if any.
    fn render_file(value: &Value, old: Option<&[u8]>) -> Vec<u8> {
        if let Some(old) = old {
            let (bom, body) = split_bom(old);
            if let Ok(old_value @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
                let style = style::Style::detect(body);
                let value = style::align_order(value.clone(), &old_value);
                let mut text = String::from_utf8_lossy(bom).into_owned();
                style::render(&value, &style, "", &mut text);
                let trimmed = body.trim_ascii_end();
                if trimmed.len() < body.len() {
                    text.push_str(style.newline);
                }
                return text.into_bytes();
            }
        }
        let mut text = String::new();
        style::render(value, &style::Style::default(), "", &mut text);
        text.push('\n');
        text.into_bytes()
    }

    pub(super) fn apply(
        dir: &Path,
        writes: &[Write],
        expected: &Fingerprint,
    ) -> Result<ApplyReport, CollectionError> {
        let Fingerprint::Dir { files, held } = expected else {
            return Err(CollectionError::WrongFingerprint {
                path: dir.to_owned(),
            });
        };
        check_batch(dir, writes)?;
        let mut paths = Vec::with_capacity(writes.len());
        for w in writes {
            let path = ids::entity_path(dir, w.id()).map_err(|source| CollectionError::Id {
                path: dir.to_owned(),
                id: w.id().to_owned(),
                source,
            })?;
            paths.push(path);
        }
        let mut report = ApplyReport {
            written: Vec::new(),
            deleted: Vec::new(),
            skipped: Vec::new(),
            fingerprint: expected.clone(),
        };
        let mut new_files = files.clone();
        let mut touched = false;
        let mut dir_ready = false;
        for (w, path) in writes.iter().zip(&paths) {
            let id = w.id();
            if held.contains(id) {
                tracing::debug!(id, "held entity not written");
                report.skipped.push(id.to_owned());
                continue;
            }
            let current = read_file(path).map_err(|e| io_err("read", path, e))?;
            let exp = files.get(id);
            let unchanged = current.as_ref().map(|(s, _)| s) == exp;
            match w {
                Write::Delete { .. } => {
                    if current.is_none() {
                        new_files.remove(id);
                        report.deleted.push(id.to_owned());
                    } else if !unchanged {
                        tracing::debug!(id, "file changed since the scan; delete deferred");
                        report.skipped.push(id.to_owned());
                    } else {
                        // Unavoidable tiny window between this check and the removal.
                        match fs::remove_file(path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err("remove", path, e)),
                        }
                        touched = true;
                        new_files.remove(id);
                        report.deleted.push(id.to_owned());
                    }
                }
                Write::Put { value, .. } => {
                    if !unchanged {
                        tracing::debug!(id, "file changed since the scan; write deferred");
                        report.skipped.push(id.to_owned());
                        continue;
                    }
                    let bytes = render_file(value, current.as_ref().map(|(_, b)| b.as_slice()));
                    if let Some((stamp, old)) = &current
                        && *old == bytes
                    {
                        new_files.insert(id.to_owned(), stamp.clone());
                        report.written.push(id.to_owned());
                        continue;
                    }
                    if !dir_ready {
                        fs::create_dir_all(dir).map_err(|e| io_err("create folder", dir, e))?;
                        dir_ready = true;
                    }
                    let perms = fs::metadata(path).ok().map(|m| m.permissions());
                    let stem = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("entity");
                    let tmp = atomic::write_temp(dir, stem, &bytes, perms)?;
                    let installed = atomic::install(&tmp, path, current.is_none(), || {
                        let now = read_file(path).map_err(|e| io_err("read", path, e))?;
                        Ok(now.as_ref().map(|(s, _)| s) == exp)
                    })?;
                    if installed {
                        touched = true;
                        new_files.insert(id.to_owned(), stamp_written(path, &bytes)?);
                        report.written.push(id.to_owned());
                    } else {
                        tracing::debug!(id, "file changed while writing; write deferred");
                        report.skipped.push(id.to_owned());
                    }
                }
            }
        }
        if touched {
            atomic::sync_dir(dir);
        }
        report.fingerprint = Fingerprint::Dir {
            files: new_files,
            held: held.clone(),
        };
        Ok(report)
    }
}

/// Finding values in JSON text by byte position. The text has been validated by serde_json
/// before any of this runs; the functions still return `None` instead of panicking on
/// anything unexpected.
mod spans {
    /// A byte range `[start, end)` in the text.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Span {
        pub start: usize,
        pub end: usize,
    }

    /// An object member: its key (with quotes) and its value.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Member {
        pub key: Span,
        pub value: Span,
    }

    pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// `b[i]` is `"`; the index after the closing quote.
    fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// The end of the value starting at `b[i]`.
    pub(super) fn value_end(b: &[u8], i: usize) -> Option<usize> {
        match *b.get(i)? {
            b'"' => string_end(b, i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                while j < b.len() {
                    match b[j] {
                        b'"' => {
                            j = string_end(b, j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                None
            }
            _ => {
                let mut j = i;
                while j < b.len()
                    && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    j += 1;
                }
                (j > i).then_some(j)
            }
        }
    }

    /// The root value of a document.
    pub(super) fn root(b: &[u8]) -> Option<Span> {
        let start = skip_ws(b, 0);
        let end = value_end(b, start)?;
        Some(Span { start, end })
    }

    /// The elements of the array at `span`.
    pub(super) fn array_items(b: &[u8], span: Span) -> Option<Vec<Span>> {
        if b.get(span.start) != Some(&b'[') {
            return None;
        }
        let mut items = Vec::new();
        let mut i = skip_ws(b, span.start + 1);
        if b.get(i) == Some(&b']') {
            return Some(items);
        }
        loop {
            let end = value_end(b, i)?;
            items.push(Span { start: i, end });
            i = skip_ws(b, end);
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b']' => return Some(items),
                _ => return None,
            }
        }
    }

    /// The members of the object at `span`.
    pub(super) fn object_members(b: &[u8], span: Span) -> Option<Vec<Member>> {
        if b.get(span.start) != Some(&b'{') {
            return None;
        }
        let mut members = Vec::new();
        let mut i = skip_ws(b, span.start + 1);
        if b.get(i) == Some(&b'}') {
            return Some(members);
        }
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let key_end = string_end(b, i)?;
            let colon = skip_ws(b, key_end);
            if b.get(colon) != Some(&b':') {
                return None;
            }
            let vstart = skip_ws(b, colon + 1);
            let vend = value_end(b, vstart)?;
            members.push(Member {
                key: Span {
                    start: i,
                    end: key_end,
                },
                value: Span {
                    start: vstart,
                    end: vend,
                },
            });
            i = skip_ws(b, vend);
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => return Some(members),
                _ => return None,
            }
        }
    }

    /// The key of a member, unescaped.
    pub(super) fn key_text(b: &[u8], key: Span) -> Option<String> {
        serde_json::from_slice(&b[key.start..key.end]).ok()
    }

    /// The white space at the start of the line holding `pos`, if only white space precedes
    /// `pos` on that line; otherwise the line's leading white space all the same.
    pub(super) fn line_indent(b: &[u8], pos: usize) -> String {
        let line_start = b[..pos]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1);
        let indent_end = line_start
            + b[line_start..pos]
                .iter()
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
        String::from_utf8_lossy(&b[line_start..indent_end]).into_owned()
    }
}

/// Formatting: detecting a document's style and writing values in it.
mod style {
    use super::*;

    /// How a document is laid out.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Style {
        /// One level of indentation, or `None` for compact one-line text.
        pub indent: Option<String>,
        /// Line end.
        pub newline: &'static str,
        /// Between a key and its value: `": "` or `":"`.
        pub key_sep: &'static str,
        /// After a comma in compact text: `" "` or `""`.
        pub compact_gap: &'static str,
    }

    impl Default for Style {
        fn default() -> Self {
            Style {
                indent: Some("  ".into()),
                newline: "\n",
                key_sep: ": ",
                compact_gap: "",
            }
        }
    }

    impl Style {
        /// Detects the style of JSON text (without byte order mark).
        pub(super) fn detect(b: &[u8]) -> Style {
            let mut style = Style {
                indent: None,
                newline: "\n",
                key_sep: ":",
                compact_gap: "",
            };
            let mut key_sep_seen = false;
            let mut comma_seen = false;
            let mut depth = 0usize;
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        // Skip the string.
                        i += 1;
                        while i < b.len() && b[i] != b'"' {
                            i += if b[i] == b'\\' { 2 } else { 1 };
                        }
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    b':' if !key_sep_seen => {
                        key_sep_seen = true;
                        if b.get(i + 1) == Some(&b' ') {
                            style.key_sep = ": ";
                        }
                    }
                    b',' if !comma_seen => {
                        comma_seen = true;
                        if b.get(i + 1) == Some(&b' ') {
                            style.compact_gap = " ";
                        }
                    }
                    b'\n' if depth >= 1 && style.indent.is_none() => {
                        if i > 0 && b[i - 1] == b'\r' {
                            style.newline = "\r\n";
                        }
                        let run = b[i + 1..]
                            .iter()
                            .take_while(|&&c| c == b' ' || c == b'\t')
                            .count();
                        let next = b.get(i + 1 + run).copied();
                        let run_text = &b[i + 1..i + 1 + run];
                        let closer = matches!(next, Some(b'}' | b']'));
                        let level = if closer { depth - 1 } else { depth };
                        if run > 0 && level > 0 && run % level == 0 {
                            let unit = &run_text[..run / level];
                            if run_text.chunks(unit.len()).all(|c| c == unit) {
                                style.indent = Some(String::from_utf8_lossy(unit).into_owned());
                            }
                        }
                        if style.indent.is_none() {
                            // Line breaks inside, but no usable indent: still pretty text.
                            style.indent = Some(if run_text.first() == Some(&b'\t') {
                                "\t".into()
                            } else {
                                "  ".into()
                            });
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if style.indent.is_none() && !key_sep_seen && !comma_seen {
                // Nothing to go by (`[]`, `{}`, a scalar): the default.
                return Style::default();
            }
            if style.indent.is_some() && !key_sep_seen {
                style.key_sep = ": ";
            }
            if !comma_seen && style.key_sep == ": " {
                style.compact_gap = " ";
            }
            style
        }

        /// Between two items of a container whose items start at `prefix`.
        pub(super) fn item_gap(&self, prefix: &str) -> String {
            match &self.indent {
                Some(_) => format!("{}{prefix}", self.newline),
                None => self.compact_gap.to_owned(),
            }
        }
    }

    /// Writes a JSON string literal the way serde_json does.
    pub(super) fn write_str(s: &str, out: &mut String) {
        use std::fmt::Write as _;
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// Writes `v` in `style`; `prefix` is the indentation of the line `v` starts on.
    pub(super) fn render(v: &Value, style: &Style, prefix: &str, out: &mut String) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('{');
                let inner = style.indent.as_ref().map(|u| format!("{prefix}{u}"));
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match &inner {
                        Some(inner) => {
                            out.push_str(style.newline);
                            out.push_str(inner);
                        }
                        None if i > 0 => out.push_str(style.compact_gap),
                        None => {}
                    }
                    write_str(k, out);
                    out.push_str(style.key_sep);
                    render(x, style, inner.as_deref().unwrap_or(prefix), out);
                }
                if inner.is_some() {
                    out.push_str(style.newline);
                    out.push_str(prefix);
                }
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('[');
                let inner = style.indent.as_ref().map(|u| format!("{prefix}{u}"));
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match &inner {
                        Some(inner) => {
                            out.push_str(style.newline);
                            out.push_str(inner);
                        }
                        None if i > 0 => out.push_str(style.compact_gap),
                        None => {}
                    }
                    render(x, style, inner.as_deref().unwrap_or(prefix), out);
                }
                if inner.is_some() {
                    out.push_str(style.newline);
                    out.push_str(prefix);
                }
                out.push(']');
            }
            Value::Object(_) => out.push_str("{}"),
            Value::Array(_) => out.push_str("[]"),
            Value::String(s) => write_str(s, out),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
        }
    }

    /// `new` with its object keys in `old`'s order where `old` has them (recursively; array
    /// elements by position), new keys after them in their own order. Only the order changes.
    pub(super) fn align_order(new: Value, old: &Value) -> Value {
        match (new, old) {
            (Value::Object(mut n), Value::Object(o)) => {
                let mut out = Map::with_capacity(n.len());
                for (k, ov) in o {
                    if let Some(nv) = n.get_mut(k) {
                        out.insert(k.clone(), align_order(nv.take(), ov));
                    }
                }
                for (k, v) in n {
                    if !out.contains_key(&k) {
                        out.insert(k, v);
                    }
                }
                Value::Object(out)
            }
            (Value::Array(n), Value::Array(o)) => Value::Array(
                n.into_iter()
                    .enumerate()
                    .map(|(i, v)| match o.get(i) {
                        Some(ov) => align_order(v, ov),
                        None => v,
                    })
                    .collect(),
            ),
            (n, _) => n,
        }
    }
}

/// `file` collections: one JSON document.
mod doc {
    use super::spans::{self, Span};
    use super::style::{self, Style};
    use super::*;

    /// Where the collection is in the document.
    enum Target {
        /// An array of objects with an id field.
        Array(Span),
        /// An object id → entity.
        Map(Span),
        /// `null` at the pointer: an empty collection.
        Null(Span),
        /// The pointer stops at `anchor` (an object): `rest` (non-empty) is missing from it.
        Missing { anchor: Span, rest: Vec<String> },
    }

    /// One entry of the collection.
    struct Entry {
        /// The id (the key in a map, the id field in an array).
        id: String,
        /// The whole item: the element, or the member from its key to its value's end.
        item: Span,
        /// The value (the entity).
        value: Span,
        /// The parsed entity; `None` if it is not an object (held).
        entity: Option<Map<String, Value>>,
    }

    /// A document understood.
    struct Analysis {
        target: Target,
        entries: Vec<Entry>,
        problems: Vec<ScanProblem>,
        held: BTreeSet<String>,
        whole_held: bool,
    }

    impl Analysis {
        fn held_whole(problem: ScanProblem) -> Analysis {
            Analysis {
                target: Target::Null(Span { start: 0, end: 0 }),
                entries: Vec::new(),
                problems: vec![problem],
                held: BTreeSet::new(),
                whole_held: true,
            }
        }
    }

    fn problem_at(
        file: &Path,
        text: &[u8],
        offset: Option<usize>,
        message: String,
        ids: Option<Vec<String>>,
    ) -> ScanProblem {
        let (line, column) = match offset {
            Some(o) => {
                let (l, c) = line_col(text, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let message = match (line, column) {
            (Some(l), Some(c)) => format!("{message} (line {l}, column {c})"),
            _ => message,
        };
        ScanProblem {
            file: file.to_owned(),
            message,
            ids,
            line,
            column,
        }
    }

    /// The id of an array element: the id field as a string, or a number's string form.
    fn element_id(entity: &Map<String, Value>, id_field: &str) -> Option<String> {
        match entity.get(id_field)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Understands the document text (without byte order mark).
    fn analyze(file: &Path, text: &[u8], tokens: &[String], id_field: &str) -> Analysis {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
            let mut p = json_problem(file, &e, None);
            p.message
                .push_str("; the whole collection is held until the file is valid again");
            return Analysis::held_whole(p);
        }
        let pointer = || {
            tokens
                .iter()
                .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                .collect::<String>()
        };
        let unexpected = |offset: Option<usize>| {
            Analysis::held_whole(problem_at(
                file,
                text,
                offset,
                "the document's structure could not be followed".into(),
                None,
            ))
        };
        let Some(mut cur) = spans::root(text) else {
            return unexpected(None);
        };
        let mut target = None;
        for (depth, token) in tokens.iter().enumerate() {
            match text[cur.start] {
                b'{' => {
                    let Some(members) = spans::object_members(text, cur) else {
                        return unexpected(Some(cur.start));
                    };
                    // Like serde_json, the last of duplicate keys counts.
                    let found = members
                        .iter()
                        .rev()
                        .find(|m| spans::key_text(text, m.key).as_deref() == Some(token.as_str()));
                    match found {
                        Some(m) => cur = m.value,
                        None => {
                            target = Some(Target::Missing {
                                anchor: cur,
                                rest: tokens[depth..].to_vec(),
                            });
                            break;
                        }
                    }
                }
                b'[' => {
                    let Some(items) = spans::array_items(text, cur) else {
                        return unexpected(Some(cur.start));
                    };
                    let index = token
                        .parse::<usize>()
                        .ok()
                        .filter(|i| token == &i.to_string());
                    match index.and_then(|i| items.get(i)) {
                        Some(item) => cur = *item,
                        None => {
                            return Analysis::held_whole(problem_at(
                                file,
                                text,
                                Some(cur.start),
                                format!(
                                    "JSON pointer {} needs element {token:?} of an array that has {} elements; the whole collection is held",
                                    pointer(),
                                    items.len()
                                ),
                                None,
                            ));
                        }
                    }
                }
                other => {
                    let what = match other {
                        b'"' => "string",
                        b'n' => "null",
                        b't' | b'f' => "boolean",
                        _ => "number",
                    };
                    return Analysis::held_whole(problem_at(
                        file,
                        text,
                        Some(cur.start),
                        format!(
                            "JSON pointer {} runs into a {what}; the whole collection is held",
                            pointer()
                        ),
                        None,
                    ));
                }
            }
        }
        let target = match target {
            Some(t) => t,
            None => match text[cur.start] {
                b'[' => Target::Array(cur),
                b'{' => Target::Map(cur),
                b'n' => Target::Null(cur),
                _ => {
                    return Analysis::held_whole(problem_at(
                        file,
                        text,
                        Some(cur.start),
                        format!(
                            "the collection at {} is neither an array nor an object; the whole collection is held",
                            pointer()
                        ),
                        None,
                    ));
                }
            },
        };
        let mut a = Analysis {
            target,
            entries: Vec::new(),
            problems: Vec::new(),
            held: BTreeSet::new(),
            whole_held: false,
        };
        match a.target {
            Target::Array(span) => {
                let Some(items) = spans::array_items(text, span) else {
                    return unexpected(Some(span.start));
                };
                let mut seen = BTreeSet::new();
                for (n, item) in items.into_iter().enumerate() {
                    let entity = match serde_json::from_slice::<Value>(&text[item.start..item.end])
                    {
                        Ok(Value::Object(m)) => m,
                        Ok(other) => {
                            a.problems.push(problem_at(
                                file,
                                text,
                                Some(item.start),
                                format!(
                                    "element {n} is a {}, not an object with {id_field:?}",
                                    type_name(&other)
                                ),
                                None,
                            ));
                            a.whole_held = true;
                            continue;
                        }
                        Err(_) => return unexpected(Some(item.start)),
                    };
                    let Some(id) = element_id(&entity, id_field) else {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start),
                            format!(
                                "element {n} has no {id_field:?} (a non-empty string or a number)"
                            ),
                            None,
                        ));
                        a.whole_held = true;
                        continue;
                    };
                    if !seen.insert(id.clone()) {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start),
                            format!("element {n} repeats id {id:?}"),
                            Some(vec![id.clone()]),
                        ));
                        a.whole_held = true;
                        continue;
                    }
                    a.entries.push(Entry {
                        id,
                        item,
                        value: item,
                        entity: Some(entity),
                    });
                }
            }
            Target::Map(span) => {
                let Some(members) = spans::object_members(text, span) else {
                    return unexpected(Some(span.start));
                };
                let mut seen = BTreeSet::new();
                for m in members {
                    let Some(id) = spans::key_text(text, m.key) else {
                        return unexpected(Some(m.key.start));
                    };
                    if !seen.insert(id.clone()) {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(m.key.start),
                            format!("key {id:?} appears twice"),
                            Some(vec![id.clone()]),
                        ));
                        a.whole_held = true;
                        continue;
                    }
                    let entity =
                        match serde_json::from_slice::<Value>(&text[m.value.start..m.value.end]) {
                            Ok(Value::Object(e)) if !id.is_empty() => Some(e),
                            Ok(other) => {
                                let why = if id.is_empty() {
                                    "an empty id".to_owned()
                                } else {
                                    format!("a {}, not an object", type_name(&other))
                                };
                                a.problems.push(problem_at(
                                    file,
                                    text,
                                    Some(m.key.start),
                                    format!("entry {id:?} is {why}; entity held"),
                                    Some(vec![id.clone()]),
                                ));
                                a.held.insert(id.clone());
                                None
                            }
                            Err(_) => return unexpected(Some(m.value.start)),
                        };
                    a.entries.push(Entry {
                        id,
                        item: Span {
                            start: m.key.start,
                            end: m.value.end,
                        },
                        value: m.value,
                        entity,
                    });
                }
            }
            Target::Null(_) | Target::Missing { .. } => {}
        }
        if a.whole_held {
            for p in &mut a.problems {
                p.message.push_str("; the whole collection is held");
            }
            let ids: Vec<String> = a.entries.drain(..).map(|e| e.id).collect();
            a.held.extend(ids);
        }
        a
    }

    pub(super) fn scan(
        path: &Path,
        tokens: &[String],
        id_field: &str,
    ) -> Result<Scan, CollectionError> {
        let mut out = Scan {
            entities: BTreeMap::new(),
            problems: Vec::new(),
            held: BTreeSet::new(),
            whole_collection_held: false,
            fingerprint: Fingerprint::File { hash: None },
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("read", path, e)),
        };
        out.fingerprint = Fingerprint::File {
            hash: Some(sha256_hex(&bytes)),
        };
        let a = analyze(path, split_bom(&bytes).1, tokens, id_field);
        out.problems = a.problems;
        out.held = a.held;
        out.whole_collection_held = a.whole_held;
        for e in a.entries {
            if let Some(entity) = e.entity {
                out.entities.insert(e.id, Value::Object(entity));
            }
        }
        Ok(out)
    }

    /// The shape a collection is created in when it does not exist yet.
    fn create_as_array(id_field: &str) -> bool {
        id_field != DEFAULT_ID_FIELD
    }

    /// Makes a `Put` value fit an array collection: its id field present (added first when
    /// missing) and agreeing with the id.
    fn with_id_field(
        path: &Path,
        id: &str,
        value: &Value,
        id_field: &str,
    ) -> Result<Value, CollectionError> {
        let Value::Object(m) = value else {
            return Err(CollectionError::InvalidWrite {
                path: path.to_owned(),
                id: id.to_owned(),
                reason: "an entity must be a JSON object".into(),
            });
        };
        match m.get(id_field) {
            None => {
                let mut out = Map::with_capacity(m.len() + 1);
                out.insert(id_field.to_owned(), Value::String(id.to_owned()));
                out.extend(m.clone());
                Ok(Value::Object(out))
            }
            Some(_) if element_id(m, id_field).as_deref() == Some(id) => Ok(value.clone()),
            Some(other) => Err(CollectionError::InvalidWrite {
                path: path.to_owned(),
                id: id.to_owned(),
                reason: format!("its {id_field:?} field is {other}, not the id"),
            }),
        }
    }

    /// One item of a rebuilt container.
    enum Piece<'a> {
        /// Kept as it is in the text.
        Keep(Span),
        /// The item's value replaced: text before the value kept (a member's key), new value
        /// written with the item line's indentation.
        Replace {
            item: Span,
            value_start: usize,
            new: Value,
        },
        /// A new element or member.
        New { key: Option<&'a str>, value: Value },
    }

    /// The text of the container at `span` with its items replaced by `pieces`. Items that are
    /// kept keep their exact text; the white space between items follows the container's own.
    fn rebuild(
        text: &[u8],
        span: Span,
        old_items: &[Span],
        pieces: &[Piece<'_>],
        style: &Style,
    ) -> Vec<u8> {
        let open = span.start;
        let close = span.end - 1;
        let container_indent = spans::line_indent(text, open);
        let unit = style.indent.clone().unwrap_or_default();
        let (open_ws, sep_ws, close_ws, item_indent) = match (old_items.first(), old_items.last()) {
            (Some(first), Some(last)) => {
                let open_ws = String::from_utf8_lossy(&text[open + 1..first.start]).into_owned();
                let close_ws = String::from_utf8_lossy(&text[last.end..close]).into_owned();
                let sep_ws = match old_items.get(1) {
                    Some(second) => {
                        let between = &text[first.end..second.start];
                        let after_comma =
                            between.iter().position(|&c| c == b',').map_or(0, |p| p + 1);
                        String::from_utf8_lossy(&between[after_comma..]).into_owned()
                    }
                    None => match &style.indent {
                        Some(_) if open_ws.contains('\n') => open_ws.clone(),
                        Some(_) if style.key_sep == ": " => " ".to_owned(),
                        _ => style.compact_gap.to_owned(),
                    },
                };
                let item_indent = match open_ws.rfind('\n') {
                    Some(p) => open_ws[p + 1..].to_owned(),
                    None => spans::line_indent(text, first.start),
                };
                (open_ws, sep_ws, close_ws, item_indent)
            }
            _ => match &style.indent {
                Some(_) => {
                    let item_indent = format!("{container_indent}{unit}");
                    (
                        style.item_gap(&item_indent),
                        style.item_gap(&item_indent),
                        format!("{}{container_indent}", style.newline),
                        item_indent,
                    )
                }
                None => (
                    String::new(),
                    style.compact_gap.to_owned(),
                    String::new(),
                    String::new(),
                ),
            },
        };
        // A container written on one line inside a pretty document stays on one line.
        let inline_style;
        let style = match (
            &style.indent,
            old_items.is_empty() || open_ws.contains('\n'),
        ) {
            (Some(_), false) => {
                inline_style = Style {
                    indent: None,
                    compact_gap: if style.key_sep == ": " { " " } else { "" },
                    ..style.clone()
                };
                &inline_style
            }
            _ => style,
        };
        let mut out = Vec::with_capacity(span.end - span.start + 256);
        out.push(text[open]);
        if !pieces.is_empty() {
            out.extend_from_slice(open_ws.as_bytes());
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                    out.extend_from_slice(sep_ws.as_bytes());
                }
                let mut rendered = String::new();
                match piece {
                    Piece::Keep(s) => out.extend_from_slice(&text[s.start..s.end]),
                    Piece::Replace {
                        item,
                        value_start,
                        new,
                    } => {
                        out.extend_from_slice(&text[item.start..*value_start]);
                        let indent = spans::line_indent(text, item.start);
                        style::render(new, style, &indent, &mut rendered);
                    }
                    Piece::New { key, value } => {
                        if let Some(k) = key {
                            style::write_str(k, &mut rendered);
                            rendered.push_str(style.key_sep);
                        }
                        style::render(value, style, &item_indent, &mut rendered);
                    }
                }
                out.extend_from_slice(rendered.as_bytes());
            }
            out.extend_from_slice(close_ws.as_bytes());
        }
        out.push(text[close]);
        out
    }

    /// The document text after `writes`; `None` when nothing changes. Ids whose writes cannot
    /// be made (held entries) are added to `skipped`.
    fn edit(
        path: &Path,
        text: &[u8],
        a: &Analysis,
        writes: &[Write],
        id_field: &str,
        style: &Style,
        report: &mut ApplyReport,
    ) -> Result<Option<Vec<u8>>, CollectionError> {
        let is_array = match a.target {
            Target::Array(_) => true,
            Target::Map(_) => false,
            Target::Null(_) | Target::Missing { .. } => create_as_array(id_field),
        };
        // Prepare every Put value first, so that a bad one writes nothing.
        let mut puts: BTreeMap<&str, Value> = BTreeMap::new();
        let mut deletes: BTreeSet<&str> = BTreeSet::new();
        for w in writes {
            if a.held.contains(w.id()) {
                report.skipped.push(w.id().to_owned());
                continue;
            }
            match w {
                Write::Put { id, value } => {
                    let value = if is_array {
                        with_id_field(path, id, value, id_field)?
                    } else {
                        value.clone()
                    };
                    puts.insert(id, value);
                }
                Write::Delete { id } => {
                    deletes.insert(id);
                }
            }
        }
        let existing: BTreeSet<&str> = a.entries.iter().map(|e| e.id.as_str()).collect();
        let mut changed = false;
        let mut pieces = Vec::new();
        for e in &a.entries {
            if deletes.contains(e.id.as_str()) {
                changed = true;
                continue;
            }
            match (puts.get(e.id.as_str()), &e.entity) {
                (Some(new), Some(old)) => {
                    let old = Value::Object(old.clone());
                    let mut new = style::align_order(new.clone(), &old);
                    // Keep a numeric id numeric.
                    if is_array
                        && let (Some(Value::Number(n)), Some(slot)) =
                            (old.get(id_field), new.get_mut(id_field))
                        && slot.as_str() == Some(n.to_string().as_str())
                    {
                        *slot = Value::Number(n.clone());
                    }
                    if new == old {
                        // Same content (key order aside): keep the text as it is.
                        pieces.push(Piece::Keep(e.item));
                    } else {
                        changed = true;
                        pieces.push(Piece::Replace {
                            item: e.item,
                            value_start: e.value.start,
                            new,
                        });
                    }
                }
                _ => pieces.push(Piece::Keep(e.item)),
            }
        }
        let mut new_entries: Vec<(&str, Value)> = Vec::new();
        for w in writes {
            if let Some(v) = puts.get(w.id())
                && !existing.contains(w.id())
            {
                new_entries.push((w.id(), v.clone()));
            }
        }
        for w in writes {
            if a.held.contains(w.id()) {
                continue;
            }
            match w {
                Write::Put { id, .. } => report.written.push(id.clone()),
                Write::Delete { id } => report.deleted.push(id.clone()),
            }
        }
        if new_entries.is_empty() && !changed {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(text.len() + 256);
        match &a.target {
            Target::Array(span) | Target::Map(span) => {
                for (id, value) in new_entries {
                    pieces.push(Piece::New {
                        key: (!is_array).then_some(id),
                        value,
                    });
                }
                let items: Vec<Span> = a.entries.iter().map(|e| e.item).collect();
                // Held entries are items too (kept as they are), already in `entries`.
                out.extend_from_slice(&text[..span.start]);
                out.extend_from_slice(&rebuild(text, *span, &items, &pieces, style));
                out.extend_from_slice(&text[span.end..]);
            }
            Target::Null(span) => {
                let collection = new_collection(is_array, new_entries);
                let mut rendered = String::new();
                style::render(
                    &collection,
                    style,
                    &spans::line_indent(text, span.start),
                    &mut rendered,
                );
                out.extend_from_slice(&text[..span.start]);
                out.extend_from_slice(rendered.as_bytes());
                out.extend_from_slice(&text[span.end..]);
            }
            Target::Missing { anchor, rest } => {
                let mut value = new_collection(is_array, new_entries);
                for token in rest[1..].iter().rev() {
                    let mut m = Map::new();
                    m.insert(token.clone(), value);
                    value = Value::Object(m);
                }
                let members =
                    spans::object_members(text, *anchor).ok_or_else(|| CollectionError::Held {
                        path: path.to_owned(),
                        reason: "the document's structure could not be followed".into(),
                    })?;
                let items: Vec<Span> = members
                    .iter()
                    .map(|m| Span {
                        start: m.key.start,
                        end: m.value.end,
                    })
                    .collect();
                let mut pieces: Vec<Piece<'_>> = items.iter().map(|s| Piece::Keep(*s)).collect();
                pieces.push(Piece::New {
                    key: Some(&rest[0]),
                    value,
                });
                out.extend_from_slice(&text[..anchor.start]);
                out.extend_from_slice(&rebuild(text, *anchor, &items, &pieces, style));
                out.extend_from_slice(&text[anchor.end..]);
            }
        }
        Ok(Some(out))
    }

    fn new_collection(is_array: bool, entries: Vec<(&str, Value)>) -> Value {
        if is_array {
            Value::Array(entries.into_iter().map(|(_, v)| v).collect())
        } else {
            Value::Object(
                entries
                    .into_iter()
                    .map(|(id, v)| (id.to_owned(), v))
                    .collect(),
            )
        }
    }

    /// The document for a collection that does not exist yet.
    fn new_document(tokens: &[String], collection: Value) -> Vec<u8> {
        let mut value = collection;
        for token in tokens.iter().rev() {
            let mut m = Map::new();
            m.insert(token.clone(), value);
            value = Value::Object(m);
        }
        let mut text = String::new();
        style::render(&value, &Style::default(), "", &mut text);
        text.push('\n');
        text.into_bytes()
    }

    /// The file to write: a symbolic link's target (so that the link survives), else `path`.
    fn real_path(path: &Path) -> PathBuf {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
            }
            _ => path.to_owned(),
        }
    }

    pub(super) fn apply(
        path: &Path,
        tokens: &[String],
        id_field: &str,
        writes: &[Write],
        expected: &Fingerprint,
    ) -> Result<ApplyReport, CollectionError> {
        let Fingerprint::File {
            hash: expected_hash,
        } = expected
        else {
            return Err(CollectionError::WrongFingerprint {
                path: path.to_owned(),
            });
        };
        check_batch(path, writes)?;
        let target = real_path(path);
        let current = read_file(&target).map_err(|e| io_err("read", &target, e))?;
        if current.as_ref().map(|(s, _)| &s.hash) != expected_hash.as_ref() {
            return Err(CollectionError::ChangedMeanwhile {
                path: path.to_owned(),
            });
        }
        let mut report = ApplyReport {
            written: Vec::new(),
            deleted: Vec::new(),
            skipped: Vec::new(),
            fingerprint: expected.clone(),
        };
        if writes.is_empty() {
            return Ok(report);
        }
        let new_bytes = match &current {
            None => {
                let is_array = create_as_array(id_field);
                let mut entries = Vec::new();
                for w in writes {
                    match w {
                        Write::Put { id, value } => {
                            let value = if is_array {
                                with_id_field(path, id, value, id_field)?
                            } else {
                                value.clone()
                            };
                            entries.push((id.as_str(), value));
                            report.written.push(id.clone());
                        }
                        Write::Delete { id } => report.deleted.push(id.clone()),
                    }
                }
                if entries.is_empty() {
                    return Ok(report);
                }
                new_document(tokens, new_collection(is_array, entries))
            }
            Some((_, bytes)) => {
                let (bom, text) = split_bom(bytes);
                let a = analyze(path, text, tokens, id_field);
                if a.whole_held {
                    return Err(CollectionError::Held {
                        path: path.to_owned(),
                        reason: a
                            .problems
                            .first()
                            .map(|p| p.message.clone())
                            .unwrap_or_default(),
                    });
                }
                let style = Style::detect(text);
                match edit(path, text, &a, writes, id_field, &style, &mut report)? {
                    Some(new_text) => [bom, &new_text].concat(),
                    None => return Ok(report),
                }
            }
        };
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&folder).map_err(|e| io_err("create folder", &folder, e))?;
        let base = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("document")
            .to_owned();
        let perms = fs::metadata(&target).ok().map(|m| m.permissions());
        let tmp = atomic::write_temp(&folder, &base, &new_bytes, perms)?;
        let installed = atomic::install(&tmp, &target, current.is_none(), || {
            let now = read_file(&target).map_err(|e| io_err("read", &target, e))?;
            Ok(now.map(|(s, _)| s.hash) == *expected_hash)
        })?;
        if !installed {
            return Err(CollectionError::ChangedMeanwhile {
                path: path.to_owned(),
            });
        }
        atomic::sync_dir(&folder);
        report.fingerprint = Fingerprint::File {
            hash: Some(sha256_hex(&new_bytes)),
        };
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_meta::content_hash;
    use proptest::prelude::*;
    use serde_json::json;

    fn put(id: &str, value: Value) -> Write {
        Write::Put {
            id: id.into(),
            value,
        }
    }

    fn del(id: &str) -> Write {
        Write::Delete { id: id.into() }
    }

    fn dir_kind(path: &str) -> CollectionKind {
        CollectionKind::Dir { path: path.into() }
    }

    fn file_kind(path: &str, pointer: Option<&str>, id_field: &str) -> CollectionKind {
        CollectionKind::File {
            path: path.into(),
            pointer: pointer.map(str::to_owned),
            id_field: id_field.into(),
        }
    }

    fn write_text(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, text).unwrap();
    }

    fn read_text(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// How an app saves: a temporary file, then a rename over the real one.
    fn app_save(path: &Path, text: &str) {
        let tmp = path.with_file_name(format!(
            "{}.tmp-app",
            path.file_name().unwrap().to_str().unwrap()
        ));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, path).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    // ---------------------------------------------------------------- dir

    #[test]
    fn dir_missing_is_empty_and_is_created_on_first_write() {
        let ws = tempfile::tempdir().unwrap();
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.entities.is_empty() && s.problems.is_empty() && s.held.is_empty());
        assert!(!ws.path().join("tasks").exists());

        let writes = [
            put("t1", json!({"title": "buy milk", "done": false})),
            put("../evil", json!({"title": "x"})),
            put("CON", json!({"title": "device"})),
            del("never-existed"),
        ];
        let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
        assert_eq!(r.written, ["t1", "../evil", "CON"]);
        assert_eq!(r.deleted, ["never-existed"]);
        assert!(r.skipped.is_empty());
        let dir = ws.path().join("tasks");
        assert_eq!(names(&dir), ["%2E.%2Fevil.json", "%43ON.json", "t1.json"]);
        assert!(!ws.path().join("evil.json").exists());
        assert_eq!(
            read_text(&dir.join("t1.json")),
            "{\n  \"title\": \"buy milk\",\n  \"done\": false\n}\n"
        );

        let s2 = scan(ws.path(), &kind).unwrap();
        assert!(s2.problems.is_empty(), "{:?}", s2.problems);
        assert_eq!(s2.entities.len(), 3);
        assert_eq!(s2.entities["../evil"], json!({"title": "x"}));
        assert_eq!(s2.entities["CON"], json!({"title": "device"}));
        // The report's fingerprint is what a fresh scan sees.
        assert_eq!(r.fingerprint, s2.fingerprint);
    }

    #[test]
    fn dir_update_and_delete() {
        let ws = tempfile::tempdir().unwrap();
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        apply(
            ws.path(),
            &kind,
            &[put("a", json!({"n": 1})), put("b", json!({"n": 2}))],
            &s.fingerprint,
        )
        .unwrap();
        let s = scan(ws.path(), &kind).unwrap();
        let r = apply(
            ws.path(),
            &kind,
            &[put("a", json!({"n": 10})), del("b")],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            (r.written.as_slice(), r.deleted.as_slice()),
            (&["a".to_owned()][..], &["b".to_owned()][..])
        );
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.len(), 1);
        assert_eq!(s.entities["a"], json!({"n": 10}));
        assert_eq!(names(&ws.path().join("tasks")), ["a.json"]);
        assert_eq!(r.fingerprint, s.fingerprint);
    }

    #[test]
    fn dir_ignores_editor_and_temporary_files() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("tasks");
        write_text(&dir.join("a.json"), r#"{"title": "real"}"#);
        for junk in [
            ".a.json",
            ".hidden.json",
            "a.json~",
            "a.json.tmp",
            "a.tmp",
            ".a.json.swp",
            "a.swp",
            "#a.json#",
            "a.json.tmp-12345",
            ".a.deltasync-tmp-abcdef",
            "notes.txt",
            "a.JSON.bak",
        ] {
            write_text(&dir.join(junk), "not json at all {");
        }
        fs::create_dir(dir.join("sub")).unwrap();
        let s = scan(ws.path(), &dir_kind("tasks")).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["a"]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert!(s.held.is_empty());
    }

    #[test]
    fn dir_non_canonical_names_are_problems_not_entities() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("tasks");
        write_text(&dir.join("%41.json"), "{}");
        write_text(&dir.join("con.json"), "{}");
        write_text(&dir.join("a%2fb.json"), "{}");
        write_text(&dir.join("ok.json"), "{}");
        let s = scan(ws.path(), &dir_kind("tasks")).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["ok"]);
        assert_eq!(s.problems.len(), 3, "{:?}", s.problems);
        assert!(s.problems.iter().all(|p| p.ids.is_none()));
        assert!(s.problems.iter().any(|p| p.file.ends_with("con.json")));
        assert!(s.held.is_empty());
    }

    #[test]
    fn dir_half_written_file_is_held_never_deleted() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("tasks");
        let half = "{\n  \"title\": \"buy milk\",\n  \"do";
        write_text(&dir.join("a.json"), half);
        write_text(&dir.join("b.json"), "[1, 2]");
        write_text(&dir.join("c.json"), "{\"ok\": true}");
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(s.held, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        let p = s
            .problems
            .iter()
            .find(|p| p.file.ends_with("a.json"))
            .unwrap();
        assert_eq!(p.ids.as_deref(), Some(&["a".to_owned()][..]));
        assert_eq!(p.line, Some(3));
        assert!(p.column.is_some());
        assert!(p.message.contains("line 3 column"), "{}", p.message);
        let p = s
            .problems
            .iter()
            .find(|p| p.file.ends_with("b.json"))
            .unwrap();
        assert!(p.message.contains("array"), "{}", p.message);

        // A careless caller deleting or overwriting held ids changes nothing.
        let r = apply(
            ws.path(),
            &kind,
            &[del("a"), put("b", json!({"x": 1}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.skipped, ["a", "b"]);
        assert!(r.written.is_empty() && r.deleted.is_empty());
        assert_eq!(read_text(&dir.join("a.json")), half);
        assert_eq!(read_text(&dir.join("b.json")), "[1, 2]");
    }

    #[test]
    fn dir_app_save_between_scan_and_apply_is_never_overwritten() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("tasks");
        write_text(&dir.join("a.json"), "{\"v\": 1}\n");
        write_text(&dir.join("b.json"), "{\"v\": 1}\n");
        write_text(&dir.join("c.json"), "{\"v\": 1}\n");
        write_text(&dir.join("d.json"), "{\"v\": 1}\n");
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();

        // The app, meanwhile: saves a (same size!), saves b, deletes c, creates e.
        app_save(&dir.join("a.json"), "{\"v\": 2}\n");
        app_save(&dir.join("b.json"), "{\"v\": 1, \"more\": true}\n");
        fs::remove_file(dir.join("c.json")).unwrap();
        write_text(&dir.join("e.json"), "{\"app\": \"new\"}\n");

        let r = apply(
            ws.path(),
            &kind,
            &[
                put("a", json!({"v": 99})),
                del("b"),
                put("c", json!({"v": 99})),
                put("e", json!({"v": 99})),
                put("d", json!({"v": 3})),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.skipped, ["a", "b", "c", "e"]);
        assert_eq!(r.written, ["d"]);
        assert_eq!(read_text(&dir.join("a.json")), "{\"v\": 2}\n");
        assert_eq!(
            read_text(&dir.join("b.json")),
            "{\"v\": 1, \"more\": true}\n"
        );
        assert!(!dir.join("c.json").exists());
        assert_eq!(read_text(&dir.join("e.json")), "{\"app\": \"new\"}\n");
        assert_eq!(
            serde_json::from_str::<Value>(&read_text(&dir.join("d.json"))).unwrap(),
            json!({"v": 3})
        );
        // No temporary file left behind.
        assert_eq!(names(&dir), ["a.json", "b.json", "d.json", "e.json"]);

        // Next round, from a fresh scan, the writes go through.
        let s = scan(ws.path(), &kind).unwrap();
        let r = apply(
            ws.path(),
            &kind,
            &[put("a", json!({"v": 99})), del("b")],
            &s.fingerprint,
        )
        .unwrap();
        assert!(r.skipped.is_empty());
        assert!(!dir.join("b.json").exists());
    }

    #[test]
    fn dir_update_keeps_the_files_style_and_key_order() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("tasks");
        write_text(
            &dir.join("a.json"),
            "{\n    \"z\": 1,\n    \"a\": {\n        \"y\": 1,\n        \"x\": 2\n    }\n}",
        );
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        apply(
            ws.path(),
            &kind,
            &[put("a", json!({"a": {"x": 3, "y": 1}, "new": [1], "z": 1}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&dir.join("a.json")),
            "{\n    \"z\": 1,\n    \"a\": {\n        \"y\": 1,\n        \"x\": 3\n    },\n    \"new\": [\n        1\n    ]\n}"
        );
    }

    #[test]
    fn dir_bad_batches_write_nothing() {
        let ws = tempfile::tempdir().unwrap();
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        let cases = [
            vec![put("ok", json!({})), put(&"x".repeat(300), json!({}))],
            vec![put("ok", json!({})), put("", json!({}))],
            vec![put("ok", json!({})), put("ok", json!({"again": 1}))],
            vec![put("ok", json!({})), put("arr", json!([1]))],
        ];
        for writes in cases {
            let e = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap_err();
            assert!(
                matches!(
                    e,
                    CollectionError::Id { .. } | CollectionError::InvalidWrite { .. }
                ),
                "{e}"
            );
            assert!(!e.is_temporary());
            assert!(!ws.path().join("tasks").exists());
        }
        let e = apply(ws.path(), &kind, &[], &Fingerprint::File { hash: None }).unwrap_err();
        assert!(matches!(e, CollectionError::WrongFingerprint { .. }));
    }

    #[test]
    fn paths_may_not_leave_the_workspace() {
        let ws = tempfile::tempdir().unwrap();
        for p in ["../x", "/etc", "a/../../b"] {
            assert!(matches!(
                scan(ws.path(), &dir_kind(p)),
                Err(CollectionError::BadPath { .. })
            ));
            assert!(matches!(
                scan(ws.path(), &file_kind(p, None, "id")),
                Err(CollectionError::BadPath { .. })
            ));
        }
        for ptr in ["task", "/a~2b", "/a~"] {
            assert!(matches!(
                scan(ws.path(), &file_kind("m.json", Some(ptr), "id")),
                Err(CollectionError::BadPointer { .. })
            ));
        }
        write_text(&ws.path().join("plain"), "x");
        assert!(matches!(
            scan(ws.path(), &dir_kind("plain")),
            Err(CollectionError::NotADirectory { .. })
        ));
    }

    // ---------------------------------------------------------------- file

    #[test]
    fn file_array_at_root_round_trip() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("stadiums.json");
        write_text(
            &doc,
            "[\n  {\n    \"id\": \"a\",\n    \"name\": \"Anfield\"\n  },\n  {\n    \"id\": \"b\",\n    \"name\": \"Bernabeu\"\n  },\n  {\n    \"id\": \"c\",\n    \"name\": \"Camp Nou\"\n  }\n]\n",
        );
        let kind = file_kind("stadiums.json", None, "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.problems.is_empty() && !s.whole_collection_held);
        assert_eq!(s.entities["b"], json!({"id": "b", "name": "Bernabeu"}));
        let r = apply(
            ws.path(),
            &kind,
            &[
                put("b", json!({"name": "Santiago Bernabeu", "id": "b"})),
                del("a"),
                put("d", json!({"name": "Dortmund"})),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.written, ["b", "d"]);
        assert_eq!(r.deleted, ["a"]);
        assert_eq!(
            read_text(&doc),
            "[\n  {\n    \"id\": \"b\",\n    \"name\": \"Santiago Bernabeu\"\n  },\n  {\n    \"id\": \"c\",\n    \"name\": \"Camp Nou\"\n  },\n  {\n    \"id\": \"d\",\n    \"name\": \"Dortmund\"\n  }\n]\n"
        );
        let s2 = scan(ws.path(), &kind).unwrap();
        assert_eq!(s2.fingerprint, r.fingerprint);
        assert_eq!(s2.entities.keys().collect::<Vec<_>>(), ["b", "c", "d"]);

        // Deleting everything leaves an empty array.
        let r = apply(
            ws.path(),
            &kind,
            &[del("b"), del("c"), del("d")],
            &s2.fingerprint,
        )
        .unwrap();
        assert_eq!(r.deleted.len(), 3);
        assert_eq!(read_text(&doc), "[]\n");
        let s3 = scan(ws.path(), &kind).unwrap();
        assert!(s3.entities.is_empty());
        // And the first new entity after that is indented like the document.
        apply(
            ws.path(),
            &kind,
            &[put("e", json!({"n": 1}))],
            &s3.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&doc),
            "[\n  {\n    \"id\": \"e\",\n    \"n\": 1\n  }\n]\n"
        );
    }

    #[test]
    fn file_map_at_root_round_trip() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("notes.json");
        write_text(
            &doc,
            "{\n\t\"n1\": {\n\t\t\"text\": \"hello\"\n\t},\n\t\"n2\": {\n\t\t\"text\": \"bye\"\n\t}\n}",
        );
        let kind = file_kind("notes.json", None, "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.len(), 2);
        assert_eq!(s.entities["n1"], json!({"text": "hello"}));
        let r = apply(
            ws.path(),
            &kind,
            &[
                put("n3", json!({"text": "new", "tags": ["x"]})),
                put("n1", json!({"text": "hello!"})),
                del("n2"),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.written, ["n3", "n1"]);
        // Tabs kept, no trailing newline added.
        assert_eq!(
            read_text(&doc),
            "{\n\t\"n1\": {\n\t\t\"text\": \"hello!\"\n\t},\n\t\"n3\": {\n\t\t\"text\": \"new\",\n\t\t\"tags\": [\n\t\t\t\"x\"\n\t\t]\n\t}\n}"
        );
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities["n3"], json!({"text": "new", "tags": ["x"]}));
        assert_eq!(s.entities.len(), 2);
    }

    /// A larger app document, 4-space indented, with things serde_json would not write the same
    /// way (number spellings, escapes, an inline array) outside the collection.
    const MAIN: &str = r#"{
    "version": 3,
    "settings": {"theme": "dark", "ratio": 1.50, "big": 1e3, "name": "caf\u00e9"},
    "task": {
        "nextId": 12,
        "entities": [
            {
                "id": "t1",
                "title": "first",
                "estimate": 2.50
            },
            {
                "id": "t2",
                "title": "second"
            },
            {
                "id": "t3",
                "title": "third"
            }
        ],
        "ids": ["t1", "t2", "t3"]
    },
    "project": {
        "entities": {
            "p1": {"title": "inbox"}
        }
    },
    "zeta": [ 1, 2 ,3 ]
}
"#;

    #[test]
    fn file_pointer_inside_a_larger_document() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("main.json");
        write_text(&doc, MAIN);
        let kind = file_kind("main.json", Some("/task/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["t1", "t2", "t3"]);
        let r = apply(
            ws.path(),
            &kind,
            &[
                put(
                    "t2",
                    json!({"id": "t2", "title": "second, edited", "done": true}),
                ),
                del("t3"),
                put("t4", json!({"id": "t4", "title": "fourth"})),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert!(r.skipped.is_empty());
        let after = read_text(&doc);
        let open = MAIN.find("\"entities\": [").unwrap() + "\"entities\": [".len();
        let close = MAIN.find("\n        ],").unwrap();
        // Everything outside the collection is byte for byte the same…
        assert!(after.starts_with(&MAIN[..open]), "{after}");
        assert!(after.ends_with(&MAIN[close..]), "{after}");
        // …and so is the entity that was not written (its "2.50" included).
        let t1 = &MAIN[MAIN
            .find("            {\n                \"id\": \"t1\"")
            .unwrap()
            ..MAIN
                .find("            },\n            {\n                \"id\": \"t2\"")
                .unwrap()];
        assert!(after.contains(t1));
        assert_eq!(
            &after[open..after.len() - (MAIN.len() - close)],
            format!(
                "\n{t1}            }},\n            {{\n                \"id\": \"t2\",\n                \"title\": \"second, edited\",\n                \"done\": true\n            }},\n            {{\n                \"id\": \"t4\",\n                \"title\": \"fourth\"\n            }}"
            )
        );
        let s2 = scan(ws.path(), &kind).unwrap();
        assert_eq!(s2.entities.keys().collect::<Vec<_>>(), ["t1", "t2", "t4"]);
        assert_eq!(s2.entities["t1"]["estimate"], json!(2.5));
        assert_eq!(s2.fingerprint, r.fingerprint);

        // The map-shaped collection next to it.
        let kind = file_kind("main.json", Some("/project/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities["p1"], json!({"title": "inbox"}));
        let before = read_text(&doc);
        apply(
            ws.path(),
            &kind,
            &[put("p2", json!({"title": "work"}))],
            &s.fingerprint,
        )
        .unwrap();
        let after = read_text(&doc);
        assert_eq!(
            after,
            before.replace(
                "\"p1\": {\"title\": \"inbox\"}\n",
                "\"p1\": {\"title\": \"inbox\"},\n            \"p2\": {\n                \"title\": \"work\"\n            }\n"
            )
        );
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.len(), 2);
    }

    #[test]
    fn file_missing_target_is_created() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("main.json");
        let other =
            "{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1\n    }\n}\n";
        write_text(&doc, other);

        // Default id field: a map.
        let kind = file_kind("main.json", Some("/task/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.entities.is_empty() && s.problems.is_empty());
        // Deletes alone create nothing.
        let r = apply(ws.path(), &kind, &[del("x")], &s.fingerprint).unwrap();
        assert_eq!(r.deleted, ["x"]);
        assert_eq!(read_text(&doc), other);
        apply(
            ws.path(),
            &kind,
            &[put("t1", json!({"title": "a"}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&doc),
            "{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1,\n        \"entities\": {\n            \"t1\": {\n                \"title\": \"a\"\n            }\n        }\n    }\n}\n"
        );

        // An explicit id field: an array, with the id inserted.
        write_text(&doc, other);
        let kind = file_kind("main.json", Some("/board/cards"), "uid");
        let s = scan(ws.path(), &kind).unwrap();
        apply(
            ws.path(),
            &kind,
            &[put("c1", json!({"title": "a"}))],
            &s.fingerprint,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&read_text(&doc)).unwrap();
        assert_eq!(v["board"]["cards"], json!([{"uid": "c1", "title": "a"}]));
        assert!(read_text(&doc).starts_with("{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1\n    },\n    \"board\": {\n        \"cards\": [\n            {\n"));
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities["c1"], json!({"uid": "c1", "title": "a"}));

        // A missing document, created with its pointer path.
        let kind = file_kind("sub/new.json", Some("/a/b"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.fingerprint, Fingerprint::File { hash: None });
        apply(
            ws.path(),
            &kind,
            &[put("x", json!({"n": 1}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&ws.path().join("sub/new.json")),
            "{\n  \"a\": {\n    \"b\": {\n      \"x\": {\n        \"n\": 1\n      }\n    }\n  }\n}\n"
        );

        // null at the pointer is an empty collection.
        write_text(&doc, "{\"list\": null, \"z\": 0}");
        let kind = file_kind("main.json", Some("/list"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.entities.is_empty() && s.problems.is_empty());
        apply(
            ws.path(),
            &kind,
            &[put("x", json!({"n": 1}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(read_text(&doc), "{\"list\": {\"x\": {\"n\": 1}}, \"z\": 0}");
    }

    #[test]
    fn file_app_save_between_scan_and_apply_is_never_overwritten() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("main.json");
        write_text(&doc, MAIN);
        let kind = file_kind("main.json", Some("/task/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        let saved = MAIN.replace("\"nextId\": 12", "\"nextId\": 13");
        app_save(&doc, &saved);
        let e = apply(
            ws.path(),
            &kind,
            &[put("t9", json!({"id": "t9"})), del("t1")],
            &s.fingerprint,
        )
        .unwrap_err();
        assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }), "{e}");
        assert!(e.is_temporary());
        assert_eq!(read_text(&doc), saved);
        assert_eq!(names(ws.path()), ["main.json"]);

        // The app deleting the document is a change too.
        let s = scan(ws.path(), &kind).unwrap();
        fs::remove_file(&doc).unwrap();
        let e = apply(ws.path(), &kind, &[del("t1")], &s.fingerprint).unwrap_err();
        assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }));
        assert!(!doc.exists());

        // And creating it when the scan found none.
        let s = scan(ws.path(), &kind).unwrap();
        write_text(&doc, "{\"task\": {\"entities\": []}}");
        let e = apply(ws.path(), &kind, &[put("t1", json!({}))], &s.fingerprint).unwrap_err();
        assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }));
        assert_eq!(read_text(&doc), "{\"task\": {\"entities\": []}}");
    }

    #[test]
    fn file_half_written_document_holds_the_whole_collection() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("main.json");
        let half = &MAIN[..MAIN.find("\"title\": \"second\"").unwrap()];
        write_text(&doc, half);
        let kind = file_kind("main.json", Some("/task/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.whole_collection_held);
        assert!(s.entities.is_empty());
        assert_eq!(s.problems.len(), 1);
        let p = &s.problems[0];
        assert_eq!(p.line, Some(14));
        assert!(p.column.is_some());
        assert!(p.message.contains("line 14 column"), "{}", p.message);
        let e = apply(ws.path(), &kind, &[del("t1")], &s.fingerprint).unwrap_err();
        assert!(matches!(e, CollectionError::Held { .. }), "{e}");
        assert_eq!(read_text(&doc), half);

        // An empty file (a truncated save) is not an empty collection.
        write_text(&doc, "");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.whole_collection_held);
    }

    #[test]
    fn file_bad_entries() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("list.json");
        let kind = file_kind("list.json", None, "id");
        for (text, held) in [
            (
                r#"[{"id": "a"}, {"id": "a", "x": 1}, {"id": "b"}]"#,
                vec!["a", "b"],
            ),
            (r#"[{"id": "a"}, {"name": "no id"}]"#, vec!["a"]),
            (r#"[{"id": "a"}, {"id": ""}]"#, vec!["a"]),
            (r#"[{"id": "a"}, {"id": null}]"#, vec!["a"]),
            (r#"[{"id": "a"}, 3]"#, vec!["a"]),
            (r#"{"a": {}, "a": {"x": 1}}"#, vec!["a"]),
            (r#""just a string""#, vec![]),
        ] {
            write_text(&doc, text);
            let s = scan(ws.path(), &kind).unwrap();
            assert!(s.whole_collection_held, "{text}");
            assert!(s.entities.is_empty(), "{text}");
            assert_eq!(s.held.iter().collect::<Vec<_>>(), held, "{text}");
            assert!(!s.problems.is_empty());
            assert!(
                s.problems.iter().all(|p| p.line.is_some()),
                "{:?}",
                s.problems
            );
            assert!(matches!(
                apply(ws.path(), &kind, &[put("c", json!({}))], &s.fingerprint),
                Err(CollectionError::Held { .. })
            ));
            assert_eq!(read_text(&doc), text);
        }

        // A map entry that is not an object holds that id only.
        let text = "{\"a\": {\"n\": 1}, \"b\": 42}";
        write_text(&doc, text);
        let s = scan(ws.path(), &kind).unwrap();
        assert!(!s.whole_collection_held);
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.held.iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(s.problems[0].ids.as_deref(), Some(&["b".to_owned()][..]));
        let r = apply(
            ws.path(),
            &kind,
            &[del("b"), put("a", json!({"n": 2}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.skipped, ["b"]);
        assert_eq!(read_text(&doc), "{\"a\": {\"n\": 2}, \"b\": 42}");

        // A pointer through a scalar.
        write_text(&doc, "{\"task\": 5}");
        let s = scan(
            ws.path(),
            &file_kind("list.json", Some("/task/entities"), "id"),
        )
        .unwrap();
        assert!(s.whole_collection_held);
    }

    #[test]
    fn file_numeric_ids_and_id_field_checks() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("list.json");
        write_text(&doc, "[{\"key\":7,\"n\":1},{\"key\":\"x\",\"n\":2}]");
        let kind = file_kind("list.json", None, "key");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["7", "x"]);
        assert_eq!(s.entities["7"], json!({"key": 7, "n": 1}));

        // Another device's copy of the entity with the id as a string: stays a number here.
        let r = apply(
            ws.path(),
            &kind,
            &[put("7", json!({"n": 5, "key": "7"}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.written, ["7"]);
        assert_eq!(
            read_text(&doc),
            "[{\"key\":7,\"n\":5},{\"key\":\"x\",\"n\":2}]"
        );

        // An id field that disagrees with the id writes nothing.
        let s = scan(ws.path(), &kind).unwrap();
        let e = apply(
            ws.path(),
            &kind,
            &[put("y", json!({"n": 1})), put("z", json!({"key": "other"}))],
            &s.fingerprint,
        )
        .unwrap_err();
        assert!(matches!(e, CollectionError::InvalidWrite { .. }), "{e}");
        assert_eq!(
            read_text(&doc),
            "[{\"key\":7,\"n\":5},{\"key\":\"x\",\"n\":2}]"
        );
        // Compact stays compact, the id field is added first.
        apply(
            ws.path(),
            &kind,
            &[put("y", json!({"n": 1}))],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&doc),
            "[{\"key\":7,\"n\":5},{\"key\":\"x\",\"n\":2},{\"key\":\"y\",\"n\":1}]"
        );
    }

    #[test]
    fn file_formatting_is_kept() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("d.json");
        let kind = file_kind("d.json", Some("/items"), "id");
        let cases = [
            // Python's json.dumps without indent.
            (
                "{\"items\": [{\"id\": \"a\", \"v\": 1}], \"n\": 1}",
                "{\"items\": [{\"id\": \"a\", \"v\": 2}, {\"id\": \"b\", \"v\": [1, 2]}], \"n\": 1}",
            ),
            // CRLF and 4 spaces, with a byte order mark.
            (
                "\u{feff}{\r\n    \"items\": [\r\n        {\r\n            \"id\": \"a\",\r\n            \"v\": 1\r\n        }\r\n    ]\r\n}\r\n",
                "\u{feff}{\r\n    \"items\": [\r\n        {\r\n            \"id\": \"a\",\r\n            \"v\": 2\r\n        },\r\n        {\r\n            \"id\": \"b\",\r\n            \"v\": [\r\n                1,\r\n                2\r\n            ]\r\n        }\r\n    ]\r\n}\r\n",
            ),
            // An inline array in a pretty document stays inline.
            (
                "{\n  \"items\": [{\"id\": \"a\", \"v\": 1}],\n  \"n\": 1\n}",
                "{\n  \"items\": [{\"id\": \"a\", \"v\": 2}, {\"id\": \"b\", \"v\": [1, 2]}],\n  \"n\": 1\n}",
            ),
            // Empty inline array in a 4-space document.
            (
                "{\n    \"items\": []\n}\n",
                "{\n    \"items\": [\n        {\n            \"id\": \"b\",\n            \"v\": [\n                1,\n                2\n            ]\n        }\n    ]\n}\n",
            ),
        ];
        for (before, want) in cases {
            write_text(&doc, before);
            let s = scan(ws.path(), &kind).unwrap();
            assert!(s.problems.is_empty(), "{before}: {:?}", s.problems);
            let writes: Vec<Write> = if s.entities.contains_key("a") {
                vec![
                    put("a", json!({"id": "a", "v": 2})),
                    put("b", json!({"id": "b", "v": [1, 2]})),
                ]
            } else {
                vec![put("b", json!({"id": "b", "v": [1, 2]}))]
            };
            apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
            assert_eq!(read_text(&doc), want);
            let s = scan(ws.path(), &kind).unwrap();
            assert_eq!(s.entities["b"], json!({"id": "b", "v": [1, 2]}));
        }
    }

    #[test]
    fn file_unchanged_writes_leave_the_document_alone() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("main.json");
        write_text(&doc, MAIN);
        let kind = file_kind("main.json", Some("/task/entities"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        // Same content in another key order: nothing to write.
        let r = apply(
            ws.path(),
            &kind,
            &[
                put("t2", json!({"title": "second", "id": "t2"})),
                del("nope"),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(r.written, ["t2"]);
        assert_eq!(r.fingerprint, s.fingerprint);
        assert_eq!(read_text(&doc), MAIN);
    }

    #[cfg(unix)]
    #[test]
    fn writes_keep_permissions_and_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let ws = tempfile::tempdir().unwrap();
        let real = ws.path().join("real.json");
        write_text(&real, "{\"a\": {}}");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("real.json", ws.path().join("link.json")).unwrap();
        let kind = file_kind("link.json", None, "id");
        let s = scan(ws.path(), &kind).unwrap();
        apply(ws.path(), &kind, &[put("b", json!({}))], &s.fingerprint).unwrap();
        assert!(
            fs::symlink_metadata(ws.path().join("link.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(read_text(&real), "{\"a\": {}, \"b\": {}}");
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn escaped_keys_and_pointer_tokens() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("e.json");
        let text = "{\"a/b\": {\"q\\\"k\": {\"n\": 1}, \"caf\\u00e9\": {\"n\": 2}}}";
        write_text(&doc, text);
        let kind = file_kind("e.json", Some("/a~1b"), "id");
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["caf\u{e9}", "q\"k"]);
        apply(
            ws.path(),
            &kind,
            &[
                put("q\"k", json!({"n": 3})),
                del("caf\u{e9}"),
                put("\n", json!({})),
            ],
            &s.fingerprint,
        )
        .unwrap();
        assert_eq!(
            read_text(&doc),
            "{\"a/b\": {\"q\\\"k\": {\"n\": 3}, \"\\n\": {}}}"
        );
    }

    #[test]
    fn a_folder_named_like_an_entity_is_held() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("tasks/x.json")).unwrap();
        let kind = dir_kind("tasks");
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.entities.is_empty());
        assert_eq!(s.held.iter().collect::<Vec<_>>(), ["x"]);
        let r = apply(ws.path(), &kind, &[del("x")], &s.fingerprint).unwrap();
        assert_eq!(r.skipped, ["x"]);
        assert!(ws.path().join("tasks/x.json").is_dir());
    }

    // ---------------------------------------------------------------- properties

    /// A random batch over a few ids, against a model.
    fn batch() -> impl Strategy<Value = Vec<(u8, Option<u8>)>> {
        proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 0..8)
    }

    fn model_writes(batch: &[(u8, Option<u8>)], id_field: Option<&str>) -> Vec<Write> {
        let mut seen = BTreeSet::new();
        batch
            .iter()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(id, v)| {
                let id = format!("e{id}");
                match v {
                    Some(v) => {
                        let mut value = json!({"v": v, "nested": {"k": [v]}});
                        if let Some(f) = id_field {
                            value[f] = json!(id);
                        }
                        put(&id, value)
                    }
                    None => del(&id),
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn batches_match_a_model(
            shape in 0usize..4,
            batches in proptest::collection::vec(batch(), 1..5),
        ) {
            let ws = tempfile::tempdir().unwrap();
            let (kind, start, id_field): (CollectionKind, Option<&str>, Option<&str>) = match shape {
                0 => (dir_kind("d"), None, None),
                1 => (file_kind("a.json", None, "id"), Some("[]"), Some("id")),
                2 => (file_kind("m.json", Some("/x/entities"), "id"), Some("{\n    \"x\": {\"keep\": 1.50},\n    \"y\": [1,2]\n}"), None),
                _ => (file_kind("c.json", Some("/x"), "uid"), Some("{\"y\":1e3,\"x\":[]}"), Some("uid")),
            };
            if let (CollectionKind::File { path, .. }, Some(text)) = (&kind, start) {
                write_text(&ws.path().join(path), text);
            }
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for b in &batches {
                let s = scan(ws.path(), &kind).unwrap();
                prop_assert!(s.problems.is_empty(), "{:?}", s.problems);
                let writes = model_writes(b, id_field);
                let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
                prop_assert!(r.skipped.is_empty());
                for w in &writes {
                    match w {
                        Write::Put { id, value } => { model.insert(id.clone(), content_hash(value)); }
                        Write::Delete { id } => { model.remove(id); }
                    }
                }
                let s = scan(ws.path(), &kind).unwrap();
                let got: BTreeMap<String, String> =
                    s.entities.iter().map(|(k, v)| (k.clone(), content_hash(v))).collect();
                prop_assert_eq!(&got, &model);
                prop_assert_eq!(&s.fingerprint, &r.fingerprint);
            }
            // The rest of the document survives, spellings included.
            if shape == 2 {
                let text = read_text(&ws.path().join("m.json"));
                prop_assert!(text.contains("\"keep\": 1.50"), "{}", text);
                prop_assert!(text.ends_with("},\n    \"y\": [1,2]\n}"), "{}", text);
            }
            if shape == 3 {
                let kept = read_text(&ws.path().join("c.json")).starts_with(r#"{"y":1e3,"x":["#);
                prop_assert!(kept);
            }
        }
    }
}
