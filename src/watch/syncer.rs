//! The syncer part of `deltasync watch`: whether a sync is wanted, when it may run (backoff
//! after errors, a short wait when the app was saving a file a pull wanted to write), and the
//! sync itself, in this process, over the watcher's one [`Engine`], handed the paths that
//! changed since the last sync that succeeded (so that it reads those files, not the folder).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use deltasync_engine::{Engine, EngineError, SyncOptions, SyncReport, Touched};
use deltasync_lock::Backoff;

/// How soon to try again when the app was saving a file a pull wanted to write.
const DEFERRED_RETRY: Duration = Duration::from_secs(1);

/// A sync that succeeded: the engine's report and how long it took.
#[derive(Debug)]
pub struct Synced {
    /// What the sync did.
    pub report: SyncReport,
    /// How long it took.
    pub took: Duration,
}

/// The syncer.
pub struct Syncer {
    /// A sync is needed: local changes, or commits of other devices not yet written here.
    wanted: bool,
    /// Not before this (backoff after an error, or a deferred write).
    not_before: Option<Instant>,
    backoff: Backoff,
    /// The paths changed since the last sync that succeeded, for the next sync to read
    /// ([`Engine::sync_touched`]); `None` until a sync has listed every collection (the first
    /// one: what changed while no watcher ran).
    touched: Option<BTreeSet<Touched>>,
}

/// Errors back off: jittered, doubling from 1 s to 5 minutes, reset on success.
fn error_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(300), u32::MAX)
}

impl Syncer {
    /// A syncer that wants a sync at once: push what changed while no watcher ran, pull what
    /// others committed.
    pub fn new() -> Syncer {
        Syncer {
            wanted: true,
            not_before: None,
            backoff: error_backoff(),
            touched: None,
        }
    }

    /// Asks for a sync.
    pub fn want(&mut self) {
        self.wanted = true;
    }

    /// Asks for a sync of local changes at `touched` (kept, with those of later calls, until a
    /// sync succeeds).
    pub fn want_touched(&mut self, touched: &BTreeSet<Touched>) {
        if let Some(t) = &mut self.touched {
            t.extend(touched.iter().cloned());
        }
        self.wanted = true;
    }

    /// Whether a sync is wanted.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Whether the remote may be asked now (no backoff running).
    pub fn may_ask(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// When the remote may be asked again, if a backoff runs.
    pub fn backoff_until(&self) -> Option<Instant> {
        self.not_before
    }

    /// When the syncer next has something to do: the end of a backoff, or now when a sync is
    /// wanted.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.not_before, self.wanted) {
            (Some(t), _) => Some(t),
            (None, true) => Some(Instant::now()),
            (None, false) => None,
        }
    }

    /// Runs the wanted sync, and the automatic compaction after it (`[compact] auto_after`) as
    /// `deltasync sync` does. A sync that left writes for later (the app was saving those
    /// files) is wanted again shortly; a failed one is wanted again after the backoff
    /// ([`Syncer::failed`]).
    pub fn sync(&mut self, engine: &mut Engine) -> Result<Synced, EngineError> {
        self.wanted = false;
        self.not_before = None;
        let started = Instant::now();
        let synced = match &self.touched {
            Some(touched) => engine.sync_touched(&SyncOptions::default(), touched),
            None => engine.sync(&SyncOptions::default()),
        };
        let report = match synced {
            Ok(r) => {
                // Looked at: from now on only what changes is read.
                self.touched = Some(BTreeSet::new());
                r
            }
            Err(e) => {
                self.wanted = true;
                return Err(e);
            }
        };
        if let Err(e) = engine.maybe_compact() {
            tracing::warn!(error = %e, "automatic compaction failed; the next sync tries again");
        }
        if !report.deferred.is_empty() {
            tracing::info!(
                entities = report.deferred.len(),
                "the app was saving files a pull wanted to write; trying again shortly"
            );
            self.wanted = true;
            self.not_before = Some(Instant::now() + DEFERRED_RETRY);
        }
        Ok(Synced {
            report,
            took: started.elapsed(),
        })
    }

    /// The remote answered: the backoff starts from the beginning again.
    pub fn answered(&mut self) {
        self.backoff = error_backoff();
    }

    /// A poll or a sync failed: nothing is asked of the remote for the next backoff delay,
    /// which is returned.
    pub fn failed(&mut self) -> Duration {
        let delay = self
            .backoff
            .next_delay()
            .unwrap_or(Duration::from_secs(300));
        self.not_before = Some(Instant::now() + delay);
        delay
    }
}
