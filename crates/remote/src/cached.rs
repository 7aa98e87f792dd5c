//! `Cached`: a `Remote` layer that keeps copies of the remote's immutable files (deltas) in a
//! local folder, so that a delta is downloaded at most once per device.

use std::path::{Path, PathBuf};

use crate::{Etag, Forward, GetResult, PutMode, Remote, RemoteError};

/// A [`Remote`] layer that keeps each delta (`deltas/g<N>/<name>.json`) it reads or writes in a
/// local folder, byte for byte, and answers later reads of it from there. Deltas are created
/// once under a unique name and never changed (`docs/format.md`), so a copy never goes stale;
/// whoever reads one still verifies it against the checksum meta.json gives, and
/// [`Remote::forget`] drops a copy that fails (the next read asks the server).
///
/// Only paths of that exact shape are kept (a generation number, then a name of letters,
/// digits, `-` and `_`): a path from the remote never leads outside the folder. When the first
/// delta of a generation is kept, the copies of older generations go (a compaction folded
/// them); a delete through the layer drops the copy too. Copies are written to a temporary
/// file and renamed, so a crash leaves a whole copy or none. The cache is best-effort: a copy
/// that cannot be written or read is fetched from the remote.
///
/// ```
/// use deltasync_remote::{Cached, GetResult, MemoryRemote, PutMode, Remote};
///
/// let dir = std::env::temp_dir().join(format!("cached-doc-{}", std::process::id()));
/// let files = MemoryRemote::new();
/// let remote = Cached::new(files.clone(), &dir);
/// remote.put("deltas/g0/a-1-0000beef.json", b"{}", &PutMode::CreateOnly).unwrap();
/// files.reset_stats();
/// let got = remote.get("deltas/g0/a-1-0000beef.json", None).unwrap();
/// assert!(matches!(got, GetResult::Found { body, .. } if body == b"{}"));
/// assert_eq!(files.stats().gets, 0, "read from the local copy");
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub struct Cached<R> {
    inner: R,
    dir: PathBuf,
}

impl<R: Remote> Cached<R> {
    /// Keeps copies of `inner`'s deltas under `dir` (created when needed).
    pub fn new(inner: R, dir: impl AsRef<Path>) -> Self {
        Cached {
            inner,
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// The remote this layer wraps (reads through it reach the remote, never a copy).
    pub fn uncached(&self) -> &R {
        &self.inner
    }

    /// Whether a copy of `path` is kept here (a read of it will not reach the remote).
    pub fn holds(&self, path: &str) -> bool {
        self.local(path).is_some_and(|p| p.is_file())
    }

    /// The local copy's path for a remote path that names a delta, else `None`.
    fn local(&self, path: &str) -> Option<PathBuf> {
        let (generation, name) = delta_parts(path)?;
        Some(self.dir.join(format!("g{generation}")).join(name))
    }

    /// Keeps `body` as the copy of `path` (best-effort).
    fn keep(&self, path: &str, body: &[u8]) {
        let (Some(local), Some((generation, _))) = (self.local(path), delta_parts(path)) else {
            return;
        };
        let Some(folder) = local.parent() else {
            return;
        };
        if !folder.exists() {
            self.drop_generations_below(generation);
        }
        let tmp = folder.join(format!(".tmp-{:08x}", fastrand::u32(..)));
        let written = std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(&tmp, body))
            .and_then(|()| std::fs::rename(&tmp, &local));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(error = %e, path, "could not keep a copy of a delta");
        }
    }

    /// Removes the copies of generations below `generation`: a compaction folded them.
    fn drop_generations_below(&self, generation: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let older = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix('g'))
                .and_then(|g| g.parse::<u64>().ok())
                .is_some_and(|g| g < generation);
            if older {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Drops the copy of `path`, or of a whole generation's folder (`deltas/g<N>/`).
    fn drop_copy(&self, path: &str) {
        if let Some(local) = self.local(path) {
            let _ = std::fs::remove_file(local);
        } else if let Some(g) = path
            .strip_prefix("deltas/g")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
        {
            let _ = std::fs::remove_dir_all(self.dir.join(format!("g{g}")));
        }
    }
}

/// `deltas/g<N>/<name>.json` → (N, `<name>.json`), for names of letters, digits, `-` and `_`.
fn delta_parts(path: &str) -> Option<(u64, &str)> {
    let rest = path.strip_prefix("deltas/g")?;
    let (generation, name) = rest.split_once('/')?;
    let generation = generation
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| generation.parse::<u64>().ok())??;
    let stem = name.strip_suffix(".json")?;
    let plain = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some((generation, name))
}

impl<R: Remote> Forward for Cached<R> {
    fn inner(&self) -> &dyn Remote {
        &self.inner
    }

    fn read(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: Option<u64>,
    ) -> Result<GetResult, RemoteError> {
        let Some(local) = self.local(path).filter(|_| if_none_match.is_none()) else {
            return self.forward_read(path, if_none_match, max_len);
        };
        if let Ok(body) = std::fs::read(&local)
            && max_len.is_none_or(|max| body.len() as u64 <= max)
        {
            return Ok(GetResult::Found { body, etag: None });
        }
        let got = self.forward_read(path, if_none_match, max_len)?;
        if let GetResult::Found { body, .. } = &got {
            self.keep(path, body);
        }
        Ok(got)
    }

    fn write(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        let written = self.forward_write(path, body, mode, mtime)?;
        self.keep(path, body);
        Ok(written)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.drop_copy(path);
        self.inner.delete(path)
    }

    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        for p in paths {
            self.drop_copy(p);
        }
        self.inner.delete_many(paths)
    }

    fn forget(&self, path: &str) {
        self.drop_copy(path);
        self.inner.forget(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryRemote;

    const DELTA: &str = "deltas/g3/dev-1-00c0ffee.json";

    fn cached() -> (tempfile::TempDir, MemoryRemote, Cached<MemoryRemote>) {
        let dir = tempfile::tempdir().unwrap();
        let files = MemoryRemote::new();
        let remote = Cached::new(files.clone(), dir.path());
        (dir, files, remote)
    }

    #[test]
    fn a_delta_is_downloaded_once() {
        let (_dir, files, remote) = cached();
        files.raw_put(DELTA, b"one");
        for _ in 0..3 {
            let got = remote.get(DELTA, None).unwrap();
            assert!(matches!(got, GetResult::Found { body, .. } if body == b"one"));
        }
        assert_eq!(files.stats().gets, 1);
        // A copy that fails its checksum upstream is forgotten: the next read asks again.
        Remote::forget(&remote, DELTA);
        remote.get(DELTA, None).unwrap();
        assert_eq!(files.stats().gets, 2);
    }

    #[test]
    fn only_deltas_are_kept_and_no_path_leaves_the_folder() {
        let (dir, files, remote) = cached();
        for path in [
            "meta.json",
            "data.json",
            "deltas/g3/../../../escape.json",
            "deltas/g3/a/b.json",
            "deltas/gx/a.json",
            "deltas/g3/.json",
            "archive/g0-1-2-00000000.zip",
        ] {
            if crate::check_path(path).is_ok() {
                files.raw_put(path, b"x");
            }
            let _ = remote.get(path, None);
            let _ = remote.get(path, None);
        }
        assert_eq!(files.stats().gets, 14, "every read went to the remote");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing was kept"
        );
        assert!(!dir.path().parent().unwrap().join("escape.json").exists());
    }

    #[test]
    fn older_generations_go_when_a_new_one_starts_and_deletes_drop_copies() {
        let (dir, files, remote) = cached();
        remote
            .put("deltas/g2/a-1-00000001.json", b"1", &PutMode::CreateOnly)
            .unwrap();
        remote.put(DELTA, b"2", &PutMode::CreateOnly).unwrap();
        assert!(!dir.path().join("g2").exists());
        assert!(dir.path().join("g3/dev-1-00c0ffee.json").exists());
        Remote::delete(&remote, "deltas/g3").unwrap();
        assert!(!dir.path().join("g3").exists());
        files.reset_stats();
        assert_eq!(remote.get(DELTA, None).unwrap(), GetResult::NotFound);
        assert_eq!(files.stats().gets, 1);
    }

    #[test]
    fn a_copy_larger_than_the_limit_is_not_served() {
        let (_dir, files, remote) = cached();
        files.raw_put(DELTA, b"0123456789");
        remote.get(DELTA, None).unwrap();
        let e = remote.get_max(DELTA, None, 4);
        assert!(!matches!(e, Ok(GetResult::Found { .. })), "{e:?}");
        assert_eq!(files.stats().gets, 2, "the limited read went to the remote");
    }
}
