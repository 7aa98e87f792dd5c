//! The in-memory backend with fault injection (stub: being written).

use crate::{Capabilities, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError};

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {}

/// An in-memory remote.
#[derive(Debug, Default)]
pub struct MemoryRemote {}

impl MemoryRemote {
    /// A new empty remote.
    pub fn new() -> Self {
        MemoryRemote {}
    }
}

impl Remote for MemoryRemote {
    fn get(&self, _path: &str, _inm: Option<&Etag>) -> Result<GetResult, RemoteError> {
        unimplemented!()
    }
    fn put(&self, _path: &str, _body: &[u8], _mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        unimplemented!()
    }
    fn head(&self, _path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        unimplemented!()
    }
    fn list(&self, _dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        unimplemented!()
    }
    fn delete(&self, _path: &str) -> Result<(), RemoteError> {
        unimplemented!()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}
