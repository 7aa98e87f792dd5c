//! The in-memory backend (its faults, through the `Faulty` layer) and the `Counting` layer.

use super::*;

// ---------------------------------------------------------------------------------------------
// MemoryRemote.

#[test]
fn memory_basics() -> Result<()> {
    let remote = MemoryRemote::new();
    let e1 = remote
        .put("a/b.json", b"x", &PutMode::CreateOnly)?
        .context("etag")?;
    let e2 = remote.put("a/b.json", b"x", &PutMode::UpdateIfMatch(e1.clone()))?;
    assert_ne!(
        Some(&e1),
        e2.as_ref(),
        "every write gets a new ETag, even of the same content"
    );
    remote.put("a/c/d.json", b"yy", &PutMode::CreateOnly)?;
    assert_eq!(
        names(&remote.list("a")?),
        [("b.json".into(), false, 1), ("c".into(), true, 0)]
    );
    assert_eq!(names(&remote.list("")?), [("a".into(), true, 0)]);
    assert_eq!(remote.head("a/c")?.map(|i| i.is_dir), Some(true));

    // Clones share the files.
    let clone = remote.clone();
    clone.delete("a/c")?;
    assert_eq!(remote.files().keys().collect::<Vec<_>>(), ["a/b.json"]);

    // Like a file system: nothing below a file, no file onto a folder.
    let below = remote.put("a/b.json/z", b"", &PutMode::Overwrite);
    assert!(
        matches!(below, Err(RemoteError::Permanent { .. })),
        "{below:?}"
    );
    let onto = remote.put("a", b"", &PutMode::Overwrite);
    assert!(
        matches!(onto, Err(RemoteError::Permanent { .. })),
        "{onto:?}"
    );

    // raw_put bypasses faults and statistics and makes a new ETag.
    remote.set_faults(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    });
    remote.reset_stats();
    let raw = remote.raw_put("a/b.json", b"corrupt");
    assert_eq!(remote.stats(), RequestStats::default());
    assert!(remote.get("a/b.json", None).unwrap_err().is_temporary());
    remote.set_faults(Faults::default());
    assert_eq!(
        body_of(&remote, "a/b.json")?,
        (b"corrupt".to_vec(), raw.clone())
    );
    assert_ne!(Some(&raw), e2.as_ref());
    assert!(remote.raw_delete("a"));
    assert!(remote.files().is_empty());
    Ok(())
}

#[test]
fn memory_transient_errors_do_nothing() {
    let remote = MemoryRemote::with_seed(1);
    remote.put("keep.json", b"k", &PutMode::CreateOnly).unwrap();
    remote.set_faults(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    });
    let errors = [
        remote.put("new.json", b"x", &PutMode::CreateOnly).err(),
        remote.put("keep.json", b"x", &PutMode::Overwrite).err(),
        remote.get("keep.json", None).err(),
        remote.head("keep.json").err(),
        remote.list("").err(),
        remote.delete("keep.json").err(),
    ];
    for e in errors {
        assert!(e.as_ref().is_some_and(RemoteError::is_temporary), "{e:?}");
    }
    assert_eq!(
        remote.files().into_iter().collect::<Vec<_>>(),
        [("keep.json".to_string(), b"k".to_vec())]
    );
}

/// Which of 200 overwrites fail at a 50 % transient rate.
fn transient_pattern(seed: u64) -> Vec<bool> {
    let remote = MemoryRemote::with_seed(seed);
    remote.set_faults(Faults {
        transient_error_rate: 0.5,
        ..Faults::default()
    });
    (0..200)
        .map(|i| {
            remote
                .put(&format!("f{i}"), b"x", &PutMode::Overwrite)
                .is_err()
        })
        .collect()
}

#[test]
fn memory_faults_are_deterministic_per_seed() {
    let a = transient_pattern(42);
    assert_eq!(a, transient_pattern(42));
    assert_ne!(a, transient_pattern(43));
    let failed = a.iter().filter(|f| **f).count();
    assert!(
        (60..=140).contains(&failed),
        "{failed} of 200 failed at rate 0.5"
    );
}

#[test]
fn memory_lost_response_applies_the_write() -> Result<()> {
    let remote = MemoryRemote::new();
    remote.set_faults(Faults {
        lost_response_rate: 1.0,
        ..Faults::default()
    });
    let lost = remote.put("d.json", b"delta", &PutMode::CreateOnly);
    assert!(lost.unwrap_err().is_temporary());
    assert_eq!(
        remote.files().get("d.json").map(Vec::as_slice),
        Some(&b"delta"[..])
    );
    // The naive retry now conflicts with its own write.
    let retry = remote.put("d.json", b"delta", &PutMode::CreateOnly);
    assert!(retry.unwrap_err().is_precondition_failed());
    // Reads are not affected.
    remote.set_faults(Faults::default());
    assert_eq!(body_of(&remote, "d.json")?.0, b"delta");
    Ok(())
}

#[test]
fn memory_truncated_bodies_keep_the_real_etag() -> Result<()> {
    let remote = MemoryRemote::with_seed(9);
    let body: Vec<u8> = (0..100).collect();
    let etag = remote.put("big", &body, &PutMode::CreateOnly)?;
    remote.set_faults(Faults {
        truncate_body_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..20 {
        let (got, got_etag) = body_of(&remote, "big")?;
        assert!(got.len() < body.len() && body.starts_with(&got), "{got:?}");
        assert_eq!(Some(got_etag), etag);
    }
    // A conditional get still answers NotModified.
    assert_eq!(remote.get("big", etag.as_ref())?, GetResult::NotModified);
    Ok(())
}

#[test]
fn memory_stale_if_match_can_succeed() -> Result<()> {
    let remote = MemoryRemote::new();
    let e1 = remote
        .put("meta.json", b"1", &PutMode::CreateOnly)?
        .context("etag")?;
    remote.put("meta.json", b"2", &PutMode::UpdateIfMatch(e1.clone()))?;
    let stale = PutMode::UpdateIfMatch(e1);
    assert!(
        remote
            .put("meta.json", b"3", &stale)
            .unwrap_err()
            .is_precondition_failed()
    );
    assert_eq!(remote.capabilities().cas, CasClass::Atomic);

    remote.set_faults(Faults {
        stale_if_match_succeeds: 1.0,
        ..Faults::default()
    });
    assert_eq!(remote.capabilities().cas, CasClass::NonAtomic);
    // Two writers holding the same old ETag both win.
    remote.put("meta.json", b"3", &stale)?;
    remote.put("meta.json", b"4", &stale)?;
    assert_eq!(body_of(&remote, "meta.json")?.0, b"4");
    // A missing file still fails.
    let missing = remote.put("none.json", b"x", &stale);
    assert!(missing.unwrap_err().is_precondition_failed());
    Ok(())
}

#[test]
fn memory_can_ignore_preconditions() -> Result<()> {
    let remote = MemoryRemote::new();
    remote.put("a", b"1", &PutMode::CreateOnly)?;
    remote.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    assert_eq!(remote.capabilities().cas, CasClass::None);
    remote.put("a", b"2", &PutMode::CreateOnly)?;
    let bogus = PutMode::UpdateIfMatch(Etag("bogus".into()));
    remote.put("a", b"3", &bogus)?;
    remote.put("b", b"4", &bogus)?;
    let files = remote.files();
    assert_eq!(
        (files["a"].as_slice(), files["b"].as_slice()),
        (&b"3"[..], &b"4"[..])
    );
    Ok(())
}

#[test]
fn memory_is_atomic_under_races() -> Result<()> {
    let remote = MemoryRemote::new();
    let etag = remote
        .put("m", b"base", &PutMode::CreateOnly)?
        .context("etag")?;
    let mode = PutMode::UpdateIfMatch(etag);
    let results = race(RACERS, |i| {
        remote.put("m", format!("writer {i}").as_bytes(), &mode)
    });
    exactly_one_winner(&remote, "m", results)
}

// ---------------------------------------------------------------------------------------------
// Counting.

/// A known sequence of requests, and what it must count.
fn known_sequence(remote: &dyn Remote) -> Result<RequestStats> {
    let etag = remote
        .put("a.json", b"abc", &PutMode::CreateOnly)?
        .context("etag")?;
    assert!(remote.put("a.json", b"abcd", &PutMode::CreateOnly).is_err());
    assert!(matches!(
        remote.get("a.json", None)?,
        GetResult::Found { .. }
    ));
    assert_eq!(remote.get("a.json", Some(&etag))?, GetResult::NotModified);
    assert_eq!(remote.get("missing.json", None)?, GetResult::NotFound);
    remote.head("a.json")?;
    remote.list("")?;
    remote.delete("a.json")?;
    assert!(remote.put("../x", b"z", &PutMode::Overwrite).is_err());
    Ok(RequestStats {
        gets: 3,
        not_modified: 1,
        puts: 3,
        heads: 1,
        lists: 1,
        deletes: 1,
        bytes_up: 3 + 4 + 1,
        bytes_down: 3,
    })
}

#[test]
fn counting_counts_a_known_sequence_exactly() -> Result<()> {
    let memory = MemoryRemote::new();
    let counted = Counting::new(memory.clone());
    let expected = known_sequence(&counted)?;
    assert_eq!(counted.stats(), expected);
    assert_eq!(counted.stats().requests(), 9);
    // The memory remote counts the same way.
    assert_eq!(memory.stats(), expected);
    counted.reset();
    memory.reset_stats();
    assert_eq!(counted.stats(), RequestStats::default());
    assert_eq!(memory.stats(), RequestStats::default());

    let dir = tempfile::tempdir()?;
    let local = Counting::new(LocalFolder::new(dir.path())?);
    assert_eq!(known_sequence(&local)?, local.stats());
    assert_eq!(local.inner().root(), dir.path());
    Ok(())
}

#[test]
fn counting_is_thread_safe_and_layers_over_arc() -> Result<()> {
    let counted = Arc::new(Counting::new(MemoryRemote::new()));
    let as_dyn: Arc<dyn Remote> = counted.clone();
    as_dyn.put("x", b"12345", &PutMode::CreateOnly)?;
    race(RACERS, |_| {
        for _ in 0..100 {
            as_dyn.get("x", None).unwrap();
        }
    });
    let stats = counted.stats();
    assert_eq!((stats.gets, stats.bytes_down), (800, 800 * 5));
    assert_eq!(stats.requests(), 801);
    assert_eq!(as_dyn.capabilities(), Capabilities::default());
    assert_eq!(as_dyn.describe(), "memory (seed 0)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Layers over any backend.

/// A layer that overrides nothing: every request goes on unchanged.
struct PassThrough<R>(R);

impl<R: Remote> deltasync_remote::Forward for PassThrough<R> {
    fn inner(&self) -> &dyn Remote {
        &self.0
    }
}

#[test]
fn a_layer_that_overrides_nothing_keeps_every_promise() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let remote = PassThrough(LocalFolder::new(dir.path())?);
    let report = conformance::run(&remote)?;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(remote.capabilities(), remote.0.capabilities());
    assert_eq!(remote.describe(), remote.0.describe());
    // Both read methods reach the backend, with its size limit.
    remote.put("a.json", b"12345", &PutMode::CreateOnly)?;
    let e = remote.get_max("a.json", None, 4).unwrap_err();
    assert!(matches!(e, RemoteError::TooLarge { limit: 4, .. }), "{e:?}");
    Ok(())
}

#[test]
fn the_faulty_layer_injects_faults_into_a_folder() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let remote = Faulty::new(LocalFolder::new(dir.path())?, 5);
    assert_eq!(remote.capabilities(), remote.inner().capabilities());
    remote.set_faults(Faults {
        transient_error_rate: 1.0,
        ..Faults::default()
    });
    let e = remote
        .put("a.json", b"1", &PutMode::CreateOnly)
        .unwrap_err();
    assert!(e.is_temporary(), "{e:?}");
    assert!(
        remote.inner().head("a.json")?.is_none(),
        "nothing was written"
    );
    // A path the backend refuses is refused by the backend, not by a draw.
    assert!(matches!(
        remote.get("../x", None),
        Err(RemoteError::BadPath(_))
    ));

    remote.set_faults(Faults {
        ignore_preconditions: true,
        ..Faults::default()
    });
    assert_eq!(remote.capabilities().cas, CasClass::None);
    remote.put("a.json", b"1", &PutMode::CreateOnly)?;
    remote.put("a.json", b"2", &PutMode::CreateOnly)?;
    assert_eq!(body_of(&remote, "a.json")?.0, b"2");

    remote.set_faults(Faults {
        stale_if_match_succeeds: 1.0,
        lost_response_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(remote.capabilities().cas, CasClass::NonAtomic);
    let stale = Etag("stale".into());
    let e = remote
        .put("a.json", b"3", &PutMode::UpdateIfMatch(stale.clone()))
        .unwrap_err();
    assert!(e.is_temporary(), "the answer was lost: {e:?}");
    assert_eq!(body_of(remote.inner(), "a.json")?.0, b"3", "but applied");
    // An If-Match on a missing file still fails.
    let e = remote
        .put("b.json", b"1", &PutMode::UpdateIfMatch(stale))
        .unwrap_err();
    assert!(e.is_precondition_failed(), "{e:?}");

    remote.set_faults(Faults {
        truncate_body_rate: 1.0,
        ..Faults::default()
    });
    let (body, _) = body_of(&remote, "a.json")?;
    assert!(
        body.is_empty(),
        "a one-byte body is cut to nothing: {body:?}"
    );
    Ok(())
}
