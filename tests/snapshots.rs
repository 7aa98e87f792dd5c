//! What a person reads, as snapshot tests (insta): the output of the everyday commands and the
//! texts of the errors they meet, with what changes from run to run (temp paths, device ids,
//! times, durations) redacted. A change to any of these texts shows up as a diff to review;
//! `INSTA_UPDATE=always cargo test --test snapshots` rewrites them after a deliberate change.

mod support;

use std::path::Path;

use serde_json::json;
use support::init_tasks as init;
use support::{Run, deltasync, write_renamed};

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::command(deltasync().arg("-C").arg(dir).args(args))
}

/// stdout and stderr of one run, with its exit code, as the snapshot holds it.
fn shown(r: &Run) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.stdout, r.stderr
    )
}

/// Redacts what differs between runs: the temp folder, device ids, times and durations.
fn settings(tmp: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    let tmp = regex_escape(&tmp.display().to_string());
    s.add_filter(&tmp, "[TMP]");
    s.add_filter(r"\b[0-9a-f]{12}-\d{13}-[0-9a-f]{4}\b", "[RECEIPT]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[DEVICE]");
    s.add_filter(r"\b\d+(\.\d+)? ?(ms|s|µs|min|h|d) ago\b", "[AGO]");
    s.add_filter(r#""duration_ms": \d+"#, r#""duration_ms": [DURATION]"#);
    s.add_filter(r"took \d+(\.\d+)? ?(ms|s|µs)\b", "took [DURATION]");
    s.add_filter(r"in \d+(\.\d+)? ?(ms|s|µs)\b", "in [DURATION]");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?( UTC)?",
        "[TIME]",
    );
    s.add_filter(r"deltas/g\d+/[^ )\n]+\.json", "deltas/[DELTA].json");
    // Times in --json (ms since the Unix epoch) and the zone after a local time.
    s.add_filter(r"\b\d{13}\b", "[MS]");
    s.add_filter(r"\[TIME\] [A-Z]{2,5}\b|\[TIME\] [+-]\d{2}:\d{2}", "[TIME]");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[test]
fn everyday_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = settings(tmp.path()).bind_to_scope();
    let remote = tmp.path().join("remote");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    insta::assert_snapshot!("init", shown(&init(&a, &remote, "laptop")));
    write_renamed(
        &a.join("tasks/t1.json"),
        &json!({"title": "milk", "prio": 1}),
    );
    write_renamed(&a.join("tasks/t2.json"), &json!({"title": "eggs"}));
    insta::assert_snapshot!("sync_push", shown(&run(&a, &["sync"])));
    insta::assert_snapshot!("sync_nothing", shown(&run(&a, &["sync"])));
    init(&b, &remote, "phone").expect_ok("init b");
    insta::assert_snapshot!("sync_pull", shown(&run(&b, &["sync"])));
    // The same field changed on both: a conflict, kept as a receipt.
    write_renamed(
        &a.join("tasks/t1.json"),
        &json!({"title": "oat milk", "prio": 1}),
    );
    run(&a, &["sync"]).expect_ok("a pushes");
    write_renamed(
        &b.join("tasks/t1.json"),
        &json!({"title": "soy milk", "prio": 1}),
    );
    let r = run(&b, &["sync"]);
    insta::assert_snapshot!("sync_conflict", shown(&r));
    let listing = run(&b, &["conflicts"]);
    insta::assert_snapshot!("conflicts", shown(&listing));
    insta::assert_snapshot!("status", shown(&run(&b, &["status"])));
    insta::assert_snapshot!("get", shown(&run(&b, &["get", "tasks", "t1"])));
    insta::assert_snapshot!("conflicts_json", shown(&run(&b, &["conflicts", "--json"])));
    insta::assert_snapshot!("log", shown(&run(&b, &["log"])));
    insta::assert_snapshot!("history", shown(&run(&b, &["history", "tasks", "t1"])));
    insta::assert_snapshot!("log_json", shown(&run(&b, &["log", "--json"])));
    insta::assert_snapshot!(
        "history_json",
        shown(&run(&b, &["history", "tasks", "t1", "--json"]))
    );
    // Resolved: the listing says so, on the other device too once it has synced.
    let id = listing_id(&b);
    run(&b, &["conflicts", "resolve", &id, "--take", "remote"]).expect_ok("resolve");
    run(&a, &["sync"]).expect_ok("a syncs");
    insta::assert_snapshot!("conflicts_resolved", shown(&run(&a, &["conflicts"])));
}

/// The id of the first receipt `conflicts --json` lists.
fn listing_id(dir: &Path) -> String {
    run(dir, &["conflicts", "--json"]).json()[0]["id"]
        .as_str()
        .expect("a receipt id")
        .to_string()
}

#[test]
fn errors_a_person_meets() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = settings(tmp.path()).bind_to_scope();
    let remote = tmp.path().join("remote");
    let a = tmp.path().join("a");
    insta::assert_snapshot!(
        "not_a_workspace",
        shown(&run(&tmp.path().join("nowhere"), &["sync"]))
    );
    init(&a, &remote, "laptop").expect_ok("init");
    insta::assert_snapshot!(
        "no_such_collection",
        shown(&run(&a, &["get", "notes", "n1"]))
    );
    insta::assert_snapshot!("no_such_entity", shown(&run(&a, &["get", "tasks", "t9"])));
    insta::assert_snapshot!(
        "remote_typo",
        shown(&run(
            &tmp.path().join("c"),
            &[
                "init",
                "--remote",
                "https//example.org/dav",
                "--collection",
                "tasks=dir:tasks"
            ]
        ))
    );
    for i in 0..5 {
        write_renamed(&a.join(format!("tasks/t{i}.json")), &json!({"i": i}));
    }
    run(&a, &["sync"]).expect_ok("sync");
    for i in 0..5 {
        std::fs::remove_file(a.join(format!("tasks/t{i}.json"))).unwrap();
    }
    insta::assert_snapshot!("mass_delete", shown(&run(&a, &["sync"])));
    // The dry run shows what would be deleted, and that the sync would refuse (exit 4).
    insta::assert_snapshot!("diff_mass_delete", shown(&run(&a, &["diff"])));
    std::fs::write(a.join("tasks/bad.json"), "{\"title\": ").unwrap();
    write_renamed(&a.join("tasks/t0.json"), &json!({"i": 0}));
    insta::assert_snapshot!("held_file", shown(&run(&a, &["sync"])));
    let toml = a.join("deltasync.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("[sync]", "[sync\n")).unwrap();
    insta::assert_snapshot!("broken_toml", shown(&run(&a, &["status"])));
}

/// `diff` before a sync that pushes, pulls, merges (with a conflict) and holds a file: one
/// line per entity, `-v` with each field's values, `--json` with all of it; and the cap of a
/// long listing.
#[test]
fn diff_shows_entities_and_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = settings(tmp.path()).bind_to_scope();
    let remote = tmp.path().join("remote");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a, &remote, "laptop").expect_ok("init a");
    init(&b, &remote, "phone").expect_ok("init b");
    write_renamed(
        &a.join("tasks/t1.json"),
        &json!({"title": "milk", "prio": 1, "done": false}),
    );
    write_renamed(&a.join("tasks/t2.json"), &json!({"title": "eggs"}));
    run(&a, &["sync"]).expect_ok("a pushes");
    run(&b, &["sync"]).expect_ok("b pulls");
    write_renamed(
        &a.join("tasks/t1.json"),
        &json!({"title": "oat milk", "prio": 2, "done": false}),
    );
    write_renamed(&a.join("tasks/t3.json"), &json!({"title": "bread"}));
    run(&a, &["sync"]).expect_ok("a pushes again");
    // b's edits come after a's commit: b's title is the later edit.
    write_renamed(
        &b.join("tasks/t1.json"),
        &json!({"title": "soy milk", "prio": 1, "done": true}),
    );
    write_renamed(&b.join("tasks/t2.json"), &json!({"title": "eggs", "n": 3}));
    std::fs::write(b.join("tasks/bad.json"), "{\"title\": ").unwrap();
    insta::assert_snapshot!("diff", shown(&run(&b, &["diff"])));
    insta::assert_snapshot!("diff_verbose", shown(&run(&b, &["diff", "-v"])));
    let json = run(&b, &["diff", "--json"]);
    insta::assert_snapshot!("diff_json", shown(&json));
    assert_eq!(
        std::fs::read_to_string(b.join("tasks/t3.json")).ok(),
        None,
        "diff writes nothing"
    );
    // After the sync: what needs the person (the held file, the open receipt).
    let r = run(&b, &["sync"]);
    assert_eq!(r.code, Some(5), "{r}");
    write_renamed(&b.join("tasks/t2.json"), &json!({"title": "eggs", "n": 4}));
    insta::assert_snapshot!("status_needs_you", shown(&run(&b, &["status"])));
    insta::assert_snapshot!("status_json", shown(&run(&b, &["status", "--json"])));

    // 25 new entities: the summary lists 20 and says how many more.
    for i in 0..25 {
        write_renamed(&a.join(format!("tasks/n{i:02}.json")), &json!({"i": i}));
    }
    // b's receipt is open, but a records nothing new: 0.
    run(&a, &["sync"]).expect_ok("a pushes 25");
    std::fs::remove_file(b.join("tasks/bad.json")).unwrap();
    // b made n24 too: a merge, listed before the pulls however many they are.
    write_renamed(&b.join("tasks/n24.json"), &json!({"i": "b's"}));
    let long = run(&b, &["diff", "tasks"]);
    assert_eq!(long.code, Some(0), "{long}");
    let lines: Vec<&str> = long.stdout.lines().collect();
    assert!(lines[1].starts_with("  merge        tasks/n24"), "{long}");
    assert!(long.stdout.contains("  … and 5 more (-v"), "{long}");
    // 20 pushes and pulls: t2 and 19 of the 24 new ones.
    assert_eq!(long.stdout.matches("  pull new ").count(), 19, "{long}");
}
