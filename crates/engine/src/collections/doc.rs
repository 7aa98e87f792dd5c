//! `file` collections: entities in one JSON document (a map or an `@id` array at a JSON
//! pointer), read by spans and edited in place.

use super::spans::{self, Span};
use super::style::{self, Style};
use super::*;

/// Where the collection is in the document.
enum Target {
    /// An array of objects with an id field.
    Array(Span),
    /// An object id → entity.
    Map(Span),
    /// `null` at the pointer: an empty collection.
    Null(Span),
    /// The pointer stops at `anchor` (an object): `rest` (non-empty) is missing from it.
    Missing { anchor: Span, rest: Vec<String> },
}

/// One entry of the collection.
struct Entry {
    /// The id (the key in a map, the id field in an array).
    id: String,
    /// The whole item: the element, or the member from its key to its value's end.
    item: Span,
    /// The value (the entity).
    value: Span,
    /// The parsed entity; `None` if it is not an object (held).
    entity: Option<Map<String, Value>>,
}

/// A document understood.
struct Analysis {
    target: Target,
    entries: Vec<Entry>,
    problems: Vec<ScanProblem>,
    held: BTreeSet<String>,
    whole_held: bool,
}

impl Analysis {
    fn held_whole(problem: ScanProblem) -> Analysis {
        Analysis {
            target: Target::Null(Span { start: 0, end: 0 }),
            entries: Vec::new(),
            problems: vec![problem],
            held: BTreeSet::new(),
            whole_held: true,
        }
    }
}

fn problem_at(
    file: &Path,
    text: &[u8],
    offset: Option<usize>,
    message: String,
    ids: Option<Vec<String>>,
) -> ScanProblem {
    let (line, column) = match offset {
        Some(o) => {
            let (l, c) = line_col(text, o);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let message = match (line, column) {
        (Some(l), Some(c)) => format!("{message} (line {l}, column {c})"),
        _ => message,
    };
    ScanProblem {
        file: file.to_owned(),
        message,
        ids,
        line,
        column,
    }
}

/// The id of an array element: the id field as a string, or a number's string form.
fn element_id(entity: &Map<String, Value>, id_field: &str) -> Option<String> {
    match entity.get(id_field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Understands the document text (without byte order mark).
fn analyze(file: &Path, text: &[u8], tokens: &[String], id_field: &str) -> Analysis {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(text) {
        let mut p = json_problem(file, &e, None);
        p.message
            .push_str("; the whole collection is held until the file is valid again");
        return Analysis::held_whole(p);
    }
    let pointer = || {
        tokens
            .iter()
            .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
            .collect::<String>()
    };
    let unexpected = |offset: Option<usize>| {
        Analysis::held_whole(problem_at(
            file,
            text,
            offset,
            "the document's structure could not be followed".into(),
            None,
        ))
    };
    let Some(mut cur) = spans::root(text) else {
        return unexpected(None);
    };
    let mut target = None;
    for (depth, token) in tokens.iter().enumerate() {
        match text[cur.start] {
            b'{' => {
                let Some(members) = spans::object_members(text, cur) else {
                    return unexpected(Some(cur.start));
                };
                // Like serde_json, the last of duplicate keys counts.
                let found = members
                    .iter()
                    .rev()
                    .find(|m| spans::key_text(text, m.key).as_deref() == Some(token.as_str()));
                match found {
                    Some(m) => cur = m.value,
                    None => {
                        target = Some(Target::Missing {
                            anchor: cur,
                            rest: tokens[depth..].to_vec(),
                        });
                        break;
                    }
                }
            }
            b'[' => {
                let Some(items) = spans::array_items(text, cur) else {
                    return unexpected(Some(cur.start));
                };
                let index = token
                    .parse::<usize>()
                    .ok()
                    .filter(|i| token == &i.to_string());
                match index.and_then(|i| items.get(i)) {
                    Some(item) => cur = *item,
                    None => {
                        return Analysis::held_whole(problem_at(
                            file,
                            text,
                            Some(cur.start),
                            format!(
                                "JSON pointer {} needs element {token:?} of an array that has {} elements; the whole collection is held",
                                pointer(),
                                items.len()
                            ),
                            None,
                        ));
                    }
                }
            }
            other => {
                let what = match other {
                    b'"' => "string",
                    b'n' => "null",
                    b't' | b'f' => "boolean",
                    _ => "number",
                };
                return Analysis::held_whole(problem_at(
                    file,
                    text,
                    Some(cur.start),
                    format!(
                        "JSON pointer {} runs into a {what}; the whole collection is held",
                        pointer()
                    ),
                    None,
                ));
            }
        }
    }
    let target = match target {
        Some(t) => t,
        None => match text[cur.start] {
            b'[' => Target::Array(cur),
            b'{' => Target::Map(cur),
            b'n' => Target::Null(cur),
            _ => {
                return Analysis::held_whole(problem_at(
                    file,
                    text,
                    Some(cur.start),
                    format!(
                        "the collection at {} is neither an array nor an object; the whole collection is held",
                        pointer()
                    ),
                    None,
                ));
            }
        },
    };
    let mut a = Analysis {
        target,
        entries: Vec::new(),
        problems: Vec::new(),
        held: BTreeSet::new(),
        whole_held: false,
    };
    match a.target {
        Target::Array(span) => {
            let Some(items) = spans::array_items(text, span) else {
                return unexpected(Some(span.start));
            };
            let mut seen = BTreeSet::new();
            for (n, item) in items.into_iter().enumerate() {
                let entity = match serde_json::from_slice::<Value>(&text[item.start..item.end]) {
                    Ok(Value::Object(m)) => m,
                    Ok(other) => {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start),
                            format!(
                                "element {n} is a {}, not an object with {id_field:?}",
                                type_name(&other)
                            ),
                            None,
                        ));
                        a.whole_held = true;
                        continue;
                    }
                    Err(_) => return unexpected(Some(item.start)),
                };
                let Some(id) = element_id(&entity, id_field) else {
                    a.problems.push(problem_at(
                        file,
                        text,
                        Some(item.start),
                        format!("element {n} has no {id_field:?} (a non-empty string or a number)"),
                        None,
                    ));
                    a.whole_held = true;
                    continue;
                };
                if !seen.insert(id.clone()) {
                    a.problems.push(problem_at(
                        file,
                        text,
                        Some(item.start),
                        format!("element {n} repeats id {id:?}"),
                        Some(vec![id.clone()]),
                    ));
                    a.whole_held = true;
                    continue;
                }
                let dup = spans::duplicate_key(&text[item.start..item.end]);
                let entity = match (dup, limits::too_deep_to_sync(&entity)) {
                    (Some((key, at)), _) => {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start + at),
                            format!("element {n} ({id:?}) {}", twice(&key)),
                            Some(vec![id.clone()]),
                        ));
                        a.held.insert(id.clone());
                        None
                    }
                    (None, Some(message)) => {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start),
                            format!("element {n} ({id:?}) is {message}"),
                            Some(vec![id.clone()]),
                        ));
                        a.held.insert(id.clone());
                        None
                    }
                    (None, None) => Some(entity),
                };
                a.entries.push(Entry {
                    id,
                    item,
                    value: item,
                    entity,
                });
            }
        }
        Target::Map(span) => {
            let Some(members) = spans::object_members(text, span) else {
                return unexpected(Some(span.start));
            };
            let mut seen = BTreeSet::new();
            for m in members {
                let Some(id) = spans::key_text(text, m.key) else {
                    return unexpected(Some(m.key.start));
                };
                if !seen.insert(id.clone()) {
                    a.problems.push(problem_at(
                        file,
                        text,
                        Some(m.key.start),
                        format!("key {id:?} appears twice"),
                        Some(vec![id.clone()]),
                    ));
                    a.whole_held = true;
                    continue;
                }
                let dup = spans::duplicate_key(&text[m.value.start..m.value.end]);
                let entity =
                    match serde_json::from_slice::<Value>(&text[m.value.start..m.value.end]) {
                        Ok(Value::Object(_)) if dup.is_some() => {
                            let (key, at) = dup.expect("matched");
                            a.problems.push(problem_at(
                                file,
                                text,
                                Some(m.value.start + at),
                                format!("entry {id:?} {}", twice(&key)),
                                Some(vec![id.clone()]),
                            ));
                            a.held.insert(id.clone());
                            None
                        }
                        Ok(Value::Object(e)) if !id.is_empty() => {
                            match limits::too_deep_to_sync(&e) {
                                Some(message) => {
                                    a.problems.push(problem_at(
                                        file,
                                        text,
                                        Some(m.key.start),
                                        format!("entry {id:?} is {message}"),
                                        Some(vec![id.clone()]),
                                    ));
                                    a.held.insert(id.clone());
                                    None
                                }
                                None => Some(e),
                            }
                        }
                        Ok(other) => {
                            let why = if id.is_empty() {
                                "an empty id".to_owned()
                            } else {
                                format!("a {}, not an object", type_name(&other))
                            };
                            a.problems.push(problem_at(
                                file,
                                text,
                                Some(m.key.start),
                                format!("entry {id:?} is {why}; entity held"),
                                Some(vec![id.clone()]),
                            ));
                            a.held.insert(id.clone());
                            None
                        }
                        Err(_) => return unexpected(Some(m.value.start)),
                    };
                a.entries.push(Entry {
                    id,
                    item: Span {
                        start: m.key.start,
                        end: m.value.end,
                    },
                    value: m.value,
                    entity,
                });
            }
        }
        Target::Null(_) | Target::Missing { .. } => {}
    }
    if a.whole_held {
        for p in &mut a.problems {
            p.message.push_str("; the whole collection is held");
        }
        let ids: Vec<String> = a.entries.drain(..).map(|e| e.id).collect();
        a.held.extend(ids);
    }
    a
}

pub(super) fn scan(
    path: &Path,
    tokens: &[String],
    id_field: &str,
    known: &Known,
) -> Result<Scan, CollectionError> {
    let mut out = Scan {
        entities: BTreeMap::new(),
        problems: Vec::new(),
        held: BTreeSet::new(),
        whole_collection_held: false,
        fingerprint: Fingerprint::File { hash: None },
        known: BTreeMap::new(),
        stats: BTreeMap::new(),
    };
    let real = real_path(path);
    if let (Some(folder), Some(name)) = (real.parent(), real.file_name().and_then(|n| n.to_str())) {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        atomic::remove_stale_temps(folder, Some(name));
    }
    // A document whose stat is what it was when it was read (cleanly) holds what it held.
    if let Some(doc) = known.files.get("")
        && let Ok(meta) = fs::metadata(path)
        && meta.is_file()
        && FileStat::of(&meta) == doc.stat
    {
        out.fingerprint = Fingerprint::File {
            hash: Some(doc.file_hash.clone()),
        };
        out.known = known
            .files
            .iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(id, k)| (id.clone(), k.hash.clone()))
            .collect();
        return Ok(out);
    }
    let (bytes, stat) = match read_file_stat(path) {
        Ok(Some((_, stat, b))) => (b, stat),
        Ok(None) => return Ok(out),
        Err(e) => return Err(io_err("read", path, e)),
    };
    out.fingerprint = Fingerprint::File {
        hash: Some(sha256_hex(&bytes)),
    };
    let a = analyze(path, split_bom(&bytes).1, tokens, id_field);
    out.problems = a.problems;
    out.held = a.held;
    out.whole_collection_held = a.whole_held;
    for e in a.entries {
        if let Some(entity) = e.entity {
            out.entities.insert(e.id, Value::Object(entity));
        }
    }
    // Only a clean read stands for the document next time: one with problems is read again.
    if let Some(stat) = stat
        && stat.changed_before(known.trust_before)
        && out.problems.is_empty()
        && out.held.is_empty()
        && !out.whole_collection_held
    {
        out.stats.insert(String::new(), stat);
    }
    Ok(out)
}

/// Where a collection is in its document and how it is made.
pub(super) struct Layout<'a> {
    /// The JSON pointer's tokens.
    pub tokens: &'a [String],
    /// The id field of an array's objects.
    pub id_field: &'a str,
    /// The shape a collection is created in when it does not exist yet: an array (else a map).
    pub create_as_array: bool,
}

/// Checks one write on its own, before the document is touched.
fn check_write(w: &Write, layout: &Layout<'_>) -> Result<(), Refusal> {
    let Write::Put { id, value } = w else {
        return Ok(());
    };
    if id.is_empty() {
        return Err(Refusal::BadId {
            id: id.clone(),
            reason: "an empty id".into(),
        });
    }
    // The document's root and one level per pointer token, then the collection itself.
    limits::check_value(id, value, layout.tokens.len() + 1)
}

/// Makes a `Put` value fit an array collection: its id field present (added first when
/// missing) and agreeing with the id.
fn with_id_field(id: &str, value: &Value, id_field: &str) -> Result<Value, Refusal> {
    let Value::Object(m) = value else {
        return Err(Refusal::NotAnObject {
            id: id.to_owned(),
            found: type_name(value),
        });
    };
    match m.get(id_field) {
        None => {
            let mut out = Map::with_capacity(m.len() + 1);
            out.insert(id_field.to_owned(), Value::String(id.to_owned()));
            out.extend(m.clone());
            Ok(Value::Object(out))
        }
        Some(_) if element_id(m, id_field).as_deref() == Some(id) => Ok(value.clone()),
        Some(other) => Err(Refusal::BadId {
            id: id.to_owned(),
            reason: format!("its {id_field:?} field is {other}, not the id"),
        }),
    }
}

/// One item of a rebuilt container.
enum Piece<'a> {
    /// Kept as it is in the text.
    Keep(Span),
    /// The item's value replaced: text before the value kept (a member's key), new value
    /// written with the item line's indentation.
    Replace {
        item: Span,
        value_start: usize,
        new: Value,
    },
    /// A new element or member.
    New { key: Option<&'a str>, value: Value },
}

/// The text of the container at `span` with its items replaced by `pieces`. Items that are
/// kept keep their exact text; the white space between items follows the container's own.
fn rebuild(
    text: &[u8],
    span: Span,
    old_items: &[Span],
    pieces: &[Piece<'_>],
    style: &Style,
) -> Vec<u8> {
    let open = span.start;
    let close = span.end - 1;
    let container_indent = spans::line_indent(text, open);
    let unit = style.indent.clone().unwrap_or_default();
    let (open_ws, sep_ws, close_ws, item_indent) = match (old_items.first(), old_items.last()) {
        (Some(first), Some(last)) => {
            let open_ws = String::from_utf8_lossy(&text[open + 1..first.start]).into_owned();
            let close_ws = String::from_utf8_lossy(&text[last.end..close]).into_owned();
            let sep_ws = match old_items.get(1) {
                Some(second) => {
                    let between = &text[first.end..second.start];
                    let after_comma = between.iter().position(|&c| c == b',').map_or(0, |p| p + 1);
                    String::from_utf8_lossy(&between[after_comma..]).into_owned()
                }
                None => match &style.indent {
                    Some(_) if open_ws.contains('\n') => open_ws.clone(),
                    Some(_) if style.key_sep == ": " => " ".to_owned(),
                    _ => style.compact_gap.to_owned(),
                },
            };
            let item_indent = match open_ws.rfind('\n') {
                Some(p) => open_ws[p + 1..].to_owned(),
                None => spans::line_indent(text, first.start),
            };
            (open_ws, sep_ws, close_ws, item_indent)
        }
        _ => match &style.indent {
            Some(_) => {
                let item_indent = format!("{container_indent}{unit}");
                (
                    style.item_gap(&item_indent),
                    style.item_gap(&item_indent),
                    format!("{}{container_indent}", style.newline),
                    item_indent,
                )
            }
            None => (
                String::new(),
                style.compact_gap.to_owned(),
                String::new(),
                String::new(),
            ),
        },
    };
    // A container written on one line inside a pretty document stays on one line.
    let inline_style;
    let style = match (
        &style.indent,
        old_items.is_empty() || open_ws.contains('\n'),
    ) {
        (Some(_), false) => {
            inline_style = Style {
                indent: None,
                compact_gap: if style.key_sep == ": " { " " } else { "" },
                ..style.clone()
            };
            &inline_style
        }
        _ => style,
    };
    let mut out = Vec::with_capacity(span.end - span.start + 256);
    out.push(text[open]);
    if !pieces.is_empty() {
        out.extend_from_slice(open_ws.as_bytes());
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                out.push(b',');
                out.extend_from_slice(sep_ws.as_bytes());
            }
            let mut rendered = String::new();
            match piece {
                Piece::Keep(s) => out.extend_from_slice(&text[s.start..s.end]),
                Piece::Replace {
                    item,
                    value_start,
                    new,
                } => {
                    out.extend_from_slice(&text[item.start..*value_start]);
                    let indent = spans::line_indent(text, item.start);
                    style::render(new, style, &indent, &mut rendered);
                }
                Piece::New { key, value } => {
                    if let Some(k) = key {
                        style::write_str(k, &mut rendered);
                        rendered.push_str(style.key_sep);
                    }
                    style::render(value, style, &item_indent, &mut rendered);
                }
            }
            out.extend_from_slice(rendered.as_bytes());
        }
        out.extend_from_slice(close_ws.as_bytes());
    }
    out.push(text[close]);
    out
}

/// The document text after `writes`; `None` when nothing changes. Ids whose writes cannot
/// be made (held entries) are added to `skipped`.
fn edit(
    path: &Path,
    text: &[u8],
    a: &Analysis,
    writes: &[Write],
    layout: &Layout<'_>,
    style: &Style,
    report: &mut ApplyReport,
) -> Result<Option<Vec<u8>>, CollectionError> {
    let id_field = layout.id_field;
    let is_array = match a.target {
        Target::Array(_) => true,
        Target::Map(_) => false,
        Target::Null(_) | Target::Missing { .. } => layout.create_as_array,
    };
    // Prepare every Put value first; one that does not fit is refused on its own.
    let mut puts: BTreeMap<&str, Value> = BTreeMap::new();
    let mut deletes: BTreeSet<&str> = BTreeSet::new();
    let mut refused: BTreeSet<&str> = BTreeSet::new();
    for w in writes {
        if a.held.contains(w.id()) {
            report.skipped.push(w.id().to_owned());
            continue;
        }
        match w {
            Write::Put { id, value } => {
                let value = if is_array {
                    match with_id_field(id, value, id_field) {
                        Ok(v) => v,
                        Err(r) => {
                            report.skipped.push(id.clone());
                            report.refused.push(r);
                            refused.insert(id);
                            continue;
                        }
                    }
                } else {
                    value.clone()
                };
                puts.insert(id, value);
            }
            Write::Delete { id } => {
                deletes.insert(id);
            }
        }
    }
    let existing: BTreeSet<&str> = a.entries.iter().map(|e| e.id.as_str()).collect();
    let mut changed = false;
    let mut pieces = Vec::new();
    for e in &a.entries {
        if deletes.contains(e.id.as_str()) {
            changed = true;
            continue;
        }
        match (puts.get(e.id.as_str()), &e.entity) {
            (Some(new), Some(old)) => {
                let old = Value::Object(old.clone());
                let mut new = style::align_order(new.clone(), &old);
                // Keep a numeric id numeric.
                if is_array
                    && let (Some(Value::Number(n)), Some(slot)) =
                        (old.get(id_field), new.get_mut(id_field))
                    && slot.as_str() == Some(n.to_string().as_str())
                {
                    *slot = Value::Number(n.clone());
                }
                if new == old {
                    // Same content (key order aside): keep the text as it is.
                    pieces.push(Piece::Keep(e.item));
                } else {
                    changed = true;
                    pieces.push(Piece::Replace {
                        item: e.item,
                        value_start: e.value.start,
                        new,
                    });
                }
            }
            _ => pieces.push(Piece::Keep(e.item)),
        }
    }
    let mut new_entries: Vec<(&str, Value)> = Vec::new();
    for w in writes {
        if let Some(v) = puts.get(w.id())
            && !existing.contains(w.id())
        {
            new_entries.push((w.id(), v.clone()));
        }
    }
    for w in writes {
        if a.held.contains(w.id()) || refused.contains(w.id()) {
            continue;
        }
        match w {
            Write::Put { id, .. } => report.written.push(id.clone()),
            Write::Delete { id } => report.deleted.push(id.clone()),
        }
    }
    if new_entries.is_empty() && !changed {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(text.len() + 256);
    match &a.target {
        Target::Array(span) | Target::Map(span) => {
            for (id, value) in new_entries {
                pieces.push(Piece::New {
                    key: (!is_array).then_some(id),
                    value,
                });
            }
            let items: Vec<Span> = a.entries.iter().map(|e| e.item).collect();
            // Held entries are items too (kept as they are), already in `entries`.
            out.extend_from_slice(&text[..span.start]);
            out.extend_from_slice(&rebuild(text, *span, &items, &pieces, style));
            out.extend_from_slice(&text[span.end..]);
        }
        Target::Null(span) => {
            let collection = new_collection(is_array, new_entries);
            let mut rendered = String::new();
            style::render(
                &collection,
                style,
                &spans::line_indent(text, span.start),
                &mut rendered,
            );
            out.extend_from_slice(&text[..span.start]);
            out.extend_from_slice(rendered.as_bytes());
            out.extend_from_slice(&text[span.end..]);
        }
        Target::Missing { anchor, rest } => {
            let mut value = new_collection(is_array, new_entries);
            for token in rest[1..].iter().rev() {
                let mut m = Map::new();
                m.insert(token.clone(), value);
                value = Value::Object(m);
            }
            let members =
                spans::object_members(text, *anchor).ok_or_else(|| CollectionError::Held {
                    path: path.to_owned(),
                    reason: "the document's structure could not be followed".into(),
                })?;
            let items: Vec<Span> = members
                .iter()
                .map(|m| Span {
                    start: m.key.start,
                    end: m.value.end,
                })
                .collect();
            let mut pieces: Vec<Piece<'_>> = items.iter().map(|s| Piece::Keep(*s)).collect();
            pieces.push(Piece::New {
                key: Some(&rest[0]),
                value,
            });
            out.extend_from_slice(&text[..anchor.start]);
            out.extend_from_slice(&rebuild(text, *anchor, &items, &pieces, style));
            out.extend_from_slice(&text[anchor.end..]);
        }
    }
    Ok(Some(out))
}

fn new_collection(is_array: bool, entries: Vec<(&str, Value)>) -> Value {
    if is_array {
        Value::Array(entries.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(
            entries
                .into_iter()
                .map(|(id, v)| (id.to_owned(), v))
                .collect(),
        )
    }
}

/// The document for a collection that does not exist yet.
fn new_document(tokens: &[String], collection: Value) -> Vec<u8> {
    let mut value = collection;
    for token in tokens.iter().rev() {
        let mut m = Map::new();
        m.insert(token.clone(), value);
        value = Value::Object(m);
    }
    let mut text = String::new();
    style::render(&value, &Style::default(), "", &mut text);
    text.push('\n');
    text.into_bytes()
}

pub(super) fn apply(
    path: &Path,
    layout: &Layout<'_>,
    writes: &[Write],
    expected: &Fingerprint,
) -> Result<ApplyReport, CollectionError> {
    let (tokens, id_field) = (layout.tokens, layout.id_field);
    let Fingerprint::File {
        hash: expected_hash,
    } = expected
    else {
        return Err(CollectionError::WrongFingerprint {
            path: path.to_owned(),
        });
    };
    check_batch(path, writes)?;
    let target = real_path(path);
    let current = read_file(&target).map_err(|e| io_err("read", &target, e))?;
    if current.as_ref().map(|(s, _)| &s.hash) != expected_hash.as_ref() {
        return Err(CollectionError::ChangedMeanwhile {
            path: path.to_owned(),
        });
    }
    let mut report = ApplyReport {
        written: Vec::new(),
        deleted: Vec::new(),
        skipped: Vec::new(),
        refused: Vec::new(),
        fingerprint: expected.clone(),
    };
    let mut accepted = Vec::with_capacity(writes.len());
    for w in writes {
        match check_write(w, layout) {
            Ok(()) => accepted.push(w.clone()),
            Err(r) => {
                tracing::debug!(id = w.id(), refusal = %r, "write refused");
                report.skipped.push(w.id().to_owned());
                report.refused.push(r);
            }
        }
    }
    let writes = accepted.as_slice();
    if writes.is_empty() {
        return Ok(report);
    }
    let new_bytes = match &current {
        None => {
            let is_array = layout.create_as_array;
            let mut entries = Vec::new();
            for w in writes {
                match w {
                    Write::Put { id, value } => {
                        let value = if is_array {
                            match with_id_field(id, value, id_field) {
                                Ok(v) => v,
                                Err(r) => {
                                    report.skipped.push(id.clone());
                                    report.refused.push(r);
                                    continue;
                                }
                            }
                        } else {
                            value.clone()
                        };
                        entries.push((id.as_str(), value));
                        report.written.push(id.clone());
                    }
                    Write::Delete { id } => report.deleted.push(id.clone()),
                }
            }
            if entries.is_empty() {
                return Ok(report);
            }
            new_document(tokens, new_collection(is_array, entries))
        }
        Some((_, bytes)) => {
            let (bom, text) = split_bom(bytes);
            let a = analyze(path, text, tokens, id_field);
            if a.whole_held {
                return Err(CollectionError::Held {
                    path: path.to_owned(),
                    reason: a
                        .problems
                        .first()
                        .map(|p| p.message.clone())
                        .unwrap_or_default(),
                });
            }
            let style = Style::detect(text);
            match edit(path, text, &a, writes, layout, &style, &mut report)? {
                Some(new_text) => [bom, &new_text].concat(),
                None => return Ok(report),
            }
        }
    };
    let folder = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&folder).map_err(|e| io_err("create folder", &folder, e))?;
    let base = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document")
        .to_owned();
    let perms = fs::metadata(&target).ok().map(|m| m.permissions());
    let tmp = atomic::write_temp(&folder, &base, &new_bytes, perms)?;
    let installed = atomic::install(&tmp, &target, current.is_none(), || {
        let now = read_file(&target).map_err(|e| io_err("read", &target, e))?;
        Ok(now.map(|(s, _)| s.hash) == *expected_hash)
    })?;
    if !installed {
        return Err(CollectionError::ChangedMeanwhile {
            path: path.to_owned(),
        });
    }
    atomic::sync_dir(&folder);
    report.fingerprint = Fingerprint::File {
        hash: Some(sha256_hex(&new_bytes)),
    };
    Ok(report)
}
