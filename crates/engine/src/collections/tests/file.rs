//! Tests of `file` collections (one JSON document), and property tests of both kinds.

use super::*;

// ---------------------------------------------------------------- file

#[test]
fn file_array_at_root_round_trip() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("stadiums.json");
    write_text(
        &doc,
        "[\n  {\n    \"id\": \"a\",\n    \"name\": \"Anfield\"\n  },\n  {\n    \"id\": \"b\",\n    \"name\": \"Bernabeu\"\n  },\n  {\n    \"id\": \"c\",\n    \"name\": \"Camp Nou\"\n  }\n]\n",
    );
    let kind = file_kind("stadiums.json", None, "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.problems.is_empty() && !s.whole_collection_held);
    assert_eq!(s.entities["b"], json!({"id": "b", "name": "Bernabeu"}));
    let r = apply(
        ws.path(),
        &kind,
        &[
            put("b", json!({"name": "Santiago Bernabeu", "id": "b"})),
            del("a"),
            put("d", json!({"name": "Dortmund"})),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.written, ["b", "d"]);
    assert_eq!(r.deleted, ["a"]);
    assert_eq!(
        read_text(&doc),
        "[\n  {\n    \"id\": \"b\",\n    \"name\": \"Santiago Bernabeu\"\n  },\n  {\n    \"id\": \"c\",\n    \"name\": \"Camp Nou\"\n  },\n  {\n    \"id\": \"d\",\n    \"name\": \"Dortmund\"\n  }\n]\n"
    );
    let s2 = scan(ws.path(), &kind).unwrap();
    assert_eq!(s2.fingerprint, r.fingerprint);
    assert_eq!(s2.entities.keys().collect::<Vec<_>>(), ["b", "c", "d"]);

    // Deleting everything leaves an empty array.
    let r = apply(
        ws.path(),
        &kind,
        &[del("b"), del("c"), del("d")],
        &s2.fingerprint,
    )
    .unwrap();
    assert_eq!(r.deleted.len(), 3);
    assert_eq!(read_text(&doc), "[]\n");
    let s3 = scan(ws.path(), &kind).unwrap();
    assert!(s3.entities.is_empty());
    // And the first new entity after that is indented like the document.
    apply(
        ws.path(),
        &kind,
        &[put("e", json!({"n": 1}))],
        &s3.fingerprint,
    )
    .unwrap();
    assert_eq!(
        read_text(&doc),
        "[\n  {\n    \"id\": \"e\",\n    \"n\": 1\n  }\n]\n"
    );
}

#[test]
fn file_map_at_root_round_trip() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("notes.json");
    write_text(
        &doc,
        "{\n\t\"n1\": {\n\t\t\"text\": \"hello\"\n\t},\n\t\"n2\": {\n\t\t\"text\": \"bye\"\n\t}\n}",
    );
    let kind = file_kind("notes.json", None, "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.len(), 2);
    assert_eq!(s.entities["n1"], json!({"text": "hello"}));
    let r = apply(
        ws.path(),
        &kind,
        &[
            put("n3", json!({"text": "new", "tags": ["x"]})),
            put("n1", json!({"text": "hello!"})),
            del("n2"),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.written, ["n3", "n1"]);
    // Tabs kept, no trailing newline added.
    assert_eq!(
        read_text(&doc),
        "{\n\t\"n1\": {\n\t\t\"text\": \"hello!\"\n\t},\n\t\"n3\": {\n\t\t\"text\": \"new\",\n\t\t\"tags\": [\n\t\t\t\"x\"\n\t\t]\n\t}\n}"
    );
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities["n3"], json!({"text": "new", "tags": ["x"]}));
    assert_eq!(s.entities.len(), 2);
}

/// A larger app document, 4-space indented, with things serde_json would not write the same
/// way (number spellings, escapes, an inline array) outside the collection.
const MAIN: &str = r#"{
    "version": 3,
    "settings": {"theme": "dark", "ratio": 1.50, "big": 1e3, "name": "caf\u00e9"},
    "task": {
        "nextId": 12,
        "entities": [
            {
                "id": "t1",
                "title": "first",
                "estimate": 2.50
            },
            {
                "id": "t2",
                "title": "second"
            },
            {
                "id": "t3",
                "title": "third"
            }
        ],
        "ids": ["t1", "t2", "t3"]
    },
    "project": {
        "entities": {
            "p1": {"title": "inbox"}
        }
    },
    "zeta": [ 1, 2 ,3 ]
}
"#;

#[test]
fn file_pointer_inside_a_larger_document() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("main.json");
    write_text(&doc, MAIN);
    let kind = file_kind("main.json", Some("/task/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["t1", "t2", "t3"]);
    let r = apply(
        ws.path(),
        &kind,
        &[
            put(
                "t2",
                json!({"id": "t2", "title": "second, edited", "done": true}),
            ),
            del("t3"),
            put("t4", json!({"id": "t4", "title": "fourth"})),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert!(r.skipped.is_empty());
    let after = read_text(&doc);
    let open = MAIN.find("\"entities\": [").unwrap() + "\"entities\": [".len();
    let close = MAIN.find("\n        ],").unwrap();
    // Everything outside the collection is byte for byte the same…
    assert!(after.starts_with(&MAIN[..open]), "{after}");
    assert!(after.ends_with(&MAIN[close..]), "{after}");
    // …and so is the entity that was not written (its "2.50" included).
    let t1 = &MAIN[MAIN
        .find("            {\n                \"id\": \"t1\"")
        .unwrap()
        ..MAIN
            .find("            },\n            {\n                \"id\": \"t2\"")
            .unwrap()];
    assert!(after.contains(t1));
    assert_eq!(
        &after[open..after.len() - (MAIN.len() - close)],
        format!(
            "\n{t1}            }},\n            {{\n                \"id\": \"t2\",\n                \"title\": \"second, edited\",\n                \"done\": true\n            }},\n            {{\n                \"id\": \"t4\",\n                \"title\": \"fourth\"\n            }}"
        )
    );
    let s2 = scan(ws.path(), &kind).unwrap();
    assert_eq!(s2.entities.keys().collect::<Vec<_>>(), ["t1", "t2", "t4"]);
    // Numbers are kept exactly as the file writes them (arbitrary_precision).
    assert_eq!(s2.entities["t1"]["estimate"].to_string(), "2.50");
    assert_eq!(s2.fingerprint, r.fingerprint);

    // The map-shaped collection next to it.
    let kind = file_kind("main.json", Some("/project/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities["p1"], json!({"title": "inbox"}));
    let before = read_text(&doc);
    apply(
        ws.path(),
        &kind,
        &[put("p2", json!({"title": "work"}))],
        &s.fingerprint,
    )
    .unwrap();
    let after = read_text(&doc);
    assert_eq!(
            after,
            before.replace(
                "\"p1\": {\"title\": \"inbox\"}\n",
                "\"p1\": {\"title\": \"inbox\"},\n            \"p2\": {\n                \"title\": \"work\"\n            }\n"
            )
        );
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.len(), 2);
}

#[test]
fn file_missing_target_is_created() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("main.json");
    let other =
        "{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1\n    }\n}\n";
    write_text(&doc, other);

    // Default id field: a map.
    let kind = file_kind("main.json", Some("/task/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.entities.is_empty() && s.problems.is_empty());
    // Deletes alone create nothing.
    let r = apply(ws.path(), &kind, &[del("x")], &s.fingerprint).unwrap();
    assert_eq!(r.deleted, ["x"]);
    assert_eq!(read_text(&doc), other);
    apply(
        ws.path(),
        &kind,
        &[put("t1", json!({"title": "a"}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        read_text(&doc),
        "{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1,\n        \"entities\": {\n            \"t1\": {\n                \"title\": \"a\"\n            }\n        }\n    }\n}\n"
    );

    // An explicit id field: an array, with the id inserted.
    write_text(&doc, other);
    let kind = file_kind("main.json", Some("/board/cards"), "uid");
    let s = scan(ws.path(), &kind).unwrap();
    apply(
        ws.path(),
        &kind,
        &[put("c1", json!({"title": "a"}))],
        &s.fingerprint,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&read_text(&doc)).unwrap();
    assert_eq!(v["board"]["cards"], json!([{"uid": "c1", "title": "a"}]));
    assert!(read_text(&doc).starts_with("{\n    \"settings\": {\"a\": 1},\n    \"task\": {\n        \"nextId\": 1\n    },\n    \"board\": {\n        \"cards\": [\n            {\n"));
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities["c1"], json!({"uid": "c1", "title": "a"}));

    // A missing document, created with its pointer path.
    let kind = file_kind("sub/new.json", Some("/a/b"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.fingerprint, Fingerprint::File { hash: None });
    apply(
        ws.path(),
        &kind,
        &[put("x", json!({"n": 1}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        read_text(&ws.path().join("sub/new.json")),
        "{\n  \"a\": {\n    \"b\": {\n      \"x\": {\n        \"n\": 1\n      }\n    }\n  }\n}\n"
    );

    // null at the pointer is an empty collection.
    write_text(&doc, "{\"list\": null, \"z\": 0}");
    let kind = file_kind("main.json", Some("/list"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.entities.is_empty() && s.problems.is_empty());
    apply(
        ws.path(),
        &kind,
        &[put("x", json!({"n": 1}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(read_text(&doc), "{\"list\": {\"x\": {\"n\": 1}}, \"z\": 0}");
}

#[test]
fn file_app_save_between_scan_and_apply_is_never_overwritten() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("main.json");
    write_text(&doc, MAIN);
    let kind = file_kind("main.json", Some("/task/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    let saved = MAIN.replace("\"nextId\": 12", "\"nextId\": 13");
    app_save(&doc, &saved);
    let e = apply(
        ws.path(),
        &kind,
        &[put("t9", json!({"id": "t9"})), del("t1")],
        &s.fingerprint,
    )
    .unwrap_err();
    assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }), "{e}");
    assert!(e.is_temporary());
    assert_eq!(read_text(&doc), saved);
    assert_eq!(names(ws.path()), ["main.json"]);

    // The app deleting the document is a change too.
    let s = scan(ws.path(), &kind).unwrap();
    fs::remove_file(&doc).unwrap();
    let e = apply(ws.path(), &kind, &[del("t1")], &s.fingerprint).unwrap_err();
    assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }));
    assert!(!doc.exists());

    // And creating it when the scan found none.
    let s = scan(ws.path(), &kind).unwrap();
    write_text(&doc, "{\"task\": {\"entities\": []}}");
    let e = apply(ws.path(), &kind, &[put("t1", json!({}))], &s.fingerprint).unwrap_err();
    assert!(matches!(e, CollectionError::ChangedMeanwhile { .. }));
    assert_eq!(read_text(&doc), "{\"task\": {\"entities\": []}}");
}

#[test]
fn file_half_written_document_holds_the_whole_collection() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("main.json");
    let half = &MAIN[..MAIN.find("\"title\": \"second\"").unwrap()];
    write_text(&doc, half);
    let kind = file_kind("main.json", Some("/task/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.whole_collection_held);
    assert!(s.entities.is_empty());
    assert_eq!(s.problems.len(), 1);
    let p = &s.problems[0];
    assert_eq!(p.line, Some(14));
    assert!(p.column.is_some());
    assert!(p.message.contains("line 14 column"), "{}", p.message);
    let e = apply(ws.path(), &kind, &[del("t1")], &s.fingerprint).unwrap_err();
    assert!(matches!(e, CollectionError::Held { .. }), "{e}");
    assert_eq!(read_text(&doc), half);

    // An empty file (a truncated save) is not an empty collection.
    write_text(&doc, "");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.whole_collection_held);
}

#[test]
fn file_bad_entries() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("list.json");
    let kind = file_kind("list.json", None, "id");
    for (text, held) in [
        (
            r#"[{"id": "a"}, {"id": "a", "x": 1}, {"id": "b"}]"#,
            vec!["a", "b"],
        ),
        (r#"[{"id": "a"}, {"name": "no id"}]"#, vec!["a"]),
        (r#"[{"id": "a"}, {"id": ""}]"#, vec!["a"]),
        (r#"[{"id": "a"}, {"id": null}]"#, vec!["a"]),
        (r#"[{"id": "a"}, 3]"#, vec!["a"]),
        (r#"{"a": {}, "a": {"x": 1}}"#, vec!["a"]),
        (r#""just a string""#, vec![]),
    ] {
        write_text(&doc, text);
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.whole_collection_held, "{text}");
        assert!(s.entities.is_empty(), "{text}");
        assert_eq!(s.held.iter().collect::<Vec<_>>(), held, "{text}");
        assert!(!s.problems.is_empty());
        assert!(
            s.problems.iter().all(|p| p.line.is_some()),
            "{:?}",
            s.problems
        );
        assert!(matches!(
            apply(ws.path(), &kind, &[put("c", json!({}))], &s.fingerprint),
            Err(CollectionError::Held { .. })
        ));
        assert_eq!(read_text(&doc), text);
    }

    // A map entry that is not an object holds that id only.
    let text = "{\"a\": {\"n\": 1}, \"b\": 42}";
    write_text(&doc, text);
    let s = scan(ws.path(), &kind).unwrap();
    assert!(!s.whole_collection_held);
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(s.held.iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(s.problems[0].ids.as_deref(), Some(&["b".to_owned()][..]));
    let r = apply(
        ws.path(),
        &kind,
        &[del("b"), put("a", json!({"n": 2}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["b"]);
    assert_eq!(read_text(&doc), "{\"a\": {\"n\": 2}, \"b\": 42}");

    // A pointer through a scalar.
    write_text(&doc, "{\"task\": 5}");
    let s = scan(
        ws.path(),
        &file_kind("list.json", Some("/task/entities"), "id"),
    )
    .unwrap();
    assert!(s.whole_collection_held);
}

#[test]
fn file_numeric_ids_and_id_field_checks() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("list.json");
    write_text(&doc, "[{\"key\":7,\"n\":1},{\"key\":\"x\",\"n\":2}]");
    let kind = file_kind("list.json", None, "key");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["7", "x"]);
    assert_eq!(s.entities["7"], json!({"key": 7, "n": 1}));

    // Another device's copy of the entity with the id as a string: stays a number here.
    let r = apply(
        ws.path(),
        &kind,
        &[put("7", json!({"n": 5, "key": "7"}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.written, ["7"]);
    assert_eq!(
        read_text(&doc),
        "[{\"key\":7,\"n\":5},{\"key\":\"x\",\"n\":2}]"
    );

    // An id field that disagrees with the id is refused on its own. Compact stays compact,
    // the id field is added first.
    let s = scan(ws.path(), &kind).unwrap();
    let r = apply(
        ws.path(),
        &kind,
        &[put("z", json!({"key": "other"})), put("y", json!({"n": 1}))],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["z"]);
    assert!(
        matches!(&r.refused[..], [Refusal::BadId { id, reason }] if id == "z" && reason.contains("\"other\"")),
        "{:?}",
        r.refused
    );
    assert_eq!(
        read_text(&doc),
        "[{\"key\":7,\"n\":5},{\"key\":\"x\",\"n\":2},{\"key\":\"y\",\"n\":1}]"
    );
}

#[test]
fn file_formatting_is_kept() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("d.json");
    let kind = file_kind("d.json", Some("/items"), "id");
    let cases = [
        // Python's json.dumps without indent.
        (
            "{\"items\": [{\"id\": \"a\", \"v\": 1}], \"n\": 1}",
            "{\"items\": [{\"id\": \"a\", \"v\": 2}, {\"id\": \"b\", \"v\": [1, 2]}], \"n\": 1}",
        ),
        // CRLF and 4 spaces, with a byte order mark.
        (
            "\u{feff}{\r\n    \"items\": [\r\n        {\r\n            \"id\": \"a\",\r\n            \"v\": 1\r\n        }\r\n    ]\r\n}\r\n",
            "\u{feff}{\r\n    \"items\": [\r\n        {\r\n            \"id\": \"a\",\r\n            \"v\": 2\r\n        },\r\n        {\r\n            \"id\": \"b\",\r\n            \"v\": [\r\n                1,\r\n                2\r\n            ]\r\n        }\r\n    ]\r\n}\r\n",
        ),
        // An inline array in a pretty document stays inline.
        (
            "{\n  \"items\": [{\"id\": \"a\", \"v\": 1}],\n  \"n\": 1\n}",
            "{\n  \"items\": [{\"id\": \"a\", \"v\": 2}, {\"id\": \"b\", \"v\": [1, 2]}],\n  \"n\": 1\n}",
        ),
        // Empty inline array in a 4-space document.
        (
            "{\n    \"items\": []\n}\n",
            "{\n    \"items\": [\n        {\n            \"id\": \"b\",\n            \"v\": [\n                1,\n                2\n            ]\n        }\n    ]\n}\n",
        ),
    ];
    for (before, want) in cases {
        write_text(&doc, before);
        let s = scan(ws.path(), &kind).unwrap();
        assert!(s.problems.is_empty(), "{before}: {:?}", s.problems);
        let writes: Vec<Write> = if s.entities.contains_key("a") {
            vec![
                put("a", json!({"id": "a", "v": 2})),
                put("b", json!({"id": "b", "v": [1, 2]})),
            ]
        } else {
            vec![put("b", json!({"id": "b", "v": [1, 2]}))]
        };
        apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
        assert_eq!(read_text(&doc), want);
        let s = scan(ws.path(), &kind).unwrap();
        assert_eq!(s.entities["b"], json!({"id": "b", "v": [1, 2]}));
    }
}

#[test]
fn file_unchanged_writes_leave_the_document_alone() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("main.json");
    write_text(&doc, MAIN);
    let kind = file_kind("main.json", Some("/task/entities"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    // Same content in another key order: nothing to write.
    let r = apply(
        ws.path(),
        &kind,
        &[
            put("t2", json!({"title": "second", "id": "t2"})),
            del("nope"),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.written, ["t2"]);
    assert_eq!(r.fingerprint, s.fingerprint);
    assert_eq!(read_text(&doc), MAIN);
}

#[cfg(unix)]
#[test]
fn writes_keep_permissions_and_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let ws = tempfile::tempdir().unwrap();
    let real = ws.path().join("real.json");
    write_text(&real, "{\"a\": {}}");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("real.json", ws.path().join("link.json")).unwrap();
    let kind = file_kind("link.json", None, "id");
    let s = scan(ws.path(), &kind).unwrap();
    apply(ws.path(), &kind, &[put("b", json!({}))], &s.fingerprint).unwrap();
    assert!(
        fs::symlink_metadata(ws.path().join("link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_text(&real), "{\"a\": {}, \"b\": {}}");
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[cfg(unix)]
#[test]
fn dir_links_that_make_two_entities_one_file_are_held() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    write_text(&dir.join("a.json"), "{\"n\": 1}");
    write_text(&ws.path().join("out/x.json"), "{\"n\": 2}");
    write_text(&ws.path().join("out/y.json"), "{\"n\": 3}");
    std::os::unix::fs::symlink("a.json", dir.join("b.json")).unwrap();
    std::os::unix::fs::symlink(ws.path().join("out/x.json"), dir.join("c.json")).unwrap();
    std::os::unix::fs::symlink(ws.path().join("out/x.json"), dir.join("d.json")).unwrap();
    std::os::unix::fs::symlink(ws.path().join("out/y.json"), dir.join("e.json")).unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    // e is the only link to its file: followed.
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["e"]);
    assert_eq!(s.entities["e"], json!({"n": 3}));
    assert_eq!(s.held, ["a", "b", "c", "d"].map(String::from).into());
    assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
    assert!(s.problems.iter().all(|p| p.message.contains("one file")));
    // Nothing is written over any of them.
    let r = apply(
        ws.path(),
        &kind,
        &[put("b", json!({"n": 9})), del("c")],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["b", "c"]);
    assert_eq!(read_text(&dir.join("a.json")), "{\"n\": 1}");
    assert!(dir.join("c.json").exists());
}

#[test]
fn escaped_keys_and_pointer_tokens() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("e.json");
    let text = "{\"a/b\": {\"q\\\"k\": {\"n\": 1}, \"caf\\u00e9\": {\"n\": 2}}}";
    write_text(&doc, text);
    let kind = file_kind("e.json", Some("/a~1b"), "id");
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["caf\u{e9}", "q\"k"]);
    apply(
        ws.path(),
        &kind,
        &[
            put("q\"k", json!({"n": 3})),
            del("caf\u{e9}"),
            put("\n", json!({})),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        read_text(&doc),
        "{\"a/b\": {\"q\\\"k\": {\"n\": 3}, \"\\n\": {}}}"
    );
}

#[test]
fn a_folder_named_like_an_entity_is_held() {
    let ws = tempfile::tempdir().unwrap();
    fs::create_dir_all(ws.path().join("tasks/x.json")).unwrap();
    let kind = dir_kind("tasks");
    let s = scan(ws.path(), &kind).unwrap();
    assert!(s.entities.is_empty());
    assert_eq!(s.held.iter().collect::<Vec<_>>(), ["x"]);
    let r = apply(ws.path(), &kind, &[del("x")], &s.fingerprint).unwrap();
    assert_eq!(r.skipped, ["x"]);
    assert!(ws.path().join("tasks/x.json").is_dir());
}

// ---------------------------------------------------------------- properties

/// A random batch over a few ids, against a model.
fn batch() -> impl Strategy<Value = Vec<(u8, Option<u8>)>> {
    proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 0..8)
}

fn model_writes(batch: &[(u8, Option<u8>)], id_field: Option<&str>) -> Vec<Write> {
    let mut seen = BTreeSet::new();
    batch
        .iter()
        .filter(|(id, _)| seen.insert(*id))
        .map(|(id, v)| {
            let id = format!("e{id}");
            match v {
                Some(v) => {
                    let mut value = json!({"v": v, "nested": {"k": [v]}});
                    if let Some(f) = id_field {
                        value[f] = json!(id);
                    }
                    put(&id, value)
                }
                None => del(&id),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batches_match_a_model(
        shape in 0usize..4,
        batches in proptest::collection::vec(batch(), 1..5),
    ) {
        let ws = tempfile::tempdir().unwrap();
        let (kind, start, id_field): (CollectionKind, Option<&str>, Option<&str>) = match shape {
            0 => (dir_kind("d"), None, None),
            1 => (file_kind("a.json", None, "id"), Some("[]"), Some("id")),
            2 => (file_kind("m.json", Some("/x/entities"), "id"), Some("{\n    \"x\": {\"keep\": 1.50},\n    \"y\": [1,2]\n}"), None),
            _ => (file_kind("c.json", Some("/x"), "uid"), Some("{\"y\":1e3,\"x\":[]}"), Some("uid")),
        };
        if let (CollectionKind::File { path, .. }, Some(text)) = (&kind, start) {
            write_text(&ws.path().join(path), text);
        }
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for b in &batches {
            let s = scan(ws.path(), &kind).unwrap();
            prop_assert!(s.problems.is_empty(), "{:?}", s.problems);
            let writes = model_writes(b, id_field);
            let r = apply(ws.path(), &kind, &writes, &s.fingerprint).unwrap();
            prop_assert!(r.skipped.is_empty());
            for w in &writes {
                match w {
                    Write::Put { id, value } => { model.insert(id.clone(), content_hash(value)); }
                    Write::Delete { id } => { model.remove(id); }
                }
            }
            let s = scan(ws.path(), &kind).unwrap();
            let got: BTreeMap<String, String> =
                s.entities.iter().map(|(k, v)| (k.clone(), content_hash(v))).collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(&s.fingerprint, &r.fingerprint);
        }
        // The rest of the document survives, spellings included.
        if shape == 2 {
            let text = read_text(&ws.path().join("m.json"));
            prop_assert!(text.contains("\"keep\": 1.50"), "{}", text);
            prop_assert!(text.ends_with("},\n    \"y\": [1,2]\n}"), "{}", text);
        }
        if shape == 3 {
            let kept = read_text(&ws.path().join("c.json")).starts_with(r#"{"y":1e3,"x":["#);
            prop_assert!(kept);
        }
    }
}

/// A repeated key inside an entity of a document holds that entity (a parser would keep one
/// value and drop the other); the others are read, and the position is given.
#[test]
fn doc_entity_with_a_repeated_key_is_held_with_its_position() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("main.json"),
        "{\"t1\": {\"a\": 1},\n \"t2\": {\"a\": 1, \"a\": 2},\n \"t3\": {\"b\": {\"a\": 1}, \"a\": 1}}",
    )
    .unwrap();
    let s = scan(ws.path(), &file_kind("main.json", None, "id")).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["t1", "t3"]);
    let p = &s.problems[0];
    assert!(p.message.contains("\"a\" twice"), "{p:?}");
    assert_eq!((p.line, p.column), (Some(2), Some(17)), "{p:?}");
    assert!(!s.whole_collection_held);
    let arr = tempfile::tempdir().unwrap();
    std::fs::write(
        arr.path().join("main.json"),
        "{\"items\": [{\"id\": \"i1\", \"x\": 1, \"x\": 2}, {\"id\": \"i2\"}]}",
    )
    .unwrap();
    let s = scan(arr.path(), &file_kind("main.json", Some("/items"), "id")).unwrap();
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["i2"]);
    assert!(
        s.problems[0].message.contains("\"x\" twice"),
        "{:?}",
        s.problems
    );
}
