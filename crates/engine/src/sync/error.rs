//! The engine's errors: what went wrong, and whether a retry can help.

use super::*;

/// Errors of the engine. [`EngineError::is_temporary`] says whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The remote layout failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The workspace's remote could not be opened (credentials, URL, `[server]`).
    #[error(transparent)]
    Open(#[from] crate::workspace::OpenError),
    /// A local collection failed.
    #[error(transparent)]
    Collection(#[from] CollectionError),
    /// The remote's lease (for servers without compare-and-swap) is held by another device.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A collection name that the configuration does not have.
    #[error("unknown collection '{name}'; valid collections: {valid}")]
    UnknownCollection {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        valid: String,
    },
    /// A push would delete too much of a collection (more than the configured share and
    /// count, or all of more than two).
    #[error(
        "refusing to delete {deletes} of {total} entities in '{collection}' (more than {percent}%, or all of them); \
         nothing was changed"
    )]
    MassDelete {
        /// The collection.
        collection: String,
        /// Deletions planned.
        deletes: u64,
        /// Entities the collection had.
        total: u64,
        /// The configured threshold in percent.
        percent: u64,
    },
    /// Other devices kept committing first.
    #[error("gave up after {0} attempts: other devices kept committing first; try again")]
    TooManyRetries(u32),
    /// The remote's format is newer than this client can write.
    #[error(
        "the remote is format {0} which this deltasync (format {FORMAT_VERSION}) can read but not write: upgrade deltasync"
    )]
    ReadOnly(u32),
    /// A conflict receipt that does not exist.
    #[error("no conflict with id '{0}'")]
    NoSuchConflict(String),
    /// An entity that does not exist.
    #[error("no {collection} entity with id '{id}'")]
    NoSuchEntity {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
    },
    /// The remote has lost commits this device applied: emptied, initialised again, or put
    /// back from an older copy. Nothing was changed; `repair` puts this device's data back.
    #[error(
        "the remote {remote} is behind this device: {detail}. Nothing was changed, here or there; \
         a repair puts this device's data back on it (on every device that has data the remote lost)"
    )]
    RemoteBehind {
        /// The remote.
        remote: String,
        /// What was found.
        detail: String,
    },
    /// `update` of a field inside one that is not an object.
    #[error(
        "{collection}/{id}: '{field}' is not an object, so '{path}' cannot be set inside it; nothing was changed (set '{field}' itself to replace it)"
    )]
    NotAnObject {
        /// Collection.
        collection: String,
        /// Id.
        id: String,
        /// The field on the way that is not an object.
        field: String,
        /// The field asked for.
        path: String,
    },
    /// A past state cannot be rebuilt: commits are missing from the archives.
    #[error("{0}")]
    History(String),
}

impl EngineError {
    /// Whether a retry later can help.
    pub fn is_temporary(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_temporary(),
            EngineError::Remote(e) => e.is_temporary(),
            EngineError::Open(e) => e.is_temporary(),
            EngineError::TooManyRetries(_) => true,
            EngineError::Lease(e) => e.is_temporary(),
            EngineError::State(e) => e.is_temporary(),
            EngineError::Collection(e) => matches!(e, CollectionError::ChangedMeanwhile { .. }),
            _ => false,
        }
    }
}
