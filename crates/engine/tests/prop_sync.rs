//! Property test: three devices on one in-memory remote with faults switched on, random
//! creates, field edits, deletes and syncs. After every device syncs to quiescence:
//! identical data everywhere, and every edit either present, knowingly overwritten or deleted
//! by a device that had seen it, or kept in a conflict receipt.
//!
//! Cases: `PROPTEST_CASES` (default 2000 here).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deltasync_remote::{Faults, MemoryRemote};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::Device;

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
}

fn step() -> impl Strategy<Value = Step> {
    let dev = 0..DEVICES;
    let ent = 0..ENTITIES;
    prop_oneof![
        3 => (dev.clone(), ent.clone()).prop_map(|(dev, entity)| Step::EditOwn { dev, entity }),
        2 => (dev.clone(), ent.clone()).prop_map(|(dev, entity)| Step::EditShared { dev, entity }),
        1 => (dev.clone(), ent).prop_map(|(dev, entity)| Step::Delete { dev, entity }),
        4 => dev.prop_map(|dev| Step::Sync { dev }),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(stale, transient, lost)| Faults {
        stale_if_match_succeeds: [0.0, 0.0, 0.3, 1.0][stale as usize],
        ignore_preconditions: false,
        transient_error_rate: if transient { 0.1 } else { 0.0 },
        lost_response_rate: if lost { 0.1 } else { 0.0 },
        truncate_body_rate: if transient { 0.05 } else { 0.0 },
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

fn run(steps: Vec<Step>, faults: Faults, seed: u64) -> Result<(), TestCaseError> {
    let remote = Arc::new(MemoryRemote::with_seed(seed));
    let mut devs: Vec<Device> = (0..DEVICES)
        .map(|i| Device::new(remote.clone(), &format!("d{i}")))
        .collect();
    remote.set_faults(faults);
    let mut counter = 0u64;
    // Every token written, and the tokens a device knowingly removed (overwrote or deleted
    // having seen them).
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut superseded: BTreeSet<String> = BTreeSet::new();
    for s in steps {
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
            Step::Sync { dev } => {
                // Faults may fail a sync; that is fine as long as nothing is lost.
                let _ = devs[dev].try_sync();
            }
        }
    }
    remote.set_faults(Faults::default());
    let mut quiet = false;
    for _ in 0..8 {
        let mut committed = false;
        for d in devs.iter_mut() {
            let r = d
                .try_sync()
                .map_err(|e| TestCaseError::fail(format!("quiescence sync failed: {e}")))?;
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
        run(steps, faults, seed)?;
    }
}
