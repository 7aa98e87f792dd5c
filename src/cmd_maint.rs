//! The maintenance commands: compact, verify, get/list/update/delete, log/history, backup and
//! restore — argument handling and output; the work is in the engine.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;
use deltasync_engine::maintenance::{CompactOptions, VerifyOptions};
use deltasync_engine::progress::{NoProgress, Progress};

use crate::{exit, open, output};

/// Progress bars on stderr, drawn only when it is a terminal and the output is not JSON.
pub struct Bars {
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
    enabled: bool,
}

impl Bars {
    /// Bars if stderr is a terminal and `json` is false; otherwise nothing is drawn.
    pub fn new(json: bool) -> Self {
        Bars {
            bar: std::cell::RefCell::new(None),
            enabled: !json && std::io::stderr().is_terminal(),
        }
    }

    /// The progress sink to hand to the engine.
    pub fn sink(&self) -> &dyn Progress {
        if self.enabled { self } else { &NoProgress }
    }
}

impl Progress for Bars {
    fn start(&self, what: &str, total: u64) {
        let bar = if total > 0 {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        if let Some(old) = self.bar.replace(Some(bar)) {
            old.finish_and_clear();
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

/// `compact`.
pub fn compact(
    dir: &Path,
    dry_run: bool,
    tombstone_days: Option<u64>,
    orphan_grace_secs: Option<u64>,
    json: bool,
) -> Result<u8> {
    let mut engine = open(dir)?;
    let bars = Bars::new(json);
    let report = engine.compact_with(
        &CompactOptions {
            dry_run,
            tombstone_retention_ms: tombstone_days.map(|d| d * 24 * 3600 * 1000),
            orphan_grace_ms: orphan_grace_secs.map(|s| s * 1000),
            settle_ms: None,
        },
        bars.sink(),
    )?;
    if json {
        output::json(&report)?;
        return Ok(exit::OK);
    }
    let verb = if dry_run { "would fold" } else { "folded" };
    match (report.generation, report.seqs) {
        (Some(g), Some((a, b))) => {
            println!(
                "{verb} {} delta(s) (commits {a}..{b}) into snapshot generation {g}: {} entities{}",
                report.folded,
                report.entities,
                report
                    .snapshot
                    .as_ref()
                    .map(|s| format!(", {s} ({} bytes)", report.snapshot_size))
                    .unwrap_or_default()
            );
            if report.tombstones_dropped > 0 {
                println!(
                    "{} {} tombstone(s) past the retention period",
                    if dry_run { "would drop" } else { "dropped" },
                    report.tombstones_dropped
                );
            }
            if let Some(a) = &report.archive {
                println!("archived the folded deltas in {a}");
            }
        }
        _ => println!("nothing to fold: the snapshot is up to date"),
    }
    for r in &report.removed {
        println!("{} {r}", if dry_run { "would remove" } else { "removed" });
    }
    if report.orphans_kept > 0 {
        println!(
            "kept {} unreferenced delta(s) younger than the grace period",
            report.orphans_kept
        );
    }
    Ok(exit::OK)
}

/// `repair`.
pub fn repair(dir: &Path, dry_run: bool, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    let report = engine.repair(dry_run)?;
    if json {
        output::json(&report)?;
        return Ok(exit::OK);
    }
    let remote = if report.remote_empty {
        "the remote is empty (no meta.json)".to_string()
    } else {
        format!("the remote is at commit {}", report.remote_head)
    };
    println!(
        "This device synced up to commit {}; {remote}.",
        report.local_head
    );
    let (push, merge, pull) = if dry_run {
        ("would push", "would merge", "would pull")
    } else {
        ("pushed", "merged", "pulled")
    };
    println!(
        "{push} {} entit(ies) the remote lacks, {merge} {} that differ, {pull} {} this device lacks; {} are the same. Nothing is deleted on either side.",
        report.push, report.merge, report.pull, report.same
    );
    if let Some(sync) = &report.sync {
        output::sync_report(sync, &crate::names::Names::of(&engine));
        println!(
            "Run `deltasync sync` (or `deltasync repair`) on the other devices that had data the remote lost."
        );
    } else {
        println!("Run `deltasync repair` to do it.");
    }
    Ok(exit::OK)
}

/// `verify`.
pub fn verify(dir: &Path, json: bool, sample: usize, deep: bool, tolerance: f64) -> Result<u8> {
    let engine = open(dir)?;
    if deep && !json {
        eprintln!(
            "verify --deep reads every entity on both sides: this may take a while on large data"
        );
    }
    let bars = Bars::new(json);
    let report = engine.verify(
        &VerifyOptions {
            sample,
            deep,
            tolerance,
        },
        bars.sink(),
    )?;
    if json {
        output::json(&report)?;
    } else {
        for (name, c) in &report.collections {
            let mut why = Vec::new();
            if !c.missing_remotely.is_empty() {
                why.push(format!("{} missing remotely", c.missing_remotely.len()));
            }
            if !c.missing_locally.is_empty() {
                why.push(format!("{} missing locally", c.missing_locally.len()));
            }
            if !c.unreadable.is_empty() {
                why.push(format!("{} unreadable locally", c.unreadable.len()));
            }
            if c.differing > 0 {
                why.push(format!("{} of {} checked differ", c.differing, c.checked));
            }
            if !c.behind.is_empty() {
                why.push(format!(
                    "{} newer on the remote than this device has applied",
                    c.behind.len()
                ));
            }
            let verdict = if why.is_empty() {
                "OK".to_string()
            } else {
                format!("MISMATCH: {}", why.join(", "))
            };
            println!("{name}: remote={}, local={} [{verdict}]", c.remote, c.local);
            for id in c.missing_remotely.iter().take(10) {
                println!("  missing remotely: {name}/{id}");
            }
            for id in c.missing_locally.iter().take(10) {
                println!("  missing locally: {name}/{id}");
            }
        }
        for d in &report.differences {
            println!(
                "  differs: {}/{} field '{}': remote {} local {}",
                d.collection, d.id, d.field, d.remote, d.local
            );
        }
        if report.local_head < report.remote_head {
            println!(
                "this device is behind: it synced up to commit {}, the remote is at {} (run `deltasync sync`)",
                report.local_head, report.remote_head
            );
        }
        println!(
            "remote integrity: {} file(s) checked{}",
            report.files_checked,
            if report.integrity.is_empty() {
                " [OK]".to_string()
            } else {
                format!(" [{} PROBLEM(S)]", report.integrity.len())
            }
        );
        for p in &report.integrity {
            println!("  {p}");
        }
        for o in &report.orphans {
            println!(
                "  warning: {o} is referenced by no meta (a lost race or a crash; compact removes it after the grace period)"
            );
        }
    }
    Ok(if report.ok { exit::OK } else { exit::ERROR })
}

/// `get`.
pub fn get(dir: &Path, collection: &str, id: &str, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    let view = engine.get_entity(collection, id)?;
    if json {
        output::json(&view)?;
        return Ok(exit::OK);
    }
    println!("{collection}/{id}");
    match &view.remote {
        Some(r) if r.deleted => println!(
            "  remote: deleted (version {}, by {})",
            r.version, r.modified_by
        ),
        Some(r) => println!(
            "  remote: version {}, changed {} by {}",
            r.version,
            time_text(r.modified_ms),
            r.modified_by
        ),
        None => println!("  remote: not pushed yet"),
    }
    if view.local.is_none() {
        println!("  local: absent (run sync)");
    } else if !view.in_sync {
        println!("  local: differs from the remote (sync pushes or pulls it)");
    }
    let shown = view
        .local
        .as_ref()
        .or(view.remote.as_ref().map(|r| &r.data));
    if let Some(serde_json::Value::Object(fields)) = shown {
        for (k, v) in fields {
            println!("  {k}: {v}");
        }
    }
    Ok(exit::OK)
}

/// `list`.
pub fn list(dir: &Path, collection: &str, count: bool, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    let entries = engine.list_entities(collection)?;
    if count {
        if json {
            output::json(&serde_json::json!({ "collection": collection, "count": entries.len() }))?;
        } else {
            println!("{}", entries.len());
        }
        return Ok(exit::OK);
    }
    if json {
        output::json(&entries)?;
        return Ok(exit::OK);
    }
    for e in &entries {
        let note = match (e.local, e.remote) {
            (true, true) => String::new(),
            (true, false) => "  (local only: not pushed yet)".into(),
            (false, true) => "  (remote only: not pulled yet)".into(),
            (false, false) => String::new(),
        };
        println!("{}{note}", e.id);
    }
    Ok(exit::OK)
}

/// `update`.
pub fn update(dir: &Path, collection: &str, id: &str, fields: &[String], json: bool) -> Result<u8> {
    let mut assignments = Vec::new();
    for f in fields {
        match deltasync_engine::records::parse_assignment(f) {
            Some(a) => assignments.push(a),
            None => {
                eprintln!("error: '{f}' is not field=value (a dotted path reaches nested fields)");
                return Ok(exit::USAGE);
            }
        }
    }
    let mut engine = open(dir)?;
    let report = engine.update_entity(collection, id, &assignments)?;
    if json {
        output::json(&report)?;
    } else {
        println!(
            "Updated {collection}/{id}; committed as {}.",
            report
                .committed
                .map(|s| format!("commit {s}"))
                .unwrap_or_else(|| "nothing (no change)".into())
        );
        let names = crate::names::Names::of(&engine);
        for c in &report.conflicts {
            let other = if names.is_me(&c.kept_by) {
                &c.lost_by
            } else {
                &c.kept_by
            };
            println!(
                "conflict {}: field '{}' was also changed on {}: kept {}",
                c.id,
                c.field.join("."),
                names.who(other),
                c.kept
            );
        }
    }
    Ok(if report.conflicts.is_empty() {
        exit::OK
    } else {
        exit::ATTENTION
    })
}

/// `delete`.
pub fn delete(dir: &Path, collection: &str, id: &str, force: bool, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    engine.check_collection(collection)?;
    if !force {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "error: refusing to delete {collection}/{id} without confirmation: no terminal to ask on; use --force"
            );
            return Ok(exit::REFUSED);
        }
        // Show what goes, then ask.
        let view = engine.get_entity(collection, id)?;
        eprint!("Delete {collection}/{id} on every device? [y/N] ");
        let _ = view;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("Not deleted.");
            return Ok(exit::REFUSED);
        }
    }
    let report = engine.delete_entity(collection, id)?;
    if json {
        output::json(&report)?;
    } else {
        println!(
            "Deleted {collection}/{id}; committed as {}.",
            report
                .committed
                .map(|s| format!("commit {s}"))
                .unwrap_or_else(|| "nothing".into())
        );
    }
    Ok(exit::OK)
}

/// `YYYY-MM-DD HH:MM:SS UTC` (humantime's RFC 3339 text, spelled for people).
fn time_text(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// Formats a time for people, in the local time zone.
pub fn when(ms: u64) -> String {
    crate::names::local(ms)
}

/// `log`.
pub fn log(dir: &Path, json: bool) -> Result<u8> {
    let engine = open(dir)?;
    let bars = Bars::new(json);
    let entries = engine.log(bars.sink())?;
    if json {
        output::json(&entries)?;
        return Ok(exit::OK);
    }
    // The names meta.json gives now, then this device's copy of it for the rest.
    let mut known = engine.device_names().unwrap_or_default();
    for e in &entries {
        if let Some(n) = &e.device_name {
            known.insert(e.device.clone(), n.clone());
        }
    }
    let names = crate::names::Names::new(known, engine.device_id());
    for e in &entries {
        let per: Vec<String> = e
            .entities
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!(
            "commit {:>6}  {}  {}  {}{}",
            e.seq,
            when(e.time),
            names.who(&e.device),
            per.join(", "),
            if e.conflicts > 0 {
                format!(", {} conflict receipt(s)", e.conflicts)
            } else {
                String::new()
            }
        );
    }
    if entries.is_empty() {
        println!("no commits");
    }
    Ok(exit::OK)
}

/// `history`.
pub fn history(dir: &Path, collection: &str, id: &str, json: bool) -> Result<u8> {
    let engine = open(dir)?;
    let bars = Bars::new(json);
    let entries = engine.history(collection, id, bars.sink())?;
    if json {
        output::json(&entries)?;
        return Ok(exit::OK);
    }
    let names = crate::names::Names::of(&engine);
    for e in &entries {
        println!(
            "version {:>6}  {}  {}  {}",
            e.version,
            when(e.time),
            names.who(&e.device),
            if e.deleted {
                "deleted".to_string()
            } else {
                format!("changed: {}", e.changed.join(", "))
            }
        );
    }
    Ok(exit::OK)
}

/// `backup`.
pub fn backup(dir: &Path, out: Option<std::path::PathBuf>, json: bool) -> Result<u8> {
    use anyhow::Context;
    let engine = open(dir)?;
    let bars = Bars::new(json);
    let (zip, manifest) = engine.backup(bars.sink())?;
    let path = out.unwrap_or_else(|| {
        let t = time_text(manifest.time)
            .replace([' ', ':'], "")
            .replace("UTC", "")
            .replace('-', "");
        std::path::PathBuf::from(format!("deltasync-backup-{t}.zip"))
    });
    let tmp = path.with_extension("zip.partial");
    // Written in full and flushed to the disk before it takes its name: a backup file that
    // exists is whole, even after a crash or a power cut.
    (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&zip)?;
        f.sync_all()
    })()
    .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    if json {
        output::json(&serde_json::json!({
            "file": path,
            "bytes": zip.len(),
            "manifest": manifest,
        }))?;
    } else {
        let counts: Vec<String> = manifest
            .counts
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!(
            "Backed up the remote at commit {} to {} ({} bytes, {} files; {}).",
            manifest.head,
            path.display(),
            zip.len(),
            manifest.members.len(),
            if counts.is_empty() {
                "no entities".to_string()
            } else {
                counts.join(", ")
            }
        );
    }
    Ok(exit::OK)
}

/// `restore`.
pub fn restore(
    dir: &Path,
    file: Option<std::path::PathBuf>,
    at: Option<u64>,
    dry_run: bool,
    yes: bool,
    json: bool,
) -> Result<u8> {
    use anyhow::Context;
    use deltasync_engine::backup::{Backup, RestoreSource, Safety};
    let backup = match &file {
        Some(f) => {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Some(Backup::open(&bytes).with_context(|| {
                format!("{} cannot be restored; nothing was changed", f.display())
            })?)
        }
        None => None,
    };
    let source = match (&backup, at) {
        (Some(b), at) => RestoreSource::Backup(b, at),
        (None, Some(at)) => RestoreSource::History(at),
        (None, None) => {
            eprintln!(
                "error: restore needs a backup FILE, or --at SEQ to restore from the remote's history"
            );
            return Ok(exit::USAGE);
        }
    };
    let mut engine = open(dir)?;
    let bars = Bars::new(json);
    let plan = engine.restore_plan(source, bars.sink())?;
    let count = |a: &str| plan.changes.iter().filter(|c| c.action == a).count();
    if !json {
        println!(
            "Restore to the state of commit {}: {} to create, {} to overwrite, {} to delete, {} unchanged. Safety: {}.",
            plan.target_head,
            count("create"),
            count("overwrite"),
            count("delete"),
            plan.unchanged,
            plan.safety
        );
        for c in plan.changes.iter().take(20) {
            let unsynced = if c.unsynced {
                " (changed here and not synced yet: the restore replaces that change)"
            } else {
                ""
            };
            println!("  {} {}/{}{unsynced}", c.action, c.collection, c.id);
        }
        if plan.changes.len() > 20 {
            println!("  … and {} more", plan.changes.len() - 20);
        }
        for c in &plan.skipped_collections {
            println!("  note: collection '{c}' is not configured here and is not restored");
        }
    }
    if dry_run || plan.changes.is_empty() {
        if json {
            output::json(&serde_json::json!({ "plan": plan, "applied": false }))?;
        }
        return Ok(exit::OK);
    }
    if plan.safety != Safety::Safe && !yes {
        if json {
            output::json(&serde_json::json!({ "plan": plan, "applied": false }))?;
        }
        eprintln!(
            "error: this restore is {} ({}); nothing was changed. Run it again with --yes to go ahead.",
            plan.safety,
            match plan.safety {
                Safety::Dangerous => "it deletes entities",
                _ => "it overwrites entities changed since then",
            }
        );
        return Ok(exit::REFUSED);
    }
    let report = engine.restore_apply(&plan, bars.sink())?;
    if json {
        output::json(&serde_json::json!({ "plan": plan, "applied": true, "sync": report }))?;
    } else {
        match report.committed {
            Some(seq) => println!(
                "Restored as commit {seq} (undo it with `deltasync restore --at {}`).",
                seq - 1
            ),
            None => println!(
                "Nothing left to commit: after syncing this device's files the remote already matched."
            ),
        }
    }
    Ok(exit::OK)
}

/// Compacts after a sync when `[compact] auto_after` asks for it; a failure is only logged
/// (the sync itself succeeded, and the next one tries again).
pub fn auto_compact(engine: &mut deltasync_engine::Engine, json: bool) {
    match engine.maybe_compact() {
        Ok(Some(r)) if !json => {
            if let Some(g) = r.generation {
                println!(
                    "compacted {} delta(s) into snapshot generation {g} ([compact] auto_after, auto_meta_kib)",
                    r.folded
                );
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "automatic compaction failed; the next sync tries again")
        }
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(super::time_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::time_text(1_796_154_350_146),
            "2026-12-01 19:45:50 UTC"
        );
        assert_eq!(super::time_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
