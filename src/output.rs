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

/// What a remote class means for commits, in one line.
pub fn class_meaning(class: &str, weak_window_ms: u64) -> String {
    match class {
        "atomic" => "compare-and-swap as is: a commit either wins alone or is made again on top of the other".into(),
        "weak-window" => format!(
            "compare-and-swap once an ETag is strong: deltasync waits {weak_window_ms} ms after writing meta.json before the next If-Match"
        ),
        "non-atomic" => "two writers can both seem to win: each commit stays unconfirmed until a later meta.json lists it, and is made again if it was lost".into(),
        "none" => "the server ignores preconditions: each commit takes a lease lock (lock.json) and reads meta.json back".into(),
        other => format!("a class this version does not know ({other})"),
    }
}

/// "3 min ago", "5 s ago", "2 h ago", "4 d ago".
pub fn ago(ms: u64) -> String {
    let s = deltasync_store::now_ms().saturating_sub(ms) / 1000;
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Prints the status: the device, the remote and its class, the head as of the last read,
/// the collections with the changes not pushed yet, and what needs the person (files held
/// back, open receipts, the watcher's last error).
pub fn status(s: &Status, names: &Names, watcher_error: Option<(String, u64)>) {
    println!("device:   {} ({})", s.device, s.device_id);
    println!("remote:   {}", s.remote);
    println!(
        "class:    {} — {}",
        s.remote_class,
        class_meaning(&s.remote_class, s.weak_window_ms)
    );
    match s.last_checked_ms {
        Some(ms) => println!(
            "head:     {} as of {} (this device's last read of the remote; `deltasync diff` reads it again)",
            s.head,
            ago(ms)
        ),
        None => println!(
            "head:     {} (this device has not read the remote yet)",
            s.head
        ),
    }
    if s.unconfirmed_commits > 0 {
        println!(
            "unconfirmed commits: {} (confirmed when another device's commit is seen)",
            s.unconfirmed_commits
        );
    }
    for (name, c) in &s.collections {
        let changes = match c.local_changes {
            0 => String::new(),
            1 => ", 1 changed here and not pushed yet".into(),
            n => format!(", {n} changed here and not pushed yet"),
        };
        match &c.last_sync {
            Some(l) => println!(
                "{name}: {} entities on the remote{changes}; last sync {}: {} up, {} down, took {} ms",
                c.remote_entities,
                ago(l.last_sync_ms),
                l.up,
                l.down,
                l.duration_ms
            ),
            None => println!(
                "{name}: {} entities on the remote{changes}; never synced",
                c.remote_entities
            ),
        }
    }
    let mut needs = Vec::new();
    for h in &s.held {
        needs.push(format!(
            "held: {}: {} (nothing is pushed or written for it until it reads again)",
            h.file.display(),
            h.reason
        ));
    }
    const RECEIPTS: usize = 5;
    for c in s.open_receipts.iter().take(RECEIPTS) {
        needs.push(format!(
            "open conflict: {}/{} {}: kept {} ({}), lost {} ({})",
            c.collection,
            c.entity_id,
            field_text(&c.field),
            short(&c.kept),
            written(names, &c.kept_by, c.kept_at),
            short(&c.lost),
            written(names, &c.lost_by, c.lost_at),
        ));
    }
    if s.open_receipts.len() > RECEIPTS {
        needs.push(format!(
            "… and {} more open conflicts",
            s.open_receipts.len() - RECEIPTS
        ));
    }
    if !s.open_receipts.is_empty() {
        needs.push(
            "(`deltasync conflicts` lists them; `conflicts resolve ID --take local|remote`)".into(),
        );
    }
    if let Some((e, at)) = watcher_error {
        needs.push(format!("watcher error ({}): {e}", ago(at)));
    }
    if needs.is_empty() {
        println!("needs you: nothing");
    } else {
        println!("needs you:");
        for n in needs {
            println!("  {n}");
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
