//! An entity's numbers arrive on every other device exactly as they were written (issue 10,
//! "numbers are rounded"): through a delta, the local state, a merge, a snapshot, and into the
//! local files; and `verify --deep` tells a rounded number from the original.

mod support;

use std::sync::Arc;

use deltasync_engine::maintenance::{CompactOptions, VerifyOptions, diff_values};
use deltasync_engine::progress::NoProgress;
use deltasync_remote::MemoryRemote;
use serde_json::Value;
use support::Device;

/// (field, number as the app wrote it, number as every device's file has it afterwards).
/// Everything is kept as written except the spelling of an exponent, which JSON parsing
/// writes one way: lowercase `e` with a sign (docs/format.md).
const NUMBERS: &[(&str, &str, &str)] = &[
    (
        "big",
        "123456789012345678901234567890",
        "123456789012345678901234567890",
    ),
    (
        "negBig",
        "-123456789012345678901234567890",
        "-123456789012345678901234567890",
    ),
    ("aboveU64", "18446744073709551617", "18446744073709551617"),
    (
        "long",
        "0.1000000000000000055511151231257827",
        "0.1000000000000000055511151231257827",
    ),
    ("exponent", "1e2", "1e+2"),
    ("exponentSigned", "2.5E-7", "2.5e-7"),
    ("negZero", "-0", "-0"),
    ("negZeroFloat", "-0.0", "-0.0"),
    ("oneFloat", "1.0", "1.0"),
    ("trailingZero", "1.50", "1.50"),
];

/// The entity's file as an app writes it, with `title` and `done` as given.
fn entity(title: &str, done: bool) -> String {
    let mut text = format!("{{\n  \"title\": \"{title}\",\n  \"done\": {done}");
    for (field, written, _) in NUMBERS {
        text.push_str(&format!(",\n  \"{field}\": {written}"));
    }
    let list: Vec<&str> = NUMBERS.iter().map(|n| n.1).collect();
    text.push_str(&format!(",\n  \"list\": [{}]\n}}\n", list.join(", ")));
    text
}

fn write_raw(d: &Device, id: &str, text: &str) {
    std::fs::create_dir_all(d.path(id).parent().unwrap()).unwrap();
    let tmp = d.path(id).with_file_name(format!(".{id}.app-tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, d.path(id)).unwrap();
}

fn read_raw(d: &Device, id: &str) -> String {
    std::fs::read_to_string(d.path(id)).unwrap()
}

/// The text of the scalar value of `"field"` in a file.
fn value_text<'a>(text: &'a str, field: &str) -> &'a str {
    let key = format!("\"{field}\"");
    let at = text
        .find(&key)
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        + key.len();
    let rest = text[at..]
        .trim_start()
        .strip_prefix(':')
        .unwrap()
        .trim_start();
    let end = rest
        .find(|c: char| c == ',' || c == '}' || c == ']' || c.is_whitespace())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The texts of the numbers of `"list"` in a file.
fn list_texts(text: &str) -> Vec<String> {
    let at = text.find("\"list\"").unwrap();
    let open = at + text[at..].find('[').unwrap();
    let close = open + text[open..].find(']').unwrap();
    text[open + 1..close]
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

fn assert_exact(what: &str, text: &str) {
    for (field, written, kept) in NUMBERS {
        assert_eq!(
            value_text(text, field),
            *kept,
            "{what}: {field} was written as {written}; file:\n{text}"
        );
    }
    let want: Vec<&str> = NUMBERS.iter().map(|n| n.2).collect();
    assert_eq!(list_texts(text), want, "{what}: file:\n{text}");
}

fn pair() -> (Arc<MemoryRemote>, Device, Device) {
    let remote = Arc::new(MemoryRemote::with_seed(7));
    let a = Device::new(remote.clone(), "a");
    let b = Device::new(remote.clone(), "b");
    (remote, a, b)
}

#[test]
fn numbers_arrive_on_the_other_device_as_written() {
    let (_, mut a, mut b) = pair();
    write_raw(&a, "t1", &entity("numbers", false));
    assert_eq!(a.sync().committed, Some(1));
    let rb = b.sync();
    assert_eq!(rb.collections["tasks"].down.new, 1);
    assert_exact("b after the pull", &read_raw(&b, "t1"));
    // Nothing changed on either side: the texts read back are the texts stored.
    assert_eq!(b.sync().committed, None);
    assert_eq!(a.sync().committed, None);
    assert_eq!(
        read_raw(&a, "t1"),
        entity("numbers", false),
        "a's file is left alone"
    );
}

#[test]
fn a_merge_of_other_fields_keeps_the_numbers() {
    let (_, mut a, mut b) = pair();
    write_raw(&a, "t1", &entity("numbers", false));
    a.sync();
    b.sync();
    // Each side changes another field; the numbers are the same text on both.
    write_raw(&a, "t1", &entity("renamed", false));
    write_raw(&b, "t1", &entity("numbers", true));
    assert_eq!(a.sync().committed, Some(2));
    let rb = b.sync();
    assert!(rb.conflicts.is_empty(), "{:?}", rb.conflicts);
    assert_eq!(rb.committed, Some(3), "b pushes the merge");
    a.sync();
    for (who, d) in [("a", &a), ("b", &b)] {
        let text = read_raw(d, "t1");
        assert_exact(who, &text);
        assert_eq!(value_text(&text, "title"), "\"renamed\"", "{who}: {text}");
        assert_eq!(value_text(&text, "done"), "true", "{who}: {text}");
    }
    assert!(a.engine.conflicts().unwrap().is_empty());
    assert_eq!(a.sync().committed, None);
    assert_eq!(b.sync().committed, None);
}

#[test]
fn numbers_survive_a_snapshot_and_a_restart() {
    let (remote, mut a, mut b) = pair();
    write_raw(&a, "t1", &entity("numbers", false));
    a.sync();
    a.engine
        .compact_with(&CompactOptions::default(), &NoProgress)
        .unwrap();
    // A new device reads the entity from the snapshot.
    let mut c = Device::new(remote.clone(), "c");
    c.sync();
    assert_exact("c from the snapshot", &read_raw(&c, "t1"));
    // b too, then restarts: its local state (SQLite) gives the same texts back.
    b.sync();
    b.restart(remote.clone());
    assert_eq!(b.sync().committed, None);
    assert_exact("b after a restart", &read_raw(&b, "t1"));
    let v = b
        .engine
        .verify(
            &VerifyOptions {
                deep: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(v.ok, "{v:?}");
}

#[test]
fn verify_deep_tells_a_rounded_number_from_the_original() {
    let (_, mut a, mut b) = pair();
    write_raw(&a, "t1", &entity("numbers", false));
    a.sync();
    b.sync();
    // What an older deltasync wrote into the file: the number rounded to an f64.
    let rounded = entity("numbers", false).replace(
        "\"big\": 123456789012345678901234567890",
        "\"big\": 1.2345678901234568e+29",
    );
    assert_ne!(rounded, entity("numbers", false));
    write_raw(&b, "t1", &rounded);
    let v = b
        .engine
        .verify(
            &VerifyOptions {
                deep: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(!v.ok, "{v:?}");
    let fields: Vec<&str> = v.differences.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["big"], "{v:?}");
}

#[test]
fn diff_values_compares_numbers_by_text_without_a_tolerance() {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    let mut out = Vec::new();
    diff_values(
        &parse(r#"{"a": 123456789012345678901234567890, "b": 1.0, "c": 0.5}"#),
        &parse(r#"{"a": 1.2345678901234568e+29, "b": 1, "c": 0.5}"#),
        &mut Vec::new(),
        0.0,
        &mut out,
    );
    let fields: Vec<&str> = out.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(fields, ["a", "b"]);
    // With a tolerance, numbers are compared as floating point.
    out.clear();
    diff_values(
        &parse(r#"{"a": 1.0, "b": 2}"#),
        &parse(r#"{"a": 1, "b": 2.0000001}"#),
        &mut Vec::new(),
        0.001,
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
}
