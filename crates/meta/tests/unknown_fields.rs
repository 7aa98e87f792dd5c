//! Fields a newer writer added to meta.json are kept when this writer rewrites it (issue 10,
//! "unknown fields of meta.json are dropped on rewrite"): docs/format.md lets a writer add an
//! optional field without raising `minReader`, so an older writer must not drop it.

use deltasync_meta::*;

/// A meta.json as a newer writer could write it: unknown fields at the top level (one
/// between known ones, one at the end), in the snapshot entry, in a delta entry and in a
/// device entry.
const META: &str = concat!(
    r#"{"format":1,"minReader":1,"minWriter":1,"#,
    r#""zeta":{"nested":[1,2.5,"x"]},"#,
    r#""snapshot":{"generation":0,"name":"data.json","size":10,"sha256":"ab","head":1,"compression":"none"},"#,
    r#""globalUpdateCount":3,"#,
    r#""deltas":[{"path":"deltas/g0/a-1-00000001.json","seq":2,"device":"a","time":1,"entities":1,"size":5,"sha256":"cd","signature":"sig2","codec":7},"#,
    r#"{"path":"deltas/g0/a-2-00000002.json","seq":3,"device":"a","time":2,"entities":1,"size":6,"sha256":"ef"}],"#,
    r#""entityVersions":{"tasks":{"t1":3}},"lastSyncTimestamp":2,"#,
    r#""devices":{"a":{"name":"laptop","lastCommit":2,"platform":"linux"}},"#,
    r#""alpha":-0.0125}"#
);

/// The same meta.json as this writer writes it back: the unknown fields of each object after
/// its known ones, sorted by name.
const REWRITTEN: &str = concat!(
    r#"{"format":1,"minReader":1,"minWriter":1,"#,
    r#""snapshot":{"generation":0,"name":"data.json","size":10,"sha256":"ab","head":1,"compression":"none"},"#,
    r#""globalUpdateCount":3,"#,
    r#""deltas":[{"path":"deltas/g0/a-1-00000001.json","seq":2,"device":"a","time":1,"entities":1,"size":5,"sha256":"cd","codec":7,"signature":"sig2"},"#,
    r#"{"path":"deltas/g0/a-2-00000002.json","seq":3,"device":"a","time":2,"entities":1,"size":6,"sha256":"ef"}],"#,
    r#""entityVersions":{"tasks":{"t1":3}},"lastSyncTimestamp":2,"#,
    r#""devices":{"a":{"name":"laptop","lastCommit":2,"platform":"linux"}},"#,
    r#""alpha":-0.0125,"zeta":{"nested":[1,2.5,"x"]}}"#
);

#[test]
fn a_rewrite_keeps_unknown_fields_in_a_fixed_place() {
    let meta = Meta::from_bytes(META.as_bytes()).unwrap();
    assert_eq!(meta.head, 3);
    assert_eq!(meta.deltas.len(), 2);
    let bytes = meta.to_bytes();
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), REWRITTEN);
    // Read and written again: nothing moves.
    let again = Meta::from_bytes(&bytes).unwrap();
    assert_eq!(again, meta);
    assert_eq!(again.to_bytes(), bytes);
}

#[test]
fn a_commit_keeps_them_and_adds_its_own_entry() {
    // What a commit does: clone what was read, add a delta, write.
    let mut next = Meta::from_bytes(META.as_bytes()).unwrap();
    next.head = 4;
    next.deltas.push(DeltaRef {
        path: "deltas/g0/b-3-00000003.json".into(),
        seq: 4,
        device: "b".into(),
        time: 3,
        entities: 1,
        size: 7,
        sha256: "12".into(),
    });
    next.devices.entry("b".into()).or_default().last_commit = 3;
    let text = String::from_utf8(next.to_bytes()).unwrap();
    for kept in [
        r#""sha256":"cd","codec":7,"signature":"sig2"}"#,
        r#""head":1,"compression":"none"}"#,
        r#""lastCommit":2,"platform":"linux"}"#,
        r#""alpha":-0.0125,"zeta":{"nested":[1,2.5,"x"]}}"#,
        r#"{"path":"deltas/g0/b-3-00000003.json","seq":4,"device":"b","time":3,"entities":1,"size":7,"sha256":"12"}"#,
        r#""b":{"name":"","lastCommit":3}"#,
    ] {
        assert!(text.contains(kept), "{kept} missing in {text}");
    }
}

#[test]
fn an_entry_s_fields_go_with_the_entry() {
    // A compaction: the deltas are folded, the snapshot is a new file. The unknown fields of
    // the entries described those files, so they go with them; the top level's stay.
    let mut next = Meta::from_bytes(META.as_bytes()).unwrap();
    next.deltas.remove(0);
    let text = String::from_utf8(next.to_bytes()).unwrap();
    assert!(!text.contains("signature"), "{text}");
    next.deltas.clear();
    next.snapshot = Some(SnapshotRef {
        generation: 1,
        name: "data-g1-0000abcd.json".into(),
        size: 20,
        sha256: "99".into(),
        head: 3,
    });
    let text = String::from_utf8(next.to_bytes()).unwrap();
    assert!(!text.contains("compression"), "{text}");
    assert!(text.contains(r#""zeta":{"nested":[1,2.5,"x"]}"#), "{text}");
    assert!(text.contains(r#""platform":"linux""#), "{text}");
}

#[test]
fn a_meta_without_unknown_fields_is_written_as_before() {
    // A format-1 remote's meta.json (a remote keeps its format until a compaction).
    let mut meta = Meta::new(2);
    (meta.format, meta.min_reader, meta.min_writer) = (1, 1, 1);
    meta.devices.insert(
        "a".into(),
        DeviceInfo {
            name: "laptop".into(),
            last_commit: 5,
        },
    );
    assert_eq!(
        String::from_utf8(meta.to_bytes()).unwrap(),
        r#"{"format":1,"minReader":1,"minWriter":1,"globalUpdateCount":2,"deltas":[],"entityVersions":{},"lastSyncTimestamp":0,"devices":{"a":{"name":"laptop","lastCommit":5}}}"#
    );
}

#[test]
fn a_format_2_meta_without_unknown_fields_has_no_version_map_nor_devices() {
    let mut meta = Meta::new(2);
    meta.devices.insert(
        "a".into(),
        DeviceInfo {
            name: "laptop".into(),
            last_commit: 5,
        },
    );
    assert_eq!(
        String::from_utf8(meta.to_bytes()).unwrap().trim_end(),
        r#"{"format":2,"minReader":2,"minWriter":2,"globalUpdateCount":2,"deltas":[],"lastSyncTimestamp":0}"#
    );
    // The local copy keeps them.
    assert!(
        String::from_utf8(meta.to_local_bytes())
            .unwrap()
            .contains(r#""devices":{"a":{"name":"laptop","lastCommit":5}}"#)
    );
}
