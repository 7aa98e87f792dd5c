//! Fields a newer writer adds to an entity record or a conflict receipt (docs/format.md lets
//! it, without raising `minReader`) travel with that record or receipt: through the local
//! state, into the snapshot a compaction of this version writes, and to a device that starts
//! from that snapshot (issue 10: they were dropped on rewrite).

mod support;

use std::sync::Arc;

use deltasync_meta::{
    ConflictKind, ConflictReceipt, Delta, EntityRecord, Extra, FORMAT_VERSION, Hlc,
};
use deltasync_remote::{MemoryRemote, Remote};
use deltasync_store::{MetaRead, Store};
use serde_json::json;
use support::Device;

fn extra(text: &str) -> Extra {
    serde_json::from_str(text).unwrap()
}

/// Commits one record and one receipt with unknown fields, as a newer client would.
fn commit_from_a_newer_writer(remote: Arc<dyn Remote>) {
    let store = Store::new(remote);
    let MetaRead::Fresh { meta, etag, .. } = store.read_meta(None).unwrap() else {
        unreachable!("an unconditional read")
    };
    let seq = meta.head + 1;
    let at = Hlc {
        ms: 1_800_000_000_000,
        counter: 0,
    };
    let delta = Delta {
        format: FORMAT_VERSION,
        min_reader: 1,
        seq,
        device: "newer".into(),
        device_name: None,
        time: 1,
        supersedes: None,
        prev: meta.deltas.last().cloned(),
        records: vec![EntityRecord {
            collection: "tasks".into(),
            id: "n1".into(),
            version: seq,
            last_modified_at: at,
            last_modified_by: "newer".into(),
            is_deleted: false,
            data: json!({"title": "from a newer writer"}),
            extra: extra(r#"{"schema": 3, "sig": {"alg": "x", "n": 12345678901234567890.50}}"#),
        }],
        conflicts: vec![ConflictReceipt {
            id: "newer-1-0001".into(),
            collection: "tasks".into(),
            entity_id: "n1".into(),
            field: vec!["title".into()],
            kind: ConflictKind::Field,
            kept: json!("from a newer writer"),
            kept_by: "newer".into(),
            lost: json!("older"),
            lost_by: "other".into(),
            kept_at: None,
            lost_at: None,
            at,
            resolved: false,
            extra: extra(r#"{"note": "kept by the newer writer's rules"}"#),
        }],
    };
    let generation = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
    let dref = store.write_delta(&delta, generation).unwrap();
    let mut next = meta.clone();
    next.head = seq;
    next.deltas.push(dref);
    next.entity_versions
        .entry("tasks".into())
        .or_default()
        .insert("n1".into(), seq);
    store.commit_meta(&mut next, &etag).unwrap();
}

/// The record `n1` and the receipt as the current snapshot holds them.
fn in_snapshot(remote: Arc<dyn Remote>) -> (EntityRecord, Vec<ConflictReceipt>) {
    let store = Store::new(remote);
    let MetaRead::Fresh { meta, .. } = store.read_meta(None).unwrap() else {
        unreachable!("an unconditional read")
    };
    assert!(meta.deltas.is_empty(), "compacted: {:?}", meta.deltas);
    let (snap, _) = store
        .read_snapshot(meta.snapshot.as_ref().unwrap())
        .unwrap();
    let r = snap.records.into_iter().find(|r| r.id == "n1").unwrap();
    (r, snap.conflicts)
}

#[test]
fn a_newer_writers_record_and_receipt_fields_survive_compactions() {
    let remote = Arc::new(MemoryRemote::with_seed(21));
    let mut a = Device::new(remote.clone(), "a");
    a.write("t1", &json!({"title": "one"}));
    a.sync();
    commit_from_a_newer_writer(remote.clone());
    a.sync();
    assert_eq!(a.read("n1"), Some(json!({"title": "from a newer writer"})));

    // a folds the newer writer's delta into a snapshot of its own.
    assert!(a.engine.compact().unwrap().is_some());
    let (r, receipts) = in_snapshot(remote.clone());
    assert_eq!(
        serde_json::to_string(&r.extra).unwrap(),
        r#"{"schema":3,"sig":{"alg":"x","n":12345678901234567890.50}}"#,
        "the record's unknown fields, exactly"
    );
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].extra,
        extra(r#"{"note": "kept by the newer writer's rules"}"#)
    );

    // A device that starts from that snapshot keeps them too, through its own compaction.
    let mut b = Device::new(remote.clone(), "b");
    b.sync();
    b.write("t1", &json!({"title": "one, edited"}));
    b.sync();
    assert!(b.engine.compact().unwrap().is_some());
    let (r2, receipts2) = in_snapshot(remote.clone());
    assert_eq!(r2.extra, r.extra);
    assert_eq!(receipts2[0].extra, receipts[0].extra);

    // A new version of the record, written by this version, is its own: no fields of the old.
    a.sync();
    a.write("n1", &json!({"title": "edited here"}));
    a.sync();
    assert!(a.engine.compact().unwrap().is_some());
    let (r3, _) = in_snapshot(remote);
    assert_eq!(r3.data, json!({"title": "edited here"}));
    assert!(r3.extra.is_empty(), "{:?}", r3.extra);
}
