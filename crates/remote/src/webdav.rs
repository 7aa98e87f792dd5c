//! The WebDAV backend (stub: being written).

use crate::{Capabilities, Etag, GetResult, ObjectInfo, PutMode, Remote, RemoteError};

/// How to reach a WebDAV server.
#[derive(Debug, Clone, Default)]
pub struct WebDavOptions {}

/// A WebDAV remote.
#[derive(Debug)]
pub struct WebDav {
    url: String,
}

impl WebDav {
    /// Opens a WebDAV remote by URL.
    pub fn open(url: &str, _options: &WebDavOptions) -> Result<Self, RemoteError> {
        Ok(WebDav {
            url: url.to_string(),
        })
    }
}

impl Remote for WebDav {
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
        self.url.clone()
    }
}
