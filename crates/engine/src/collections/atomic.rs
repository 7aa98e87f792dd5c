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
