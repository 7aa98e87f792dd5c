//! The file watcher part of `deltasync watch`: a debounced notify watcher on the collections'
//! folders, which turns events into the set of touched paths ([`Touched`]) and hands it over
//! once a burst has settled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deltasync_engine::{Engine, Touched};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};

use super::Event;

/// The longest a burst of local changes is held back before it is handed over.
const MAX_BATCH: Duration = Duration::from_secs(2);
/// The debouncer looks for settled files this many times per debounce period (a change
/// waits at most one tick more than the debounce).
const DEBOUNCE_TICKS: u32 = 10;

/// The platform's watcher without read events: inotify reports every open, and each sync
/// reads every file of the collections, so a large workspace would otherwise fill the
/// debouncer's queue with one event per file after each sync.
struct NoReads(RecommendedWatcher);

impl notify::Watcher for NoReads {
    fn new<F: notify::EventHandler>(
        mut handler: F,
        config: notify::Config,
    ) -> notify::Result<Self> {
        RecommendedWatcher::new(
            move |event: notify::Result<notify::Event>| {
                if !matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_))) {
                    handler.handle_event(event);
                }
            },
            config,
        )
        .map(NoReads)
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn configure(&mut self, option: notify::Config) -> notify::Result<bool> {
        self.0.configure(option)
    }

    fn kind() -> notify::WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// Which folder is at a path: its inode where there are inodes (a folder replaced by
/// another has a new one), else only that there is one.
type FolderId = u64;

/// The [`FolderId`] of the folder at `path`; `None` when there is none.
fn folder_id(path: &Path) -> Option<FolderId> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_dir())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Some(meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some(0)
    }
}

/// What the file watcher asks of the others after an event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// The watcher lost events (or failed): compare every file now.
    pub rescan_now: bool,
}

/// The file watcher: which folders are watched, and the touched paths not handed over yet.
pub struct FileWatcher {
    debouncer: Debouncer<NoReads, NoCache>,
    watched: BTreeSet<PathBuf>,
    /// Per dir collection: its folder, and which folder is watched there (`None`: none; a
    /// folder replaced by another, as a new device's bootstrap moves its staging folder over
    /// an empty one, is watched again).
    dirs: Vec<(PathBuf, Option<FolderId>)>,
    /// Every collection's folder or document.
    paths: Vec<PathBuf>,
    pending: BTreeSet<Touched>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    /// How long after the last event a burst counts as settled.
    settle: Duration,
}

impl FileWatcher {
    /// Starts the debounced watcher; its events go to `tx` as [`Event::Files`]. Watches
    /// nothing yet ([`FileWatcher::watch_folders`]).
    pub fn start(engine: &Engine, debounce: Duration, tx: Sender<Event>) -> Result<FileWatcher> {
        let debouncer = new_debouncer_opt::<_, NoReads, NoCache>(
            debounce,
            Some(debounce / DEBOUNCE_TICKS),
            move |r: DebounceEventResult| {
                let _ = tx.send(Event::Files(r));
            },
            NoCache,
            notify::Config::default(),
        )
        .context("starting the file watcher")?;
        let collections = engine.collection_paths();
        let mut w = FileWatcher {
            debouncer,
            watched: BTreeSet::new(),
            dirs: collections
                .values()
                .filter(|(_, is_dir)| *is_dir)
                .map(|(p, _)| (p.clone(), None))
                .collect(),
            paths: collections.into_values().map(|(p, _)| p).collect(),
            pending: BTreeSet::new(),
            first_change: None,
            last_change: None,
            // A little more than one debouncer tick: the events of a burst come out tick by
            // tick.
            settle: debounce / DEBOUNCE_TICKS + Duration::from_millis(30),
        };
        w.watch_folders();
        Ok(w)
    }

    /// Watches, non-recursively, each collection's parent (so that a document saved by
    /// write-temp-then-rename, or a collection folder created later, is seen) and each `dir`
    /// collection's folder once it exists. A folder that cannot be watched is left to the
    /// rescan.
    pub fn watch_folders(&mut self) {
        let mut wanted: Vec<PathBuf> = self
            .paths
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for (dir, watched) in &mut self.dirs {
            let now = folder_id(dir);
            if watched.is_some() && *watched != now {
                // Replaced: the watch went with the folder it was on.
                let _ = self.debouncer.unwatch(dir.as_path());
                self.watched.remove(dir.as_path());
            }
            *watched = now;
            if watched.is_some() {
                wanted.push(dir.clone());
            }
        }
        for folder in wanted {
            if self.watched.contains(&folder) || !folder.is_dir() {
                continue;
            }
            match self.debouncer.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(folder = %folder.display(), "watching");
                    self.watched.insert(folder);
                }
                Err(e) => {
                    tracing::warn!(folder = %folder.display(), error = %e, "cannot watch; relying on the rescan")
                }
            }
        }
    }

    /// Whether a `dir` collection's folder exists but is not watched yet (or not the one
    /// watched: replaced since).
    pub fn has_unwatched_folder(&self) -> bool {
        self.dirs
            .iter()
            .any(|(p, w)| folder_id(p).is_some_and(|now| *w != Some(now)))
    }

    /// Takes a batch of events: the touched paths wait until the burst settles.
    pub fn handle(&mut self, engine: &Engine, events: DebounceEventResult) -> Heard {
        let mut heard = Heard::default();
        let events = match events {
            Ok(events) => events,
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "file watcher error; rescanning");
                }
                heard.rescan_now = true;
                return heard;
            }
        };
        let now = Instant::now();
        let mut folder_changed = false;
        for ev in &events {
            if ev.need_rescan() {
                tracing::warn!("the file watcher lost events; rescanning");
                heard.rescan_now = true;
            }
            // Reads change nothing (NoReads drops them already).
            if matches!(ev.kind, EventKind::Access(_)) {
                continue;
            }
            for p in &ev.paths {
                if let Some(t) = engine.touched(p) {
                    folder_changed |= matches!(t, Touched::Collection(_));
                    self.pending.insert(t);
                }
            }
        }
        if !self.pending.is_empty() {
            self.first_change.get_or_insert(now);
            self.last_change = Some(now);
        }
        if folder_changed && self.has_unwatched_folder() {
            self.watch_folders();
        }
        heard
    }

    /// Whether changes are waiting for their burst to settle (a sync waits for them).
    pub fn busy(&self) -> bool {
        self.first_change.is_some()
    }

    /// When the waiting changes are handed over.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first_change?, self.last_change?);
        Some((last + self.settle).min(first + MAX_BATCH))
    }

    /// The touched paths, once their burst has settled (or waited [`MAX_BATCH`]).
    pub fn take_settled(&mut self, now: Instant) -> Option<BTreeSet<Touched>> {
        if self.deadline().is_none_or(|t| now < t) {
            return None;
        }
        self.first_change = None;
        self.last_change = None;
        Some(std::mem::take(&mut self.pending))
    }

    /// Stops watching.
    pub fn stop(self) {
        self.debouncer.stop();
    }
}
