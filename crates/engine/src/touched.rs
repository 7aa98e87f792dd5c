//! Local changes by path, for a file watcher: which collection a changed path belongs to
//! ([`Engine::touched`]), and whether the entities behind a set of touched paths differ from
//! what this device last synced ([`Engine::local_changes`]), read by the rules of a scan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use deltasync_lock::LeaseError;
use deltasync_meta::content_hash;
use deltasync_remote::RemoteError;
use deltasync_store::StoreError;

use crate::collections::{self, CollectionKind, EntityFile};
use crate::{Engine, EngineError};

/// What a change at a path touches in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Touched {
    /// One file of a `dir` collection whose name can be an entity's.
    File {
        /// The collection.
        collection: String,
        /// The file name in the collection's folder.
        name: String,
    },
    /// A collection as a whole: a `file` collection's document, or a `dir` collection's
    /// folder itself (created, removed or renamed).
    Collection(String),
}

impl Touched {
    /// The collection touched.
    pub fn collection(&self) -> &str {
        match self {
            Touched::File { collection, .. } | Touched::Collection(collection) => collection,
        }
    }
}

/// The outcome of [`Engine::local_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalChanges {
    /// Some entity's local content differs from its base (what this device last synced), or
    /// the base could not be read: a sync is needed. An entity the engine wrote itself (a pull)
    /// matches its base, so the engine's own writes coming back from a watcher are no change.
    pub dirty: bool,
    /// Files that cannot be used now (half-written, invalid JSON, unreadable), as a sync reports
    /// them (`"<file>: <message>"`): held, never taken as changes or deletions.
    pub problems: Vec<String>,
}

/// `path` without `.` components, so that paths compare equal.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

impl Engine {
    /// The absolute path of each collection (its folder or document), by name.
    pub fn collection_paths(&self) -> BTreeMap<String, (PathBuf, bool)> {
        self.config()
            .collections
            .iter()
            .map(|(name, c)| {
                let (rel, is_dir) = match c.kind() {
                    CollectionKind::Dir { path } => (path, true),
                    CollectionKind::File { path, .. } => (path, false),
                };
                (name.clone(), (normalize(&self.root().join(rel)), is_dir))
            })
            .collect()
    }

    /// What a change at `path` touches (absolute, or relative to the workspace root): a file of
    /// a `dir` collection that can be an entity's ([`collections::is_entity_file_name`]), or a
    /// collection as a whole; `None` for everything else (editor and temporary files, the
    /// local state, files outside the collections).
    pub fn touched(&self, path: &Path) -> Option<Touched> {
        let path = normalize(&self.root().join(path));
        for (name, (cpath, is_dir)) in self.collection_paths() {
            if path == cpath {
                return Some(Touched::Collection(name));
            }
            if is_dir && path.parent() == Some(cpath.as_path()) {
                let file = path.file_name()?.to_str()?;
                return collections::is_entity_file_name(file).then(|| Touched::File {
                    collection: name,
                    name: file.to_owned(),
                });
            }
        }
        None
    }

    /// Whether the entities behind `touched` differ from what this device last synced, read
    /// by the rules of a sync's scan, without writing anything (local files or state). A
    /// collection touched as a whole is scanned whole; a single file is read alone.
    pub fn local_changes(&self, touched: &BTreeSet<Touched>) -> LocalChanges {
        let mut out = LocalChanges::default();
        let paths = self.collection_paths();
        let whole: BTreeSet<&str> = touched
            .iter()
            .filter_map(|t| match t {
                Touched::Collection(c) => Some(c.as_str()),
                Touched::File { .. } => None,
            })
            .collect();
        for c in &whole {
            self.collection_changes(c, &mut out);
        }
        for t in touched {
            let Touched::File { collection, name } = t else {
                continue;
            };
            if whole.contains(collection.as_str()) {
                continue;
            }
            let Some((folder, true)) = paths.get(collection) else {
                continue;
            };
            self.file_changes(collection, &folder.join(name), &mut out);
        }
        out
    }

    fn file_changes(&self, collection: &str, path: &Path, out: &mut LocalChanges) {
        let (id, local) = match collections::read_dir_entity(path) {
            EntityFile::Entity { id, value, .. } => (id, Some(value)),
            EntityFile::Absent { id } => (id, None),
            EntityFile::Held { problem, .. } => {
                out.problems
                    .push(format!("{}: {}", problem.file.display(), problem.message));
                return;
            }
            // Not an entity's file (a sync reports a bad stem).
            EntityFile::NotAnEntity => return,
        };
        let base = match self.state().base(collection, &id) {
            Ok(b) => b.and_then(|(_, content)| content),
            Err(e) => {
                // Cannot tell: let the sync decide.
                tracing::debug!(error = %e, "reading the base failed");
                out.dirty = true;
                return;
            }
        };
        if local.as_ref().map(content_hash) != base.as_ref().map(content_hash) {
            tracing::debug!(collection, %id, "changed locally");
            out.dirty = true;
        }
    }

    fn collection_changes(&self, collection: &str, out: &mut LocalChanges) {
        let Some(conf) = self.config().collections.get(collection) else {
            return;
        };
        let scan = match collections::scan(self.root(), &conf.kind()) {
            Ok(s) => s,
            Err(e) => {
                out.problems.push(e.to_string());
                return;
            }
        };
        for p in &scan.problems {
            out.problems
                .push(format!("{}: {}", p.file.display(), p.message));
        }
        let states = match self.state().all_states() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "reading the bases failed");
                out.dirty = true;
                return;
            }
        };
        if scan.whole_collection_held {
            return;
        }
        let bases: BTreeMap<&str, Option<&String>> = states
            .iter()
            .filter(|((c, _), s)| c == collection && s.has_base)
            .map(|((_, id), s)| (id.as_str(), s.base_hash.as_ref()))
            .collect();
        let changed = scan
            .entities
            .iter()
            .any(|(id, v)| bases.get(id.as_str()).copied().flatten() != Some(&content_hash(v)));
        let removed = bases.iter().any(|(id, h)| {
            h.is_some() && !scan.entities.contains_key(*id) && !scan.held.contains(*id)
        });
        if changed || removed {
            tracing::debug!(collection, "changed locally");
            out.dirty = true;
        }
    }
}

impl EngineError {
    /// Whether the server refused the credentials (HTTP 401/403: a wrong user name or
    /// password). Sending them again does not help, and Nextcloud slows every request from an
    /// address down after failed logins.
    pub fn is_refused_credentials(&self) -> bool {
        let remote = match self {
            EngineError::Remote(e)
            | EngineError::Store(StoreError::Remote(e))
            | EngineError::Lease(LeaseError::Remote(e)) => e,
            _ => return false,
        };
        matches!(remote, RemoteError::Auth { .. })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltasync_remote::MemoryRemote;
    use serde_json::json;

    use super::*;
    use crate::SyncOptions;
    use crate::config::{CollectionConfig, Config};

    fn engine(dir: &Path) -> Engine {
        let mut config: Config = toml::from_str("remote = 'memory'").unwrap();
        for spec in ["tasks=dir:tasks", "projects=file:data/main.json#/p"] {
            let (name, spec) = spec.split_once('=').unwrap();
            config
                .collections
                .insert(name.into(), CollectionConfig::parse_spec(spec).unwrap());
        }
        let e = Engine::with_remote(dir, config, Arc::new(MemoryRemote::new())).unwrap();
        e.init_remote(None).unwrap();
        e
    }

    fn file(name: &str) -> Touched {
        Touched::File {
            collection: "tasks".into(),
            name: name.into(),
        }
    }

    #[test]
    fn paths_map_to_collections_by_the_scan_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let e = engine(root);
        assert_eq!(
            e.touched(&root.join("tasks/t1.json")),
            Some(file("t1.json"))
        );
        assert_eq!(
            e.touched(Path::new("./tasks/t1.json")),
            Some(file("t1.json"))
        );
        assert_eq!(
            e.touched(&root.join("tasks")),
            Some(Touched::Collection("tasks".into()))
        );
        assert_eq!(
            e.touched(&root.join("data/main.json")),
            Some(Touched::Collection("projects".into()))
        );
        for ignored in [
            "tasks/.t1.json.swp",
            "tasks/t1.json~",
            "tasks/t1.json.tmp",
            "tasks/#t1.json#",
            "tasks/.t1.deltasync-tmp-abc",
            "tasks/t1.json.tmp-123",
            "tasks/4913",
            "tasks/.json",
            "tasks/notes.txt",
            "data/main.json.tmp",
            ".deltasync/state.db",
            "elsewhere/t1.json",
        ] {
            assert_eq!(e.touched(&root.join(ignored)), None, "{ignored}");
        }
    }

    #[test]
    fn own_writes_are_no_change_and_half_written_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut e = engine(root);
        std::fs::create_dir(root.join("tasks")).unwrap();
        std::fs::write(root.join("tasks/t1.json"), r#"{"a": 1}"#).unwrap();
        std::fs::write(root.join("tasks/t2.json"), r#"{"b": 2}"#).unwrap();
        let all: BTreeSet<Touched> = [file("t1.json"), file("t2.json")].into();
        assert!(e.local_changes(&all).dirty, "new files are changes");
        e.sync(&SyncOptions::default()).unwrap();
        assert_eq!(e.local_changes(&all), LocalChanges::default());
        // The same content written again (a pull coming back through a watcher), in another
        // layout: no change.
        std::fs::write(root.join("tasks/t1.json"), "{\n  \"a\": 1\n}\n").unwrap();
        assert_eq!(e.local_changes(&all), LocalChanges::default());
        let whole = [Touched::Collection("tasks".into())].into();
        assert_eq!(e.local_changes(&whole), LocalChanges::default());

        // Half-written: a problem to wait for, neither a change nor a deletion.
        std::fs::write(root.join("tasks/t1.json"), r#"{"a": "#).unwrap();
        let c = e.local_changes(&[file("t1.json")].into());
        assert!(!c.dirty);
        assert_eq!(c.problems.len(), 1, "{c:?}");
        assert!(c.problems[0].contains("t1.json") && c.problems[0].contains("invalid JSON"));
        let c = e.local_changes(&whole);
        assert!(!c.dirty, "{c:?}");
        assert_eq!(c.problems.len(), 1, "{c:?}");

        // A key twice in one object: held too, as a scan holds it.
        std::fs::write(root.join("tasks/t1.json"), r#"{"a": 1, "a": 2}"#).unwrap();
        let c = e.local_changes(&[file("t1.json")].into());
        assert!(!c.dirty, "{c:?}");
        assert_eq!(c.problems.len(), 1, "{c:?}");

        // A real edit and a deletion are changes.
        std::fs::write(root.join("tasks/t1.json"), r#"{"a": 3}"#).unwrap();
        assert!(e.local_changes(&[file("t1.json")].into()).dirty);
        std::fs::write(root.join("tasks/t1.json"), r#"{"a": 1}"#).unwrap();
        std::fs::remove_file(root.join("tasks/t2.json")).unwrap();
        assert!(e.local_changes(&[file("t2.json")].into()).dirty);
        assert!(e.local_changes(&whole).dirty);
        assert!(!e.local_changes(&[file("t1.json")].into()).dirty);
    }

    #[test]
    fn a_document_collection_is_compared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut e = engine(root);
        std::fs::create_dir(root.join("data")).unwrap();
        let doc = json!({"p": {"p1": {"t": 1}}, "other": true});
        std::fs::write(root.join("data/main.json"), doc.to_string()).unwrap();
        let whole = [Touched::Collection("projects".into())].into();
        assert!(e.local_changes(&whole).dirty);
        e.sync(&SyncOptions::default()).unwrap();
        assert!(!e.local_changes(&whole).dirty);
        // Outside the collection: not synced, no change.
        let doc = json!({"p": {"p1": {"t": 1}}, "other": false});
        std::fs::write(root.join("data/main.json"), doc.to_string()).unwrap();
        assert!(!e.local_changes(&whole).dirty);
        let doc = json!({"p": {"p1": {"t": 2}}, "other": false});
        std::fs::write(root.join("data/main.json"), doc.to_string()).unwrap();
        assert!(e.local_changes(&whole).dirty);
    }

    #[test]
    fn a_refused_password_is_known_by_its_type() {
        let auth = || RemoteError::Auth {
            url: "https://h/".into(),
            user: "u".into(),
            status: 401,
        };
        assert!(EngineError::Remote(auth()).is_refused_credentials());
        assert!(EngineError::Store(StoreError::Remote(auth())).is_refused_credentials());
        assert!(EngineError::Lease(LeaseError::Remote(auth())).is_refused_credentials());
        let other = RemoteError::Permanent {
            what: "GET".into(),
            detail: "access denied for user 'u'".into(),
        };
        assert!(!EngineError::Remote(other).is_refused_credentials());
        assert!(!EngineError::TooManyRetries(3).is_refused_credentials());
    }
}
