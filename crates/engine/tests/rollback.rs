//! A remote that lost commits this device applied — emptied and initialised again, put back
//! from an older copy, or emptied outright — is refused (nothing changed on either side), and
//! `repair` puts this device's data back on it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use deltasync_engine::EngineError;
use deltasync_remote::MemoryRemote;
use serde_json::json;
use support::Device;

fn wipe(remote: &MemoryRemote) {
    for path in remote.files().keys() {
        remote.raw_delete(path);
    }
}

fn put_back(remote: &MemoryRemote, copy: &BTreeMap<String, Vec<u8>>) {
    wipe(remote);
    for (path, bytes) in copy {
        remote.raw_put(path, bytes);
    }
}

fn assert_refused(r: Result<deltasync_engine::SyncReport, EngineError>, what: &str) -> String {
    match r {
        Err(e @ EngineError::RemoteBehind { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("a repair puts this device's data back"),
                "{what}: {text}"
            );
            assert!(!text.contains("deltasync init"), "{what}: {text}");
            assert!(!e.is_temporary(), "{what}");
            text
        }
        other => panic!("{what}: expected RemoteBehind, got {other:?}"),
    }
}

#[test]
fn a_remote_emptied_and_initialised_again_is_refused_and_repaired() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    for i in 0..5 {
        a.write(&format!("t{i}"), &json!({"i": i}));
    }
    a.sync();
    b.sync();
    b.write("t1", &json!({"i": 1, "by": "b"}));
    b.sync();
    a.sync();
    // Someone empties the remote and a new device initialises it (as the old error advised).
    wipe(&remote);
    let mut c = Device::new(remote.clone(), "c");
    c.write("c1", &json!({"from": "c"}));
    c.sync();
    let before = a.all();
    assert_refused(a.try_sync(), "a after the wipe");
    assert_eq!(a.all(), before, "a refused sync changed local files");
    // The dry run says what would go back; nothing is written.
    let files = remote.files();
    let plan = a.engine.repair(true).unwrap();
    assert_eq!(remote.files(), files, "a dry run wrote to the remote");
    assert_eq!((plan.push, plan.pull), (5, 1), "{plan:?}");
    let done = a.engine.repair(false).unwrap();
    assert!(
        done.sync.as_ref().and_then(|s| s.committed).is_some(),
        "{done:?}"
    );
    assert_eq!(a.read("c1"), Some(json!({"from": "c"})));
    // Every other device: b is refused too, repairs, and all agree.
    assert_refused(b.try_sync(), "b after the wipe");
    b.engine.repair(false).unwrap();
    c.sync();
    a.sync();
    assert_eq!(a.all(), b.all());
    assert_eq!(a.all(), c.all());
    assert_eq!(c.read("t1"), Some(json!({"i": 1, "by": "b"})));
    assert_eq!(c.all().len(), 6);
}

#[test]
fn a_remote_put_back_from_an_older_copy_is_refused() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"v": 1}));
    a.sync();
    let old = remote.files();
    a.write("t1", &json!({"v": 2}));
    a.write("t2", &json!({"v": 2}));
    a.sync();
    put_back(&remote, &old);
    let text = assert_refused(a.try_sync(), "an older copy");
    assert!(
        text.contains("commit 1") && text.contains("commit 2"),
        "{text}"
    );
    a.engine.repair(false).unwrap();
    let mut fresh = Device::new(remote.clone(), "fresh");
    fresh.sync();
    assert_eq!(fresh.read("t1"), Some(json!({"v": 2})));
    assert_eq!(fresh.read("t2"), Some(json!({"v": 2})));
}

#[test]
fn an_emptied_remote_is_not_advice_to_init() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"v": 1}));
    a.sync();
    wipe(&remote);
    let text = assert_refused(a.try_sync(), "an emptied remote");
    assert!(text.contains("no meta.json"), "{text}");
    // repair lays the remote out again and pushes everything.
    a.engine.repair(false).unwrap();
    let mut fresh = Device::new(remote.clone(), "fresh");
    fresh.sync();
    assert_eq!(fresh.read("t1"), Some(json!({"v": 1})));
}

/// Put back from an older copy, and others committed on top since, past this device's head:
/// the head alone does not tell, the history below it does.
#[test]
fn an_older_copy_with_newer_commits_on_top_is_refused() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"v": 1}));
    a.sync();
    let old = remote.files();
    for v in 2..=3 {
        a.write("t1", &json!({"v": v}));
        a.sync();
    }
    // Another device commits on top, so a's commits are confirmed (not ones a racing writer
    // may still have taken), and a syncs: it has applied commits 1 to 4.
    let mut b = Device::new(remote.clone(), "b");
    b.sync();
    b.write("b1", &json!({"b": 1}));
    b.sync();
    a.sync();
    put_back(&remote, &old);
    let mut c = Device::new(remote.clone(), "c");
    c.sync();
    for i in 0..4 {
        c.write(&format!("c{i}"), &json!({"i": i}));
        c.sync();
    }
    let text = assert_refused(a.try_sync(), "an older copy with commits on top");
    assert!(text.contains("put back from an older copy"), "{text}");
    a.engine.repair(false).unwrap();
    c.sync();
    assert_eq!(c.read("t1"), Some(json!({"v": 3})));
}
