//! Entity ids ↔ file stems.
//!
//! A `dir` collection keeps one `<stem>.json` per entity, and the stem is the entity's id. Ids
//! come from users' data, so they are never trusted as paths: [`encode_id`] turns an id into a
//! stem that is a plain file name on Linux, macOS and Windows, and [`decode_stem`] turns a stem
//! back into the id.
//!
//! The encoding is percent-encoding (`%XX`, uppercase hex of the UTF-8 bytes) of only what a
//! file name cannot hold, so that ordinary ids (letters, digits, `-`, `_`, `.` inside, spaces,
//! non-ASCII letters) stay readable as they are, the way apps name these files themselves:
//!
//! - `%` itself, `/`, `\`, control characters (NUL, newline, DEL, C1 controls…), and `:*?"<>|`;
//! - a leading `.` (no hidden files, no `.` or `..`), a trailing `.` or space;
//! - the first character of a Windows reserved device name (`CON`, `PRN`, `AUX`, `NUL`,
//!   `COM0`–`COM9`, `LPT0`–`LPT9`, their superscript-digit forms, `CONIN$`, `CONOUT$`; any
//!   case, also followed by an extension such as `con.txt`), so `CON` becomes `%43ON`.
//!
//! Every id has exactly one stem, and [`decode_stem`] accepts only that canonical stem: a file
//! name that is not one (`%41`, `%2f`, `con`…) is an error the caller reports and skips, never an
//! entity (and so never a deleted one).
//!
//! ```
//! use deltasync_engine::ids::{decode_stem, encode_id};
//! assert_eq!(encode_id("buy milk").unwrap(), "buy milk");
//! assert_eq!(encode_id("../etc/passwd").unwrap(), "%2E.%2Fetc%2Fpasswd");
//! assert_eq!(decode_stem("%2E.%2Fetc%2Fpasswd").unwrap(), "../etc/passwd");
//! assert!(decode_stem("%2e.").is_err()); // not canonical
//! ```
//!
//! Two limits the encoding cannot lift: on a case-insensitive file system (Windows, macOS by
//! default) ids differing only in case share a file, and macOS may hand back a name in another
//! Unicode normalisation form than the one written. The collections module never overwrites a
//! file it did not expect, so such a clash shows up as a write that keeps being deferred, never
//! as lost data.

use std::path::{Path, PathBuf};

/// The longest stem (in bytes, after encoding) a file may have: 200 leaves room for `.json` and
/// for the temporary names used while writing, under the usual 255-byte file name limit.
pub const MAX_STEM_BYTES: usize = 200;

/// Why an id cannot be a file stem, or a file stem is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is the empty string.
    #[error("empty entity id")]
    Empty,
    /// The encoded stem would exceed [`MAX_STEM_BYTES`]; ids are never truncated.
    #[error(
        "entity id too long for a file name: its file stem would be {stem_bytes} bytes (at most {max} allowed)"
    )]
    TooLong {
        /// Length in bytes of the stem the id would need.
        stem_bytes: usize,
        /// The limit, [`MAX_STEM_BYTES`].
        max: usize,
    },
    /// A file stem that is not the canonical encoding of any id.
    #[error("file name {stem:?} is not an entity id deltasync understands: {reason}")]
    NotCanonical {
        /// The stem as found.
        stem: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path built for an id would not be a direct child of the collection folder (cannot
    /// happen with a stem from [`encode_id`]; checked anyway).
    #[error("entity id {id:?} does not map to a file directly inside {}", dir.display())]
    EscapesDir {
        /// The id.
        id: String,
        /// The collection folder.
        dir: PathBuf,
    },
}

/// Windows device names, compared case-insensitively with the part of a name before its first
/// `.` (trailing spaces ignored).
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Whether a file name (or stem) is a Windows reserved device name, with or without extension.
fn is_reserved(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(base))
}

/// Characters that are encoded wherever they appear.
fn always_encoded(c: char) -> bool {
    matches!(
        c,
        '%' | '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|'
    ) || c.is_control()
}

fn push_encoded(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Encodes an entity id as a file stem (see the module documentation for the rules).
///
/// Errors: [`IdError::Empty`] for `""`, [`IdError::TooLong`] when the stem would exceed
/// [`MAX_STEM_BYTES`].
pub fn encode_id(id: &str) -> Result<String, IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let last = id.chars().count() - 1;
    let mut stem = String::with_capacity(id.len());
    for (i, c) in id.chars().enumerate() {
        let encode =
            always_encoded(c) || (i == 0 && c == '.') || (i == last && matches!(c, '.' | ' '));
        if encode {
            push_encoded(&mut stem, c);
        } else {
            stem.push(c);
        }
    }
    if is_reserved(&stem) {
        // The first character of every reserved name is an ASCII letter: encode it.
        let first = stem.remove(0);
        let mut prefixed = String::with_capacity(stem.len() + 3);
        push_encoded(&mut prefixed, first);
        prefixed.push_str(&stem);
        stem = prefixed;
    }
    if stem.len() > MAX_STEM_BYTES {
        return Err(IdError::TooLong {
            stem_bytes: stem.len(),
            max: MAX_STEM_BYTES,
        });
    }
    Ok(stem)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a file stem back into the entity id. Only canonical stems are accepted: those that
/// [`encode_id`] produces, so `encode_id(&decode_stem(s)?)? == s` always holds.
pub fn decode_stem(stem: &str) -> Result<String, IdError> {
    let not = |reason| IdError::NotCanonical {
        stem: stem.to_owned(),
        reason,
    };
    if stem.is_empty() {
        return Err(not("empty file stem"));
    }
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(not("'%' not followed by two uppercase hex digits")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).map_err(|_| not("escapes do not decode to UTF-8"))?;
    match encode_id(&id) {
        Ok(canonical) if canonical == stem => Ok(id),
        Ok(_) => Err(not("not the canonical encoding of its id")),
        Err(IdError::TooLong { .. }) => Err(not("longer than an entity file name may be")),
        Err(_) => Err(not("does not encode an id")),
    }
}

/// The file of entity `id` in a `dir` collection: `dir/<stem>.json`, always a direct child of
/// `dir`.
pub fn entity_path(dir: &Path, id: &str) -> Result<PathBuf, IdError> {
    let name = format!("{}.json", encode_id(id)?);
    let path = dir.join(&name);
    let direct_child = path.parent() == Some(dir)
        && path.file_name().and_then(|n| n.to_str()) == Some(name.as_str());
    debug_assert!(direct_child, "encoded stem escaped its folder: {name:?}");
    if !direct_child {
        return Err(IdError::EscapesDir {
            id: id.to_owned(),
            dir: dir.to_owned(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    /// Checks every promise about a stem.
    fn assert_safe_stem(stem: &str) {
        assert!(!stem.is_empty());
        assert!(stem.len() <= MAX_STEM_BYTES, "{stem:?}");
        assert!(
            !stem
                .chars()
                .any(|c| c.is_control() || "/\\:*?\"<>|".contains(c)),
            "forbidden character in {stem:?}"
        );
        assert!(!stem.starts_with('.'), "{stem:?}");
        assert!(!stem.ends_with('.') && !stem.ends_with(' '), "{stem:?}");
        assert!(stem != "." && stem != "..");
        assert!(!is_reserved(stem), "{stem:?}");
        assert!(!is_reserved(&format!("{stem}.json")), "{stem:?}");
        // Every '%' starts an uppercase escape.
        let b = stem.as_bytes();
        for (i, _) in stem.match_indices('%') {
            assert!(
                b.len() > i + 2 && hex_value(b[i + 1]).is_some() && hex_value(b[i + 2]).is_some(),
                "{stem:?}"
            );
        }
    }

    fn assert_stays_in_dir(id: &str) {
        let dir = Path::new("/srv/ws/tasks");
        let path = entity_path(dir, id).unwrap();
        assert_eq!(path.parent(), Some(dir));
        let extra: Vec<_> = path.strip_prefix(dir).unwrap().components().collect();
        assert_eq!(extra.len(), 1, "{path:?}");
        assert!(matches!(extra[0], Component::Normal(_)), "{path:?}");
        // Also relative to a relative folder.
        let rel = Path::new("tasks");
        let p = entity_path(rel, id).unwrap();
        assert_eq!(p.parent(), Some(rel));
    }

    #[test]
    fn nasty_ids() {
        let long = "a".repeat(300);
        let cases: &[(&str, Result<&str, IdError>)] = &[
            ("..", Ok("%2E%2E")),
            (".", Ok("%2E")),
            ("../../etc/passwd", Ok("%2E.%2F..%2Fetc%2Fpasswd")),
            ("a/b", Ok("a%2Fb")),
            ("a\\b", Ok("a%5Cb")),
            ("\0", Ok("%00")),
            ("\n", Ok("%0A")),
            ("a\u{7f}\u{85}", Ok("a%7F%C2%85")),
            ("CON", Ok("%43ON")),
            ("con", Ok("%63on")),
            ("con.txt", Ok("%63on.txt")),
            ("Com1", Ok("%43om1")),
            ("lpt9.tar.gz", Ok("%6Cpt9.tar.gz")),
            ("nul ", Ok("nul%20")), // the encoded space already breaks the device name
            ("nul .x", Ok("%6Eul .x")),
            ("COM¹", Ok("%43OM¹")),
            ("CONSOLE", Ok("CONSOLE")),
            ("COM10", Ok("COM10")),
            (".hidden", Ok("%2Ehidden")),
            ("trailing.", Ok("trailing%2E")),
            ("trailing ", Ok("trailing%20")),
            ("%41", Ok("%2541")),
            ("100%", Ok("100%25")),
            ("a:b*c?d\"e<f>g|h", Ok("a%3Ab%2Ac%3Fd%22e%3Cf%3Eg%7Ch")),
            ("😀 tâche", Ok("😀 tâche")),
            ("buy milk", Ok("buy milk")),
            ("v1.2_x-y", Ok("v1.2_x-y")),
            (" lead", Ok(" lead")),
            ("", Err(IdError::Empty)),
            (
                &long,
                Err(IdError::TooLong {
                    stem_bytes: 300,
                    max: 200,
                }),
            ),
        ];
        for (id, want) in cases {
            let got = encode_id(id);
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want.clone(),
                "id {id:?}"
            );
            if let Ok(stem) = got {
                assert_safe_stem(&stem);
                assert_eq!(decode_stem(&stem).unwrap(), *id);
                assert_stays_in_dir(id);
            } else {
                assert!(entity_path(Path::new("d"), id).is_err());
            }
        }
    }

    #[test]
    fn length_limit_counts_encoded_bytes() {
        assert!(encode_id(&"a".repeat(200)).is_ok());
        assert!(matches!(
            encode_id(&"a".repeat(201)),
            Err(IdError::TooLong { .. })
        ));
        // 67 slashes are 201 bytes once encoded.
        assert_eq!(encode_id(&"/".repeat(66)).unwrap().len(), 198);
        assert!(matches!(
            encode_id(&"/".repeat(67)),
            Err(IdError::TooLong {
                stem_bytes: 201,
                ..
            })
        ));
        // Multi-byte characters count in bytes.
        assert!(matches!(
            encode_id(&"é".repeat(101)),
            Err(IdError::TooLong {
                stem_bytes: 202,
                ..
            })
        ));
    }

    #[test]
    fn non_canonical_stems_are_refused() {
        for stem in [
            "",
            "%41",
            "%2e",
            "%2f",
            "%",
            "%4",
            "%G0",
            "a%2",
            "%FF",
            "%C3",
            ".hidden",
            "..",
            ".",
            "con",
            "CON",
            "con.txt",
            "a/b",
            "a\\b",
            "trailing.",
            "trailing ",
            "a:b",
            "\n",
            "%2ehidden",
            "a%20b",
        ] {
            assert!(
                matches!(decode_stem(stem), Err(IdError::NotCanonical { .. })),
                "{stem:?} was accepted"
            );
        }
        let long = "a".repeat(201);
        assert!(decode_stem(&long).is_err());
        assert_eq!(decode_stem("%2E%2E").unwrap(), "..");
        assert_eq!(decode_stem("a b").unwrap(), "a b");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn round_trip_arbitrary(id in any::<String>()) {
            match encode_id(&id) {
                Ok(stem) => {
                    assert_safe_stem(&stem);
                    prop_assert_eq!(decode_stem(&stem).unwrap(), id.clone());
                    assert_stays_in_dir(&id);
                }
                Err(IdError::Empty) => prop_assert!(id.is_empty()),
                Err(IdError::TooLong { stem_bytes, .. }) => prop_assert!(stem_bytes > MAX_STEM_BYTES),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn round_trip_nasty_alphabet(id in "[./\\\\ %:*?\"<>|\u{0}\n\u{7f}aAcCoOnNuUlLtTpP1é😀]{1,12}") {
            let stem = encode_id(&id).unwrap();
            assert_safe_stem(&stem);
            prop_assert_eq!(decode_stem(&stem).unwrap(), id.clone());
            assert_stays_in_dir(&id);
        }

        #[test]
        fn decode_accepts_only_canonical(stem in "[a%2EFC./ ]{0,10}") {
            if let Ok(id) = decode_stem(&stem) {
                prop_assert_eq!(encode_id(&id).unwrap(), stem);
            }
        }
    }
}
