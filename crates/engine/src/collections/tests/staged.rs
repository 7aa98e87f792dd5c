//! Tests of a new `dir` collection written whole through a staging folder ([`stage`]).

use super::*;

fn empty_scan(ws: &Path, kind: &CollectionKind) -> Fingerprint {
    scan(ws, kind).unwrap().fingerprint
}

/// Issue 12 (bootstrap): the files of a new collection appear at once, by one rename, each
/// as a single write would make it; until then the collection's folder is as it was, and
/// nothing of ours is left beside it.
#[test]
fn a_staged_collection_appears_whole_at_the_end() {
    for existed in [false, true] {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("data/tasks");
        if existed {
            fs::create_dir_all(&dir).unwrap();
        }
        let kind = dir_kind("data/tasks");
        let mut staged = stage(ws.path(), &kind, &empty_scan(ws.path(), &kind))
            .unwrap()
            .expect("an absent or empty folder is staged");
        for i in 0..10 {
            staged
                .write(&format!("n{i}"), 1, json!({"n": i}).to_string())
                .unwrap();
        }
        staged.write("bad", 1, json!([1, 2]).to_string()).unwrap();
        staged
            .write(&"x".repeat(300), 1, json!({}).to_string())
            .unwrap();
        assert_eq!(dir.exists(), existed, "existed: {existed}");
        if existed {
            assert!(names(&dir).is_empty(), "nothing shows before the move");
        }
        let not = staged.finish().unwrap();
        assert!(not.deferred.is_empty(), "{not:?}");
        assert!(
            matches!(
                &not.refused[..],
                [Refusal::NotAnObject { .. }, Refusal::FileName { .. }]
            ),
            "{not:?}"
        );
        assert_eq!(names(&dir).len(), 10);
        assert_eq!(read_text(&dir.join("n4.json")), "{\n  \"n\": 4\n}\n");
        assert_eq!(
            names(&ws.path().join("data")),
            ["tasks"],
            "nothing left beside it"
        );
        assert_eq!(scan(ws.path(), &kind).unwrap().entities.len(), 10);
    }
}

/// A folder that holds anything, or files the scan saw, is never staged: its files are
/// written one by one, never replaced by a rename.
#[test]
fn a_folder_with_anything_in_it_is_not_staged() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    let kind = dir_kind("tasks");
    write_text(&dir.join(".hidden"), "not an entity");
    let fp = empty_scan(ws.path(), &kind);
    assert!(stage(ws.path(), &kind, &fp).unwrap().is_none());
    fs::remove_file(dir.join(".hidden")).unwrap();
    write_text(&dir.join("a.json"), "{}");
    let fp = empty_scan(ws.path(), &kind);
    assert!(stage(ws.path(), &kind, &fp).unwrap().is_none());
    // Files the scan saw, even if gone now.
    fs::remove_file(dir.join("a.json")).unwrap();
    assert!(stage(ws.path(), &kind, &fp).unwrap().is_none());
    let doc = file_kind("doc.json", None, "id");
    assert!(
        stage(ws.path(), &doc, &empty_scan(ws.path(), &doc))
            .unwrap()
            .is_none()
    );
}

/// An app that saves into the folder while the bootstrap is staged: the folder is not
/// replaced, the staged files are moved in one by one, and the app's file stays as it is
/// (its id comes back as not moved, for the next sync to merge).
#[test]
fn an_app_save_during_staging_is_kept_and_its_id_left_for_later() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("tasks");
    fs::create_dir_all(&dir).unwrap();
    let kind = dir_kind("tasks");
    let mut staged = stage(ws.path(), &kind, &empty_scan(ws.path(), &kind))
        .unwrap()
        .unwrap();
    for id in ["a", "b", "c"] {
        staged
            .write(id, 1, json!({"from": "remote"}).to_string())
            .unwrap();
    }
    write_text(&dir.join("b.json"), "{\"from\": \"app\"}\n");
    write_text(&dir.join("notes.txt"), "the app's");
    let not = staged.finish().unwrap();
    assert_eq!(not.deferred.into_iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(read_text(&dir.join("b.json")), "{\"from\": \"app\"}\n");
    assert_eq!(read_text(&dir.join("notes.txt")), "the app's");
    assert_eq!(
        read_text(&dir.join("a.json")),
        "{\n  \"from\": \"remote\"\n}\n"
    );
    assert!(dir.join("c.json").exists());
    assert_eq!(names(ws.path()), ["tasks"], "the staging folder is gone");
}

/// A staging stopped by an error (dropped) leaves nothing; one left by a killed process is
/// removed by the next staging of the collection, and only that collection's.
#[test]
fn an_unfinished_staging_leaves_nothing_behind() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let fp = empty_scan(ws.path(), &kind);
    let mut staged = stage(ws.path(), &kind, &fp).unwrap().unwrap();
    staged.write("a", 1, "{}".to_owned()).unwrap();
    drop(staged);
    assert!(names(ws.path()).is_empty(), "{:?}", names(ws.path()));

    // What a kill leaves: a staging folder full of files.
    let left = ws.path().join(".tasks.deltasync-boot-AbCdE12345");
    write_text(&left.join("a.json"), "{}");
    let other = ws.path().join(".notes.deltasync-boot-AbCdE12345");
    write_text(&other.join("a.json"), "{}");
    let mine = ws.path().join(".tasks.deltasync-boot-mine");
    write_text(&mine.join("a.json"), "{}");
    let staged = stage(ws.path(), &kind, &fp).unwrap().unwrap();
    assert!(!left.exists(), "the killed staging is removed");
    assert!(other.exists() && mine.exists(), "nothing else is touched");
    assert!(staged.finish().unwrap().ids().next().is_none());
    assert!(ws.path().join("tasks").is_dir());
}

/// Issue 12 (bootstrap): entities offered ahead of time (while a snapshot is read) are in
/// the collection only as confirmed: a write of the same version keeps the file written
/// already, one of another version replaces it (or its refusal, or is refused and leaves no
/// file), and what was never confirmed — a file, a refusal — is gone at the end.
#[test]
fn offered_entities_end_as_confirmed() {
    let ws = tempfile::tempdir().unwrap();
    let kind = dir_kind("tasks");
    let mut staged = stage(ws.path(), &kind, &empty_scan(ws.path(), &kind))
        .unwrap()
        .unwrap();
    for id in ["same", "newer", "dropped"] {
        staged.offer(id, 1, json!({"v": 1})).unwrap();
    }
    staged.offer("bad", 1, json!([1])).unwrap();
    staged.offer(&"x".repeat(300), 1, json!({})).unwrap();
    staged.offer("turns_bad", 1, json!({"v": 1})).unwrap();
    staged.offer("turns_good", 1, json!([1])).unwrap();
    staged.write("turns_bad", 2, "[2]".to_owned()).unwrap();
    staged.write("turns_good", 2, json!({"v": 2})).unwrap();
    staged
        .write("same", 1, json!({"v": "not asked for"}).to_string())
        .unwrap();
    staged
        .write("newer", 2, json!({"v": 2}).to_string())
        .unwrap();
    staged.write("new", 1, json!({"v": 1}).to_string()).unwrap();
    let not = staged.finish().unwrap();
    assert_eq!(not.ids().collect::<Vec<_>>(), ["turns_bad"], "{not:?}");
    let dir = ws.path().join("tasks");
    assert_eq!(
        names(&dir),
        ["new.json", "newer.json", "same.json", "turns_good.json"]
    );
    assert_eq!(read_text(&dir.join("same.json")), "{\n  \"v\": 1\n}\n");
    assert_eq!(read_text(&dir.join("newer.json")), "{\n  \"v\": 2\n}\n");
}
