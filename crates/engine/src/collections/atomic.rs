use super::*;

/// What every temporary file of ours has in its name, after `.<base>`.
const TEMP_MARK: &str = ".deltasync-tmp-";

/// Length of the random part that ends a temporary file's name.
const TEMP_SUFFIX_LEN: usize = 10;

/// The start of the names of the temporary files written for a file named `base`:
/// `.<base>.deltasync-tmp-`, `base` cut to keep the name within file name limits.
fn temp_prefix(base: &str) -> String {
    let mut cut = base.len().min(120);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}{TEMP_MARK}", &base[..cut])
}

/// Writes `bytes` to a new temporary file `.<base>.deltasync-tmp-<rand>` in `dir`, flushed to
/// disk, with `perms` when given (those of the file it will replace).
pub(super) fn write_temp(
    dir: &Path,
    base: &str,
    bytes: &[u8],
    perms: Option<fs::Permissions>,
) -> Result<PathBuf, CollectionError> {
    write_temp_as(dir, base, bytes, perms, true)
}

/// [`write_temp`], flushed to disk only if `durable`: a batch of temporary files is made
/// durable at once by [`make_durable`] before any of them is installed.
pub(super) fn write_temp_as(
    dir: &Path,
    base: &str,
    bytes: &[u8],
    perms: Option<fs::Permissions>,
    durable: bool,
) -> Result<PathBuf, CollectionError> {
    let prefix = temp_prefix(base);
    let mut attempt = 0;
    loop {
        let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(TEMP_SUFFIX_LEN)
            .collect();
        let tmp = dir.join(format!("{prefix}{suffix}"));
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
            if durable { f.sync_all() } else { Ok(()) }
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
        // One call where the file system can: a rename that refuses to replace a file.
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(true),
                Err(rustix::io::Errno::EXIST) => return Ok(false),
                // Not supported here (an older kernel, some file systems): as elsewhere.
                Err(_) => {}
            }
        }
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

/// Makes the temporary files `temps` (written by [`write_temp_as`] without flushing) durable:
/// on Linux one `syncfs` per file system (the folder's), which flushes them all with one
/// journal commit instead of one per file; elsewhere, or should `syncfs` fail, an fsync each.
pub(super) fn make_durable(folder: &Path, temps: &[PathBuf]) -> Result<(), CollectionError> {
    #[cfg(target_os = "linux")]
    {
        let synced =
            fs::File::open(folder).and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
        match synced {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!(error = %e, "syncfs failed; flushing file by file"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = folder;
    for tmp in temps {
        fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err("write", tmp, e))?;
    }
    Ok(())
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

/// Whether `name` is one of our temporary files, for a file named `base` (`None`: any).
pub(super) fn is_our_temp(name: &str, base: Option<&str>) -> bool {
    let rest = match base {
        Some(base) => name.strip_prefix(temp_prefix(base).as_str()),
        None => name
            .strip_prefix('.')
            .and_then(|n| n.rfind(TEMP_MARK).map(|i| &n[i + TEMP_MARK.len()..])),
    };
    rest.is_some_and(|r| r.len() == TEMP_SUFFIX_LEN && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Removes the temporary files of ours in `dir` (those for a file named `base`, or all with
/// `None`) that are older than [`super::STALE_TEMP_AGE`]: left by a process killed while
/// writing. A younger one may belong to a write in progress and is left alone. Best effort:
/// what cannot be removed is logged and left.
pub(super) fn remove_stale_temps(dir: &Path, base: Option<&str>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(name) = entry.file_name().to_str()
            && is_our_temp(name, base)
        {
            remove_if_stale(&entry);
        }
    }
}

/// Removes `entry`, one of our temporary files, if it is a file older than
/// [`super::STALE_TEMP_AGE`].
pub(super) fn remove_if_stale(entry: &fs::DirEntry) {
    // The entry itself, not what a link points to.
    let Ok(meta) = entry.metadata() else {
        return;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    if !meta.is_file() || age.is_none_or(|a| a < super::STALE_TEMP_AGE) {
        return;
    }
    let path = entry.path();
    match fs::remove_file(&path) {
        Ok(()) => tracing::info!(
            file = %path.display(),
            "removed a temporary file left by an interrupted write"
        ),
        Err(e) => tracing::debug!(
            file = %path.display(),
            error = %e,
            "cannot remove a stale temporary file"
        ),
    }
}
