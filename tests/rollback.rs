//! A remote emptied (and initialised again, as the old error advised) or put back from an
//! older copy, as a user meets it: the old devices exit 4 and say to run `repair`, never
//! `init`; `repair --dry-run` changes nothing; `repair` puts their data back for every device.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{EXIT_OK, Run, deltasync, write_renamed};

const EXIT_REFUSED: i32 = 4;

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::command(deltasync().arg("-C").arg(dir).args(args))
}

fn init(dir: &Path, remote: &Path, name: &str) {
    support::init_tasks(dir, remote, name).expect_ok(format_args!("init {name}"));
}

fn task(dir: &Path, id: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(dir.join("tasks").join(format!("{id}.json"))).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn an_emptied_remote_is_refused_and_repair_puts_the_data_back() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let a: PathBuf = tmp.path().join("a");
    init(&a, &remote, "a");
    for i in 0..3 {
        write_renamed(&a.join(format!("tasks/t{i}.json")), &json!({"i": i}));
    }
    run(&a, &["sync"]).expect_ok("a sync");
    // A second device commits on top, and `a` syncs: it has applied commits 1 and 2.
    let b = tmp.path().join("b");
    init(&b, &remote, "b");
    run(&b, &["sync"]).expect_ok("b sync");
    write_renamed(&b.join("tasks/b1.json"), &json!({"from": "b"}));
    run(&b, &["sync"]).expect_ok("b sync 2");
    run(&a, &["sync"]).expect_ok("a sync 2");

    // Emptied outright: the error names the cause and the remedy, not `init`.
    std::fs::remove_dir_all(&remote).unwrap();
    let r = run(&a, &["sync"]);
    assert_eq!(r.code, Some(EXIT_REFUSED), "{r}");
    assert!(r.stderr.contains("no meta.json"), "{r}");
    assert!(r.stderr.contains("deltasync repair"), "{r}");
    assert!(!r.stderr.contains("deltasync init"), "{r}");

    // Someone initialises it again from a new device (as the old error advised).
    let fresh = tmp.path().join("fresh");
    init(&fresh, &remote, "fresh");
    write_renamed(&fresh.join("tasks/new.json"), &json!({"from": "fresh"}));
    run(&fresh, &["sync"]).expect_ok("fresh sync");
    let r = run(&a, &["sync"]);
    assert_eq!(r.code, Some(EXIT_REFUSED), "{r}");
    assert!(r.stderr.contains("behind this device"), "{r}");
    assert_eq!(
        task(&a, "t1"),
        Some(json!({"i": 1})),
        "a refused sync touched a's files"
    );

    let before: Vec<String> = walk(&remote);
    let r = run(&a, &["repair", "--dry-run", "--json"]).expect_ok("repair --dry-run");
    let plan = r.json();
    assert_eq!(
        (plan["push"].clone(), plan["pull"].clone()),
        (json!(4), json!(1)),
        "{plan}"
    );
    assert_eq!(walk(&remote), before, "a dry run wrote to the remote");
    let r = run(&a, &["repair"]).expect_ok("repair");
    assert!(r.stdout.contains("pushed 4"), "{r}");
    assert_eq!(task(&a, "new"), Some(json!({"from": "fresh"})));
    run(&fresh, &["sync"]).expect_ok("fresh sync after the repair");
    for i in 0..3 {
        assert_eq!(task(&fresh, &format!("t{i}")), Some(json!({"i": i})));
    }
    assert_eq!(task(&fresh, "b1"), Some(json!({"from": "b"})));
    assert_eq!(run(&a, &["sync"]).code, Some(EXIT_OK));
    // `b` was refused too until it repairs; nothing of its is lost either way.
    let r = run(&b, &["sync"]);
    assert_eq!(r.code, Some(EXIT_REFUSED), "{r}");
    run(&b, &["repair"]).expect_ok("b repair");
}

#[test]
fn a_remote_put_back_from_an_older_copy_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let a = tmp.path().join("a");
    init(&a, &remote, "a");
    write_renamed(&a.join("tasks/t1.json"), &json!({"v": 1}));
    run(&a, &["sync"]).expect_ok("a sync");
    let old = tmp.path().join("old-copy");
    copy_dir(&remote, &old);
    write_renamed(&a.join("tasks/t1.json"), &json!({"v": 2}));
    run(&a, &["sync"]).expect_ok("a sync 2");
    std::fs::remove_dir_all(&remote).unwrap();
    copy_dir(&old, &remote);
    let r = run(&a, &["sync"]);
    assert_eq!(r.code, Some(EXIT_REFUSED), "{r}");
    assert!(r.stderr.contains("older copy"), "{r}");
    run(&a, &["repair"]).expect_ok("repair");
    let b = tmp.path().join("b");
    init(&b, &remote, "b");
    run(&b, &["sync"]).expect_ok("b sync");
    assert_eq!(task(&b, "t1"), Some(json!({"v": 2})));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}
