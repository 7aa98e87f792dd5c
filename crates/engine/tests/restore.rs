//! Restores that lose nothing: the plan counts what this device has not pushed yet, and a
//! restore interrupted while it writes the local files is finished by the next sync — no
//! device ever adopts half of it.

mod support;

use std::sync::Arc;

use deltasync_engine::backup::{RestoreSource, Safety};
use deltasync_engine::progress::NoProgress;
use deltasync_remote::MemoryRemote;
use serde_json::{Value, json};
use support::Device;

/// Issue 10: with an unsynced edit of t1 and a new tnew, `restore --at 1` said "Safety: safe"
/// and then reverted t1 and deleted tnew on every device.
#[test]
fn a_restore_plan_counts_unsynced_local_work() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"v": 1}));
    a.sync();
    a.write("t2", &json!({"v": 2}));
    a.sync();
    // Restoring commit 2 is a no-op... but not with unsynced work on top.
    a.write("t1", &json!({"v": "unsynced"}));
    a.write("tnew", &json!({"new": true}));
    let plan = a
        .engine
        .restore_plan(RestoreSource::History(2), &NoProgress)
        .unwrap();
    let find = |id: &str| plan.changes.iter().find(|c| c.id == id).cloned();
    let t1 = find("t1").expect("t1 is in the plan");
    assert!(t1.unsynced && t1.action == "overwrite", "{t1:?}");
    let tnew = find("tnew").expect("tnew is in the plan");
    assert!(tnew.unsynced && tnew.action == "delete", "{tnew:?}");
    assert_eq!(plan.safety, Safety::Dangerous, "{plan:?}");
}

/// Issue 10: a restore killed part-way left a half-restored dataset that the next syncs pushed
/// as ordinary edits. Here the kill comes after the target was recorded and half of the files
/// were written: the next sync finishes the restore, and every device gets all of it.
#[test]
fn an_interrupted_restore_is_finished_by_the_next_sync() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    for i in 0..40 {
        a.write(&format!("t{i}"), &json!({"v": "old"}));
    }
    a.sync();
    for i in 0..40 {
        a.write(&format!("t{i}"), &json!({"v": "new"}));
    }
    a.sync();
    b.sync();
    let plan = a
        .engine
        .restore_plan(RestoreSource::History(1), &NoProgress)
        .unwrap();
    assert_eq!(plan.changes.len(), 40);
    // What restore_apply does before the kill: the target recorded, 13 files written.
    let target: Vec<(String, String, Option<Value>)> = (0..40)
        .map(|i| ("tasks".into(), format!("t{i}"), Some(json!({"v": "old"}))))
        .collect();
    a.engine
        .state()
        .set("restore_target", &serde_json::to_string(&target).unwrap())
        .unwrap();
    for i in 0..13 {
        a.write(&format!("t{i}"), &json!({"v": "old"}));
    }
    // The next sync (any command's, the watcher's) finishes it, as one commit.
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.updated, 40, "{r:?}");
    b.sync();
    for i in 0..40 {
        assert_eq!(b.read(&format!("t{i}")), Some(json!({"v": "old"})), "t{i}");
        assert_eq!(a.read(&format!("t{i}")), Some(json!({"v": "old"})), "t{i}");
    }
    assert!(a.engine.state().get("restore_target").unwrap().is_none());
    // And a whole restore through the API leaves no journal behind.
    let plan = a
        .engine
        .restore_plan(RestoreSource::History(2), &NoProgress)
        .unwrap();
    a.engine.restore_apply(&plan, &NoProgress).unwrap();
    assert!(a.engine.state().get("restore_target").unwrap().is_none());
    b.sync();
    assert_eq!(b.read("t5"), Some(json!({"v": "new"})));
}

/// A restore killed after it recorded its target, then an edit in the app before the next
/// sync: finishing the restore must not overwrite that edit (it is newer than the restore).
/// The edit is kept and pushed, and the report says the restore's value was not applied.
#[test]
fn an_edit_made_after_a_killed_restore_is_kept_when_the_restore_finishes() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    for i in 0..4 {
        a.write(&format!("t{i}"), &json!({"v": "old"}));
    }
    a.sync();
    for i in 0..4 {
        a.write(&format!("t{i}"), &json!({"v": "new"}));
    }
    a.sync();
    b.sync();
    // Killed after recording the target and writing t0.
    let target: Vec<(String, String, Option<Value>)> = (0..4)
        .map(|i| ("tasks".into(), format!("t{i}"), Some(json!({"v": "old"}))))
        .collect();
    a.engine
        .state()
        .set("restore_target", &serde_json::to_string(&target).unwrap())
        .unwrap();
    a.write("t0", &json!({"v": "old"}));
    // The person edits t2 (not yet restored) and t0 (already restored) in the app.
    a.write("t2", &json!({"v": "edited after the kill"}));
    a.write("t0", &json!({"v": "old", "note": "edited too"}));
    let r = a.sync();
    b.sync();
    for (id, want) in [
        ("t0", json!({"v": "old", "note": "edited too"})),
        ("t1", json!({"v": "old"})),
        ("t2", json!({"v": "edited after the kill"})),
        ("t3", json!({"v": "old"})),
    ] {
        assert_eq!(a.read(id), Some(want.clone()), "a: {id}");
        assert_eq!(b.read(id), Some(want), "b: {id}");
    }
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("t2") && p.contains("restore")),
        "the report says t2 kept its edit: {:?}",
        r.problems
    );
}
