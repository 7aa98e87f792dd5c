//! Spans of JSON text: members, items and values located by a byte scanner, so that a
//! document is edited in place and keeps its formatting.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// A byte range `[start, end)` in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// An object member: its key (with quotes) and its value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    pub key: Span,
    pub value: Span,
}

pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `b[i]` is `"`; the index after the closing quote.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the value starting at `b[i]`.
pub(super) fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The root value of a document that is valid JSON (one value between white space): found
/// without scanning it (the callers check the text with serde_json first).
pub(super) fn root(b: &[u8]) -> Option<Span> {
    let start = skip_ws(b, 0);
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))?
        + 1;
    (start < end).then_some(Span { start, end })
}

/// The elements of the array at `span`.
pub(super) fn array_items(b: &[u8], span: Span) -> Option<Vec<Span>> {
    if b.get(span.start) != Some(&b'[') {
        return None;
    }
    let mut items = Vec::new();
    let mut i = skip_ws(b, span.start + 1);
    if b.get(i) == Some(&b']') {
        return Some(items);
    }
    loop {
        let end = value_end(b, i)?;
        items.push(Span { start: i, end });
        i = skip_ws(b, end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b']' => return Some(items),
            _ => return None,
        }
    }
}

/// The members of the object at `span`.
pub(super) fn object_members(b: &[u8], span: Span) -> Option<Vec<Member>> {
    if b.get(span.start) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut i = skip_ws(b, span.start + 1);
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let vstart = skip_ws(b, colon + 1);
        let vend = value_end(b, vstart)?;
        members.push(Member {
            key: Span {
                start: i,
                end: key_end,
            },
            value: Span {
                start: vstart,
                end: vend,
            },
        });
        i = skip_ws(b, vend);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(members),
            _ => return None,
        }
    }
}

/// The key of a member, unescaped.
pub(super) fn key_text(b: &[u8], key: Span) -> Option<String> {
    serde_json::from_slice(&b[key.start..key.end]).ok()
}

/// How deeply the JSON text `b` nests objects and arrays (a scalar is 0, `{}` is 1), counted
/// on the text: for valid JSON what [`super::limits::depth`] says of its parsed value.
pub(super) fn nesting(b: &[u8]) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0);
    while i < b.len() {
        match b[i] {
            b'"' => match string_end(b, i) {
                Some(end) => {
                    i = end;
                    continue;
                }
                None => break,
            },
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Whether the key at `key` (with its quotes) is `name`, compared as written and decoded
/// only when it holds an escape.
pub(super) fn key_is(b: &[u8], key: Span, name: &str) -> bool {
    let raw = &b[key.start..key.end];
    if raw.contains(&b'\\') {
        key_text(b, key).as_deref() == Some(name)
    } else {
        raw.len() >= 2 && &raw[1..raw.len() - 1] == name.as_bytes()
    }
}

/// The white space at the start of the line holding `pos`, if only white space precedes
/// `pos` on that line; otherwise the line's leading white space all the same.
pub(super) fn line_indent(b: &[u8], pos: usize) -> String {
    let line_start = b[..pos]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    let indent_end = line_start
        + b[line_start..pos]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
    String::from_utf8_lossy(&b[line_start..indent_end]).into_owned()
}

/// The first key that appears twice in one object of the JSON text `b`, decoded, with the
/// offset of its second appearance. JSON parsers keep one of the values of a repeated key
/// and drop the other without a word; a sync must not, so such an entity is held. `None`
/// also for text that is not JSON (the parser reports that).
pub(super) fn duplicate_key(b: &[u8]) -> Option<(String, usize)> {
    // One frame per open object (its keys so far) or array (`None`).
    let mut stack: Vec<Option<BTreeSet<Cow<'_, [u8]>>>> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = string_end(b, i)?;
                if expect_key && let Some(Some(keys)) = stack.last_mut() {
                    let raw = b.get(i..end)?;
                    // Compared as written; decoded only when it holds an escape.
                    let key = if raw.contains(&b'\\') {
                        Cow::Owned(serde_json::from_slice::<String>(raw).ok()?.into_bytes())
                    } else {
                        Cow::Borrowed(&raw[1..raw.len() - 1])
                    };
                    if let Some(key) = keys.replace(key) {
                        return Some((String::from_utf8_lossy(&key).into_owned(), i));
                    }
                }
                expect_key = false;
                i = end;
                continue;
            }
            b'{' => {
                stack.push(Some(BTreeSet::new()));
                expect_key = true;
            }
            b'[' => {
                stack.push(None);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = matches!(stack.last(), Some(Some(_))),
            b':' => expect_key = false,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod duplicate_tests {
    use super::duplicate_key;

    #[test]
    fn finds_a_repeated_key_at_any_depth_and_in_any_spelling() {
        let at = |t: &str| duplicate_key(t.as_bytes());
        assert_eq!(at(r#"{"a": 1, "a": 2}"#), Some(("a".into(), 9)));
        assert_eq!(at(r#"{"x": [{"c": 1, "c": 2}]}"#).unwrap().0, "c");
        assert_eq!(at(r#"{"k": 1, "\u006b": 2}"#).unwrap().0, "k");
        assert_eq!(
            at(r#"{"a": {"k": 1}, "b": {"k": "a"}, "k": ["k", "k"]}"#),
            None
        );
        assert_eq!(at(r#"{"s": "a\"b", "a\"b": 1}"#), None);
        assert_eq!(at(r#"[{"a": 1}, {"a": 1}]"#), None);
        assert_eq!(at(r#"{"a": 1, "#), None);
    }

    #[test]
    fn nesting_is_the_parsed_depth() {
        for t in [
            "1",
            "{}",
            r#"{"a": 1, "b": [1, {"c": []}]}"#,
            r#"{"s": "[[{{", "t": "\\\"]"}"#,
            r#"[[[["]"]]]]"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            assert_eq!(
                super::nesting(t.as_bytes()),
                super::super::limits::depth(&v),
                "{t}"
            );
        }
    }
}
