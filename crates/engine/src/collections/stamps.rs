//! Change detection by stat: what a file looked like to `stat` ([`FileStat`]), what a scan
//! learnt from reading it ([`KnownFile`]), and the rule for when a stat may stand in for
//! reading the file again ([`Known`]).
//!
//! A file whose size, modification time, change time and inode (the last two where the
//! platform has them: `cfg(unix)`; elsewhere size and modification time alone) are what they
//! were when it was last read holds what it held then. One caution, the one git calls "racy":
//! a file changed in the same clock tick as it was read, or just after, can keep its stat
//! while its bytes change. So a stat is only remembered when the file's last change is older
//! than the scan by more than [`RACY_WINDOW`]; a file changed more recently is read again by
//! the next scan, until it has been quiet long enough.

use std::collections::HashMap;
use std::fs;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, SystemTime};

/// How long a file must have been unchanged, before a scan starts, for its stat to stand in
/// for its content at the next scan: 2 s, which covers the coarsest timestamps in use (FAT
/// keeps mtimes to 2 s; ext4 and most others take them from a clock that ticks every few
/// milliseconds and lags the one we read) with room to spare. Files changed within it are
/// simply read again next time.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A file as `stat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch (negative before it); 0 when unknown.
    pub mtime_ns: i64,
    /// Status change time (unix: any write, rename, chmod), ns since the Unix epoch; 0 on
    /// platforms without one.
    pub ctime_ns: i64,
    /// Inode number (unix); 0 on platforms without one.
    pub ino: u64,
}

impl FileStat {
    /// The stat of `meta` (of the file itself: a caller that follows links passes the
    /// target's metadata).
    pub fn of(meta: &fs::Metadata) -> FileStat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            FileStat {
                size: meta.len(),
                mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
                ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            FileStat {
                size: meta.len(),
                mtime_ns: meta.modified().ok().map_or(0, ns_of),
                ctime_ns: 0,
                ino: 0,
            }
        }
    }

    /// The modification time, as `SystemTime`.
    pub fn mtime(&self) -> Option<SystemTime> {
        if self.mtime_ns == 0 {
            return None;
        }
        let abs = Duration::from_nanos(self.mtime_ns.unsigned_abs());
        if self.mtime_ns > 0 {
            SystemTime::UNIX_EPOCH.checked_add(abs)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(abs)
        }
    }

    /// Whether the file's last change (the later of mtime and ctime: an app can set an mtime
    /// in the past, never a ctime) came before `limit`.
    pub fn changed_before(&self, limit: SystemTime) -> bool {
        let limit = ns_of(limit);
        self.mtime_ns.max(self.ctime_ns) < limit
    }
}

/// `t` in ns since the Unix epoch (negative before it), saturating.
fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// What a scan learnt from reading a file: its stat then, the sha256 of its bytes, and the
/// content hash ([`deltasync_meta::content_hash`]) of the entity it held. For a `file`
/// collection the document has the entry of id `""` (with an empty `hash`), and each entity an
/// entry with the document's stat and no file hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFile {
    /// The stat when it was read.
    pub stat: FileStat,
    /// sha256 (hex) of the file's bytes (empty for an entity of a document).
    pub file_hash: String,
    /// Content hash of the entity (empty for a document's own entry).
    pub hash: String,
}

/// Files read before, for [`super::scan_known`]: by entity id (`""`: a `file` collection's
/// document), and the limit before which a file's last change must lie for the stat this scan
/// takes to be remembered ([`super::Scan::stats`]).
#[derive(Debug, Clone)]
pub struct Known {
    /// Entity id → what was read.
    pub files: HashMap<String, KnownFile>,
    /// The scan's start less [`RACY_WINDOW`] (or what a caller chose).
    pub trust_before: SystemTime,
}

impl Known {
    /// Nothing known, nothing to remember: a scan that reads every file ([`super::scan`]).
    pub fn nothing() -> Known {
        Known {
            files: HashMap::new(),
            trust_before: SystemTime::UNIX_EPOCH,
        }
    }
}

/// The stats of the files a lean scan ([`super::scan_dir_lean`]) may take by their stat, and,
/// after it, which it found unchanged. Kept by a 64-bit hash of the entity id, so that no id
/// is held: 100,000 files take about 6 MB. Two ids with one hash are never taken by their
/// stat (both files are read); an id that is not here and shares a hash with one that is
/// would need that file's exact stat too (on unix its inode and ctime) to be taken for it.
#[derive(Debug, Default)]
pub struct KnownStats {
    map: HashMap<u64, (FileStat, Mark), BuildHasherDefault<IdHasher>>,
    unchanged: usize,
}

/// What a lean scan found of one file of [`KnownStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not seen (yet): changed or gone.
    Unseen,
    /// Seen with the stat it had: unchanged.
    Unchanged,
    /// Two ids with one hash: never taken by its stat.
    Ambiguous,
}

/// The hasher of [`KnownStats`]' keys, which are hashes already.
#[derive(Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn key_of(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl KnownStats {
    /// Nothing known.
    pub fn new() -> KnownStats {
        KnownStats::default()
    }

    /// Nothing known yet, with room for `n` files (a table that grows holds its old and its
    /// new buckets at once).
    pub fn with_capacity(n: usize) -> KnownStats {
        KnownStats {
            map: HashMap::with_capacity_and_hasher(n, Default::default()),
            unchanged: 0,
        }
    }

    /// The file of `id` had `stat` when it was read, holding its entity's base.
    pub fn insert(&mut self, id: &str, stat: FileStat) {
        self.map
            .entry(key_of(id))
            .and_modify(|e| e.1 = Mark::Ambiguous)
            .or_insert((stat, Mark::Unseen));
    }

    /// Forgets the stat of `id`'s file: the scan reads it.
    pub fn remove(&mut self, id: &str) {
        if let Some(e) = self.map.get_mut(&key_of(id)) {
            if e.1 == Mark::Unchanged {
                self.unchanged -= 1;
            }
            e.1 = Mark::Ambiguous;
        }
    }

    /// How many files are known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no file is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `id`'s file has `stat`, the one known; marks it unchanged if so.
    pub(crate) fn take(&mut self, id: &str, stat: &FileStat) -> bool {
        match self.map.get_mut(&key_of(id)) {
            Some(e) if e.1 == Mark::Unseen && e.0 == *stat => {
                e.1 = Mark::Unchanged;
                self.unchanged += 1;
                true
            }
            _ => false,
        }
    }

    /// Marks `id`'s file unchanged though it was read (a full scan found its entity
    /// unchanged); `false`, and nothing marked, when another id has its hash.
    pub(crate) fn mark_unchanged(&mut self, id: &str) -> bool {
        match self.map.entry(key_of(id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((FileStat::default(), Mark::Unchanged));
                self.unchanged += 1;
                true
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if o.get().1 == Mark::Unchanged {
                    self.unchanged -= 1;
                }
                o.get_mut().1 = Mark::Ambiguous;
                false
            }
        }
    }

    /// Whether the scan found `id`'s file unchanged.
    pub fn is_unchanged(&self, id: &str) -> bool {
        self.map
            .get(&key_of(id))
            .is_some_and(|e| e.1 == Mark::Unchanged)
    }

    /// How many files the scan found unchanged.
    pub fn unchanged(&self) -> usize {
        self.unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::{CollectionKind, Fingerprint, Scan, scan_known};
    use std::path::Path;

    /// What `scan` read, as the engine remembers it: stat, file hash, content hash.
    fn remember(scan: &Scan) -> HashMap<String, KnownFile> {
        let files = match &scan.fingerprint {
            Fingerprint::Dir { files, .. } => files.clone(),
            Fingerprint::File { .. } => Default::default(),
        };
        scan.stats
            .iter()
            .map(|(id, stat)| {
                let file_hash = match &scan.fingerprint {
                    Fingerprint::Dir { .. } => files[id].hash.clone(),
                    Fingerprint::File { hash } => hash.clone().unwrap_or_default(),
                };
                let hash = scan
                    .entities
                    .get(id)
                    .map(deltasync_meta::content_hash)
                    .unwrap_or_default();
                (
                    id.clone(),
                    KnownFile {
                        stat: *stat,
                        file_hash,
                        hash,
                    },
                )
            })
            .collect()
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    fn known(files: HashMap<String, KnownFile>, trust_before: SystemTime) -> Known {
        Known {
            files,
            trust_before,
        }
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// A file whose stat is unchanged is taken by it, not read; every kind of edit that keeps
    /// size and mtime is still seen (rename over: another inode; in place: another ctime).
    #[test]
    fn a_known_stat_stands_for_the_file_and_edits_that_keep_size_and_mtime_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let kind = CollectionKind::Dir {
            path: "tasks".into(),
        };
        let tasks = dir.path().join("tasks");
        fs::create_dir(&tasks).unwrap();
        let old = SystemTime::now() - Duration::from_secs(600);
        for id in ["a", "b", "c"] {
            fs::write(tasks.join(format!("{id}.json")), r#"{"n": 1}"#).unwrap();
            set_mtime(&tasks.join(format!("{id}.json")), old);
        }
        let first = scan_known(dir.path(), &kind, &known(HashMap::new(), later())).unwrap();
        assert_eq!(first.entities.len(), 3);
        let files = remember(&first);
        assert_eq!(files.len(), 3, "{:?}", first.stats);

        let second = scan_known(dir.path(), &kind, &known(files.clone(), later())).unwrap();
        assert!(second.entities.is_empty(), "{:?}", second.entities);
        assert_eq!(second.known.len(), 3);
        assert_eq!(second.fingerprint, first.fingerprint);
        assert_eq!(second.local_hash("a"), first.local_hash("a"));

        // Rename over, same size and mtime.
        let tmp = tasks.join(".a.tmp");
        fs::write(&tmp, r#"{"n": 2}"#).unwrap();
        set_mtime(&tmp, old);
        fs::rename(&tmp, tasks.join("a.json")).unwrap();
        // In place, same size, mtime put back.
        fs::write(tasks.join("b.json"), r#"{"n": 3}"#).unwrap();
        set_mtime(&tasks.join("b.json"), old);
        let third = scan_known(dir.path(), &kind, &known(files, later())).unwrap();
        assert_eq!(third.entities["a"], serde_json::json!({"n": 2}));
        assert_eq!(third.entities["b"], serde_json::json!({"n": 3}));
        assert_eq!(third.known.keys().collect::<Vec<_>>(), ["c"]);
    }

    /// A file changed within the racy window of a scan is read, and not remembered: the
    /// next scan reads it again.
    #[test]
    fn a_file_changed_within_the_window_is_read_again_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let kind = CollectionKind::Dir {
            path: "tasks".into(),
        };
        fs::create_dir(dir.path().join("tasks")).unwrap();
        let path = dir.path().join("tasks/a.json");
        fs::write(&path, r#"{"n": 1}"#).unwrap();
        let limit = SystemTime::now() - RACY_WINDOW;
        let first = scan_known(dir.path(), &kind, &known(HashMap::new(), limit)).unwrap();
        assert_eq!(first.entities.len(), 1);
        assert!(first.stats.is_empty(), "{:?}", first.stats);
        // Even an mtime set back does not make a fresh change trusted (its ctime is new).
        set_mtime(&path, SystemTime::now() - Duration::from_secs(600));
        let again = scan_known(dir.path(), &kind, &known(HashMap::new(), limit)).unwrap();
        assert!(again.stats.is_empty(), "{:?}", again.stats);
    }

    /// A document is taken whole by its stat, or read whole; one read with problems is not
    /// remembered.
    #[test]
    fn a_document_is_known_whole() {
        let dir = tempfile::tempdir().unwrap();
        let kind = CollectionKind::File {
            path: "doc.json".into(),
            pointer: None,
            id_field: "id".into(),
            create_as_array: false,
        };
        let path = dir.path().join("doc.json");
        fs::write(&path, r#"{"a": {"n": 1}, "b": {"n": 2}}"#).unwrap();
        let first = scan_known(dir.path(), &kind, &known(HashMap::new(), later())).unwrap();
        let doc = remember(&first).remove("").unwrap();
        let mut files: HashMap<String, KnownFile> = first
            .entities
            .iter()
            .map(|(id, v)| {
                (
                    id.clone(),
                    KnownFile {
                        stat: doc.stat,
                        file_hash: String::new(),
                        hash: deltasync_meta::content_hash(v),
                    },
                )
            })
            .collect();
        files.insert(String::new(), doc);
        let second = scan_known(dir.path(), &kind, &known(files.clone(), later())).unwrap();
        assert!(second.entities.is_empty());
        assert_eq!(second.known.len(), 2);
        assert_eq!(second.fingerprint, first.fingerprint);
        fs::write(&path, r#"{"a": {"n": 1}, "b": {"n": 3}}"#).unwrap();
        let third = scan_known(dir.path(), &kind, &known(files, later())).unwrap();
        assert_eq!(third.entities.len(), 2);
        assert!(third.known.is_empty());
        fs::write(&path, r#"{"a": {"n": 1}, "b": 3}"#).unwrap();
        let held = scan_known(dir.path(), &kind, &known(HashMap::new(), later())).unwrap();
        assert!(!held.problems.is_empty() && held.stats.is_empty());
    }

    #[test]
    fn known_stats_mark_what_was_found_unchanged() {
        let s = |n: u64| FileStat {
            size: n,
            ..FileStat::default()
        };
        let mut k = KnownStats::new();
        k.insert("a", s(1));
        k.insert("b", s(2));
        k.insert("c", s(3));
        assert!(k.take("a", &s(1)));
        assert!(!k.take("a", &s(1)), "taken once");
        assert!(!k.take("b", &s(9)), "another stat");
        assert!(!k.take("zz", &s(1)), "unknown");
        k.remove("c");
        assert!(!k.take("c", &s(3)), "removed");
        assert!(k.is_unchanged("a") && !k.is_unchanged("b") && !k.is_unchanged("c"));
        assert_eq!((k.len(), k.unchanged()), (3, 1));
        k.remove("a");
        assert_eq!(k.unchanged(), 0);
    }

    #[test]
    fn stats_differ_by_each_field_and_times_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        fs::write(&p, "{}").unwrap();
        let s = FileStat::of(&fs::metadata(&p).unwrap());
        assert_eq!(s.size, 2);
        assert_eq!(s.mtime(), fs::metadata(&p).unwrap().modified().ok());
        for other in [
            FileStat { size: 3, ..s },
            FileStat {
                mtime_ns: s.mtime_ns + 1,
                ..s
            },
            FileStat {
                ctime_ns: s.ctime_ns + 1,
                ..s
            },
            FileStat {
                ino: s.ino + 1,
                ..s
            },
        ] {
            assert_ne!(other, s);
        }
        let before = FileStat {
            mtime_ns: -5_000_000_000,
            ..FileStat::default()
        };
        assert_eq!(
            before.mtime(),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_change_inside_the_window_is_not_trusted() {
        let now = SystemTime::now();
        let s = FileStat {
            size: 1,
            mtime_ns: ns_of(now - Duration::from_secs(10)),
            ctime_ns: ns_of(now - Duration::from_secs(1)),
            ino: 1,
        };
        // The mtime is old (an app set it back), the ctime is not: not trusted.
        assert!(!s.changed_before(now - RACY_WINDOW));
        assert!(s.changed_before(now));
        assert!(!s.changed_before(SystemTime::UNIX_EPOCH));
    }
}
