//! Human-readable and JSON output of the commands.

use anyhow::Result;
use deltasync_engine::planner::Counts;
use deltasync_engine::{Status, SyncReport};
use deltasync_meta::{ConflictReceipt, Hlc};
use serde::Serialize;

use crate::names::{Names, local};

/// Prints any report as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn counts(c: &Counts) -> String {
    format!(
        "{} new, {} updated, {} deleted",
        c.new, c.updated, c.deleted
    )
}

/// Prints a sync report.
pub fn sync_report(r: &SyncReport, names: &Names) {
    let verb = if r.dry_run { "would" } else { "did" };
    for (name, c) in &r.collections {
        println!("{name}:");
        println!("  outgoing ({verb} push): {}", counts(&c.up));
        println!("  incoming ({verb} pull): {}", counts(&c.down));
        println!(
            "  unchanged: {}, changed on both sides (merged): {}{}",
            c.unchanged,
            c.merged,
            if c.held > 0 {
                format!(", held back (unreadable): {}", c.held)
            } else {
                String::new()
            }
        );
    }
    for p in &r.problems {
        println!("problem: {p} (nothing pushed for it; fix the file and sync again)");
    }
    for d in &r.deferred {
        println!("deferred: {d} was being saved by the app; it will be written next time");
    }
    for c in &r.conflicts {
        println!(
            "conflict in {}/{} field '{}': kept {} ({}), lost {} ({}), kept in receipt {}",
            c.collection,
            c.entity_id,
            field_text(&c.field),
            short(&c.kept),
            written(names, &c.kept_by, c.kept_at),
            short(&c.lost),
            written(names, &c.lost_by, c.lost_at),
            c.id,
        );
    }
    if r.recommitted > 0 {
        println!(
            "note: {} commit(s) of this device were overwritten by a racing writer on a server without atomic If-Match, and were made again",
            r.recommitted
        );
    }
    match (r.dry_run, r.committed) {
        (true, _) => println!("dry run: nothing was changed (remote head {})", r.head),
        (false, Some(seq)) => println!(
            "committed seq {seq}{}",
            if r.retries > 0 {
                format!(" after {} retries", r.retries)
            } else {
                String::new()
            }
        ),
        (false, None) => println!("nothing to push (remote head {})", r.head),
    }
}

/// A value's JSON text, cut at 60 characters.
pub(crate) fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Prints the status.
pub fn status(s: &Status) {
    println!("device:   {} ({})", s.device, s.device_id);
    println!("remote:   {}", s.remote);
    println!("head:     {}", s.head);
    if s.unconfirmed_commits > 0 {
        println!(
            "unconfirmed commits: {} (confirmed when another device's commit is seen)",
            s.unconfirmed_commits
        );
    }
    println!("open conflicts: {}", s.open_conflicts);
    for (name, c) in &s.collections {
        match &c.last_sync {
            Some(l) => println!(
                "{name}: {} entities on the remote; last sync {} ms ago: {} up, {} down, took {} ms",
                c.remote_entities,
                deltasync_store::now_ms().saturating_sub(l.last_sync_ms),
                l.up,
                l.down,
                l.duration_ms
            ),
            None => println!(
                "{name}: {} entities on the remote; never synced",
                c.remote_entities
            ),
        }
    }
}

fn field_text(field: &[String]) -> String {
    if field.is_empty() {
        "(whole entity)".into()
    } else {
        field.join(".")
    }
}

/// "phone, 2026-12-01 23:10:20 CET": who wrote a value and when (local time); the when left
/// out for receipts of writers that did not record it.
fn written(names: &Names, device: &str, at: Option<Hlc>) -> String {
    match at {
        Some(at) => format!("{}, {}", names.who_here(device), local(at.ms)),
        None => names.who_here(device),
    }
}

/// A receipt with the names of its devices, for `conflicts --json` (camelCase, as the
/// receipt's own fields).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView<'a> {
    /// The receipt as every device has it.
    #[serde(flatten)]
    pub receipt: &'a ConflictReceipt,
    /// The name of the device that wrote the kept value.
    pub kept_by_name: String,
    /// The name of the device that wrote the lost value.
    pub lost_by_name: String,
}

impl<'a> ReceiptView<'a> {
    /// The receipt with the names `names` gives.
    pub fn new(receipt: &'a ConflictReceipt, names: &Names) -> Self {
        ReceiptView {
            receipt,
            kept_by_name: names.who(&receipt.kept_by),
            lost_by_name: names.who(&receipt.lost_by),
        }
    }
}

/// Prints a list of conflict receipts: entity and field, the kept value and the lost one with
/// who wrote each and when, open or resolved.
pub fn conflict_list(all: &[ConflictReceipt], names: &Names) {
    if all.is_empty() {
        println!("no conflicts");
        return;
    }
    for c in all {
        println!(
            "{} {}/{} {}",
            if c.resolved { "resolved" } else { "OPEN    " },
            c.collection,
            c.entity_id,
            field_text(&c.field),
        );
        println!(
            "    kept {}  ({})",
            short(&c.kept),
            written(names, &c.kept_by, c.kept_at)
        );
        println!(
            "    lost {}  ({})",
            short(&c.lost),
            written(names, &c.lost_by, c.lost_at)
        );
        if c.kept_at.is_none() || c.lost_at.is_none() {
            println!("    found {}", local(c.at.ms));
        }
        println!("    id {}", c.id);
    }
    let open = all.iter().filter(|c| !c.resolved).count();
    if open > 0 {
        println!(
            "{open} open: `deltasync conflicts resolve ID --take local` (this device's value) or `--take remote`"
        );
    }
}

/// Prints one receipt in full.
pub fn conflict(c: &ConflictReceipt, names: &Names) {
    println!("id:        {}", c.id);
    println!("entity:    {}/{}", c.collection, c.entity_id);
    println!("field:     {}", field_text(&c.field));
    println!("kind:      {:?}", c.kind);
    println!(
        "kept:      {} ({})",
        c.kept,
        written(names, &c.kept_by, c.kept_at)
    );
    println!(
        "lost:      {} ({})",
        c.lost,
        written(names, &c.lost_by, c.lost_at)
    );
    println!("found:     {}", local(c.at.ms));
    println!(
        "status:    {}",
        if c.resolved { "resolved" } else { "open" }
    );
}
