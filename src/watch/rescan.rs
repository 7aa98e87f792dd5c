//! The rescanner part of `deltasync watch`: a cheap comparison of every collection file's
//! size and mtime with what was last seen, for the events a file watcher misses (network file
//! systems, a full event queue). What differs becomes touched paths, as if the watcher had
//! seen it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use deltasync_engine::collections::is_entity_file_name;
use deltasync_engine::{Engine, Touched};

/// Size and modification time of a file, as last seen.
type Stamp = (u64, Option<SystemTime>);

struct Coll {
    name: String,
    /// The folder (dir) or document (file), absolute.
    path: PathBuf,
    is_dir: bool,
    /// File name (dir) or `""` (file) → stamp.
    stamps: HashMap<Box<str>, Stamp>,
}

/// The rescanner: every collection file's stamp as last seen, and when to look again.
pub struct Rescanner {
    colls: Vec<Coll>,
    interval: std::time::Duration,
    next: Instant,
    /// Stamps are recorded once the first sync is done (before it, everything is synced
    /// anyway).
    filled: bool,
}

fn stamp_of(meta: &fs::Metadata) -> Stamp {
    (meta.len(), meta.modified().ok())
}

impl Coll {
    fn walk(&self) -> HashMap<Box<str>, Stamp> {
        let mut out = HashMap::new();
        if !self.is_dir {
            if let Ok(m) = fs::metadata(&self.path) {
                out.insert("".into(), stamp_of(&m));
            }
            return out;
        }
        let Ok(entries) = fs::read_dir(&self.path) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_entity_file_name(&name) {
                continue;
            }
            if let Ok(m) = entry.metadata() {
                out.insert(name.into_boxed_str(), stamp_of(&m));
            }
        }
        out
    }
}

impl Rescanner {
    /// The rescanner of the engine's collections, every `interval`.
    pub fn new(engine: &Engine, interval: std::time::Duration) -> Rescanner {
        Rescanner {
            colls: engine
                .collection_paths()
                .into_iter()
                .map(|(name, (path, is_dir))| Coll {
                    name,
                    path,
                    is_dir,
                    stamps: HashMap::new(),
                })
                .collect(),
            interval,
            next: Instant::now() + interval,
            filled: false,
        }
    }

    /// When the next rescan is due.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Makes the next rescan due now (the file watcher lost events).
    pub fn now(&mut self) {
        self.next = Instant::now();
    }

    /// Whether a rescan is due.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Compares every file's size and mtime with what was last seen; returns what differs
    /// (new, changed, removed files) and remembers the new stamps. The next rescan is due an
    /// interval from now.
    pub fn run(&mut self) -> BTreeSet<Touched> {
        self.next = Instant::now() + self.interval;
        let mut out = BTreeSet::new();
        if !self.filled {
            return out;
        }
        for c in &mut self.colls {
            let now = c.walk();
            let changed = now
                .iter()
                .filter(|(n, s)| c.stamps.get(*n) != Some(*s))
                .map(|(n, _)| n)
                .chain(c.stamps.keys().filter(|n| !now.contains_key(*n)));
            for name in changed {
                out.insert(if c.is_dir {
                    Touched::File {
                        collection: c.name.clone(),
                        name: name.to_string(),
                    }
                } else {
                    Touched::Collection(c.name.clone())
                });
            }
            c.stamps = now;
        }
        out
    }

    /// Records the stamps of every collection file (after the first sync).
    pub fn fill(&mut self) {
        for c in &mut self.colls {
            c.stamps = c.walk();
        }
        self.filled = true;
    }

    /// Records the stamps of what `touched` names, as just looked at, so that the next
    /// rescan does not report it again.
    pub fn seen(&mut self, touched: &BTreeSet<Touched>) {
        if !self.filled {
            return;
        }
        for c in &mut self.colls {
            let whole = touched.contains(&Touched::Collection(c.name.clone()));
            if whole || !c.is_dir {
                if whole || touched.iter().any(|t| t.collection() == c.name) {
                    c.stamps = c.walk();
                }
                continue;
            }
            for t in touched {
                let Touched::File { collection, name } = t else {
                    continue;
                };
                if *collection != c.name {
                    continue;
                }
                match fs::metadata(c.path.join(name)) {
                    Ok(m) => {
                        c.stamps.insert(name.as_str().into(), stamp_of(&m));
                    }
                    Err(_) => {
                        c.stamps.remove(name.as_str());
                    }
                }
            }
        }
    }
}
