//! Shared helpers of the engine's integration tests: simulated devices on one remote.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltasync_engine::config::{CollectionConfig, Config};
use deltasync_engine::{Engine, SyncOptions, SyncReport};
use deltasync_remote::Remote;
use serde_json::Value;

pub mod settle;

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

// ---------------------------------------------------------------------------------------------
// Crash and race helpers (crash.rs, prop_sync.rs).

/// How a [`CrashingRemote`] treats the request at which the process "dies".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// The request is never sent: it and every later request fail.
    BeforeSend,
    /// The request reaches the remote and is carried out, but the process dies before the
    /// answer arrives: the caller sees it fail, and every later request fails.
    AnswerLost,
}

/// A remote through which a process "dies" after a number of requests: the first `budget`
/// requests pass through to `inner`, every later one fails with [`RemoteError::Permanent`]
/// (which nothing retries), so the engine stops exactly there, as a killed process would. With
/// [`CrashMode::AnswerLost`] request number `budget` itself is performed first. `budget: None`
/// never crashes (to count the requests of a clean run).
pub struct CrashingRemote {
    inner: Arc<dyn Remote>,
    budget: Option<usize>,
    mode: CrashMode,
    requests: std::sync::Mutex<Vec<String>>,
}

enum Admit {
    Pass,
    PerformThenDie,
    Die,
}

impl CrashingRemote {
    pub fn new(inner: Arc<dyn Remote>, budget: Option<usize>, mode: CrashMode) -> Self {
        CrashingRemote {
            inner,
            budget,
            mode,
            requests: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Every request asked for, in order ("GET meta.json", "PUT deltas/g0/…"), including the
    /// ones refused.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The request the process died at, if it got that far.
    pub fn crashed_at(&self) -> Option<String> {
        self.requests.lock().unwrap().get(self.budget?).cloned()
    }

    fn admit(&self, what: String) -> Admit {
        let mut log = self.requests.lock().unwrap();
        let i = log.len();
        log.push(what);
        match self.budget {
            Some(k) if i == k && self.mode == CrashMode::AnswerLost => Admit::PerformThenDie,
            Some(k) if i >= k => Admit::Die,
            _ => Admit::Pass,
        }
    }

    fn died(what: &str) -> deltasync_remote::RemoteError {
        deltasync_remote::RemoteError::Permanent {
            what: what.to_string(),
            detail: "the process was killed (crash test)".into(),
        }
    }

    fn run<T>(
        &self,
        what: String,
        op: impl FnOnce() -> Result<T, deltasync_remote::RemoteError>,
    ) -> Result<T, deltasync_remote::RemoteError> {
        match self.admit(what.clone()) {
            Admit::Pass => op(),
            Admit::PerformThenDie => {
                let _ = op();
                Err(Self::died(&what))
            }
            Admit::Die => Err(Self::died(&what)),
        }
    }
}

impl deltasync_remote::Forward for CrashingRemote {
    fn inner(&self) -> &dyn Remote {
        &*self.inner
    }
    fn read(
        &self,
        path: &str,
        inm: Option<&deltasync_remote::Etag>,
        max_len: Option<u64>,
    ) -> Result<deltasync_remote::GetResult, deltasync_remote::RemoteError> {
        self.run(format!("GET {path}"), || {
            self.forward_read(path, inm, max_len)
        })
    }
    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &deltasync_remote::PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<deltasync_remote::Etag>, deltasync_remote::RemoteError> {
        self.run(format!("PUT {path}"), || {
            self.forward_write(path, body, mode, mtime)
        })
    }
    fn head(
        &self,
        path: &str,
    ) -> Result<Option<deltasync_remote::ObjectInfo>, deltasync_remote::RemoteError> {
        self.run(format!("HEAD {path}"), || self.inner.head(path))
    }
    fn list(
        &self,
        dir: &str,
    ) -> Result<Vec<deltasync_remote::ObjectInfo>, deltasync_remote::RemoteError> {
        self.run(format!("LIST {dir}"), || self.inner.list(dir))
    }
    fn delete(&self, path: &str) -> Result<(), deltasync_remote::RemoteError> {
        self.run(format!("DELETE {path}"), || self.inner.delete(path))
    }
    /// One request per path, as the paths are deleted one by one.
    fn delete_many(&self, paths: &[String]) -> Result<(), deltasync_remote::RemoteError> {
        self.delete_each(paths)
    }
}

/// One device's view of a shared remote that can make the device's next read of meta.json
/// return meta as it was at [`RacingView::freeze`]: the device read meta, then other devices
/// committed, then it planned and committed with the etag it had read, as in a real race.
/// The frozen answer is served once; later reads see the remote as it is.
pub struct RacingView {
    inner: Arc<dyn Remote>,
    frozen: std::sync::Mutex<Option<(Vec<u8>, deltasync_remote::Etag)>>,
}

impl RacingView {
    pub fn new(inner: Arc<dyn Remote>) -> Self {
        RacingView {
            inner,
            frozen: std::sync::Mutex::new(None),
        }
    }

    /// Remembers meta.json as it is now, for the next read of it.
    pub fn freeze(&self) {
        match self.inner.get("meta.json", None) {
            Ok(deltasync_remote::GetResult::Found {
                body,
                etag: Some(etag),
            }) => *self.frozen.lock().unwrap() = Some((body, etag)),
            other => panic!("RacingView::freeze: meta.json: {other:?}"),
        }
    }

    /// Forgets the frozen meta: the next read sees the remote as it is.
    pub fn thaw(&self) {
        *self.frozen.lock().unwrap() = None;
    }

    /// Whether a frozen meta is still waiting to be read.
    pub fn is_frozen(&self) -> bool {
        self.frozen.lock().unwrap().is_some()
    }
}

impl deltasync_remote::Forward for RacingView {
    fn inner(&self) -> &dyn Remote {
        &*self.inner
    }
    fn read(
        &self,
        path: &str,
        inm: Option<&deltasync_remote::Etag>,
        max_len: Option<u64>,
    ) -> Result<deltasync_remote::GetResult, deltasync_remote::RemoteError> {
        if path == "meta.json"
            && let Some((body, etag)) = self.frozen.lock().unwrap().take()
        {
            if inm == Some(&etag) {
                return Ok(deltasync_remote::GetResult::NotModified);
            }
            return Ok(deltasync_remote::GetResult::Found {
                body,
                etag: Some(etag),
            });
        }
        self.forward_read(path, inm, max_len)
    }
}

impl Device {
    /// A device whose workspace is on the default temp file system (usually a disk, where
    /// `chattr +i` works) rather than tmpfs.
    pub fn on_disk(remote: Arc<dyn Remote>, name: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&[("tasks", "dir:tasks")]);
        config.device = name.into();
        let engine = Engine::with_remote(dir.path(), config, remote).unwrap();
        engine.init_remote(None).unwrap();
        Device { dir, engine }
    }
}
