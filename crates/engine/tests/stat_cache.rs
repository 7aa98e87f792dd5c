//! Cost what changed: a fetch answered 304 does not parse meta.json again.

mod support;

use std::sync::Arc;

use deltasync_engine::EngineError;
use deltasync_remote::MemoryRemote;
use serde_json::json;
use support::Device;

fn pair() -> (Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(7));
    let a = Device::new(remote.clone(), "a");
    let b = Device::new(remote, "b");
    (a, b)
}

/// The engine keeps meta.json parsed between syncs: a 304 reads two small state values, not
/// the stored copy (here made unreadable behind the engine's back). A copy written by another
/// process (a new revision) is read again.
#[test]
fn a_304_does_not_parse_the_stored_meta_again() {
    let (mut a, _) = pair();
    a.write("t1", &json!({"title": "milk"}));
    assert_eq!(a.sync().committed, Some(1));
    a.sync();
    a.engine.state().set("meta", "not json").unwrap();
    let r = a.sync();
    assert_eq!((r.committed, r.head), (None, 1));
    a.write("t2", &json!({"title": "tea"}));
    assert_eq!(a.sync().committed, Some(2));
    // Another process stored a copy (its revision differs): read, not taken from memory.
    a.engine.state().set("meta", "not json").unwrap();
    a.engine.state().set("meta_rev", "another").unwrap();
    match a.try_sync() {
        Err(EngineError::Store(e)) => assert!(e.to_string().contains("meta.json"), "{e}"),
        other => panic!("expected the stored copy to be read: {other:?}"),
    }
}
