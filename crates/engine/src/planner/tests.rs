//! Tests of the planner: the case table of (local, base, remote), row by row.

use super::*;
use Change::{Create, Delete, Update};
use Op::{Adopt, Hold, Merge, Pull, Push, Unchanged};

/// Local states of the table: absent, the content "B", other content "L", unreadable, or
/// (extra rows) the content "R" that the newer remote has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum L {
    Absent,
    Same,
    Changed,
    Unreadable,
    AsRemote,
}

/// Base states: none, live "B" at version 5, tombstone at version 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum B {
    None,
    Live,
    Tomb,
}

/// Remote states: none; the base's version 5 with the base's content (with no base: "B" at
/// version 5); "R" at version 9; a tombstone at version 9; (extra rows) "X" at version 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum R {
    None,
    Same,
    NewerLive,
    NewerTomb,
    Older,
}

fn local(l: L) -> LocalSide {
    let hash = |h: &str| Some(h.to_string());
    match l {
        L::Absent => LocalSide {
            hash: None,
            unreadable: false,
        },
        L::Same => LocalSide {
            hash: hash("B"),
            unreadable: false,
        },
        L::Changed => LocalSide {
            hash: hash("L"),
            unreadable: false,
        },
        L::Unreadable => LocalSide {
            hash: None,
            unreadable: true,
        },
        L::AsRemote => LocalSide {
            hash: hash("R"),
            unreadable: false,
        },
    }
}

fn base(b: B) -> Option<BaseSide> {
    match b {
        B::None => None,
        B::Live => Some(BaseSide {
            version: 5,
            hash: Some("B".into()),
        }),
        B::Tomb => Some(BaseSide {
            version: 5,
            hash: None,
        }),
    }
}

fn remote(r: R, b: B) -> Option<RemoteSide> {
    let at = |version: u64, hash: Option<&str>| {
        Some(RemoteSide {
            version,
            hash: hash.map(str::to_string),
        })
    };
    match r {
        R::None => None,
        R::Same => at(5, if b == B::Tomb { None } else { Some("B") }),
        R::NewerLive => at(9, Some("R")),
        R::NewerTomb => at(9, None),
        R::Older => at(3, Some("X")),
    }
}

#[rustfmt::skip]
const TABLE: &[(L, B, R, Op)] = &[
    // No base.
    (L::Absent,     B::None, R::None,      Unchanged),
    (L::Same,       B::None, R::None,      Push(Create)),
    (L::Changed,    B::None, R::None,      Push(Create)),
    (L::Unreadable, B::None, R::None,      Hold),
    (L::Absent,     B::None, R::Same,      Pull(Create)),
    (L::Same,       B::None, R::Same,      Adopt),          // both created the same
    (L::Changed,    B::None, R::Same,      Merge),          // both created, empty base
    (L::Unreadable, B::None, R::Same,      Hold),
    (L::Absent,     B::None, R::NewerLive, Pull(Create)),
    (L::Same,       B::None, R::NewerLive, Merge),
    (L::Changed,    B::None, R::NewerLive, Merge),
    (L::Unreadable, B::None, R::NewerLive, Hold),
    (L::Absent,     B::None, R::NewerTomb, Unchanged),      // nothing anywhere
    (L::Same,       B::None, R::NewerTomb, Push(Create)),
    (L::Changed,    B::None, R::NewerTomb, Push(Create)),
    (L::Unreadable, B::None, R::NewerTomb, Hold),
    // Live base "B" at version 5.
    (L::Absent,     B::Live, R::None,      Adopt),          // deleted on both (purged)
    (L::Same,       B::Live, R::None,      Pull(Delete)),   // tombstone purged = delete
    (L::Changed,    B::Live, R::None,      Merge),          // edit against delete
    (L::Unreadable, B::Live, R::None,      Hold),
    (L::Absent,     B::Live, R::Same,      Push(Delete)),
    (L::Same,       B::Live, R::Same,      Unchanged),
    (L::Changed,    B::Live, R::Same,      Push(Update)),
    (L::Unreadable, B::Live, R::Same,      Hold),           // never a delete
    (L::Absent,     B::Live, R::NewerLive, Merge),          // delete against edit
    (L::Same,       B::Live, R::NewerLive, Pull(Update)),
    (L::Changed,    B::Live, R::NewerLive, Merge),
    (L::Unreadable, B::Live, R::NewerLive, Hold),
    (L::Absent,     B::Live, R::NewerTomb, Adopt),          // deleted on both
    (L::Same,       B::Live, R::NewerTomb, Pull(Delete)),
    (L::Changed,    B::Live, R::NewerTomb, Merge),          // edit against delete
    (L::Unreadable, B::Live, R::NewerTomb, Hold),
    // Tombstone base at version 5.
    (L::Absent,     B::Tomb, R::None,      Adopt),          // tombstone purged: forget it
    (L::Same,       B::Tomb, R::None,      Push(Create)),
    (L::Changed,    B::Tomb, R::None,      Push(Create)),
    (L::Unreadable, B::Tomb, R::None,      Hold),
    (L::Absent,     B::Tomb, R::Same,      Unchanged),
    (L::Same,       B::Tomb, R::Same,      Push(Create)),
    (L::Changed,    B::Tomb, R::Same,      Push(Create)),
    (L::Unreadable, B::Tomb, R::Same,      Hold),
    (L::Absent,     B::Tomb, R::NewerLive, Pull(Create)),
    (L::Same,       B::Tomb, R::NewerLive, Merge),
    (L::Changed,    B::Tomb, R::NewerLive, Merge),
    (L::Unreadable, B::Tomb, R::NewerLive, Hold),
    (L::Absent,     B::Tomb, R::NewerTomb, Adopt),          // tombstone rewritten
    (L::Same,       B::Tomb, R::NewerTomb, Push(Create)),
    (L::Changed,    B::Tomb, R::NewerTomb, Push(Create)),
    (L::Unreadable, B::Tomb, R::NewerTomb, Hold),
    // Extra rows: both changed to the same content.
    (L::AsRemote,   B::None, R::NewerLive, Adopt),
    (L::AsRemote,   B::Live, R::NewerLive, Adopt),
    (L::AsRemote,   B::Tomb, R::NewerLive, Adopt),
    (L::AsRemote,   B::Live, R::Same,      Push(Update)),
    // Extra rows: a remote older than the base is not a remote change.
    (L::Same,       B::Live, R::Older,     Unchanged),
    (L::Changed,    B::Live, R::Older,     Push(Update)),
    (L::Absent,     B::Tomb, R::Older,     Unchanged),
];

#[test]
fn table_covers_every_cell() {
    let mut cells = Vec::new();
    for l in [L::Absent, L::Same, L::Changed, L::Unreadable] {
        for b in [B::None, B::Live, B::Tomb] {
            for r in [R::None, R::Same, R::NewerLive, R::NewerTomb] {
                cells.push((l, b, r));
            }
        }
    }
    for cell in &cells {
        let rows = TABLE
            .iter()
            .filter(|(l, b, r, _)| (*l, *b, *r) == *cell)
            .count();
        assert_eq!(rows, 1, "{cell:?} appears {rows} times");
    }
    assert_eq!(cells.len(), 48);
}

#[test]
fn plan_entity_table() {
    for &(l, b, r, expected) in TABLE {
        let got = plan_entity(&local(l), base(b).as_ref(), remote(r, b).as_ref());
        assert_eq!(got, expected, "local {l:?}, base {b:?}, remote {r:?}");
    }
}

/// Lost state: no base, local content "B" that the remote held at version 5, before its
/// current record. An old copy, not an edit.
#[test]
fn without_a_base_an_old_copy_of_the_remote_is_no_edit() {
    let earlier: BTreeSet<String> = ["B".to_string(), "A".to_string()].into();
    #[rustfmt::skip]
    let rows: &[(L, R, Op)] = &[
        (L::Same,       R::NewerLive, Pull(Update)),   // was Merge: the old copy won
        (L::Same,       R::NewerTomb, Pull(Delete)),   // was Push(Create): a resurrection
        (L::Changed,    R::NewerLive, Merge),          // not a content the remote had
        (L::Changed,    R::NewerTomb, Push(Create)),
        (L::AsRemote,   R::NewerLive, Adopt),          // the current content
        (L::Absent,     R::NewerLive, Pull(Create)),
        (L::Unreadable, R::NewerLive, Hold),
        (L::Same,       R::None,      Push(Create)),   // nothing on the remote to pull
    ];
    for &(l, r, expected) in rows {
        let remote = remote(r, B::None);
        let got = plan_entity_with_history(&local(l), None, remote.as_ref(), &earlier);
        assert_eq!(got, expected, "local {l:?}, remote {r:?}");
    }
    // Unknown history: as before.
    let none = BTreeSet::new();
    let newer = remote(R::NewerLive, B::None);
    assert_eq!(
        plan_entity_with_history(&local(L::Same), None, newer.as_ref(), &none),
        Merge
    );
    // With a base, history changes nothing.
    for (l, b, r, expected) in TABLE.iter().copied() {
        let got =
            plan_entity_with_history(&local(l), base(b).as_ref(), remote(r, b).as_ref(), &earlier);
        if b != B::None {
            assert_eq!(got, expected, "local {l:?}, base {b:?}, remote {r:?}");
        }
    }
}

#[test]
fn history_is_needed_only_for_local_entities_without_a_base_that_differ() {
    let k = EntityKey::new;
    let side = |h: &str| LocalSide {
        hash: Some(h.into()),
        unreadable: false,
    };
    let at = |version: u64, h: &str| RemoteSide {
        version,
        hash: Some(h.into()),
    };
    let local = BTreeMap::from([
        (k("t", "differs"), side("a")),
        (k("t", "same"), side("b")),
        (k("t", "based"), side("c")),
        (k("t", "local-only"), side("d")),
        (
            k("t", "unreadable"),
            LocalSide {
                hash: None,
                unreadable: true,
            },
        ),
    ]);
    let base = BTreeMap::from([(
        k("t", "based"),
        BaseSide {
            version: 1,
            hash: Some("x".into()),
        },
    )]);
    let remote = BTreeMap::from([
        (k("t", "differs"), at(3, "z")),
        (k("t", "same"), at(3, "b")),
        (k("t", "based"), at(3, "z")),
        (k("t", "unreadable"), at(3, "z")),
    ]);
    let needed: Vec<String> = needs_history(&local, &base, &remote)
        .into_iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(needed, ["t/differs"]);
    let earlier = BTreeMap::from([(k("t", "differs"), BTreeSet::from(["a".to_string()]))]);
    let p = plan_with_history(&local, &base, &remote, &earlier);
    assert_eq!(p.ops[&k("t", "differs")], Pull(Update));
    assert_eq!(plan(&local, &base, &remote).ops[&k("t", "differs")], Merge);
}

#[test]
fn unreadable_local_is_held_even_with_a_hash() {
    let local = LocalSide {
        hash: Some("B".into()),
        unreadable: true,
    };
    for b in [B::None, B::Live, B::Tomb] {
        let got = plan_entity(&local, base(b).as_ref(), remote(R::NewerLive, b).as_ref());
        assert_eq!(got, Hold);
    }
}

#[test]
fn plan_covers_the_union_of_keys_and_summarises_per_collection() {
    let k = EntityKey::new;
    let live = |v: u64, h: &str| (v, Some(h.to_string()));
    let mut locals = BTreeMap::new();
    let mut bases = BTreeMap::new();
    let mut remotes = BTreeMap::new();
    let mut put = |key: EntityKey,
                   l: Option<&str>,
                   b: Option<(u64, Option<String>)>,
                   r: Option<(u64, Option<String>)>| {
        if let Some(h) = l {
            locals.insert(
                key.clone(),
                LocalSide {
                    hash: Some(h.to_string()),
                    unreadable: h == "?",
                },
            );
        }
        if let Some((version, hash)) = b {
            bases.insert(key.clone(), BaseSide { version, hash });
        }
        if let Some((version, hash)) = r {
            remotes.insert(key, RemoteSide { version, hash });
        }
    };
    put(k("tasks", "1"), Some("a"), None, None); // local only: create up
    put(
        k("tasks", "2"),
        None,
        Some(live(1, "b")),
        Some(live(1, "b")),
    ); // deleted locally
    put(k("tasks", "3"), None, None, Some(live(4, "c"))); // remote only: create down
    put(
        k("tasks", "4"),
        Some("x"),
        Some(live(1, "d")),
        Some(live(2, "y")),
    ); // both
    put(
        k("tasks", "5"),
        Some("e"),
        Some(live(1, "e")),
        Some(live(1, "e")),
    ); // same
    put(
        k("notes", "1"),
        Some("f2"),
        Some(live(2, "f")),
        Some(live(2, "f")),
    ); // update up
    put(
        k("notes", "2"),
        Some("g"),
        Some(live(2, "g")),
        Some(live(3, "g2")),
    ); // update down
    put(
        k("notes", "3"),
        Some("h"),
        Some(live(2, "h")),
        Some((3, None)),
    ); // delete down
    put(
        k("notes", "4"),
        Some("?"),
        Some(live(2, "i")),
        Some(live(2, "i")),
    ); // unreadable
    put(k("notes", "5"), None, None, Some((3, None))); // remote tombstone only

    let plan = plan(&locals, &bases, &remotes);
    let ops: Vec<(String, Op)> = plan
        .ops
        .iter()
        .map(|(key, op)| (key.to_string(), *op))
        .collect();
    let expected: Vec<(String, Op)> = [
        ("notes/1", Push(Update)),
        ("notes/2", Pull(Update)),
        ("notes/3", Pull(Delete)),
        ("notes/4", Hold),
        ("notes/5", Unchanged),
        ("tasks/1", Push(Create)),
        ("tasks/2", Push(Delete)),
        ("tasks/3", Pull(Create)),
        ("tasks/4", Merge),
        ("tasks/5", Unchanged),
    ]
    .into_iter()
    .map(|(key, op)| (key.to_string(), op))
    .collect();
    assert_eq!(ops, expected);

    let summary = plan.summary();
    assert_eq!(summary.len(), 2);
    assert_eq!(
        summary["notes"],
        Summary {
            up: Counts {
                new: 0,
                updated: 1,
                deleted: 0
            },
            down: Counts {
                new: 0,
                updated: 1,
                deleted: 1
            },
            unchanged: 1,
            conflicts: 0,
            held: 1,
        }
    );
    assert_eq!(
        summary["tasks"],
        Summary {
            up: Counts {
                new: 1,
                updated: 0,
                deleted: 1
            },
            down: Counts {
                new: 1,
                updated: 0,
                deleted: 0
            },
            unchanged: 1,
            conflicts: 1,
            held: 0,
        }
    );
}

#[test]
fn empty_plan_has_an_empty_summary() {
    let empty = plan(&BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new());
    assert!(empty.ops.is_empty());
    assert!(empty.summary().is_empty());
}

#[test]
fn ops_and_summaries_serialise_for_json_output() {
    let ops = [Unchanged, Push(Create), Pull(Delete), Merge, Adopt, Hold];
    let json: Vec<String> = ops
        .iter()
        .map(|op| serde_json::to_string(op).unwrap())
        .collect();
    assert_eq!(
        json,
        [
            r#""unchanged""#,
            r#"{"push":"create"}"#,
            r#"{"pull":"delete"}"#,
            r#""merge""#,
            r#""adopt""#,
            r#""hold""#
        ]
    );
    let summary = serde_json::to_value(Summary::default()).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "up": {"new": 0, "updated": 0, "deleted": 0},
            "down": {"new": 0, "updated": 0, "deleted": 0},
            "unchanged": 0, "conflicts": 0, "held": 0
        })
    );
}
