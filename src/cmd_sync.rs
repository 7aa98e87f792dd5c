//! `sync`, `diff` and `conflicts`: argument handling and output; the work is in the engine.

use std::path::Path;

use anyhow::Result;
use deltasync_engine::{EngineError, SyncOptions};

use crate::{ConflictAction, Take, cmd_maint, diff, exit, names, open, output};

/// `sync` (and `sync --dry-run`): pull, merge, push; the report; the exit code of
/// [`attention`].
pub fn sync(dir: &Path, dry_run: bool, allow_mass_delete: bool, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    let bars = cmd_maint::Bars::new(json);
    let report = engine.sync_with(
        &SyncOptions {
            dry_run,
            allow_mass_delete,
        },
        bars.sink(),
    )?;
    if json {
        output::json(&report)?;
    } else {
        output::sync_report(&report, &names::Names::of(&engine));
    }
    if !dry_run {
        cmd_maint::auto_compact(&mut engine, json);
    }
    Ok(attention(&report))
}

/// The exit code of a sync that ran to its end: [`exit::ATTENTION`] when this run needs a
/// person — it held back a file it cannot read, or recorded a new conflict receipt (a dry run
/// records none) — and [`exit::OK`] otherwise. Receipts recorded by earlier runs, still open,
/// do not count: a script syncing in a loop gets 5 once per new conflict, and `status` and
/// `conflicts` list the open ones.
fn attention(report: &deltasync_engine::SyncReport) -> u8 {
    if !report.problems.is_empty() || (!report.dry_run && !report.conflicts.is_empty()) {
        exit::ATTENTION
    } else {
        exit::OK
    }
}

/// `diff`: the field-level dry run ([`deltasync_engine::Preview`]), printed by [`diff::print`]
/// or as JSON; exit 4 when the sync would refuse, 5 when it would hold a file back.
pub fn diff(dir: &Path, only: Option<String>, verbose: bool, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    if let Some(name) = &only {
        engine.check_collection(name)?;
    }
    let bars = cmd_maint::Bars::new(json);
    let mut preview = engine.preview(bars.sink())?;
    drop(bars);
    if let Some(name) = &only {
        preview.collections.retain(|c, _| c == name);
        preview.entities.retain(|e| &e.collection == name);
        preview.conflicts.retain(|c| &c.collection == name);
    }
    if json {
        output::json(&preview)?;
    } else {
        diff::print(&preview, &names::Names::of(&engine), verbose);
    }
    Ok(if preview.refused.is_some() {
        exit::REFUSED
    } else if !preview.problems.is_empty() {
        exit::ATTENTION
    } else {
        exit::OK
    })
}

/// `conflicts` (list), `conflicts show`, `conflicts resolve`.
pub fn conflicts(dir: &Path, action: ConflictAction, json: bool) -> Result<u8> {
    let mut engine = open(dir)?;
    match action {
        ConflictAction::List => {
            let all = engine.conflicts()?;
            let names = names::Names::of(&engine);
            if json {
                let views: Vec<_> = all
                    .iter()
                    .map(|c| output::ReceiptView::new(c, &names))
                    .collect();
                output::json(&views)?;
            } else {
                output::conflict_list(&all, &names);
            }
        }
        ConflictAction::Show { id } => {
            let c = engine
                .conflicts()?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or_else(|| EngineError::NoSuchConflict(id.clone()))?;
            let names = names::Names::of(&engine);
            if json {
                output::json(&output::ReceiptView::new(&c, &names))?;
            } else {
                output::conflict(&c, &names);
            }
        }
        ConflictAction::Resolve { id, take } => {
            let receipt = engine.resolve_conflict(&id, matches!(take, Take::Local))?;
            let report = engine.sync(&SyncOptions::default())?;
            if json {
                output::json(&serde_json::json!({"resolved": receipt, "sync": report}))?;
            } else {
                println!(
                    "Resolved {} ({}/{}): kept the {} value; pushed as commit {}.",
                    receipt.id,
                    receipt.collection,
                    receipt.entity_id,
                    match take {
                        Take::Local => "local",
                        Take::Remote => "remote",
                    },
                    report
                        .committed
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(exit::OK)
}
