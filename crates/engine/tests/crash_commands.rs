//! Crash sweeps of the other commands that write (crash.rs sweeps `sync` and `compact`):
//! `update`, `delete`, `conflicts resolve`, `restore` and `backup`.
//!
//! Each command runs on device A through a [`CrashingRemote`] that "kills the process" at
//! request K, for every K up to the requests of a clean run, in both crash modes; then A is
//! restarted with the healthy remote and every device settles ([`settle_and_check`]: the same
//! data everywhere, consistent local state, meta intact, no orphan left unnamed). The outcome
//! must be one the person can explain:
//!
//! - `update`, `delete`, `conflicts resolve` change the local file first, then sync: after a
//!   crash the change is there and the next sync pushes it, so the outcome is the clean run's;
//! - `restore` is all or nothing: killed before it recorded its target, nothing of it happened
//!   (the outcome of not running it); after, the next sync finishes it (the clean run's);
//! - `backup` only reads: nothing on the remote or on any device changes, and a retry gives a
//!   backup that opens.
//!
//! The local-write phase has no request to crash at: there a file made immutable
//! (`chattr +i`) stops the command at each file in turn, which leaves what a kill leaves.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltasync_engine::SyncOptions;
use deltasync_engine::backup::{Backup, RestoreSource};
use deltasync_engine::progress::NoProgress;
use deltasync_remote::{MemoryRemote, Remote};
use serde_json::json;
use support::settle::{HOUR, Immutable, Outcome, World, settle_and_check, write_at};
use support::{CrashMode, CrashingRemote, Device};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// `update tasks t1 title="oat milk"`.
    Update,
    /// `delete tasks t2`.
    Delete,
    /// `conflicts resolve <t1's receipt> --take remote`, which syncs.
    Resolve,
    /// `restore --at 1 --yes`.
    Restore,
    /// `backup`.
    Backup,
}

/// A and B on one remote, with three commits (B's last one not pulled by A yet) and an open
/// conflict on t1's `prio` (A's 1 kept, B's 3 lost). `a_on_disk` puts A's workspace on a
/// disk file system (for `chattr +i`).
fn prepare(a_on_disk: bool) -> World {
    let remote = Arc::new(MemoryRemote::with_seed(5));
    let mut a = if a_on_disk {
        Device::on_disk(remote.clone(), "a")
    } else {
        Device::new(remote.clone(), "a")
    };
    let mut b = Device::new(remote.clone(), "b");
    write_at(&a, "t1", &json!({"title": "milk", "prio": 0}), 3 * HOUR);
    a.write("t2", &json!({"title": "eggs"}));
    a.write("t3", &json!({"title": "bread"}));
    a.sync();
    b.sync();
    write_at(&b, "t1", &json!({"title": "milk", "prio": 3}), 2 * HOUR);
    b.sync();
    write_at(&a, "t1", &json!({"title": "milk", "prio": 1}), HOUR);
    assert_eq!(
        a.sync().conflicts.len(),
        1,
        "the conflict the sweep resolves"
    );
    b.sync();
    b.write("t3", &json!({"title": "bread", "qty": 2}));
    b.write("tb", &json!({"title": "from b"}));
    b.sync();
    World {
        remote,
        devs: vec![a, b],
    }
}

/// Runs `cmd` on A; `Ok` when it finished.
fn run_command(w: &mut World, cmd: Command) -> Result<(), String> {
    let e = |e: deltasync_engine::EngineError| e.to_string();
    let a = &mut w.a().engine;
    match cmd {
        Command::Update => a
            .update_entity("tasks", "t1", &[(vec!["title".into()], json!("oat milk"))])
            .map(drop)
            .map_err(e),
        Command::Delete => a.delete_entity("tasks", "t2").map(drop).map_err(e),
        Command::Resolve => {
            let id = a.conflicts().map_err(e)?[0].id.clone();
            a.resolve_conflict(&id, false).map_err(e)?;
            a.sync(&SyncOptions::default()).map(drop).map_err(e)
        }
        Command::Restore => {
            let plan = a
                .restore_plan(RestoreSource::History(1), &NoProgress)
                .map_err(e)?;
            a.restore_apply(&plan, &NoProgress).map(drop).map_err(e)
        }
        Command::Backup => {
            let (zip, manifest) = a.backup(&NoProgress).map_err(e)?;
            let b = Backup::open(&zip).map_err(e)?;
            assert_eq!(b.manifest.head, manifest.head);
            Ok(())
        }
    }
}

/// The outcome of running `cmd` cleanly (`Some`) or not at all (`None`), and the requests
/// the clean run made.
fn reference(cmd: Option<Command>) -> (Outcome, Vec<String>) {
    let mut w = prepare(false);
    let crashing = Arc::new(CrashingRemote::new(
        w.remote.clone(),
        None,
        CrashMode::BeforeSend,
    ));
    w.a().restart(crashing.clone());
    if let Some(cmd) = cmd {
        run_command(&mut w, cmd).unwrap_or_else(|e| panic!("{cmd:?}, clean run: {e}"));
    }
    let requests = crashing.requests();
    let remote: Arc<dyn Remote> = w.remote.clone();
    w.a().restart(remote);
    (
        settle_and_check(&mut w, &BTreeSet::new(), &format!("{cmd:?}, clean run")),
        requests,
    )
}

const MODES: [CrashMode; 2] = [CrashMode::BeforeSend, CrashMode::AnswerLost];

fn same(got: &Outcome, want: &Outcome, ctx: &str) {
    assert_eq!(got.data, want.data, "{ctx}: data");
    assert_eq!(got.receipts, want.receipts, "{ctx}: receipts");
    assert_eq!(got.commits, want.commits, "{ctx}: commits");
}

/// Every crash point of `cmd`, in both modes.
fn sweep(cmd: Command) {
    let (clean, requests) = reference(Some(cmd));
    let (untouched, _) = reference(None);
    assert!(!requests.is_empty(), "{cmd:?} makes requests");
    if cmd != Command::Backup {
        assert_ne!(clean.data, untouched.data, "{cmd:?} changes something");
    }
    for mode in MODES {
        for (k, request) in requests.iter().enumerate() {
            let ctx = format!("{cmd:?}, crash at request {k} ({request}) {mode:?}");
            let mut w = prepare(false);
            let before = w.remote.files();
            let crashing = Arc::new(CrashingRemote::new(w.remote.clone(), Some(k), mode));
            w.a().restart(crashing.clone());
            let result = run_command(&mut w, cmd);
            assert!(
                result.is_err(),
                "{ctx}: the command went on after the process died"
            );
            let recorded_restore = w.a().engine.state().get("restore_target").unwrap();
            let mut lost_puts = BTreeSet::new();
            // The names of new deltas differ from run to run: this run's.
            let crashed_at = crashing.crashed_at().expect("k is within the requests");
            if mode == CrashMode::AnswerLost
                && let Some(path) = crashed_at.strip_prefix("PUT ")
            {
                lost_puts.insert(path.to_string());
            }
            if cmd == Command::Backup {
                assert_eq!(
                    w.remote.files(),
                    before,
                    "{ctx}: a backup wrote to the remote"
                );
            }
            let remote: Arc<dyn Remote> = w.remote.clone();
            w.a().restart(remote);
            let got = settle_and_check(&mut w, &lost_puts, &ctx);
            match cmd {
                Command::Backup => {
                    same(&got, &untouched, &ctx);
                    run_command(&mut w, cmd).unwrap_or_else(|e| panic!("{ctx}: retry: {e}"));
                }
                Command::Restore if recorded_restore.is_none() => same(&got, &untouched, &ctx),
                _ => same(&got, &clean, &ctx),
            }
        }
    }
}

#[test]
fn crash_at_every_request_of_an_update() {
    sweep(Command::Update);
}

#[test]
fn crash_at_every_request_of_a_delete() {
    sweep(Command::Delete);
}

#[test]
fn crash_at_every_request_of_a_conflict_resolution() {
    sweep(Command::Resolve);
}

#[test]
fn crash_at_every_request_of_a_restore() {
    sweep(Command::Restore);
}

#[test]
fn crash_at_every_request_of_a_backup() {
    sweep(Command::Backup);
}

/// The local-write phase of `cmd`: each of `blockable` made immutable in turn stops the
/// command there. What the outcome must be: the clean run's when `finished_later` (the next
/// sync completes the command), else not having run it.
fn sweep_local_writes(cmd: Command, blockable: &[&str], finished_later: bool) {
    let (clean, _) = reference(Some(cmd));
    let (untouched, _) = reference(None);
    let want = if finished_later { &clean } else { &untouched };
    for blocked in blockable {
        let ctx = format!("{cmd:?}, local writes stopped at {blocked}");
        let mut w = prepare(true);
        let remote: Arc<dyn Remote> = w.remote.clone();
        // Pull first, so that the block stops the command's own write, not the pull.
        w.a().sync();
        let Some(guard) = Immutable::set(&w.a().path(blocked)) else {
            eprintln!(
                "SKIPPED {ctx}: `chattr +i` does not work here (needs root on a disk file system)"
            );
            assert!(
                std::env::var_os("CI").is_none(),
                "{ctx}: CI must be able to run this"
            );
            return;
        };
        let result = run_command(&mut w, cmd);
        assert!(result.is_err(), "{ctx}: the command went on");
        drop(guard);
        w.a().restart(remote);
        let got = settle_and_check(&mut w, &BTreeSet::new(), &ctx);
        assert_eq!(got.data, want.data, "{ctx}: data");
        assert_eq!(got.receipts, want.receipts, "{ctx}: receipts");
    }
}

#[test]
fn a_restore_stopped_while_it_writes_the_files_is_finished_by_the_next_sync() {
    // Restoring commit 1 rewrites t1, t3 and removes tb.
    sweep_local_writes(Command::Restore, &["t1", "t3", "tb"], true);
}

#[test]
fn an_update_delete_or_resolution_stopped_at_its_file_did_not_happen() {
    sweep_local_writes(Command::Update, &["t1"], false);
    sweep_local_writes(Command::Delete, &["t2"], false);
    sweep_local_writes(Command::Resolve, &["t1"], false);
}

/// The data each reference ends with, written out by hand, so that the sweeps above compare
/// against something known to be right.
#[test]
fn the_references_are_what_each_command_means() {
    let data = |cmd| reference(cmd).0.data;
    let untouched = json!({
        "t1": {"title": "milk", "prio": 1},
        "t2": {"title": "eggs"},
        "t3": {"title": "bread", "qty": 2},
        "tb": {"title": "from b"},
    });
    let as_map = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap()
    };
    assert_eq!(data(None), as_map(untouched.clone()));
    assert_eq!(data(Some(Command::Backup)), as_map(untouched.clone()));
    let mut want = untouched.clone();
    want["t1"]["title"] = json!("oat milk");
    assert_eq!(data(Some(Command::Update)), as_map(want));
    let mut want = untouched.clone();
    want.as_object_mut().unwrap().remove("t2");
    assert_eq!(data(Some(Command::Delete)), as_map(want));
    let mut want = untouched.clone();
    want["t1"]["prio"] = json!(3);
    assert_eq!(data(Some(Command::Resolve)), as_map(want));
    assert_eq!(
        data(Some(Command::Restore)),
        as_map(json!({
            "t1": {"title": "milk", "prio": 0},
            "t2": {"title": "eggs"},
            "t3": {"title": "bread"},
        }))
    );
}
