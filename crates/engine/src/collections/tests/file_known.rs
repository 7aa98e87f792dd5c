//! Tests of `file` collections read by what changed: entries whose text a scan read before are
//! taken by it, unparsed; a document whose bytes did not change is not analysed; a write
//! parses only the entries it changes.

use super::*;
use std::collections::HashMap;

/// What the engine remembers of `s` (the stat cache's rows): each entity parsed or known by its
/// text hash and content hash, the document by its stat and bytes when the stat can be trusted.
fn remember(s: &Scan, before: &Known) -> Known {
    let mut files: HashMap<String, KnownFile> = before
        .files
        .iter()
        .filter(|(id, _)| s.known.contains_key(*id))
        .map(|(id, k)| (id.clone(), k.clone()))
        .collect();
    for (id, text_hash) in &s.texts {
        if let Some(v) = s.entities.get(id) {
            files.insert(
                id.clone(),
                KnownFile {
                    stat: FileStat::default(),
                    file_hash: text_hash.clone(),
                    hash: content_hash(v),
                },
            );
        }
    }
    if let (Some(stat), Fingerprint::File { hash: Some(hash) }) = (s.stats.get(""), &s.fingerprint)
    {
        files.insert(
            String::new(),
            KnownFile {
                stat: *stat,
                file_hash: hash.clone(),
                hash: String::new(),
            },
        );
    } else {
        files.remove("");
    }
    Known {
        files,
        trust_before: SystemTime::now() + Duration::from_secs(3600),
    }
}

fn nothing_known() -> Known {
    Known {
        files: HashMap::new(),
        trust_before: SystemTime::now() + Duration::from_secs(3600),
    }
}

/// A document of `n` records as an app writes it, array at `/cities` or map at the root.
fn document(n: usize, array: bool, edit: Option<(usize, i64)>) -> String {
    let record = |i: usize| {
        let pop = 1000 + i as i64 + edit.filter(|(at, _)| *at == i).map_or(0, |(_, d)| d);
        json!({"id": format!("c{i:04}"), "name": format!("City {i}"), "pop": pop, "lat": 1.50})
    };
    let doc = if array {
        json!({"source": "test", "cities": (0..n).map(record).collect::<Vec<_>>()})
    } else {
        Value::Object((0..n).map(|i| (format!("c{i:04}"), record(i))).collect())
    };
    serde_json::to_string(&doc).unwrap()
}

fn kinds() -> [(bool, CollectionKind); 2] {
    [
        (true, file_kind("cities.json", Some("/cities"), "id")),
        (false, file_kind("cities.json", None, "id")),
    ]
}

/// An app saves the whole document with one record changed, one added and one removed: the
/// scan parses the changed and the added records only, takes every other by its text, and
/// the result is what a full read gives.
#[test]
fn an_edited_record_is_the_only_one_parsed() {
    for (array, kind) in kinds() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("cities.json");
        write_text(&doc, &document(200, array, None));
        let first = scan_known(ws.path(), &kind, &nothing_known()).unwrap();
        assert_eq!((first.entities.len(), first.texts.len()), (200, 200));
        let known = remember(&first, &nothing_known());

        let mut text = document(200, array, Some((17, 5)));
        text = text.replace("\"City 3\"", "\"City 3\",\"new\":true");
        write_text(&doc, &text);
        let s = scan_known(ws.path(), &kind, &known).unwrap();
        assert_eq!(
            s.entities.keys().collect::<Vec<_>>(),
            ["c0003", "c0017"],
            "array {array}"
        );
        assert_eq!(s.known.len(), 198);
        assert_eq!(s.texts.len(), 2);
        let full = scan(ws.path(), &kind).unwrap();
        for (id, v) in &full.entities {
            assert_eq!(s.local_hash(id), Some(content_hash(v)), "{id}");
        }

        // A record removed, another added: only the new one is parsed, the gone one is in
        // neither side.
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let known = remember(&s, &known);
        if array {
            let a = v["cities"].as_array_mut().unwrap();
            a.remove(5);
            a.push(json!({"id": "z1", "name": "Zed"}));
        } else {
            let m = v.as_object_mut().unwrap();
            m.shift_remove("c0005");
            m.insert("z1".into(), json!({"id": "z1", "name": "Zed"}));
        }
        write_text(&doc, &serde_json::to_string(&v).unwrap());
        let s = scan_known(ws.path(), &kind, &known).unwrap();
        assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["z1"]);
        assert!(!s.has("c0005"));
        assert_eq!(s.known.len(), 199);
    }
}

/// A document saved again with the same bytes (a new mtime and inode) is not analysed: it
/// holds what the rows say, and its new stat is remembered.
#[test]
fn a_document_whose_bytes_did_not_change_is_not_parsed() {
    for (array, kind) in kinds() {
        let ws = tempfile::tempdir().unwrap();
        let doc = ws.path().join("cities.json");
        let text = document(50, array, None);
        write_text(&doc, &text);
        let first = scan_known(ws.path(), &kind, &nothing_known()).unwrap();
        let known = remember(&first, &nothing_known());
        assert!(known.files.contains_key(""));
        std::thread::sleep(Duration::from_millis(20));
        app_save(&doc, &text);
        let s = scan_known(ws.path(), &kind, &known).unwrap();
        assert!(s.entities.is_empty() && s.texts.is_empty(), "array {array}");
        assert_eq!(s.known.len(), 50);
        assert_eq!(s.fingerprint, first.fingerprint);
        assert!(s.stats[""] != known.files[""].stat);
    }
}

/// A text known for one id does not stand for another entry: in a map, two ids with the same
/// value are each their own; an array element whose text is known is still checked for a
/// repeated id.
#[test]
fn known_texts_stand_only_for_their_entity() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("cities.json");
    let kind = file_kind("cities.json", None, "id");
    write_text(&doc, r#"{"a": {"n": 1}}"#);
    let first = scan_known(ws.path(), &kind, &nothing_known()).unwrap();
    let known = remember(&first, &nothing_known());
    write_text(&doc, r#"{"a": {"n": 1}, "b": {"n": 1}}"#);
    let s = scan_known(ws.path(), &kind, &known).unwrap();
    assert_eq!(s.known.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(s.entities.keys().collect::<Vec<_>>(), ["b"]);

    let kind = file_kind("cities.json", None, "id");
    write_text(&doc, r#"[{"id": "a", "n": 1}]"#);
    let first = scan_known(ws.path(), &kind, &nothing_known()).unwrap();
    let known = remember(&first, &nothing_known());
    write_text(&doc, r#"[{"id": "a", "n": 1}, {"id": "a", "n": 1}]"#);
    let s = scan_known(ws.path(), &kind, &known).unwrap();
    assert!(s.whole_collection_held);
    assert!(
        s.problems[0].message.contains("repeats id"),
        "{:?}",
        s.problems
    );
}

/// A write parses only what it changes, and still refuses to touch held entries: entries
/// nested too deep or repeating a key, found by their text.
#[test]
fn a_write_checks_unparsed_entries_by_their_text() {
    let ws = tempfile::tempdir().unwrap();
    let doc = ws.path().join("cities.json");
    let kind = file_kind("cities.json", None, "id");
    let deep = "[".repeat(MAX_ENTITY_DEPTH) + &"]".repeat(MAX_ENTITY_DEPTH);
    let text =
        format!(r#"{{"a": {{"n": 1}}, "d": {{"x": {deep}}}, "k": {{"x": 1, "x": 2}}, "e": {{}}}}"#);
    write_text(&doc, &text);
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.held.iter().collect::<Vec<_>>(), ["d", "k"]);
    let r = apply(
        ws.path(),
        &kind,
        &[
            put("d", json!({"n": 2})),
            put("k", json!({"n": 2})),
            put("a", json!({"n": 2})),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(r.skipped, ["d", "k"]);
    assert_eq!(r.written, ["a"]);
    assert_eq!(
        read_text(&doc),
        text.replace(r#""a": {"n": 1}"#, r#""a": {"n": 2}"#)
    );

    // An array's ids are read from the text of the elements a write does not change.
    let kind = file_kind("cities.json", Some("/c"), "uid");
    let text = r#"{"c": [{"uid": 7, "n": 1}, {"n": 0, "uid": "b"}, {"uid": "c", "uid": "d"}]}"#;
    write_text(&doc, text);
    let s = scan(ws.path(), &kind).unwrap();
    assert_eq!(s.held.iter().collect::<Vec<_>>(), ["d"]);
    let r = apply(
        ws.path(),
        &kind,
        &[
            put("7", json!({"n": 2})),
            put("d", json!({"n": 2})),
            del("b"),
        ],
        &s.fingerprint,
    )
    .unwrap();
    assert_eq!(
        (r.written.as_slice(), r.deleted.as_slice()),
        (&["7".to_owned()][..], &["b".to_owned()][..])
    );
    assert_eq!(
        read_text(&doc),
        r#"{"c": [{"uid": 7, "n": 2}, {"uid": "c", "uid": "d"}]}"#
    );
}
