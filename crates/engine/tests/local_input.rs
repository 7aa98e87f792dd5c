//! What the engine makes of odd local input and odd remote records (issue 10, "Nothing lost,
//! whatever happens"): dangling symbolic links, collections that overlap, state lost while an
//! app re-saved an old file, entities that cannot be stored here, a fresh device's first
//! document, temporary files left by a kill.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deltasync_engine::config::Config;
use deltasync_engine::{Engine, EngineError, STATE_DIR};
use deltasync_meta::{Delta, EntityRecord, FORMAT_VERSION, Hlc};
use deltasync_remote::{MemoryRemote, Remote};
use deltasync_store::{MetaRead, Store};
use serde_json::{Value, json};
use support::{Device, config};

fn pair() -> (Arc<MemoryRemote>, Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(10));
    let a = Device::new(remote.clone(), "a");
    let b = Device::new(remote.clone(), "b");
    (remote, a, b)
}

/// Sets a file's modification time (without following a symbolic link's target: the file
/// itself).
fn set_mtime(path: &Path, t: SystemTime) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

// ------------------------------------------------------------------ symbolic links

#[cfg(unix)]
#[test]
fn dangling_symlinks_are_held_never_deleted() {
    let (_, mut a, mut b) = pair();
    for i in 0..20 {
        a.write(&format!("t{i}"), &json!({"n": i}));
    }
    a.sync();
    b.sync();
    assert_eq!(b.all().len(), 20);
    // Half of a's files become links to files that do not exist (a dotfile manager whose
    // store is not mounted, say).
    for i in 0..10 {
        let p = a.path(&format!("t{i}"));
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(a.dir.path().join(format!("gone/t{i}.json")), &p).unwrap();
    }
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.deleted, 0, "{r:?}");
    assert_eq!(r.collections["tasks"].held, 10, "{r:?}");
    assert_eq!(r.committed, None);
    assert!(
        r.problems.iter().any(|p| p.contains("symbolic link")),
        "{:?}",
        r.problems
    );
    b.sync();
    assert_eq!(b.all().len(), 20, "b lost entities");
    // An edit on b is not written over a's link either (held), and the link stays.
    b.write("t3", &json!({"n": 33}));
    b.sync();
    let r = a.sync();
    assert_eq!(r.collections["tasks"].held, 10, "{r:?}");
    assert!(
        std::fs::symlink_metadata(a.path("t3"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Once the link's target is back, the entity syncs again.
    std::fs::create_dir_all(a.dir.path().join("gone")).unwrap();
    std::fs::write(a.dir.path().join("gone/t3.json"), "{\"n\": 3}").unwrap();
    a.sync();
    assert_eq!(a.read("t3"), Some(json!({"n": 33})));
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(a.dir.path().join("gone/t3.json")).unwrap())
            .unwrap(),
        json!({"n": 33})
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_to_a_file_outside_the_collection_is_followed_and_written_through() {
    let (_, mut a, mut b) = pair();
    let outside = a.dir.path().join("elsewhere/x.json");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, "{\"title\": \"linked\"}\n").unwrap();
    std::fs::create_dir_all(a.dir.path().join("tasks")).unwrap();
    std::os::unix::fs::symlink(&outside, a.path("x")).unwrap();
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.new, 1, "{r:?}");
    b.sync();
    assert_eq!(b.read("x"), Some(json!({"title": "linked"})));
    b.write("x", &json!({"title": "edited on b"}));
    b.sync();
    a.sync();
    // The link is still a link, and its target holds the pulled content.
    assert!(
        std::fs::symlink_metadata(a.path("x"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let target: Value = serde_json::from_slice(&std::fs::read(&outside).unwrap()).unwrap();
    assert_eq!(target, json!({"title": "edited on b"}));
    // A delete removes the link, never the file it points to.
    b.delete("x");
    b.sync();
    a.sync();
    assert!(std::fs::symlink_metadata(a.path("x")).is_err());
    assert!(outside.exists());
}

// ------------------------------------------------------------------ overlapping collections

#[test]
fn collections_that_overlap_are_refused_at_load() {
    /// Collections (name, spec), and words the error must contain.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let refused: &[Case<'_>] = &[
        (
            &[("notes", "dir:tasks"), ("tasks", "dir:tasks")],
            &["notes", "tasks", "tasks"],
        ),
        (
            &[("all", "dir:data"), ("old", "dir:data/archive")],
            &["all", "old", "data/archive"],
        ),
        (
            &[("tasks", "dir:data"), ("main", "file:data/main.json")],
            &["tasks", "main", "data/main.json"],
        ),
        (&[("state", "dir:.deltasync")], &["state", ".deltasync"]),
        (
            &[("state", "file:.deltasync/x.json")],
            &["state", ".deltasync"],
        ),
        (
            &[("cfg", "file:deltasync.toml")],
            &["cfg", "deltasync.toml"],
        ),
        (
            &[
                ("a", "file:main.json#/tasks"),
                ("b", "file:main.json#/tasks"),
            ],
            &["a", "b", "main.json", "/tasks"],
        ),
        (
            &[("a", "file:main.json"), ("b", "file:main.json#/tasks")],
            &["a", "b", "main.json"],
        ),
        (
            &[("a", "file:main.json#/t"), ("b", "file:main.json#/t/0/sub")],
            &["a", "b", "main.json", "/t/0/sub"],
        ),
        (
            &[("a", "dir:Notes"), ("b", "dir:notes")],
            &["a", "b", "notes"],
        ),
        (
            &[("a", "dir:notes/"), ("b", "dir:notes")],
            &["a", "b", "notes"],
        ),
    ];
    for (collections, words) in refused {
        let c = config(collections);
        let e = c
            .validate()
            .expect_err(&format!("{collections:?} was accepted"))
            .to_string();
        for w in *words {
            assert!(e.contains(w), "{collections:?}: {e:?} does not name {w:?}");
        }
        // And at load, from the file.
        let ws = support::tempdir();
        c.save(ws.path()).unwrap();
        let e = Config::load(ws.path()).unwrap_err().to_string();
        assert!(e.contains(words[0]), "{e}");
    }
    let accepted: &[&[(&str, &str)]] = &[
        &[("tasks", "dir:tasks"), ("notes", "dir:notes")],
        &[("tasks", "dir:tasks"), ("tasks2", "dir:tasks2")],
        &[("a", "dir:data/a"), ("b", "dir:data/b")],
        &[("tasks", "dir:data"), ("main", "file:main.json")],
        &[
            ("tasks", "file:main.json#/task/entities"),
            ("projects", "file:main.json#/project/entities"),
        ],
        &[("a", "file:main.json#/t"), ("b", "file:main.json#/tasks")],
    ];
    for collections in accepted {
        config(collections)
            .validate()
            .unwrap_or_else(|e| panic!("{collections:?}: {e}"));
    }
}

#[test]
fn an_engine_with_two_collections_on_one_folder_does_not_open() {
    let remote = Arc::new(MemoryRemote::with_seed(11));
    let ws = support::tempdir();
    let c = config(&[("notes", "dir:tasks"), ("tasks", "dir:tasks")]);
    let e = Engine::with_remote(ws.path(), c, remote).unwrap_err();
    assert!(matches!(e, EngineError::Config(_)), "{e}");
    assert!(e.to_string().contains("both use the path tasks"), "{e}");
    assert!(!ws.path().join(STATE_DIR).exists());
}

// ------------------------------------------------------------------ lost state

/// `.deltasync/` is deleted on a; b edits an entity; a's app re-saves the old content (newer
/// mtime). The re-save is not a new edit: b's edit must win, with no receipt.
#[test]
fn lost_state_and_an_app_resave_of_old_content_do_not_beat_a_newer_edit() {
    let (remote, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "old", "done": false}));
    a.write("t2", &json!({"title": "two"}));
    a.sync();
    b.sync();
    b.write("t1", &json!({"title": "new", "done": true}));
    b.sync();
    std::fs::remove_dir_all(a.dir.path().join(STATE_DIR)).unwrap();
    a.restart(remote.clone());
    // The app rewrites the unchanged old file later than b's edit.
    std::thread::sleep(Duration::from_millis(20));
    a.write("t1", &json!({"title": "old", "done": false}));
    let r = a.sync();
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    assert_eq!(a.read("t1"), Some(json!({"title": "new", "done": true})));
    b.sync();
    assert_eq!(b.read("t1"), Some(json!({"title": "new", "done": true})));
    assert_eq!(b.read("t2"), Some(json!({"title": "two"})));
}

// ------------------------------------------------------------------ one bad entity

/// Commits `records` to the remote as another client would (one delta, meta by CAS).
fn commit_raw(remote: Arc<dyn Remote>, records: Vec<(&str, &str, Value)>) {
    let store = Store::new(remote);
    let MetaRead::Fresh { meta, etag, .. } = store.read_meta(None).unwrap() else {
        unreachable!()
    };
    let seq = meta.head + 1;
    let delta = Delta {
        format: FORMAT_VERSION,
        min_reader: 1,
        seq,
        device: "other".into(),
        device_name: None,
        time: 1,
        supersedes: None,
        prev: meta.deltas.last().cloned(),
        records: records
            .into_iter()
            .map(|(c, id, data)| EntityRecord {
                collection: c.into(),
                id: id.into(),
                version: seq,
                last_modified_at: Hlc { ms: 1, counter: 0 },
                last_modified_by: "other".into(),
                is_deleted: false,
                data,
                extra: Default::default(),
            })
            .collect(),
        conflicts: Vec::new(),
    };
    let generation = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
    let dref = store.write_delta(&delta, generation).unwrap();
    let mut next = meta.clone();
    next.head = seq;
    next.deltas.push(dref);
    for r in &delta.records {
        next.entity_versions
            .entry(r.collection.clone())
            .or_default()
            .insert(r.id.clone(), seq);
    }
    store.commit_meta(&mut next, &etag).unwrap();
}

fn two_collections(tasks: &str) -> Config {
    config(&[("tasks", tasks), ("notes", "dir:notes")])
}

fn note(d: &Device, id: &str) -> Option<Value> {
    let bytes = std::fs::read(d.dir.path().join(format!("notes/{id}.json"))).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn an_id_too_long_for_a_file_name_is_held_and_the_rest_syncs() {
    let remote = Arc::new(MemoryRemote::with_seed(12));
    // a keeps tasks in one document (any id is fine there), b in a folder.
    let mut a = Device::with_config(remote.clone(), "a", two_collections("file:tasks.json"));
    let mut b = Device::with_config(remote.clone(), "b", two_collections("dir:tasks"));
    let long = "x".repeat(250);
    std::fs::write(
        a.dir.path().join("tasks.json"),
        serde_json::to_vec(&json!({ &long: {"n": 1}, "short": {"n": 2} })).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(a.dir.path().join("notes")).unwrap();
    std::fs::write(a.dir.path().join("notes/n1.json"), "{\"text\": \"hi\"}").unwrap();
    a.sync();
    for round in 0..2 {
        let r = b
            .try_sync()
            .unwrap_or_else(|e| panic!("round {round}: b's sync failed: {e}"));
        assert!(
            r.deferred.iter().any(|d| d.contains(&long))
                || r.problems.iter().any(|p| p.contains("too long")),
            "{r:?}"
        );
    }
    assert_eq!(b.read("short"), Some(json!({"n": 2})));
    assert_eq!(note(&b, "n1"), Some(json!({"text": "hi"})));
    // b edits what it has; a keeps the long one.
    b.write("short", &json!({"n": 3}));
    b.sync();
    a.sync();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(a.dir.path().join("tasks.json")).unwrap()).unwrap();
    assert_eq!(doc, json!({ &long: {"n": 1}, "short": {"n": 3} }));
}

#[test]
fn a_remote_record_that_is_not_an_object_is_held_and_the_rest_syncs() {
    for tasks in ["dir:tasks", "file:tasks.json", "file:list.json#/items@uid"] {
        let remote = Arc::new(MemoryRemote::with_seed(13));
        let mut a = Device::with_config(remote.clone(), "a", two_collections(tasks));
        a.sync();
        commit_raw(
            remote.clone(),
            vec![
                ("tasks", "odd", json!([1, 2, 3])),
                ("tasks", "num", json!(5)),
                ("tasks", "fine", json!({"n": 1})),
                ("notes", "n1", json!({"text": "hi"})),
            ],
        );
        for round in 0..2 {
            a.try_sync()
                .unwrap_or_else(|e| panic!("{tasks}, round {round}: {e}"));
        }
        let scan = deltasync_engine::collections::scan(
            a.dir.path(),
            &a.engine.config().collections["tasks"].kind(),
        )
        .unwrap();
        assert_eq!(
            scan.entities.keys().collect::<Vec<_>>(),
            ["fine"],
            "{tasks}: {:?}",
            scan.problems
        );
        assert!(scan.problems.is_empty(), "{tasks}: {:?}", scan.problems);
        assert_eq!(note(&a, "n1"), Some(json!({"text": "hi"})), "{tasks}");
    }
}

/// `{"d": {"d": … {} …}}`, `levels` objects deep (the outer one counts).
fn nested(levels: usize) -> Value {
    let mut v = json!({});
    for _ in 1..levels {
        v = json!({ "d": v });
    }
    v
}

#[test]
fn an_entity_nested_too_deep_for_a_delta_is_held_and_the_rest_syncs() {
    let (_, mut a, mut b) = pair();
    // 126 levels read fine here, but inside a delta ({"records": [{"data": …}]}) they pass
    // serde_json's limit of 127: no device could read the delta.
    let deep = nested(126);
    let text = serde_json::to_string(&deep).unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_ok());
    std::fs::create_dir_all(a.dir.path().join("tasks")).unwrap();
    std::fs::write(a.path("deep"), &text).unwrap();
    a.write("ok", &json!({"n": 1}));
    let r = a.sync();
    assert_eq!(r.collections["tasks"].held, 1, "{r:?}");
    assert!(
        r.problems.iter().any(|p| p.contains("nested")),
        "{:?}",
        r.problems
    );
    for round in 0..2 {
        b.try_sync()
            .unwrap_or_else(|e| panic!("round {round}: b's sync failed: {e}"));
        a.try_sync()
            .unwrap_or_else(|e| panic!("round {round}: a's sync failed: {e}"));
    }
    assert_eq!(b.read("ok"), Some(json!({"n": 1})));
    assert_eq!(b.read("deep"), None);
    // a's file is untouched.
    assert_eq!(std::fs::read_to_string(a.path("deep")).unwrap(), text);
}

#[test]
fn a_deep_remote_record_is_not_written_where_it_would_make_the_document_unreadable() {
    // 122 levels fit in a delta (125 in all), but not 7 levels down a document (129).
    let remote = Arc::new(MemoryRemote::with_seed(14));
    let mut a = Device::with_config(
        remote.clone(),
        "a",
        two_collections("file:main.json#/a/b/c/d/e/f"),
    );
    std::fs::write(
        a.dir.path().join("main.json"),
        "{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": {\"t1\": {\"n\": 1}}}}}}}}",
    )
    .unwrap();
    a.sync();
    commit_raw(
        remote.clone(),
        vec![
            ("tasks", "deep", nested(122)),
            ("tasks", "t2", json!({"n": 2})),
        ],
    );
    a.try_sync().unwrap();
    a.try_sync().unwrap();
    let scan = deltasync_engine::collections::scan(
        a.dir.path(),
        &a.engine.config().collections["tasks"].kind(),
    )
    .unwrap();
    assert!(!scan.whole_collection_held, "{:?}", scan.problems);
    assert_eq!(scan.entities.keys().collect::<Vec<_>>(), ["t1", "t2"]);
}

// ------------------------------------------------------------------ a fresh device's document

#[test]
fn a_fresh_device_writes_an_id_array_as_an_array() {
    let remote = Arc::new(MemoryRemote::with_seed(15));
    let spec = "file:main.json#/items@id";
    let mut a = Device::with_config(remote.clone(), "a", config(&[("items", spec)]));
    std::fs::write(
        a.dir.path().join("main.json"),
        "{\"items\": [{\"id\": \"i1\", \"n\": 1}, {\"id\": \"i2\", \"n\": 2}]}",
    )
    .unwrap();
    a.sync();
    let mut b = Device::with_config(remote.clone(), "b", config(&[("items", spec)]));
    b.sync();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(b.dir.path().join("main.json")).unwrap()).unwrap();
    assert_eq!(
        doc,
        json!({"items": [{"id": "i1", "n": 1}, {"id": "i2", "n": 2}]}),
        "b wrote another shape"
    );
    // And b's edits keep it so on both.
    let text = std::fs::read_to_string(b.dir.path().join("main.json"))
        .unwrap()
        .replace("\"n\": 2", "\"n\": 22");
    std::fs::write(b.dir.path().join("main.json"), text).unwrap();
    b.sync();
    a.sync();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(a.dir.path().join("main.json")).unwrap()).unwrap();
    assert_eq!(
        doc,
        json!({"items": [{"id": "i1", "n": 1}, {"id": "i2", "n": 22}]})
    );
}

// ------------------------------------------------------------------ temporary files

#[test]
fn stale_temporary_files_are_removed_and_never_entities() {
    let remote = Arc::new(MemoryRemote::with_seed(16));
    let mut a = Device::with_config(
        remote.clone(),
        "a",
        config(&[("tasks", "dir:tasks"), ("main", "file:data/main.json")]),
    );
    let tasks = a.dir.path().join("tasks");
    let data = a.dir.path().join("data");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("main.json"), "{}").unwrap();
    a.write("t1", &json!({"n": 1}));
    let old = SystemTime::now() - Duration::from_secs(600);
    let stale = [
        tasks.join(".t1.deltasync-tmp-a1B2c3D4e5"),
        tasks.join(".t2.deltasync-tmp-Zz9Yy8Xx7W"),
        data.join(".main.json.deltasync-tmp-0123456789"),
    ];
    for p in &stale {
        std::fs::write(p, "{\"half\": ").unwrap();
        set_mtime(p, old);
    }
    let fresh = tasks.join(".t3.deltasync-tmp-qwertyuiop");
    std::fs::write(&fresh, "{}").unwrap();
    // Not ours: kept whatever their age.
    let foreign = [tasks.join(".t4.json.swp"), data.join("notes.txt")];
    for p in &foreign {
        std::fs::write(p, "x").unwrap();
        set_mtime(p, old);
    }
    let r = a.sync();
    assert_eq!(r.collections["tasks"].up.new, 1, "{r:?}");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    for p in &stale {
        assert!(!p.exists(), "{} was left", p.display());
    }
    assert!(fresh.exists(), "a temporary file in use was removed");
    for p in &foreign {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert_eq!(
        a.engine.status().unwrap().collections["tasks"].remote_entities,
        1
    );
}

/// Issue 10: a record nested beyond serde_json's limit that is already in a delta on the
/// remote (an older writer let it through) made every fetch of every device fail. The delta
/// is read whole; that one record is held, reported, and the rest of the commit applies.
#[test]
fn a_remote_delta_with_a_record_nested_too_deep_is_read_and_the_record_held() {
    let remote = Arc::new(MemoryRemote::with_seed(15));
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"n": 1}));
    a.sync();
    commit_raw(
        remote.clone(),
        vec![
            ("tasks", "deep", nested(300)),
            ("tasks", "t2", json!({"n": 2})),
        ],
    );
    let r = a
        .try_sync()
        .unwrap_or_else(|e| panic!("the sync stopped at the deep record: {e}"));
    assert_eq!(a.read("t2"), Some(json!({"n": 2})));
    assert!(!a.path("deep").exists(), "an unreadable file was written");
    assert!(
        r.problems.iter().any(|p| p.contains("deep")),
        "the held record is reported: {:?}",
        r.problems
    );
    // Later syncs go on, and so does a device that starts now.
    a.write("t1", &json!({"n": 10}));
    a.try_sync().unwrap();
    let mut b = Device::new(remote.clone(), "b");
    b.try_sync()
        .unwrap_or_else(|e| panic!("a new device stopped at the deep record: {e}"));
    assert_eq!(b.read("t1"), Some(json!({"n": 10})));
    assert_eq!(b.read("t2"), Some(json!({"n": 2})));
}
