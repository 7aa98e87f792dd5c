//! `file` collections, writing: writes checked, then made in the document's text, in its style.

use super::*;

/// Where a collection is in its document and how it is made.
pub(crate) struct Layout<'a> {
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
        // The analysis parsed nothing it did not have to: an entity written is parsed here.
        let parsed = match (puts.get(e.id.as_str()), &e.entity) {
            (Some(_), None) if !a.held.contains(&e.id) => {
                match serde_json::from_slice::<Value>(&text[e.value.start..e.value.end]) {
                    Ok(Value::Object(m)) => Some(m),
                    _ => {
                        return Err(CollectionError::Held {
                            path: path.to_owned(),
                            reason: format!("entry {:?} could not be read back", e.id),
                        });
                    }
                }
            }
            _ => None,
        };
        match (
            puts.get(e.id.as_str()),
            e.entity.as_ref().or(parsed.as_ref()),
        ) {
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

pub(crate) fn apply(
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
            let ids: BTreeSet<&str> = writes.iter().map(Write::id).collect();
            let a = analyze(path, text, tokens, id_field, &Read::Lazy(&ids));
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
