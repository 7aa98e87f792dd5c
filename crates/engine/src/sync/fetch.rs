//! Step 1 of a sync, fetch: meta.json read (conditionally, or in full where ETags can go
//! stale), the remote checked against what this device applied, new deltas applied to the mirror.

use super::*;

/// State key: the time (ms) meta.json was last read with its body.
pub(crate) const META_READ_MS: &str = "meta_read_ms";

/// State key, set after each commit of ours: read meta.json with its body next time.
pub(crate) const REREAD_META: &str = "reread_meta";

/// How long a device may take a "not modified" answer on trust on a remote whose ETags can go
/// stale ([`deltasync_remote::Capabilities::stale_etags`]): after that, and after each of its
/// own commits, meta.json is read unconditionally. This bounds how long a device can miss a
/// commit whose meta.json kept the ETag of the one it replaced.
pub const STALE_ETAG_BOUND: Duration = Duration::from_secs(30);

/// [`mirror_of`], taking the record.
fn mirror_from(r: EntityRecord) -> MirrorRecord {
    MirrorRecord {
        version: r.version,
        clock: r.last_modified_at,
        device: r.last_modified_by,
        content: if r.is_deleted { None } else { Some(r.data) },
        extra: r.extra,
    }
}

pub(crate) fn mirror_of(r: &EntityRecord) -> MirrorRecord {
    MirrorRecord {
        version: r.version,
        clock: r.last_modified_at,
        device: r.last_modified_by.clone(),
        content: if r.is_deleted {
            None
        } else {
            Some(r.data.clone())
        },
        extra: r.extra.clone(),
    }
}

/// What a fetch did ([`Engine::fetch_finishing`]).
pub(crate) struct Fetched {
    /// The current meta.json.
    pub meta: Arc<Meta>,
    /// Its etag.
    pub etag: Etag,
    /// How many deltas (and snapshots) were applied.
    pub applied: usize,
    /// Seqs of this device's commits whose local side the journal finished: found in
    /// meta.json after their answer was lost or the process died ([`Engine::reconcile_journal`]).
    pub finished: Vec<u64>,
    /// New collections whose staging began while the snapshot was read, for the execute
    /// step ([`EarlyStaging`]); dropped unused, their staging folder goes.
    pub staged: BTreeMap<String, collections::Staged>,
}

impl Engine {
    /// The local copy of meta.json and its etag. Parsed once per copy: the engine keeps it
    /// under the state's [`State::meta_key`] (etag and revision), so a fetch answered 304
    /// costs two small state reads, whatever the size of meta.json; a copy written by another
    /// process has a new revision and is read again.
    pub(crate) fn cached_meta(&self) -> Result<Option<(Arc<Meta>, Etag)>, EngineError> {
        let Some(key) = self.state.meta_key()? else {
            return Ok(None);
        };
        let mut cache = self
            .meta_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.as_ref()
            && c.key == key
        {
            return Ok(Some((c.meta.clone(), Etag(key.0))));
        }
        let Some(text) = self.state.get("meta")? else {
            return Ok(None);
        };
        let meta =
            Arc::new(
                Meta::from_bytes(text.as_bytes()).map_err(|source| StoreError::Format {
                    path: "local copy of meta.json".into(),
                    source,
                })?,
            );
        let etag = Etag(key.0.clone());
        *cache = Some(CachedMeta {
            key,
            meta: meta.clone(),
        });
        Ok(Some((meta, etag)))
    }

    /// Stores `meta` (with `etag`) as the local copy of meta.json inside transaction `s`,
    /// returning the cache entry to keep once the transaction is committed
    /// ([`Engine::keep_meta`]).
    pub(crate) fn store_meta(
        s: &State,
        meta: Arc<Meta>,
        etag: &Etag,
    ) -> Result<CachedMeta, StateError> {
        // Complete (every delta since the snapshot), whatever the remote's format lists.
        let text = String::from_utf8(meta.to_local_bytes()).unwrap_or_else(|_| "{}".into());
        let rev = s.set_meta(&text, &etag.0)?;
        Ok(CachedMeta {
            key: (etag.0.clone(), Some(rev)),
            meta,
        })
    }

    /// Keeps the parsed copy that [`Engine::store_meta`] stored (its transaction committed).
    pub(crate) fn keep_meta(&self, cached: CachedMeta) {
        *self
            .meta_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached);
    }

    /// Step 1: brings the mirror up to date with the remote. Returns the current meta, its
    /// etag, and how many deltas were applied.
    pub fn fetch(&mut self) -> Result<(Arc<Meta>, Etag, usize), EngineError> {
        self.fetch_with(&crate::progress::NoProgress)
    }

    /// [`Engine::fetch`], reporting the reading of a snapshot and of deltas to `progress`
    /// (a new device's first sync reads the whole snapshot).
    pub fn fetch_with(
        &mut self,
        progress: &dyn crate::progress::Progress,
    ) -> Result<(Arc<Meta>, Etag, usize), EngineError> {
        let f = self.fetch_finishing(progress, false)?;
        Ok((f.meta, f.etag, f.applied))
    }

    /// [`Engine::fetch_with`], saying which of this device's commits the journal finished.
    /// `stage`: the sync writes what it fetched (not a dry run), so a new collection's files
    /// may be staged while its snapshot is read ([`EarlyStaging`]).
    pub(crate) fn fetch_finishing(
        &mut self,
        progress: &dyn crate::progress::Progress,
        stage: bool,
    ) -> Result<Fetched, EngineError> {
        let cached = self.cached_meta()?;
        // On a remote whose ETags can go stale, a "not modified" is taken on trust only for a
        // while, and not right after our own commit (a racing writer in the same second can
        // leave meta.json with the ETag we were given).
        let reread = self.store.remote().capabilities().stale_etags
            && (self.state.get(REREAD_META)?.is_some()
                || self
                    .state
                    .get(META_READ_MS)?
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none_or(|t| {
                        now_ms().saturating_sub(t) >= STALE_ETAG_BOUND.as_millis() as u64
                    }));
        let known = match &cached {
            Some((_, e)) if !reread => Some(e),
            _ => None,
        };
        let read_at = now_ms();
        let answer = match self.store.read_meta(known) {
            // This device synced there: the remote was emptied, not never initialised.
            Err(StoreError::NotInitialised) if cached.is_some() => {
                let head = cached.as_ref().map(|(m, _)| m.head).unwrap_or(0);
                return Err(self.remote_behind(format!(
                    "it has no meta.json, although this device synced there up to commit {head} \
                     (the remote was emptied or moved)"
                )));
            }
            other => other?,
        };
        let (meta, etag) = match answer {
            MetaRead::NotModified => {
                // The store answers "not modified" only to a read with our etag, so there is
                // a cached meta; a broken answer is temporary rather than a panic.
                let Some((m, e)) = cached else {
                    return Err(
                        StoreError::Remote(deltasync_remote::RemoteError::Transient {
                            what: "GET meta.json".into(),
                            detail: "304 Not Modified without a condition".into(),
                        })
                        .into(),
                    );
                };
                // The meta we hold is current: a commit attempted since (a crash before or
                // during its meta write) is decided against it now.
                let mut finished = Vec::new();
                if self
                    .state
                    .pending_states()?
                    .iter()
                    .any(|(_, state)| *state == JournalState::Attempted)
                {
                    finished = self.reconcile_journal(&m, &e, &[])?;
                }
                return Ok(Fetched {
                    meta: m,
                    etag: e,
                    applied: 0,
                    finished,
                    staged: BTreeMap::new(),
                });
            }
            MetaRead::Fresh { meta, etag, .. } => (meta, etag),
        };
        // A format-2 meta.json lists only the newest delta: the chain back to what this
        // device already holds is read (those deltas are new here, so they are read anyway).
        let mut meta = meta;
        let mut read = self
            .store
            .complete(&mut meta, cached.as_ref().map(|(m, _)| m.as_ref()))
            .map_err(|e| self.store.confirm_missing(e))?;
        // A new device (or a new snapshot generation) starts from the snapshot.
        let known_generation = self
            .state
            .get("generation")?
            .and_then(|g| g.parse::<u64>().ok());
        let snapshot = match &meta.snapshot {
            Some(r) if known_generation != Some(r.generation) => {
                progress.start("downloading snapshot", 0);
                // Its bytes, verified, and every field but the records, which are read one at
                // a time into the mirror below: a new device never holds them all at once.
                let (snap, bytes) = self
                    .store
                    .read_snapshot_bytes(r)
                    .map_err(|e| self.store.confirm_missing(e))?;
                progress.finish();
                Some((r.clone(), snap, bytes))
            }
            _ => None,
        };
        // The devices that committed before the snapshot are named there.
        if let Some((_, snap, _)) = &snapshot {
            meta.merge_devices(&snap.devices);
        }
        let meta = Arc::new(meta);
        let folded = snapshot
            .as_ref()
            .map(|(_, s, _)| s.folded.as_slice())
            .unwrap_or(&[]);
        let cached_meta = cached.map(|(m, _)| m);
        self.check_not_behind(&meta, cached_meta.as_deref(), known_generation)?;
        self.check_history(&meta, cached_meta.as_deref(), known_generation)?;
        let finished = self.reconcile_journal(&meta, &etag, folded)?;
        self.force_vanished(&meta, folded)?;
        let mut applied = 0;
        let mut early = if stage && snapshot.is_some() {
            EarlyStaging::new(&self.root, &self.config, &self.state)?
        } else {
            EarlyStaging::none()
        };
        if let Some((r, snapshot, bytes)) = &snapshot {
            let mut clock = self.state.clock()?;
            progress.start("reading snapshot", 0);
            // One transaction with the generation: a crash or a damaged record leaves the
            // mirror as it was, and the next fetch reads the snapshot again.
            let mut damaged = None;
            let done = self.state.transaction(|s| {
                let mut n = 0u64;
                let streamed = Snapshot::stream(bytes, |rec| {
                    n += 1;
                    if n.is_multiple_of(1000) {
                        progress.advance(1000);
                    }
                    clock = clock.max(rec.last_modified_at);
                    let (collection, id) = (rec.collection.clone(), rec.id.clone());
                    let mirror = mirror_from(rec);
                    if s.set_mirror_if_newer(&collection, &id, &mirror)?
                        && let Some(content) = mirror.content
                    {
                        early.offer(&collection, &id, mirror.version, content);
                    }
                    Ok::<(), StateError>(())
                });
                match streamed {
                    Ok(_) => {}
                    Err(StreamError::Stopped(e)) => return Err(e),
                    Err(StreamError::Format(e)) => {
                        damaged = Some(e);
                        return Err(StateError::Io(std::io::Error::other("damaged snapshot")));
                    }
                }
                for c in &snapshot.conflicts {
                    s.put_conflict(c, false)?;
                }
                s.set_clock(clock)?;
                s.set_generation(r.generation, snapshot.head)
            });
            if let Some(e) = damaged {
                return Err(self.store.damaged_snapshot(r, e).into());
            }
            done?;
            progress.finish();
            applied += 1;
        }
        let mut deltas: Vec<_> = meta.deltas.iter().collect();
        deltas.sort_by_key(|d| d.seq);
        for d in deltas {
            if self.state.is_applied(&d.path)? {
                continue;
            }
            let delta = match read.remove(&d.path) {
                Some(delta) => delta,
                None => self
                    .store
                    .read_delta(d)
                    .map_err(|e| self.store.confirm_missing(e))?,
            };
            let mut clock = self.state.clock()?;
            self.state.transaction(|s| {
                for r in &delta.records {
                    s.set_mirror(&r.collection, &r.id, Some(&mirror_of(r)))?;
                    clock = clock.max(r.last_modified_at);
                }
                for c in &delta.conflicts {
                    s.put_conflict(c, false)?;
                }
                s.set_clock(clock)?;
                s.mark_applied(&d.path, d.seq)
            })?;
            applied += 1;
        }
        let kept = self.state.transaction(|s| {
            let kept = Self::store_meta(s, meta.clone(), &etag)?;
            s.set(META_READ_MS, &read_at.to_string())?;
            s.unset(REREAD_META)?;
            Ok(kept)
        })?;
        self.keep_meta(kept);
        Ok(Fetched {
            meta,
            etag,
            applied,
            finished,
            staged: early.into_staged(),
        })
    }

    /// Refuses a remote that is behind what this device applied: a lower head, or an older
    /// snapshot generation (emptied and initialised again, or put back from an older copy).
    pub(crate) fn check_not_behind(
        &self,
        meta: &Meta,
        cached: Option<&Meta>,
        known_generation: Option<u64>,
    ) -> Result<(), EngineError> {
        let Some(cached) = cached else {
            return Ok(());
        };
        if meta.head < cached.head {
            return Err(self.remote_behind(format!(
                "it is at commit {}, and this device has applied commits up to commit {} (the \
                 remote was emptied and initialised again, or put back from an older copy)",
                meta.head, cached.head
            )));
        }
        let generation = meta.snapshot.as_ref().map(|s| s.generation);
        if let (Some(now), Some(known)) = (generation, known_generation)
            && now < known
        {
            return Err(self.remote_behind(format!(
                "its snapshot is generation {now}, and this device has read generation {known} \
                 (the remote was put back from an older copy)"
            )));
        }
        Ok(())
    }

    /// Refuses a remote whose history differs from what this device applied: a delta at a seq
    /// this device has passed, which it never applied (put back from an older copy that others
    /// have committed on top of since). Only on remotes whose compare-and-swap is atomic,
    /// within one snapshot generation, below the newest commit this device saw, and not at the
    /// seq of a commit of ours still in the journal.
    pub(crate) fn check_history(
        &self,
        meta: &Meta,
        cached: Option<&Meta>,
        known_generation: Option<u64>,
    ) -> Result<(), EngineError> {
        let Some(cached) = cached else {
            return Ok(());
        };
        if meta.snapshot.as_ref().map(|s| s.generation) != known_generation {
            return Ok(());
        }
        // Where two writers can both win, history below the head can change as commits are
        // lost and made again (the property test finds such runs): there, only a remote that
        // went back is refused (check_not_behind).
        if !matches!(
            self.store.remote().capabilities().cas,
            CasClass::Atomic | CasClass::WeakWindow
        ) {
            return Ok(());
        }
        let ours: BTreeSet<u64> = self
            .state
            .pending_states()?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        // Within a generation the list only grows: every delta below the head this device saw
        // is in the meta.json it last read (no query per delta on this path of every fetch).
        let seen: BTreeSet<&str> = cached.deltas.iter().map(|d| d.path.as_str()).collect();
        for d in &meta.deltas {
            if d.seq < cached.head && !ours.contains(&d.seq) && !seen.contains(d.path.as_str()) {
                return Err(self.remote_behind(format!(
                    "its commit {} ({}) is not the one this device applied at that point (the \
                     remote was put back from an older copy, and others have committed since)",
                    d.seq, d.path
                )));
            }
        }
        Ok(())
    }

    /// meta.json as the remote has it now, read unconditionally and complete (every delta
    /// since the snapshot listed): the chain of a format-2 meta.json is walked back only as far
    /// as the local copy does not already list it. For commands that read the remote's history
    /// (log, backup, repair); a sync's fetch does its own.
    pub(crate) fn read_remote_meta(&self) -> Result<(Meta, Etag), EngineError> {
        let cached = self.cached_meta()?;
        let (meta, etag, _) = self
            .store
            .read_meta_complete(cached.as_ref().map(|(m, _)| m.as_ref()))?;
        Ok((meta, etag))
    }

    /// A store over the remote itself, without this device's copies of deltas: for `verify`,
    /// which checks the remote's files.
    pub(crate) fn uncached_store(&self) -> Store {
        Store::new(self.cache.uncached().clone()).with_backoff(self.store.backoff().clone())
    }

    /// Whether this device keeps a copy of the delta at `path` (reading it sends no request).
    pub(crate) fn holds_copy(&self, path: &str) -> bool {
        self.cache.holds(path)
    }

    pub(crate) fn remote_behind(&self, detail: String) -> EngineError {
        EngineError::RemoteBehind {
            remote: self.store.remote().describe(),
            detail,
        }
    }
}
