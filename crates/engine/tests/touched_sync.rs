//! A sync handed a file watcher's touched paths (`Engine::sync_touched`) reads those files,
//! the entities the remote changed and those whose base changed since their file was read —
//! and takes no other entity for changed or deleted; a sync without them still finds every
//! change by the files' stats.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deltasync_engine::{SyncOptions, SyncReport, Touched};
use deltasync_remote::{MemoryRemote, Remote};
use serde_json::json;
use support::{CrashMode, CrashingRemote, Device};

fn pair() -> (Arc<MemoryRemote>, Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(7));
    let mut a = Device::new(remote.clone(), "a");
    let b = Device::new(remote.clone(), "b");
    a.engine.set_racy_window(Duration::ZERO);
    (remote, a, b)
}

fn touched(ids: &[&str]) -> BTreeSet<Touched> {
    ids.iter()
        .map(|id| Touched::File {
            collection: "tasks".into(),
            name: format!("{id}.json"),
        })
        .collect()
}

fn sync_touched(d: &mut Device, ids: &[&str]) -> SyncReport {
    d.engine
        .sync_touched(&SyncOptions::default(), &touched(ids))
        .unwrap()
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Four entities synced on both devices, their files older than any racy window; and a sync
/// of nothing, so that what the first sync wrote is read once and found unchanged.
fn synced() -> (Arc<MemoryRemote>, Device, Device) {
    let (remote, mut a, mut b) = pair();
    let old = SystemTime::now() - Duration::from_secs(600);
    for id in ["t1", "t2", "t3", "t4"] {
        a.write(id, &json!({"n": 1}));
        set_mtime(&a.path(id), old);
    }
    a.sync();
    a.sync();
    b.sync();
    (remote, a, b)
}

/// Only the touched files are pushed; an edit the watcher did not report is left alone, not
/// taken for anything, and the next sync that lists the folder pushes it.
#[test]
fn a_touched_sync_pushes_exactly_the_touched_files_and_a_listing_sync_the_rest() {
    let (_, mut a, mut b) = synced();
    a.write("t1", &json!({"n": 2}));
    a.write("t2", &json!({"n": 2}));
    let r = sync_touched(&mut a, &["t1"]);
    let c = &r.collections["tasks"];
    assert_eq!((c.up.updated, c.unchanged), (1, 3), "{r:?}");
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"n": 2})));
    assert_eq!(b.read("t2"), Some(json!({"n": 1})));
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.updated, 1, "{r:?}");
    b.sync();
    assert_eq!(b.read("t2"), Some(json!({"n": 2})));
}

/// A file deleted behind the watcher's back is not deleted by a touched sync (it never looked
/// there); the next listing finds the deletion.
#[test]
fn a_touched_sync_never_takes_an_unlooked_at_entity_for_deleted() {
    let (_, mut a, mut b) = synced();
    a.delete("t3");
    let r = sync_touched(&mut a, &[]);
    assert_eq!(r.committed, None, "{r:?}");
    assert_eq!(r.collections["tasks"].unchanged, 4);
    b.sync();
    assert_eq!(b.read("t3"), Some(json!({"n": 1})));
    // A touched deletion is pushed.
    a.delete("t4");
    let r = sync_touched(&mut a, &["t4"]);
    assert_eq!(r.collections["tasks"].up.deleted, 1, "{r:?}");
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.deleted, 1, "{r:?}");
    b.sync();
    assert_eq!((b.read("t3"), b.read("t4")), (None, None));
}

/// What other devices committed is pulled by a touched sync with no touched file at all.
#[test]
fn a_touched_sync_pulls_what_the_remote_changed() {
    let (_, mut a, mut b) = synced();
    b.write("t2", &json!({"n": 5}));
    b.delete("t4");
    b.write("t9", &json!({"n": 9}));
    b.sync();
    let r = sync_touched(&mut a, &[]);
    let down = r.collections["tasks"].down;
    assert_eq!((down.new, down.updated, down.deleted), (1, 1, 1), "{r:?}");
    assert_eq!(a.read("t2"), Some(json!({"n": 5})));
    assert_eq!(a.read("t4"), None);
    assert_eq!(a.read("t9"), Some(json!({"n": 9})));
    assert_eq!(a.sync().committed, None);
}

/// A change a sync read but could not push (the remote failed) is pushed by the next touched
/// sync though nothing touches it again: its file no longer holds its base, so it is read
/// again until it does.
#[test]
fn a_change_read_by_a_failed_sync_is_pushed_by_the_next_touched_sync() {
    let (remote, mut a, mut b) = synced();
    let old = SystemTime::now() - Duration::from_secs(600);
    let dying: Arc<dyn Remote> = Arc::new(CrashingRemote::new(
        remote.clone(),
        Some(1),
        CrashMode::BeforeSend,
    ));
    a.restart(dying);
    a.engine.set_racy_window(Duration::ZERO);
    a.write("t2", &json!({"n": 7}));
    set_mtime(&a.path("t2"), old);
    let failed = a
        .engine
        .sync_touched(&SyncOptions::default(), &touched(&["t2"]));
    assert!(failed.is_err(), "{failed:?}");
    a.restart(remote);
    a.engine.set_racy_window(Duration::ZERO);
    let r = sync_touched(&mut a, &[]);
    assert_eq!(r.collections["tasks"].up.updated, 1, "{r:?}");
    b.sync();
    assert_eq!(b.read("t2"), Some(json!({"n": 7})));
}

/// The safety net: an edit no watcher reported is found by the next sync once the engine
/// forgets the files' stats (as every hour), even a touched sync: it reads every file.
#[test]
fn forgetting_the_stats_makes_even_a_touched_sync_read_every_file() {
    let (_, mut a, mut b) = synced();
    a.write("t3", &json!({"n": 3}));
    assert_eq!(sync_touched(&mut a, &[]).committed, None);
    a.engine.forget_file_stats().unwrap();
    let r = sync_touched(&mut a, &[]);
    assert_eq!(r.collections["tasks"].up.updated, 1, "{r:?}");
    b.sync();
    assert_eq!(b.read("t3"), Some(json!({"n": 3})));
}

/// A base and mirror put back under a file nobody touched (as the journal's recovery of a
/// lost commit does) are read again by the next sync, touched or listing, and the file's
/// content pushed.
#[test]
fn a_base_changed_under_an_untouched_file_is_read_again() {
    for listing in [false, true] {
        let (_, mut a, mut b) = synced();
        let state = a.engine.state();
        let mut m = state.mirror("tasks", "t1").unwrap().unwrap();
        m.content = Some(json!({"n": 0}));
        state.set_mirror("tasks", "t1", Some(&m)).unwrap();
        state
            .set_base("tasks", "t1", Some((m.version, &m.content)))
            .unwrap();
        let r = if listing {
            a.sync()
        } else {
            sync_touched(&mut a, &[])
        };
        assert!(r.committed.is_some(), "listing {listing}: {r:?}");
        b.sync();
        assert_eq!(b.read("t1"), Some(json!({"n": 1})));
        assert_eq!(a.sync().committed, None);
    }
}

/// A full scan holds only what changed, but remembers every file it read: the next sync
/// takes the unchanged ones by their stat again, and the changed one is pushed once.
#[test]
fn a_full_scan_remembers_the_files_it_dropped() {
    let (_, mut a, mut b) = synced();
    a.write("t2", &json!({"n": 2}));
    set_mtime(&a.path("t2"), SystemTime::now() - Duration::from_secs(600));
    a.engine.forget_file_stats().unwrap();
    assert!(a.engine.state().known_files("tasks").unwrap().is_empty());
    let r = a.sync();
    let c = &r.collections["tasks"];
    assert_eq!((c.up.updated, c.unchanged), (1, 3), "{r:?}");
    assert_eq!(a.engine.state().known_files("tasks").unwrap().len(), 4);
    assert_eq!(a.sync().committed, None);
    b.sync();
    assert_eq!(b.read("t2"), Some(json!({"n": 2})));
}
