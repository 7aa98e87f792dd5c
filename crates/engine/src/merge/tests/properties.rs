//! Properties of the three-way merge over random JSON values and edits: nothing a side
//! changed is lost without a receipt, and the result does not depend on which side is local.

use super::*;

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
