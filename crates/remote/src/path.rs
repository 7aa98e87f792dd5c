//! Validation of remote paths.

/// A remote path that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote path '{path}': {reason}")]
pub struct PathError {
    /// The path, with control characters escaped.
    pub path: String,
    /// Why it is refused.
    pub reason: &'static str,
}

/// Checks that `path` is a relative, `/`-separated path that stays below the remote root:
/// no empty, `.` or `..` segment, no leading `/`, no backslash, NUL or control character.
/// The empty path is the root (allowed for `list`).
pub fn check_path(path: &str) -> Result<(), PathError> {
    let fail = |reason| {
        Err(PathError {
            path: path.escape_debug().to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return Ok(());
    }
    if path.starts_with('/') {
        return fail("absolute");
    }
    if path.chars().any(|c| c == '\\' || c.is_control()) {
        return fail("backslash or control character");
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return fail("empty, '.' or '..' segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["", "meta.json", "deltas/g0/a-b.json", "archive/x.zip"] {
            check_path(ok).unwrap();
        }
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "a/./b",
            "a\\b",
            "a\0b",
            "a/",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
