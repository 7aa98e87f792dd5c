//! Golden files freeze remote format v1: any change to what is written shows up as a diff of
//! `testdata/format-v1/`, to be reviewed with `docs/format.md`. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p deltasync-meta --test golden`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use deltasync_meta::*;
use serde_json::json;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/format-v1")
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
        time: 1_763_776_000_200,
        supersedes: Some("deltas/g0/3f2a9c1b7d4e-1763776000100-0badf00d.json".into()),
        records: vec![record("t1", 2, false), record("t2", 2, true)],
        conflicts: vec![receipt()],
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
fn golden_meta() {
    let data = snapshot().to_bytes();
    let d = delta().to_bytes();
    let mut meta = Meta::new(2);
    meta.snapshot = Some(SnapshotRef {
        generation: 0,
        name: DATA_FILE.into(),
        size: data.len() as u64,
        sha256: sha256_hex(&data),
        head: 1,
    });
    meta.deltas.push(DeltaRef {
        path: "deltas/g0/3f2a9c1b7d4e-1763776000200-1c2d3e4f.json".into(),
        seq: 2,
        device: "3f2a9c1b7d4e".into(),
        time: 1_763_776_000_200,
        entities: 2,
        size: d.len() as u64,
        sha256: sha256_hex(&d),
    });
    meta.entity_versions = BTreeMap::from([(
        "tasks".to_string(),
        BTreeMap::from([("t1".to_string(), 2), ("t2".to_string(), 2)]),
    )]);
    meta.last_sync_timestamp = 1_763_776_000_200;
    meta.devices.insert(
        "3f2a9c1b7d4e".into(),
        DeviceInfo {
            name: "laptop".into(),
            last_commit: 1_763_776_000_200,
        },
    );
    let bytes = meta.to_bytes();
    check("meta.json", &bytes);
    assert_eq!(Meta::from_bytes(&bytes).unwrap(), meta);
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
