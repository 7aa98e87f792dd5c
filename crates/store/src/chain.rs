//! Completing a format-2 meta.json: it lists only the newest delta, and each delta names the
//! one before it (`prev`), so the list since the snapshot is rebuilt by walking back.

use std::collections::{BTreeMap, HashMap};

use deltasync_meta::{Delta, DeltaRef, Meta};

use crate::{MetaRead, Remedy, Store, StoreError};
use deltasync_remote::Etag;

/// The deltas a walk read on its way back, by path: the caller applies them without reading
/// them again.
pub type ReadDeltas = BTreeMap<String, Delta>;

impl Store {
    /// Makes `meta.deltas` list every delta since the snapshot, in full ([`Meta::is_complete`],
    /// [`DeltaRef::has_details`]). A format-2 meta.json lists only the newest, as a link: each
    /// delta's `prev` is followed back until the first commit after the snapshot, or until a
    /// delta that `previous` (an earlier complete meta.json of the same snapshot, such as the
    /// copy a device keeps) lists — below it the chain is `previous`'s, since deltas never
    /// change. Each delta the walk reads gives its entry's device, time and record count, and
    /// its writer's name to [`Meta::devices`] (with those `previous` knows). So a
    /// device that is k commits behind reads exactly those k deltas, which it has to read
    /// anyway: they are returned so that it need not read them twice. A format-1 meta.json is
    /// complete as read.
    ///
    /// A chain that does not lead back to the snapshot (a missing link, a seq out of step, a
    /// link that disagrees with meta) is [`StoreError::Damaged`]; a delta that is not there is
    /// [`StoreError::Missing`], as when any listed file is missing. On an error `meta` is left
    /// as it was.
    pub fn complete(
        &self,
        meta: &mut Meta,
        previous: Option<&Meta>,
    ) -> Result<ReadDeltas, StoreError> {
        let mut read = ReadDeltas::new();
        // Format 1 lists every delta, in full.
        if !meta.chained() {
            return Ok(read);
        }
        let first_seq = meta.first_seq();
        let broken = |path: &str, detail: String| StoreError::Damaged {
            path: path.to_string(),
            detail,
            remedy: Remedy::CompactFromSyncedDevice,
        };
        let devices_known = previous.map(|p| &p.devices);
        // `previous` helps only if it is complete and of the same snapshot file.
        let previous = previous.filter(|p| {
            p.is_complete()
                && p.snapshot.as_ref().map(|s| &s.name) == meta.snapshot.as_ref().map(|s| &s.name)
        });
        let known: HashMap<&str, usize> = previous
            .map(|p| {
                p.deltas
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.path.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        // Newest first: what meta lists, then what the links lead to.
        let mut chain: Vec<DeltaRef> = meta.deltas.iter().rev().cloned().collect();
        if chain.is_empty() && meta.head >= first_seq {
            return Err(broken(
                deltasync_meta::META_FILE,
                format!(
                    "it is at commit {} but lists no delta after the snapshot's commit {}",
                    meta.head,
                    first_seq - 1
                ),
            ));
        }
        let mut i = 0;
        while i < chain.len() {
            // Below a delta the local copy lists, the chain is the local copy's.
            if let (Some(p), Some(&at)) = (previous, known.get(chain[i].path.as_str()))
                && p.deltas[at].same_file(&chain[i])
            {
                chain.truncate(i);
                chain.extend(p.deltas[..=at].iter().rev().cloned());
                break;
            }
            let current = chain[i].clone();
            if current.seq < first_seq {
                return Err(broken(
                    &current.path,
                    format!(
                        "commit {} is listed after the snapshot, which holds commits up to {}",
                        current.seq,
                        first_seq - 1
                    ),
                ));
            }
            // Read for its details and its link (a delta new here: the caller applies it).
            let delta = self.read_delta(&current)?;
            chain[i].fill_details(&delta);
            let prev = delta.prev.clone();
            read.insert(current.path.clone(), delta);
            if current.seq == first_seq {
                break;
            }
            let Some(prev) = prev else {
                return Err(broken(
                    &current.path,
                    format!(
                        "commit {} names no commit before it, and the snapshot holds commits \
                         up to {} only",
                        current.seq,
                        first_seq - 1
                    ),
                ));
            };
            if prev.seq + 1 != current.seq
                || chain
                    .get(i + 1)
                    .is_some_and(|listed| !listed.same_file(&prev))
            {
                return Err(broken(
                    &current.path,
                    format!(
                        "commit {} names commit {} ({}) as the one before it",
                        current.seq, prev.seq, prev.path
                    ),
                ));
            }
            if chain.len() == i + 1 {
                chain.push(prev);
            }
            i += 1;
        }
        chain.reverse();
        let listed = std::mem::replace(&mut meta.deltas, chain);
        if !meta.is_complete() || meta.deltas.last().is_some_and(|d| d.seq != meta.head) {
            let detail = format!(
                "its deltas lead from commit {} to {}, not from the first after the snapshot \
                 ({}) to its head ({})",
                meta.deltas.first().map_or(0, |d| d.seq),
                meta.deltas.last().map_or(0, |d| d.seq),
                first_seq,
                meta.head
            );
            meta.deltas = listed;
            return Err(broken(deltasync_meta::META_FILE, detail));
        }
        // Format 2's meta.json names no devices: the local copy knows those of earlier
        // commits, and each delta read names its writer.
        if let Some(devices) = devices_known {
            meta.merge_devices(devices);
        }
        for d in read.values() {
            meta.note_device(&d.device, d.device_name.as_deref(), d.time);
        }
        Ok(read)
    }

    /// Reads meta.json unconditionally, as it is (a format-2 meta.json lists only its newest
    /// delta): its content and etag.
    pub fn read_meta_as_is(&self) -> Result<(Meta, Etag), StoreError> {
        match self.read_meta(None)? {
            MetaRead::Fresh { meta, etag, .. } => Ok((meta, etag)),
            // A server or proxy that says "not modified" to a read with no condition.
            MetaRead::NotModified => Err(StoreError::Remote(
                deltasync_remote::RemoteError::Transient {
                    what: format!("GET {}", deltasync_meta::META_FILE),
                    detail: "304 Not Modified without a condition".into(),
                },
            )),
        }
    }

    /// Reads meta.json unconditionally and completes it ([`Store::complete`], with the help of
    /// `previous`): its content, etag, and the deltas read on the way.
    pub fn read_meta_complete(
        &self,
        previous: Option<&Meta>,
    ) -> Result<(Meta, Etag, ReadDeltas), StoreError> {
        let (mut meta, etag) = self.read_meta_as_is()?;
        let read = self.complete(&mut meta, previous)?;
        Ok((meta, etag, read))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltasync_lock::Backoff;
    use deltasync_meta::{EntityRecord, Hlc};
    use deltasync_remote::MemoryRemote;

    use super::*;

    fn store() -> (Arc<MemoryRemote>, Store) {
        let mem = Arc::new(MemoryRemote::new());
        let store = Store::new(mem.clone()).with_backoff(Backoff::quick());
        store.init(None).unwrap();
        (mem, store)
    }

    /// Commits one delta as a format-2 writer does: `prev` is the newest delta meta lists.
    fn commit(store: &Store, prev_override: Option<Option<DeltaRef>>) -> Meta {
        let (mut meta, etag) = store.read_meta_fresh().unwrap();
        let seq = meta.head + 1;
        let delta = Delta {
            format: deltasync_meta::FORMAT_VERSION,
            min_reader: 1,
            seq,
            device: "d".into(),
            device_name: None,
            time: seq,
            supersedes: None,
            prev: prev_override.unwrap_or_else(|| meta.deltas.last().cloned()),
            records: vec![EntityRecord {
                collection: "tasks".into(),
                id: format!("t{seq}"),
                version: seq,
                last_modified_at: Hlc {
                    ms: seq,
                    counter: 0,
                },
                last_modified_by: "d".into(),
                is_deleted: false,
                data: serde_json::json!({"n": seq}),
                extra: Default::default(),
            }],
            conflicts: vec![],
        };
        let dref = store.write_delta(&delta, 0).unwrap();
        meta.head = seq;
        meta.deltas.push(dref);
        store.commit_meta(&mut meta, &etag).unwrap();
        meta
    }

    #[test]
    fn the_chain_is_walked_back_to_the_snapshot() {
        let (mem, store) = store();
        let mut last = Meta::new(0);
        for _ in 0..5 {
            last = commit(&store, None);
        }
        let MetaRead::Fresh { meta, .. } = store.read_meta(None).unwrap() else {
            panic!("fresh")
        };
        assert_eq!(meta.deltas.len(), 1, "meta.json lists only the newest");
        let (complete, _, read) = store.read_meta_complete(None).unwrap();
        assert_eq!(complete.deltas, last.deltas);
        assert_eq!(
            complete.deltas.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            read.len(),
            5,
            "every delta was read, for its link and its details"
        );
        assert!(complete.deltas.iter().all(|d| d.has_details()));
        // A device that holds the list up to commit 3 reads only the deltas above it.
        let mut held = last.clone();
        held.deltas.truncate(3);
        held.head = 3;
        mem.reset_stats();
        let (again, _, read) = store.read_meta_complete(Some(&held)).unwrap();
        assert_eq!(again.deltas, last.deltas);
        let mut above: Vec<String> = last.deltas[3..].iter().map(|d| d.path.clone()).collect();
        above.sort();
        assert_eq!(read.keys().cloned().collect::<Vec<_>>(), above);
        assert_eq!(
            mem.stats().gets,
            3,
            "meta.json and deltas 4 and 5, each once"
        );
    }

    #[test]
    fn a_broken_chain_is_damage_not_a_shorter_history() {
        let (_, store) = store();
        commit(&store, None);
        commit(&store, None);
        // A writer that names no predecessor for commit 3.
        commit(&store, Some(None));
        let e = store.read_meta_complete(None).unwrap_err();
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
        assert!(
            e.to_string().contains("commit 3 names no commit before it"),
            "{e}"
        );
        assert!(!e.is_temporary());
    }

    #[test]
    fn a_missing_link_is_confirmed_as_damage() {
        let (mem, store) = store();
        commit(&store, None);
        let second = commit(&store, None);
        commit(&store, None);
        let lost = &second.deltas[1].path;
        mem.raw_delete(lost);
        let e = store.read_meta_complete(None).unwrap_err();
        assert!(matches!(&e, StoreError::Missing(p) if p == lost), "{e}");
        let e = store.confirm_missing(e);
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
    }
}
