//! `repair`: putting this device's data back on a remote that lost commits it had applied
//! (emptied, initialised again, or put back from an older copy: [`EngineError::RemoteBehind`]).
//!
//! The device forgets what it knew of the remote (bases, mirror, applied deltas, the journal;
//! conflict receipts stay) and syncs as a first sync does: its entities the remote lacks are
//! pushed, the ones on both sides merged field by field (a differing field keeps the later
//! value and a receipt), the remote's others pulled. Nothing is deleted on either side. A dry
//! run compares the local files with the remote as it is and says how many of each there are.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use deltasync_meta::content_hash;
use deltasync_store::StoreError;

use crate::{Engine, EngineError, SyncOptions, SyncReport};

/// What [`Engine::repair`] did, or (dry run) would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The remote had no meta.json: it is laid out again first.
    pub remote_empty: bool,
    /// The remote's head before the repair.
    pub remote_head: u64,
    /// The head this device had synced up to.
    pub local_head: u64,
    /// Local entities the remote lacks: pushed.
    pub push: u64,
    /// Entities on both sides with different content: merged.
    pub merge: u64,
    /// Entities on both sides with the same content.
    pub same: u64,
    /// Remote entities this device lacks: pulled.
    pub pull: u64,
    /// The sync that did it (not in a dry run).
    pub sync: Option<SyncReport>,
}

impl Engine {
    /// Puts this device's data back on its remote (see the module documentation); with
    /// `dry_run`, only counts what would be pushed, merged and pulled.
    pub fn repair(&mut self, dry_run: bool) -> Result<RepairReport, EngineError> {
        let local_head = self
            .state()
            .get("meta")?
            .and_then(|m| deltasync_meta::Meta::from_bytes(m.as_bytes()).ok());
        let mut report = RepairReport {
            dry_run,
            local_head: local_head.as_ref().map(|m| m.head).unwrap_or(0),
            ..RepairReport::default()
        };
        let remote: BTreeMap<(String, String), Value> = match self.store().read_meta_fresh() {
            Ok((meta, _)) => {
                report.remote_head = meta.head;
                self.read_remote_state()?
                    .records
                    .into_iter()
                    .filter(|(_, r)| !r.is_deleted)
                    .map(|(k, r)| (k, r.data))
                    .collect()
            }
            Err(StoreError::NotInitialised) => {
                report.remote_empty = true;
                BTreeMap::new()
            }
            Err(e) => return Err(e.into()),
        };
        let mut local_keys = 0;
        for (name, cconf) in &self.config().collections {
            let scan = crate::collections::scan(self.root(), &cconf.kind())?;
            for (id, value) in &scan.entities {
                local_keys += 1;
                match remote.get(&(name.clone(), id.clone())) {
                    None => report.push += 1,
                    Some(r) if content_hash(r) == content_hash(value) => report.same += 1,
                    Some(_) => report.merge += 1,
                }
            }
        }
        report.pull = (remote.len() as u64).saturating_sub(report.merge + report.same);
        tracing::debug!(local_keys, ?report, "repair plan");
        if dry_run {
            return Ok(report);
        }
        if report.remote_empty {
            // Laid out again with the verdict this device knew, so no device probes again.
            let server = local_head.and_then(|m| m.server);
            self.init_remote(server)?;
        }
        self.state().forget_remote()?;
        report.sync = Some(self.sync(&SyncOptions::default())?);
        Ok(report)
    }
}
