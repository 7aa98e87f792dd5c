use super::*;

/// How a document is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Style {
    /// One level of indentation, or `None` for compact one-line text.
    pub indent: Option<String>,
    /// Line end.
    pub newline: &'static str,
    /// Between a key and its value: `": "` or `":"`.
    pub key_sep: &'static str,
    /// After a comma in compact text: `" "` or `""`.
    pub compact_gap: &'static str,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            indent: Some("  ".into()),
            newline: "\n",
            key_sep: ": ",
            compact_gap: "",
        }
    }
}

impl Style {
    /// Detects the style of JSON text (without byte order mark).
    pub(super) fn detect(b: &[u8]) -> Style {
        let mut style = Style {
            indent: None,
            newline: "\n",
            key_sep: ":",
            compact_gap: "",
        };
        let mut key_sep_seen = false;
        let mut comma_seen = false;
        let mut depth = 0usize;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    // Skip the string.
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b':' if !key_sep_seen => {
                    key_sep_seen = true;
                    if b.get(i + 1) == Some(&b' ') {
                        style.key_sep = ": ";
                    }
                }
                b',' if !comma_seen => {
                    comma_seen = true;
                    if b.get(i + 1) == Some(&b' ') {
                        style.compact_gap = " ";
                    }
                }
                b'\n' if depth >= 1 && style.indent.is_none() => {
                    if i > 0 && b[i - 1] == b'\r' {
                        style.newline = "\r\n";
                    }
                    let run = b[i + 1..]
                        .iter()
                        .take_while(|&&c| c == b' ' || c == b'\t')
                        .count();
                    let next = b.get(i + 1 + run).copied();
                    let run_text = &b[i + 1..i + 1 + run];
                    let closer = matches!(next, Some(b'}' | b']'));
                    let level = if closer { depth - 1 } else { depth };
                    if run > 0 && level > 0 && run % level == 0 {
                        let unit = &run_text[..run / level];
                        if run_text.chunks(unit.len()).all(|c| c == unit) {
                            style.indent = Some(String::from_utf8_lossy(unit).into_owned());
                        }
                    }
                    if style.indent.is_none() {
                        // Line breaks inside, but no usable indent: still pretty text.
                        style.indent = Some(if run_text.first() == Some(&b'\t') {
                            "\t".into()
                        } else {
                            "  ".into()
                        });
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if style.indent.is_none() && !key_sep_seen && !comma_seen {
            // Nothing to go by (`[]`, `{}`, a scalar): the default.
            return Style::default();
        }
        if style.indent.is_some() && !key_sep_seen {
            style.key_sep = ": ";
        }
        if !comma_seen && style.key_sep == ": " {
            style.compact_gap = " ";
        }
        style
    }

    /// Between two items of a container whose items start at `prefix`.
    pub(super) fn item_gap(&self, prefix: &str) -> String {
        match &self.indent {
            Some(_) => format!("{}{prefix}", self.newline),
            None => self.compact_gap.to_owned(),
        }
    }
}

/// Writes a JSON string literal the way serde_json does.
pub(super) fn write_str(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `v` in `style`; `prefix` is the indentation of the line `v` starts on.
pub(super) fn render(v: &Value, style: &Style, prefix: &str, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('{');
            let inner = style.indent.as_ref().map(|u| format!("{prefix}{u}"));
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &inner {
                    Some(inner) => {
                        out.push_str(style.newline);
                        out.push_str(inner);
                    }
                    None if i > 0 => out.push_str(style.compact_gap),
                    None => {}
                }
                write_str(k, out);
                out.push_str(style.key_sep);
                render(x, style, inner.as_deref().unwrap_or(prefix), out);
            }
            if inner.is_some() {
                out.push_str(style.newline);
                out.push_str(prefix);
            }
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            let inner = style.indent.as_ref().map(|u| format!("{prefix}{u}"));
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &inner {
                    Some(inner) => {
                        out.push_str(style.newline);
                        out.push_str(inner);
                    }
                    None if i > 0 => out.push_str(style.compact_gap),
                    None => {}
                }
                render(x, style, inner.as_deref().unwrap_or(prefix), out);
            }
            if inner.is_some() {
                out.push_str(style.newline);
                out.push_str(prefix);
            }
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => write_str(s, out),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// `new` with its object keys in `old`'s order where `old` has them (recursively; array
/// elements by position), new keys after them in their own order. Only the order changes.
pub(super) fn align_order(new: Value, old: &Value) -> Value {
    match (new, old) {
        (Value::Object(mut n), Value::Object(o)) => {
            let mut out = Map::with_capacity(n.len());
            for (k, ov) in o {
                if let Some(nv) = n.get_mut(k) {
                    out.insert(k.clone(), align_order(nv.take(), ov));
                }
            }
            for (k, v) in n {
                if !out.contains_key(&k) {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
        (Value::Array(n), Value::Array(o)) => Value::Array(
            n.into_iter()
                .enumerate()
                .map(|(i, v)| match o.get(i) {
                    Some(ov) => align_order(v, ov),
                    None => v,
                })
                .collect(),
        ),
        (n, _) => n,
    }
}
