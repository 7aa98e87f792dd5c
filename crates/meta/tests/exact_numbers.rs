//! Numbers inside entities travel exactly as written (issue 10, "numbers are rounded"): through
//! deltas, snapshots, conflict receipts and back, and their content hash is that of their text.

use deltasync_meta::*;

/// Numbers that an `f64` does not hold, and number texts that an `f64` would rewrite.
const NUMBERS: &[&str] = &[
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "18446744073709551617",
    "18446744073709551615",
    "-9223372036854775809",
    "0.1000000000000000055511151231257827",
    "3.141592653589793238462643383279",
    "-0",
    "-0.0",
    "0.0",
    "1.0",
    "1.50",
    "100",
    "1e+2",
    "1.5e-7",
    "2E-3",
    "1e400",
];

/// An entity holding every number of [`NUMBERS`], as the text of its JSON object.
fn entity_text() -> String {
    let fields: Vec<String> = NUMBERS
        .iter()
        .enumerate()
        .map(|(i, n)| format!("\"n{i}\":{n}"))
        .collect();
    format!(
        "{{\"id\":\"t1\",{},\"nested\":{{\"list\":[{}]}}}}",
        fields.join(","),
        NUMBERS.join(",")
    )
}

/// How the number is written back: exactly as read, except that an exponent is written with
/// a lowercase `e` and an explicit sign (`2E-3` stays `2e-3`, `1e2` becomes `1e+2`).
fn written(n: &str) -> String {
    let n = n.replace('E', "e");
    match n.split_once('e') {
        Some((m, e)) if !e.starts_with(['+', '-']) => format!("{m}e+{e}"),
        _ => n,
    }
}

fn record_text(version: u64) -> String {
    format!(
        "{{\"collection\":\"tasks\",\"id\":\"t1\",\"version\":{version},\"lastModifiedAt\":[1763776000001,0],\"lastModifiedBy\":\"a\",\"isDeleted\":false,\"data\":{}}}",
        entity_text()
    )
}

fn receipt_text() -> String {
    format!(
        "{{\"id\":\"a-1-0a1b\",\"collection\":\"tasks\",\"entityId\":\"t1\",\"field\":[\"n0\"],\"kind\":\"field\",\"kept\":{},\"keptBy\":\"a\",\"lost\":{},\"lostBy\":\"b\",\"at\":[1763776000123,2],\"resolved\":false}}",
        NUMBERS[0], NUMBERS[5]
    )
}

fn assert_numbers_kept(what: &str, bytes: &[u8]) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for (i, n) in NUMBERS.iter().enumerate() {
        let want = format!("\"n{i}\":{}", written(n));
        assert!(text.contains(&want), "{what}: {want} missing in {text}");
    }
    let list: Vec<String> = NUMBERS.iter().map(|n| written(n)).collect();
    let want = format!("\"list\":[{}]", list.join(","));
    assert!(text.contains(&want), "{what}: {want} missing in {text}");
}

#[test]
fn a_delta_keeps_every_number_exactly() {
    let input = format!(
        "{{\"format\":1,\"minReader\":1,\"seq\":2,\"device\":\"a\",\"time\":1763776000200,\"records\":[{}],\"conflicts\":[{}]}}",
        record_text(2),
        receipt_text()
    );
    let delta = Delta::from_bytes(input.as_bytes()).unwrap();
    let bytes = delta.to_bytes();
    assert_numbers_kept("delta", &bytes);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(&format!("\"kept\":{},", NUMBERS[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"lost\":{},", NUMBERS[5])),
        "{text}"
    );
    // Written again from what was read: the same bytes (the only rewrite is the exponent's).
    let again = Delta::from_bytes(&bytes).unwrap();
    assert_eq!(again, delta);
    assert_eq!(again.to_bytes(), bytes);
}

#[test]
fn a_snapshot_keeps_every_number_exactly() {
    let input = format!(
        "{{\"format\":1,\"minReader\":1,\"generation\":1,\"head\":2,\"time\":1763776000000,\"records\":[{}],\"conflicts\":[{}]}}",
        record_text(2),
        receipt_text()
    );
    let snapshot = Snapshot::from_bytes(input.as_bytes()).unwrap();
    let bytes = snapshot.to_bytes();
    assert_numbers_kept("snapshot", &bytes);
    assert_eq!(Snapshot::from_bytes(&bytes).unwrap().to_bytes(), bytes);
}

#[test]
fn a_record_and_a_receipt_keep_their_numbers_through_json_text() {
    // The engine's local state keeps records' data and receipts as JSON text.
    let record: EntityRecord = serde_json::from_str(&record_text(3)).unwrap();
    let text = serde_json::to_string(&record.data).unwrap();
    assert_numbers_kept("record data", text.as_bytes());
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, record.data);
    let receipt: ConflictReceipt = serde_json::from_str(&receipt_text()).unwrap();
    let text = serde_json::to_string(&receipt).unwrap();
    assert_eq!(text, receipt_text());
}

#[test]
fn written_numbers_read_back_as_the_same_text() {
    for n in NUMBERS {
        let v: serde_json::Value = serde_json::from_str(n).unwrap();
        assert_eq!(v.to_string(), written(n), "{n}");
        let again: serde_json::Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(again, v, "{n}");
        assert_eq!(again.to_string(), v.to_string(), "{n}");
    }
}

#[test]
fn the_content_hash_is_the_hash_of_the_number_text() {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    // Key order and white space never count ...
    assert_eq!(
        content_hash(&parse(
            r#"{"a": 123456789012345678901234567890, "b": 0.10}"#
        )),
        content_hash(&parse(r#"{"b":0.10,"a":123456789012345678901234567890}"#)),
    );
    assert_eq!(
        String::from_utf8(canonical_json(&parse(
            r#"{"b": [1.0, -0, 1e2], "a": 18446744073709551617}"#
        )))
        .unwrap(),
        r#"{"a":18446744073709551617,"b":[1.0,-0,1e+2]}"#
    );
    // ... and the exponent's spelling neither: it is written one way.
    assert_eq!(
        content_hash(&parse(r#"{"x": 1e2}"#)),
        content_hash(&parse(r#"{"x": 1E+2}"#))
    );
    // A number is its text: a different text is a different value, even where an f64 would
    // not tell them apart.
    for (a, b) in [
        ("1", "1.0"),
        ("100", "1e2"),
        ("0", "-0"),
        ("0.1", "0.10"),
        ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ("18446744073709551617", "18446744073709551616"),
    ] {
        assert_ne!(parse(a), parse(b), "{a} vs {b}");
        assert_ne!(
            content_hash(&parse(a)),
            content_hash(&parse(b)),
            "{a} vs {b}"
        );
    }
    // Numbers made in code hash as the same text read from a file.
    assert_eq!(
        content_hash(&serde_json::json!(1.5)),
        content_hash(&parse("1.5"))
    );
    assert_eq!(
        content_hash(&serde_json::json!(7)),
        content_hash(&parse("7"))
    );
    assert_eq!(serde_json::json!(-3), parse("-3"));
}

#[test]
fn meta_json_keeps_the_numbers_of_fields_it_does_not_know() {
    let input = concat!(
        r#"{"format":1,"minReader":1,"minWriter":1,"globalUpdateCount":0,"deltas":[],"#,
        r#""entityVersions":{},"lastSyncTimestamp":0,"devices":{},"#,
        r#""quota":{"bytes":123456789012345678901234567890,"ratio":0.50,"zero":-0}}"#
    );
    let meta = Meta::from_bytes(input.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(meta.to_bytes()).unwrap(), input);
}
