//! What one entity may be, and the writes [`super::apply`] refuses on their own.
//!
//! An entity that cannot be stored or synced here is *held*: never written, never pushed, and
//! never taken as deleted, while the rest of its collection (and every other collection) syncs.

use serde_json::{Map, Value};

use crate::ids::IdError;

/// The deepest nesting of objects and arrays an entity may have to be synced (the entity's own
/// object is level 1, `{"a": {"b": [1]}}` is 3 levels deep). serde_json reads at most 127
/// levels, and the remote's files put each entity 3 levels down (`{"records": [{"data": …}]}`),
/// so an entity of 125 levels read here would make a delta no device could read; 100 leaves
/// room for what the format may wrap around entities later. Deeper entities found locally are
/// held; deeper records from the remote are not written ([`Refusal::TooDeep`]).
pub const MAX_ENTITY_DEPTH: usize = 100;

/// The deepest nesting serde_json reads (its recursion limit of 128, less one): a document
/// deeper than this cannot be read back.
pub(super) const READABLE_DEPTH: usize = 127;

/// A write that [`super::apply`] did not carry out, on its own: nothing was written for that
/// entity, its id is in [`super::ApplyReport::skipped`] too, and the rest of the batch went in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The id cannot be the name of a file in a `dir` collection (too long, empty).
    #[error("entity {id:?} cannot be a file name in this folder: {source}; entity held")]
    FileName {
        /// The entity id.
        id: String,
        /// Why not.
        #[source]
        source: IdError,
    },
    /// The entity is not a JSON object (a record from another client, say).
    #[error("entity {id:?} is a JSON {found}, not an object; entity held")]
    NotAnObject {
        /// The entity id.
        id: String,
        /// What it is: `array`, `number`…
        found: &'static str,
    },
    /// The entity is nested deeper than [`MAX_ENTITY_DEPTH`], or than the document holding the
    /// collection leaves room for.
    #[error(
        "entity {id:?} is nested {depth} levels deep, more than the {max} that fit here; entity held"
    )]
    TooDeep {
        /// The entity id.
        id: String,
        /// Its depth.
        depth: usize,
        /// The most that fits.
        max: usize,
    },
    /// An id a `file` collection cannot hold as it is: empty, or disagreeing with the
    /// entity's id field in an array.
    #[error("entity {id:?}: {reason}; entity held")]
    BadId {
        /// The entity id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

impl Refusal {
    /// The entity id concerned.
    pub fn id(&self) -> &str {
        match self {
            Refusal::FileName { id, .. }
            | Refusal::NotAnObject { id, .. }
            | Refusal::TooDeep { id, .. }
            | Refusal::BadId { id, .. } => id,
        }
    }
}

/// How deeply `v` nests objects and arrays (a scalar is 0, `{}` is 1). Iterative: any depth.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((v, level)) = stack.pop() {
        match v {
            Value::Object(m) => {
                deepest = deepest.max(level);
                stack.extend(m.values().map(|c| (c, level + 1)));
            }
            Value::Array(a) => {
                deepest = deepest.max(level);
                stack.extend(a.iter().map(|c| (c, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// The most levels an entity may have when the document around it already takes `around`
/// levels (0 for a file of its own).
fn max_depth(around: usize) -> usize {
    MAX_ENTITY_DEPTH.min(READABLE_DEPTH.saturating_sub(around))
}

/// Checks the value of a `Put` of `id`, stored `around` levels down its file: an object, not
/// nested too deep.
pub(super) fn check_value(id: &str, value: &Value, around: usize) -> Result<(), Refusal> {
    if !value.is_object() {
        return Err(Refusal::NotAnObject {
            id: id.to_owned(),
            found: super::type_name(value),
        });
    }
    let depth = depth(value);
    let max = max_depth(around);
    if depth > max {
        return Err(Refusal::TooDeep {
            id: id.to_owned(),
            depth,
            max,
        });
    }
    Ok(())
}

/// The message of a scan problem for an entity read here that is nested too deep to be
/// synced, if it is.
pub(super) fn too_deep_to_sync(entity: &Map<String, Value>) -> Option<String> {
    let depth = 1 + entity.values().map(depth).max().unwrap_or(0);
    (depth > MAX_ENTITY_DEPTH).then(|| {
        format!(
            "nested {depth} levels deep, more than the {MAX_ENTITY_DEPTH} deltasync syncs; entity held"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": 1, "b": [1, {"c": []}]})), 4);
        let mut v = json!({});
        for _ in 1..500 {
            v = json!([v]);
        }
        assert_eq!(depth(&v), 500);
    }

    #[test]
    fn what_serde_json_reads_is_what_readable_depth_says() {
        let text = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(serde_json::from_str::<Value>(&text(READABLE_DEPTH)).is_ok());
        assert!(serde_json::from_str::<Value>(&text(READABLE_DEPTH + 1)).is_err());
    }

    #[test]
    fn values_are_checked_against_the_room_left() {
        assert!(check_value("a", &json!({"x": [1]}), 0).is_ok());
        assert!(matches!(
            check_value("a", &json!([1]), 0),
            Err(Refusal::NotAnObject { found: "array", .. })
        ));
        let mut v = json!({});
        for _ in 1..MAX_ENTITY_DEPTH {
            v = json!({ "d": v });
        }
        assert!(check_value("a", &v, 0).is_ok());
        assert!(check_value("a", &v, READABLE_DEPTH - MAX_ENTITY_DEPTH).is_ok());
        let e = check_value("a", &v, READABLE_DEPTH - MAX_ENTITY_DEPTH + 1).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::TooDeep {
                    depth: 100,
                    max: 99,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.id(), "a");
        assert!(too_deep_to_sync(v.as_object().unwrap()).is_none());
        let deeper = json!({ "d": v });
        let message = too_deep_to_sync(deeper.as_object().unwrap()).unwrap();
        assert!(message.contains("101 levels"), "{message}");
        assert!(matches!(
            check_value("a", &deeper, 0),
            Err(Refusal::TooDeep {
                depth: 101,
                max: 100,
                ..
            })
        ));
    }
}
