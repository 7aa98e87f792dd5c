//! What a sync reports when the answer to its own commit is lost and a later round of the
//! same sync finds out that the commit happened: the commit, and what it pushed.

mod support;

use std::sync::{Arc, Mutex};

use deltasync_remote::{Etag, MemoryRemote, PutMode, Remote, RemoteError};
use serde_json::json;
use support::Device;

/// Something to run once, between a write and its lost answer.
type Hook = Box<dyn FnOnce() + Send>;

/// A remote whose first write of meta.json is carried out, after which `then` runs (another
/// device commits on top) and the writer is told the request failed (its answer lost): the
/// writer's read-back then finds meta.json changed and cannot tell whether its write
/// happened.
struct LoseFirstMetaAnswer {
    inner: Arc<dyn Remote>,
    then: Mutex<Option<Hook>>,
}

impl deltasync_remote::Forward for LoseFirstMetaAnswer {
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
        let put = self.forward_write(path, body, mode, mtime);
        if path != "meta.json" || put.is_err() {
            return put;
        }
        let Some(then) = self.then.lock().unwrap().take() else {
            return put;
        };
        then();
        Err(RemoteError::Transient {
            what: format!("PUT {path}"),
            detail: "connection reset (answer lost, test)".into(),
        })
    }
}

#[test]
fn a_commit_whose_answer_was_lost_is_reported_once_a_later_round_finds_it() {
    let mem = Arc::new(MemoryRemote::new());
    let lossy = Arc::new(LoseFirstMetaAnswer {
        inner: mem.clone(),
        then: Mutex::new(None),
    });
    let mut a = Device::new(lossy.clone(), "a");
    let mut b = Device::new(mem.clone(), "b");
    a.sync();
    b.sync();

    a.write("from-a", &json!({"title": "a's edit"}));
    b.write("from-b", &json!({"title": "b's edit"}));
    *lossy.then.lock().unwrap() = Some(Box::new(move || {
        // b reads the meta.json a just wrote and commits on top of it.
        let r = b.sync();
        assert!(r.committed.is_some(), "{r:?}");
    }));
    let r = a.sync();
    assert!(lossy.then.lock().unwrap().is_none(), "the answer was lost");
    assert!(
        r.committed.is_some(),
        "the sync made its commit and must say so: {r:?}"
    );
    assert_eq!(r.collections["tasks"].up.new, 1, "{r:?}");
    assert_eq!(
        r.collections["tasks"].down.new, 1,
        "b's entity pulled: {r:?}"
    );
    assert_eq!(a.read("from-b").unwrap()["title"], "b's edit");

    // A third device sees both, and a's commit is not made twice.
    let mut c = Device::new(mem.clone(), "c");
    c.sync();
    assert_eq!(c.read("from-a").unwrap()["title"], "a's edit");
    assert_eq!(c.read("from-b").unwrap()["title"], "b's edit");
    assert_eq!(a.sync().committed, None);
}
