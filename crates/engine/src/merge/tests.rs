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

// ---- properties ----

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

fn leaf() -> impl proptest::strategy::Strategy<Value = Value> {
    proptest::prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0i64..3).prop_map(|n| json!(n)),
        prop::sample::select(vec!["x", "y"]).prop_map(|s| json!(s)),
        prop::collection::vec(0i64..2, 0..3).prop_map(|v| json!(v)),
    ]
}

fn object_of(
    inner: impl proptest::strategy::Strategy<Value = Value>,
) -> impl proptest::strategy::Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..4).prop_map(|pairs| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    })
}

fn value() -> impl proptest::strategy::Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        proptest::prop_oneof![inner.clone(), object_of(inner)]
    })
}

/// A tiny deterministic generator for mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn leaf(&mut self) -> Value {
        match self.next(5) {
            0 => Value::Null,
            1 => json!(self.next(2) == 0),
            2 => json!(self.next(3)),
            3 => json!(["x", "y"][self.next(2) as usize]),
            _ => json!({ (KEYS[self.next(4) as usize]): self.next(3) }),
        }
    }
}

/// Some edits of `base`: keys kept, deleted, replaced, recursed into or added.
fn mutate(base: &Value, rng: &mut Rng) -> Value {
    let Some(map) = base.as_object() else {
        return if rng.next(2) == 0 {
            base.clone()
        } else {
            rng.leaf()
        };
    };
    let mut out = Map::new();
    for (k, v) in map {
        match rng.next(5) {
            0 => {}
            1 => {
                out.insert(k.clone(), rng.leaf());
            }
            2 => {
                out.insert(k.clone(), mutate(v, rng));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if rng.next(3) == 0 {
        out.insert(KEYS[rng.next(4) as usize].to_string(), rng.leaf());
    }
    Value::Object(out)
}

/// How a side is derived from the base.
fn derive(base: &Option<Value>, mode: u8, seed: u64, random: &Option<Value>) -> Option<Value> {
    let mut rng = Rng(seed | 1);
    match (mode, base) {
        (0, _) => base.clone(),
        (1, _) => None,
        (2, _) => random.clone(),
        (_, Some(b)) => Some(mutate(b, &mut rng)),
        (_, None) => random.clone(),
    }
}

fn entity() -> impl proptest::strategy::Strategy<Value = Option<Value>> {
    prop::option::weighted(0.85, object_of(value()))
}

/// (base, local, remote, local clock, remote clock, local device, remote device)
type Scenario = (
    Option<Value>,
    Option<Value>,
    Option<Value>,
    Hlc,
    Hlc,
    &'static str,
    &'static str,
);

fn scenario() -> impl proptest::strategy::Strategy<Value = Scenario> {
    let clock = (0u64..3, 0u32..2).prop_map(|(ms, counter)| Hlc { ms, counter });
    let device = prop::sample::select(vec!["dev-a", "dev-b"]);
    (
        entity(),
        (0u8..6, any::<u64>(), entity()),
        (0u8..6, any::<u64>(), entity()),
        clock.clone(),
        clock,
        device.clone(),
        device,
    )
        .prop_map(|(base, (lm, ls, lr), (rm, rs, rr), lc, rc, ld, rd)| {
            let local = derive(&base, lm, ls, &lr);
            let remote = derive(&base, rm, rs, &rr);
            (base, local, remote, lc, rc, ld, rd)
        })
}

fn sorted(conflicts: &[FieldConflict]) -> Vec<String> {
    let mut out: Vec<String> = conflicts
        .iter()
        .map(|c| String::from_utf8(canonical_json(&serde_json::to_value(c).unwrap())).unwrap())
        .collect();
    out.sort();
    out
}

fn at<'v>(value: Option<&'v Value>, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(value?, |v, key| v.as_object()?.get(key))
}

fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

/// Whether `leaf` is what `holder` has at `path` (an empty object is held by any object).
fn holds(holder: Option<&Value>, path: &[String], leaf: &Value) -> bool {
    match (at(holder, path), leaf) {
        (Some(Value::Object(_)), Value::Object(m)) if m.is_empty() => true,
        (found, _) => found == Some(leaf),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_is_symmetric(s in scenario()) {
        let (base, l, r, lc, rc, ld, rd) = s;
        for strategy in [Strategy::Merge, Strategy::LatestWins] {
            let ab = merge3(
                base.as_ref(),
                Side { value: l.as_ref(), clock: lc, device: ld },
                Side { value: r.as_ref(), clock: rc, device: rd },
                strategy,
            );
            let ba = merge3(
                base.as_ref(),
                Side { value: r.as_ref(), clock: rc, device: rd },
                Side { value: l.as_ref(), clock: lc, device: ld },
                strategy,
            );
            prop_assert_eq!(&ab.value, &ba.value, "{}", strategy);
            prop_assert_eq!(sorted(&ab.conflicts), sorted(&ba.conflicts), "{}", strategy);
        }
    }

    #[test]
    fn no_value_is_lost(s in scenario()) {
        let (base, l, r, lc, rc, ld, rd) = s;
        for strategy in Strategy::ALL {
            let out = merge3(
                base.as_ref(),
                Side { value: l.as_ref(), clock: lc, device: ld },
                Side { value: r.as_ref(), clock: rc, device: rd },
                strategy,
            );
            for changed in [&l, &r].into_iter().flatten() {
                let mut found = Vec::new();
                leaves(changed, &mut Vec::new(), &mut found);
                for (path, leaf) in found {
                    if holds(base.as_ref(), &path, &leaf) {
                        continue;
                    }
                    let kept = holds(out.value.as_ref(), &path, &leaf)
                        || out.conflicts.iter().any(|c| {
                            path.starts_with(&c.field) && {
                                let rest = &path[c.field.len()..];
                                holds(Some(&c.kept), rest, &leaf)
                                    || holds(Some(&c.lost), rest, &leaf)
                            }
                        });
                    prop_assert!(
                        kept,
                        "{strategy}: {leaf} at {path:?} lost; got {:?}",
                        out
                    );
                }
            }
        }
    }

    #[test]
    fn merging_a_side_with_itself_is_that_side(
        base in entity(),
        x in entity(),
        c1 in (0u64..3).prop_map(hlc),
        c2 in (0u64..3).prop_map(hlc),
    ) {
        for strategy in Strategy::ALL {
            let out = merge3(
                base.as_ref(),
                Side { value: x.as_ref(), clock: c1, device: "dev-a" },
                Side { value: x.as_ref(), clock: c2, device: "dev-b" },
                strategy,
            );
            prop_assert_eq!(&out.value, &x);
            prop_assert!(out.conflicts.is_empty());
        }
    }

    #[test]
    fn a_side_equal_to_base_yields_the_other(base in entity(), x in entity()) {
        for strategy in Strategy::ALL {
            let out = merge3(
                base.as_ref(),
                Side { value: base.as_ref(), clock: hlc(9), device: "dev-a" },
                Side { value: x.as_ref(), clock: hlc(1), device: "dev-b" },
                strategy,
            );
            prop_assert_eq!(&out.value, &x);
            prop_assert!(out.conflicts.is_empty());
        }
    }
}
