//! Golden files freeze the remote format this writer writes (2): any change to what is written
//! shows up as a diff of `testdata/format-v2/`, to be reviewed with `docs/format.md`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p deltasync-meta --test golden`. The files of
//! `testdata/format-v1/` were written by format-1 writers: they are read, and written back
//! byte for byte (a remote keeps its format until a compaction upgrades it).

use std::path::PathBuf;

use deltasync_meta::*;
use serde_json::json;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/format-v2")
}

fn v1_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/format-v1")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(name: &str, bytes: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        String::from_utf8_lossy(bytes),
        String::from_utf8_lossy(&want),
        "{name} differs from the golden file: a format change must update docs/format.md"
    );
}

fn record(id: &str, version: u64, deleted: bool) -> EntityRecord {
    EntityRecord {
        collection: "tasks".into(),
        id: id.into(),
        version,
        last_modified_at: Hlc {
            ms: 1_763_776_000_000 + version,
            counter: 0,
        },
        last_modified_by: "3f2a9c1b7d4e".into(),
        is_deleted: deleted,
        data: if deleted {
            serde_json::Value::Null
        } else {
            json!({"id": id, "title": "Buy milk", "done": false, "tags": ["home"]})
        },
        extra: Default::default(),
    }
}

fn receipt() -> ConflictReceipt {
    ConflictReceipt {
        id: "3f2a9c1b7d4e-1763776000123-0a1b".into(),
        collection: "tasks".into(),
        entity_id: "t1".into(),
        field: vec!["title".into()],
        kind: ConflictKind::Field,
        kept: json!("Buy oat milk"),
        kept_by: "3f2a9c1b7d4e".into(),
        lost: json!("Buy milk"),
        lost_by: "98cc01de22f0".into(),
        kept_at: None,
        lost_at: None,
        at: Hlc {
            ms: 1_763_776_000_123,
            counter: 2,
        },
        resolved: false,
        extra: Default::default(),
    }
}

fn delta() -> Delta {
    Delta {
        format: FORMAT_VERSION,
        min_reader: 1,
        seq: 2,
        device: "3f2a9c1b7d4e".into(),
        device_name: Some("laptop".into()),
        time: 1_763_776_000_200,
        supersedes: Some("deltas/g0/3f2a9c1b7d4e-1763776000100-0badf00d.json".into()),
        // The first commit after the snapshot (head 1): nothing before it.
        prev: None,
        records: vec![record("t1", 2, false), record("t2", 2, true)],
        conflicts: vec![receipt()],
    }
}

fn delta_ref(seq: u64, path: &str, bytes: &[u8], entities: u64) -> DeltaRef {
    DeltaRef {
        path: path.into(),
        seq,
        device: "3f2a9c1b7d4e".into(),
        time: 1_763_776_000_000 + 100 * seq,
        entities,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    }
}

const DELTA_2: &str = "deltas/g0/3f2a9c1b7d4e-1763776000200-1c2d3e4f.json";
const DELTA_3: &str = "deltas/g0/98cc01de22f0-1763776000300-5a6b7c8d.json";

/// The commit after [`delta`]: it names it as the one before it.
fn delta_3() -> Delta {
    Delta {
        format: FORMAT_VERSION,
        min_reader: 1,
        seq: 3,
        device: "98cc01de22f0".into(),
        device_name: Some("phone".into()),
        time: 1_763_776_000_300,
        supersedes: None,
        prev: Some(delta_ref(2, DELTA_2, &delta().to_bytes(), 2)),
        records: vec![record("t3", 3, false)],
        conflicts: vec![],
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        format: FORMAT_VERSION,
        min_reader: 1,
        generation: 0,
        head: 1,
        time: 1_763_776_000_000,
        records: vec![record("t1", 1, false)],
        conflicts: vec![],
        folded: vec!["deltas/g0/3f2a9c1b7d4e-1763776000001-00c0ffee.json".into()],
        devices: [(
            "3f2a9c1b7d4e".to_string(),
            DeviceInfo {
                name: "laptop".into(),
                last_commit: 1_763_776_000_001,
            },
        )]
        .into(),
    }
}

#[test]
fn golden_delta() {
    let bytes = delta().to_bytes();
    check("delta.json", &bytes);
    assert_eq!(Delta::from_bytes(&bytes).unwrap(), delta());
}

#[test]
fn golden_snapshot() {
    let bytes = snapshot().to_bytes();
    check("data.json", &bytes);
    assert_eq!(Snapshot::from_bytes(&bytes).unwrap(), snapshot());
}

#[test]
fn golden_delta_with_its_predecessor() {
    let bytes = delta_3().to_bytes();
    check("delta-3.json", &bytes);
    let read = Delta::from_bytes(&bytes).unwrap();
    let prev = read.prev.clone().unwrap();
    assert!(prev.same_file(delta_3().prev.as_ref().unwrap()));
    assert!(!prev.has_details(), "a link: path, seq, size, sha256");
    assert_eq!(
        Delta {
            prev: delta_3().prev.map(|_| prev),
            ..delta_3()
        },
        read
    );
}

/// meta.json at head 3 with both deltas since the snapshot, as a device holds it.
fn meta() -> Meta {
    let data = snapshot().to_bytes();
    let mut meta = Meta::new(3);
    meta.snapshot = Some(SnapshotRef {
        generation: 0,
        name: DATA_FILE.into(),
        size: data.len() as u64,
        sha256: sha256_hex(&data),
        head: 1,
    });
    meta.deltas = vec![delta_ref(2, DELTA_2, &delta().to_bytes(), 2), {
        let mut r = delta_ref(3, DELTA_3, &delta_3().to_bytes(), 1);
        r.device = "98cc01de22f0".into();
        r
    }];
    meta.last_sync_timestamp = 1_763_776_000_300;
    meta.devices.insert(
        "3f2a9c1b7d4e".into(),
        DeviceInfo {
            name: "laptop".into(),
            last_commit: 1_763_776_000_200,
        },
    );
    meta.devices.insert(
        "98cc01de22f0".into(),
        DeviceInfo {
            name: "phone".into(),
            last_commit: 1_763_776_000_300,
        },
    );
    meta
}

#[test]
fn golden_meta_lists_only_the_newest_delta() {
    let meta = meta();
    assert!(meta.is_complete());
    let bytes = meta.to_bytes();
    check("meta.json", &bytes);
    let read = Meta::from_bytes(&bytes).unwrap();
    assert_eq!(read.deltas.len(), 1, "only the newest is listed");
    assert!(read.deltas[0].same_file(&meta.deltas[1]));
    assert!(
        !read.deltas[0].has_details(),
        "a link: path, seq, size, sha256"
    );
    assert!(!read.is_complete(), "the chain completes it");
    assert!(read.entity_versions.is_empty());
    assert!(!String::from_utf8_lossy(&bytes).contains("entityVersions"));
    // Nor the devices: their names travel in the deltas and the snapshot, so meta.json does
    // not grow with the number of devices either.
    assert!(read.devices.is_empty());
    assert!(!String::from_utf8_lossy(&bytes).contains("devices"));
    // The size does not grow with the commits, and follows the head: two commits in one
    // second never write meta.json files of one size (servers that make ETags of the mtime in
    // seconds and the size would give them one ETag).
    let mut longer = meta.clone();
    let mut sizes = Vec::new();
    for seq in 4..100 {
        let mut r = meta.deltas[1].clone();
        r.seq = seq;
        longer.deltas.push(r);
        longer.head = seq;
        let len = longer.to_bytes().len();
        assert_eq!(len % 32, seq as usize % 32, "head {seq}");
        assert!(len < bytes.len() + 32 + 2, "head {seq}: {len} bytes");
        sizes.push(len);
    }
    assert!(sizes.windows(2).all(|w| w[0] != w[1]), "{sizes:?}");
    assert_eq!(Meta::from_bytes(&longer.to_bytes()).unwrap().head, 99);
    // The local copy lists them all and reads back complete.
    let local = Meta::from_bytes(&meta.to_local_bytes()).unwrap();
    assert_eq!(local, meta);
    assert!(local.is_complete());
}

#[test]
fn format_1_files_are_read_and_written_back_as_they_were() {
    let bytes = v1_file("meta.json");
    let meta = Meta::from_bytes(&bytes).unwrap();
    assert_eq!((meta.format, meta.min_reader, meta.min_writer), (1, 1, 1));
    assert!(!meta.chained());
    assert!(meta.is_complete(), "format 1 lists every delta");
    assert_eq!(meta.deltas.len(), 1);
    assert_eq!(meta.entity_versions["tasks"]["t2"], 2);
    assert_eq!(
        meta.to_bytes(),
        bytes,
        "a commit keeps a format-1 remote's form"
    );
    // Deltas and snapshots are never rewritten: they are read.
    let delta = Delta::from_bytes(&v1_file("delta.json")).unwrap();
    assert_eq!(delta.prev, None);
    assert_eq!(delta.records.len(), 2);
    assert!(!delta.records[0].is_deleted && delta.records[1].is_deleted);
    let snapshot = Snapshot::from_bytes(&v1_file("data.json")).unwrap();
    assert_eq!(snapshot.records.len(), 1);
    assert!(!snapshot.records[0].is_deleted);
    // A compaction upgrades it: from then on it lists only the newest delta, and format-1
    // readers refuse it (minReader 2) rather than miss the commits it no longer lists.
    let mut upgraded = meta.clone();
    upgraded.deltas.clear();
    upgraded.upgrade();
    assert_eq!(
        (upgraded.format, upgraded.min_reader, upgraded.min_writer),
        (2, 2, 2)
    );
    assert!(upgraded.entity_versions.is_empty());
}

#[test]
fn a_newer_minor_field_is_tolerated() {
    // Readers ignore fields they do not know, so a writer may add optional fields without
    // raising minReader.
    let mut v: serde_json::Value = serde_json::from_slice(&snapshot().to_bytes()).unwrap();
    v["somethingNew"] = json!(42);
    Snapshot::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn receipt_times_are_optional_and_round_trip() {
    let mut r = receipt();
    let older = serde_json::to_value(&r).unwrap();
    assert!(older.get("keptAt").is_none(), "{older}");
    assert!(older.get("lostAt").is_none(), "{older}");
    let read: ConflictReceipt = serde_json::from_value(older).unwrap();
    assert_eq!(read.kept_at, None);
    r.kept_at = Some(Hlc { ms: 5, counter: 1 });
    r.lost_at = Some(Hlc { ms: 3, counter: 0 });
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["keptAt"], json!([5, 1]));
    assert_eq!(v["lostAt"], json!([3, 0]));
    let back: ConflictReceipt = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

/// Format-2 writers before deltas named their writer listed the devices in meta.json
/// (`meta-listing-devices.json` is one): a reader takes them, and a writer now leaves them to
/// its local copy.
#[test]
fn a_format_2_meta_json_that_lists_devices_is_read() {
    let bytes = std::fs::read(golden_dir().join("meta-listing-devices.json")).unwrap();
    let read = Meta::from_bytes(&bytes).unwrap();
    assert_eq!(read.devices["3f2a9c1b7d4e"].name, "laptop");
    assert_eq!(read.devices["98cc01de22f0"].last_commit, 1_763_776_000_300);
    assert!(!String::from_utf8_lossy(&read.to_bytes()).contains("devices"));
    let local = Meta::from_bytes(&read.to_local_bytes()).unwrap();
    assert_eq!(local.devices, read.devices);
}

/// A snapshot written record by record (compaction) is byte for byte the golden one.
#[test]
fn a_snapshot_written_record_by_record_is_the_same_file() {
    let whole = snapshot();
    let mut w = SnapshotWriter::new(whole.generation, whole.head, whole.time);
    for r in &whole.records {
        w.push(r);
    }
    let bytes = w.finish(&whole.conflicts, &whole.folded, &whole.devices);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        String::from_utf8(whole.to_bytes()).unwrap()
    );
    // With no record, receipt, folded delta or device either.
    let empty = Snapshot::empty(5);
    let bytes = SnapshotWriter::new(0, 0, 5).finish(&[], &[], &Default::default());
    assert_eq!(bytes, empty.to_bytes());
    // And with unknown fields on a record and two records.
    let mut two = snapshot();
    let mut r = two.records[0].clone();
    r.id = "t2".into();
    r.extra.insert("zeta".into(), json!({"n": [1, 2.5]}));
    two.records.push(r);
    two.conflicts = vec![receipt()];
    let mut w = SnapshotWriter::new(two.generation, two.head, two.time);
    for r in &two.records {
        w.push(r);
    }
    assert_eq!(w.records(), 2);
    assert_eq!(
        w.finish(&two.conflicts, &two.folded, &two.devices),
        two.to_bytes()
    );
}
