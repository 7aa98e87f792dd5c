//! A new `dir` collection's staging begun while its snapshot is read (a new device's
//! bootstrap): the staging's writer thread creates the files while the fetch fills the state
//! database, rather than after it, and the execute step then confirms each file against what
//! it decided to write ([`collections::Staged::offer`]), writing only what changed since.

use super::*;

/// The collections whose staging may begin while a snapshot is read, and how far each got.
pub(crate) struct EarlyStaging {
    root: PathBuf,
    collections: BTreeMap<String, Early>,
}

/// One collection of an [`EarlyStaging`].
enum Early {
    /// Not staged yet: its live records read so far (a staging begins at [`STAGE_FROM`], as
    /// the execute step's would).
    Waiting(collections::CollectionKind, Vec<(String, u64, Value)>),
    /// Staged: its records are offered as they are read.
    Staged(collections::Staged),
    /// Not staged now: its folder has something in it, or the staging failed (the execute
    /// step decides again, as it would without this).
    Off,
}

impl EarlyStaging {
    /// None: a fetch that is not followed by writes (a dry run, `status`, a preview).
    pub(crate) fn none() -> EarlyStaging {
        EarlyStaging {
            root: PathBuf::new(),
            collections: BTreeMap::new(),
        }
    }

    /// Every `dir` collection of `config` with no base yet (this device never synced it) may
    /// be staged while the snapshot is read.
    pub(crate) fn new(
        root: &Path,
        config: &Config,
        state: &State,
    ) -> Result<EarlyStaging, StateError> {
        let mut collections = BTreeMap::new();
        for (name, cconf) in &config.collections {
            let kind = cconf.kind();
            if matches!(kind, collections::CollectionKind::Dir { .. })
                && !state.has_base_in(name)?
            {
                collections.insert(name.clone(), Early::Waiting(kind, Vec::new()));
            }
        }
        Ok(EarlyStaging {
            root: root.to_owned(),
            collections,
        })
    }

    /// Offers a record with content, read from the snapshot, to its collection's staging.
    /// Never fails: a staging that cannot go on is dropped (its folder removed), and the
    /// execute step writes the collection as it would have.
    pub(crate) fn offer(&mut self, collection: &str, id: &str, version: u64, content: Value) {
        let Some(early) = self.collections.get_mut(collection) else {
            return;
        };
        match early {
            Early::Off => {}
            Early::Staged(staged) => {
                if let Err(e) = staged.offer(id, version, content) {
                    tracing::debug!(collection, error = %e, "staging while reading stopped");
                    *early = Early::Off;
                }
            }
            Early::Waiting(kind, read) => {
                read.push((id.to_owned(), version, content));
                if (read.len() as u64) < STAGE_FROM {
                    return;
                }
                let empty = collections::Fingerprint::Dir {
                    files: BTreeMap::new(),
                    held: BTreeSet::new(),
                };
                let mut staged = match collections::stage(&self.root, kind, &empty) {
                    Ok(Some(staged)) => staged,
                    Ok(None) => {
                        *early = Early::Off;
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(collection, error = %e, "cannot stage while reading");
                        *early = Early::Off;
                        return;
                    }
                };
                for (id, version, content) in std::mem::take(read) {
                    if let Err(e) = staged.offer(&id, version, content) {
                        tracing::debug!(collection, error = %e, "staging while reading stopped");
                        *early = Early::Off;
                        return;
                    }
                }
                *early = Early::Staged(staged);
            }
        }
    }

    /// The stagings begun, by collection, for the execute step.
    pub(crate) fn into_staged(self) -> BTreeMap<String, collections::Staged> {
        self.collections
            .into_iter()
            .filter_map(|(name, early)| match early {
                Early::Staged(staged) => Some((name, staged)),
                _ => None,
            })
            .collect()
    }
}
