//! Shared helpers of the engine's integration tests: simulated devices on one remote.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltasync_engine::config::{CollectionConfig, Config};
use deltasync_engine::{Engine, SyncOptions, SyncReport};
use deltasync_remote::Remote;
use serde_json::Value;

/// A temp folder on tmpfs when there is one (fsync is free there), else the default.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// One device: a workspace with a `tasks` dir collection and an engine.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

pub fn config(collections: &[(&str, &str)]) -> Config {
    let mut c: Config = toml::from_str("remote = 'memory'").unwrap();
    for (name, spec) in collections {
        c.collections.insert(
            name.to_string(),
            CollectionConfig::parse_spec(spec).unwrap(),
        );
    }
    c
}

impl Device {
    pub fn new(remote: Arc<dyn Remote>, name: &str) -> Device {
        Self::with_config(remote, name, config(&[("tasks", "dir:tasks")]))
    }

    pub fn with_config(remote: Arc<dyn Remote>, name: &str, mut config: Config) -> Device {
        let dir = tempdir();
        config.device = name.into();
        let engine = Engine::with_remote(dir.path(), config, remote).unwrap();
        engine.init_remote(None).unwrap();
        Device { dir, engine }
    }

    /// Reopens the engine (a process restart).
    pub fn restart(&mut self, remote: Arc<dyn Remote>) {
        let config = self.engine.config().clone();
        self.engine = Engine::with_remote(self.dir.path(), config, remote).unwrap();
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.path().join("tasks").join(format!("{id}.json"))
    }

    pub fn write(&self, id: &str, v: &Value) {
        std::fs::create_dir_all(self.dir.path().join("tasks")).unwrap();
        // As apps do: write a temp file, then rename over.
        let tmp = self.dir.path().join("tasks").join(format!(".{id}.app-tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        std::fs::rename(&tmp, self.path(id)).unwrap();
    }

    pub fn read(&self, id: &str) -> Option<Value> {
        let bytes = std::fs::read(self.path(id)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    pub fn delete(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id));
    }

    /// Every entity of the tasks folder.
    pub fn all(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Ok(rd) = std::fs::read_dir(self.dir.path().join("tasks")) else {
            return out;
        };
        for e in rd {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if let Some(id) = name.strip_suffix(".json")
                && !name.starts_with('.')
            {
                out.insert(
                    id.to_string(),
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
                );
            }
        }
        out
    }

    pub fn sync(&mut self) -> SyncReport {
        self.engine.sync(&SyncOptions::default()).unwrap()
    }

    pub fn try_sync(&mut self) -> Result<SyncReport, deltasync_engine::EngineError> {
        self.engine.sync(&SyncOptions::default())
    }
}
