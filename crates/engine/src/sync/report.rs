//! What a sync was asked to do and what it did: options, reports and the status.

use super::*;

/// Options of [`Engine::sync`].
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Plan and report, change nothing (local files, base, remote).
    pub dry_run: bool,
    /// Allow a push that deletes more than the configured share of a collection.
    pub allow_mass_delete: bool,
}

/// What a sync did (or, dry run, would do) for one collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CollectionReport {
    /// Outgoing changes.
    pub up: planner::Counts,
    /// Incoming changes.
    pub down: planner::Counts,
    /// Entities with no change.
    pub unchanged: u64,
    /// Entities changed on both sides (merged).
    pub merged: u64,
    /// Entities held back (their local file is unreadable).
    pub held: u64,
}

/// The outcome of a sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Per collection.
    pub collections: BTreeMap<String, CollectionReport>,
    /// The seq of the commit made, if any.
    pub committed: Option<u64>,
    /// The remote head after the sync.
    pub head: u64,
    /// Conflict receipts created by this sync.
    pub conflicts: Vec<ConflictReceipt>,
    /// Local files that could not be read (invalid JSON, …): nothing was pushed for them.
    pub problems: Vec<String>,
    /// Entities not written locally because the app saved them meanwhile (retried next time).
    pub deferred: Vec<String>,
    /// Commit attempts lost to other devices before this one succeeded.
    pub retries: u32,
    /// Commits of ours that another device's write overwrote and that were made again.
    pub recommitted: u64,
}

/// Status of a workspace, for `deltasync status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This device's id.
    pub device_id: String,
    /// The device's name.
    pub device: String,
    /// The remote, without credentials.
    pub remote: String,
    /// The head of the last meta seen.
    pub head: u64,
    /// Commits not yet confirmed by a later meta.
    pub unconfirmed_commits: usize,
    /// Open conflict receipts.
    pub open_conflicts: usize,
    /// The open receipts themselves, oldest first.
    pub open_receipts: Vec<ConflictReceipt>,
    /// Local files that cannot be read now (a scan, no request): nothing is pushed for them.
    pub held: Vec<HeldFile>,
    /// When this device last read the remote (a sync, or a full read of meta.json), ms since
    /// the Unix epoch: `head` is the remote's head as of then, and other devices may have
    /// committed since.
    pub last_checked_ms: Option<u64>,
    /// How far the remote's compare-and-swap can be trusted (`atomic`, `weak-window`,
    /// `non-atomic`, `none`), as this device opened it; decides how commits are made.
    pub remote_class: String,
    /// For `weak-window`: how long deltasync waits after writing meta.json, in ms.
    pub weak_window_ms: u64,
    /// The probe's verdict that the remote's first device recorded in meta.json, if any.
    pub recorded_verdict: Option<serde_json::Value>,
    /// Per collection: entity count (mirror) and last sync.
    pub collections: BTreeMap<String, CollectionStatus>,
}

/// A local file that cannot be read: the entities in it are held (neither pushed nor
/// written) until it reads again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldFile {
    /// The collection.
    pub collection: String,
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it (line and column for invalid JSON).
    pub reason: String,
    /// The entities it holds, when known.
    pub ids: Vec<String>,
}

/// Status of one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionStatus {
    /// Entities on the remote (live).
    pub remote_entities: u64,
    /// Entities changed here (created, edited, deleted) since they were last synced: what
    /// the next sync pushes or merges.
    pub local_changes: u64,
    /// The last sync's statistics.
    pub last_sync: Option<CollectionSyncState>,
}
