//! Tests of local collections: the helpers and `dir` collections (`file` ones in `tests/file.rs`).

use super::*;
use deltasync_meta::content_hash;
use proptest::prelude::*;
use serde_json::json;

fn put(id: &str, value: Value) -> Write {
    Write::Put {
        id: id.into(),
        value,
    }
}

fn del(id: &str) -> Write {
    Write::Delete { id: id.into() }
}

fn dir_kind(path: &str) -> CollectionKind {
    CollectionKind::Dir { path: path.into() }
}

fn file_kind(path: &str, pointer: Option<&str>, id_field: &str) -> CollectionKind {
    CollectionKind::File {
        path: path.into(),
        pointer: pointer.map(str::to_owned),
        id_field: id_field.into(),
        create_as_array: id_field != DEFAULT_ID_FIELD,
    }
}

fn write_text(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// How an app saves: a temporary file, then a rename over the real one.
fn app_save(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        "{}.tmp-app",
        path.file_name().unwrap().to_str().unwrap()
    ));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- dir

#[test]
fn dir_missing_is_empty_and_is_created_on_first_write() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.entities.is_empty() && s.problems.is_empty() && s.held.is_empty());
    assert!(!ws.path().join("tasks").exists());

    let writes = [
        put("t1", json!({"title": "buy milk", "done": false})),
        put("../evil", json!({"title": "x"})),
        put("CON", json!({"title": "device"})),
        del("never-existed"),
    ];
    let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
    assert_eq!(r.written, ["t1", "../evil", "CON"]);
    assert_eq!(r.deleted, ["never-existed"]);
    assert!(r.skipped.is_empty());
    let dir = ws.path().join("tasks");
    assert_eq!(names(&dir), ["%2E.%2Fevil.json", "%43ON.json", "t1.json"]);
    assert!(!ws.path().join("evil.json").exists());
    assert_eq!(
        read_text(&dir.join("t1.json")),
        "{\n  \"title\": \"buy milk\",\n  \"done\": false\n}\n"
    );

    let s2 = scan(ws.path(), &kind).unwrap();
    assert!(s2.problems.is_empty(), "{:?}", s2.problems);
    assert_eq!(s2.entities.len(), 3);
    assert_eq!(s2.entities["../evil"], json!({"title": "x"}));
    assert_eq!(s2.entities["CON"], json!({"title": "device"}));
    // The report's fingerprint is what a fresh scan sees.
    assert_eq!(r.fingerprint, s2.fingerprint);
}

#[test]
fn dir_update_and_delete() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    apply(
        ws.path(),
        &kind,
        &[put("a", json!({"n": 1})), put("b", json!({"n": 2}))],
        &s.fingerprint,
    )
    .unwrap();
    let s = scan(ws.path(), &kind).unwrap();
    let r = apply(
        ws.path(),
        &kind,
        &[put("a", json!({"n": 10})), del("b")],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        (r.written.as_slice(), r.deleted.as_slice()),
        (&["a".to_owned()][..], &["b".to_owned()][..])
    );
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.len(), 1);
    assert_eq!(s.entities["a"], json!({"n": 10}));
    assert_eq!(names(&ws.path().join("tasks")), ["a.json"]);
    assert_eq!(r.fingerprint, s.fingerprint);
}

#[test]
fn dir_ignores_editor_and_temporary_files() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    write_text(&dir.join("a.json"), r#"{"title": "real"}"#);
    for junk in [
        ".a.json",
        ".hidden.json",
        "a.json~",
        "a.json.tmp",
        "a.tmp",
        ".a.json.swp",
        "a.swp",
        "#a.json#",
        "a.json.tmp-12345",
        ".a.deltasync-tmp-abcdef",
        "notes.txt",
        "a.JSON.bak",
    ] {
        write_text(&dir.join(junk), "not json at all {");
    }
    fs::create_dir(dir.join("sub")).unwrap();
    let s = scan(ws.path(), &dir_kind("tasks")).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["a"]);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(s.held.is_empty());
}

#[test]
fn dir_non_canonical_names_are_problems_not_entities() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    write_text(&dir.join("%41.json"), "{}");
    write_text(&dir.join("con.json"), "{}");
    write_text(&dir.join("a%2fb.json"), "{}");
    write_text(&dir.join("ok.json"), "{}");
    let s = scan(ws.path(), &dir_kind("tasks")).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["ok"]);
    assert_eq!(s.problems.len(), 3, "{:?}", s.problems);
    assert!(s.problems.iter().all(|p| p.ids.is_none()));
    assert!(s.problems.iter().any(|p| p.file.ends_with("con.json")));
    assert!(s.held.is_empty());
}

#[test]
fn dir_half_written_file_is_held_never_deleted() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    let half = "{\n  \"title\": \"buy milk\",\n  \"do";
    write_text(&dir.join("a.json"), half);
    write_text(&dir.join("b.json"), "[1, 2]");
    write_text(&dir.join("c.json"), "{\"ok\": true}");
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["c"]);
    assert_eq!(s.held, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    let p = s
        .problems
        .iter()
        .find(|p| p.file.ends_with("a.json"))
        .unwrap();
    assert_eq!(p.ids.as_deref(), Some(&["a".to_owned()][..]));
    assert_eq!(p.line, Some(3));
    assert!(p.column.is_some());
    assert!(p.message.contains("line 3 column"), "{}", p.message);
    let p = s
        .problems
        .iter()
        .find(|p| p.file.ends_with("b.json"))
        .unwrap();
    assert!(p.message.contains("array"), "{}", p.message);

    // A careless caller deleting or overwriting held ids changes nothing.
    let r = apply(
        ws.path(),
        &kind,
        &[del("a"), put("b", json!({"x": 1}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["a", "b"]);
    assert!(r.written.is_empty() && r.deleted.is_empty());
    assert_eq!(read_text(&dir.join("a.json")), half);
    assert_eq!(read_text(&dir.join("b.json")), "[1, 2]");
}

#[test]
fn dir_app_save_between_scan_and_apply_is_never_overwritten() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    write_text(&dir.join("a.json"), "{\"v\": 1}\n");
    write_text(&dir.join("b.json"), "{\"v\": 1}\n");
    write_text(&dir.join("c.json"), "{\"v\": 1}\n");
    write_text(&dir.join("d.json"), "{\"v\": 1}\n");
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();

    // The app, meanwhile: saves a (same size!), saves b, deletes c, creates e.
    app_save(&dir.join("a.json"), "{\"v\": 2}\n");
    app_save(&dir.join("b.json"), "{\"v\": 1, \"more\": true}\n");
    fs::remove_file(dir.join("c.json")).unwrap();
    write_text(&dir.join("e.json"), "{\"app\": \"new\"}\n");

    let r = apply(
        ws.path(),
        &kind,
        &[
            put("a", json!({"v": 99})),
            del("b"),
            put("c", json!({"v": 99})),
            put("e", json!({"v": 99})),
            put("d", json!({"v": 3})),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["a", "b", "c", "e"]);
    assert_eq!(r.written, ["d"]);
    assert_eq!(read_text(&dir.join("a.json")), "{\"v\": 2}\n");
    assert_eq!(
        read_text(&dir.join("b.json")),
        "{\"v\": 1, \"more\": true}\n"
    );
    assert!(!dir.join("c.json").exists());
    assert_eq!(read_text(&dir.join("e.json")), "{\"app\": \"new\"}\n");
    assert_eq!(
        serde_json::from_str::<Value>(&read_text(&dir.join("d.json"))).unwrap(),
        json!({"v": 3})
    );
    // No temporary file left behind.
    assert_eq!(names(&dir), ["a.json", "b.json", "d.json", "e.json"]);

    // Next round, from a fresh scan, the writes go through.
    let s = scan(ws.path(), &kind).unwrap();
    let r = apply(
        ws.path(),
        &kind,
        &[put("a", json!({"v": 99})), del("b")],
        &s.fingerprint,
    )
    .unwrap();
    assert!(r.skipped.is_empty());
    assert!(!dir.join("b.json").exists());
}

#[test]
fn dir_update_keeps_the_files_style_and_key_order() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    write_text(
        &dir.join("a.json"),
        "{\n    \"z\": 1,\n    \"a\": {\n        \"y\": 1,\n        \"x\": 2\n    }\n}",
    );
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    apply(
        ws.path(),
        &kind,
        &[put("a", json!({"a": {"x": 3, "y": 1}, "new": [1], "z": 1}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        read_text(&dir.join("a.json")),
        "{\n    \"z\": 1,\n    \"a\": {\n        \"y\": 1,\n        \"x\": 3\n    },\n    \"new\": [\n        1\n    ]\n}"
    );
}

#[test]
fn dir_bad_batches_write_nothing() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    let writes = [put("ok", json!({})), put("ok", json!({"again": 1}))];
    let e = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap_err();
    assert!(matches!(e, CollectionError::InvalidWrite { .. }), "{e}");
    assert!(!e.is_temporary());
    assert!(!ws.path().join("tasks").exists());
    let e = apply(ws.path(), &kind, &[], &Fingerprint::File { hash: None }).unwrap_err();
    assert!(matches!(e, CollectionError::WrongFingerprint { .. }));
}

#[test]
fn dir_writes_that_cannot_be_made_are_refused_alone() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    let long = "x".repeat(300);
    let mut deep = json!({});
    for _ in 0..MAX_ENTITY_DEPTH {
        deep = json!({ "d": deep });
    }
    let writes = [
        put(&long, json!({})),
        put("ok", json!({"n": 1})),
        put("", json!({})),
        put("arr", json!([1])),
        put("deep", deep),
        del(&"y".repeat(300)),
    ];
    let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
    assert_eq!(r.written, ["ok"]);
    assert_eq!(r.deleted, ["y".repeat(300)]);
    let refused: Vec<&str> = r.refused.iter().map(Refusal::id).collect();
    assert_eq!(refused, [long.as_str(), "", "arr", "deep"]);
    assert_eq!(r.skipped, refused);
    assert!(matches!(r.refused[0], Refusal::FileName { .. }));
    assert!(
        r.refused[0].to_string().contains("too long"),
        "{}",
        r.refused[0]
    );
    assert!(matches!(
        r.refused[2],
        Refusal::NotAnObject { found: "array", .. }
    ));
    assert!(matches!(r.refused[3], Refusal::TooDeep { depth: 101, .. }));
    assert_eq!(names(&ws.path().join("tasks")), ["ok.json"]);
    assert_eq!(scan(ws.path(), &kind).unwrap().fingerprint, r.fingerprint);
    let e = r.refusal_as_error(Path::new("tasks")).unwrap_err();
    assert!(matches!(e, CollectionError::Refused { .. }) && !e.is_temporary());
    assert!(e.to_string().starts_with("tasks: entity \"xxx"), "{e}");
    let s = scan(ws.path(), &kind).unwrap();
    let r = apply(
        ws.path(),
        &kind,
        &[put("ok", json!({"n": 2}))],
        &s.fingerprint,
    )
    .unwrap();
    assert!(r.refusal_as_error(Path::new("tasks")).is_ok());
}

#[test]
fn file_writes_that_cannot_be_made_are_refused_alone() {
    let ws = tempfile::tempdir().unwrap();
    let mut deep = json!({});
    for _ in 1..100 {
        deep = json!({ "d": deep });
    }
    for (kind, start) in [
        (file_kind("m.json", None, "id"), Some("{\"a\": {\"n\": 0}}")),
        (file_kind("l.json", Some("/x"), "uid"), Some("{\"x\": []}")),
        (file_kind("new.json", Some("/x"), "uid"), None),
        (
            file_kind(
                "deep.json",
                Some("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0/1"),
                "id",
            ),
            None,
        ),
    ] {
        let CollectionKind::File { path, .. } = &kind else {
            unreachable!()
        };
        if let Some(text) = start {
            write_text(&ws.path().join(path), text);
        }
        let s = scan(ws.path(), &kind).unwrap();
        let writes = [
            put("", json!({})),
            put("ok", json!({"n": 1})),
            put("num", json!(5)),
            put("d", deep.clone()),
        ];
        let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.problems.is_empty(), "{kind:?}: {:?}", s.problems);
        let refused: Vec<&str> = r.refused.iter().map(Refusal::id).collect();
        if path.to_str() == Some("deep.json") {
            // 28 levels of pointer leave room for 98 levels only.
            assert_eq!(refused, ["", "num", "d"], "{kind:?}");
            assert!(matches!(
                r.refused[2],
                Refusal::TooDeep {
                    depth: 100,
                    max: 98,
                    ..
                }
            ));
            assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["ok"]);
        } else {
            assert_eq!(refused, ["", "num"], "{kind:?}");
            assert!(s.entities.contains_key("d") && s.entities.contains_key("ok"));
        }
        assert_eq!(r.skipped, refused);
        assert!(r.written.contains(&"ok".to_owned()));
        assert!(
            r.refused[1].to_string().contains("number"),
            "{}",
            r.refused[1]
        );
    }
}

#[test]
fn paths_may_not_leave_the_workspace() {
    let ws = tempfile::tempdir().unwrap();
    for p in ["../x", "/etc", "a/../../b"] {
        assert!(matches!(
            scan(ws.path(), &dir_kind(p)),
            Err(CollectionError::BadPath { .. })
        ));
        assert!(matches!(
            scan(ws.path(), &file_kind(p, None, "id")),
            Err(CollectionError::BadPath { .. })
        ));
    }
    for ptr in ["task", "/a~2b", "/a~"] {
        assert!(matches!(
            scan(ws.path(), &file_kind("m.json", Some(ptr), "id")),
            Err(CollectionError::BadPointer { .. })
        ));
    }
    write_text(&ws.path().join("plain"), "x");
    assert!(matches!(
        scan(ws.path(), &dir_kind("plain")),
        Err(CollectionError::NotADirectory { .. })
    ));
}

mod file;
mod file_known;
mod staged;

/// Issue 12 (bootstrap): from `BATCH_WRITES` writes on, the temporary files are made durable
/// at once and then installed; the guarantees stay those of a single write — an app's save
/// since the scan is never overwritten, every other file is written whole, no temporary file
/// is left, and the fingerprint is what a fresh scan sees.
#[test]
fn dir_a_batch_is_written_whole_and_never_over_an_app_save() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    for f in ["a", "b", "c", "d"] {
        write_text(&dir.join(format!("{f}.json")), "{\"v\": 1}\n");
    }
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    app_save(&dir.join("a.json"), "{\"v\": 2}\n");
    fs::remove_file(dir.join("c.json")).unwrap();
    write_text(&dir.join("e.json"), "{\"app\": \"new\"}\n");

    let mut writes = vec![
        put("a", json!({"v": 99})),
        put("c", json!({"v": 99})),
        put("e", json!({"v": 99})),
        put("d", json!({"v": 3})),
        del("b"),
    ];
    for i in 0..100 {
        writes.push(put(&format!("n{i:03}"), json!({"n": i})));
    }
    assert!(writes.len() >= super::dir::BATCH_WRITES);
    let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
    assert_eq!(r.skipped, ["a", "c", "e"]);
    assert_eq!(r.deleted, ["b"]);
    assert_eq!(r.written.len(), 101);
    assert_eq!(read_text(&dir.join("a.json")), "{\"v\": 2}\n");
    assert_eq!(read_text(&dir.join("e.json")), "{\"app\": \"new\"}\n");
    assert!(!dir.join("c.json").exists());
    assert_eq!(read_text(&dir.join("n042.json")), "{\n  \"n\": 42\n}\n");
    let left: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let fresh = scan(ws.path(), &kind).unwrap();
    assert_eq!(fresh.entities.len(), 103);
    // What was written is stamped as a fresh scan sees it (the skipped keep their old stamps).
    let (Fingerprint::Dir { files: after, .. }, Fingerprint::Dir { files: seen, .. }) =
        (&r.fingerprint, &fresh.fingerprint)
    else {
        panic!("dir fingerprints")
    };
    for id in &r.written {
        assert!(after.get(id) == seen.get(id), "{id}'s stamp");
    }
}
