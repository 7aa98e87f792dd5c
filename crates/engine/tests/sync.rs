//! Two and three devices on one remote: the scenarios of the core issue, on the in-memory
//! remote (with faults) and on a real local folder.

mod support;

use std::sync::Arc;

use deltasync_engine::{EngineError, SyncOptions};
use deltasync_meta::ConflictKind;
use deltasync_remote::{Faults, GetResult, LocalFolder, MemoryRemote, Remote, RemoteError};
use serde_json::json;
use support::{Device, config, tempdir};

fn pair() -> (Arc<MemoryRemote>, Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(1));
    let a = Device::new(remote.clone(), "a");
    let b = Device::new(remote.clone(), "b");
    (remote, a, b)
}

#[test]
fn create_on_a_appears_on_b() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    let r = a.sync();
    assert_eq!(r.committed, Some(1));
    assert_eq!(r.collections["tasks"].up.new, 1);
    let rb = b.sync();
    assert_eq!(rb.collections["tasks"].down.new, 1);
    assert_eq!(b.read("t1"), Some(json!({"title": "milk"})));
    // Nothing more to do on either side.
    assert_eq!(a.sync().committed, None);
    assert_eq!(b.sync().committed, None);
}

#[test]
fn different_fields_both_survive() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk", "done": false}));
    a.sync();
    b.sync();
    a.write("t1", &json!({"title": "oat milk", "done": false}));
    b.write("t1", &json!({"title": "milk", "done": true}));
    a.sync();
    let rb = b.sync();
    assert!(rb.conflicts.is_empty(), "{:?}", rb.conflicts);
    a.sync();
    let want = json!({"title": "oat milk", "done": true});
    assert_eq!(a.read("t1"), Some(want.clone()));
    assert_eq!(b.read("t1"), Some(want));
}

#[test]
fn same_field_one_winner_one_receipt_on_both_devices() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk", "prio": 0}));
    a.sync();
    b.sync();
    a.write("t1", &json!({"title": "milk", "prio": 1}));
    b.write("t1", &json!({"title": "milk", "prio": 3}));
    a.sync();
    let rb = b.sync();
    assert_eq!(rb.conflicts.len(), 1);
    let c = &rb.conflicts[0];
    assert_eq!(c.field, vec!["prio".to_string()]);
    assert_eq!(c.kind, ConflictKind::Field);
    let mut values = [c.kept.clone(), c.lost.clone()];
    values.sort_by_key(|v| v.as_i64());
    assert_eq!(values, [json!(1), json!(3)]);
    a.sync();
    assert_eq!(a.read("t1"), b.read("t1"));
    assert_eq!(a.read("t1").unwrap()["prio"], c.kept);
    // The receipt travelled to a.
    let on_a = a.engine.conflicts().unwrap();
    assert!(on_a.iter().any(|r| r.id == c.id && !r.resolved));
}

#[test]
fn resolve_takes_the_other_value_everywhere() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"prio": 0}));
    a.sync();
    b.sync();
    a.write("t1", &json!({"prio": 1}));
    b.write("t1", &json!({"prio": 3}));
    a.sync();
    let c = b.sync().conflicts.remove(0);
    a.sync();
    // On a, take the value that lost.
    let take_local = c.lost_by == a.engine.device_id();
    a.engine.resolve_conflict(&c.id, take_local).unwrap();
    a.sync();
    b.sync();
    assert_eq!(a.read("t1").unwrap()["prio"], c.lost);
    assert_eq!(b.read("t1").unwrap()["prio"], c.lost);
    assert!(b.engine.conflicts().unwrap().iter().all(|r| r.resolved));
}

#[test]
fn delete_on_a_and_edit_on_b_keeps_the_edit() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    a.delete("t1");
    b.write("t1", &json!({"title": "oat milk"}));
    a.sync();
    let rb = b.sync();
    assert_eq!(rb.conflicts.len(), 1);
    assert_eq!(rb.conflicts[0].kind, ConflictKind::DeleteEdit);
    a.sync();
    assert_eq!(a.read("t1"), Some(json!({"title": "oat milk"})));
    assert_eq!(b.read("t1"), Some(json!({"title": "oat milk"})));
}

#[test]
fn plain_delete_propagates() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    b.delete("t1");
    assert_eq!(b.sync().collections["tasks"].up.deleted, 1);
    a.sync();
    assert_eq!(a.read("t1"), None);
}

#[test]
fn first_sync_with_existing_data_drops_nothing() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "from a", "x": 1}));
    b.write("t1", &json!({"title": "from b", "y": 2}));
    b.write("t2", &json!({"only": "b"}));
    a.sync();
    let rb = b.sync();
    a.sync();
    let t1 = a.read("t1").unwrap();
    assert_eq!(t1["x"], json!(1));
    assert_eq!(t1["y"], json!(2));
    assert_eq!(rb.conflicts.len(), 1, "title differs: one receipt");
    assert_eq!(a.all(), b.all());
    assert_eq!(a.read("t2"), Some(json!({"only": "b"})));
}

#[test]
fn half_written_file_is_held_not_deleted() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    std::fs::write(a.path("t1"), b"{\"title\": \"mi").unwrap();
    let r = a.sync();
    assert_eq!(r.committed, None, "nothing pushed for the broken file");
    assert_eq!(r.collections["tasks"].held, 1);
    assert!(
        r.problems.iter().any(|p| p.contains("t1.json")),
        "{:?}",
        r.problems
    );
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"title": "milk"})));
    // The app finishes its save: it goes out.
    a.write("t1", &json!({"title": "milk!"}));
    assert_eq!(a.sync().committed, Some(2));
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"title": "milk!"})));
}

#[test]
fn mass_delete_is_refused_unless_allowed() {
    let (_, mut a, _b) = pair();
    for i in 0..30 {
        a.write(&format!("t{i}"), &json!({"i": i}));
    }
    a.sync();
    for i in 0..20 {
        a.delete(&format!("t{i}"));
    }
    let err = a.try_sync().unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::MassDelete {
                deletes: 20,
                total: 30,
                ..
            }
        ),
        "{err}"
    );
    // What to run is the binary's hint (src/hints.rs); the library says nothing was changed.
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    let r = a
        .engine
        .sync(&SyncOptions {
            allow_mass_delete: true,
            ..SyncOptions::default()
        })
        .unwrap();
    assert_eq!(r.collections["tasks"].up.deleted, 20);
}

/// Issue 10: a small collection emptied all at once (an app writing a fresh empty document)
/// went out with no guard, since the guard wanted more than 10 deletes.
#[test]
fn emptying_a_small_collection_is_refused_unless_allowed() {
    let (_, mut a, mut b) = pair();
    for i in 0..5 {
        a.write(&format!("t{i}"), &json!({"i": i}));
    }
    a.sync();
    b.sync();
    for i in 0..5 {
        a.delete(&format!("t{i}"));
    }
    let err = a.try_sync().unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::MassDelete {
                deletes: 5,
                total: 5,
                ..
            }
        ),
        "{err}"
    );
    b.sync();
    assert_eq!(b.all().len(), 5, "nothing went out");
    // Deleting some (not all) of a small collection is an ordinary edit.
    a.write("t0", &json!({"i": 0}));
    a.write("t1", &json!({"i": 1}));
    assert_eq!(a.sync().collections["tasks"].up.deleted, 3);
}

#[test]
fn dry_run_changes_nothing() {
    let (remote, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    b.write("t2", &json!({"title": "eggs"}));
    let before = remote.files();
    let r = b
        .engine
        .sync(&SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        })
        .unwrap();
    assert_eq!(r.collections["tasks"].down.new, 1);
    assert_eq!(r.collections["tasks"].up.new, 1);
    assert_eq!(remote.files(), before);
    assert_eq!(b.read("t1"), None);
}

#[test]
fn noop_sync_is_one_conditional_request() {
    let (remote, mut a, _b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    remote.reset_stats();
    a.sync();
    let s = remote.stats();
    assert_eq!(s.requests(), 1, "{s:?}");
    assert_eq!(s.not_modified, 1);
    assert_eq!(s.bytes_down, 0);
}

#[test]
fn push_of_one_entity_is_two_puts_and_one_get() {
    let (remote, mut a, _b) = pair();
    for i in 0..50 {
        a.write(&format!("t{i}"), &json!({"i": i}));
    }
    a.sync();
    a.write("t7", &json!({"i": 7, "done": true}));
    remote.reset_stats();
    a.sync();
    let s = remote.stats();
    assert_eq!((s.requests(), s.puts), (3, 2), "{s:?}");
}

/// A view of a remote whose meta.json reads are frozen at one moment: a device that read meta
/// just before another device's commit, as in a real race.
struct FrozenMeta {
    inner: Arc<MemoryRemote>,
    frozen: std::sync::Mutex<Option<(Vec<u8>, deltasync_remote::Etag)>>,
}

impl FrozenMeta {
    fn freeze(&self) {
        match self.inner.get("meta.json", None).unwrap() {
            GetResult::Found { body, etag } => {
                *self.frozen.lock().unwrap() = Some((body, etag.unwrap()));
            }
            other => panic!("{other:?}"),
        }
    }
    fn thaw(&self) {
        *self.frozen.lock().unwrap() = None;
    }
}

impl deltasync_remote::Forward for FrozenMeta {
    fn inner(&self) -> &dyn Remote {
        &*self.inner
    }
    fn read(
        &self,
        path: &str,
        inm: Option<&deltasync_remote::Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        if path == "meta.json"
            && let Some((body, etag)) = self.frozen.lock().unwrap().clone()
        {
            if inm == Some(&etag) {
                return Ok(GetResult::NotModified);
            }
            return Ok(GetResult::Found {
                body,
                etag: Some(etag),
            });
        }
        self.forward_read(path, inm, max_len)
    }
    fn describe(&self) -> String {
        "frozen-meta".into()
    }
}

#[test]
fn commits_lost_to_a_non_atomic_server_are_made_again() {
    let remote = Arc::new(MemoryRemote::with_seed(3));
    let b_view = Arc::new(FrozenMeta {
        inner: remote.clone(),
        frozen: std::sync::Mutex::new(None),
    });
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(b_view.clone(), "b");
    a.write("t1", &json!({"x": 1}));
    a.sync();
    b.sync();
    // b read meta just before a commits; the server lets b's stale If-Match win too.
    remote.set_faults(Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    });
    b_view.freeze();
    a.write("ta", &json!({"from": "a"}));
    a.write("t1", &json!({"x": 2}));
    assert_eq!(a.sync().committed, Some(2));
    b.write("tb", &json!({"from": "b"}));
    assert_eq!(b.sync().committed, Some(2), "b won with a stale etag too");
    b_view.thaw();
    remote.set_faults(Faults::default());
    // a's commit vanished from meta: a must notice and commit it again.
    let ra = a.sync();
    assert_eq!(ra.recommitted, 1);
    for _ in 0..2 {
        b.sync();
        a.sync();
    }
    assert_eq!(a.all(), b.all());
    assert_eq!(b.read("ta"), Some(json!({"from": "a"})));
    assert_eq!(b.read("t1"), Some(json!({"x": 2})));
    assert_eq!(a.read("tb"), Some(json!({"from": "b"})));
}

#[test]
fn crash_after_meta_write_is_finished_on_restart() {
    let remote = Arc::new(MemoryRemote::with_seed(4));
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    a.write("t1", &json!({"x": 1}));
    // The meta write is applied but its answer lost, every time: the sync fails with an
    // unknown outcome after the server has the commit.
    remote.set_faults(Faults {
        lost_response_rate: 1.0,
        ..Faults::default()
    });
    let _ = a.try_sync();
    remote.set_faults(Faults::default());
    a.restart(remote.clone());
    a.sync();
    a.sync();
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"x": 1})));
    // Applied exactly once: one live entity, no duplicate commit of it pending.
    assert_eq!(
        a.engine.status().unwrap().collections["tasks"].remote_entities,
        1
    );
    assert_eq!(a.sync().committed, None);
}

#[test]
fn transient_errors_are_retried_or_reported_never_state() {
    let remote = Arc::new(MemoryRemote::with_seed(5));
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    remote.set_faults(Faults {
        transient_error_rate: 0.3,
        truncate_body_rate: 0.2,
        lost_response_rate: 0.2,
        ..Faults::default()
    });
    for i in 0..10 {
        a.write(&format!("t{i}"), &json!({"i": i}));
        let _ = a.try_sync();
        let _ = b.try_sync();
    }
    remote.set_faults(Faults::default());
    for _ in 0..3 {
        a.sync();
        b.sync();
    }
    assert_eq!(b.all().len(), 10);
    assert_eq!(a.all(), b.all());
}

#[test]
fn local_folder_remote_two_devices() {
    let remote_dir = tempdir();
    let remote: Arc<dyn Remote> = Arc::new(LocalFolder::new(remote_dir.path()).unwrap());
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"title": "milk"})));
    assert!(remote_dir.path().join("meta.json").is_file());
    assert!(remote_dir.path().join("data.json").is_file());
    assert!(remote_dir.path().join("deltas/g0").is_dir());
}

#[test]
fn file_collection_inside_a_larger_document_keeps_the_rest() {
    let remote = Arc::new(MemoryRemote::with_seed(6));
    let cfg = config(&[("tasks", "file:main.json#/task/entities")]);
    let mut a = Device::with_config(remote.clone(), "a", cfg.clone());
    let mut b = Device::with_config(remote.clone(), "b", cfg);
    let doc_a = r#"{
  "version": 3,
  "task": {
    "ids": ["t1"],
    "entities": {
      "t1": {"id": "t1", "title": "milk"}
    }
  },
  "settings": {"theme": "dark"}
}
"#;
    std::fs::write(a.dir.path().join("main.json"), doc_a).unwrap();
    let doc_b = r#"{"settings": {"theme": "light"}, "task": {"entities": {}}, "other": [1, 2]}"#;
    std::fs::write(b.dir.path().join("main.json"), doc_b).unwrap();
    a.sync();
    b.sync();
    let after_b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.path().join("main.json")).unwrap()).unwrap();
    assert_eq!(after_b["task"]["entities"]["t1"]["title"], json!("milk"));
    assert_eq!(
        after_b["settings"]["theme"],
        json!("light"),
        "b's own settings kept"
    );
    assert_eq!(after_b["other"], json!([1, 2]));
    let text_b = std::fs::read_to_string(b.dir.path().join("main.json")).unwrap();
    assert!(
        text_b.find("settings").unwrap() < text_b.find("task").unwrap(),
        "key order kept"
    );
}

#[test]
fn corrupt_delta_is_an_error_that_changes_nothing() {
    let (remote, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "milk"}));
    a.sync();
    let delta = remote
        .files()
        .keys()
        .find(|k| k.starts_with("deltas/"))
        .unwrap()
        .clone();
    remote.raw_put(&delta, b"{\"format\":1,\"records\":[");
    let err = b.try_sync().unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(err.to_string().contains(&delta), "{err}");
    assert_eq!(b.read("t1"), None);
}

#[test]
fn dry_run_previews_conflicts_without_recording_them() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"prio": 0}));
    a.sync();
    b.sync();
    a.write("t1", &json!({"prio": 1}));
    b.write("t1", &json!({"prio": 3}));
    a.sync();
    let dry = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let r = b.engine.sync(&dry).unwrap();
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(r.conflicts[0].field, vec!["prio".to_string()]);
    assert!(b.engine.conflicts().unwrap().is_empty(), "nothing recorded");
    assert_eq!(b.read("t1"), Some(json!({"prio": 3})));
}

#[test]
fn a_server_without_compare_and_swap_is_used_under_a_lease() {
    let remote = Arc::new(MemoryRemote::with_seed(8));
    remote.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    a.write("t1", &json!({"x": 1}));
    a.sync();
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"x": 1})));
    assert!(
        !remote.files().contains_key("lock.json"),
        "released after the sync"
    );
    // Another device holds the lease: the sync waits, then says who holds it.
    let quick = deltasync_lock::LeaseConfig {
        ttl: std::time::Duration::from_secs(30),
        settle: std::time::Duration::from_millis(5),
        wait: std::time::Duration::from_millis(100),
    };
    let held =
        deltasync_lock::Lease::acquire(remote.as_ref(), "other", "tablet", quick.clone()).unwrap();
    b.engine.set_lease_config(quick);
    b.write("t2", &json!({"y": 2}));
    let err = b.try_sync().unwrap_err();
    assert!(err.is_temporary());
    assert!(err.to_string().contains("tablet"), "{err}");
    held.release().unwrap();
    assert_eq!(b.sync().committed, Some(2));
}

#[test]
fn the_later_edit_wins_even_when_its_device_syncs_first() {
    let (_, mut a, mut b) = pair();
    a.write("t1", &json!({"prio": 0}));
    a.sync();
    b.sync();
    b.write("t1", &json!({"prio": 3}));
    a.write("t1", &json!({"prio": 1}));
    // a's save is the later one (by ten seconds), but a syncs first and b last.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(a.path("t1"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    a.sync();
    let rb = b.sync();
    assert_eq!(rb.conflicts.len(), 1);
    assert_eq!(rb.conflicts[0].kept, json!(1));
    assert_eq!(rb.conflicts[0].lost, json!(3));
    a.sync();
    assert_eq!(a.read("t1").unwrap()["prio"], json!(1));
    assert_eq!(b.read("t1").unwrap()["prio"], json!(1));
    // An edit made after seeing that value wins over it even with an older wall clock.
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    b.write("t1", &json!({"prio": 2}));
    std::fs::File::options()
        .write(true)
        .open(b.path("t1"))
        .unwrap()
        .set_modified(earlier)
        .unwrap();
    b.sync();
    a.write("t1", &json!({"prio": 1, "note": "x"}));
    a.sync();
    assert_eq!(a.read("t1").unwrap()["prio"], json!(2));
}

#[test]
fn a_commit_folded_by_compaction_is_confirmed_not_made_again() {
    let (remote, mut a, mut b) = pair();
    a.write("t1", &json!({"x": 1}));
    assert_eq!(a.sync().committed, Some(1));
    // b compacts before a has seen any other device's meta: a's commit is still unconfirmed.
    b.sync();
    assert_eq!(b.engine.compact().unwrap(), Some(1));
    assert!(remote.files().keys().all(|k| !k.starts_with("deltas/g0/")));
    let r = a.sync();
    assert_eq!(r.recommitted, 0);
    assert_eq!(r.committed, None);
    assert_eq!(a.engine.status().unwrap().unconfirmed_commits, 0);
    // A new device bootstraps from the snapshot alone.
    let mut c = Device::new(remote.clone(), "c");
    c.sync();
    assert_eq!(c.read("t1"), Some(json!({"x": 1})));
}

/// A remote whose DELETE of the lease file fails (the release of the lease).
struct LeaseStaysBehind(Arc<MemoryRemote>);

impl deltasync_remote::Forward for LeaseStaysBehind {
    fn inner(&self) -> &dyn deltasync_remote::Remote {
        &*self.0
    }
    fn delete(&self, path: &str) -> Result<(), deltasync_remote::RemoteError> {
        if path == "lock.json" {
            return Err(deltasync_remote::RemoteError::Permanent {
                what: format!("DELETE {path}"),
                detail: "refused (test)".into(),
            });
        }
        self.0.delete(path)
    }
    fn delete_many(&self, paths: &[String]) -> Result<(), deltasync_remote::RemoteError> {
        self.delete_each(paths)
    }
}

/// Issue 11: a sync that committed, then failed to release the lease, reported the release
/// error instead of its commit (the lease expires by itself; the commit is done).
#[test]
fn a_lease_that_cannot_be_released_does_not_hide_the_commit() {
    let remote = Arc::new(MemoryRemote::with_seed(9));
    remote.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    let mut a = Device::new(Arc::new(LeaseStaysBehind(remote.clone())), "a");
    a.write("t1", &json!({"x": 1}));
    let r = a
        .try_sync()
        .unwrap_or_else(|e| panic!("the commit was done, yet: {e}"));
    assert_eq!(r.committed, Some(1));
    assert!(remote.files().contains_key("lock.json"), "the lease stayed");
    // This device's own lease left behind does not block its next sync.
    a.write("t2", &json!({"x": 2}));
    assert_eq!(a.try_sync().unwrap().committed, Some(2));
}
