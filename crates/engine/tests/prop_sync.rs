//! Property test: three devices on one in-memory remote with faults switched on, random
//! creates, field edits, deletes and syncs, and races between two syncs. After every device
//! syncs to quiescence: identical data everywhere, and every edit either present, knowingly
//! overwritten or deleted by a device that had seen it, or kept in a conflict receipt.
//!
//! A race: the racer reads meta.json, the victim commits, maybe a third device reads that,
//! then the racer plans and commits with the etag it read. On an atomic server that is a 412
//! and a retry; on one whose If-Match is not atomic (`stale_if_match_succeeds`) the racer's
//! meta overwrites the victim's, whose commit is lost and must be made again, while the reader
//! holds it. Without races every request sees the latest meta, so no commit is ever lost. A
//! race window is one write: a racer whose read is older than that reads meta afresh.
//!
//! `devices_converge_and_lose_nothing` races under the non-atomic If-Match only, the victim
//! syncing again right after; `devices_converge_and_lose_nothing_with_free_races` races
//! under every fault and also lets a read and its sync be any
//! steps apart.
//!
//! Cases: `PROPTEST_CASES` (default 2000 here). `PROP_TRACE=1` prints, after every step, the
//! remote's head and deltas and each device's data (for reading a failing case).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deltasync_remote::{Capabilities, Etag, Faults, MemoryRemote, PutMode, Remote, RemoteError};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{Device, RacingView};

const DEVICES: usize = 3;
const ENTITIES: usize = 4;

#[derive(Debug, Clone)]
enum Step {
    /// Device writes its own field of an entity (creating the entity if absent).
    EditOwn { dev: usize, entity: usize },
    /// Device writes the shared field: true conflicts.
    EditShared { dev: usize, entity: usize },
    /// Device deletes an entity.
    Delete { dev: usize, entity: usize },
    /// Device syncs.
    Sync { dev: usize },
    /// `racer` reads meta; `victim` syncs; if `reader`, the third device syncs; `racer`'s
    /// sync goes on from what it read; `victim` syncs again.
    Race {
        racer: usize,
        victim: usize,
        reader: bool,
    },
    /// Device reads meta.json now; its next sync starts from what it read (the steps in
    /// between happen while it is "in" that sync). Only in `free_step()`.
    Freeze { dev: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let dev = 0..DEVICES;
    let ent = 0..ENTITIES;
    prop_oneof![
        3 => (dev.clone(), ent.clone()).prop_map(|(dev, entity)| Step::EditOwn { dev, entity }),
        2 => (dev.clone(), ent.clone()).prop_map(|(dev, entity)| Step::EditShared { dev, entity }),
        1 => (dev.clone(), ent).prop_map(|(dev, entity)| Step::Delete { dev, entity }),
        4 => dev.clone().prop_map(|dev| Step::Sync { dev }),
        1 => (dev.clone(), 1..DEVICES, any::<bool>()).prop_map(|(racer, offset, reader)| {
            let victim = (racer + offset) % DEVICES;
            Step::Race { racer, victim, reader }
        }),
    ]
}

/// [`step`], with races whose parts are free: the racer's read at one step, its sync at a
/// later one, anything in between (the victim editing again before it syncs, say).
fn free_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => step(),
        3 => (0..DEVICES).prop_map(|dev| Step::Freeze { dev }),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (0u8..4, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(stale, transient, lost, reuse)| Faults {
            stale_if_match_succeeds: [0.0, 0.0, 0.3, 1.0][stale as usize],
            ignore_preconditions: false,
            transient_error_rate: if transient { 0.1 } else { 0.0 },
            lost_response_rate: if lost { 0.1 } else { 0.0 },
            truncate_body_rate: if transient { 0.05 } else { 0.0 },
            // Nextcloud: a same-second rewrite keeps its ETag.
            reuse_etag_within_second: reuse,
        },
    )
}

/// What the server is, not what goes wrong now and then: a server that reuses ETags within a
/// second keeps doing so when the injected failures stop.
fn nature(faults: &Faults) -> Faults {
    Faults {
        reuse_etag_within_second: faults.reuse_etag_within_second,
        ..Faults::default()
    }
}

/// The shared remote, counting the writes of meta.json: a race window is one write. Its
/// capabilities are those of the faults the run starts with, for the whole run: a server is
/// what the probe found at `init` (a non-atomic one stays non-atomic while no race happens,
/// as the faults are switched off and on around steps).
struct MetaLog {
    inner: Arc<MemoryRemote>,
    writes: AtomicUsize,
    last: Mutex<Vec<u8>>,
    capabilities: Mutex<Option<Capabilities>>,
}

impl MetaLog {
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Counts a write of meta.json, applied or not, whatever the answer said (lost responses).
    fn logged(
        &self,
        path: &str,
        r: Result<Option<Etag>, RemoteError>,
    ) -> Result<Option<Etag>, RemoteError> {
        if path == "meta.json" {
            let now = self.inner.files().remove(path).unwrap_or_default();
            let mut last = self.last.lock().unwrap();
            if *last != now {
                *last = now;
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
        }
        r
    }
}

impl deltasync_remote::Forward for MetaLog {
    fn inner(&self) -> &dyn Remote {
        &*self.inner
    }
    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        self.logged(path, self.forward_write(path, body, mode, mtime))
    }
    fn capabilities(&self) -> Capabilities {
        let fixed = self.capabilities.lock().unwrap().clone();
        fixed.unwrap_or_else(|| self.inner.capabilities())
    }
}

/// The devices' views of the remote, and when each froze its read (in meta writes).
struct Views {
    remote: Arc<MemoryRemote>,
    log: Arc<MetaLog>,
    views: Vec<Arc<RacingView>>,
    frozen_at: Vec<Option<usize>>,
}

impl Views {
    fn new(remote: Arc<MemoryRemote>) -> Views {
        let log = Arc::new(MetaLog {
            inner: remote.clone(),
            writes: AtomicUsize::new(0),
            last: Mutex::new(Vec::new()),
            capabilities: Mutex::new(None),
        });
        Views {
            views: (0..DEVICES)
                .map(|_| Arc::new(RacingView::new(log.clone())))
                .collect(),
            frozen_at: vec![None; DEVICES],
            remote,
            log,
        }
    }

    /// Makes `dev`'s next sync start from meta as it is now (read without faults: the read is
    /// not what is under test).
    fn freeze(&mut self, dev: usize) {
        let f = self.remote.faults();
        self.remote.set_faults(nature(&f));
        self.views[dev].freeze();
        self.remote.set_faults(f);
        self.frozen_at[dev] = Some(self.log.writes());
    }

    /// Syncs `dev`; a read older than the race window (meta written more than once since) is
    /// dropped first: no server lets an If-Match that stale through.
    fn sync(&mut self, dev: usize, d: &mut Device) {
        if let Some(at) = self.frozen_at[dev].take()
            && self.log.writes() > at + 1
        {
            self.views[dev].thaw();
        }
        // Faults may fail a sync; that is fine as long as nothing is lost.
        let _ = sync(d);
    }

    fn thaw_all(&mut self) {
        self.views.iter().for_each(|v| v.thaw());
        self.frozen_at = vec![None; DEVICES];
    }
}

/// A sync that may delete every entity (the steps delete freely; the mass-delete guard is a
/// policy for people, tested in sync.rs).
fn sync(d: &mut Device) -> Result<deltasync_engine::SyncReport, deltasync_engine::EngineError> {
    d.engine.sync(&deltasync_engine::SyncOptions {
        allow_mass_delete: true,
        ..Default::default()
    })
}

/// Every string leaf of a JSON value.
fn tokens(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| tokens(x, out)),
        Value::Object(o) => o.values().for_each(|x| tokens(x, out)),
        _ => {}
    }
}

/// Runs the steps; with `faulty_races`, races happen under every fault, else under the
/// non-atomic If-Match only.
fn run(
    steps: Vec<Step>,
    faults: Faults,
    seed: u64,
    faulty_races: bool,
) -> Result<(), TestCaseError> {
    let remote = Arc::new(MemoryRemote::with_seed(seed));
    let mut views = Views::new(remote.clone());
    let mut devs: Vec<Device> = (0..DEVICES)
        .map(|i| Device::new(views.views[i].clone(), &format!("d{i}")))
        .collect();
    remote.set_faults(faults.clone());
    *views.log.capabilities.lock().unwrap() = Some(remote.capabilities());
    let mut counter = 0u64;
    // Every token written, and the tokens a device knowingly removed (overwrote or deleted
    // having seen them).
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut superseded: BTreeSet<String> = BTreeSet::new();
    for s in steps {
        let trace_step = format!("{s:?}");
        let trace = std::env::var("PROP_TRACE").is_ok();
        match s {
            Step::EditOwn { dev, entity } | Step::EditShared { dev, entity } => {
                counter += 1;
                let id = format!("e{entity}");
                let token = format!("v{counter}-d{dev}");
                let field = match s {
                    Step::EditOwn { .. } => format!("f{dev}"),
                    _ => "shared".to_string(),
                };
                let d = &devs[dev];
                let mut v = d.read(&id).unwrap_or_else(|| json!({}));
                if let Some(Value::String(old)) = v.get(&field) {
                    superseded.insert(old.clone());
                }
                v[&field] = json!(token.clone());
                d.write(&id, &v);
                written.insert(token);
            }
            Step::Delete { dev, entity } => {
                let id = format!("e{entity}");
                let d = &devs[dev];
                if let Some(v) = d.read(&id) {
                    tokens(&v, &mut superseded);
                    d.delete(&id);
                }
            }
            Step::Sync { dev } => views.sync(dev, &mut devs[dev]),
            Step::Race {
                racer,
                victim,
                reader,
            } => {
                if !faulty_races {
                    // Only the non-atomic If-Match, no lost answers or errors, while racing.
                    remote.set_faults(Faults {
                        stale_if_match_succeeds: faults.stale_if_match_succeeds,
                        ..nature(&faults)
                    });
                }
                views.freeze(racer);
                views.sync(victim, &mut devs[victim]);
                if reader {
                    let third = DEVICES * (DEVICES - 1) / 2 - racer - victim;
                    views.sync(third, &mut devs[third]);
                }
                views.sync(racer, &mut devs[racer]);
                views.sync(victim, &mut devs[victim]);
                remote.set_faults(faults.clone());
            }
            Step::Freeze { dev } => views.freeze(dev),
        }
        if trace {
            let m = remote.files().remove("meta.json").unwrap_or_default();
            let m: Value = serde_json::from_slice(&m).unwrap_or(Value::Null);
            let ds: Vec<String> = m["deltas"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|d| format!("{}:{}", d["seq"], d["path"]))
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "== {trace_step}\n   meta head {} {:?}",
                m["globalUpdateCount"], ds
            );
            for (i, d) in devs.iter().enumerate() {
                eprintln!("   d{i}: {:?}", d.all());
            }
        }
    }
    remote.set_faults(nature(&faults));
    // A race whose sync step never came did not happen.
    views.thaw_all();
    let mut quiet = false;
    for _ in 0..8 {
        let mut committed = false;
        for d in devs.iter_mut() {
            if faults.reuse_etag_within_second {
                // Where ETags can go stale, convergence is promised once the bound has passed
                // (a device trusts a "not modified" for that long): let it pass.
                let earlier = deltasync_store::now_ms()
                    - deltasync_engine::STALE_ETAG_BOUND.as_millis() as u64
                    - 1;
                d.engine
                    .state()
                    .set("meta_read_ms", &earlier.to_string())
                    .unwrap();
            }
            let r =
                sync(d).map_err(|e| TestCaseError::fail(format!("quiescence sync failed: {e}")))?;
            committed |= r.committed.is_some();
        }
        if !committed {
            quiet = true;
            break;
        }
    }
    prop_assert!(quiet, "devices did not reach quiescence");
    let data = devs[0].all();
    for (i, d) in devs.iter().enumerate().skip(1) {
        prop_assert_eq!(&d.all(), &data, "device {} differs from device 0", i);
    }
    let mut present = BTreeSet::new();
    for v in data.values() {
        tokens(v, &mut present);
    }
    let mut in_receipts = BTreeSet::new();
    for d in &devs {
        for c in d.engine.conflicts().unwrap() {
            tokens(&c.lost, &mut in_receipts);
            tokens(&c.kept, &mut in_receipts);
        }
    }
    let receipts: BTreeMap<usize, usize> = devs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.engine.conflicts().unwrap().len()))
        .collect();
    prop_assert!(
        receipts.values().all(|n| *n == receipts[&0]),
        "receipts differ between devices: {:?}",
        receipts
    );
    for t in &written {
        prop_assert!(
            present.contains(t) || superseded.contains(t) || in_receipts.contains(t),
            "edit {} was lost: not in the data {:?}, not knowingly removed, not in a receipt",
            t,
            data
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn devices_converge_and_lose_nothing(
        steps in proptest::collection::vec(step(), 1..40),
        faults in faults(),
        seed in any::<u64>(),
    ) {
        run(steps, faults, seed, false)?;
    }

    /// Races under every fault, and free ones. Finds the bugs of
    /// `crash.rs::bug_reader_keeps_a_lost_commit_its_author_undid_meanwhile` and
    /// `crash.rs::bug_commit_finished_after_a_crash_is_not_protected_from_a_racing_writer`
    /// (a lost answer finishes a commit through the journal) within a few thousand cases.
    #[test]

    fn devices_converge_and_lose_nothing_with_free_races(
        steps in proptest::collection::vec(free_step(), 1..40),
        faults in faults(),
        seed in any::<u64>(),
    ) {
        run(steps, faults, seed, true)?;
    }
}

/// A case the free races found: a racer that read meta.json before the victim's commit
/// overwrote it; the victim must not take the remote for one that went back (it did, with
/// `RemoteBehind`, when history below the head was checked on a non-atomic remote).
#[test]
fn regression_a_racing_overwrite_is_not_a_rolled_back_remote() {
    use Step::*;
    let steps = vec![
        EditOwn { dev: 0, entity: 0 },
        EditOwn { dev: 2, entity: 0 },
        Freeze { dev: 2 },
        Sync { dev: 0 },
        Freeze { dev: 1 },
        EditOwn { dev: 1, entity: 0 },
        Sync { dev: 2 },
        EditOwn { dev: 2, entity: 0 },
        Race {
            racer: 2,
            victim: 1,
            reader: false,
        },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    };
    run(steps, faults, 0, true).unwrap();
}

/// Another the free races found: a reader applied a commit that a racing writer then
/// overwrote, and the quiescence syncs ran with the faults off. The remote must still count as
/// the non-atomic server it is (a probed class does not change when no race is on), or the
/// history check takes the rewritten history for a remote put back from an older copy.
#[test]
fn regression_a_non_atomic_remote_stays_non_atomic_between_races() {
    use Step::*;
    let steps = vec![
        Freeze { dev: 1 },
        EditShared { dev: 2, entity: 1 },
        EditOwn { dev: 1, entity: 0 },
        EditOwn { dev: 0, entity: 1 },
        Sync { dev: 2 },
        Freeze { dev: 0 },
        Sync { dev: 1 },
        EditShared { dev: 2, entity: 0 },
        Race {
            racer: 2,
            victim: 1,
            reader: true,
        },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    };
    run(steps, faults, 0, true).unwrap();
}

/// A third the free races found (CI): a device whose commit was lost to a racing writer made
/// it again without a base; the remote's history held the lost commit (a device that had read
/// it committed on top of it), so the planner took the device's own edit for an old copy and
/// let the racing writer's version replace it: edit v1-d0 was lost.
#[test]
fn regression_a_lost_commit_made_again_is_not_an_old_copy() {
    use Step::*;
    let steps = vec![
        EditOwn { dev: 0, entity: 0 },
        EditOwn { dev: 2, entity: 0 },
        Freeze { dev: 2 },
        Race {
            racer: 0,
            victim: 1,
            reader: false,
        },
        EditOwn { dev: 0, entity: 1 },
        Freeze { dev: 1 },
        Sync { dev: 2 },
        EditOwn { dev: 1, entity: 0 },
        Race {
            racer: 0,
            victim: 1,
            reader: false,
        },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    };
    run(steps, faults, 0, true).unwrap();
}

/// A fourth the free races found (a helper's full run), with ETags reused within a second: a
/// device took its own later commit on top of an earlier one for a confirmation and dropped
/// the earlier from its journal; a racing writer then overwrote both, and only the later was
/// made again: the other devices never got the earlier one's entities.
#[test]
fn regression_free_races_with_reused_etags() {
    use Step::*;
    let steps = vec![
        EditShared { dev: 0, entity: 1 },
        Freeze { dev: 1 },
        EditOwn { dev: 0, entity: 2 },
        Sync { dev: 0 },
        EditOwn { dev: 1, entity: 0 },
        Sync { dev: 0 },
        Sync { dev: 1 },
        EditShared { dev: 0, entity: 0 },
        Freeze { dev: 1 },
        EditOwn { dev: 1, entity: 0 },
        Sync { dev: 0 },
        Race {
            racer: 2,
            victim: 0,
            reader: true,
        },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        reuse_etag_within_second: true,
        ..Faults::default()
    };
    run(steps, faults, 0, true).unwrap();
}

/// A fifth the free races found (a helper's full run), ETags reused within a second: two
/// commits of one device, both touching e3, were overwritten by a racer; undone oldest first,
/// e3's base became the first lost commit's content, and the merge with the other devices'
/// version (which never had that field) took the field for deleted: edit v1-d2 was lost.
#[test]
fn regression_free_races_with_reused_etags_2() {
    use Step::*;
    let steps = vec![
        Sync { dev: 0 },
        Freeze { dev: 0 },
        EditOwn { dev: 2, entity: 3 },
        Sync { dev: 2 },
        Sync { dev: 2 },
        EditShared { dev: 0, entity: 0 },
        EditOwn { dev: 1, entity: 3 },
        Sync { dev: 0 },
        EditShared { dev: 2, entity: 3 },
        Race {
            racer: 1,
            victim: 0,
            reader: true,
        },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        reuse_etag_within_second: true,
        ..Faults::default()
    };
    run(steps, faults, 0, true).unwrap();
}

/// Free races with every fault at once (a helper's run, shrunk): device 1's commit was
/// confirmed (device 0 committed on top of it), then a racer with an older meta.json
/// overwrote both; device 1 took its commit for confirmed and device 0 made only its own
/// again, so e0 stayed on devices 0 and 1 and never reached device 2 or the remote. It failed
/// in about half the runs (when writes landed within one second): now every device that
/// applied a delta meta.json no longer lists pushes what it took from it again
/// (`Engine::force_vanished`).
#[test]
fn regression_free_races_with_every_fault() {
    use Step::*;
    let steps = vec![
        Sync { dev: 2 },
        EditShared { dev: 1, entity: 0 },
        Freeze { dev: 1 },
        EditShared { dev: 0, entity: 3 },
        EditOwn { dev: 0, entity: 1 },
        Sync { dev: 2 },
        Freeze { dev: 0 },
        EditOwn { dev: 1, entity: 0 },
        EditOwn { dev: 1, entity: 3 },
        Sync { dev: 0 },
        Freeze { dev: 2 },
        EditShared { dev: 0, entity: 0 },
        Delete { dev: 1, entity: 2 },
        EditShared { dev: 0, entity: 0 },
        EditShared { dev: 1, entity: 0 },
        Sync { dev: 2 },
        Delete { dev: 2, entity: 2 },
        Freeze { dev: 2 },
        EditOwn { dev: 2, entity: 1 },
        EditOwn { dev: 2, entity: 3 },
        Sync { dev: 1 },
        Race {
            racer: 2,
            victim: 0,
            reader: true,
        },
        Race {
            racer: 2,
            victim: 0,
            reader: false,
        },
        Sync { dev: 2 },
        EditShared { dev: 1, entity: 3 },
        Delete { dev: 1, entity: 3 },
        Sync { dev: 1 },
        Sync { dev: 0 },
        Freeze { dev: 0 },
        Race {
            racer: 0,
            victim: 2,
            reader: false,
        },
        Sync { dev: 1 },
        Freeze { dev: 2 },
    ];
    let faults = Faults {
        stale_if_match_succeeds: 1.0,
        ignore_preconditions: false,
        transient_error_rate: 0.1,
        lost_response_rate: 0.1,
        truncate_body_rate: 0.05,
        reuse_etag_within_second: true,
    };
    run(steps, faults, 2236645572177984283, true).unwrap();
}
