//! The local-folder backend.
//!
//! Files are written atomically (temp file in the same folder, fsync, rename, fsync of the
//! folder). `CreateOnly` hard-links the temp file to the target, which the file system refuses
//! atomically when the target exists. `UpdateIfMatch`, `Overwrite` and `delete` hold an advisory
//! exclusive lock on `.deltasync-remote.lock` in the root across read-compare-rename, so several
//! processes on one machine (or several [`LocalFolder`] values in one process) never both win.

use crate::{
    Capabilities, CasClass, Etag, GetResult, ObjectInfo, PathError, PutMode, Remote, RemoteError,
    check_path,
};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The lock file in the root, held during conditional writes and deletes.
const LOCK_FILE: &str = ".deltasync-remote.lock";
/// Marks temporary files: `.<name>.tmp-<random>`.
const TMP_MARK: &str = ".tmp-";

/// A remote in a folder on this machine (or a mounted share that supports hard links and
/// advisory locks).
///
/// ETags are the SHA-256 of the content, in hex: they change whenever the content changes, and
/// a rewrite with the same content keeps its ETag. `list` gives no ETags (that would mean
/// reading every file); `head` and `get` do.
///
/// Names starting with `.` and containing `.tmp-` are this backend's temporary files, and
/// `.deltasync-remote.lock` in the root is its lock file: both are hidden from `list` and refused
/// as paths.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    /// Opens the folder `root`, creating it (and its parents) if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, RemoteError> {
        let root = root.into();
        let text = root.to_string_lossy();
        let refuse = |detail: String| RemoteError::Permanent {
            what: format!("remote '{text}'"),
            detail,
        };
        if text.trim().is_empty() {
            return Err(refuse(
                "no remote given: name a folder (e.g. ~/Sync/deltasync) or a URL (https://…, \
                 nextcloud://user@host/folder)"
                    .into(),
            ));
        }
        // `https//host/x`, `nextcloud:/host`: a URL with a typo, not a folder to create here.
        let first = text.split('/').next().unwrap_or_default();
        let scheme_like = [
            "http",
            "https",
            "nextcloud",
            "nextcloud+http",
            "file",
            "webdav",
        ]
        .iter()
        .any(|s| first.eq_ignore_ascii_case(s) || first.eq_ignore_ascii_case(&format!("{s}:")));
        if scheme_like && !text.contains("://") {
            return Err(refuse(
                "this looks like a URL with a typo (a scheme needs '://', as in \
                 https://host/folder); a folder of that name is not created"
                    .into(),
            ));
        }
        if root.exists() && !root.is_dir() {
            return Err(refuse(
                "it is a file, not a folder: give the folder that holds (or will hold) the \
                 remote's meta.json"
                    .into(),
            ));
        }
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(LocalFolder { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local path of a remote path, after checking it. `allow_root`: the empty path is the
    /// root (for `list`).
    fn resolve(&self, path: &str, allow_root: bool) -> Result<PathBuf, RemoteError> {
        check_path(path)?;
        let bad = |reason| {
            Err(RemoteError::BadPath(PathError {
                path: path.escape_debug().to_string(),
                reason,
            }))
        };
        if path.is_empty() {
            return if allow_root {
                Ok(self.root.clone())
            } else {
                bad("empty path (the root) where a file path is needed")
            };
        }
        if path == LOCK_FILE {
            return bad("reserved for the local-folder backend's lock");
        }
        let mut local = self.root.clone();
        for segment in path.split('/') {
            if is_temp_name(segment) {
                return bad("reserved for the local-folder backend's temporary files");
            }
            // `check_path` already refuses what escapes the root on Unix; this also refuses
            // what another platform would read as a prefix or a root (`C:`).
            let mut components = Path::new(segment).components();
            if !matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(_)), None)
            ) {
                return bad("not a plain file name on this system");
            }
            local.push(segment);
        }
        Ok(local)
    }

    /// Takes the root's exclusive lock; released when the returned file is dropped.
    fn lock(&self) -> Result<File, RemoteError> {
        let path = self.root.join(LOCK_FILE);
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The root was removed behind our back: recreate it, as `new` would.
                fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
                open()
            }
            other => other,
        }
        .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(file)
    }
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARK)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RemoteError + '_ {
    move |source| RemoteError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether an error means "nothing there" (missing, or a parent is a file).
fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn etag_of(body: &[u8]) -> Etag {
    Etag(hex::encode(Sha256::digest(body)))
}

fn modified_ms(meta: &fs::Metadata) -> Option<u64> {
    let since = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// Reads a file; `None` when missing.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, RemoteError> {
    match fs::read(path) {
        Ok(body) => Ok(Some(body)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Makes a rename or link in `dir` durable. Some file systems cannot sync a folder; that is
/// not an error.
fn sync_dir(dir: &Path) -> Result<(), RemoteError> {
    #[cfg(unix)]
    {
        let synced = File::open(dir).and_then(|d| d.sync_all());
        match synced {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot sync folder");
            }
            Err(e) => return Err(io_err(dir)(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A temporary file next to its target, removed on drop unless renamed.
struct TempFile {
    path: PathBuf,
    renamed: bool,
}

impl TempFile {
    /// Creates `.<name>.tmp-<random>` in `dir` with `body`, synced to disk.
    fn write(dir: &Path, name: &str, body: &[u8]) -> Result<TempFile, RemoteError> {
        loop {
            let path = dir.join(format!(".{name}{TMP_MARK}{:016x}", fastrand::u64(..)));
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            let temp = TempFile {
                path,
                renamed: false,
            };
            file.write_all(body)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&temp.path))?;
            return Ok(temp);
        }
    }

    fn rename_to(mut self, target: &Path) -> Result<(), RemoteError> {
        fs::rename(&self.path, target).map_err(io_err(target))?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary file");
        }
    }
}

impl LocalFolder {
    fn put_create_only(
        &self,
        path: &str,
        temp: TempFile,
        target: &Path,
    ) -> Result<(), RemoteError> {
        let failed = || RemoteError::PreconditionFailed {
            path: path.to_string(),
        };
        match fs::hard_link(&temp.path, target) {
            // The temp file is removed on drop; the target keeps the content.
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(failed()),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::PermissionDenied
                ) =>
            {
                // No hard links here (FAT, some shares): check and rename under the lock.
                tracing::debug!(error = %e, "hard link refused; creating under the lock");
                let _lock = self.lock()?;
                match fs::symlink_metadata(target) {
                    Ok(_) => return Err(failed()),
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(io_err(target)(e)),
                }
                temp.rename_to(target)
            }
            Err(e) => Err(io_err(target)(e)),
        }
    }
}

impl LocalFolder {
    fn put_once(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<Option<Etag>, RemoteError> {
        let target = self.resolve(path, false)?;
        let (Some(dir), Some(name)) = (target.parent(), path.rsplit('/').next()) else {
            unreachable!("a resolved non-empty path has a parent and a name");
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let temp = TempFile::write(dir, name, body)?;
        match mode {
            PutMode::CreateOnly => self.put_create_only(path, temp, &target)?,
            PutMode::UpdateIfMatch(expected) => {
                let _lock = self.lock()?;
                let current = read_file(&target).or_else(|e| match e {
                    // A folder has no ETag: the precondition fails.
                    RemoteError::Io { ref source, .. }
                        if source.kind() == ErrorKind::IsADirectory =>
                    {
                        Ok(None)
                    }
                    e => Err(e),
                })?;
                if current.map(|c| etag_of(&c)).as_ref() != Some(expected) {
                    return Err(RemoteError::PreconditionFailed {
                        path: path.to_string(),
                    });
                }
                temp.rename_to(&target)?;
            }
            PutMode::Overwrite => {
                let _lock = self.lock()?;
                temp.rename_to(&target)?;
            }
        }
        sync_dir(dir)?;
        Ok(Some(etag_of(body)))
    }
}

impl Remote for LocalFolder {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        let local = self.resolve(path, false)?;
        let Some(body) = read_file(&local)? else {
            return Ok(GetResult::NotFound);
        };
        let etag = etag_of(&body);
        if if_none_match == Some(&etag) {
            return Ok(GetResult::NotModified);
        }
        Ok(GetResult::Found {
            body,
            etag: Some(etag),
        })
    }

    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        let local = self.resolve(path, false)?;
        if std::fs::metadata(&local).is_ok_and(|m| m.is_file() && m.len() > max_len) {
            return Err(RemoteError::TooLarge {
                path: path.to_string(),
                limit: max_len,
            });
        }
        self.get(path, if_none_match)
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        // A folder removed between creating it and writing into it (a compaction deleting a
        // folded generation's folder while a slow writer creates a delta there): again.
        let mut attempts = 0;
        loop {
            match self.put_once(path, body, mode) {
                Err(RemoteError::Io { ref source, .. }) if is_missing(source) && attempts < 3 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        let local = self.resolve(path, false)?;
        let meta = match fs::metadata(&local) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(io_err(&local)(e)),
        };
        if meta.is_dir() {
            return Ok(Some(ObjectInfo {
                name: path.to_string(),
                size: 0,
                etag: None,
                is_dir: true,
                modified_ms: modified_ms(&meta),
            }));
        }
        // Size and ETag from one read, so they agree even if the file is replaced meanwhile.
        let Some(body) = read_file(&local)? else {
            return Ok(None);
        };
        Ok(Some(ObjectInfo {
            name: path.to_string(),
            size: u64::try_from(body.len()).unwrap_or(u64::MAX),
            etag: Some(etag_of(&body)),
            is_dir: false,
            modified_ms: modified_ms(&meta),
        }))
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        let local = self.resolve(dir, true)?;
        let entries = match fs::read_dir(&local) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&local)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&local))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(path = %entry.path().display(), "skipping a name that is not UTF-8");
                continue;
            };
            if is_temp_name(&name) || (dir.is_empty() && name == LOCK_FILE) {
                continue;
            }
            // Follows symbolic links; one that leads nowhere (or a file removed since
            // `read_dir`) is skipped.
            let meta = match fs::metadata(entry.path()) {
                Ok(meta) => meta,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(io_err(&entry.path())(e)),
            };
            out.push(ObjectInfo {
                name,
                size: if meta.is_dir() { 0 } else { meta.len() },
                etag: None,
                is_dir: meta.is_dir(),
                modified_ms: modified_ms(&meta),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        let local = self.resolve(path, false)?;
        let _lock = self.lock()?;
        let removed = match fs::symlink_metadata(&local) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&local),
            Ok(_) => fs::remove_file(&local),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => {}
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(io_err(&local)(e)),
        }
        if let Some(parent) = local.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            cas: CasClass::Atomic,
            conditional_get: true,
            recursive_delete: true,
            weak_window_ms: 0,
            stale_etags: false,
            networked: false,
            retries_reads: false,
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
