//! Cost what changed: a fetch answered 304 does not parse meta.json again, and a sync reads
//! only the files whose stat changed — while every edit is still seen.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deltasync_engine::EngineError;
use deltasync_remote::MemoryRemote;
use serde_json::json;
use support::Device;

fn pair() -> (Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(7));
    let mut a = Device::new(remote.clone(), "a");
    let b = Device::new(remote, "b");
    // Nothing writes these files in the same clock tick as a scan: trust every stat taken
    // after the file's change.
    a.engine.set_racy_window(Duration::ZERO);
    (a, b)
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
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

/// Nor does a 304 parse the commit journal: a commit of ours stays there, unconfirmed, until
/// another device writes meta.json, and an import's entry holds every entity. A fetch asks for
/// the entries' seq and state only (here the entry's JSON is made unreadable behind the
/// engine's back).
#[test]
fn a_304_does_not_parse_the_journal() {
    let (mut a, _) = pair();
    a.write("t1", &json!({"title": "milk"}));
    assert_eq!(a.sync().committed, Some(1));
    assert_eq!(a.engine.status().unwrap().unconfirmed_commits, 1);
    let db = rusqlite::Connection::open(a.dir.path().join(".deltasync/state.db")).unwrap();
    assert_eq!(
        db.execute("UPDATE journal SET json = 'not json'", [])
            .unwrap(),
        1
    );
    let r = a.sync();
    assert_eq!((r.committed, r.head), (None, 1));
    assert_eq!(a.engine.status().unwrap().unconfirmed_commits, 1);
}

/// Edits that keep a file's size and mtime — renamed over it (another inode), written in
/// place with the mtime put back (another ctime) — and deletions are pushed, though the
/// unchanged files are taken by their stat.
#[test]
fn edits_that_keep_size_and_mtime_are_pushed() {
    let (mut a, mut b) = pair();
    let old = SystemTime::now() - Duration::from_secs(600);
    for id in ["t1", "t2", "t3", "t4"] {
        a.write(id, &json!({"n": 1}));
        set_mtime(&a.path(id), old);
    }
    a.sync();
    // The stat cache holds every file now (all changed before the scan).
    assert_eq!(a.engine.state().known_files("tasks").unwrap().len(), 4);
    b.sync();

    a.write("t1", &json!({"n": 2}));
    set_mtime(&a.path("t1"), old);
    std::fs::write(
        a.path("t2"),
        serde_json::to_vec_pretty(&json!({"n": 3})).unwrap(),
    )
    .unwrap();
    set_mtime(&a.path("t2"), old);
    a.delete("t3");
    let r = a.sync();
    let up = r.collections["tasks"].up;
    assert_eq!((up.updated, up.deleted), (2, 1), "{r:?}");
    assert_eq!(r.collections["tasks"].unchanged, 1);
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"n": 2})));
    assert_eq!(b.read("t2"), Some(json!({"n": 3})));
    assert_eq!(b.read("t3"), None);
    assert_eq!(b.read("t4"), Some(json!({"n": 1})));
    // And nothing more: the cache agrees with the files.
    assert_eq!(a.sync().committed, None);
}

/// With the default racy window, a file changed just before a sync is read by that sync and
/// not remembered, so an edit right after it — same size, same mtime — is seen by the next.
#[test]
fn an_edit_within_the_racy_window_is_seen_next_time() {
    let (mut a, mut b) = pair();
    a.engine
        .set_racy_window(deltasync_engine::collections::RACY_WINDOW);
    a.write("t1", &json!({"n": 1}));
    let mtime = std::fs::metadata(a.path("t1")).unwrap().modified().unwrap();
    a.sync();
    assert!(a.engine.state().known_files("tasks").unwrap().is_empty());
    std::fs::write(
        a.path("t1"),
        serde_json::to_vec_pretty(&json!({"n": 2})).unwrap(),
    )
    .unwrap();
    set_mtime(&a.path("t1"), mtime);
    assert_eq!(a.sync().collections["tasks"].up.updated, 1);
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"n": 2})));
}

/// A file rewritten again and again while syncs scan it: once the writer stops, the last
/// content is what the remote has (no stat taken during a change stands for a later content).
#[test]
fn a_file_changed_while_syncs_read_it_ends_up_pushed() {
    let (mut a, mut b) = pair();
    a.engine
        .set_racy_window(deltasync_engine::collections::RACY_WINDOW);
    a.write("t1", &json!({"n": 0}));
    a.sync();
    let path = a.path("t1");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = (n + 1) % 10;
                // In place and the same size every time: only the bytes differ.
                std::fs::write(&path, format!("{{\"n\": {n}}}")).unwrap();
            }
            n
        })
    };
    for _ in 0..20 {
        // Reads of a half-written file are held, never pushed; anything else goes.
        let _ = a.try_sync();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap();
    a.sync();
    std::thread::sleep(deltasync_engine::collections::RACY_WINDOW + Duration::from_millis(100));
    a.sync();
    a.sync();
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({ "n": last })));
}

/// Two devices with one `file` collection of `n` records (an array at `/cities`), synced.
fn cities(n: usize) -> (Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(8));
    let cfg = support::config(&[("cities", "file:cities.json#/cities@id")]);
    let mut a = Device::with_config(remote.clone(), "a", cfg.clone());
    let mut b = Device::with_config(remote, "b", cfg);
    a.engine.set_racy_window(Duration::ZERO);
    b.engine.set_racy_window(Duration::ZERO);
    let records: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("c{i:04}"), "name": format!("City {i}"), "pop": i}))
        .collect();
    // B's app holds the same document already: adopted, not written.
    save_doc(&a, &json!({"source": "test", "cities": records}));
    save_doc(&b, &json!({"source": "test", "cities": records}));
    a.sync();
    b.sync();
    (a, b)
}

fn doc_of(d: &Device) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.dir.path().join("cities.json")).unwrap()).unwrap()
}

/// As an app saves: the whole document, compact, to a temp file renamed over it.
fn save_doc(d: &Device, v: &serde_json::Value) {
    let tmp = d.dir.path().join(".cities.json.app-tmp");
    std::fs::write(&tmp, serde_json::to_vec(v).unwrap()).unwrap();
    std::fs::rename(&tmp, d.dir.path().join("cities.json")).unwrap();
}

/// One record of a large document edited: that record is pushed, and the stat cache holds a
/// row per entity by the hash of its text (what the next scan takes unparsed), true to the
/// document's text; the other device gets the record and keeps the rest of its document's
/// text byte for byte.
#[test]
fn an_edited_record_in_a_large_document_is_the_only_one_pushed() {
    let (mut a, mut b) = cities(300);
    let before_b = std::fs::read_to_string(b.dir.path().join("cities.json")).unwrap();
    let mut v = doc_of(&a);
    v["cities"][42]["pop"] = json!(4242);
    save_doc(&a, &v);
    let r = a.sync();
    let c = &r.collections["cities"];
    assert_eq!((c.up.new, c.up.updated, c.up.deleted), (0, 1, 0), "{r:?}");
    let rows = a.engine.state().known_files("cities").unwrap();
    let text = std::fs::read(a.dir.path().join("cities.json")).unwrap();
    assert_eq!(rows.len(), 301, "a row per entity and the document's");
    let row = &rows["c0042"];
    let record = serde_json::to_vec(&v["cities"][42]).unwrap();
    assert!(text.windows(record.len()).any(|w| w == record.as_slice()));
    assert_eq!(row.file_hash, deltasync_meta::sha256_hex(&record));
    assert_eq!(row.hash, deltasync_meta::content_hash(&v["cities"][42]));
    assert_eq!(rows[""].file_hash, deltasync_meta::sha256_hex(&text));

    assert_eq!(b.sync().collections["cities"].down.updated, 1);
    assert_eq!(doc_of(&b), v);
    let after_b = std::fs::read_to_string(b.dir.path().join("cities.json")).unwrap();
    let old = serde_json::to_string(&json!({"id": "c0042", "name": "City 42", "pop": 42})).unwrap();
    let new = serde_json::to_string(&v["cities"][42]).unwrap();
    assert_eq!(after_b, before_b.replace(&old, &new));
    // Nothing more to do on either side.
    assert_eq!(a.sync().committed, None);
    assert_eq!(b.sync().committed, None);
}

/// Edits from another device go into the document without losing what the app saved here
/// meanwhile: another record, and another field of the same record.
#[test]
fn a_remote_edit_merges_into_the_document_with_a_local_one() {
    let (mut a, mut b) = cities(50);
    let mut va = doc_of(&a);
    va["cities"][1]["pop"] = json!(1001);
    va["cities"][3]["name"] = json!("Third");
    save_doc(&a, &va);
    a.sync();
    let mut vb = doc_of(&b);
    vb["cities"][2]["pop"] = json!(2002);
    vb["cities"][3]["pop"] = json!(3003);
    vb["cities"].as_array_mut().unwrap().remove(10);
    save_doc(&b, &vb);
    b.sync();
    a.sync();
    for d in [&a, &b] {
        let v = doc_of(d);
        let c = &v["cities"];
        assert_eq!(c.as_array().unwrap().len(), 49);
        assert_eq!(c[1]["pop"], json!(1001));
        assert_eq!(c[2]["pop"], json!(2002));
        assert_eq!(c[3], json!({"id": "c0003", "name": "Third", "pop": 3003}));
        assert_eq!(c[10]["id"], json!("c0011"));
        assert_eq!(v["source"], json!("test"));
    }
}

/// A document put back to bytes read before holds what it holds now: an entity that was
/// pulled since is read again (its stat cache row no longer holds its base), and the app's
/// revert is pushed as the edit it is.
#[test]
fn a_document_put_back_to_earlier_bytes_is_read_as_it_is_now() {
    let (mut a, mut b) = cities(20);
    let earlier = std::fs::read(b.dir.path().join("cities.json")).unwrap();
    let mut v = doc_of(&a);
    v["cities"][5]["pop"] = json!(555);
    save_doc(&a, &v);
    a.sync();
    assert_eq!(b.sync().collections["cities"].down.updated, 1);
    b.sync();
    let tmp = b.dir.path().join(".cities.json.app-tmp");
    std::fs::write(&tmp, &earlier).unwrap();
    std::fs::rename(&tmp, b.dir.path().join("cities.json")).unwrap();
    assert_eq!(b.sync().collections["cities"].up.updated, 1);
    a.sync();
    assert_eq!(doc_of(&a)["cities"][5]["pop"], json!(5));
}
