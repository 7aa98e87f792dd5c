//! The local-folder backend (stub: being written).

use crate::{Capabilities, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError};
use std::path::PathBuf;

/// A remote in a folder on this machine.
#[derive(Debug)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    /// Opens (and creates) the folder.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, RemoteError> {
        Ok(LocalFolder { root: root.into() })
    }
}

impl Remote for LocalFolder {
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
        self.root.display().to_string()
    }
}
