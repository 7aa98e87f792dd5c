//! Tests of the local state: settings, the journal's columns, migrations of older databases.

use super::*;
use serde_json::json;

/// The length of a setting is its bytes, as the text's `len()` would say.
#[test]
fn len_of_counts_bytes() {
    let s = State::in_memory().unwrap();
    assert_eq!(s.len_of("meta").unwrap(), None);
    let text = r#"{"name":"Küche ☕"}"#;
    s.set("meta", text).unwrap();
    assert_eq!(s.len_of("meta").unwrap(), Some(text.len() as u64));
}

#[test]
fn base_and_mirror_round_trip() {
    let mut s = State::in_memory().unwrap();
    let v = Some(json!({"a": 1}));
    s.transaction(|s| {
        s.set_base("t", "x", Some((3, &v)))?;
        s.set_mirror(
            "t",
            "x",
            Some(&MirrorRecord {
                version: 3,
                clock: Hlc { ms: 9, counter: 1 },
                device: "d".into(),
                content: v.clone(),
                extra: serde_json::from_str(r#"{"newer":{"n":1.50}}"#).unwrap(),
            }),
        )
    })
    .unwrap();
    assert_eq!(s.base("t", "x").unwrap(), Some((3, v.clone())));
    let m = s.mirror("t", "x").unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&m.extra).unwrap(),
        r#"{"newer":{"n":1.50}}"#
    );
    assert_eq!(s.all_mirror().unwrap()[0].2, m);
    let st = &s.all_states().unwrap()[&("t".to_string(), "x".to_string())];
    assert_eq!(st.base_hash, st.m_hash);
    assert!(st.has_base && st.has_mirror);
    s.set_base("t", "x", Some((4, &None))).unwrap();
    assert_eq!(s.base("t", "x").unwrap(), Some((4, None)));
    assert_eq!(s.mirror("t", "y").unwrap(), None);
}

fn mirror_of(version: u64, content: Option<serde_json::Value>) -> MirrorRecord {
    MirrorRecord {
        version,
        clock: Hlc {
            ms: version,
            counter: 0,
        },
        device: "d".into(),
        content,
        extra: Default::default(),
    }
}

/// Issue 12 (bootstrap): a base set to the mirror is stored once, shared with it, and stays
/// what it was whatever happens to the mirror next: a new version, the same content again,
/// a tombstone, no record at all.
#[test]
fn a_base_shared_with_the_mirror_outlives_every_change_of_the_mirror() {
    let mut s = State::in_memory().unwrap();
    let one = json!({"title": "one", "n": 1.50});
    let stored = |s: &State| -> Option<String> {
        s.conn
            .query_row(
                "SELECT base_content FROM entities WHERE collection = 't' AND id = 'x'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let changes: [(&str, Option<MirrorRecord>); 4] = [
        (
            "a new version",
            Some(mirror_of(2, Some(json!({"title": "two"})))),
        ),
        (
            "the same content again",
            Some(mirror_of(2, Some(one.clone()))),
        ),
        ("a tombstone", Some(mirror_of(2, None))),
        ("no record", None),
    ];
    for (what, next) in changes {
        s.transaction(|s| {
            s.set_mirror("t", "x", Some(&mirror_of(1, Some(one.clone()))))?;
            s.set_base("t", "x", None)?;
            assert!(s.set_base_to_mirror("t", "x", 1)?);
            Ok(())
        })
        .unwrap();
        assert_eq!(stored(&s).as_deref(), Some(""), "{what}: stored once");
        assert_eq!(s.base("t", "x").unwrap(), Some((1, Some(one.clone()))));
        s.set_mirror("t", "x", next.as_ref()).unwrap();
        assert_eq!(
            s.base("t", "x").unwrap(),
            Some((1, Some(one.clone()))),
            "{what}"
        );
        let st = s.entity_state("t", "x").unwrap().unwrap();
        assert_eq!(
            st.base_hash,
            Some(deltasync_meta::content_hash(&one)),
            "{what}"
        );
    }
    // A tombstone's base is no content at all.
    s.set_mirror("t", "y", Some(&mirror_of(3, None))).unwrap();
    assert!(s.set_base_to_mirror("t", "y", 3).unwrap());
    assert_eq!(s.base("t", "y").unwrap(), Some((3, None)));
}

/// A shared base whose mirror was changed without the copy (by an older deltasync, which
/// does not know the rule) is an error that says what to do, never another content.
/// A snapshot's record goes into the mirror only over an older one, or none (a row with a
/// base and no mirror included), in one statement, which says whether it did.
#[test]
fn a_mirror_is_set_from_a_snapshot_only_when_newer() {
    let s = State::in_memory().unwrap();
    assert!(
        s.set_mirror_if_newer("t", "x", &mirror_of(2, Some(json!({"v": 2}))))
            .unwrap()
    );
    for older in [1, 2] {
        assert!(
            !s.set_mirror_if_newer("t", "x", &mirror_of(older, Some(json!({"v": older}))))
                .unwrap()
        );
    }
    assert_eq!(
        s.mirror("t", "x").unwrap().unwrap().content,
        Some(json!({"v": 2}))
    );
    assert!(
        s.set_mirror_if_newer("t", "x", &mirror_of(3, None))
            .unwrap()
    );
    assert_eq!(s.mirror("t", "x").unwrap().unwrap().version, 3);
    s.set_base("t", "y", Some((5, &Some(json!({"b": 1})))))
        .unwrap();
    assert!(
        s.set_mirror_if_newer("t", "y", &mirror_of(1, Some(json!({"m": 1}))))
            .unwrap()
    );
    assert_eq!(s.mirror("t", "y").unwrap().unwrap().version, 1);
    assert_eq!(s.base("t", "y").unwrap(), Some((5, Some(json!({"b": 1})))));
}

#[test]
fn a_shared_base_whose_mirror_moved_under_it_is_an_error() {
    let s = State::in_memory().unwrap();
    s.set_mirror("t", "x", Some(&mirror_of(1, Some(json!({"a": 1})))))
        .unwrap();
    assert!(s.set_base_to_mirror("t", "x", 1).unwrap());
    // What an older binary's set_mirror does: no copy.
    s.conn
        .execute(
            "UPDATE entities SET m_version = 2, m_hash = 'other', m_content = '{\"a\":2}' WHERE id = 'x'",
            [],
        )
        .unwrap();
    let err = s.base("t", "x").unwrap_err();
    assert!(matches!(err, StateError::LostBase { .. }), "{err}");
    assert!(err.to_string().contains("deltasync repair"), "{err}");
}

/// A database written by a newer deltasync is refused with what to do, not misread.
#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = State::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("newer deltasync"), "{err}");
    assert!(err.contains(".deltasync folder away"), "{err}");
}

/// A state.db from before schema versions (no `m_extra`) opens and keeps its rows.
#[test]
fn an_older_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(&SCHEMA.replace("  m_extra TEXT,\n", ""))
            .unwrap();
        conn.execute(
            "INSERT INTO entities(collection, id, has_mirror, m_version, m_content) VALUES ('t', 'x', 1, 2, '{}')",
            [],
        )
        .unwrap();
        assert!(conn.prepare("SELECT m_extra FROM entities").is_err());
    }
    let s = State::open(dir.path()).unwrap();
    let m = s.mirror("t", "x").unwrap().unwrap();
    assert_eq!((m.version, m.extra.len()), (2, 0));
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(s);
    State::open(dir.path()).unwrap();
}

/// A version-1 database (before the stat cache) opens at the current version with an empty
/// cache, its rows kept.
#[test]
fn a_version_1_database_gets_the_stat_cache() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO entities(collection, id, has_mirror, m_version, m_content) VALUES ('t', 'x', 1, 2, '{}')",
            [],
        )
        .unwrap();
        assert!(conn.prepare("SELECT * FROM file_stamps").is_err());
        let old = PendingCommit {
            delta_path: "deltas/old".into(),
            seq: 4,
            state: JournalState::Attempted,
            meta_etag: None,
            before: vec![],
            records: vec![],
            receipts: vec![],
        };
        conn.execute(
            "INSERT INTO journal(delta_path, json) VALUES ('deltas/old', ?1)",
            [serde_json::to_string(&old).unwrap()],
        )
        .unwrap();
    }
    let s = State::open(dir.path()).unwrap();
    assert_eq!(s.mirror("t", "x").unwrap().unwrap().version, 2);
    assert!(s.known_files("t").unwrap().is_empty());
    // The journal's entry of before is read from its JSON; a new one from its columns.
    let mut p = s.pending().unwrap().remove(0);
    p.delta_path = "deltas/new".into();
    p.seq = 3;
    p.state = JournalState::Unconfirmed;
    s.put_pending(&p).unwrap();
    assert_eq!(
        s.pending_states().unwrap(),
        [(3, JournalState::Unconfirmed), (4, JournalState::Attempted)]
    );
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Issue 11: a busy database (another deltasync process) is worth trying again; a damaged
/// one is not.
#[test]
fn busy_is_temporary_and_damage_is_not() {
    let err = |code| {
        StateError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    };
    assert!(err(rusqlite::ffi::SQLITE_BUSY).is_temporary());
    assert!(err(rusqlite::ffi::SQLITE_LOCKED).is_temporary());
    assert!(!err(rusqlite::ffi::SQLITE_CORRUPT).is_temporary());
    let busy = open_error(
        Path::new("state.db"),
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None),
    );
    assert!(busy.is_temporary(), "{busy}");
    assert!(crate::EngineError::State(busy).is_temporary());
}

#[test]
fn failed_transaction_changes_nothing() {
    let mut s = State::in_memory().unwrap();
    let r: Result<(), StateError> = s.transaction(|s| {
        s.set("k", "v")?;
        Err(StateError::Io(std::io::Error::other("boom")))
    });
    assert!(r.is_err());
    assert_eq!(s.get("k").unwrap(), None);
}

/// The journal's heads (`journal_heads`): a database from before them gets them filled from the
/// entries' JSON; a row an older binary writes leaves it NULL and the JSON is read; a commit
/// carries the etag of every unconfirmed entry forward in the heads alone.
#[test]
fn the_journal_heads_are_filled_kept_and_carried_forward() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |path: &str, seq: u64, state: JournalState, etag: Option<&str>| PendingCommit {
        delta_path: path.into(),
        seq,
        state,
        meta_etag: etag.map(str::to_owned),
        before: vec![],
        records: vec![],
        receipts: vec![],
    };
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "ALTER TABLE journal ADD COLUMN seq INTEGER; ALTER TABLE journal ADD COLUMN state TEXT;",
        )
        .unwrap();
        let old = entry("deltas/1", 1, JournalState::Unconfirmed, Some("\"e1\""));
        conn.execute(
            "INSERT INTO journal(delta_path, json, seq, state) VALUES ('deltas/1', ?1, 1, 'unconfirmed')",
            [serde_json::to_string(&old).unwrap()],
        )
        .unwrap();
    }
    let s = State::open(dir.path()).unwrap();
    let heads = s.journal_heads().unwrap();
    assert_eq!(
        heads,
        vec![entry("deltas/1", 1, JournalState::Unconfirmed, Some("\"e1\"")).head()]
    );
    // An older binary replaces a whole row: the trigger writes its head with no etag, and
    // the JSON says.
    let older = entry("deltas/2", 2, JournalState::Unconfirmed, Some("\"e2\""));
    s.conn
        .execute(
            "INSERT OR REPLACE INTO journal(delta_path, json, seq, state) VALUES ('deltas/2', ?1, 2, 'unconfirmed')",
            [serde_json::to_string(&older).unwrap()],
        )
        .unwrap();
    s.put_pending(&entry("deltas/3", 3, JournalState::Attempted, None))
        .unwrap();
    assert_eq!(
        s.journal_heads().unwrap()[1].meta_etag.as_deref(),
        Some("\"e2\"")
    );
    s.carry_unconfirmed("\"e9\"").unwrap();
    let heads = s.journal_heads().unwrap();
    let etags: Vec<Option<&str>> = heads.iter().map(|h| h.meta_etag.as_deref()).collect();
    assert_eq!(
        etags,
        [Some("\"e9\""), Some("\"e9\""), None],
        "attempted keeps none"
    );
    let whole = s.pending_entry("deltas/2").unwrap().unwrap();
    assert_eq!(whole.meta_etag.as_deref(), Some("\"e9\""));
    assert_eq!(s.pending().unwrap()[1].meta_etag.as_deref(), Some("\"e9\""));
    assert!(s.pending_entry("deltas/none").unwrap().is_none());
}
