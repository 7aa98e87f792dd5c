//! A new `dir` collection written whole (a new device's bootstrap): every file goes into a
//! staging folder beside the collection's, all of them are made durable at once, and the
//! staging folder is moved into place by one rename. No temporary file and no rename per
//! file, and a bootstrap stopped anywhere before the move leaves the collection untouched.
//! The entities come as the JSON text the state database holds, or parsed (a snapshot being
//! read); the caller checks and renders each, and a thread of their own creates the files and
//! makes them durable while the caller goes on (with its state database, say): on a disk,
//! creating a file is kernel work as long as all the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use super::*;

/// How many entities go to the writer thread at once (one wake-up per batch, not per file).
const BATCH: usize = 128;

/// How many batches may wait for the writer thread.
const QUEUE: usize = 4;

/// An entity's JSON for [`Staged::write`]: the text a state database holds, or a value
/// parsed already (a snapshot being read).
#[derive(Debug)]
pub enum StagedJson {
    /// JSON text, parsed when handed over.
    Text(String),
    /// A parsed value.
    Value(Value),
}

impl From<String> for StagedJson {
    fn from(text: String) -> StagedJson {
        StagedJson::Text(text)
    }
}

impl From<Value> for StagedJson {
    fn from(value: Value) -> StagedJson {
        StagedJson::Value(value)
    }
}

/// What the writer thread is asked to do, in order.
enum Job {
    /// Creates an entity's file in the staging folder (its rendered bytes). `again`: this
    /// id was handed over before, and the file made then is removed first.
    Put {
        id: String,
        target: PathBuf,
        bytes: Vec<u8>,
        again: bool,
    },
    /// Forgets an entity handed over before: its file goes.
    Remove { id: String, target: PathBuf },
}

/// What the writer thread did: the ids whose file name was taken already, whether the files
/// are durable, and the first error, after which it did nothing more.
#[derive(Default)]
struct Written {
    taken: BTreeSet<String>,
    /// Every file is on disk (Linux: one `syncfs` once the queue ended; elsewhere each file
    /// was flushed as it was written). `false`: the caller flushes them one by one.
    durable: bool,
    error: Option<CollectionError>,
}

impl Written {
    /// Creates one entity's file.
    fn put(&mut self, id: String, target: &Path, bytes: &[u8]) {
        match create(target, bytes) {
            Ok(true) => {}
            Ok(false) => {
                self.taken.insert(id);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Undoes what came of an entity handed over before: its file goes, unless the file
    /// name was another's already.
    fn forget(&mut self, id: &str, target: &Path) {
        if self.taken.remove(id) {
            return;
        }
        match fs::remove_file(target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.error = Some(io_err("remove", target, e)),
        }
    }
}

/// The thread that creates the staged files, in the order given, and makes them durable
/// once the queue ends.
#[derive(Debug)]
struct Writer {
    jobs: Option<mpsc::SyncSender<Vec<Job>>>,
    /// The batch being filled.
    batch: Vec<Job>,
    thread: Option<JoinHandle<Written>>,
    /// Set when the staging is abandoned: the thread stops at its next job.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Put { id, .. } => write!(f, "Put({id})"),
            Job::Remove { id, .. } => write!(f, "Remove({id})"),
        }
    }
}

impl Writer {
    fn start(staging: PathBuf) -> Result<Writer, CollectionError> {
        let (jobs, queue) = mpsc::sync_channel::<Vec<Job>>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("deltasync-staged-writer".into())
            .spawn(move || {
                let mut done = Written::default();
                for job in queue.into_iter().flatten() {
                    if stopped.load(Ordering::Relaxed) {
                        return done;
                    }
                    if done.error.is_some() {
                        continue;
                    }
                    match job {
                        Job::Put {
                            id,
                            target,
                            bytes,
                            again,
                        } => {
                            if again {
                                done.forget(&id, &target);
                            }
                            done.put(id, &target, &bytes);
                        }
                        Job::Remove { id, target } => done.forget(&id, &target),
                    }
                }
                // The queue ended: the files are made durable here, while the caller goes
                // on (recording what it wrote, say).
                done.durable = done.error.is_none()
                    && !stopped.load(Ordering::Relaxed)
                    && sync_all_at_once(&staging);
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
            stop,
        })
    }

    /// Hands one job over (with the next ones, a batch at a time); `false` if the thread is
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

    /// Whether the queue ended ([`Writer::close`]): nothing more can be handed over.
    fn closed(&self) -> bool {
        self.jobs.is_none()
    }

    /// Ends the queue: the thread finishes it, then makes the files durable.
    fn close(&mut self) {
        self.flush();
        self.jobs = None;
    }

    /// Waits for every job handed over; what the thread did.
    fn join(&mut self) -> Written {
        self.close();
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

/// Makes every file of the file system holding `folder` durable with one `syncfs` (Linux);
/// `false` where that is not done (the files were then flushed one by one as they were
/// written, elsewhere) or failed.
fn sync_all_at_once(folder: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        match fs::File::open(folder).and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from)) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "syncfs failed; flushing file by file");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = folder;
        true
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
    /// The entities handed over ([`Staged::offer`], [`Staged::write`]), refused ones too.
    handed: HashMap<String, Handed>,
    /// Entities refused before they reached the writer (their id).
    refused: Vec<Refusal>,
    /// The thread creating the files.
    writer: Writer,
    /// Whether the staging folder is gone (moved into place or emptied).
    done: bool,
}

/// An entity handed over to a staging.
#[derive(Debug, Clone, Copy)]
struct Handed {
    /// The version whose content it was.
    version: u64,
    /// Written for good ([`Staged::write`]), not just offered.
    confirmed: bool,
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
    let writer = match Writer::start(staging.clone()) {
        Ok(w) => w,
        Err(e) => {
            let _ = fs::remove_dir(&staging);
            return Err(e);
        }
    };
    Ok(Some(Staged {
        folder,
        staging,
        handed: HashMap::new(),
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

    /// Hands entity `id` at `version` over to the staging folder: it is parsed (when text),
    /// checked and rendered here, and the writer thread creates its file as [`apply`] would
    /// write a new one. An entity handed over before at this version is left as it is; at
    /// another, its file is replaced. Errors are the disk's, or text that is not JSON (the
    /// whole staging is then abandoned); what only this entity cannot be is in
    /// [`Staged::finish`]'s answer ([`NotStaged::refused`]).
    pub fn write(
        &mut self,
        id: &str,
        version: u64,
        json: impl Into<StagedJson>,
    ) -> Result<(), CollectionError> {
        self.hand(id, version, true, json.into())
    }

    /// Hands entity `id` at `version` over ahead of time (a snapshot being read, before the
    /// sync decided what to write): as [`Staged::write`], but its file is removed when the
    /// queue ends ([`Staged::close`]) unless a [`Staged::write`] of the same version
    /// confirmed it. Its JSON is then not asked for twice.
    pub fn offer(
        &mut self,
        id: &str,
        version: u64,
        json: impl Into<StagedJson>,
    ) -> Result<(), CollectionError> {
        self.hand(id, version, false, json.into())
    }

    fn hand(
        &mut self,
        id: &str,
        version: u64,
        confirmed: bool,
        json: StagedJson,
    ) -> Result<(), CollectionError> {
        if self.writer.closed() {
            return Err(io_err(
                "write",
                &self.staging,
                io::Error::other("an entity handed over after the staging was closed"),
            ));
        }
        let handed = Handed { version, confirmed };
        let again = match self.handed.get_mut(id) {
            Some(h) if h.version == version => {
                h.confirmed |= confirmed;
                return Ok(());
            }
            Some(h) => {
                *h = handed;
                true
            }
            None => {
                self.handed.insert(id.to_owned(), handed);
                false
            }
        };
        if again {
            self.refused.retain(|r| r.id() != id);
        }
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
        // Parsed, checked and rendered here: the writer thread's time is the disk's.
        let value = match json {
            StagedJson::Value(v) => v,
            StagedJson::Text(text) => deltasync_meta::parse_deep(text.as_bytes())
                .map_err(|e| io_err("write", &target, io::Error::other(e)))?,
        };
        if let Err(why) = limits::check_value(id, &value, 0) {
            self.refused.push(why);
            // A file of an earlier version goes.
            return if again {
                self.send(Job::Remove {
                    id: id.to_owned(),
                    target,
                })
            } else {
                Ok(())
            };
        }
        self.send(Job::Put {
            id: id.to_owned(),
            target,
            bytes: dir::render_file(&value, None),
            again,
        })
    }

    fn send(&mut self, job: Job) -> Result<(), CollectionError> {
        if self.writer.send(job) {
            return Ok(());
        }
        // The thread is gone: its error says why.
        Err(self.writer.join().error.unwrap_or_else(|| {
            io_err(
                "write",
                &self.staging,
                io::Error::other("the writer thread stopped"),
            )
        }))
    }

    /// Ends the queue: the entities offered and never confirmed are removed, and the writer
    /// thread makes the files durable (on Linux one `syncfs`) while the caller goes on;
    /// [`Staged::finish`] waits for it. Nothing may be handed over after.
    pub fn close(&mut self) -> Result<(), CollectionError> {
        if self.writer.closed() {
            return Ok(());
        }
        let offered: Vec<String> = self
            .handed
            .iter()
            .filter(|(_, h)| !h.confirmed)
            .map(|(id, _)| id.clone())
            .collect();
        for id in offered {
            self.handed.remove(&id);
            let before = self.refused.len();
            self.refused.retain(|r| r.id() != id);
            if self.refused.len() < before {
                continue;
            }
            if let Ok(target) = ids::entity_path(&self.staging, &id) {
                self.send(Job::Remove { id, target })?;
            }
        }
        self.writer.close();
        Ok(())
    }

    /// Waits for every file to be written and made durable ([`Staged::close`], if not
    /// called), then moves the staging folder into place: one rename, which replaces the
    /// collection's folder only if it is (still) an empty folder. Should something have
    /// appeared in it meanwhile, each file is moved on its own, never over a file that is
    /// there. Says which entities handed over are not in the collection.
    pub fn finish(mut self) -> Result<NotStaged, CollectionError> {
        self.close()?;
        let written = self.writer.join();
        if let Some(e) = written.error {
            return Err(e);
        }
        let mut not = NotStaged {
            refused: std::mem::take(&mut self.refused),
            deferred: written.taken,
        };
        let left_out: BTreeSet<String> = not.ids().map(str::to_owned).collect();
        self.handed.retain(|id, _| !left_out.contains(id));
        if !written.durable {
            for id in self.handed.keys() {
                if let Ok(file) = ids::entity_path(&self.staging, id) {
                    fs::File::open(&file)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| io_err("write", &file, e))?;
                }
            }
        }
        atomic::sync_dir(&self.staging);
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
        for id in self.handed.keys() {
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

impl Drop for Staged {
    fn drop(&mut self) {
        // Nothing more is written, and nothing into the folder once it is removed.
        if !self.done {
            self.writer.batch.clear();
            self.writer.stop.store(true, Ordering::Relaxed);
        }
        self.writer.join();
        if !self.done {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}
