//! `deltasync watch`: the background watcher of one workspace.
//!
//! One thread runs a loop over one [`Engine`]; the parts around it feed it messages through a
//! channel:
//!
//! - a debounced file watcher (notify, non-recursive on each collection's folder and its
//!   parent) sends the paths that changed; the loop keeps those of the collections, checks
//!   whether they differ from what was last synced ([`local::Local::check`]: the watcher's
//!   own writes do not, a half-written file is a problem to wait for) and syncs once a burst
//!   has settled;
//! - a poll ticker: a conditional GET of meta.json (a 304 costs one request, no body and no
//!   parsing; otherwise [`Engine::fetch`]), then a sync when other devices committed;
//! - a rescan ticker compares every file's size and mtime with what was last seen, for the
//!   events a watcher misses (network file systems, queue overflow);
//! - a signal thread: SIGTERM or SIGINT ends the loop once the sync in progress has finished
//!   (a second one exits at once: the engine's journal finishes or undoes the commit on the
//!   next start).
//!
//! Each sync runs as a child process `deltasync sync --json` ([`child`]), so that the memory
//! a sync of a large workspace takes is given back when it is over.
//!
//! Errors back off (jittered, doubling to 5 minutes, reset on success). Tickers compute their
//! next deadline from now, so a laptop waking from sleep runs one poll, not a storm.

mod child;
mod local;
pub mod record;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deltasync_engine::{Engine, STATE_DIR};
use deltasync_lock::Backoff;
use deltasync_store::now_ms;
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};

use self::local::{Local, Touched};
use self::record::Record;

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often to ask the remote whether other devices committed.
    pub poll: Duration,
    /// Quiet time after a file changes before the change is taken.
    pub debounce: Duration,
    /// How often to compare every file's size and mtime with what was last seen.
    pub rescan: Duration,
}

/// The longest a burst of local changes is held back before it is pushed.
const MAX_BATCH: Duration = Duration::from_secs(2);
/// The debouncer looks for settled files this many times per debounce period (a change
/// waits at most one tick more than the debounce).
const DEBOUNCE_TICKS: u32 = 10;
/// How often an idle watcher records that the remote still answers.
const CONTACT_SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// How soon to try again when the app was saving a file a pull wanted to write.
const DEFERRED_RETRY: Duration = Duration::from_secs(1);

/// Parses a duration: `500ms`, `1s`, `1.5s`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{s}' (examples: 500ms, 5s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in '{s}' (use ms, s, m or h)"
            ));
        }
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration '{s}' must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The platform's watcher without read events: inotify reports every open, and each sync
/// reads every file of the collections, so a large workspace would otherwise fill the
/// debouncer's queue with one event per file after each sync.
struct NoReads(RecommendedWatcher);

impl notify::Watcher for NoReads {
    fn new<F: notify::EventHandler>(
        mut handler: F,
        config: notify::Config,
    ) -> notify::Result<Self> {
        RecommendedWatcher::new(
            move |event: notify::Result<notify::Event>| {
                if !matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_))) {
                    handler.handle_event(event);
                }
            },
            config,
        )
        .map(NoReads)
    }

    fn watch(&mut self, path: &Path, recursive_mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, recursive_mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn configure(&mut self, option: notify::Config) -> notify::Result<bool> {
        self.0.configure(option)
    }

    fn kind() -> notify::WatcherKind {
        RecommendedWatcher::kind()
    }
}

enum Msg {
    Files(DebounceEventResult),
    Shutdown(&'static str),
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

    let (tx, rx) = mpsc::channel::<Msg>();
    spawn_signal_thread(tx.clone())?;
    let files_tx = tx;
    let debouncer = new_debouncer_opt::<_, NoReads, NoCache>(
        opts.debounce,
        Some(opts.debounce / DEBOUNCE_TICKS),
        move |r: DebounceEventResult| {
            let _ = files_tx.send(Msg::Files(r));
        },
        NoCache,
        notify::Config::default(),
    )
    .context("starting the file watcher")?;
    let local = Local::new(&root, engine.config());
    let record = Record {
        pid: std::process::id(),
        started_ms: now_ms(),
        poll_interval_ms: opts.poll.as_millis() as u64,
        ..Record::default()
    };
    let mut w = Watcher {
        root: root.clone(),
        engine,
        local,
        debouncer,
        watched: BTreeSet::new(),
        rx,
        state_dir,
        record,
        reported: Vec::new(),
        backoff: error_backoff(),
        opts,
        saved_at: None,
        refused: None,
    };
    w.save_record();
    tracing::info!(
        workspace = %root.display(),
        remote = %w.engine.store().remote().describe(),
        poll_s = w.opts.poll.as_secs_f64(),
        "watching"
    );
    w.run()
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

fn error_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(300), u32::MAX)
}

fn spawn_signal_thread(tx: mpsc::Sender<Msg>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("installing signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if seen == 1 {
                    let _ = tx.send(Msg::Shutdown(name));
                } else {
                    tracing::warn!(
                        signal = name,
                        "second signal: stopping now; the next start finishes or undoes any commit in flight"
                    );
                    std::process::exit(crate::exit::ERROR.into());
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

struct Watcher {
    root: PathBuf,
    /// For polls and for checking local changes; syncs run in a child process (see
    /// [`child`]).
    engine: Engine,
    local: Local,
    debouncer: Debouncer<NoReads, NoCache>,
    watched: BTreeSet<PathBuf>,
    rx: mpsc::Receiver<Msg>,
    state_dir: PathBuf,
    record: Record,
    /// Problems last reported, so that each is logged once.
    reported: Vec<String>,
    backoff: Backoff,
    opts: Options,
    /// When the record was last written.
    saved_at: Option<Instant>,
    /// The server refused the password: stop, rather than send it again and again (Nextcloud
    /// slows every request from this machine down after failed logins).
    refused: Option<String>,
}

/// What the loop has to do, and when.
struct Due {
    /// Local changes waiting to be checked, and since when / the last one.
    pending: BTreeSet<Touched>,
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    /// A sync is needed: local changes, or commits of other devices not yet written here.
    sync: bool,
    /// Not before this (backoff after an error, or a deferred write).
    not_before: Option<Instant>,
    next_poll: Instant,
    next_rescan: Instant,
}

impl Watcher {
    fn run(&mut self) -> Result<u8> {
        self.watch_folders();
        let now = Instant::now();
        let mut due = Due {
            pending: BTreeSet::new(),
            first_change: None,
            last_change: None,
            // Push what changed while no watcher ran, pull what others committed.
            sync: true,
            not_before: None,
            next_poll: now + self.opts.poll,
            next_rescan: now + self.opts.rescan,
        };
        let mut started = false;
        // A little more than one debouncer tick: the events of a burst come out tick by tick.
        let settle = self.opts.debounce / DEBOUNCE_TICKS + Duration::from_millis(30);
        loop {
            // 1. Work that is due.
            let now = Instant::now();
            let remote_ok = due.not_before.is_none_or(|t| now >= t);
            if let (Some(first), Some(last)) = (due.first_change, due.last_change)
                && (now >= last + settle || now >= first + MAX_BATCH)
            {
                let touched = std::mem::take(&mut due.pending);
                due.first_change = None;
                due.last_change = None;
                let check = self.local.check(&self.engine, &touched);
                self.report_problems(check.problems);
                due.sync |= check.dirty;
            }
            if now >= due.next_rescan {
                due.next_rescan = now + self.opts.rescan;
                if self.local.has_unwatched_folder() {
                    self.watch_folders();
                }
                let touched = self.local.rescan();
                if !touched.is_empty() {
                    tracing::info!(files = touched.len(), "rescan found changes");
                    let check = self.local.check(&self.engine, &touched);
                    self.report_problems(check.problems);
                    due.sync |= check.dirty;
                }
            }
            if remote_ok && !due.sync && now >= due.next_poll {
                due.next_poll = now + self.opts.poll;
                match self.poll() {
                    Ok(news) => {
                        self.contact_ok();
                        if news {
                            tracing::debug!("other devices committed");
                            due.sync = true;
                        }
                    }
                    Err(e) => {
                        let temporary = e.is_temporary();
                        self.failed(
                            &anyhow::Error::new(e).context("polling"),
                            temporary,
                            &mut due,
                        );
                    }
                }
            }
            let remote_ok = due.not_before.is_none_or(|t| Instant::now() >= t);
            if due.sync && remote_ok && due.first_change.is_none() {
                due.sync = false;
                due.not_before = None;
                self.sync(&mut due);
                due.next_poll = Instant::now() + self.opts.poll;
                if !started {
                    started = true;
                    self.local.fill_stamps();
                }
            }

            // 2. Wait for the next message or deadline.
            let mut deadline = due.next_rescan;
            if !due.sync {
                deadline = deadline.min(due.next_poll);
            }
            if let (Some(first), Some(last)) = (due.first_change, due.last_change) {
                deadline = deadline.min((last + settle).min(first + MAX_BATCH));
            }
            if let Some(t) = due.not_before {
                deadline = deadline.min(t.max(Instant::now()));
            } else if due.sync && due.first_change.is_none() {
                deadline = Instant::now();
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            if let Some(why) = self.refused.take() {
                tracing::error!(
                    error = %why,
                    "the server refused the password: stopping instead of sending it again; fix it (deltasync login, or the variable or command that gives it) and start the watch again"
                );
                self.record.stopped_ms = Some(now_ms());
                self.save_record();
                return Ok(crate::exit::ERROR);
            }
            let msg = match self.rx.recv_timeout(timeout) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => bail!("the file watcher stopped"),
            };
            match msg {
                Msg::Shutdown(signal) => {
                    tracing::info!(signal, "stopping");
                    break;
                }
                Msg::Files(Ok(events)) => {
                    let now = Instant::now();
                    let mut folder_changed = false;
                    for ev in &events {
                        if ev.need_rescan() {
                            tracing::warn!("the file watcher lost events; rescanning");
                            due.next_rescan = now;
                        }
                        // Reads change nothing (NoReads drops them already).
                        if matches!(ev.kind, EventKind::Access(_)) {
                            continue;
                        }
                        for p in &ev.paths {
                            if let Some(t) = self.local.classify(p) {
                                folder_changed |= t.1.is_none();
                                due.pending.insert(t);
                            }
                        }
                    }
                    if !due.pending.is_empty() {
                        due.first_change.get_or_insert(now);
                        due.last_change = Some(now);
                    }
                    if folder_changed && self.local.has_unwatched_folder() {
                        self.watch_folders();
                    }
                }
                Msg::Files(Err(errors)) => {
                    for e in errors {
                        tracing::warn!(error = %e, "file watcher error; rescanning");
                    }
                    due.next_rescan = Instant::now();
                }
            }
        }
        self.record.stopped_ms = Some(now_ms());
        self.save_record();
        Ok(crate::exit::OK)
    }

    /// Asks the remote whether meta.json changed (the engine's fetch: a conditional GET, so
    /// a 304 is one request with no body and nothing is parsed, except where ETags can go stale
    /// and the engine reads meta.json in full now and then); if it did, brings the mirror up to
    /// date. Returns whether other devices' commits wait to be written here.
    fn poll(&mut self) -> Result<bool, deltasync_engine::EngineError> {
        let (_, _, applied) = self.engine.fetch()?;
        Ok(applied > 0)
    }

    fn watch_folders(&mut self) {
        for folder in self.local.folders_to_watch(&self.watched) {
            match self.debouncer.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(folder = %folder.display(), "watching");
                    self.watched.insert(folder);
                }
                Err(e) => {
                    tracing::warn!(folder = %folder.display(), error = %e, "cannot watch; relying on the rescan")
                }
            }
        }
    }

    fn sync(&mut self, due: &mut Due) {
        let started = Instant::now();
        match child::sync(&self.root) {
            Ok(outcome) => {
                self.synced(&outcome, started);
                if outcome.deferred > 0 {
                    tracing::info!(
                        entities = outcome.deferred,
                        "the app was saving files a pull wanted to write; trying again shortly"
                    );
                    due.sync = true;
                    due.not_before = Some(Instant::now() + DEFERRED_RETRY);
                }
            }
            Err(f) => {
                due.sync = true;
                self.failed(&anyhow::anyhow!("syncing: {}", f.message), f.temporary, due);
            }
        }
    }

    fn synced(&mut self, r: &child::Outcome, started: Instant) {
        let now = now_ms();
        if let Some(seq) = r.committed {
            self.record.last_push_ms = Some(now);
            self.record.last_push_seq = Some(seq);
        }
        if r.down + r.merged > 0 {
            self.record.last_pull_ms = Some(now);
        }
        if r.committed.is_some() || r.down + r.merged > 0 {
            tracing::info!(
                up = r.up,
                down = r.down,
                merged = r.merged,
                commit = r.committed,
                head = r.head,
                ms = started.elapsed().as_millis() as u64,
                "synced"
            );
        }
        for c in &r.conflicts {
            tracing::warn!(
                conflict = %c,
                "both devices changed this field; the other value is kept in the receipt (deltasync conflicts)"
            );
        }
        self.report_problems(r.problems.clone());
        let changed = r.committed.is_some() || r.down + r.merged > 0;
        self.contact_ok();
        if changed {
            self.save_record();
        }
    }

    fn contact_ok(&mut self) {
        self.backoff = error_backoff();
        let had_error = self.record.last_error.take().is_some();
        let first = self.record.last_contact_ms.is_none();
        self.record.last_error_ms = None;
        self.record.last_contact_ms = Some(now_ms());
        if had_error {
            tracing::info!("the remote answers again");
        }
        // An idle poll changes only the time of the last contact: saved now and then.
        if had_error
            || first
            || self
                .saved_at
                .is_none_or(|t| t.elapsed() >= CONTACT_SAVE_INTERVAL)
        {
            self.save_record();
        }
    }

    fn failed(&mut self, e: &anyhow::Error, temporary: bool, due: &mut Due) {
        // RemoteError::Auth, whether from the poll or from a child sync's message.
        let refused = !temporary && format!("{e:#}").contains("access denied for user");
        if refused {
            self.refused = Some(format!("{e:#}"));
        }
        let delay = self
            .backoff
            .next_delay()
            .unwrap_or(Duration::from_secs(300));
        let text = format!("{e:#}");
        if temporary {
            tracing::warn!(error = %text, retry_in_ms = delay.as_millis() as u64, "temporary failure");
        } else {
            tracing::error!(error = %text, retry_in_ms = delay.as_millis() as u64, "failed");
        }
        due.not_before = Some(Instant::now() + delay);
        self.record.last_error = Some(text);
        self.record.last_error_ms = Some(now_ms());
        self.save_record();
    }

    fn report_problems(&mut self, mut problems: Vec<String>) {
        problems.sort();
        problems.dedup();
        for p in &problems {
            if !self.reported.contains(p) {
                tracing::warn!(problem = %p, "file held back: nothing is pushed for it until it is valid again");
            }
        }
        if problems != self.reported {
            self.reported = problems.clone();
            self.record.problems = problems;
            self.save_record();
        }
    }

    fn save_record(&mut self) {
        self.saved_at = Some(Instant::now());
        if let Err(e) = record::write(&self.state_dir, &self.record) {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the watcher's record");
        }
    }
}

/// The watcher's state for `status --json`.
pub fn status_json(dir: &Path) -> serde_json::Value {
    let state_dir = dir.join(STATE_DIR);
    let running = record::is_running(&state_dir);
    let rec = record::read(&state_dir);
    serde_json::json!({ "running": running, "record": rec })
}

/// Prints the watcher's state for `status`.
pub fn print_status(dir: &Path) {
    let state_dir = dir.join(STATE_DIR);
    let running = record::is_running(&state_dir);
    let rec = record::read(&state_dir);
    let ago = |ms: Option<u64>| match ms {
        Some(ms) => format!("{} s ago", record::ago_s(ms)),
        None => "never".to_string(),
    };
    match (&rec, running) {
        (Some(r), true) => println!(
            "watcher:  running (pid {}, for {} s, polling every {} ms)",
            r.pid,
            record::ago_s(r.started_ms),
            r.poll_interval_ms
        ),
        (None, true) => println!("watcher:  running"),
        (_, false) => println!("watcher:  not running"),
    }
    if let Some(r) = rec {
        println!(
            "  last push {}{}, last pull {}, last contact with the remote {}",
            ago(r.last_push_ms),
            r.last_push_seq
                .map(|s| format!(" (seq {s})"))
                .unwrap_or_default(),
            ago(r.last_pull_ms),
            ago(r.last_contact_ms)
        );
        if let Some(e) = &r.last_error {
            println!("  last error ({}): {e}", ago(r.last_error_ms));
        }
        for p in &r.problems {
            println!("  held back: {p}");
        }
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
        assert!(parse_duration("").is_err());
    }
}
