//! Step 4 of a sync, commit: the changed entities written as one delta (create-only), then
//! meta.json by compare-and-swap, in rounds against other devices; the commit journal that
//! lets the next run finish or undo a commit a crash interrupted.

use super::*;

/// Commit rounds a sync or compaction tries at least before giving up on a busy remote.
pub(crate) const MAX_ROUNDS: u32 = 10;

/// How long a sync keeps trying to commit on a network remote that other devices keep
/// committing to: with 8 devices committing at once on Nextcloud (slow, non-atomic writes that
/// answer 423), ten quick rounds were not enough for 11–14 % of syncs.
pub(crate) const NETWORK_COMMIT_BUDGET: Duration = Duration::from_secs(120);

/// When a commit round lost to another device may be tried again: at least
/// [`MAX_ROUNDS`] rounds, and on a network remote for [`NETWORK_COMMIT_BUDGET`], with jittered
/// exponential backoff.
pub(crate) struct CommitRetry {
    backoff: Backoff,
    rounds: u32,
    started: Instant,
    budget: Duration,
}

impl CommitRetry {
    /// Waits before the next round; false when it is time to give up.
    pub(crate) fn wait(&mut self) -> bool {
        self.rounds += 1;
        if self.rounds >= MAX_ROUNDS && self.started.elapsed() >= self.budget {
            return false;
        }
        self.backoff.wait()
    }

    /// Rounds lost so far.
    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }
}

/// The local side of a commit known to be in meta: base and mirror take the records.
pub(crate) fn finish_commit(s: &State, p: &PendingCommit) -> Result<(), StateError> {
    for r in &p.records {
        let m = mirror_of(r);
        s.set_mirror(&r.collection, &r.id, Some(&m))?;
        s.set_base(&r.collection, &r.id, Some((r.version, &m.content)))?;
    }
    s.mark_applied(&p.delta_path, p.seq)
}

/// What the journal does with one of its commits, given the meta.json just read
/// ([`reconcile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconcile {
    /// Attempted, and meta lists it (or a snapshot folded it): the process died after the meta
    /// write, before the local transaction. Finish the local side; while meta is still the
    /// one we wrote (ours is its last delta), nobody has confirmed it and a racing writer may
    /// still overwrite it, so it stays, as unconfirmed.
    Finish {
        /// Whether it stays in the journal as unconfirmed.
        keep_unconfirmed: bool,
    },
    /// Attempted, and meta does not list it: the meta write never happened, or a racing
    /// writer overwrote it before anyone confirmed it. The delta is an orphan; its entities
    /// are still dirty here and go out again — forced, if the delta reached the server,
    /// because another device may have read it.
    Orphan,
    /// Unconfirmed, and a meta.json someone else wrote lists it (a new ETag, or — ETags can
    /// be reused on Nextcloud — commits on top of it, or a snapshot folded it): done.
    Confirmed,
    /// Unconfirmed, listed, and meta.json is still the one we wrote: wait.
    Wait,
    /// Unconfirmed, and meta no longer lists it: two writers both "won" (a server whose
    /// If-Match is not atomic) and ours was overwritten. Undo it locally so that its entities
    /// are dirty again and go out in the next commit, merged on top of the winner.
    Lost,
}

/// Decides what becomes of journal entry `p` of device `me` against `meta` (read with
/// `etag`); `folded_now`: the deltas a snapshot written since the last look folded. Pure: the
/// whole commit protocol's recovery, tested by a case table.
pub(crate) fn reconcile(
    p: &JournalHead,
    me: &str,
    meta: &Meta,
    etag: &Etag,
    folded_now: &[String],
) -> Reconcile {
    let folded = folded_now.contains(&p.delta_path);
    let listed = meta.references(&p.delta_path) || folded;
    match (p.state, listed) {
        (JournalState::Attempted, true) => Reconcile::Finish {
            keep_unconfirmed: !folded
                && meta.head == p.seq
                && meta.deltas.last().is_some_and(|d| d.path == p.delta_path),
        },
        (JournalState::Attempted, false) => Reconcile::Orphan,
        (JournalState::Unconfirmed, true) => {
            // Confirmed by another device: a meta.json we did not write (our own later commits
            // carry the entry's etag forward), or a commit of another device on top of ours.
            let other_on_top = meta.deltas.iter().any(|d| d.seq > p.seq && d.device != me);
            if folded || p.meta_etag.as_deref() != Some(etag.0.as_str()) || other_on_top {
                Reconcile::Confirmed
            } else {
                Reconcile::Wait
            }
        }
        (JournalState::Unconfirmed, false) => Reconcile::Lost,
    }
}

impl Engine {
    /// Confirms, finishes or undoes the commits recorded in the journal against `meta`
    /// ([`reconcile`] decides, this carries it out). Returns the seqs of the commits whose
    /// local side it finished (found in meta.json after their answer was lost or the process
    /// died), for the sync's report.
    pub(crate) fn reconcile_journal(
        &mut self,
        meta: &Meta,
        etag: &Etag,
        folded_now: &[String],
    ) -> Result<Vec<u64>, EngineError> {
        let mut finished = Vec::new();
        // Oldest first, but lost commits are undone newest first: each undo puts back what its
        // entities were before that commit, so the oldest lost commit's "before" is what
        // stays (undone oldest first, an entity in two lost commits kept the first one's
        // content as its base, and a merge took the other devices' lack of it for a delete).
        // Decided by each entry's head; only the entries a decision needs in full (to finish or
        // undo them) are read: an import's entry holds every entity it imported.
        let mut journal: Vec<(JournalHead, Reconcile)> = self
            .state
            .journal_heads()?
            .into_iter()
            .map(|p| {
                let r = reconcile(&p, &self.device_id, meta, etag, folded_now);
                (p, r)
            })
            .collect();
        journal.sort_by_key(|(p, r)| {
            if *r == Reconcile::Lost {
                (1, u64::MAX - p.seq)
            } else {
                (0, p.seq)
            }
        });
        for (head, decision) in journal {
            let p = match decision {
                Reconcile::Confirmed => {
                    self.state.remove_pending(&head.delta_path)?;
                    continue;
                }
                Reconcile::Wait => continue,
                // (Gone since the heads were read: nothing is left to finish or undo.)
                _ => match self.state.pending_entry(&head.delta_path)? {
                    Some(p) => p,
                    None => continue,
                },
            };
            match decision {
                Reconcile::Finish { keep_unconfirmed } => {
                    finished.push(p.seq);
                    self.state.transaction(|s| {
                        finish_commit(s, &p)?;
                        s.conflicts_pushed(&p.receipts)?;
                        s.set_supersedes(None)?;
                        // The commit carried every forced entity (they are pushed whenever set).
                        s.clear_forced()?;
                        if keep_unconfirmed {
                            let mut p = p.clone();
                            p.state = JournalState::Unconfirmed;
                            p.meta_etag = Some(etag.0.clone());
                            s.put_pending(&p)
                        } else {
                            s.remove_pending(&p.delta_path)
                        }
                    })?;
                }
                Reconcile::Orphan => {
                    // A delta that never reached the server cannot have been read by anyone.
                    let written = self.store.remote().head(&p.delta_path)?.is_some();
                    self.state.transaction(|s| {
                        if written {
                            s.set_supersedes(Some(&p.delta_path))?;
                            s.add_forced(&p)?;
                        }
                        s.remove_pending(&p.delta_path)
                    })?;
                }
                Reconcile::Confirmed | Reconcile::Wait => {}
                Reconcile::Lost => {
                    tracing::warn!(delta = %p.delta_path, seq = p.seq, "a commit of ours was lost to a racing writer; committing it again");
                    self.state.transaction(|s| {
                        for b in &p.before {
                            s.set_mirror(&b.collection, &b.id, b.mirror.as_ref())?;
                            s.set_base(
                                &b.collection,
                                &b.id,
                                b.base.as_ref().map(|(v, c)| (*v, c)),
                            )?;
                        }
                        s.unmark_applied(&p.delta_path)?;
                        s.conflicts_to_push_again(&p.receipts)?;
                        // Another device may have read the lost commit: whatever this device
                        // holds for its entities now is pushed, even if it equals the base.
                        s.add_forced(&p)?;
                        s.set_supersedes(Some(&p.delta_path))?;
                        s.count_recommitted()?;
                        s.remove_pending(&p.delta_path)
                    })?;
                }
            }
        }
        Ok(finished)
    }

    /// Deltas this device applied that meta.json no longer lists, in the generation it reads
    /// and not folded into a snapshot: on a server whose compare-and-swap is not atomic, a
    /// writer with an older meta.json overwrote them, perhaps after their author took them
    /// for confirmed (another device had committed on top) and so will not make them again.
    /// What this device took from them goes back: each entity whose mirror is still that
    /// delta's record loses its base (the next round merges it with what the remote has now,
    /// keeping both sides, a receipt at worst) and is forced into the next commit.
    pub(crate) fn force_vanished(
        &mut self,
        meta: &Meta,
        folded: &[String],
    ) -> Result<(), EngineError> {
        if self.store.remote().capabilities().cas == CasClass::Atomic {
            return Ok(());
        }
        let generation = meta.snapshot.as_ref().map_or(0, |s| s.generation);
        let prefix = format!("deltas/g{generation}/");
        let listed: BTreeSet<&str> = meta.deltas.iter().map(|d| d.path.as_str()).collect();
        let vanished: Vec<(String, u64)> = self
            .state
            .applied_list()?
            .into_iter()
            .filter(|(p, seq)| {
                p.starts_with(&prefix)
                    && *seq <= meta.head
                    && !listed.contains(p.as_str())
                    && !folded.contains(p)
            })
            .collect();
        if vanished.is_empty() {
            return Ok(());
        }
        let states = self.state.all_states()?;
        for (path, seq) in vanished {
            // `deltas/g<N>/<device>-<ms>-<8 hex>.json`: the writer's device id.
            let device = path
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.rsplitn(3, '-').nth(2))
                .unwrap_or_default()
                .to_owned();
            let mut keys = Vec::new();
            for ((c, id), st) in &states {
                if !st.has_mirror || st.m_version != seq {
                    continue;
                }
                if self
                    .state
                    .mirror(c, id)?
                    .is_some_and(|m| m.device == device)
                {
                    keys.push((c.clone(), id.clone()));
                }
            }
            tracing::warn!(delta = %path, seq, entities = keys.len(), "a delta applied here is gone from meta.json (overwritten by a racing writer); pushing what it carried again");
            self.state.transaction(|s| {
                for (c, id) in &keys {
                    s.set_base(c, id, None)?;
                }
                s.add_forced_keys(&keys, seq + 1)?;
                s.unmark_applied(&path)
            })?;
        }
        Ok(())
    }

    pub(crate) fn commit_retry(&self) -> CommitRetry {
        let (backoff, budget) = if self.store.remote().capabilities().networked {
            (
                Backoff::new(Duration::from_millis(50), Duration::from_secs(4), u32::MAX),
                NETWORK_COMMIT_BUDGET,
            )
        } else {
            (
                Backoff::new(
                    Duration::from_millis(1),
                    Duration::from_millis(50),
                    MAX_ROUNDS,
                ),
                Duration::ZERO,
            )
        };
        CommitRetry {
            backoff,
            rounds: 0,
            started: Instant::now(),
            budget,
        }
    }

    /// Step 4: one delta, then meta.json by compare-and-swap.
    pub(crate) fn commit(
        &mut self,
        meta: &Meta,
        etag: &Etag,
        outgoing: Vec<Outgoing>,
        receipts: Vec<ConflictReceipt>,
    ) -> Result<u64, EngineError> {
        let seq = meta.head + 1;
        let time = now_ms();
        let mut records = Vec::with_capacity(outgoing.len());
        let mut before = Vec::with_capacity(outgoing.len());
        for (c, id, content, clock) in outgoing {
            before.push(BeforeCommit {
                collection: c.clone(),
                id: id.clone(),
                base: self.state.base(&c, &id)?,
                mirror: self.state.mirror(&c, &id)?,
            });
            records.push(EntityRecord {
                collection: c,
                id,
                version: seq,
                last_modified_at: clock,
                last_modified_by: self.device_id.clone(),
                is_deleted: content.is_none(),
                data: content.unwrap_or(Value::Null),
                // A new version of the record: what a newer writer said of the last one
                // does not hold for it.
                extra: Default::default(),
            });
        }
        let supersedes = self.state.supersedes()?;
        let mut delta = Delta {
            format: FORMAT_VERSION,
            min_reader: 1,
            seq,
            device: self.device_id.clone(),
            // Format 2's meta.json lists no devices: the name travels with the commit.
            device_name: Some(self.config.device.clone()),
            time,
            supersedes: supersedes.clone(),
            // Format 2 finds older deltas through this link (meta.json lists only the newest).
            prev: meta.deltas.last().cloned(),
            records,
            conflicts: receipts.clone(),
        };
        let generation = meta.snapshot.as_ref().map(|s| s.generation).unwrap_or(0);
        let dref = self.store.write_delta(&delta, generation)?;
        let mut pending = PendingCommit {
            delta_path: dref.path.clone(),
            seq,
            state: JournalState::Attempted,
            meta_etag: None,
            before,
            // Moved, not copied: an import's records are every entity.
            records: std::mem::take(&mut delta.records),
            receipts: receipts.iter().map(|r| r.id.clone()).collect(),
        };
        self.state.put_pending(&pending)?;
        let mut next = meta.clone();
        next.head = seq;
        next.deltas.push(dref.clone());
        // Format 1 lists the versions too (format 2 neither writes nor reads them).
        let chained = next.chained();
        for r in pending.records.iter().filter(|_| !chained) {
            next.entity_versions
                .entry(r.collection.clone())
                .or_default()
                .insert(r.id.clone(), seq);
        }
        next.last_sync_timestamp = time;
        next.note_device(&self.device_id, Some(&self.config.device), time);
        match self.store.commit_meta(&mut next, etag) {
            Ok(new_etag) => {
                pending.state = JournalState::Unconfirmed;
                pending.meta_etag = Some(new_etag.0.clone());
                let ids: Vec<String> = receipts.iter().map(|r| r.id.clone()).collect();
                let next = Arc::new(next);
                let kept = self.state.transaction(|s| {
                    finish_commit(s, &pending)?;
                    // Our earlier unconfirmed commits are in this meta.json too, and no safer
                    // than it: a racing writer that overwrites it loses them all. They are
                    // confirmed with it, by another device's write, not by this one. (Their
                    // etag only: the entries themselves are not read.)
                    s.carry_unconfirmed(&new_etag.0)?;
                    s.put_pending(&pending)?;
                    s.conflicts_pushed(&ids)?;
                    s.set_supersedes(None)?;
                    s.clear_forced()?;
                    let kept = Self::store_meta(s, next.clone(), &new_etag)?;
                    s.set(REREAD_META, "1")?;
                    Ok(kept)
                })?;
                self.keep_meta(kept);
                Ok(seq)
            }
            // A plain 412: meta was never written with our delta. The delta is an orphan
            // that the next commit names in `supersedes`; it is left for compaction to remove
            // after a grace period rather than deleted now, in case a slow reader holds a meta
            // that lists it (on a server whose If-Match is not atomic, one might).
            Err(StoreError::Conflict) => {
                self.state.transaction(|s| {
                    s.remove_pending(&dref.path)?;
                    s.set_supersedes(Some(&dref.path))
                })?;
                Err(StoreError::Conflict.into())
            }
            // Unknown outcome: the journal entry stays "attempted" and the next fetch decides.
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dref(seq: u64, path: &str) -> deltasync_meta::DeltaRef {
        deltasync_meta::DeltaRef {
            path: path.into(),
            seq,
            device: "d".into(),
            time: 0,
            entities: 1,
            size: 1,
            sha256: String::new(),
        }
    }

    /// meta.json with one delta per seq up to `head`; ours is `deltas/ours.json` at `ours`
    /// when listed.
    fn meta(head: u64, ours: Option<u64>) -> Meta {
        let mut m = Meta::new(head);
        for seq in 1..=head {
            let path = if ours == Some(seq) {
                "deltas/ours.json".to_string()
            } else {
                format!("deltas/other-{seq}.json")
            };
            m.deltas.push(dref(seq, &path));
        }
        m
    }

    fn pending(state: JournalState, seq: u64, etag: Option<&str>) -> PendingCommit {
        PendingCommit {
            delta_path: "deltas/ours.json".into(),
            seq,
            state,
            meta_etag: etag.map(str::to_owned),
            before: Vec::new(),
            records: Vec::new(),
            receipts: Vec::new(),
        }
    }

    /// The recovery of the commit protocol, case by case: (what the journal holds, the meta
    /// read, folded by a snapshot, the decision).
    #[test]
    fn reconcile_case_table() {
        use JournalState::{Attempted, Unconfirmed};
        let (mine, theirs) = (Etag("\"mine\"".into()), Etag("\"theirs\"".into()));
        type Case = (&'static str, PendingCommit, Meta, Etag, bool, Reconcile);
        let cases: Vec<Case> = vec![
            (
                "crashed after the meta write; ours is still the last delta",
                pending(Attempted, 3, None),
                meta(3, Some(3)),
                mine.clone(),
                false,
                Reconcile::Finish {
                    keep_unconfirmed: true,
                },
            ),
            (
                "crashed after the meta write; others committed on top",
                pending(Attempted, 3, None),
                meta(5, Some(3)),
                theirs.clone(),
                false,
                Reconcile::Finish {
                    keep_unconfirmed: false,
                },
            ),
            (
                "crashed after the meta write; a snapshot folded it since",
                pending(Attempted, 3, None),
                meta(0, None),
                theirs.clone(),
                true,
                Reconcile::Finish {
                    keep_unconfirmed: false,
                },
            ),
            (
                "the meta write never happened (or was overwritten at once)",
                pending(Attempted, 3, None),
                meta(3, None),
                theirs.clone(),
                false,
                Reconcile::Orphan,
            ),
            (
                "unconfirmed: meta is still the one we wrote",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                meta(3, Some(3)),
                mine.clone(),
                false,
                Reconcile::Wait,
            ),
            (
                "unconfirmed: another writer's meta lists it (new etag)",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                meta(3, Some(3)),
                theirs.clone(),
                false,
                Reconcile::Confirmed,
            ),
            (
                "unconfirmed: same etag (reused within a second) but commits on top",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                meta(4, Some(3)),
                mine.clone(),
                false,
                Reconcile::Confirmed,
            ),
            (
                "unconfirmed: our own later commit on top (same etag carried forward) is no \
                 confirmation: a racing writer that overwrites it loses both",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                {
                    let mut m = meta(4, Some(3));
                    m.deltas[3].device = "me".into();
                    m
                },
                mine.clone(),
                false,
                Reconcile::Wait,
            ),
            (
                "unconfirmed: folded by a snapshot",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                meta(0, None),
                mine.clone(),
                true,
                Reconcile::Confirmed,
            ),
            (
                "unconfirmed: a racing writer overwrote it",
                pending(Unconfirmed, 3, Some("\"mine\"")),
                meta(3, None),
                theirs.clone(),
                false,
                Reconcile::Lost,
            ),
        ];
        for (what, p, m, etag, folded, want) in cases {
            let folded_now: Vec<String> = if folded {
                vec![p.delta_path.clone()]
            } else {
                Vec::new()
            };
            assert_eq!(
                reconcile(&p.head(), "me", &m, &etag, &folded_now),
                want,
                "{what}"
            );
        }
    }

    /// A sync on an S3 bucket keeps trying to commit for the network's budget, as on WebDAV
    /// (the choice went by `describe()` starting with "http", which an `s3://` remote does
    /// not: it got a local folder's ten quick rounds).
    #[test]
    fn an_s3_remote_gets_the_network_commit_budget() {
        let s3 = deltasync_remote::S3::open(
            "s3://bucket/prefix",
            &deltasync_remote::S3Options {
                endpoint: Some("http://127.0.0.1:9".into()),
                region: Some("us-east-1".into()),
                allow_insecure_http: true,
                ..Default::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config: crate::config::Config =
            toml::from_str("remote = 's3://bucket/prefix'").unwrap();
        let engine = Engine::with_remote(dir.path(), config, Arc::new(s3)).unwrap();
        assert_eq!(engine.commit_retry().budget, NETWORK_COMMIT_BUDGET);
        let folder = tempfile::tempdir().unwrap();
        let config: crate::config::Config = toml::from_str(&format!(
            "remote = {:?}",
            folder.path().display().to_string()
        ))
        .unwrap();
        let remote =
            deltasync_remote::open(&folder.path().display().to_string(), &Default::default())
                .unwrap();
        let engine = Engine::with_remote(dir.path(), config, remote).unwrap();
        assert_eq!(engine.commit_retry().budget, Duration::ZERO);
    }
}
