//! The rescanner part of `deltasync watch`: a cheap comparison of every collection file's
//! size and mtime with what was last seen, for the events a file watcher misses (network file
//! systems, a full event queue). What differs becomes touched paths, as if the watcher had
//! seen it: a new or changed file by its name, a removed one as its whole collection (the sync
//! then lists the folder).
//!
//! What was seen is kept as 64-bit hashes — of each file's name, and of its size and mtime —
//! so that 100,000 files take about 2 MB, not the names themselves; a change that keeps the
//! hash of size and mtime is as rare as one that keeps both, and the engine's hourly full scan
//! reads every file anyway.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::path::PathBuf;
use std::time::Instant;

use deltasync_engine::collections::{IdHasher, is_entity_file_name};
use deltasync_engine::{Engine, Touched};

/// Hash of a file's name → hash of its size and modification time.
type Stamps = HashMap<u64, u64, BuildHasherDefault<IdHasher>>;

fn stamps(room: usize) -> Stamps {
    HashMap::with_capacity_and_hasher(room, Default::default())
}

fn hash_of(v: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

struct Coll {
    name: String,
    /// The folder (dir) or document (file), absolute.
    path: PathBuf,
    is_dir: bool,
    /// File name (dir) or `""` (file), hashed → stamp, hashed.
    stamps: Stamps,
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

fn stamp_of(meta: &fs::Metadata) -> u64 {
    hash_of((meta.len(), meta.modified().ok()))
}

impl Coll {
    /// Every file's name and stamp, to `each`.
    fn walk(&self, mut each: impl FnMut(&str, u64)) {
        if !self.is_dir {
            if let Ok(m) = fs::metadata(&self.path) {
                each("", stamp_of(&m));
            }
            return;
        }
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !is_entity_file_name(name) {
                continue;
            }
            if let Ok(m) = entry.metadata() {
                each(name, stamp_of(&m));
            }
        }
    }

    /// Every file's stamp, by the hash of its name.
    fn stamps(&self) -> Stamps {
        let mut out = stamps(self.stamps.len());
        self.walk(|name, stamp| {
            out.insert(hash_of(name), stamp);
        });
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
                    stamps: stamps(0),
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
            let mut now = stamps(c.stamps.len());
            let mut changed = Vec::new();
            c.walk(|name, stamp| {
                let key = hash_of(name);
                if c.stamps.get(&key) != Some(&stamp) {
                    changed.push(name.to_owned());
                }
                now.insert(key, stamp);
            });
            let removed = c.stamps.keys().any(|k| !now.contains_key(k));
            if removed || !c.is_dir && !changed.is_empty() {
                out.insert(Touched::Collection(c.name.clone()));
            } else {
                out.extend(changed.into_iter().map(|name| Touched::File {
                    collection: c.name.clone(),
                    name,
                }));
            }
            c.stamps = now;
        }
        out
    }

    /// Records the stamps of every collection file (after the first sync).
    pub fn fill(&mut self) {
        for c in &mut self.colls {
            c.stamps = c.stamps();
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
                    c.stamps = c.stamps();
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
                        c.stamps.insert(hash_of(name.as_str()), stamp_of(&m));
                    }
                    Err(_) => {
                        c.stamps.remove(&hash_of(name.as_str()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_engine::config::{CollectionConfig, Config};
    use deltasync_remote::MemoryRemote;
    use std::sync::Arc;

    fn touched_names(t: &BTreeSet<Touched>) -> Vec<String> {
        t.iter()
            .map(|t| match t {
                Touched::File { name, .. } => name.clone(),
                Touched::Collection(c) => format!("collection {c}"),
            })
            .collect()
    }

    /// A new or changed file is touched by name; a removed one touches its collection (only
    /// hashes of the names are kept); what was seen is not reported again.
    #[test]
    fn changes_are_touched_by_name_and_a_removal_touches_the_collection() {
        let dir = tempfile::tempdir().unwrap();
        let tasks = dir.path().join("tasks");
        fs::create_dir(&tasks).unwrap();
        for id in ["a", "b", "c"] {
            fs::write(tasks.join(format!("{id}.json")), "{}").unwrap();
        }
        let mut config: Config = toml::from_str("remote = 'memory'").unwrap();
        config.collections.insert(
            "tasks".into(),
            CollectionConfig::parse_spec("dir:tasks").unwrap(),
        );
        let engine =
            Engine::with_remote(dir.path(), config, Arc::new(MemoryRemote::with_seed(1))).unwrap();
        let mut r = Rescanner::new(&engine, std::time::Duration::from_secs(3600));
        r.fill();
        assert!(r.run().is_empty());
        fs::write(tasks.join("a.json"), "{\"n\": 1}").unwrap();
        fs::write(tasks.join("d.json"), "{}").unwrap();
        fs::write(tasks.join(".d.json.tmp"), "{}").unwrap();
        assert_eq!(touched_names(&r.run()), ["a.json", "d.json"]);
        assert!(r.run().is_empty());
        fs::remove_file(tasks.join("b.json")).unwrap();
        assert_eq!(touched_names(&r.run()), ["collection tasks"]);
        // Seen by the watcher and synced: not reported by the next rescan.
        fs::write(tasks.join("c.json"), "{\"n\": 2}").unwrap();
        let seen = BTreeSet::from([Touched::File {
            collection: "tasks".into(),
            name: "c.json".into(),
        }]);
        r.seen(&seen);
        assert!(r.run().is_empty());
    }
}
