//! `dir` collections: one JSON file per entity in a folder, read and written atomically.

use super::*;

/// Editor and temporary files, never entities.
pub(super) fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name.contains(".json.tmp-")
        || name.contains(".deltasync-tmp-")
}

/// The stat of a listed entry (its own: the caller has checked it is no link); a default,
/// which matches nothing known, when it cannot be had.
fn entry_stat(entry: &fs::DirEntry) -> FileStat {
    entry
        .metadata()
        .map(|m| FileStat::of(&m))
        .unwrap_or_default()
}

/// Reads the file of entity `id` at `path` as a scan does: the entity, or why it is held
/// (unreadable, a link to nothing, not a JSON object, a key twice in one object, nested too
/// deep), or absent.
pub(super) fn read_entity(path: &Path, id: String) -> EntityFile {
    read_entity_stat(path, id).0
}

/// [`read_entity`], with the file's stat when it was read whole and unchanged
/// ([`read_file_stat`]) and holds an entity.
fn read_entity_stat(path: &Path, id: String) -> (EntityFile, Option<FileStat>) {
    let (stamp, stat, bytes) = match read_file_stat(path) {
        Ok(Some(read)) => read,
        // A link to nothing (its target removed, or on a disk not mounted now): unreadable,
        // not deleted.
        Ok(None) if let Some(target) = dangling_link(path) => {
            let problem = problem(
                path,
                format!(
                    "a symbolic link to {}, which does not exist; entity held",
                    target.display()
                ),
                Some(vec![id.clone()]),
            );
            return (EntityFile::Held { id, problem }, None);
        }
        Ok(None) => return (EntityFile::Absent { id }, None),
        Err(e) => {
            let problem = problem(
                path,
                format!("cannot read: {e}; entity held"),
                Some(vec![id.clone()]),
            );
            return (EntityFile::Held { id, problem }, None);
        }
    };
    let body = split_bom(&bytes).1;
    let problem = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(_)) if let Some((key, at)) = spans::duplicate_key(body) => {
            let (line, column) = line_col(body, at);
            ScanProblem {
                line: Some(line),
                column: Some(column),
                ..problem(path, twice(&key), Some(vec![id.clone()]))
            }
        }
        Ok(Value::Object(map)) => match limits::too_deep_to_sync(&map) {
            Some(message) => problem(path, message, Some(vec![id.clone()])),
            None => {
                let entity = EntityFile::Entity {
                    id,
                    value: Value::Object(map),
                    stamp,
                };
                return (entity, stat);
            }
        },
        Ok(other) => problem(
            path,
            format!(
                "holds a JSON {}, not an object; entity held",
                type_name(&other)
            ),
            Some(vec![id.clone()]),
        ),
        Err(e) => json_problem(path, &e, Some(vec![id.clone()])),
    };
    (EntityFile::Held { id, problem }, None)
}

/// A scan that has found nothing yet.
fn empty() -> Scan {
    Scan {
        entities: BTreeMap::new(),
        problems: Vec::new(),
        held: BTreeSet::new(),
        whole_collection_held: false,
        fingerprint: Fingerprint::Dir {
            files: BTreeMap::new(),
            held: BTreeSet::new(),
        },
        known: BTreeMap::new(),
        stats: BTreeMap::new(),
        unchanged: 0,
        texts: BTreeMap::new(),
    }
}

/// Reads one entity's file into `out` as a scan does (`is_link`: the file is a symbolic
/// link, whose stat is never remembered and whose target goes to `linked`).
fn take(
    out: &mut Scan,
    files: &mut BTreeMap<String, FileStamp>,
    linked: &mut BTreeMap<PathBuf, Vec<String>>,
    path: &Path,
    id: String,
    is_link: bool,
    trust_before: SystemTime,
) {
    match read_entity_stat(path, id) {
        (EntityFile::Entity { id, value, stamp }, stat) => {
            if is_link && let Ok(target) = fs::canonicalize(path) {
                linked.entry(target).or_default().push(id.clone());
            }
            if !is_link
                && let Some(stat) = stat
                && stat.changed_before(trust_before)
            {
                out.stats.insert(id.clone(), stat);
            }
            out.entities.insert(id.clone(), value);
            files.insert(id, stamp);
        }
        (EntityFile::Held { id, problem }, _) => {
            out.problems.push(problem);
            out.held.insert(id);
        }
        // Removed between the listing and the read: the app deleted it.
        (EntityFile::Absent { .. } | EntityFile::NotAnEntity, _) => {}
    }
}

/// The files of `ids` alone ([`super::read_dir_ids`]); `None` when one is a symbolic link.
pub(super) fn read_ids(
    dir: &Path,
    ids: &BTreeSet<String>,
    trust_before: SystemTime,
) -> Result<Option<Scan>, CollectionError> {
    let mut out = empty();
    let mut files = BTreeMap::new();
    let mut linked = BTreeMap::new();
    for id in ids {
        // No file can have this name: the entity is absent here.
        let Ok(path) = ids::entity_path(dir, id) else {
            continue;
        };
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(None);
        }
        take(
            &mut out,
            &mut files,
            &mut linked,
            &path,
            id.clone(),
            false,
            trust_before,
        );
    }
    out.problems.sort_by(|a, b| a.file.cmp(&b.file));
    out.fingerprint = Fingerprint::Dir {
        files,
        held: out.held.clone(),
    };
    Ok(Some(out))
}

/// Scans the folder `dir`; `lean`: the files whose stat it knows are only marked there and
/// counted ([`super::scan_dir_lean`]).
pub(super) fn scan(
    dir: &Path,
    known: &Known,
    mut lean: Option<&mut KnownStats>,
    mut unchanged: Option<&mut Unchanged<'_>>,
) -> Result<Scan, CollectionError> {
    let mut out = empty();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(_) if dir.is_file() => {
            return Err(CollectionError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let mut files = BTreeMap::new();
    // Entities whose file is a symbolic link, by the file it leads to.
    let mut linked: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            let lossy = entry.file_name().to_string_lossy().into_owned();
            if !is_ignored(&lossy) && lossy.ends_with(".json") {
                out.problems.push(problem(
                    &path,
                    "file name is not valid UTF-8; ignored".into(),
                    None,
                ));
            }
            continue;
        };
        if is_ignored(&name) {
            if atomic::is_our_temp(&name, None) {
                atomic::remove_if_stale(&entry);
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let id = match ids::decode_stem(stem) {
            Ok(id) => id,
            Err(e) => {
                out.problems
                    .push(problem(&path, format!("{e}; ignored"), None));
                continue;
            }
        };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        // A file whose stat is what it was when it was read holds what it held then. Never a
        // link: its target's stat is not the entry's.
        if !is_link
            && let Some(stats) = lean.as_deref_mut()
            && stats.take(&id, &entry_stat(&entry))
        {
            out.unchanged += 1;
            continue;
        }
        if !is_link
            && let Some(k) = known.files.get(&id)
            && let Ok(meta) = entry.metadata()
            && FileStat::of(&meta) == k.stat
        {
            out.known.insert(id.clone(), k.hash.clone());
            files.insert(
                id,
                FileStamp {
                    size: k.stat.size,
                    mtime: meta.modified().ok(),
                    hash: k.file_hash.clone(),
                },
            );
            continue;
        }
        take(
            &mut out,
            &mut files,
            &mut linked,
            &path,
            id.clone(),
            is_link,
            known.trust_before,
        );
        // A full lean scan keeps only what changed.
        if !is_link
            && let Some(f) = unchanged.as_deref_mut()
            && let Some(stats) = lean.as_deref_mut()
            && let (Some(value), Some(stamp)) = (out.entities.get(&id), files.get(&id))
            && f(&id, value, out.stats.get(&id).copied(), &stamp.hash)
            && stats.mark_unchanged(&id)
        {
            out.entities.remove(&id);
            out.stats.remove(&id);
            files.remove(&id);
            out.unchanged += 1;
        }
    }
    hold_aliases(dir, linked, &mut out, &mut files, lean);
    out.problems.sort_by(|a, b| a.file.cmp(&b.file));
    out.fingerprint = Fingerprint::Dir {
        files,
        held: out.held.clone(),
    };
    Ok(out)
}

/// Holds the entities whose files are one file: links to another entity's file of this
/// collection, or several links to one file. A write to one would silently change the others.
fn hold_aliases(
    dir: &Path,
    mut linked: BTreeMap<PathBuf, Vec<String>>,
    out: &mut Scan,
    files: &mut BTreeMap<String, FileStamp>,
    mut lean: Option<&mut KnownStats>,
) {
    if linked.is_empty() {
        return;
    }
    // A link to an entity file of this folder shares it with that entity.
    if let Ok(real_dir) = fs::canonicalize(dir) {
        for (target, ids) in &mut linked {
            if target.parent() == Some(real_dir.as_path())
                && let Some(stem) = target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                && let Ok(id) = ids::decode_stem(stem)
                && (out.has(&id) || lean.as_deref().is_some_and(|k| k.is_unchanged(&id)))
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
    }
    for (target, ids) in linked {
        if ids.len() < 2 {
            continue;
        }
        for id in &ids {
            out.entities.remove(id);
            out.known.remove(id);
            if let Some(k) = lean.as_deref_mut()
                && k.is_unchanged(id)
            {
                k.remove(id);
                out.unchanged -= 1;
            }
            out.stats.remove(id);
            files.remove(id);
            out.held.insert(id.clone());
        }
        out.problems.push(problem(
            &target,
            format!(
                "entities {} are one file (symbolic links); entities held until each has a file of its own",
                ids.iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(ids),
        ));
    }
}

/// The target of `path` if `path` is a symbolic link whose target does not exist.
fn dangling_link(path: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    Some(fs::read_link(path).unwrap_or_else(|_| path.to_owned()))
}

fn problem(file: &Path, message: String, ids: Option<Vec<String>>) -> ScanProblem {
    ScanProblem {
        file: file.to_owned(),
        message,
        ids,
        line: None,
        column: None,
    }
}

/// The new file text for `value`, in the style of the file it replaces, if any.
pub(super) fn render_file(value: &Value, old: Option<&[u8]>) -> Vec<u8> {
    if let Some(old) = old {
        let (bom, body) = split_bom(old);
        if let Ok(old_value @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
            let style = style::Style::detect(body);
            let value = style::align_order(value.clone(), &old_value);
            let mut text = String::from_utf8_lossy(bom).into_owned();
            style::render(&value, &style, "", &mut text);
            let trimmed = body.trim_ascii_end();
            if trimmed.len() < body.len() {
                text.push_str(style.newline);
            }
            return text.into_bytes();
        }
    }
    let mut text = String::new();
    style::render(value, &style::Style::default(), "", &mut text);
    text.push('\n');
    text.into_bytes()
}

/// From this many writes on, [`apply`] writes every temporary file first, makes them durable
/// at once ([`atomic::make_durable`]: one `syncfs` on Linux) and then installs them, instead of
/// an fsync per file. A crash before the installs leaves only temporary files (removed once
/// stale); after, whole files whose entities have no base yet, which the next sync adopts.
pub(super) const BATCH_WRITES: usize = 64;

/// A file of a batch written to its temporary file, to be installed once the batch is durable.
struct PendingInstall {
    id: String,
    path: PathBuf,
    target: PathBuf,
    folder: PathBuf,
    tmp: PathBuf,
    must_be_absent: bool,
    /// sha256 of the bytes written.
    hash: String,
}

/// Removes the temporary files of a batch that will not be installed.
fn discard(pending: &[PendingInstall]) {
    for p in pending {
        let _ = fs::remove_file(&p.tmp);
    }
}

pub(super) fn apply(
    dir: &Path,
    writes: &[Write],
    expected: &Fingerprint,
) -> Result<ApplyReport, CollectionError> {
    let Fingerprint::Dir { files, held } = expected else {
        return Err(CollectionError::WrongFingerprint {
            path: dir.to_owned(),
        });
    };
    check_batch(dir, writes)?;
    let mut report = ApplyReport {
        written: Vec::new(),
        deleted: Vec::new(),
        skipped: Vec::new(),
        refused: Vec::new(),
        fingerprint: expected.clone(),
    };
    let mut new_files = files.clone();
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dir_ready = false;
    // Many files (a new device's bootstrap, a large pull): their temporary files are written
    // first and made durable together, then installed one by one as always.
    let batch = writes.len() >= BATCH_WRITES;
    let mut pending: Vec<PendingInstall> = Vec::new();
    for w in writes {
        let id = w.id();
        if held.contains(id) {
            tracing::debug!(id, "held entity not written");
            report.skipped.push(id.to_owned());
            continue;
        }
        let refusal = match (ids::entity_path(dir, id), w) {
            (Ok(path), Write::Put { value, .. }) => limits::check_value(id, value, 0).map(|_| path),
            (Ok(path), Write::Delete { .. }) => Ok(path),
            // No file can have this name: there is nothing to delete.
            (Err(_), Write::Delete { .. }) => {
                new_files.remove(id);
                report.deleted.push(id.to_owned());
                continue;
            }
            (Err(source), Write::Put { .. }) => Err(Refusal::FileName {
                id: id.to_owned(),
                source,
            }),
        };
        let path = match refusal {
            Ok(path) => path,
            Err(refusal) => {
                tracing::debug!(id, %refusal, "write refused");
                report.skipped.push(id.to_owned());
                report.refused.push(refusal);
                continue;
            }
        };
        let path = &path;
        let exp = files.get(id);
        // A new file (none when the scan listed the folder) is installed only where no file is
        // (`install`'s `must_be_absent`): one that appeared since is not overwritten, so it
        // need not be looked for first.
        let current = if exp.is_none() && matches!(w, Write::Put { .. }) {
            None
        } else {
            read_file(path).map_err(|e| io_err("read", path, e))?
        };
        let unchanged = current.as_ref().map(|(s, _)| s) == exp;
        match w {
            Write::Delete { .. } => {
                if current.is_none() {
                    new_files.remove(id);
                    report.deleted.push(id.to_owned());
                } else if !unchanged {
                    tracing::debug!(id, "file changed since the scan; delete deferred");
                    report.skipped.push(id.to_owned());
                } else {
                    // Unavoidable tiny window between this check and the removal.
                    match fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("remove", path, e)),
                    }
                    touched.insert(dir.to_owned());
                    new_files.remove(id);
                    report.deleted.push(id.to_owned());
                }
            }
            Write::Put { value, .. } => {
                if !unchanged {
                    tracing::debug!(id, "file changed since the scan; write deferred");
                    report.skipped.push(id.to_owned());
                    continue;
                }
                let bytes = render_file(value, current.as_ref().map(|(_, b)| b.as_slice()));
                if let Some((stamp, old)) = &current
                    && *old == bytes
                {
                    new_files.insert(id.to_owned(), stamp.clone());
                    report.written.push(id.to_owned());
                    continue;
                }
                if !dir_ready {
                    fs::create_dir_all(dir).map_err(|e| io_err("create folder", dir, e))?;
                    dir_ready = true;
                }
                // A link is written through: its target takes the new content.
                let target = if current.is_some() {
                    real_path(path)
                } else {
                    path.clone()
                };
                let folder = match target.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => dir.to_owned(),
                };
                // Those of the file it replaces; a new file gets the default.
                let perms = current
                    .as_ref()
                    .and_then(|_| fs::metadata(path).ok())
                    .map(|m| m.permissions());
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("entity");
                if batch {
                    let tmp = match atomic::write_temp_as(&folder, stem, &bytes, perms, false) {
                        Ok(tmp) => tmp,
                        Err(e) => {
                            discard(&pending);
                            return Err(e);
                        }
                    };
                    pending.push(PendingInstall {
                        id: id.to_owned(),
                        path: path.clone(),
                        target,
                        folder,
                        tmp,
                        must_be_absent: current.is_none(),
                        hash: sha256_hex(&bytes),
                    });
                    continue;
                }
                let tmp = atomic::write_temp(&folder, stem, &bytes, perms)?;
                let installed = atomic::install(&tmp, &target, current.is_none(), || {
                    let now = read_file(path).map_err(|e| io_err("read", path, e))?;
                    Ok(now.as_ref().map(|(s, _)| s) == exp)
                })?;
                if installed {
                    touched.insert(folder);
                    new_files.insert(id.to_owned(), stamp_written(path, &bytes)?);
                    report.written.push(id.to_owned());
                } else {
                    tracing::debug!(id, "file changed while writing; write deferred");
                    report.skipped.push(id.to_owned());
                }
            }
        }
    }
    if !pending.is_empty() {
        let folders: BTreeSet<&PathBuf> = pending.iter().map(|p| &p.folder).collect();
        for folder in folders {
            let temps: Vec<PathBuf> = pending
                .iter()
                .filter(|p| &p.folder == folder)
                .map(|p| p.tmp.clone())
                .collect();
            if let Err(e) = atomic::make_durable(folder, &temps) {
                discard(&pending);
                return Err(e);
            }
        }
        let mut left = pending.into_iter();
        while let Some(p) = left.next() {
            let exp = files.get(&p.id);
            let installed = atomic::install(&p.tmp, &p.target, p.must_be_absent, || {
                let now = read_file(&p.path).map_err(|e| io_err("read", &p.path, e))?;
                Ok(now.as_ref().map(|(s, _)| s) == exp)
            });
            let installed = match installed {
                Ok(installed) => installed,
                Err(e) => {
                    discard(&left.collect::<Vec<_>>());
                    return Err(e);
                }
            };
            if installed {
                new_files.insert(p.id.clone(), stamp_hashed(&p.path, p.hash)?);
                touched.insert(p.folder);
                report.written.push(p.id);
            } else {
                tracing::debug!(id = p.id, "file changed while writing; write deferred");
                report.skipped.push(p.id);
            }
        }
    }
    for folder in &touched {
        atomic::sync_dir(folder);
    }
    report.fingerprint = Fingerprint::Dir {
        files: new_files,
        held: held.clone(),
    };
    Ok(report)
}
