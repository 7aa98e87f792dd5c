//! Step 3 of a sync, execute: pulls and merges written to the local files (never over a save
//! the app made meanwhile), bases recorded, conflict receipts made.

use super::*;

/// An entity written locally by a pull or merge: its id, the base to record once the write
/// is done (`Some(v)`: the mirror, at version `v`; `None`: no base), and what to push after it
/// (`Some(None)`: a delete).
pub(crate) type AfterWrite = (String, Option<u64>, Option<(Option<Value>, Hlc)>);

/// How many local writes of a `dir` collection are made at once, by default
/// ([`Engine::set_write_chunk`]): from this many on, the writes are made, and their bases
/// recorded, in chunks of this many ([`collections::apply`] each, then one transaction): a
/// new device's bootstrap, or any large pull, holds one chunk of contents, not every one.
/// Every chunk is durable (its files made durable, then installed, the folder synced) before
/// its bases are recorded; an entity whose base is not recorded is planned again by the next
/// sync, which finds its file, if written, equal to the remote and adopts it.
pub const WRITE_CHUNK: usize = 4096;

/// From this many fresh entities on, a `dir` collection with no base, its folder absent or
/// empty, is written whole through a staging folder ([`collections::stage`]).
pub(crate) const STAGE_FROM: u64 = 64;

/// The phase of a staged bootstrap after every file is written and its base recorded: the
/// files are made durable, then moved into place ([`collections::Staged::finish`]).
pub const FLUSHING: &str = "making the files durable";

/// What a collection's plan has collected and not yet recorded: local writes, the entities
/// whose base is the mirror's now, the merges' receipts.
#[derive(Default)]
struct Pending {
    writes: Vec<Write>,
    after_write: Vec<AfterWrite>,
    /// Entities whose base becomes their mirror (at this version), with nothing to write.
    adopt: Vec<(String, u64)>,
    receipts: Vec<(String, ConflictReceipt)>,
}

/// An entity to push: collection, id, content (`None`: a delete) and the clock of the change.
pub(crate) type Outgoing = (String, String, Option<Value>, Hlc);

impl Engine {
    /// Step 3: writes pulls and merges locally, updates bases; returns the records to push
    /// (without version and clock yet): (collection, id, content or None for a delete).
    ///
    /// The fresh entities' pulls (a bootstrap's files) are reported to `progress`, one step
    /// per file, once each chunk of them is written and recorded.
    pub(crate) fn execute(
        &mut self,
        planned: &Planned,
        report: &mut SyncReport,
        progress: &dyn crate::progress::Progress,
        mut early: BTreeMap<String, collections::Staged>,
    ) -> Result<Vec<Outgoing>, EngineError> {
        let mut outgoing = Vec::new();
        let forced = self.state.forced()?;
        // Per collection: local writes, the base to record once written, and pushes that
        // depend on the write.
        for (cname, cconf) in &self.config.collections {
            // Receipts are recorded with the bases, after the local writes, so that a crash in
            // between leaves neither (the merge is simply done again).
            let scan = &planned.scans[cname];
            let strategy = cconf.strategy;
            let kind = cconf.kind();
            let chunked = matches!(kind, collections::CollectionKind::Dir { .. });
            let to = Target {
                root: &self.root,
                cname,
                kind: &kind,
                scan,
            };
            let mut p = Pending::default();
            for (key, op) in planned.plan.ops.range(
                EntityKey {
                    collection: cname.clone(),
                    id: String::new(),
                }..,
            ) {
                if &key.collection != cname {
                    break;
                }
                let id = &key.id;
                // Every entity the round may push or merge was read (`plan`); one taken by its
                // stat alone is read now, should it be needed.
                let read_now;
                let local = match scan.entities.get(id) {
                    Some(v) => Some(v),
                    None if scan.known.contains_key(id)
                        && match op {
                            Op::Push(_) | Op::Merge => true,
                            Op::Unchanged | Op::Adopt => {
                                forced.contains_key(&(cname.clone(), id.clone()))
                            }
                            Op::Pull(_) | Op::Hold => false,
                        } =>
                    {
                        read_now = self.read_local(cconf, id)?;
                        read_now.as_ref()
                    }
                    None => None,
                };
                match op {
                    Op::Hold => {}
                    Op::Unchanged | Op::Adopt
                        if forced.get(&(cname.clone(), id.clone())).is_some_and(|seq| {
                            planned
                                .states
                                .get(&(cname.clone(), id.clone()))
                                .is_none_or(|st| st.m_version < *seq)
                        }) =>
                    {
                        let clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        outgoing.push((cname.clone(), id.clone(), local.cloned(), clock));
                    }
                    Op::Unchanged => {}
                    Op::Push(_) => {
                        let clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        outgoing.push((cname.clone(), id.clone(), local.cloned(), clock));
                    }
                    Op::Adopt => {
                        if let Some(v) = self.state.mirror_version(cname, id)? {
                            p.adopt.push((id.clone(), v));
                        }
                    }
                    Op::Pull(_) => {
                        let Some(m) = self.state.mirror(cname, id)? else {
                            continue;
                        };
                        let same = match (scan.local_hash(id), &m.content) {
                            (None, None) => true,
                            (Some(local), Some(remote)) => local == content_hash(remote),
                            _ => false,
                        };
                        if same {
                            p.adopt.push((id.clone(), m.version));
                            continue;
                        }
                        p.writes.push(match m.content {
                            Some(value) => Write::Put {
                                id: id.clone(),
                                value,
                            },
                            None => Write::Delete { id: id.clone() },
                        });
                        p.after_write.push((id.clone(), Some(m.version), None));
                    }
                    Op::Merge => {
                        let local_clock = self.edit_clock(cname, cconf, scan, id, true)?;
                        let (outcome, m) =
                            self.merge_entity(cname, id, local, local_clock, strategy)?;
                        let (m_content, m_version) = match &m {
                            Some(m) => (m.content.as_ref(), m.version),
                            None => (None, 0),
                        };
                        for fc in outcome.conflicts {
                            p.receipts
                                .push((id.clone(), self.receipt(cname, id, fc, local_clock)));
                        }
                        let merged = outcome.value;
                        let local_differs =
                            local.map(content_hash) != merged.as_ref().map(content_hash);
                        let remote_differs =
                            m_content.map(content_hash) != merged.as_ref().map(content_hash);
                        // The merged version comes after both sides it merges.
                        let merged_clock = m
                            .as_ref()
                            .map(|m| local_clock.observe(m.clock, now_ms()))
                            .unwrap_or(local_clock);
                        let push = if remote_differs {
                            Some((merged.clone(), merged_clock))
                        } else {
                            None
                        };
                        // The base becomes the mirror merged with.
                        let new_base = m.is_some().then_some(m_version);
                        if local_differs {
                            p.writes.push(match &merged {
                                Some(v) => Write::Put {
                                    id: id.clone(),
                                    value: v.clone(),
                                },
                                None => Write::Delete { id: id.clone() },
                            });
                            p.after_write.push((id.clone(), new_base, push));
                        } else {
                            // Nothing to write locally: record the base now.
                            if let Some(v) = new_base {
                                p.adopt.push((id.clone(), v));
                            }
                            if let Some((value, clock)) = push {
                                outgoing.push((cname.clone(), id.clone(), value, clock));
                            }
                        }
                    }
                }
                if chunked && p.writes.len() >= self.write_chunk {
                    let chunk = std::mem::take(&mut p);
                    record_writes(&mut self.state, &to, chunk, report, &mut outgoing)?;
                }
            }
            // The fresh entities the plan left out (no base, no file: pulls), page by page:
            // through a staging folder when the collection's folder is absent or empty (a new
            // device's bootstrap), else file by file.
            if let Some(&total) = planned.fresh.get(cname)
                && total > 0
            {
                let before = std::mem::take(&mut p);
                record_writes(&mut self.state, &to, before, report, &mut outgoing)?;
                progress.start("writing files", total);
                // Begun while the snapshot was read ([`EarlyStaging`]), or now.
                let staged = match early.remove(cname) {
                    Some(staged) => Some(staged),
                    None if total >= STAGE_FROM && !self.state.has_base_in(cname)? => {
                        collections::stage(&self.root, &kind, &scan.fingerprint)?
                    }
                    None => None,
                };
                if let Some(staged) = staged {
                    write_fresh_staged(
                        &mut self.state,
                        self.write_chunk,
                        cname,
                        planned,
                        &forced,
                        staged,
                        report,
                        progress,
                    )?;
                    progress.finish();
                    continue;
                }
                let mut after = String::new();
                loop {
                    let page = self.state.fresh_page(cname, &after, self.write_chunk)?;
                    let Some((last, _, _)) = page.last() else {
                        break;
                    };
                    after = last.clone();
                    for (id, version, value) in page {
                        let key = (cname.clone(), id);
                        if planned_with_the_rest(planned, &forced, scan, &key) {
                            continue;
                        }
                        let id = key.1;
                        p.writes.push(Write::Put {
                            id: id.clone(),
                            value,
                        });
                        p.after_write.push((id, Some(version), None));
                    }
                    if p.writes.len() >= self.write_chunk {
                        let chunk = std::mem::take(&mut p);
                        let n = chunk.writes.len() as u64;
                        record_writes(&mut self.state, &to, chunk, report, &mut outgoing)?;
                        progress.advance(n);
                    }
                }
                progress.finish();
            }
            record_writes(&mut self.state, &to, p, report, &mut outgoing)?;
        }
        // Forced entities that exist nowhere any more (created by the lost commit, deleted
        // here since): a tombstone replaces what other devices took from the lost delta.
        for (c, id) in forced.keys() {
            let key = EntityKey {
                collection: c.clone(),
                id: id.clone(),
            };
            if self.config.collections.contains_key(c) && !planned.plan.ops.contains_key(&key) {
                let clock = self.state.clock()?.tick(now_ms());
                self.state.set_clock(clock)?;
                outgoing.push((c.clone(), id.clone(), None, clock));
            }
        }
        Ok(outgoing)
    }

    /// Undoes what a staged bootstrap stopped before its end left ([`write_fresh_staged`]):
    /// the bases it recorded are forgotten — the collection had none before — and its
    /// staging folder removed, so that this sync starts it again. A collection with no base
    /// loses any staging folder too (one begun while a snapshot was read, [`EarlyStaging`],
    /// records nothing before the execute step). Runs first in every sync, under the
    /// workspace's lease (a dry run too: it shows what a sync would do).
    pub(crate) fn recover_staging(&mut self) -> Result<(), EngineError> {
        for (cname, cconf) in &self.config.collections {
            let key = staging_key(cname);
            let Some(staging) = self.state.get(&key)? else {
                if matches!(cconf.kind(), collections::CollectionKind::Dir { .. })
                    && !self.state.has_base_in(cname)?
                {
                    collections::discard_staging(&self.root, &cconf.kind());
                }
                continue;
            };
            tracing::warn!(
                collection = %cname,
                staging = %staging,
                "a bootstrap stopped before its files were in place; starting it again"
            );
            self.state.transaction(|s| {
                s.forget_bases(cname)?;
                s.unset(&key)
            })?;
            collections::discard_staging(&self.root, &cconf.kind());
        }
        Ok(())
    }

    /// Reads one local entity as a scan would, for an entity the scan took by its stat
    /// ([`Scan::known`]). A file that no longer holds an entity changed since the scan: the
    /// round stops with [`CollectionError::ChangedMeanwhile`] (temporary) rather than take
    /// it for a deletion.
    fn read_local(
        &self,
        cconf: &crate::config::CollectionConfig,
        id: &str,
    ) -> Result<Option<Value>, EngineError> {
        tracing::debug!(id, "reading an entity the scan took by its stat");
        if let collections::CollectionKind::Dir { path } = cconf.kind()
            && let Ok(file) = crate::ids::entity_path(&self.root.join(path), id)
        {
            return match collections::read_dir_entity(&file) {
                collections::EntityFile::Entity { value, .. } => Ok(Some(value)),
                _ => Err(CollectionError::ChangedMeanwhile { path: file }.into()),
            };
        }
        let scan = collections::scan(&self.root, &cconf.kind())?;
        match scan.entities.get(id) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(CollectionError::ChangedMeanwhile {
                path: self.root.join(&cconf.path),
            }
            .into()),
        }
    }

    /// The clock of a local change: when the app saved it (the file's mtime), but never
    /// before the version it was made on — a change is always later than what it changed, so
    /// a device whose wall clock is wrong wins only against edits made concurrently, never
    /// against edits made after seeing its own. Without an mtime (a deletion): now.
    pub(crate) fn edit_clock(
        &self,
        collection: &str,
        cconf: &crate::config::CollectionConfig,
        scan: &Scan,
        id: &str,
        store: bool,
    ) -> Result<Hlc, EngineError> {
        let saved = match &scan.fingerprint {
            collections::Fingerprint::Dir { files, .. } => files.get(id).and_then(|f| f.mtime),
            collections::Fingerprint::File { .. } => std::fs::metadata(self.root.join(&cconf.path))
                .and_then(|m| m.modified())
                .ok(),
        }
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
        let base = self.state.base_clock(collection, id)?;
        let after_base = Hlc {
            ms: base.ms,
            counter: base.counter.saturating_add(1),
        };
        let device = self.state.clock()?;
        let clock = match saved {
            Some(ms) => Hlc { ms, counter: 0 }.max(after_base),
            None => device.tick(now_ms()).max(after_base),
        };
        if store {
            self.state.set_clock(device.max(clock))?;
        }
        Ok(clock)
    }

    /// Three-way merge of one entity: local content (changed at `local_clock`) against the
    /// mirror, from the base. Returns the outcome and the mirror record.
    pub(crate) fn merge_entity(
        &self,
        collection: &str,
        id: &str,
        local: Option<&Value>,
        local_clock: Hlc,
        strategy: crate::merge::Strategy,
    ) -> Result<(crate::merge::MergeOutcome, Option<MirrorRecord>), EngineError> {
        let m = self.state.mirror(collection, id)?;
        let base = self.state.base(collection, id)?;
        let base_content = base.as_ref().and_then(|(_, c)| c.as_ref());
        let (m_content, m_clock, m_device) = match &m {
            Some(m) => (m.content.as_ref(), m.clock, m.device.as_str()),
            None => (None, Hlc::default(), ""),
        };
        let outcome = merge3(
            base_content,
            Side {
                value: local,
                clock: local_clock,
                device: &self.device_id,
            },
            Side {
                value: m_content,
                clock: m_clock,
                device: m_device,
            },
            strategy,
        );
        Ok((outcome, m))
    }

    pub(crate) fn receipt(
        &self,
        collection: &str,
        id: &str,
        fc: crate::merge::FieldConflict,
        at: Hlc,
    ) -> ConflictReceipt {
        ConflictReceipt {
            id: format!("{}-{}-{:04x}", self.device_id, now_ms(), fastrand::u16(..)),
            collection: collection.to_string(),
            entity_id: id.to_string(),
            field: fc.field,
            kind: fc.kind,
            kept: fc.kept,
            kept_by: fc.kept_by,
            lost: fc.lost,
            lost_by: fc.lost_by,
            kept_at: Some(fc.kept_at),
            lost_at: Some(fc.lost_at),
            at,
            resolved: false,
            extra: Default::default(),
        }
    }

    /// The conflicts a sync would record, without recording them (dry run).
    pub(crate) fn preview_conflicts(
        &self,
        planned: &Planned,
    ) -> Result<Vec<ConflictReceipt>, EngineError> {
        let mut out = Vec::new();
        for (key, op) in &planned.plan.ops {
            if *op != Op::Merge {
                continue;
            }
            let Some(cconf) = self.config.collections.get(&key.collection) else {
                continue;
            };
            let scan = &planned.scans[&key.collection];
            let read_now;
            let local = match scan.entities.get(&key.id) {
                Some(v) => Some(v),
                None if scan.known.contains_key(&key.id) => {
                    read_now = self.read_local(cconf, &key.id)?;
                    read_now.as_ref()
                }
                None => None,
            };
            let at = self.edit_clock(&key.collection, cconf, scan, &key.id, false)?;
            let (outcome, _) =
                self.merge_entity(&key.collection, &key.id, local, at, cconf.strategy)?;
            for fc in outcome.conflicts {
                out.push(self.receipt(&key.collection, &key.id, fc, at));
            }
        }
        Ok(out)
    }
}

/// The collection a chunk of local writes goes to: the workspace, its name, kind and scan.
#[derive(Clone, Copy)]
struct Target<'a> {
    root: &'a Path,
    cname: &'a str,
    kind: &'a collections::CollectionKind,
    scan: &'a Scan,
}

/// Makes the local writes of `p` (never over a save the app made since the scan), then records
/// in one transaction the bases of what was written or adopted and the receipts of the merges
/// done; adds to `outgoing` the pushes that waited for their write. Entities whose write was
/// skipped are reported deferred and get nothing recorded.
fn record_writes(
    state: &mut State,
    to: &Target<'_>,
    p: Pending,
    report: &mut SyncReport,
    outgoing: &mut Vec<Outgoing>,
) -> Result<(), EngineError> {
    let Target {
        root,
        cname,
        kind,
        scan,
    } = *to;
    let Pending {
        writes,
        after_write,
        adopt,
        mut receipts,
    } = p;
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    // Writes the collection cannot make (an id too long for a file name, a value that is not
    // an object, too deep): held with a reason, the rest goes on.
    let mut refused: BTreeSet<String> = BTreeSet::new();
    if !writes.is_empty() {
        match collections::apply(root, kind, &writes, &scan.fingerprint) {
            Ok(r) => {
                skipped.extend(r.skipped);
                for why in r.refused {
                    refused.insert(why.id().to_owned());
                    report.problems.push(format!("{cname}: {why}"));
                }
            }
            Err(CollectionError::ChangedMeanwhile { .. }) => {
                skipped.extend(after_write.iter().map(|(id, _, _)| id.clone()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    drop(writes);
    for id in skipped.difference(&refused) {
        report.deferred.push(format!("{cname}/{id}"));
    }
    receipts.retain(|(id, _)| !skipped.contains(id));
    state.transaction(|s| {
        for (_, r) in &receipts {
            s.put_conflict(r, true)?;
        }
        for (id, v) in &adopt {
            s.set_base_to_mirror(cname, id, *v)?;
        }
        for (id, base, _) in &after_write {
            if skipped.contains(id) {
                continue;
            }
            match base {
                Some(v) => {
                    s.set_base_to_mirror(cname, id, *v)?;
                }
                None => s.set_base(cname, id, None)?,
            }
        }
        Ok(())
    })?;
    report
        .conflicts
        .extend(receipts.into_iter().map(|(_, r)| r));
    for (id, _, push) in after_write {
        if skipped.contains(&id) {
            continue;
        }
        if let Some((value, clock)) = push {
            outgoing.push((cname.to_owned(), id, value, clock));
        }
    }
    Ok(())
}

/// The key of the state setting that says a staged bootstrap of a collection is under way:
/// the bases recorded meanwhile count only once its files are moved into place.
pub(crate) fn staging_key(collection: &str) -> String {
    format!("staging:{collection}")
}

/// Whether a fresh entity (`key`: collection, id) is planned with the rest rather than
/// written as new: a file of its own, held, forced, or looked at by the plan.
fn planned_with_the_rest(
    planned: &Planned,
    forced: &BTreeMap<(String, String), u64>,
    scan: &Scan,
    key: &(String, String),
) -> bool {
    planned.states.contains_key(key)
        || forced.contains_key(key)
        || scan.has(&key.1)
        || scan.held.contains(&key.1)
}

/// Writes the fresh entities of `cname` — a collection with no base at all, its folder absent
/// or empty: a new device's bootstrap — into `staged`, page by page (confirming what was
/// offered while the snapshot was read), records their bases while the writer thread makes
/// the files durable, and moves them into place at once.
///
/// The bases count only once the files are in place: the state setting [`staging_key`],
/// durable before the first base, says they may not be. Should the staging fail, or the
/// process stop before the setting is removed, every base of the collection is forgotten
/// ([`Engine::recover_staging`] at the next sync) — none was there before — and the next sync
/// starts again, adopting any file that did reach the collection.
#[allow(clippy::too_many_arguments)]
fn write_fresh_staged(
    state: &mut State,
    write_chunk: usize,
    cname: &str,
    planned: &Planned,
    forced: &BTreeMap<(String, String), u64>,
    mut staged: collections::Staged,
    report: &mut SyncReport,
    progress: &dyn crate::progress::Progress,
) -> Result<(), EngineError> {
    let key = staging_key(cname);
    state.set(&key, &staged.name())?;
    let scan = &planned.scans[cname];
    let staged_all = || -> Result<collections::NotStaged, EngineError> {
        let mut after = String::new();
        let mut left_out = Vec::new();
        // The pages' first and last ids: a statement each records their bases (one for all
        // would hold every row's old page in memory, for its rollback).
        let mut pages = Vec::new();
        loop {
            let page = state.fresh_page_text(cname, &after, write_chunk)?;
            let Some((last, _, _)) = page.last() else {
                break;
            };
            let last = last.clone();
            let n = page.len() as u64;
            for (id, version, json) in page {
                let key = (cname.to_owned(), id);
                if planned_with_the_rest(planned, forced, scan, &key) {
                    left_out.push(key.1);
                    continue;
                }
                // Offered at this version while the snapshot was read: written already.
                staged.write(&key.1, version, json)?;
            }
            pages.push((std::mem::replace(&mut after, last.clone()), last));
            progress.advance(n);
        }
        // Every file handed over: the writer thread makes them durable while the bases are
        // recorded, but for the entities left to the plan.
        staged.close()?;
        state.transaction(|s| {
            for (after, last) in &pages {
                s.set_fresh_bases_to_mirror(cname, after, last)?;
            }
            for id in &left_out {
                s.set_base(cname, id, None)?;
            }
            Ok(())
        })?;
        progress.finish();
        progress.start(FLUSHING, 0);
        Ok(staged.finish()?)
    };
    let not = match staged_all() {
        Ok(not) => not,
        Err(e) => {
            let undone = state.transaction(|s| {
                s.forget_bases(cname)?;
                s.unset(&key)
            });
            if let Err(u) = undone {
                tracing::warn!(error = %u, "cannot undo a stopped bootstrap now; the next sync will");
            }
            return Err(e);
        }
    };
    state.transaction(|s| {
        for id in not.ids() {
            s.set_base(cname, id, None)?;
        }
        s.unset(&key)
    })?;
    for why in &not.refused {
        report.problems.push(format!("{cname}: {why}"));
    }
    for id in &not.deferred {
        report.deferred.push(format!("{cname}/{id}"));
    }
    Ok(())
}
