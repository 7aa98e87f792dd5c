//! A new `dir` collection written whole (a new device's bootstrap): every file goes into a
//! staging folder beside the collection's, all of them are made durable at once, and the
//! staging folder is moved into place by one rename. No temporary file and no rename per
//! file, and a bootstrap stopped anywhere before the move leaves the collection untouched.
//! The entities come as the JSON text the state database holds; a thread of their own parses,
//! checks, renders and creates the files while the caller goes on (with its state database,
//! say): on a disk, creating a file is kernel work as long as the rest.

use std::sync::mpsc;
use std::thread::JoinHandle;

use super::*;

/// How many entities go to the writer thread at once (one wake-up per batch, not per file).
const BATCH: usize = 128;

/// How many batches may wait for the writer thread.
const QUEUE: usize = 4;

/// An entity for the writer thread: id, path in the staging folder, its JSON text.
type Job = (String, PathBuf, String);

/// What the writer thread did: the ids whose file name was taken already, the entities it
/// refused, and the first error, after which it wrote nothing more.
#[derive(Default)]
struct Written {
    taken: BTreeSet<String>,
    refused: Vec<Refusal>,
    error: Option<CollectionError>,
}

/// The thread that creates the staged files, in the order given.
#[derive(Debug)]
struct Writer {
    jobs: Option<mpsc::SyncSender<Vec<Job>>>,
    /// The batch being filled.
    batch: Vec<Job>,
    thread: Option<JoinHandle<Written>>,
}

impl Writer {
    fn start() -> Result<Writer, CollectionError> {
        let (jobs, queue) = mpsc::sync_channel::<Vec<Job>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("deltasync-staged-writer".into())
            .spawn(move || {
                let mut done = Written::default();
                for (id, target, text) in queue.into_iter().flatten() {
                    if done.error.is_some() {
                        continue;
                    }
                    let value: Value = match deltasync_meta::parse_deep(text.as_bytes()) {
                        Ok(v) => v,
                        Err(e) => {
                            done.error = Some(io_err("write", &target, io::Error::other(e)));
                            continue;
                        }
                    };
                    if let Err(why) = limits::check_value(&id, &value, 0) {
                        done.refused.push(why);
                        continue;
                    }
                    match create(&target, &dir::render_file(&value, None)) {
                        Ok(true) => {}
                        Ok(false) => {
                            done.taken.insert(id);
                        }
                        Err(e) => done.error = Some(e),
                    }
                }
                done
            })
            .map_err(|e| {
                io_err(
                    "start a thread to write",
                    Path::new("the staging folder"),
                    e,
                )
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            batch: Vec::with_capacity(BATCH),
            thread: Some(thread),
        })
    }

    /// Hands one file over (with the next ones, a batch at a time); `false` if the thread is
    /// gone (it panicked).
    fn send(&mut self, job: Job) -> bool {
        self.batch.push(job);
        self.batch.len() < BATCH || self.flush()
    }

    /// Hands the batch being filled over.
    fn flush(&mut self) -> bool {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        batch.is_empty() || self.jobs.as_ref().is_some_and(|j| j.send(batch).is_ok())
    }

    /// Waits for every file handed over; what the thread did.
    fn join(&mut self) -> Written {
        self.flush();
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            Some(Err(_)) => Written {
                error: Some(io_err(
                    "write",
                    Path::new("the staging folder"),
                    io::Error::other("the writer thread panicked"),
                )),
                ..Written::default()
            },
            None => Written::default(),
        }
    }
}

/// Creates `target` (only if no file is there: `Ok(false)` otherwise) holding `bytes`; on
/// Linux not flushed ([`Staged::finish`] makes them all durable at once).
fn create(target: &Path, bytes: &[u8]) -> Result<bool, CollectionError> {
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err("create", target, e)),
    };
    f.write_all(bytes).map_err(|e| io_err("write", target, e))?;
    if !cfg!(target_os = "linux") {
        f.sync_all().map_err(|e| io_err("write", target, e))?;
    }
    Ok(true)
}

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
    /// The ids handed to the writer, in order.
    ids: Vec<String>,
    /// Entities refused before they reached the writer (their id).
    refused: Vec<Refusal>,
    /// The thread creating the files.
    writer: Writer,
    /// Whether the staging folder is gone (moved into place or emptied).
    done: bool,
}

/// What [`Staged::finish`] did not put into the collection, every other entity handed over
/// being there.
#[derive(Debug, Default)]
pub struct NotStaged {
    /// Entities that cannot be a file of this collection (their id, their value): held, the
    /// rest went on.
    pub refused: Vec<Refusal>,
    /// Entities whose file is not in the collection: a file of the app's is in the way, or
    /// another id of this bootstrap has that file name (ids that differ only in case, on a
    /// disk that does not tell them apart) — planned again next sync.
    pub deferred: BTreeSet<String>,
}

impl NotStaged {
    /// The ids of every entity not put into the collection.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.refused
            .iter()
            .map(Refusal::id)
            .chain(self.deferred.iter().map(String::as_str))
    }
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
    let writer = match Writer::start() {
        Ok(w) => w,
        Err(e) => {
            let _ = fs::remove_dir(&staging);
            return Err(e);
        }
    };
    Ok(Some(Staged {
        folder,
        staging,
        ids: Vec::new(),
        refused: Vec::new(),
        writer,
        done: false,
    }))
}

/// Removes what a staging of the `dir` collection `kind` left (a process killed before the
/// move). The caller holds the workspace's lease.
pub fn discard_staging(workspace: &Path, kind: &CollectionKind) {
    let CollectionKind::Dir { path } = kind else {
        return;
    };
    if let Ok(folder) = resolve(workspace, path)
        && let (Some(parent), Some(name)) =
            (folder.parent(), folder.file_name().and_then(|n| n.to_str()))
    {
        remove_leftovers(parent, name);
    }
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
    /// The staging folder's name (for logs).
    pub fn name(&self) -> String {
        self.staging
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Hands entity `id`, as JSON text, to the staging folder: the writer thread parses it,
    /// checks it and creates its file as [`apply`] would write a new one. Errors are the
    /// disk's (the whole staging is then abandoned); what only this entity cannot be is in
    /// [`Staged::finish`]'s answer ([`NotStaged::refused`]).
    pub fn write(&mut self, id: &str, json: String) -> Result<(), CollectionError> {
        let target = match ids::entity_path(&self.staging, id) {
            Ok(p) => p,
            Err(source) => {
                self.refused.push(Refusal::FileName {
                    id: id.to_owned(),
                    source,
                });
                return Ok(());
            }
        };
        if !self.writer.send((id.to_owned(), target, json)) {
            // The thread is gone: its error says why.
            return Err(self.writer.join().error.unwrap_or_else(|| {
                io_err(
                    "write",
                    &self.staging,
                    io::Error::other("the writer thread stopped"),
                )
            }));
        }
        self.ids.push(id.to_owned());
        Ok(())
    }

    /// Waits for every file to be written, makes them durable, then moves the staging folder
    /// into place: one rename, which replaces the collection's folder only if it is (still)
    /// an empty folder. Should something have appeared in it meanwhile, each file is moved on
    /// its own, never over a file that is there. Says which entities handed over are not in
    /// the collection.
    pub fn finish(mut self) -> Result<NotStaged, CollectionError> {
        let written = self.writer.join();
        if let Some(e) = written.error {
            return Err(e);
        }
        let mut not = NotStaged {
            refused: std::mem::take(&mut self.refused),
            deferred: written.taken,
        };
        not.refused.extend(written.refused);
        let left_out: BTreeSet<String> = not.ids().map(str::to_owned).collect();
        self.ids.retain(|id| !left_out.contains(id));
        self.make_durable()?;
        let parent = self.folder.parent().unwrap_or(&self.folder).to_owned();
        // POSIX rename replaces an empty folder, never one with something in it, nor a file.
        if fs::rename(&self.staging, &self.folder).is_ok() {
            self.done = true;
            atomic::sync_dir(&parent);
            return Ok(not);
        }
        tracing::debug!(
            folder = %self.folder.display(),
            "the collection's folder is no longer empty: moving the bootstrap's files one by one"
        );
        fs::create_dir_all(&self.folder).map_err(|e| io_err("create folder", &self.folder, e))?;
        for id in &self.ids {
            let (Ok(tmp), Ok(dest)) = (
                ids::entity_path(&self.staging, id),
                ids::entity_path(&self.folder, id),
            ) else {
                continue;
            };
            if !atomic::install(&tmp, &dest, true, || Ok(true))? {
                not.deferred.insert(id.clone());
            }
        }
        atomic::sync_dir(&self.folder);
        let _ = fs::remove_dir(&self.staging);
        self.done = true;
        Ok(not)
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
        // Nothing more is written, and nothing into the folder once it is removed.
        if !self.done {
            self.writer.batch.clear();
        }
        self.writer.join();
        if !self.done {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
