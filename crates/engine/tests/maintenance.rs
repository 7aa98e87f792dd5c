//! compact, verify, records and history on the engine, over the in-memory remote.

mod support;

use std::sync::Arc;

use deltasync_engine::maintenance::{CompactOptions, VerifyOptions};
use deltasync_engine::progress::NoProgress;
use deltasync_remote::{Counting, MemoryRemote, Remote};
use serde_json::json;
use support::Device;

/// Compaction that removes folded folders at once (nobody is writing concurrently here).
fn settled() -> CompactOptions {
    CompactOptions {
        settle_ms: Some(0),
        ..Default::default()
    }
}

fn pair() -> (Arc<MemoryRemote>, Device, Device) {
    let remote = Arc::new(MemoryRemote::new());
    let a = Device::new(remote.clone(), "a");
    let b = Device::new(remote.clone(), "b");
    (remote, a, b)
}

/// `n` commits of one entity each, from `a`.
fn commits(a: &mut Device, n: usize) {
    for i in 0..n {
        a.write(
            &format!("t{i}"),
            &json!({"title": format!("task {i}"), "n": i}),
        );
        a.sync();
    }
}

#[test]
fn compaction_requests_do_not_grow_with_the_number_of_deltas() {
    let mut counts = Vec::new();
    for n in [10, 60] {
        let mem = Arc::new(MemoryRemote::new());
        let counting = Arc::new(Counting::new(mem.clone() as Arc<dyn Remote>));
        let mut a = Device::new(counting.clone(), "a");
        commits(&mut a, n);
        counting.reset();
        let r = a.engine.compact_with(&settled(), &NoProgress).unwrap();
        assert_eq!(r.folded, n as u64);
        assert_eq!(r.downloaded, 0, "every delta came from the local cache");
        let stats = counting.stats();
        println!("compacting {n} deltas: {stats:?}");
        counts.push(stats.requests());
        let files = mem.files();
        assert!(files.keys().any(|k| k.starts_with("archive/g0-1-")));
        assert!(files.keys().all(|k| !k.starts_with("deltas/g0/")));
    }
    assert_eq!(counts[0], counts[1], "requests: {counts:?}");
}

#[test]
fn compacted_remote_reads_the_same_everywhere_and_keeps_history() {
    let (remote, mut a, mut b) = pair();
    commits(&mut a, 5);
    a.write("t0", &json!({"title": "renamed", "n": 0}));
    a.sync();
    b.sync();
    // b's applied deltas get folded: it reads the new snapshot.
    let r = a
        .engine
        .compact_with(&CompactOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(r.generation, Some(1));
    assert_eq!(r.folded, 6);
    b.write("t1", &json!({"title": "from b", "n": 1}));
    b.sync();
    // b's cache of the folded generation went when it cached its first delta of the next.
    let cache = b.dir.path().join(".deltasync/cache/deltas");
    assert!(!cache.join("g0").exists() && cache.join("g1").exists());
    a.sync();
    assert_eq!(a.read("t1").unwrap()["title"], "from b");
    let mut c = Device::new(remote.clone(), "c");
    c.sync();
    assert_eq!(c.all(), a.all());
    let v = c
        .engine
        .verify(
            &VerifyOptions {
                deep: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(v.ok, "{v:?}");
    // History: t0 was created, then renamed; both versions come from the archive.
    let h = c.engine.history("tasks", "t0", &NoProgress).unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[1].changed, vec!["title".to_string()]);
    let log = c.engine.log(&NoProgress).unwrap();
    assert_eq!(log.len(), 7);
    assert!(log[0].location.starts_with("archive/"));
    // A second compaction archives the new delta; history spans both archives.
    b.engine
        .compact_with(&CompactOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(
        c.engine.history("tasks", "t1", &NoProgress).unwrap().len(),
        2
    );
}

#[test]
fn dry_run_writes_nothing_and_tombstones_expire() {
    let (remote, mut a, _b) = pair();
    commits(&mut a, 3);
    a.delete("t2");
    a.sync();
    let before = remote.files();
    let r = a
        .engine
        .compact_with(
            &CompactOptions {
                dry_run: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(r.folded, 4);
    assert_eq!(r.tombstones_dropped, 0);
    assert_eq!(remote.files(), before);
    // Retention 0: the tombstone goes.
    let r = a
        .engine
        .compact_with(
            &CompactOptions {
                tombstone_retention_ms: Some(0),
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(r.tombstones_dropped, 1);
    assert_eq!(r.entities, 2);
}

#[test]
fn orphans_are_removed_after_the_grace_period_only() {
    let (remote, mut a, _b) = pair();
    commits(&mut a, 2);
    remote.raw_put("deltas/g0/zz-1-00000000.json", b"{}");
    let r = a.engine.compact_with(&settled(), &NoProgress).unwrap();
    // The folder of the folded generation went in one request; the stray file with it, since
    // g0 is no longer current and it is ancient (its name says 1970).
    assert!(
        remote.files().keys().all(|k| !k.starts_with("deltas/g0/")),
        "{r:?}"
    );
    // The folded generation's folder goes whole, young strays included (their commits
    // failed: meta changed under them).
    let stray = format!("deltas/g1/zz-{}-00000000.json", deltasync_store::now_ms());
    remote.raw_put(&stray, b"{}");
    a.write("later", &json!({"x": 1}));
    a.sync();
    let r = a.engine.compact_with(&settled(), &NoProgress).unwrap();
    assert_eq!(r.generation, Some(2));
    assert!(!remote.files().contains_key(&stray), "{r:?}");
    // An orphan in the current generation: kept while young, removed after the grace period.
    let young = format!("deltas/g2/zz-{}-00000000.json", deltasync_store::now_ms());
    remote.raw_put(&young, b"{}");
    let r = a.engine.compact_with(&settled(), &NoProgress).unwrap();
    assert_eq!((r.generation, r.orphans_kept), (None, 1));
    assert!(remote.files().contains_key(&young), "{r:?}");
    let r = a
        .engine
        .compact_with(
            &CompactOptions {
                orphan_grace_ms: Some(0),
                settle_ms: Some(0),
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(r.removed.contains(&young), "{r:?}");
    assert!(!remote.files().contains_key(&young), "{r:?}");
}

#[test]
fn verify_is_read_only_and_names_differences() {
    let (remote, mut a, _b) = pair();
    commits(&mut a, 4);
    let counting = Arc::new(Counting::new(remote.clone() as Arc<dyn Remote>));
    a.restart(counting.clone());
    let v = a
        .engine
        .verify(
            &VerifyOptions {
                deep: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.collections["tasks"].remote, 4);
    // A local edit not synced, a local-only entity, a float within tolerance.
    a.write("t1", &json!({"title": "changed", "n": 1}));
    a.write("new", &json!({"title": "x"}));
    let v = a
        .engine
        .verify(
            &VerifyOptions {
                deep: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(!v.ok);
    let c = &v.collections["tasks"];
    assert_eq!((c.remote, c.local), (4, 5));
    assert_eq!(c.missing_remotely, vec!["new".to_string()]);
    assert_eq!(v.differences.len(), 1);
    assert_eq!(
        (
            v.differences[0].id.as_str(),
            v.differences[0].field.as_str()
        ),
        ("t1", "title")
    );
    let stats = counting.stats();
    assert_eq!((stats.puts, stats.deletes), (0, 0), "{stats:?}");
    // Corruption of a delta is found.
    let path = remote
        .files()
        .keys()
        .find(|k| k.starts_with("deltas/g0/"))
        .unwrap()
        .clone();
    remote.raw_put(&path, b"{\"broken\":true}");
    let v = a
        .engine
        .verify(&VerifyOptions::default(), &NoProgress)
        .unwrap();
    assert!(!v.integrity.is_empty());
}

/// The quick check compares every entity (by version and content hash), not a sample: a
/// device that missed one edit among many is never told OK (issue: `verify` said OK while
/// `verify --deep` said MISMATCH).
#[test]
fn quick_verify_finds_one_stale_entity_among_many() {
    let (_remote, mut a, mut b) = pair();
    for i in 0..60 {
        a.write(
            &format!("t{i}"),
            &json!({"n": i, "nested": {"capital": "Bonn"}}),
        );
    }
    a.sync();
    b.sync();
    b.write("t37", &json!({"n": 37, "nested": {"capital": "Berlin"}}));
    b.sync();
    // `a` has not synced since: its t37 is old, and it has not applied b's commit.
    let quick = VerifyOptions {
        sample: 1,
        ..Default::default()
    };
    let v = a.engine.verify(&quick, &NoProgress).unwrap();
    assert!(!v.ok, "{v:?}");
    let c = &v.collections["tasks"];
    assert_eq!(c.checked, 60);
    assert_eq!(c.differing, 1);
    assert_eq!(c.behind, vec!["t37".to_string()]);
    assert!(v.local_head < v.remote_head, "{v:?}");
    assert_eq!(v.differences.len(), 1, "{:?}", v.differences);
    assert_eq!(v.differences[0].field, "nested.capital");
    // After a sync, all agree.
    a.sync();
    let v = a.engine.verify(&quick, &NoProgress).unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.collections["tasks"].checked, 60);
}

#[test]
fn update_merges_with_a_concurrent_edit_of_another_field() {
    let (_remote, mut a, mut b) = pair();
    a.write("t1", &json!({"title": "a", "done": false}));
    a.sync();
    b.sync();
    b.write("t1", &json!({"title": "b's title", "done": false}));
    b.sync();
    // a has not pulled b's edit: update merges, never overwrites it.
    a.engine
        .update_entity("tasks", "t1", &[(vec!["done".into()], json!(true))])
        .unwrap();
    assert_eq!(
        a.read("t1"),
        Some(json!({"title": "b's title", "done": true}))
    );
    b.sync();
    assert_eq!(
        b.read("t1"),
        Some(json!({"title": "b's title", "done": true}))
    );
    let err = a
        .engine
        .update_entity("tasks", "nope", &[(vec!["x".into()], json!(1))])
        .unwrap_err();
    assert_eq!(err.to_string(), "no tasks entity with id 'nope'");
    a.engine.delete_entity("tasks", "t1").unwrap();
    b.sync();
    assert_eq!(b.read("t1"), None);
}

#[test]
fn a_damaged_archive_is_refused_and_nothing_changes() {
    use deltasync_engine::backup::RestoreSource;
    let (remote, mut a, _b) = pair();
    commits(&mut a, 3);
    a.write("t0", &json!({"title": "changed"}));
    a.sync();
    a.engine.compact().unwrap();
    // The state as of commit 2, from the archive: t0 and t1 as first written.
    let plan = a
        .engine
        .restore_plan(RestoreSource::History(2), &NoProgress)
        .unwrap();
    let actions: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.id.as_str(), c.action))
        .collect();
    assert_eq!(actions, vec![("t0", "overwrite"), ("t2", "delete")]);
    let archive = remote
        .files()
        .keys()
        .find(|k| k.starts_with("archive/"))
        .unwrap()
        .clone();
    let mut bytes = remote.files()[&archive].clone();
    let n = bytes.len();
    bytes.truncate(n - 10);
    remote.raw_put(&archive, &bytes);
    let before = remote.files();
    assert!(
        a.engine
            .restore_plan(RestoreSource::History(2), &NoProgress)
            .is_err()
    );
    assert!(a.engine.log(&NoProgress).is_err());
    assert_eq!(remote.files(), before);
}

/// A remote initialised before format 2, as format 1 wrote it: its meta.json lists every delta
/// since the snapshot and a version for each entity they changed.
fn format_1_remote() -> Arc<MemoryRemote> {
    let remote = Arc::new(MemoryRemote::new());
    let store = deltasync_store::Store::new(remote.clone());
    store.init(None).unwrap();
    let (mut meta, _) = store.read_meta_fresh().unwrap();
    (meta.format, meta.min_reader, meta.min_writer) = (1, 1, 1);
    remote.raw_put("meta.json", &meta.to_bytes());
    remote
}

/// Issue 12, on a remote of format 1: a first import (`init`, then `sync`) of thousands of
/// entities left meta.json listing a version for each, and every later push uploaded it again
/// (1.2 MB at 100k). By default the sync that grows meta.json past 64 KiB compacts right after
/// (from this device, which just synced: nothing is downloaded), and a later one-change push
/// uploads the entity and a small meta.json. That compaction makes the remote format 2.
#[test]
fn a_first_import_is_compacted_by_itself_and_later_pushes_stay_small() {
    let remote = format_1_remote();
    let mut a = Device::new(remote.clone(), "a");
    for i in 0..6000 {
        a.write(&format!("t{i:05}"), &json!({"title": format!("task {i}")}));
    }
    a.sync();
    // A commit keeps the remote's format: format-1 devices can still read it.
    let raw = deltasync_meta::Meta::from_bytes(&remote.files()["meta.json"]).unwrap();
    assert_eq!((raw.format, raw.min_reader, raw.deltas.len()), (1, 1, 1));
    assert_eq!(raw.entity_versions["tasks"].len(), 6000);
    assert!(raw.deltas[0].has_details(), "format 1 lists deltas in full");
    assert!(a.engine.state().len_of("meta").unwrap().unwrap() > 64 * 1024);
    let before = remote.stats();
    let compacted = a.engine.maybe_compact().unwrap();
    assert!(
        compacted.as_ref().is_some_and(|r| r.generation == Some(1)),
        "{compacted:?}"
    );
    assert_eq!(
        remote.stats().bytes_down - before.bytes_down,
        0,
        "it downloaded"
    );
    let (meta, _) = deltasync_store::Store::new(remote.clone())
        .read_meta_fresh()
        .unwrap();
    assert_eq!((meta.format, meta.min_reader), (2, 2), "upgraded");
    a.write("t00007", &json!({"title": "task 7, edited"}));
    let before = remote.stats();
    a.sync();
    let up = remote.stats().bytes_up - before.bytes_up;
    assert!(up < 3 * 1024, "one change uploaded {up} bytes");
    // Below the size, nothing is compacted and nothing is asked of the remote.
    let before = remote.stats();
    assert!(a.engine.maybe_compact().unwrap().is_none());
    assert_eq!(remote.stats().requests(), before.requests());
    // A device joining reads the snapshot and has every entity.
    let mut b = Device::new(remote.clone(), "b");
    b.sync();
    assert_eq!(b.all().len(), 6000);
    assert_eq!(b.read("t00007"), Some(json!({"title": "task 7, edited"})));
}

/// Issue 12, format 2: meta.json lists only the newest delta, so after a first import of
/// thousands of entities, and after any number of commits, a one-change push uploads the
/// entity's delta and a meta.json of constant size — with no compaction at all. A device that
/// joins walks the chain of deltas back to the snapshot.
#[test]
fn without_compaction_every_push_uploads_the_change_and_a_bounded_meta() {
    let remote = Arc::new(MemoryRemote::new());
    let mut a = Device::new(remote.clone(), "a");
    for i in 0..6000 {
        a.write(&format!("t{i:05}"), &json!({"title": format!("task {i}")}));
    }
    a.sync();
    let mut ups = Vec::new();
    for n in 0..40 {
        a.write("t00007", &json!({"title": format!("task 7, edit {n:02}")}));
        let before = remote.stats();
        assert!(a.sync().committed.is_some());
        ups.push(remote.stats().bytes_up - before.bytes_up);
        assert_eq!(
            remote.stats().puts - before.puts,
            2,
            "a delta and meta.json"
        );
    }
    assert!(a.engine.maybe_compact().unwrap().is_none(), "not needed");
    let entity = serde_json::to_vec(&json!({"title": "task 7, edit 00"}))
        .unwrap()
        .len() as u64;
    let (first, last) = (ups[0], ups[ups.len() - 1]);
    assert!(last <= first + 8, "the push grew with the commits: {ups:?}");
    // The goal of issue 12: at most the entity and 1 KB (with more devices too: see
    // a_push_does_not_grow_with_the_number_of_devices_that_committed).
    assert!(
        last <= entity + 1024,
        "one change uploaded {last} bytes for a {entity}-byte entity"
    );
    let meta = remote.files()["meta.json"].len();
    assert!(meta < 1024, "meta.json is {meta} bytes");
    // A device joining walks back through the 41 commits and has every entity.
    let mut b = Device::new(remote.clone(), "b");
    b.sync();
    assert_eq!(b.all().len(), 6000);
    assert_eq!(b.read("t00007"), Some(json!({"title": "task 7, edit 39"})));
    // And keeps up: a's next push is one delta for b, read once.
    a.write("t00008", &json!({"title": "task 8, edited"}));
    a.sync();
    let before = remote.stats();
    b.sync();
    assert_eq!(
        remote.stats().gets - before.gets,
        2,
        "meta.json and the new delta"
    );
    assert_eq!(b.read("t00008"), Some(json!({"title": "task 8, edited"})));
}

/// Local state grows with the data, not with the commits ever made: the rows that remember
/// which deltas were applied go once a snapshot folds those deltas, on the device that
/// compacted and on one that takes the new snapshot.
#[test]
fn applied_delta_rows_are_pruned_once_a_snapshot_folds_them() {
    let (_remote, mut a, mut b) = pair();
    commits(&mut a, 5);
    b.sync();
    assert_eq!(b.engine.state().applied_deltas().unwrap(), 5);
    a.engine.compact_with(&settled(), &NoProgress).unwrap();
    assert_eq!(a.engine.state().applied_deltas().unwrap(), 0);
    b.sync();
    assert_eq!(b.engine.state().applied_deltas().unwrap(), 0);
    a.write("later", &json!({"title": "after the compaction"}));
    a.sync();
    b.sync();
    assert_eq!(b.read("later").unwrap()["title"], "after the compaction");
    assert_eq!(a.engine.state().applied_deltas().unwrap(), 1);
    assert_eq!(b.engine.state().applied_deltas().unwrap(), 1);
    // Nothing is applied twice: another sync commits nothing and remembers the same row.
    assert_eq!(b.sync().committed, None);
    assert_eq!(b.engine.state().applied_deltas().unwrap(), 1);
}

/// Issue 12: "≤ entity + 1 KB, always" — meta.json does not grow with the number of devices
/// that committed either. Device names travel in the deltas (and, once folded, in the
/// snapshot), so a device that joins later still knows every name.
#[test]
fn a_push_does_not_grow_with_the_number_of_devices_that_committed() {
    let remote = Arc::new(MemoryRemote::new());
    let mut devices: Vec<Device> = (0..12)
        .map(|i| {
            Device::new(
                remote.clone(),
                &format!("the rather long-named tablet number {i:02} in the kitchen"),
            )
        })
        .collect();
    for (i, d) in devices.iter_mut().enumerate() {
        d.sync();
        d.write(&format!("t{i}"), &json!({"title": format!("task {i}")}));
        assert!(d.sync().committed.is_some());
    }
    let a = &mut devices[0];
    a.sync();
    a.write("t0", &json!({"title": "task 0, edited"}));
    let before = remote.stats();
    assert!(a.sync().committed.is_some());
    let up = remote.stats().bytes_up - before.bytes_up;
    let entity = serde_json::to_vec(&json!({"title": "task 0, edited"}))
        .unwrap()
        .len() as u64;
    assert!(
        up <= entity + 1024,
        "with 12 devices one change uploaded {up} bytes for a {entity}-byte entity"
    );
    let meta = remote.files()["meta.json"].len();
    assert!(meta < 600, "meta.json is {meta} bytes with 12 devices");
    // Names are not lost: a device that catches up, and one that joins after a compaction,
    // know all of them.
    let ids: Vec<String> = devices
        .iter()
        .map(|d| d.engine.device_id().to_string())
        .collect();
    let check = |d: &Device| {
        let names = d.engine.device_names().unwrap();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                names.get(id).map(String::as_str),
                Some(format!("the rather long-named tablet number {i:02} in the kitchen").as_str()),
                "{names:?}"
            );
        }
    };
    devices[5].sync();
    check(&devices[5]);
    devices[0]
        .engine
        .compact_with(&settled(), &NoProgress)
        .unwrap();
    let mut late = Device::new(remote.clone(), "late");
    late.sync();
    check(&late);
    let log = late.engine.log(&NoProgress).unwrap();
    assert!(log.iter().all(|e| e.device_name.is_some()), "{log:?}");
}
