//! A remote that keeps a file's ETag while its mtime in seconds is unchanged, as Nextcloud's
//! file cache does (measured on Nextcloud 34): a conditional GET then answers "not modified"
//! over changed content. Devices must converge anyway.

mod support;

use std::sync::Arc;

use deltasync_engine::STALE_ETAG_BOUND;
use deltasync_remote::{Etag, Faults, GetResult, MemoryRemote, PutMode, Remote, RemoteError};
use serde_json::json;
use support::Device;

fn nextcloud_like() -> Arc<MemoryRemote> {
    let remote = Arc::new(MemoryRemote::with_seed(3));
    remote.set_faults(Faults {
        reuse_etag_within_second: true,
        ..Faults::default()
    });
    remote
}

fn meta_etag(remote: &MemoryRemote) -> Etag {
    remote.head("meta.json").unwrap().unwrap().etag.unwrap()
}

/// A, B, A with no pause (the first measurement): every sync of A sees what B pushed
/// just before, although all of it happens within a second or two.
#[test]
fn back_to_back_syncs_converge_when_etags_are_reused_within_a_second() {
    let remote = nextcloud_like();
    let mut a = Device::new(remote.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    a.write("t1", &json!({"title": "milk", "n": 0}));
    a.sync();
    for n in 1..=6 {
        b.sync();
        assert_eq!(b.read("t1").unwrap()["n"], n - 1, "B behind at round {n}");
        b.write("t1", &json!({"title": "milk", "n": n}));
        let before = meta_etag(&remote);
        assert!(b.sync().committed.is_some());
        assert_ne!(
            meta_etag(&remote),
            before,
            "a commit in the same second must still get a new ETag (X-OC-MTime above the old)"
        );
        a.sync();
        assert_eq!(
            a.read("t1").unwrap()["n"],
            n,
            "A missed B's commit at round {n}"
        );
    }
}

/// A writer that gives meta.json the mtime it already has (one that raced another writer for
/// the same meta.json and computed the same next mtime, or another app) leaves it with the old
/// ETag. A device that trusts its 304 misses that commit; it must read meta.json in full once
/// [`STALE_ETAG_BOUND`] has passed.
#[test]
fn a_stale_not_modified_is_trusted_only_within_the_bound() {
    let mut reproduced = 0;
    for _ in 0..5 {
        let remote = nextcloud_like();
        let mut a = Device::new(remote.clone(), "a");
        let mut b = Device::new(remote.clone(), "b");
        a.write("t1", &json!({"v": 1}));
        a.sync();
        b.sync();
        // A's first sync after its commit reads meta.json in full; from now on it trusts 304s.
        a.sync();
        let etag = meta_etag(&remote);
        // B's commit goes through a remote that keeps meta.json's mtime: the ETag stays.
        let mut old_b = Device::new(Arc::new(SameMtime(remote.clone())), "b-old");
        old_b.sync();
        old_b.write("t1", &json!({"v": 2}));
        old_b.sync();
        drop(b);
        assert_eq!(meta_etag(&remote), etag, "the stand-in kept the ETag");
        reproduced += 1;
        a.sync();
        assert_eq!(
            a.read("t1").unwrap()["v"],
            1,
            "within the bound a 304 is trusted"
        );
        // Let the bound pass (as a watcher's clock would).
        let earlier = deltasync_store::now_ms() - STALE_ETAG_BOUND.as_millis() as u64 - 1;
        a.engine
            .state()
            .set("meta_read_ms", &earlier.to_string())
            .unwrap();
        let r = a.sync();
        assert_eq!(
            a.read("t1").unwrap()["v"],
            2,
            "after the bound, meta.json is read in full: {r:?}"
        );
        if reproduced >= 3 {
            break;
        }
    }
    assert_eq!(reproduced, 3);
}

/// Forwards to a remote, but writes every file with the mtime it has now: a writer that
/// computed the same next mtime as another one.
struct SameMtime(Arc<MemoryRemote>);

impl deltasync_remote::Forward for SameMtime {
    fn inner(&self) -> &dyn Remote {
        &*self.0
    }
    /// Every write, whatever mtime it asked for, with the file's current one.
    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        _mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        let current = match self.0.get(path, None)? {
            GetResult::Found { body, .. } => deltasync_meta::Meta::from_bytes(&body)
                .ok()
                .and_then(|m| m.mtime),
            _ => None,
        };
        match current {
            Some(mtime) => self.0.put_with_mtime(path, body, mode, mtime),
            None => self.0.put(path, body, mode),
        }
    }
}

/// Two writers both "win" against one meta.json (a non-atomic If-Match) and both give it the
/// same next mtime, so the second keeps the first's ETag: the one whose commit was lost must
/// notice and make it again, and every device must end up with both edits.
#[test]
fn racing_winners_with_one_etag_converge() {
    let remote = nextcloud_like();
    remote.set_faults(Faults {
        reuse_etag_within_second: true,
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    });
    let view = Arc::new(support::RacingView::new(remote.clone()));
    let mut a = Device::new(view.clone(), "a");
    let mut b = Device::new(remote.clone(), "b");
    let mut c = Device::new(remote.clone(), "c");
    a.write("e0", &json!({"fa": 1}));
    b.write("e0", &json!({"fb": 1}));
    view.freeze();
    b.sync();
    a.sync();
    remote.set_faults(Faults {
        reuse_etag_within_second: true,
        ..Faults::default()
    });
    for _ in 0..4 {
        for d in [&mut a, &mut b, &mut c] {
            d.sync();
        }
    }
    let want = json!({"fa": 1, "fb": 1});
    assert_eq!(a.read("e0"), Some(want.clone()));
    assert_eq!(b.read("e0"), Some(want.clone()), "b");
    assert_eq!(c.read("e0"), Some(want), "c");
}
