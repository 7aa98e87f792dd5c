//! Damage on the remote — a meta.json that is not JSON (an HTML page, garbage, cut short), a
//! delta whose bytes fail their checksum, a delta meta.json names that is gone — is not a
//! temporary failure: the error says what is damaged and what to do, and doing it works.

mod support;

use std::sync::Arc;

use deltasync_engine::EngineError;
use deltasync_engine::maintenance::CompactOptions;
use deltasync_remote::MemoryRemote;
use deltasync_store::{Remedy, StoreError};
use serde_json::json;
use support::Device;

fn first_delta(remote: &MemoryRemote) -> String {
    remote
        .files()
        .keys()
        .find(|k| k.starts_with("deltas/"))
        .unwrap()
        .clone()
}

#[test]
fn a_meta_json_that_is_not_json_is_damage_not_a_hiccup() {
    for garbage in [
        &b"<html><body>Login required</body></html>"[..],
        b"\x00\x01garbage",
        b"{\"format\":1,\"minReader\":1,\"minWri",
    ] {
        let remote = Arc::new(MemoryRemote::new());
        let mut a = Device::new(remote.clone(), "a");
        a.write("t1", &json!({"v": 1}));
        a.sync();
        remote.raw_put("meta.json", garbage);
        let e = a.try_sync().unwrap_err();
        assert!(!e.is_temporary(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("meta.json") && text.contains("damaged"),
            "{text}"
        );
        assert!(
            matches!(
                e,
                EngineError::Store(StoreError::Damaged {
                    remedy: Remedy::RestoreMeta,
                    ..
                })
            ),
            "{text}"
        );
        assert_eq!(a.read("t1"), Some(json!({"v": 1})));
    }
}

#[test]
fn a_damaged_or_missing_delta_says_to_compact_and_compacting_heals_it() {
    for missing in [false, true] {
        let remote = Arc::new(MemoryRemote::new());
        let mut a = Device::new(remote.clone(), "a");
        a.write("t1", &json!({"v": 1}));
        a.sync();
        let delta = first_delta(&remote);
        if missing {
            remote.raw_delete(&delta);
        } else {
            remote.raw_put(&delta, b"{\"format\":1,\"records\":[");
        }
        let mut fresh = Device::new(remote.clone(), "fresh");
        let e = fresh.try_sync().unwrap_err();
        assert!(!e.is_temporary(), "missing={missing}: {e}");
        let text = e.to_string();
        assert!(text.contains(&delta), "{text}");
        assert!(
            matches!(
                e,
                EngineError::Store(StoreError::Damaged {
                    remedy: Remedy::CompactFromSyncedDevice,
                    ..
                })
            ),
            "{text}"
        );
        // The remedy: a compaction on the device that has it.
        a.engine
            .compact_with(
                &CompactOptions {
                    settle_ms: Some(0),
                    ..Default::default()
                },
                &deltasync_engine::progress::NoProgress,
            )
            .unwrap();
        fresh.sync();
        assert_eq!(fresh.read("t1"), Some(json!({"v": 1})), "missing={missing}");
    }
}
