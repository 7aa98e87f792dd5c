//! The watcher's view of the local collections: which paths to watch, which events matter,
//! whether a change is one to push (local content differs from the base) or the watcher's own
//! write coming back, and a cheap size-and-mtime rescan for the events a watcher misses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use deltasync_engine::Engine;
use deltasync_engine::collections::{self, CollectionKind};
use deltasync_engine::config::Config;
use deltasync_meta::content_hash;
use serde_json::Value;

/// Something that changed locally: a collection, and in a dir collection the file name
/// (`None`: look at the whole collection).
pub type Touched = (usize, Option<String>);

/// Size and modification time of a file, as last seen.
type Stamp = (u64, Option<SystemTime>);

struct Coll {
    name: String,
    kind: CollectionKind,
    /// Absolute path of the folder (dir) or document (file).
    path: PathBuf,
    is_dir: bool,
    /// Whether the folder itself is watched (a dir collection whose folder exists).
    watched: bool,
}

/// The local collections of one workspace.
pub struct Local {
    root: PathBuf,
    colls: Vec<Coll>,
    /// Per collection: file name (dir) or `""` (file) → stamp.
    stamps: Vec<HashMap<Box<str>, Stamp>>,
}

/// The outcome of [`Local::check`].
#[derive(Debug, Default)]
pub struct Check {
    /// Some entity's content differs from what was last synced: a sync is needed.
    pub dirty: bool,
    /// Files that cannot be used now (half-written, invalid JSON): waited for.
    pub problems: Vec<String>,
}

/// Editor and temporary files, never entities (as the engine's dir scan ignores them).
fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name.contains(".json.tmp-")
        || name.contains(".deltasync-tmp-")
}

/// Whether `name` can be an entity file of a dir collection.
fn is_entity_name(name: &str) -> bool {
    !is_ignored(name) && name.len() > ".json".len() && name.ends_with(".json")
}

fn stamp_of(meta: &fs::Metadata) -> Stamp {
    (meta.len(), meta.modified().ok())
}

/// The bytes without a UTF-8 byte order mark.
fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

impl Local {
    /// The collections of `config`, in the workspace `root` (absolute).
    pub fn new(root: &Path, config: &Config) -> Local {
        let colls: Vec<Coll> = config
            .collections
            .iter()
            .map(|(name, c)| {
                let kind = c.kind();
                let (rel, is_dir) = match &kind {
                    CollectionKind::Dir { path } => (path.clone(), true),
                    CollectionKind::File { path, .. } => (path.clone(), false),
                };
                Coll {
                    name: name.clone(),
                    kind,
                    path: normalize(&root.join(rel)),
                    is_dir,
                    watched: false,
                }
            })
            .collect();
        let stamps = colls.iter().map(|_| HashMap::new()).collect();
        Local {
            root: root.to_path_buf(),
            colls,
            stamps,
        }
    }

    /// The folders to watch, non-recursively: each collection's parent (so that a document
    /// saved by write-temp-then-rename, or a collection folder created later, is seen) and
    /// each dir collection's folder when it exists. Returns the new ones since the last call.
    pub fn folders_to_watch(&mut self, already: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let add = |p: PathBuf, out: &mut Vec<PathBuf>| {
            if !already.contains(&p) && !out.contains(&p) && p.is_dir() {
                out.push(p);
            }
        };
        for c in &mut self.colls {
            if let Some(parent) = c.path.parent() {
                add(parent.to_path_buf(), &mut out);
            }
            if c.is_dir {
                c.watched = c.path.is_dir();
                if c.watched {
                    add(c.path.clone(), &mut out);
                }
            }
        }
        out
    }

    /// Whether a dir collection's folder exists but is not watched yet.
    pub fn has_unwatched_folder(&self) -> bool {
        self.colls
            .iter()
            .any(|c| c.is_dir && !c.watched && c.path.is_dir())
    }

    /// What an event on `path` touches, if anything.
    pub fn classify(&self, path: &Path) -> Option<Touched> {
        for (i, c) in self.colls.iter().enumerate() {
            if path == c.path {
                return Some((i, None));
            }
            if c.is_dir && path.parent() == Some(c.path.as_path()) {
                let name = path.file_name()?.to_str()?;
                return is_entity_name(name).then(|| (i, Some(name.to_string())));
            }
        }
        None
    }

    /// Records the size and mtime of every collection file (after the first sync).
    pub fn fill_stamps(&mut self) {
        for i in 0..self.colls.len() {
            let now = self.walk(i);
            self.stamps[i] = now;
        }
    }

    fn walk(&self, i: usize) -> HashMap<Box<str>, Stamp> {
        let c = &self.colls[i];
        let mut out = HashMap::new();
        if !c.is_dir {
            if let Ok(m) = fs::metadata(&c.path) {
                out.insert("".into(), stamp_of(&m));
            }
            return out;
        }
        let Ok(entries) = fs::read_dir(&c.path) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_entity_name(&name) {
                continue;
            }
            if let Ok(m) = entry.metadata() {
                out.insert(name.into_boxed_str(), stamp_of(&m));
            }
        }
        out
    }

    /// Compares every file's size and mtime with what was last seen; returns what differs
    /// (new, changed, removed files) and remembers the new stamps.
    pub fn rescan(&mut self) -> BTreeSet<Touched> {
        let mut out = BTreeSet::new();
        for i in 0..self.colls.len() {
            let now = self.walk(i);
            let before = &self.stamps[i];
            let changed = now
                .iter()
                .filter(|(n, s)| before.get(*n) != Some(*s))
                .map(|(n, _)| n)
                .chain(before.keys().filter(|n| !now.contains_key(*n)));
            for name in changed {
                out.insert(if self.colls[i].is_dir {
                    (i, Some(name.to_string()))
                } else {
                    (i, None)
                });
            }
            self.stamps[i] = now;
        }
        out
    }

    /// Whether the touched entities differ from what this device last synced (the base).
    /// The watcher's own writes (pulls) match the base, so they do not trigger a sync; a file
    /// that cannot be read or parsed (half-written) is a problem to wait for, never a change.
    pub fn check(&mut self, engine: &Engine, touched: &BTreeSet<Touched>) -> Check {
        let mut out = Check::default();
        let whole: BTreeSet<usize> = touched
            .iter()
            .filter(|(_, f)| f.is_none())
            .map(|(i, _)| *i)
            .collect();
        tracing::debug!(
            files = touched.len() - whole.len(),
            collections = whole.len(),
            "checking local changes"
        );
        for i in &whole {
            self.check_collection(engine, *i, &mut out);
        }
        for (i, name) in touched {
            let Some(name) = name else { continue };
            if whole.contains(i) {
                continue;
            }
            self.check_file(engine, *i, name, &mut out);
        }
        out
    }

    fn check_file(&mut self, engine: &Engine, i: usize, name: &str, out: &mut Check) {
        let c = &self.colls[i];
        let path = c.path.join(name);
        let Some(stem) = name.strip_suffix(".json") else {
            return;
        };
        let Ok(id) = deltasync_engine::ids::decode_stem(stem) else {
            // Not an entity file (the engine reports it on the next sync).
            return;
        };
        let local: Option<Value> = match fs::read(&path) {
            Ok(bytes) => {
                if let Ok(m) = fs::metadata(&path) {
                    self.stamps[i].insert(name.into(), stamp_of(&m));
                }
                match serde_json::from_slice::<Value>(strip_bom(&bytes)) {
                    Ok(v @ Value::Object(_)) => Some(v),
                    Ok(_) => {
                        out.problems
                            .push(format!("{}: not a JSON object", path.display()));
                        return;
                    }
                    Err(e) => {
                        out.problems.push(format!("{}: {e}", path.display()));
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.stamps[i].remove(name);
                None
            }
            Err(e) => {
                out.problems
                    .push(format!("{}: cannot read: {e}", path.display()));
                return;
            }
        };
        let base = match engine.state().base(&c.name, &id) {
            Ok(b) => b.and_then(|(_, content)| content),
            Err(e) => {
                // Cannot tell: let the sync decide.
                tracing::debug!(error = %e, "reading the base failed");
                out.dirty = true;
                return;
            }
        };
        if local.as_ref().map(content_hash) != base.as_ref().map(content_hash) {
            tracing::debug!(collection = %c.name, %id, "changed locally");
            out.dirty = true;
        }
    }

    fn check_collection(&mut self, engine: &Engine, i: usize, out: &mut Check) {
        let c = &self.colls[i];
        let scan = match collections::scan(&self.root, &c.kind) {
            Ok(s) => s,
            Err(e) => {
                out.problems.push(format!("{}: {e}", c.path.display()));
                return;
            }
        };
        for p in &scan.problems {
            out.problems
                .push(format!("{}: {}", p.file.display(), p.message));
        }
        let states = match engine.state().all_states() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "reading the bases failed");
                out.dirty = true;
                return;
            }
        };
        let bases: BTreeMap<&str, Option<&String>> = states
            .iter()
            .filter(|((cc, _), s)| cc == &c.name && s.has_base)
            .map(|((_, id), s)| (id.as_str(), s.base_hash.as_ref()))
            .collect();
        if !scan.whole_collection_held {
            let changed = scan
                .entities
                .iter()
                .any(|(id, v)| bases.get(id.as_str()).copied().flatten() != Some(&content_hash(v)));
            let removed = bases.iter().any(|(id, h)| {
                h.is_some() && !scan.entities.contains_key(*id) && !scan.held.contains(*id)
            });
            if changed || removed {
                tracing::debug!(collection = %c.name, "changed locally");
                out.dirty = true;
            }
        }
        let now = self.walk(i);
        self.stamps[i] = now;
    }
}

/// `path` without `.` components (so that event paths compare equal).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_and_temporary_files_are_not_entities() {
        for name in [
            ".t1.json.swp",
            "t1.json~",
            "t1.json.tmp",
            "#t1.json#",
            ".t1.deltasync-tmp-abc",
            "t1.json.tmp-123",
            "4913",
            ".json",
            "notes.txt",
        ] {
            assert!(!is_entity_name(name), "{name}");
        }
        assert!(is_entity_name("t1.json"));
        assert!(is_entity_name("a%2Fb.json"));
    }

    #[test]
    fn events_map_to_collections() {
        let config: Config = toml::from_str(
            r#"remote = "/r"
            [collections.tasks]
            kind = "dir"
            path = "./tasks"
            [collections.projects]
            kind = "file"
            path = "data/main.json"
            pointer = "/p"
            "#,
        )
        .unwrap();
        let local = Local::new(Path::new("/ws"), &config);
        let projects = 0; // BTreeMap order
        let tasks = 1;
        assert_eq!(
            local.classify(Path::new("/ws/tasks/t1.json")),
            Some((tasks, Some("t1.json".into())))
        );
        assert_eq!(local.classify(Path::new("/ws/tasks/.t1.json.swp")), None);
        assert_eq!(local.classify(Path::new("/ws/tasks")), Some((tasks, None)));
        assert_eq!(
            local.classify(Path::new("/ws/data/main.json")),
            Some((projects, None))
        );
        assert_eq!(local.classify(Path::new("/ws/data/main.json.tmp")), None);
        assert_eq!(local.classify(Path::new("/ws/.deltasync/state.db")), None);
    }
}
