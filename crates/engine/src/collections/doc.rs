//! `file` collections: entities in one JSON document (a map or an `@id` array at a JSON
//! pointer), read by spans here and edited in place (`doc/edit.rs`).

use std::collections::HashMap;

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
    /// The parsed entity; `None` if it is held (then in [`Analysis::held`]), known by its text
    /// (`known`) or left unparsed by a [`Read::Lazy`] analysis (then, unless written, unchecked).
    entity: Option<Map<String, Value>>,
    /// The content hash of an entity taken by its text ([`Read::Scan`]), not parsed.
    known: Option<String>,
    /// sha256 (hex) of the entity's text (the value's bytes), when [`Read::Scan`] hashed it.
    text_hash: Option<String>,
}

/// Entities a scan read before, cleanly, by the sha256 of their text (the stat cache's rows
/// of a `file` collection: [`KnownFile::file_hash`] is the entity's text hash there): an entry
/// whose text is one of these holds what it held then, and is neither parsed nor checked again.
pub(super) struct KnownTexts<'a> {
    /// Id → row (the document's own, `""`, and rows without a text hash never match).
    files: &'a HashMap<String, KnownFile>,
    /// Text hash → (id, content hash), for arrays (the id is inside the text); made on the
    /// first lookup.
    by_text: std::cell::OnceCell<HashMap<&'a str, (&'a str, &'a str)>>,
}

impl<'a> KnownTexts<'a> {
    /// The entity rows of `files`.
    pub(super) fn of(files: &'a HashMap<String, KnownFile>) -> KnownTexts<'a> {
        KnownTexts {
            files,
            by_text: std::cell::OnceCell::new(),
        }
    }

    fn usable(id: &str, k: &KnownFile) -> bool {
        !id.is_empty() && !k.file_hash.is_empty() && !k.hash.is_empty()
    }

    fn by_text(&self) -> &HashMap<&'a str, (&'a str, &'a str)> {
        self.by_text.get_or_init(|| {
            self.files
                .iter()
                .filter(|(id, k)| Self::usable(id, k))
                .map(|(id, k)| (k.file_hash.as_str(), (id.as_str(), k.hash.as_str())))
                .collect()
        })
    }
}

/// How [`analyze`] reads the entries.
pub(super) enum Read<'a> {
    /// For a write of these ids, which parses the entries it changes ([`edit`]): parses only
    /// what it must to follow the collection (every entry's id, the document's shape), and
    /// checks for what holds an entity (a repeated key, too deep) only the entries written;
    /// hashes nothing.
    Lazy(&'a BTreeSet<&'a str>),
    /// Parses every entry whose text is not known, and hashes every entry's text.
    Scan(&'a KnownTexts<'a>),
}

impl Read<'_> {
    fn parses(&self) -> bool {
        matches!(self, Read::Scan(_))
    }

    fn hashes(&self) -> bool {
        matches!(self, Read::Scan(_))
    }

    /// Whether the entry of `id` is checked for what holds an entity.
    fn checks(&self, id: &str) -> bool {
        match self {
            Read::Lazy(ids) => ids.contains(id),
            Read::Scan(_) => true,
        }
    }

    /// The id and content hash of the entity whose text has sha256 `text_hash` (with `id`: a
    /// map's entry, whose id is its key), if known.
    fn known(&self, text_hash: &str, id: Option<&str>) -> Option<(&str, &str)> {
        let Read::Scan(k) = self else {
            return None;
        };
        match id {
            Some(id) => k
                .files
                .get_key_value(id)
                .filter(|(id, f)| KnownTexts::usable(id, f) && f.file_hash == text_hash)
                .map(|(id, f)| (id.as_str(), f.hash.as_str())),
            None => k.by_text().get(text_hash).copied(),
        }
    }
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

/// The id of the array element at `item` read from its text, as [`element_id`] reads it from
/// the parsed element (the last of repeated keys counts).
fn element_id_text(text: &[u8], item: Span, id_field: &str) -> Option<String> {
    let members = spans::object_members(text, item)?;
    let m = members
        .iter()
        .rev()
        .find(|m| spans::key_is(text, m.key, id_field))?;
    match serde_json::from_slice::<Value>(&text[m.value.start..m.value.end]).ok()? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// [`limits::too_deep_to_sync`] of an object's text, unparsed.
fn too_deep_text(bytes: &[u8]) -> Option<String> {
    let depth = spans::nesting(bytes);
    (depth > MAX_ENTITY_DEPTH).then(|| {
        format!(
            "nested {depth} levels deep, more than the {MAX_ENTITY_DEPTH} deltasync syncs; entity held"
        )
    })
}

/// Understands the document text (without byte order mark), parsing its entries as `read`
/// says.
fn analyze(
    file: &Path,
    text: &[u8],
    tokens: &[String],
    id_field: &str,
    read: &Read<'_>,
) -> Analysis {
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
            a.entries.reserve_exact(items.len());
            for (n, item) in items.into_iter().enumerate() {
                let bytes = &text[item.start..item.end];
                let text_hash = read.hashes().then(|| sha256_hex(bytes));
                // Text read before, cleanly: the entity it held, not parsed again.
                let known = text_hash.as_deref().and_then(|h| read.known(h, None));
                let (id, entity, known) = if let Some((id, content)) = known {
                    (id.to_owned(), None, Some(content.to_owned()))
                } else if !read.parses() && bytes.first() == Some(&b'{') {
                    let Some(id) = element_id_text(text, item, id_field) else {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(item.start),
                            format!(
                                "element {n} has no {id_field:?} (a non-empty string or a number)"
                            ),
                            None,
                        ));
                        a.whole_held = true;
                        continue;
                    };
                    (id, None, None)
                } else {
                    let entity = match serde_json::from_slice::<Value>(bytes) {
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
                            format!(
                                "element {n} has no {id_field:?} (a non-empty string or a number)"
                            ),
                            None,
                        ));
                        a.whole_held = true;
                        continue;
                    };
                    (id, Some(entity), None)
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
                if known.is_none() && read.checks(&id) {
                    let dup = spans::duplicate_key(bytes);
                    let deep = match &entity {
                        Some(e) => limits::too_deep_to_sync(e),
                        None => too_deep_text(bytes),
                    };
                    let problem = match (dup, deep) {
                        (Some((key, at)), _) => Some((
                            item.start + at,
                            format!("element {n} ({id:?}) {}", twice(&key)),
                        )),
                        (None, Some(message)) => {
                            Some((item.start, format!("element {n} ({id:?}) is {message}")))
                        }
                        (None, None) => None,
                    };
                    if let Some((at, message)) = problem {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(at),
                            message,
                            Some(vec![id.clone()]),
                        ));
                        a.held.insert(id.clone());
                        a.entries.push(Entry {
                            id,
                            item,
                            value: item,
                            entity: None,
                            known: None,
                            text_hash: None,
                        });
                        continue;
                    }
                }
                a.entries.push(Entry {
                    id,
                    item,
                    value: item,
                    entity,
                    known,
                    text_hash,
                });
            }
        }
        Target::Map(span) => {
            let Some(members) = spans::object_members(text, span) else {
                return unexpected(Some(span.start));
            };
            let mut seen = BTreeSet::new();
            a.entries.reserve_exact(members.len());
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
                let item = Span {
                    start: m.key.start,
                    end: m.value.end,
                };
                let bytes = &text[m.value.start..m.value.end];
                let text_hash = read.hashes().then(|| sha256_hex(bytes));
                if let Some((_, content)) =
                    text_hash.as_deref().and_then(|h| read.known(h, Some(&id)))
                {
                    a.entries.push(Entry {
                        id,
                        item,
                        value: m.value,
                        entity: None,
                        known: Some(content.to_owned()),
                        text_hash,
                    });
                    continue;
                }
                let is_object = bytes.first() == Some(&b'{');
                if is_object && !id.is_empty() && !read.checks(&id) {
                    a.entries.push(Entry {
                        id,
                        item,
                        value: m.value,
                        entity: None,
                        known: None,
                        text_hash: None,
                    });
                    continue;
                }
                let dup = spans::duplicate_key(bytes);
                let parsed = if read.parses() || !is_object {
                    match serde_json::from_slice::<Value>(bytes) {
                        Ok(v) => Some(v),
                        Err(_) => return unexpected(Some(m.value.start)),
                    }
                } else {
                    None
                };
                let problem = match (&parsed, is_object) {
                    _ if is_object && dup.is_some() => {
                        let (key, at) = dup.expect("matched");
                        Some((m.value.start + at, format!("entry {id:?} {}", twice(&key))))
                    }
                    (_, true) if !id.is_empty() => {
                        let deep = match &parsed {
                            Some(Value::Object(e)) => limits::too_deep_to_sync(e),
                            _ => too_deep_text(bytes),
                        };
                        deep.map(|message| (m.key.start, format!("entry {id:?} is {message}")))
                    }
                    _ => {
                        let why = if id.is_empty() {
                            "an empty id".to_owned()
                        } else {
                            let found = parsed.as_ref().map_or("value", type_name);
                            format!("a {found}, not an object")
                        };
                        Some((m.key.start, format!("entry {id:?} is {why}; entity held")))
                    }
                };
                let entity = match problem {
                    Some((at, message)) => {
                        a.problems.push(problem_at(
                            file,
                            text,
                            Some(at),
                            message,
                            Some(vec![id.clone()]),
                        ));
                        a.held.insert(id.clone());
                        None
                    }
                    None => match parsed {
                        Some(Value::Object(e)) => Some(e),
                        _ => None,
                    },
                };
                let held = entity.is_none() && a.held.contains(&id);
                a.entries.push(Entry {
                    id,
                    item,
                    value: m.value,
                    entity,
                    known: None,
                    text_hash: if held { None } else { text_hash },
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

/// Reads a `file` collection's document. Taken without reading it: a document whose stat is
/// what `known` says it was when it was read cleanly. Taken without parsing it: one whose
/// bytes are the ones read then (its sha256). Otherwise it is analysed, and each entry whose
/// text is one `known` holds an entity of (the stat cache's entity rows, [`KnownTexts`]) is
/// taken by its text, in [`Scan::known`]; only the others are parsed. [`Scan::texts`] holds
/// the text hash of every entry parsed.
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
        texts: BTreeMap::new(),
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
    let known_whole = || {
        known
            .files
            .iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(id, k)| (id.clone(), k.hash.clone()))
            .collect()
    };
    // A document whose stat is what it was when it was read (cleanly) holds what it held.
    if let Some(doc) = known.files.get("")
        && let Ok(meta) = fs::metadata(path)
        && meta.is_file()
        && FileStat::of(&meta) == doc.stat
    {
        out.fingerprint = Fingerprint::File {
            hash: Some(doc.file_hash.clone()),
        };
        out.known = known_whole();
        return Ok(out);
    }
    let (stamp, bytes, stat) = match read_file_stat(path) {
        Ok(Some((stamp, stat, b))) => (stamp, b, stat),
        Ok(None) => return Ok(out),
        Err(e) => return Err(io_err("read", path, e)),
    };
    let trusted = stat.filter(|s| s.changed_before(known.trust_before));
    out.fingerprint = Fingerprint::File {
        hash: Some(stamp.hash.clone()),
    };
    // The same bytes as when it was read (cleanly), under a new stat (the app saved it
    // unchanged, or it was copied): they hold what they held.
    if let Some(doc) = known.files.get("")
        && doc.file_hash == stamp.hash
    {
        out.known = known_whole();
        if let Some(stat) = trusted {
            out.stats.insert(String::new(), stat);
        }
        return Ok(out);
    }
    let texts = KnownTexts::of(&known.files);
    let a = analyze(
        path,
        split_bom(&bytes).1,
        tokens,
        id_field,
        &Read::Scan(&texts),
    );
    out.problems = a.problems;
    out.held = a.held;
    out.whole_collection_held = a.whole_held;
    for e in a.entries {
        match (e.entity, e.known) {
            (Some(entity), _) => {
                if let Some(h) = e.text_hash {
                    out.texts.insert(e.id.clone(), h);
                }
                out.entities.insert(e.id, Value::Object(entity));
            }
            (None, Some(hash)) => {
                out.known.insert(e.id, hash);
            }
            (None, None) => {}
        }
    }
    // Only a clean read stands for the document next time: one with problems is read again.
    if let Some(stat) = trusted
        && out.problems.is_empty()
        && out.held.is_empty()
        && !out.whole_collection_held
    {
        out.stats.insert(String::new(), stat);
    }
    Ok(out)
}
