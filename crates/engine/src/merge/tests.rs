//! Tests of the three-way merge: the case table and its properties.

use super::*;
use proptest::prelude::{ProptestConfig, any, prop, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::{Just, Strategy as _};
use serde_json::json;

fn hlc(ms: u64) -> Hlc {
    Hlc { ms, counter: 0 }
}

/// A test side: value, clock (ms), device.
type S = (Option<Value>, u64, &'static str);

fn side(s: &S) -> Side<'_> {
    Side {
        value: s.0.as_ref(),
        clock: hlc(s.1),
        device: s.2,
    }
}

fn fc(
    field: &[&str],
    kind: ConflictKind,
    kept: Value,
    kept_by: &str,
    lost: Value,
    lost_by: &str,
) -> FieldConflict {
    FieldConflict {
        field: field.iter().map(|f| f.to_string()).collect(),
        kind,
        kept,
        kept_by: kept_by.to_string(),
        lost,
        lost_by: lost_by.to_string(),
        // Filled in from the case's sides by `with_clocks`.
        kept_at: Hlc::default(),
        lost_at: Hlc::default(),
    }
}

/// The expected conflicts of a case with each value's clock: that of the side whose device
/// wrote it.
fn with_clocks(c: &Case) -> Vec<FieldConflict> {
    let clock_of = |device: &str| {
        if device == c.local.2 {
            hlc(c.local.1)
        } else {
            assert_eq!(device, c.remote.2, "{}: a device of neither side", c.name);
            hlc(c.remote.1)
        }
    };
    c.conflicts
        .iter()
        .map(|f| FieldConflict {
            kept_at: clock_of(&f.kept_by),
            lost_at: clock_of(&f.lost_by),
            ..f.clone()
        })
        .collect()
}

use ConflictKind::{DeleteEdit, Field, Manual};

struct Case {
    name: &'static str,
    base: Option<Value>,
    local: S,
    remote: S,
    strategy: Strategy,
    value: Option<Value>,
    conflicts: Vec<FieldConflict>,
}

#[allow(clippy::too_many_arguments)]
fn case(
    name: &'static str,
    base: Option<Value>,
    local: S,
    remote: S,
    strategy: Strategy,
    value: Option<Value>,
    conflicts: Vec<FieldConflict>,
) -> Case {
    Case {
        name,
        base,
        local,
        remote,
        strategy,
        value,
        conflicts,
    }
}

fn cases() -> Vec<Case> {
    use Strategy::{LatestWins, LocalWins, Merge, RemoteWins};
    let base = json!({"title": "t", "done": false, "n": 1});
    vec![
        case(
            "both sides equal up to key order: no conflict",
            Some(base.clone()),
            (Some(json!({"title": "x", "done": true})), 1, "a"),
            (Some(json!({"done": true, "title": "x"})), 2, "b"),
            Merge,
            Some(json!({"title": "x", "done": true})),
            vec![],
        ),
        case(
            "only remote changed: remote taken even if older",
            Some(base.clone()),
            (Some(json!({"n": 1, "done": false, "title": "t"})), 9, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 1, "b"),
            Merge,
            Some(json!({"title": "r", "done": false, "n": 1})),
            vec![],
        ),
        case(
            "only local changed: local taken",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(base.clone()), 9, "b"),
            Merge,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![],
        ),
        case(
            "different fields changed: both kept",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(json!({"title": "t", "done": true, "n": 1})), 2, "b"),
            Merge,
            Some(json!({"title": "l", "done": true, "n": 1})),
            vec![],
        ),
        case(
            "same field, remote later: remote wins, local is a conflict",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 2, "b"),
            Merge,
            Some(json!({"title": "r", "done": false, "n": 1})),
            vec![fc(&["title"], Field, json!("r"), "b", json!("l"), "a")],
        ),
        case(
            "same field, local later: local wins",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 3, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 2, "b"),
            Merge,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(&["title"], Field, json!("l"), "a", json!("r"), "b")],
        ),
        case(
            "same clock: the greater device id wins",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 2, "zed"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 2, "abe"),
            Merge,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(&["title"], Field, json!("l"), "zed", json!("r"), "abe")],
        ),
        case(
            "nested objects merge per key",
            Some(json!({"p": {"x": 1, "y": 1}})),
            (Some(json!({"p": {"x": 2, "y": 1}})), 1, "a"),
            (Some(json!({"p": {"x": 1, "y": 2}})), 2, "b"),
            Merge,
            Some(json!({"p": {"x": 2, "y": 2}})),
            vec![],
        ),
        case(
            "nested conflict names the full path",
            Some(json!({"p": {"x": 1, "y": 1}})),
            (Some(json!({"p": {"x": 2, "y": 5}})), 2, "a"),
            (Some(json!({"p": {"x": 3, "y": 1}})), 1, "b"),
            Merge,
            Some(json!({"p": {"x": 2, "y": 5}})),
            vec![fc(&["p", "x"], Field, json!(2), "a", json!(3), "b")],
        ),
        case(
            "arrays are whole values",
            Some(json!({"tags": [1]})),
            (Some(json!({"tags": [1, 2]})), 1, "a"),
            (Some(json!({"tags": [1, 3]})), 2, "b"),
            Merge,
            Some(json!({"tags": [1, 3]})),
            vec![fc(&["tags"], Field, json!([1, 3]), "b", json!([1, 2]), "a")],
        ),
        case(
            "object against scalar: last writer wins",
            Some(json!({"p": {"x": 1}})),
            (Some(json!({"p": {"x": 2}})), 1, "a"),
            (Some(json!({"p": "gone"})), 2, "b"),
            Merge,
            Some(json!({"p": "gone"})),
            vec![fc(&["p"], Field, json!("gone"), "b", json!({"x": 2}), "a")],
        ),
        case(
            "key deleted locally, changed remotely: the change survives",
            Some(base.clone()),
            (Some(json!({"done": false, "n": 1})), 9, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 1, "b"),
            Merge,
            Some(json!({"title": "r", "done": false, "n": 1})),
            vec![fc(&["title"], Field, json!("r"), "b", Value::Null, "a")],
        ),
        case(
            "key changed locally, deleted remotely: the change survives",
            Some(json!({"p": {"x": 1}, "q": 1})),
            (Some(json!({"p": {"x": 2}, "q": 1})), 1, "a"),
            (Some(json!({"q": 1})), 9, "b"),
            Merge,
            Some(json!({"p": {"x": 2}, "q": 1})),
            vec![fc(&["p"], Field, json!({"x": 2}), "a", Value::Null, "b")],
        ),
        case(
            "key deleted on both sides: gone, no conflict",
            Some(base.clone()),
            (Some(json!({"done": true, "n": 1})), 1, "a"),
            (Some(json!({"done": false, "n": 2})), 2, "b"),
            Merge,
            Some(json!({"done": true, "n": 2})),
            vec![],
        ),
        case(
            "keys added on each side are kept; same value added twice is no conflict",
            Some(json!({"n": 1})),
            (Some(json!({"n": 1, "a": 1, "s": "x"})), 1, "a"),
            (Some(json!({"n": 1, "b": 2, "s": "x"})), 2, "b"),
            Merge,
            Some(json!({"n": 1, "a": 1, "s": "x", "b": 2})),
            vec![],
        ),
        case(
            "key added on both sides with different values: last writer wins",
            Some(json!({"n": 1})),
            (Some(json!({"n": 1, "s": "l"})), 2, "a"),
            (Some(json!({"n": 1, "s": "r"})), 1, "b"),
            Merge,
            Some(json!({"n": 1, "s": "l"})),
            vec![fc(&["s"], Field, json!("l"), "a", json!("r"), "b")],
        ),
        case(
            "entity deleted locally, edited remotely: the edit survives",
            Some(base.clone()),
            (None, 9, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 1, "b"),
            Merge,
            Some(json!({"title": "r", "done": false, "n": 1})),
            vec![fc(
                &[],
                DeleteEdit,
                json!({"title": "r", "done": false, "n": 1}),
                "b",
                Value::Null,
                "a",
            )],
        ),
        case(
            "entity edited locally, deleted remotely later: the edit survives",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (None, 9, "b"),
            Merge,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                DeleteEdit,
                json!({"title": "l", "done": false, "n": 1}),
                "a",
                Value::Null,
                "b",
            )],
        ),
        case(
            "deleted on both sides: deleted, no conflict",
            Some(base.clone()),
            (None, 1, "a"),
            (None, 2, "b"),
            Merge,
            None,
            vec![],
        ),
        case(
            "deleted locally, remote unchanged: the deletion is taken",
            Some(base.clone()),
            (None, 1, "a"),
            (Some(base.clone()), 2, "b"),
            Merge,
            None,
            vec![],
        ),
        case(
            "no base, one side only: kept",
            None,
            (None, 1, "a"),
            (Some(json!({"title": "r"})), 2, "b"),
            Merge,
            Some(json!({"title": "r"})),
            vec![],
        ),
        case(
            "no base, both sides: union of keys, differing keys conflict",
            None,
            (Some(json!({"title": "l", "a": 1, "p": {"x": 1}})), 1, "a"),
            (Some(json!({"title": "r", "b": 2, "p": {"y": 2}})), 2, "b"),
            Merge,
            Some(json!({"title": "r", "a": 1, "p": {"x": 1, "y": 2}, "b": 2})),
            vec![fc(&["title"], Field, json!("r"), "b", json!("l"), "a")],
        ),
        case(
            "no base, disjoint keys: the union",
            None,
            (Some(json!({"a": 1})), 1, "a"),
            (Some(json!({"b": 2})), 2, "b"),
            Merge,
            Some(json!({"a": 1, "b": 2})),
            vec![],
        ),
        case(
            "non-object entities: last writer wins on the whole",
            Some(json!([1])),
            (Some(json!([2])), 1, "a"),
            (Some(json!([3])), 2, "b"),
            Merge,
            Some(json!([3])),
            vec![fc(&[], Field, json!([3]), "b", json!([2]), "a")],
        ),
        case(
            "latest-wins: whole later entity, no field merge",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(json!({"title": "t", "done": true, "n": 1})), 2, "b"),
            LatestWins,
            Some(json!({"title": "t", "done": true, "n": 1})),
            vec![fc(
                &[],
                Field,
                json!({"title": "t", "done": true, "n": 1}),
                "b",
                json!({"title": "l", "done": false, "n": 1}),
                "a",
            )],
        ),
        case(
            "latest-wins: same clock, device breaks the tie",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 2, "b"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 2, "a"),
            LatestWins,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                Field,
                json!({"title": "l", "done": false, "n": 1}),
                "b",
                json!({"title": "r", "done": false, "n": 1}),
                "a",
            )],
        ),
        case(
            "latest-wins: a later deletion wins, the edit is a conflict",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (None, 2, "b"),
            LatestWins,
            None,
            vec![fc(
                &[],
                Field,
                Value::Null,
                "b",
                json!({"title": "l", "done": false, "n": 1}),
                "a",
            )],
        ),
        case(
            "latest-wins: a later edit wins over a deletion",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 3, "a"),
            (None, 2, "b"),
            LatestWins,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                DeleteEdit,
                json!({"title": "l", "done": false, "n": 1}),
                "a",
                Value::Null,
                "b",
            )],
        ),
        case(
            "remote-wins: remote's whole entity even when local is later",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 9, "a"),
            (Some(json!({"title": "t", "done": true, "n": 1})), 1, "b"),
            RemoteWins,
            Some(json!({"title": "t", "done": true, "n": 1})),
            vec![fc(
                &[],
                Field,
                json!({"title": "t", "done": true, "n": 1}),
                "b",
                json!({"title": "l", "done": false, "n": 1}),
                "a",
            )],
        ),
        case(
            "remote-wins: a remote deletion wins",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 9, "a"),
            (None, 1, "b"),
            RemoteWins,
            None,
            vec![fc(
                &[],
                Field,
                Value::Null,
                "b",
                json!({"title": "l", "done": false, "n": 1}),
                "a",
            )],
        ),
        case(
            "local-wins: local's whole entity even when remote is later",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(json!({"title": "t", "done": true, "n": 1})), 9, "b"),
            LocalWins,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                Field,
                json!({"title": "l", "done": false, "n": 1}),
                "a",
                json!({"title": "t", "done": true, "n": 1}),
                "b",
            )],
        ),
        case(
            "local-wins: local edit over a remote deletion",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (None, 9, "b"),
            LocalWins,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                DeleteEdit,
                json!({"title": "l", "done": false, "n": 1}),
                "a",
                Value::Null,
                "b",
            )],
        ),
        case(
            "manual: local kept, remote queued",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 9, "b"),
            Strategy::Manual,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![fc(
                &[],
                Manual,
                json!({"title": "l", "done": false, "n": 1}),
                "a",
                json!({"title": "r", "done": false, "n": 1}),
                "b",
            )],
        ),
        case(
            "manual: a local deletion is kept too",
            Some(base.clone()),
            (None, 1, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 9, "b"),
            Strategy::Manual,
            None,
            vec![fc(
                &[],
                Manual,
                Value::Null,
                "a",
                json!({"title": "r", "done": false, "n": 1}),
                "b",
            )],
        ),
        case(
            "manual: only remote changed is no conflict",
            Some(base.clone()),
            (Some(base.clone()), 1, "a"),
            (Some(json!({"title": "r", "done": false, "n": 1})), 9, "b"),
            Strategy::Manual,
            Some(json!({"title": "r", "done": false, "n": 1})),
            vec![],
        ),
        case(
            "local-wins: only remote changed is taken without conflict",
            Some(base.clone()),
            (Some(base.clone()), 9, "a"),
            (None, 1, "b"),
            LocalWins,
            None,
            vec![],
        ),
        case(
            "remote-wins: only local changed is taken without conflict",
            Some(base.clone()),
            (Some(json!({"title": "l", "done": false, "n": 1})), 1, "a"),
            (Some(base.clone()), 9, "b"),
            RemoteWins,
            Some(json!({"title": "l", "done": false, "n": 1})),
            vec![],
        ),
    ]
}

#[test]
fn case_table() {
    for c in cases() {
        let out = merge3(c.base.as_ref(), side(&c.local), side(&c.remote), c.strategy);
        assert_eq!(out.value, c.value, "{}: value", c.name);
        assert_eq!(out.conflicts, with_clocks(&c), "{}: conflicts", c.name);
    }
}

#[test]
fn merged_keys_follow_local_order_then_new_remote_keys() {
    let base = json!({"a": 0, "b": 0, "c": 0});
    let local = json!({"c": 1, "b": 0, "a": 0});
    let remote = json!({"z": 1, "a": 2, "b": 0, "c": 0, "y": 1});
    let out = merge3(
        Some(&base),
        side(&(Some(local), 1, "l")),
        side(&(Some(remote), 2, "r")),
        Strategy::Merge,
    );
    let value = out.value.expect("merged");
    let keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["c", "b", "a", "z", "y"]);
    assert_eq!(value, json!({"a": 2, "b": 0, "c": 1, "y": 1, "z": 1}));
}

#[test]
fn strategy_names_round_trip() {
    assert_eq!(Strategy::default(), Strategy::Merge);
    for s in Strategy::ALL {
        assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            Value::String(s.to_string())
        );
        assert_eq!(
            serde_json::from_value::<Strategy>(Value::String(s.to_string())).unwrap(),
            s
        );
    }
    assert_eq!(Strategy::LatestWins.to_string(), "latest-wins");
}

#[test]
fn unknown_strategy_lists_the_valid_names() {
    let err = "latest_wins".parse::<Strategy>().unwrap_err();
    assert_eq!(err.given, "latest_wins");
    let msg = err.to_string();
    assert!(msg.contains("`latest_wins`"), "{msg}");
    for s in Strategy::ALL {
        assert!(msg.contains(s.as_str()), "{msg} lacks {s}");
    }
}

/// The merge's properties (proptest).
mod properties;
