//! The `deltasync` binary on two workspaces sharing a local-folder remote.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{EXIT_ATTENTION, EXIT_ERROR, Run, deltasync, write_renamed};

struct Ws {
    dir: PathBuf,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::command(deltasync().arg("-C").arg(dir).args(args))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    run(dir, args)
        .expect_ok(format_args!("deltasync {args:?}"))
        .stdout
}

impl Ws {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    fn write(&self, rel: &str, v: &Value) {
        write_renamed(&self.path(rel), v);
    }
    fn read(&self, rel: &str) -> Option<Value> {
        Some(serde_json::from_slice(&std::fs::read(self.path(rel)).ok()?).unwrap())
    }
    fn sync(&self) -> String {
        ok(&self.dir, &["sync"])
    }
    fn sync_json(&self) -> (Option<i32>, Value) {
        let r = run(&self.dir, &["sync", "--json"]);
        (r.code, r.json())
    }
}

fn two(collections: &[&str]) -> (tempfile::TempDir, Ws, Ws) {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let mut out = Vec::new();
    for name in ["a", "b"] {
        let dir = tmp.path().join(name);
        let mut args = vec![
            "init".to_string(),
            "--remote".into(),
            remote.display().to_string(),
            "--device".into(),
            name.into(),
        ];
        for c in collections {
            args.push("--collection".into());
            args.push(c.to_string());
        }
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        ok(&dir, &args);
        out.push(Ws { dir });
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    (tmp, a, b)
}

#[test]
fn create_on_a_appears_on_b() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    assert!(a.path("deltasync.toml").is_file());
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    let out = a.sync();
    assert!(out.contains("1 new"), "{out}");
    b.sync();
    assert_eq!(b.read("tasks/t1.json"), Some(json!({"title": "milk"})));
}

#[test]
fn different_fields_merge_and_same_field_gives_a_receipt() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    a.write(
        "tasks/t1.json",
        &json!({"title": "milk", "done": false, "prio": 0}),
    );
    a.sync();
    b.sync();
    a.write(
        "tasks/t1.json",
        &json!({"title": "oat milk", "done": false, "prio": 1}),
    );
    b.write(
        "tasks/t1.json",
        &json!({"title": "milk", "done": true, "prio": 3}),
    );
    a.sync();
    let (code, report) = b.sync_json();
    assert_eq!(
        code,
        Some(EXIT_ATTENTION),
        "a conflict needs attention: {report}"
    );
    assert_eq!(report["conflicts"].as_array().unwrap().len(), 1);
    a.sync();
    let (ta, tb) = (
        a.read("tasks/t1.json").unwrap(),
        b.read("tasks/t1.json").unwrap(),
    );
    assert_eq!(ta, tb);
    assert_eq!(ta["title"], json!("oat milk"));
    assert_eq!(ta["done"], json!(true));
    // Both devices list the receipt.
    for ws in [&a, &b] {
        let list: Value =
            serde_json::from_str(&ok(&ws.dir, &["conflicts", "list", "--json"])).unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["field"], json!(["prio"]));
    }
    // Resolve from a, taking the other value.
    let list: Value = serde_json::from_str(&ok(&a.dir, &["conflicts", "--json"])).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let lost = list[0]["lost"].clone();
    let shown = ok(&a.dir, &["conflicts", "show", &id]);
    assert!(shown.contains("prio"), "{shown}");
    let take = if list[0]["lostBy"]
        == json!(ok(&a.dir, &["status", "--json"]).parse::<Value>().unwrap()["device_id"])
    {
        "local"
    } else {
        "remote"
    };
    ok(&a.dir, &["conflicts", "resolve", &id, "--take", take]);
    b.sync();
    assert_eq!(b.read("tasks/t1.json").unwrap()["prio"], lost);
}

#[test]
fn delete_on_a_edit_on_b_keeps_the_edit() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    std::fs::remove_file(a.path("tasks/t1.json")).unwrap();
    b.write("tasks/t1.json", &json!({"title": "oat milk"}));
    a.sync();
    let _ = run(&b.dir, &["sync"]);
    a.sync();
    assert_eq!(a.read("tasks/t1.json"), Some(json!({"title": "oat milk"})));
}

#[test]
fn half_written_file_is_reported_and_nothing_is_lost() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    std::fs::write(a.path("tasks/t1.json"), b"{\n  \"title\": \"mi").unwrap();
    let r = run(&a.dir, &["sync"]);
    let stdout = &r.stdout;
    assert_eq!(r.code, Some(EXIT_ATTENTION), "{stdout}");
    assert!(stdout.contains("t1.json"), "{stdout}");
    assert!(stdout.contains("line 2"), "names the position: {stdout}");
    b.sync();
    assert_eq!(b.read("tasks/t1.json"), Some(json!({"title": "milk"})));
}

#[test]
fn file_collection_inside_a_larger_document() {
    let (_t, a, b) = two(&["tasks=file:main.json#/task/entities"]);
    std::fs::write(
        a.path("main.json"),
        "{\n    \"version\": 7,\n    \"task\": {\"entities\": {\"t1\": {\"id\": \"t1\", \"title\": \"milk\"}}},\n    \"ui\": {\"zoom\": 2}\n}\n",
    )
    .unwrap();
    std::fs::write(
        b.path("main.json"),
        "{\"ui\": {\"zoom\": 1}, \"task\": {\"entities\": {}}}",
    )
    .unwrap();
    a.sync();
    b.sync();
    let doc = b.read("main.json").unwrap();
    assert_eq!(doc["task"]["entities"]["t1"]["title"], json!("milk"));
    assert_eq!(doc["ui"]["zoom"], json!(1));
    // a's document keeps its own formatting and the rest.
    let text_a = std::fs::read_to_string(a.path("main.json")).unwrap();
    assert!(text_a.contains("\"version\": 7"));
}

#[test]
fn diff_reports_both_directions() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    a.sync();
    b.write("tasks/t2.json", &json!({"title": "eggs"}));
    let v: Value = serde_json::from_str(&ok(&b.dir, &["diff", "--json"])).unwrap();
    assert_eq!(v["collections"]["tasks"]["down"]["new"], json!(1));
    assert_eq!(v["collections"]["tasks"]["up"]["new"], json!(1));
    // Entity by entity, field by field.
    let entities = v["entities"].as_array().expect("entities");
    assert_eq!(entities.len(), 2, "{v}");
    assert_eq!(entities[0]["id"], json!("t1"));
    assert_eq!(
        entities[0]["action"],
        json!({"kind": "pull", "change": "create"})
    );
    assert_eq!(entities[0]["fields"][0]["path"], json!(["title"]));
    assert_eq!(entities[0]["fields"][0]["remote"], json!("milk"));
    assert_eq!(
        entities[1]["action"],
        json!({"kind": "push", "change": "create"})
    );
    assert_eq!(b.read("tasks/t1.json"), None, "diff changes nothing");
    let human = ok(&b.dir, &["diff"]);
    assert!(human.contains("dry run"), "{human}");
}

#[test]
fn unknown_collection_lists_the_valid_ones() {
    let (_t, a, _b) = two(&["tasks=dir:tasks", "projects=dir:projects"]);
    let r = run(&a.dir, &["diff", "Foo"]);
    assert_eq!(r.code, Some(EXIT_ERROR));
    let err = &r.stderr;
    assert!(
        err.contains("unknown collection 'Foo'; valid collections: projects, tasks"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_missing_workspace_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run(tmp.path(), &["frobnicate"]).code, Some(2));
    let r = run(tmp.path(), &["sync"]);
    assert_eq!(r.code, Some(EXIT_ERROR));
    assert!(r.stderr.contains("deltasync init"));
}

#[test]
fn status_json() {
    let (_t, a, _b) = two(&["tasks=dir:tasks"]);
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    a.sync();
    let v: Value = serde_json::from_str(&ok(&a.dir, &["status", "--json"])).unwrap();
    assert_eq!(v["head"], json!(1));
    assert_eq!(v["collections"]["tasks"]["remote_entities"], json!(1));
}

#[test]
fn demo_runs() {
    let r =
        Run::command(deltasync().args(["demo", "--entities", "50"])).expect_ok("deltasync demo");
    let stdout = &r.stdout;
    assert!(stdout.contains("no conflict"), "{stdout}");
    assert!(stdout.contains("kept in receipt"), "{stdout}");
    assert!(stdout.contains("bytes up"), "{stdout}");
}

/// Exit code 5 says that this run needs a person (a conflict it recorded, a file it held
/// back), not that some receipt is still open: a script that syncs in a loop gets 5 once per
/// conflict, then 0 again while the receipt waits in `deltasync conflicts`.
#[test]
fn exit_5_only_for_a_conflict_recorded_by_this_run() {
    let (_t, a, b) = two(&["tasks=dir:tasks"]);
    a.write("tasks/t1.json", &json!({"title": "milk"}));
    a.sync();
    b.sync();
    a.write("tasks/t1.json", &json!({"title": "oat milk"}));
    a.sync();
    b.write("tasks/t1.json", &json!({"title": "soy milk"}));
    let (code, report) = b.sync_json();
    assert_eq!(code, Some(EXIT_ATTENTION), "a new conflict: {report}");
    assert_eq!(report["conflicts"].as_array().map(Vec::len), Some(1));

    // The receipt stays open; later commits on either device record nothing new.
    b.write("tasks/t2.json", &json!({"title": "eggs"}));
    let (code, report) = b.sync_json();
    assert!(report["committed"].is_u64(), "b commits: {report}");
    assert_eq!(
        code,
        Some(0),
        "b's next commit, receipt still open: {report}"
    );
    a.write("tasks/t3.json", &json!({"title": "bread"}));
    let (code, report) = a.sync_json();
    assert!(report["committed"].is_u64(), "a commits: {report}");
    assert_eq!(
        code,
        Some(0),
        "a's commit after pulling the receipt: {report}"
    );
    let open = run(&a.dir, &["conflicts", "--json"]).json();
    assert_eq!(open[0]["resolved"], json!(false), "still open: {open}");
}

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let bash = Run::command(deltasync().args(["completions", "bash"])).expect_ok("bash");
    assert!(bash.stdout.contains("_deltasync()"), "{bash}");
    assert!(bash.stdout.contains("sync"), "{bash}");
    assert!(bash.stdout.contains("--allow-mass-delete"), "{bash}");
    // The script is valid bash.
    let file = tmp.path().join("deltasync.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(check.status.success(), "{check:?}");
    for shell in ["zsh", "fish"] {
        let r = Run::command(deltasync().args(["completions", shell])).expect_ok(shell);
        assert!(r.stdout.contains("sync"), "{shell}: {r}");
        assert!(r.stdout.contains("conflicts"), "{shell}: {r}");
    }
    let unknown = Run::command(deltasync().args(["completions", "tcsh"]));
    assert_eq!(unknown.code, Some(2), "{unknown}");

    let man = Run::command(deltasync().arg("man")).expect_ok("man");
    assert!(man.stdout.contains(".SH NAME\ndeltasync"), "{man}");
    assert!(man.stdout.contains(".SH SUBCOMMANDS"), "{man}");
    assert!(man.stdout.contains("Exit codes:"), "{man}");
    let dir = tmp.path().join("man1");
    Run::command(deltasync().args(["man", "--dir"]).arg(&dir)).expect_ok("man --dir");
    let sync = std::fs::read_to_string(dir.join("deltasync-sync.1")).expect("deltasync-sync.1");
    assert!(sync.contains(".SH NAME"), "{sync}");
    assert!(sync.contains("allow\\-mass\\-delete"), "{sync}");
}
