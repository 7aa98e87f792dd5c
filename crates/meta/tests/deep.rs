//! Deltas and snapshots nested past serde_json's recursion limit are read (up to
//! `MAX_NESTING`), so that one deep record does not make the whole file unreadable.

use deltasync_meta::{MAX_NESTING, parse_deep};
use serde_json::Value;

fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn past_the_recursion_limit_is_read() {
    assert!(serde_json::from_str::<Value>(&nested(300)).is_err());
    let v: Value = parse_deep(nested(300).as_bytes()).unwrap();
    let mut depth = 0;
    let mut cur = &v;
    while let Some(inner) = cur.as_array().and_then(|a| a.first()) {
        depth += 1;
        cur = inner;
    }
    assert_eq!(depth, 299);
}

#[test]
fn past_the_nesting_cap_is_refused_with_the_recursion_error() {
    let e = parse_deep::<Value>(nested(MAX_NESTING + 1).as_bytes()).unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
    assert!(parse_deep::<Value>(nested(MAX_NESTING).as_bytes()).is_ok());
}

#[test]
fn brackets_inside_strings_do_not_count() {
    let text = format!(
        "{{\"s\": \"{}\\\"{}\", \"d\": {}}}",
        "[".repeat(5000),
        "{".repeat(5000),
        nested(200)
    );
    let v: Value = parse_deep(text.as_bytes()).unwrap();
    assert!(v["s"].as_str().unwrap().starts_with("[[["));
}

#[test]
fn trailing_garbage_is_still_an_error() {
    let text = format!("{} x", nested(200));
    assert!(parse_deep::<Value>(text.as_bytes()).is_err());
}
