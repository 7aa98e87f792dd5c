//! What a sync reads of the pending-commit journal: a push or a pull costs what changed, not
//! the size of earlier commits still waiting for confirmation (an import's entry holds every
//! entity it imported).

mod support;

use std::sync::Arc;

use deltasync_remote::MemoryRemote;
use serde_json::json;
use support::Device;

/// Overwrites the JSON of the journal entry of commit `seq` with bytes no parser accepts,
/// through a second connection to the device's state database: a sync that parses it fails.
fn spoil_entry(d: &Device, seq: u64) {
    let db = d.dir.path().join(".deltasync").join("state.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let changed = conn
        .execute(
            "UPDATE journal SET json = '{not json' WHERE seq = ?1",
            [seq as i64],
        )
        .unwrap();
    assert_eq!(changed, 1, "commit {seq} has a journal entry");
}

/// Issue 12: a device's commits stay in the journal until another device's write confirms
/// them, the import's among them. Each later push carried every unconfirmed entry forward by
/// parsing and rewriting it: at 100k entities 0.8 s and 375 MB a push
/// (`deltasync sync` after one saved file, against 0.07 s for a no-op). A push now touches no
/// earlier entry, and a pull that confirms them reads none.
#[test]
fn a_push_or_pull_reads_no_earlier_journal_entry() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    for i in 0..200 {
        a.write(&format!("t{i:03}"), &json!({"title": format!("task {i}")}));
    }
    assert_eq!(a.sync().committed, Some(1), "the import");
    spoil_entry(&a, 1);
    for n in 0..3 {
        a.write("t007", &json!({"title": format!("edit {n}")}));
        assert!(a.sync().committed.is_some());
        // A no-op in between (after its own commit a device reads meta.json again).
        assert_eq!(a.sync().committed, None);
    }
    // Another device commits on top: a's next sync confirms its commits, reading none.
    let mut b = Device::new(remote.clone(), "b");
    b.sync();
    b.write("t008", &json!({"title": "from b"}));
    assert!(b.sync().committed.is_some());
    a.sync();
    assert_eq!(a.read("t008"), Some(json!({"title": "from b"})));
    assert_eq!(
        a.engine.state().pending_states().unwrap(),
        vec![],
        "every commit of a is confirmed"
    );
}
