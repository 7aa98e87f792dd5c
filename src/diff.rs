//! `deltasync diff`: the field-level dry run ([`deltasync_engine::Preview`]) for people.
//!
//! By default one line per entity (the action and the names of the fields it changes), and
//! every conflict in full (which value is kept, whose, written when, and why): holds and
//! merges first (up to [`VERBOSE_CAP`]), then pushes and pulls (up to [`SUMMARY_CAP`] per
//! collection); `-v` adds each field's old → new values on each side, and lists up to
//! [`VERBOSE_CAP`] pushes and pulls. A summary by default because it
//! reads as well on 3 entities (three lines naming the fields; the conflicts, the one thing to
//! decide, are shown in full anyway) as on 3,000 (a screen, not 3,000 × fields lines).

use deltasync_engine::planner::Change;
use deltasync_engine::{
    Action, CollectionReport, Decision, EntityPreview, FieldPreview, Preview, SideName,
};
use serde_json::Value;

use crate::names::{Names, local};

/// Entities listed per collection in the summary.
pub const SUMMARY_CAP: usize = 20;
/// Entities listed per collection with `-v`.
pub const VERBOSE_CAP: usize = 100;
/// Fields listed per entity with `-v`, and field names per summary line.
const FIELD_CAP: usize = 20;

/// Prints the preview; `verbose`: every field's values.
pub fn print(p: &Preview, names: &Names, verbose: bool) {
    for (collection, counts) in &p.collections {
        println!("{collection}: {}", header(counts));
        // What needs looking at first: holds and merges (conflicts are decided there), then
        // pushes and pulls; each group capped on its own, so that 3 conflicts among 3,000
        // pulls are never "… and 2,980 more".
        let mut entities: Vec<&EntityPreview> = p
            .entities
            .iter()
            .filter(|e| &e.collection == collection)
            .collect();
        entities.sort_by_key(|e| rank(&e.action));
        let (first, moves): (Vec<&EntityPreview>, Vec<&EntityPreview>) = entities
            .into_iter()
            .partition(|e| matches!(e.action, Action::Hold { .. } | Action::Merge { .. }));
        let cap = if verbose { VERBOSE_CAP } else { SUMMARY_CAP };
        for (group, cap) in [(first, VERBOSE_CAP), (moves, cap)] {
            for e in group.iter().take(cap) {
                entity(e, names, verbose);
            }
            if group.len() > cap {
                println!(
                    "  … and {} more ({})",
                    group.len() - cap,
                    if verbose {
                        "--json lists every one"
                    } else {
                        "-v for the fields' values, --json for every entity"
                    }
                );
            }
        }
    }
    // A held entity's line gave its file's problem already.
    let held: Vec<&str> = p
        .entities
        .iter()
        .filter_map(|e| match &e.action {
            Action::Hold { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    for problem in p.problems.iter().filter(|q| !held.contains(&q.as_str())) {
        println!("problem: {problem} (nothing is pushed for it; fix the file and sync again)");
    }
    if let Some(refusal) = &p.refused {
        println!("sync would refuse: {}", refusal.message);
        if let Some(hint) = crate::hints::engine(&refusal.to_error()) {
            println!("hint: {hint}");
        }
    }
    println!("dry run: nothing was changed (remote head {})", p.head);
}

/// The order of the listing: holds, merges, pushes, pulls.
fn rank(a: &Action) -> u8 {
    match a {
        Action::Hold { .. } => 0,
        Action::Merge { .. } => 1,
        Action::Push { .. } => 2,
        Action::Pull { .. } => 3,
    }
}

fn header(c: &CollectionReport) -> String {
    let push = c.up.new + c.up.updated + c.up.deleted;
    let pull = c.down.new + c.down.updated + c.down.deleted;
    if push + pull + c.merged + c.held == 0 {
        return format!("nothing to do ({} unchanged)", c.unchanged);
    }
    let mut parts = vec![
        format!("{push} to push"),
        format!("{pull} to pull"),
        format!("{} to merge", c.merged),
    ];
    if c.held > 0 {
        parts.push(format!("{} held", c.held));
    }
    parts.push(format!("{} unchanged", c.unchanged));
    parts.join(", ")
}

fn action_text(a: &Action) -> String {
    let change = |c: &Change| match c {
        Change::Create => "new",
        Change::Update => "update",
        Change::Delete => "delete",
    };
    match a {
        Action::Push { change: c } => format!("push {}", change(c)),
        Action::Pull { change: c } => format!("pull {}", change(c)),
        Action::Merge { .. } => "merge".into(),
        Action::Hold { .. } => "hold".into(),
    }
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "(whole entity)".into()
    } else {
        path.join(".")
    }
}

/// Up to [`FIELD_CAP`] names, then "… and N more".
fn capped_names<'a>(names: impl Iterator<Item = &'a FieldPreview>) -> String {
    let all: Vec<String> = names.map(|f| path_text(&f.path)).collect();
    let mut out = all
        .iter()
        .take(FIELD_CAP)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > FIELD_CAP {
        out.push_str(&format!(", … and {} more", all.len() - FIELD_CAP));
    }
    out
}

fn summary_detail(e: &EntityPreview) -> String {
    match &e.action {
        Action::Hold { reason } => {
            format!("{reason} (nothing is done for it until the file reads again)")
        }
        Action::Push {
            change: Change::Delete,
        } => "deleted here".into(),
        Action::Pull {
            change: Change::Delete,
        } => "deleted on the remote".into(),
        Action::Push {
            change: Change::Create,
        }
        | Action::Pull {
            change: Change::Create,
        } => format!("fields: {}", capped_names(e.fields.iter())),
        Action::Push { .. } | Action::Pull { .. } => {
            format!("changed: {}", capped_names(e.fields.iter()))
        }
        Action::Merge { .. } => {
            let of = |want: fn(&Decision) -> bool| {
                capped_names(e.fields.iter().filter(|f| want(&f.decision)))
            };
            let mut parts = Vec::new();
            for (label, want) in [
                (
                    "here",
                    (|d| matches!(d, Decision::Push)) as fn(&Decision) -> bool,
                ),
                ("remote", |d| matches!(d, Decision::Pull)),
                ("same on both", |d| matches!(d, Decision::Same)),
                ("conflict", |d| matches!(d, Decision::Conflict { .. })),
            ] {
                let names = of(want);
                if !names.is_empty() {
                    parts.push(format!("{label}: {names}"));
                }
            }
            parts.join("; ")
        }
    }
}

fn entity(e: &EntityPreview, names: &Names, verbose: bool) {
    let key = format!("{}/{}", e.collection, e.id);
    println!(
        "  {:<12} {key}  {}",
        action_text(&e.action),
        summary_detail(e)
    );
    if verbose {
        let mut who = Vec::new();
        if let Some(l) = &e.local {
            who.push(format!("saved here {}", local(l.time_ms)));
        }
        if let Some(r) = &e.remote {
            who.push(format!(
                "written on the remote by {} {}",
                names.who_here(&r.device),
                local(r.time_ms)
            ));
        }
        if !who.is_empty() {
            println!("      {}", who.join("; "));
        }
    }
    let deleted = matches!(
        e.action,
        Action::Push {
            change: Change::Delete
        } | Action::Pull {
            change: Change::Delete
        }
    );
    let shown: Vec<&FieldPreview> = e
        .fields
        .iter()
        .filter(|f| verbose && !deleted || matches!(f.decision, Decision::Conflict { .. }))
        .collect();
    for f in shown
        .iter()
        .take(if verbose { FIELD_CAP } else { usize::MAX })
    {
        for line in field(f, &e.action, names, verbose) {
            println!("      {line}");
        }
    }
    if verbose && shown.len() > FIELD_CAP {
        println!("      … and {} more fields", shown.len() - FIELD_CAP);
    }
}

fn value(v: &Option<Value>) -> String {
    match v {
        Some(v) => crate::output::short(v),
        None => "(none)".into(),
    }
}

/// The lines of one field: with `verbose` its values on each side, then how it is decided;
/// without, only a conflict's decision.
fn field(f: &FieldPreview, action: &Action, names: &Names, verbose: bool) -> Vec<String> {
    let path = path_text(&f.path);
    let conflict =
        |kept: &SideName, kept_by: &str, kept_at: u64, lost_by: &str, lost_at: u64, why: &str| {
            let (kept_value, lost_value) = match kept {
                SideName::Local => (&f.local, &f.remote),
                SideName::Remote => (&f.remote, &f.local),
            };
            format!(
                "keeps {} ({}, {}): {why}; {} ({}, {}) goes into a receipt",
                value(kept_value),
                names.who_here(kept_by),
                local(kept_at),
                value(lost_value),
                names.who_here(lost_by),
                local(lost_at),
            )
        };
    match (&f.decision, action) {
        (Decision::Push, Action::Push { .. }) => {
            vec![format!("{path}: {} → {}", value(&f.base), value(&f.local))]
        }
        (Decision::Pull, Action::Pull { .. }) => {
            vec![format!("{path}: {} → {}", value(&f.base), value(&f.remote))]
        }
        (decision, _) => {
            let sides = format!(
                "{path}: {} → here {}, remote {}",
                value(&f.base),
                value(&f.local),
                value(&f.remote)
            );
            match decision {
                Decision::Conflict {
                    kept,
                    kept_by,
                    kept_at_ms,
                    lost_by,
                    lost_at_ms,
                    why,
                } => {
                    let how = conflict(kept, kept_by, *kept_at_ms, lost_by, *lost_at_ms, why);
                    if verbose {
                        vec![sides, format!("  conflict: {how}")]
                    } else {
                        vec![format!("{path}: conflict: {how}")]
                    }
                }
                Decision::Push => vec![format!("{sides}: pushed")],
                Decision::Pull => vec![format!("{sides}: written here")],
                Decision::Same => vec![format!("{sides}: the same on both sides")],
            }
        }
    }
}
