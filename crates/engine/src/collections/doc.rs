//! `file` collections: entities in one JSON document (a map or an `@id` array at a JSON
//! pointer), read by spans here and edited in place (`doc/edit.rs`).

use super::spans::{self, Span};
use super::style::{self, Style};
use super::*;

mod edit;
pub(super) use edit::{Layout, apply};

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
        unchanged: 0,
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
