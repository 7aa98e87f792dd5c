//! The conformance suite on the folder and in-memory backends, and failing broken ones.

use super::*;

// ---------------------------------------------------------------------------------------------
// The conformance suite.

const ALL_CHECKS: [&str; 14] = [
    "get-missing",
    "create-only",
    "conditional-get",
    "update-if-match",
    "stale-if-match",
    "if-match-missing",
    "overwrite",
    "bodies",
    "nested-parents",
    "list",
    "head",
    "delete",
    "race-create-only",
    "race-update-if-match",
];

#[test]
fn local_folder_passes_the_conformance_suite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("not/yet/there");
    let remote = LocalFolder::new(&root)?;
    assert!(root.is_dir(), "new() creates the root");
    let report = conformance::run(&remote)?;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    for check in ALL_CHECKS.iter().chain(&["cleanup"]) {
        assert!(
            report.passed.contains(check),
            "{check} not run: {:?}",
            report.passed
        );
    }
    // Cleaned up: only the lock file remains, and no temporary file was left behind.
    assert_eq!(walk(&root)?, vec![LOCK_FILE.to_string()]);
    conformance::check_all(&remote)?;
    Ok(())
}

#[test]
fn memory_remote_passes_the_conformance_suite() -> Result<()> {
    let remote = MemoryRemote::new();
    let report = conformance::run(&remote)?;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), ALL_CHECKS.len() + 1);
    assert!(
        remote.files().is_empty(),
        "left behind: {:?}",
        remote.files().keys()
    );
    Ok(())
}

#[test]
fn conformance_through_the_counting_layer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let remote = Counting::new(LocalFolder::new(dir.path())?);
    conformance::check_all(&remote)?;
    let stats = remote.stats();
    assert!(
        stats.puts >= 20 && stats.gets >= 20 && stats.lists >= 5,
        "{stats:?}"
    );
    assert!(
        stats.not_modified >= 1 && stats.deletes >= 1 && stats.heads >= 1,
        "{stats:?}"
    );
    Ok(())
}

#[test]
fn conformance_skips_what_weaker_backends_do_not_promise() -> Result<()> {
    let non_atomic = MemoryRemote::with_seed(3);
    non_atomic.set_faults(Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    });
    let report = conformance::run(&non_atomic)?;
    assert_eq!(report.capabilities.cas, CasClass::NonAtomic);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.check).collect();
    assert_eq!(
        skipped,
        ["stale-if-match", "race-create-only", "race-update-if-match"]
    );
    assert!(report.passed.contains(&"create-only"));

    let ignoring = MemoryRemote::with_seed(4);
    ignoring.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    let report = conformance::run(&ignoring)?;
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.check).collect();
    assert_eq!(
        skipped,
        [
            "create-only",
            "stale-if-match",
            "if-match-missing",
            "race-create-only",
            "race-update-if-match"
        ]
    );
    assert!(ignoring.files().is_empty());
    Ok(())
}

/// A backend that claims more than it does, or gets listing wrong, to prove the suite fails.
struct Liar {
    inner: MemoryRemote,
    claims: Capabilities,
    full_names_in_list: bool,
}

impl Liar {
    fn new(inner: MemoryRemote) -> Self {
        Liar {
            inner,
            claims: Capabilities::default(),
            full_names_in_list: false,
        }
    }
}

impl deltasync_remote::Forward for Liar {
    fn inner(&self) -> &dyn Remote {
        &self.inner
    }
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        let mut entries = self.inner.list(dir)?;
        if self.full_names_in_list {
            for e in &mut entries {
                e.name = format!("{dir}/{}", e.name);
            }
        }
        Ok(entries)
    }
    fn capabilities(&self) -> Capabilities {
        self.claims.clone()
    }
    fn describe(&self) -> String {
        "liar".into()
    }
}

fn failure_of(remote: &dyn Remote) -> ConformanceFailure {
    match conformance::run(remote) {
        Ok(report) => panic!("the suite passed a broken backend: {report:?}"),
        Err(failure) => failure,
    }
}

#[test]
fn conformance_catches_broken_backends() {
    // Claims atomic compare-and-swap but ignores preconditions.
    let mem = MemoryRemote::new();
    mem.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    let failure = failure_of(&Liar::new(mem.clone()));
    assert_eq!(failure.check, "create-only");
    assert!(
        failure.detail.contains("expected PreconditionFailed"),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .starts_with("liar: conformance check 'create-only' failed")
    );
    assert!(mem.files().is_empty(), "cleaned up after a failure");

    // Claims atomic but lets a stale If-Match through.
    let mem = MemoryRemote::new();
    mem.set_faults(Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    });
    let failure = failure_of(&Liar::new(mem));
    assert_eq!(failure.check, "stale-if-match", "{failure}");

    // Lists full paths instead of names.
    let mut liar = Liar::new(MemoryRemote::new());
    liar.full_names_in_list = true;
    let failure = failure_of(&liar);
    assert_eq!(failure.check, "nested-parents", "{failure}");
    assert!(failure.detail.contains("expected [n2/]"), "{failure}");

    // Truncates bodies.
    let mem = MemoryRemote::new();
    mem.set_faults(Faults {
        truncate_body_rate: 1.0,
        ..Faults::default()
    });
    let failure = failure_of(&mem);
    assert_eq!(failure.check, "create-only", "{failure}");
    assert!(
        failure.detail.contains("expected Found(5 bytes \"first\")"),
        "{failure}"
    );

    // Every request fails: the cause is kept and says a retry may help.
    let mem = MemoryRemote::new();
    mem.set_faults(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    });
    let failure = failure_of(&mem);
    assert_eq!(failure.check, "start");
    assert!(
        failure
            .source
            .as_ref()
            .is_some_and(RemoteError::is_temporary),
        "{failure:?}"
    );
}
