//! A new `dir` collection written whole (a new device's bootstrap): every file goes into a
//! staging folder beside the collection's, all of them are made durable at once, and the
//! staging folder is moved into place by one rename. No temporary file and no rename per
//! file, and a bootstrap stopped anywhere before the move leaves the collection untouched.

use super::*;

/// What the names of staging folders have after `.<collection folder's name>`.
const STAGING_MARK: &str = ".deltasync-boot-";

/// Length of the random part that ends a staging folder's name.
const STAGING_SUFFIX_LEN: usize = 10;

/// A `dir` collection being written whole into a staging folder ([`stage`]), moved into place
/// by [`Staged::finish`]. Dropped unfinished (an error on the way), the staging folder is
/// removed; left by a killed process, the next [`stage`] of the collection removes it.
#[derive(Debug)]
pub struct Staged {
    /// The collection's folder.
    folder: PathBuf,
    /// The staging folder, beside it.
    staging: PathBuf,
    /// The ids written into the staging folder, in order.
    ids: Vec<String>,
    /// Whether the staging folder is gone (moved into place or emptied).
    done: bool,
}

/// What became of one entity written into a staging folder.
#[derive(Debug)]
pub enum Staging {
    /// Its file is in the staging folder.
    Written,
    /// It cannot be a file of this collection (its id, its value): held, the rest goes on.
    Refused(Refusal),
    /// Another id of this bootstrap already has that file name (ids that differ only in case,
    /// on a disk that does not tell them apart): not written now, planned again next sync.
    Skipped,
}

/// Starts writing the `dir` collection `kind` whole, through a staging folder, when nothing is
/// in the way: its scan (`expected`) found no file and its folder is absent or an empty
/// folder. `None` otherwise (files are then written one by one, [`apply`]).
///
/// The remains of an earlier staging of this collection (a process killed before the move)
/// are removed first: the caller holds the workspace's lease, so no other process is writing
/// them.
pub fn stage(
    workspace: &Path,
    kind: &CollectionKind,
    expected: &Fingerprint,
) -> Result<Option<Staged>, CollectionError> {
    let (CollectionKind::Dir { path }, Fingerprint::Dir { files, held }) = (kind, expected) else {
        return Ok(None);
    };
    if !files.is_empty() || !held.is_empty() {
        return Ok(None);
    }
    let folder = resolve(workspace, path)?;
    let (Some(parent), Some(name)) = (
        folder.parent().map(Path::to_path_buf),
        folder
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned),
    ) else {
        return Ok(None);
    };
    if parent.as_os_str().is_empty()
        || !path.components().any(|c| matches!(c, Component::Normal(_)))
    {
        return Ok(None);
    }
    match fs::symlink_metadata(&folder) {
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(&folder).map_err(|e| io_err("list", &folder, e))?;
            if entries.next().is_some() {
                return Ok(None);
            }
        }
        // A link, a file: written one by one, as ever.
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read metadata of", &folder, e)),
    }
    fs::create_dir_all(&parent).map_err(|e| io_err("create folder", &parent, e))?;
    remove_leftovers(&parent, &name);
    let prefix = format!(".{name}{STAGING_MARK}");
    let mut attempt = 0;
    let staging = loop {
        let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(STAGING_SUFFIX_LEN)
            .collect();
        let staging = parent.join(format!("{prefix}{suffix}"));
        match fs::create_dir(&staging) {
            Ok(()) => break staging,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(io_err("create folder", &staging, e)),
        }
    };
    Ok(Some(Staged {
        folder,
        staging,
        ids: Vec::new(),
        done: false,
    }))
}

/// Removes the staging folders of the collection folder `name` in `parent` (best effort:
/// what cannot be removed is logged and left).
fn remove_leftovers(parent: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}{STAGING_MARK}");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let ours = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .is_some_and(|r| {
                r.len() == STAGING_SUFFIX_LEN && r.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        // The folder itself, never what a link points to.
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        match fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!(
                folder = %path.display(),
                "removed the staging folder of an interrupted bootstrap"
            ),
            Err(e) => tracing::warn!(
                folder = %path.display(),
                error = %e,
                "cannot remove the staging folder of an interrupted bootstrap"
            ),
        }
    }
}

impl Staged {
    /// Writes entity `id` into the staging folder, as [`apply`] would write a new file.
    /// Errors are the disk's (the whole staging is then abandoned); what only this entity
    /// cannot be comes back as [`Staging::Refused`].
    pub fn write(&mut self, id: &str, value: &Value) -> Result<Staging, CollectionError> {
        let target = match ids::entity_path(&self.staging, id) {
            Ok(p) => p,
            Err(source) => {
                return Ok(Staging::Refused(Refusal::FileName {
                    id: id.to_owned(),
                    source,
                }));
            }
        };
        if let Err(why) = limits::check_value(id, value, 0) {
            return Ok(Staging::Refused(why));
        }
        let bytes = dir::render_file(value, None);
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Staging::Skipped),
            Err(e) => return Err(io_err("create", &target, e)),
        };
        f.write_all(&bytes)
            .map_err(|e| io_err("write", &target, e))?;
        // Linux makes them all durable at once ([`Staged::finish`]); elsewhere one by one.
        if !cfg!(target_os = "linux") {
            f.sync_all().map_err(|e| io_err("write", &target, e))?;
        }
        self.ids.push(id.to_owned());
        Ok(Staging::Written)
    }

    /// Makes every file written durable, then moves the staging folder into place: one rename,
    /// which replaces the collection's folder only if it is (still) an empty folder. Should
    /// something have appeared in it meanwhile, each file is moved on its own, never over a
    /// file that is there. Returns the ids whose file was not moved (a file of the app's is
    /// in the way: planned again next sync).
    pub fn finish(mut self) -> Result<BTreeSet<String>, CollectionError> {
        self.make_durable()?;
        let parent = self.folder.parent().unwrap_or(&self.folder).to_owned();
        // POSIX rename replaces an empty folder, never one with something in it, nor a file.
        if fs::rename(&self.staging, &self.folder).is_ok() {
            self.done = true;
            atomic::sync_dir(&parent);
            return Ok(BTreeSet::new());
        }
        tracing::debug!(
            folder = %self.folder.display(),
            "the collection's folder is no longer empty: moving the bootstrap's files one by one"
        );
        fs::create_dir_all(&self.folder).map_err(|e| io_err("create folder", &self.folder, e))?;
        let mut skipped = BTreeSet::new();
        for id in &self.ids {
            let (Ok(tmp), Ok(dest)) = (
                ids::entity_path(&self.staging, id),
                ids::entity_path(&self.folder, id),
            ) else {
                continue;
            };
            if !atomic::install(&tmp, &dest, true, || Ok(true))? {
                skipped.insert(id.clone());
            }
        }
        atomic::sync_dir(&self.folder);
        let _ = fs::remove_dir(&self.staging);
        self.done = true;
        Ok(skipped)
    }
}

impl Staged {
    /// Makes the files written and their folder durable: on Linux one `syncfs` (one flush of
    /// the file system instead of one per file), or, should it fail, an fsync per file;
    /// elsewhere each file was flushed as it was written.
    fn make_durable(&self) -> Result<(), CollectionError> {
        #[cfg(target_os = "linux")]
        {
            let synced = fs::File::open(&self.staging)
                .and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
            match synced {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(error = %e, "syncfs failed; flushing file by file"),
            }
            for id in &self.ids {
                if let Ok(file) = ids::entity_path(&self.staging, id) {
                    fs::File::open(&file)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| io_err("write", &file, e))?;
                }
            }
        }
        atomic::sync_dir(&self.staging);
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
