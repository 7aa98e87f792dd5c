//! `deltasync watch`: the background watcher of one workspace, one process built from parts
//! around one [`Engine`].
//!
//! The loop owns the engine (the only writer of the local state, `.deltasync/state.db`) and
//! runs the parts in turn; threads feed it [`Event`]s through one channel:
//!
//! - the file watcher ([`files`]): a debounced notify watcher (non-recursive on each
//!   collection's folder and its parent) sends the paths that changed; the engine maps them to
//!   [`Touched`] entities ([`Engine::touched`], the scan's own rules) and, once a burst has
//!   settled, says whether they differ from what was last synced ([`Engine::local_changes`]:
//!   the watcher's own writes do not; a half-written file is a problem to wait for, never a
//!   change);
//! - the poller ([`poll`]): the engine's fetch, a conditional GET of meta.json; a sync when
//!   other devices committed;
//! - the rescanner ([`rescan`]) compares every file's size and mtime with what was last seen,
//!   for the events a watcher misses (network file systems, queue overflow);
//! - the syncer ([`syncer`]) runs [`Engine::sync`] in this process — after the first, as
//!   [`Engine::sync_touched`] with the paths touched since the last sync that succeeded, so
//!   that a save costs the reading of that file, not of the folder — and its typed
//!   [`SyncReport`](deltasync_engine::SyncReport) goes to the [`record::Recorder`];
//! - the signal thread ([`signals`]): SIGTERM or SIGINT ends the loop once the sync in
//!   progress has finished (a second one, or a sync still running after `--stop-grace`,
//!   exits at once: the engine's journal finishes or undoes the commit on the next start).
//!
//! Each part has a start (its constructor), handles what concerns it, and a stop (dropped,
//! or [`files::FileWatcher::stop`]). Errors back off (jittered, doubling to 5 minutes, reset
//! on success); a poll due during a backoff waits for its end. Tickers compute their next
//! deadline from now, so a laptop waking from sleep runs one poll, not a storm. A refused
//! password ([`EngineError::is_refused_credentials`]) stops the watcher with exit 1 rather
//! than send it again.
//!
//! Memory: a sync holds what it reads (about 4 KB per entity read) while it runs, and a few
//! bytes per file for the files it does not read; the rescanner 16 bytes per file; the
//! binary's allocator (mimalloc) gives freed memory back (figures in `docs/architecture.md`).

mod files;
mod poll;
pub mod record;
mod rescan;
mod signals;
mod syncer;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deltasync_engine::{Engine, EngineError, STATE_DIR, Touched};
use deltasync_lock::Backoff;
use notify_debouncer_full::DebounceEventResult;

use self::files::FileWatcher;
use self::poll::Poller;
use self::record::Recorder;
pub use self::record::{last_error, print_status, status_json};
use self::rescan::Rescanner;
use self::syncer::Syncer;

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often to ask the remote whether other devices committed.
    pub poll: Duration,
    /// Quiet time after a file changes before the change is taken.
    pub debounce: Duration,
    /// How often to compare every file's size and mtime with what was last seen.
    pub rescan: Duration,
    /// How long a sync in progress may go on after SIGTERM or SIGINT before the process
    /// exits anyway.
    pub stop_grace: Duration,
}

/// Parses a duration with humantime (`500ms`, `1.5s`, `2m`, `1h 30m`, …), or a plain number
/// of seconds (`5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    let parsed = if plain {
        humantime::parse_duration(&format!("{s}s"))
    } else {
        humantime::parse_duration(s)
    };
    match parsed {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("duration '{s}' must be positive")),
        Err(e) => Err(format!(
            "invalid duration '{s}': {e} (examples: 500ms, 5s, 2m)"
        )),
    }
}

/// What the threads around the loop send it.
pub enum Event {
    /// A batch of file events (or errors) from the debounced watcher.
    Files(DebounceEventResult),
    /// A signal asked the watcher to stop.
    Stop(&'static str),
}

/// Runs the watcher on the workspace `dir` until SIGTERM or SIGINT.
pub fn run(dir: &Path, opts: Options) -> Result<u8> {
    if opts.debounce > Duration::from_secs(60) {
        bail!("--debounce must be at most 60 s");
    }
    let root = dir
        .canonicalize()
        .with_context(|| format!("{} is not a folder", dir.display()))?;
    crate::load(&root)?;
    let state_dir = root.join(STATE_DIR);
    let _lock = record::acquire(&state_dir)?;
    let engine = open_patiently(&root)?;

    let (tx, rx) = mpsc::channel::<Event>();
    signals::start(tx.clone(), opts.stop_grace)?;
    let files = FileWatcher::start(&engine, opts.debounce, tx)?;
    let recorder = Recorder::start(&state_dir, opts.poll);
    tracing::info!(
        workspace = %root.display(),
        remote = %engine.store().remote().describe(),
        poll_s = opts.poll.as_secs_f64(),
        "watching"
    );
    let daemon = Daemon {
        rescan: Rescanner::new(&engine, opts.rescan),
        poller: Poller::new(opts.poll),
        syncer: Syncer::new(),
        engine,
        files,
        recorder,
        rx,
    };
    daemon.run()
}

/// Opens the workspace, waiting (with backoff, until a signal ends the process) while that
/// fails for a reason that passes: a keyring still locked after boot, or one that does not
/// answer yet. Other errors end the watcher.
fn open_patiently(root: &Path) -> Result<Engine> {
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(120), u32::MAX);
    loop {
        match crate::open(root) {
            Ok(engine) => return Ok(engine),
            Err(e) if crate::exit_code_of(&e) == crate::exit::TEMPORARY => {
                let wait = backoff.next_delay().unwrap_or(Duration::from_secs(120));
                tracing::warn!(
                    error = %crate::error_chain(&e),
                    retry_in_s = wait.as_secs(),
                    "cannot open the workspace yet"
                );
                std::thread::sleep(wait);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The parts, and the engine they share (used by this thread only).
struct Daemon {
    engine: Engine,
    files: FileWatcher,
    rescan: Rescanner,
    poller: Poller,
    syncer: Syncer,
    recorder: Recorder,
    rx: mpsc::Receiver<Event>,
}

/// Why the loop ended.
enum End {
    /// A signal.
    Signal,
    /// The server refused the password.
    Refused,
}

impl Daemon {
    fn run(mut self) -> Result<u8> {
        let end = self.run_loop()?;
        self.files.stop();
        self.recorder.stopped();
        Ok(match end {
            End::Signal => crate::exit::OK,
            End::Refused => crate::exit::ERROR,
        })
    }

    fn run_loop(&mut self) -> Result<End> {
        let mut first_sync_done = false;
        loop {
            // 1. Work that is due.
            let now = Instant::now();
            if let Some(touched) = self.files.take_settled(now) {
                self.take_touched(&touched);
            }
            if self.rescan.due(now) {
                if self.files.has_unwatched_folder() {
                    self.files.watch_folders();
                }
                let touched = self.rescan.run();
                if !touched.is_empty() {
                    tracing::info!(files = touched.len(), "rescan found changes");
                    self.take_touched(&touched);
                }
            }
            if self.syncer.may_ask(now) && !self.syncer.wanted() && self.poller.due(now) {
                match self.poller.poll(&mut self.engine) {
                    Ok(news) => {
                        self.answered();
                        if news {
                            tracing::debug!("other devices committed");
                            self.syncer.want();
                        }
                    }
                    Err(e) => {
                        if self.failed("polling", &e) {
                            return Ok(End::Refused);
                        }
                    }
                }
            }
            if self.syncer.wanted() && self.syncer.may_ask(Instant::now()) && !self.files.busy() {
                match self.syncer.sync(&mut self.engine) {
                    Ok(s) => {
                        self.syncer.answered();
                        self.recorder.synced(&s.report, s.took);
                        // A new device's bootstrap may have moved a folder over a
                        // collection's empty one: the watch went with the old folder.
                        if self.files.has_unwatched_folder() {
                            self.files.watch_folders();
                        }
                    }
                    Err(e) => {
                        if self.failed("syncing", &e) {
                            return Ok(End::Refused);
                        }
                    }
                }
                self.poller.asked();
                if !first_sync_done {
                    first_sync_done = true;
                    self.rescan.fill();
                }
            }

            // 2. Wait for the next event or deadline.
            let mut deadline = self.rescan.deadline();
            if !self.syncer.wanted() {
                // Not before a backoff ends: a poll due meanwhile waits for it, asleep.
                let poll = self.poller.deadline();
                deadline = deadline.min(self.syncer.backoff_until().map_or(poll, |t| poll.max(t)));
            }
            if let Some(t) = self.files.deadline() {
                deadline = deadline.min(t);
            }
            if let Some(t) = self.syncer.deadline()
                && !self.files.busy()
            {
                deadline = deadline.min(t);
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            let event = match self.rx.recv_timeout(timeout) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => bail!("the file watcher stopped"),
            };
            match event {
                Event::Stop(signal) => {
                    tracing::info!(signal, "stopping");
                    return Ok(End::Signal);
                }
                Event::Files(events) => {
                    if self.files.handle(&self.engine, events).rescan_now {
                        self.rescan.now();
                    }
                }
            }
        }
    }

    /// Local changes the file watcher or the rescanner saw: a sync when they differ from what
    /// was last synced; files that cannot be used now are reported and waited for.
    fn take_touched(&mut self, touched: &BTreeSet<Touched>) {
        let changes = self.engine.local_changes(touched);
        self.rescan.seen(touched);
        self.recorder.problems(changes.problems);
        if changes.dirty {
            self.syncer.want_touched(touched);
        }
    }

    fn answered(&mut self) {
        self.syncer.answered();
        self.recorder.contact_ok();
    }

    /// Backs off after a failed poll or sync; returns whether the watcher must stop: the
    /// server refused the password (sending it again and again makes Nextcloud slow every
    /// request from this machine down).
    fn failed(&mut self, what: &str, e: &EngineError) -> bool {
        let delay = self.syncer.failed();
        self.recorder.failed(what, e, delay);
        if e.is_refused_credentials() {
            tracing::error!(
                error = %e,
                "the server refused the password: stopping instead of sending it again; fix it (deltasync login, or the variable or command that gives it) and start the watch again"
            );
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 0.5 "), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
