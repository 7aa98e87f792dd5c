//! Settling and checking a world of devices after a crash (crash.rs, crash_commands.rs):
//! everything that must hold once every device has synced until quiet.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deltasync_meta::{ConflictReceipt, Delta, Meta};
use deltasync_remote::MemoryRemote;
use serde_json::Value;

use deltasync_engine::state::JournalState;

use super::Device;

/// Devices on one remote: `devs[0]` is A (the one that crashes), then B, C.
pub struct World {
    pub remote: Arc<MemoryRemote>,
    pub devs: Vec<Device>,
}

impl World {
    pub fn a(&mut self) -> &mut Device {
        &mut self.devs[0]
    }

    /// Device id → device name, for messages and comparisons across runs (ids are random).
    pub fn names(&self) -> BTreeMap<String, String> {
        self.devs
            .iter()
            .map(|d| {
                (
                    d.engine.device_id().to_string(),
                    d.engine.config().device.clone(),
                )
            })
            .collect()
    }

    /// meta.json as the remote has it, completed: every delta since the snapshot listed (a
    /// format-2 meta.json lists only the newest; the others are found through `prev`).
    pub fn meta(&self) -> Meta {
        complete_meta(self.remote.clone())
    }
}

/// meta.json of `remote`, completed (every delta since the snapshot listed).
pub fn complete_meta(remote: Arc<MemoryRemote>) -> Meta {
    deltasync_store::Store::new(remote)
        .read_meta_fresh()
        .unwrap_or_else(|e| panic!("meta.json: {e}"))
        .0
}

/// Writes an entity as the app saved it `ago` before now: the file's mtime is the edit's clock,
/// and conflicts go to the later edit, so the tests fix it rather than depend on timing.
pub fn write_at(d: &Device, id: &str, v: &Value, ago: Duration) {
    d.write(id, v);
    std::fs::File::options()
        .write(true)
        .open(d.path(id))
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

pub const HOUR: Duration = Duration::from_secs(3600);

pub fn receipt_shape(c: &ConflictReceipt, names: &BTreeMap<String, String>) -> String {
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| format!("?{id}"));
    format!(
        "{}/{} {:?} {:?} kept {} ({}) lost {} ({}){}",
        c.collection,
        c.entity_id,
        c.field,
        c.kind,
        c.kept,
        name(&c.kept_by),
        c.lost,
        name(&c.lost_by),
        if c.resolved { " resolved" } else { "" }
    )
}

/// A commit as it matters across runs: seq, device, records, receipts (no ids, times, names of
/// files).
pub fn commit_shape(d: &Delta, names: &BTreeMap<String, String>) -> String {
    let mut records: Vec<String> = d
        .records
        .iter()
        .map(|r| {
            if r.is_deleted {
                format!("{}/{} deleted", r.collection, r.id)
            } else {
                format!("{}/{}={}", r.collection, r.id, r.data)
            }
        })
        .collect();
    records.sort();
    let mut receipts: Vec<String> = d
        .conflicts
        .iter()
        .map(|c| receipt_shape(c, names))
        .collect();
    receipts.sort();
    // Twice the same receipt in one delta shows in the devices' receipts, checked apart.
    receipts.dedup();
    format!(
        "#{} by {}: {} | receipts: {}",
        d.seq,
        names.get(&d.device).map_or("?", |n| n.as_str()),
        records.join(", "),
        receipts.join("; ")
    )
}

/// Known engine bug (see `bug_orphan_of_a_crash_before_the_meta_write_is_not_superseded`):
/// when the fetch after a crash before the meta write is answered 304 (nobody committed
/// meanwhile), the journal is not reconciled, so the `attempted` entry stays and the next
/// commit does not name the orphan in `supersedes` (that happens only after the next fresh
/// meta). While true, the checks tolerate exactly that: an `attempted` entry for a delta meta
/// does not list, and its delta as an orphan. Set to false once the bug is fixed.
pub const BUG_304_SKIPS_JOURNAL: bool = false;

/// Known engine bug (see `bug_receipts_of_a_commit_finished_after_a_crash_are_pushed_again`):
/// a commit that the journal finishes after a crash (meta written, answer lost) leaves its
/// receipts marked to push, so the next sync commits them again in a delta of their own. While
/// true, such a delta (no records, only receipts meta already has) is left out of the commits
/// compared. Set to false once the bug is fixed.
pub const BUG_RECEIPTS_PUSHED_AGAIN: bool = false;

/// Deltas that a device's journal still holds as `attempted` and meta does not list.
pub fn unreferenced_attempts(w: &World, meta: &Meta) -> Vec<String> {
    w.devs
        .iter()
        .flat_map(|d| d.engine.state().pending().unwrap())
        .filter(|p| p.state == JournalState::Attempted && !meta.references(&p.delta_path))
        .map(|p| p.delta_path)
        .collect()
}

/// What a run ended with.
#[derive(Debug)]
pub struct Outcome {
    pub data: BTreeMap<String, Value>,
    pub receipts: Vec<String>,
    pub commits: Vec<String>,
}

/// A syncs until quiet, then B, then every device round by round until no one commits; then
/// checks everything that must hold after any crash and returns the outcome.
///
/// - the devices and a fresh device hold the same data, equal to every device's mirror;
/// - on every device base and mirror agree, the journal holds only `unconfirmed` commits that
///   meta lists, `status()` agrees with the data and with meta;
/// - meta lists one delta per seq, 1..=head, each present and intact; every delta file meta
///   does not list is named (transitively) in the `supersedes` of one it lists, unless it is a
///   create whose answer the crash lost (nobody knows about it);
/// - every device has the same receipts, and a further sync commits nothing and costs one
///   conditional request.
pub fn settle_and_check(w: &mut World, lost_puts: &BTreeSet<String>, ctx: &str) -> Outcome {
    let sync = |d: &mut Device, ctx: &str| {
        d.try_sync()
            .unwrap_or_else(|e| panic!("{ctx}: sync of {} failed: {e}", d.engine.config().device))
    };
    let mut quiet = false;
    for _ in 0..5 {
        if sync(w.a(), ctx).committed.is_none() {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "{ctx}: A did not get quiet");
    let mut settled = false;
    for _ in 0..5 {
        let mut committed = false;
        for i in (1..w.devs.len()).chain(0..1) {
            committed |= sync(&mut w.devs[i], ctx).committed.is_some();
        }
        if !committed {
            settled = true;
            break;
        }
    }
    assert!(settled, "{ctx}: the devices did not settle");

    let names = w.names();
    let meta = w.meta();
    let data = w.devs[0].all();
    let files = w.remote.files();

    // Meta: one delta per seq, each present and intact.
    let seqs: Vec<u64> = meta.deltas.iter().map(|d| d.seq).collect();
    assert_eq!(
        seqs,
        (1..=meta.head).collect::<Vec<_>>(),
        "{ctx}: meta's deltas are not one per commit"
    );
    let mut commits = Vec::new();
    let mut named: Vec<String> = Vec::new();
    let mut receipts_pushed = BTreeSet::new();
    for d in &meta.deltas {
        let body = files
            .get(&d.path)
            .unwrap_or_else(|| panic!("{ctx}: meta lists {} but it is missing", d.path));
        deltasync_meta::verify_sha256(&d.path, body, &d.sha256)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let delta = Delta::from_bytes(body).unwrap();
        assert_eq!(delta.seq, d.seq, "{ctx}: {}", d.path);
        let mut ids = BTreeSet::new();
        for r in &delta.records {
            assert!(
                ids.insert((&r.collection, &r.id)),
                "{ctx}: {} holds {}/{} twice",
                d.path,
                r.collection,
                r.id
            );
            assert_eq!(r.version, d.seq, "{ctx}: {}", d.path);
        }
        named.extend(delta.supersedes.clone());
        let repeats = delta.records.is_empty()
            && delta
                .conflicts
                .iter()
                .all(|c| receipts_pushed.contains(&c.id));
        receipts_pushed.extend(delta.conflicts.iter().map(|c| c.id.clone()));
        if BUG_RECEIPTS_PUSHED_AGAIN && repeats {
            continue;
        }
        commits.push(commit_shape(&delta, &names));
    }
    // Orphans: superseded (transitively) or unknown to everyone.
    let referenced: BTreeSet<&str> = meta.deltas.iter().map(|d| d.path.as_str()).collect();
    // Orphans found since the last commit, to be named by the next one.
    named.extend(
        w.devs
            .iter()
            .filter_map(|d| d.engine.state().get("supersedes").unwrap()),
    );
    if BUG_304_SKIPS_JOURNAL {
        // Still `attempted` in a journal: named by the commit after the next fresh meta.
        named.extend(unreferenced_attempts(w, &meta));
    }
    let mut superseded = BTreeSet::new();
    while let Some(p) = named.pop() {
        if superseded.insert(p.clone())
            && let Some(body) = files.get(&p)
            && let Ok(d) = Delta::from_bytes(body)
        {
            named.extend(d.supersedes);
        }
    }
    for path in files.keys().filter(|p| p.starts_with("deltas/")) {
        if referenced.contains(path.as_str()) {
            continue;
        }
        assert!(
            superseded.contains(path) || lost_puts.contains(path),
            "{ctx}: orphan delta {path} is named in no delta's `supersedes`"
        );
    }

    // Every device: same data and receipts, consistent local state.
    let mut receipts = None;
    for d in &w.devs {
        let name = &d.engine.config().device;
        assert_eq!(d.all(), data, "{ctx}: {name} differs from a");
        let mut rs: Vec<String> = d
            .engine
            .conflicts()
            .unwrap()
            .iter()
            .map(|c| receipt_shape(c, &names))
            .collect();
        rs.sort();
        match &receipts {
            None => receipts = Some(rs),
            Some(r0) => assert_eq!(&rs, r0, "{ctx}: {name}'s receipts differ from a's"),
        }
        let state = d.engine.state();
        for ((c, id), s) in state.all_states().unwrap() {
            assert_eq!(
                s.base_hash, s.m_hash,
                "{ctx}: {name}: base and mirror of {c}/{id} disagree: {s:?}"
            );
            if s.m_hash.is_some() {
                assert_eq!(
                    s.base_version, s.m_version,
                    "{ctx}: {name}: {c}/{id}: {s:?}"
                );
            }
        }
        let mirror: BTreeMap<String, Value> = state
            .all_mirror()
            .unwrap()
            .into_iter()
            .filter_map(|(c, id, m)| (c == "tasks").then_some((id, m.content?)))
            .collect();
        assert_eq!(mirror, data, "{ctx}: {name}'s mirror is not the data");
        // Commits stay `unconfirmed` until a meta someone else wrote is read.
        let pending = state.pending().unwrap();
        for p in &pending {
            if BUG_304_SKIPS_JOURNAL
                && p.state == JournalState::Attempted
                && !meta.references(&p.delta_path)
            {
                continue;
            }
            assert!(
                p.state == JournalState::Unconfirmed && meta.references(&p.delta_path),
                "{ctx}: {name}: journal entry left behind: {} {} (seq {})",
                p.state,
                p.delta_path,
                p.seq
            );
        }
        let st = d.engine.status().unwrap();
        assert_eq!(st.head, meta.head, "{ctx}: {name}");
        assert_eq!(st.unconfirmed_commits, pending.len(), "{ctx}: {name}");
        assert_eq!(
            st.collections["tasks"].remote_entities,
            data.len() as u64,
            "{ctx}: {name}"
        );
        assert_eq!(
            st.open_conflicts,
            receipts
                .as_ref()
                .unwrap()
                .iter()
                .filter(|r| !r.ends_with(" resolved"))
                .count(),
            "{ctx}: {name}"
        );
    }
    // A further sync commits nothing and costs one conditional request.
    for i in 0..w.devs.len() {
        w.remote.reset_stats();
        let r = sync(&mut w.devs[i], ctx);
        assert_eq!(r.committed, None, "{ctx}");
        assert_eq!(w.remote.stats().requests(), 1, "{ctx}");
    }
    // A device that starts now reads the same from the remote.
    let mut fresh = Device::new(w.remote.clone(), "fresh");
    let r = sync(&mut fresh, ctx);
    assert_eq!(r.committed, None, "{ctx}");
    assert_eq!(fresh.all(), data, "{ctx}: a new device reads other data");

    Outcome {
        data,
        receipts: receipts.unwrap(),
        commits,
    }
}

/// A file made immutable (`chattr +i`) while this lives: renaming onto it or removing it fails
/// even for root. `None` where that is unavailable (not root, tmpfs, no chattr).
pub struct Immutable(std::path::PathBuf);

impl Immutable {
    pub fn set(path: &std::path::Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // Root ignores permissions but not this flag: check that it bites.
        let bites = ok && std::fs::OpenOptions::new().append(true).open(path).is_err();
        let guard = Immutable(path.to_path_buf());
        bites.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}
