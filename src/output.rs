//! Human-readable and JSON output of the commands.

use anyhow::Result;
use deltasync_engine::planner::Counts;
use deltasync_engine::{Status, SyncReport};
use deltasync_meta::ConflictReceipt;
use serde::Serialize;

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

/// Prints a sync or diff report.
pub fn sync_report(r: &SyncReport) {
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
            "conflict {}: {}/{} field '{}': kept {} (from {}), the other value is kept in the receipt",
            c.id,
            c.collection,
            c.entity_id,
            c.field.join("."),
            short(&c.kept),
            c.kept_by
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

/// Prints a list of conflict receipts.
pub fn conflict_list(all: &[ConflictReceipt]) {
    if all.is_empty() {
        println!("no conflicts");
        return;
    }
    for c in all {
        println!(
            "{} {} {}/{} field '{}' kept {} lost {}",
            c.id,
            if c.resolved { "resolved" } else { "OPEN    " },
            c.collection,
            c.entity_id,
            c.field.join("."),
            short(&c.kept),
            short(&c.lost)
        );
    }
}

/// Prints one receipt in full.
pub fn conflict(c: &ConflictReceipt) {
    println!("id:        {}", c.id);
    println!("entity:    {}/{}", c.collection, c.entity_id);
    println!(
        "field:     {}",
        if c.field.is_empty() {
            "(whole entity)".into()
        } else {
            c.field.join(".")
        }
    );
    println!("kind:      {:?}", c.kind);
    println!("kept:      {} (by {})", c.kept, c.kept_by);
    println!("lost:      {} (by {})", c.lost, c.lost_by);
    println!(
        "status:    {}",
        if c.resolved { "resolved" } else { "open" }
    );
}
