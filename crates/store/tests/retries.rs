//! How often the store sends a request that keeps failing: each idempotent request is retried by
//! exactly one layer — the remote's own retries where it has them, else the `Retry` layer the
//! store puts over it — and never by both (issue 11: retry is a `Remote` layer, applied once).

use std::sync::Arc;

use deltasync_lock::Backoff;
use deltasync_remote::{Capabilities, Faults, Forward, MemoryRemote, Remote};
use deltasync_store::Store;

/// The store's backoff in these tests: 1 + 3 tries at most, quickly.
fn backoff() -> Backoff {
    Backoff::new(
        std::time::Duration::from_micros(50),
        std::time::Duration::from_micros(50),
        3,
    )
}

/// A remote that fails every request and says it retries its reads itself, as an HTTP backend
/// does: each request the store sends it must arrive once.
struct RetriesItself(MemoryRemote);

impl Forward for RetriesItself {
    fn inner(&self) -> &dyn Remote {
        &self.0
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            retries_reads: true,
            ..self.0.capabilities()
        }
    }
}

fn failing_memory() -> MemoryRemote {
    let memory = MemoryRemote::with_seed(5);
    memory.set_faults(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    });
    memory
}

/// Archives and backups were read with the store's own retries whatever the remote did: over
/// WebDAV, 4 tries by the backend for each of 9 by the store.
#[test]
fn a_remote_that_retries_itself_gets_each_read_once() {
    let remote = Arc::new(RetriesItself(failing_memory()));
    let store = Store::new(remote.clone()).with_backoff(backoff());
    assert!(store.read_meta(None).unwrap_err().is_temporary());
    assert!(store.list_archives().unwrap_err().is_temporary());
    assert!(store.read_file("archive/a.zip").unwrap_err().is_temporary());
    assert!(store.remote().head("meta.json").unwrap_err().is_temporary());
    let stats = remote.0.stats();
    assert_eq!(
        (stats.gets, stats.lists, stats.heads),
        (2, 1, 1),
        "{stats:?}"
    );
}

/// A remote that does not retry (a folder, the in-memory one) gets the store's retries on
/// every idempotent request through the store — the engine's heads, listings and deletes
/// included, not only the store's own reads — and none on writes.
#[test]
fn a_remote_that_does_not_retry_is_retried_by_the_store_once() {
    let memory = Arc::new(failing_memory());
    let store = Store::new(memory.clone()).with_backoff(backoff());
    assert!(store.read_meta(None).unwrap_err().is_temporary());
    assert!(store.list_archives().unwrap_err().is_temporary());
    assert!(store.remote().head("meta.json").unwrap_err().is_temporary());
    assert!(store.remote().list("deltas").unwrap_err().is_temporary());
    assert!(
        store
            .remote()
            .delete("lock.json")
            .unwrap_err()
            .is_temporary()
    );
    assert!(
        store
            .remote()
            .put("x", b"{}", &deltasync_remote::PutMode::Overwrite)
            .unwrap_err()
            .is_temporary()
    );
    let stats = memory.stats();
    assert_eq!(
        (
            stats.gets,
            stats.lists,
            stats.heads,
            stats.deletes,
            stats.puts
        ),
        (4, 8, 4, 4, 1),
        "{stats:?}"
    );
    assert!(store.remote().capabilities().retries_reads);
}

/// A remote under a layer that retries already is not retried again by a second layer: a
/// store made over a store's remote sends each read 1 + 3 times, not 16.
#[test]
fn a_store_over_a_retrying_remote_adds_no_layer() {
    let memory = Arc::new(failing_memory());
    let first = Store::new(memory.clone()).with_backoff(backoff());
    let second = Store::new(first.remote().clone()).with_backoff(backoff());
    assert!(second.read_meta(None).unwrap_err().is_temporary());
    assert_eq!(memory.stats().gets, 4);
}
