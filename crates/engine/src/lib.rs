//! deltasync's sync engine: local collections, local state, three-way merge, the planner,
//! push and pull.
//!
//! An app (or the `deltasync` binary) opens a workspace — a folder with a `deltasync.toml` —
//! with [`Workspace::open`], which gets the remote's credentials through a [`Credentials`]
//! and opens the remote exactly as the CLI does (`examples/two_workspaces.rs` syncs two over
//! WebDAV), and calls [`Engine::sync`]; [`Engine::with_remote`] takes a remote opened already
//! (the in-memory one below). Each collection is either a folder with one JSON file per
//! entity or one JSON document holding many (see [`collections`]). Only the entities that
//! changed go up, in one delta file per commit; the commit point `meta.json` is written by
//! compare-and-swap; concurrent edits are merged field by field ([`merge`]), and a value that
//! loses a conflict is kept as a receipt that every device sees.
//!
//! ```
//! use std::sync::Arc;
//! use deltasync_engine::{config::{CollectionConfig, Config}, Engine, SyncOptions};
//! use deltasync_remote::MemoryRemote;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let remote = Arc::new(MemoryRemote::new());
//! let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let mut config: Config = toml::from_str("remote = 'memory'")?;
//! config.collections.insert("tasks".into(), CollectionConfig::parse_spec("dir:tasks")?);
//!
//! let mut dev_a = Engine::with_remote(a.path(), config.clone(), remote.clone())?;
//! dev_a.init_remote(None)?;
//! std::fs::create_dir(a.path().join("tasks"))?;
//! std::fs::write(a.path().join("tasks/t1.json"), r#"{"title": "buy milk"}"#)?;
//! let report = dev_a.sync(&SyncOptions::default())?;
//! assert_eq!(report.committed, Some(1));
//!
//! let mut dev_b = Engine::with_remote(b.path(), config, remote)?;
//! dev_b.sync(&SyncOptions::default())?;
//! let text = std::fs::read_to_string(b.path().join("tasks/t1.json"))?;
//! assert!(text.contains("buy milk"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod backup;
pub mod collections;
pub mod config;
pub mod history;
pub mod ids;
pub mod maintenance;
pub mod merge;
pub mod planner;
pub mod progress;
pub mod records;
pub mod repair;
pub mod state;
mod sync;
pub mod touched;
pub mod workspace;

pub use sync::{
    Action, CollectionReport, CollectionStatus, Decision, DeviceName, Engine, EngineError,
    EntityPreview, FLUSHING, FULL_SCAN_INTERVAL, FieldPreview, HeldFile, MassDeleteRefusal,
    Preview, STALE_ETAG_BOUND, STATE_DIR, SideName, Status, SyncOptions, SyncReport, WRITE_CHUNK,
    Written,
};
pub use touched::{LocalChanges, Touched};
pub use workspace::{Credentials, OpenError, Workspace};
