//! Clear errors and the right exit codes for what a person gets wrong (issue 10's "Clear
//! errors, right exit codes"): each case says which file, field or position, and what to do,
//! and changes nothing it should not.

mod support;

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;

use serde_json::json;
use support::{EXIT_ERROR, EXIT_OK, Run, deltasync, write_renamed};

const EXIT_REFUSED: i32 = 4;

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::command(deltasync().arg("-C").arg(dir).args(args))
}

fn init(dir: &Path, remote: &str) -> Run {
    run(
        dir,
        &[
            "init",
            "--remote",
            remote,
            "--device",
            "d",
            "--collection",
            "tasks=dir:tasks",
        ],
    )
}

fn synced_workspace(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("ws");
    let remote = tmp.join("remote").display().to_string();
    init(&dir, &remote).expect_ok("init");
    write_renamed(&dir.join("tasks/t1.json"), &json!({"title": "x"}));
    run(&dir, &["sync"]).expect_ok("sync");
    dir
}

/// Asserts the exit code and that every key word is in stderr.
fn expect(r: &Run, code: i32, words: &[&str], what: &str) {
    assert_eq!(r.code, Some(code), "{what}: {r}");
    for w in words {
        assert!(r.stderr.contains(w), "{what}: no '{w}' in stderr:\n{r}");
    }
    assert!(!r.stderr.contains("panicked"), "{what}: {r}");
}

#[test]
fn a_malformed_configuration_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    let file = dir.join("deltasync.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("[sync]", "[sync\nbroken = ")).unwrap();
    let r = run(&dir, &["sync"]);
    expect(&r, EXIT_ERROR, &["deltasync.toml", "line"], "a broken toml");
    assert!(!r.stderr.contains("not a deltasync workspace"), "{r}");
    // A folder without one is still told to init.
    let r = run(&tmp.path().join("elsewhere"), &["status"]);
    expect(
        &r,
        EXIT_ERROR,
        &["not a deltasync workspace", "deltasync init"],
        "no toml",
    );
}

#[test]
fn a_damaged_state_database_says_how_to_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(".deltasync").join(f));
    }
    std::fs::write(dir.join(".deltasync/state.db"), vec![0x42u8; 8192]).unwrap();
    let r = run(&dir, &["sync"]);
    expect(
        &r,
        EXIT_ERROR,
        &["state.db", "damaged", "move the .deltasync folder away"],
        "a damaged state.db",
    );
    // The advice works and loses nothing.
    std::fs::rename(dir.join(".deltasync"), tmp.path().join("old-state")).unwrap();
    run(&dir, &["sync"]).expect_ok("sync after moving the state away");
    assert!(dir.join("tasks/t1.json").is_file());
}

/// `chattr` on every path given, `+i` or `-i`; whether it took.
fn chattr(flag: &str, paths: &[std::path::PathBuf]) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .args(paths)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Issue 10: a read-only workspace said "unable to open database file: Error code 14". It
/// must say which file and why. Made read-only with `chattr +i`, which even root meets.
#[test]
fn a_read_only_workspace_says_which_file_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    let state = dir.join(".deltasync");
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.push(state.clone());
    if !chattr("+i", &paths) || std::fs::write(state.join("probe"), b"x").is_ok() {
        chattr("-i", &paths);
        eprintln!("SKIPPED: `chattr +i` does not work here (needs root on a disk file system)");
        assert!(std::env::var_os("CI").is_none(), "CI must run this test");
        return;
    }
    let r = run(&dir, &["sync"]);
    chattr("-i", &paths);
    expect(
        &r,
        EXIT_ERROR,
        &["state.db", "read-only"],
        "a read-only .deltasync",
    );
    assert!(!r.stderr.contains("Error code 14"), "{r}");
    run(&dir, &["sync"]).expect_ok("sync once writable again");
    assert!(dir.join("tasks/t1.json").is_file());
}

#[test]
fn remote_typos_and_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let in_cwd = |remote: &str| {
        Run::command(
            deltasync()
                .current_dir(&cwd)
                .args(["-C", "ws", "init", "--remote", remote, "--device", "d"]),
        )
    };
    let r = in_cwd("https//cloud.example.org/x");
    expect(&r, EXIT_ERROR, &["typo", "://"], "https//");
    assert!(!cwd.join("https").exists(), "a folder was made for a typo");
    let r = in_cwd("");
    expect(&r, EXIT_ERROR, &["no remote given"], "an empty remote");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let r = in_cwd(&file.display().to_string());
    expect(
        &r,
        EXIT_ERROR,
        &["is a file, not a folder"],
        "a file as remote",
    );
    assert!(
        !cwd.join("ws/deltasync.toml").exists(),
        "a failed init wrote its toml"
    );
}

#[test]
fn a_remote_too_new_to_read_is_refused_with_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    let meta = tmp.path().join("remote/meta.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    v["minReader"] = json!(99);
    v["format"] = json!(99);
    std::fs::write(&meta, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = run(&dir, &["sync"]);
    expect(&r, EXIT_REFUSED, &["upgrade"], "minReader 99");
    assert!(dir.join("tasks/t1.json").is_file());
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    for i in 0..2500 {
        std::fs::write(
            dir.join(format!("tasks/t{i:05}.json")),
            format!("{{\"title\": \"task number {i} with some words to make it long\"}}"),
        )
        .unwrap();
    }
    run(&dir, &["sync"]).expect_ok("sync of 2500");
    for args in [&["list", "tasks"][..], &["log"][..]] {
        let mut child = deltasync()
            .arg("-C")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        let mut out = child.stdout.take().unwrap();
        let _ = out.read(&mut first);
        drop(out); // as `head -c 16` does
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(status.code(), Some(EXIT_OK), "{args:?}: {stderr}");
    }
}

#[test]
fn update_inside_a_field_that_is_not_an_object_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = synced_workspace(tmp.path());
    let r = run(&dir, &["update", "tasks", "t1", "title.x=1"]);
    expect(
        &r,
        EXIT_ERROR,
        &["'title' is not an object", "nothing was changed"],
        "title.x",
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tasks/t1.json")).unwrap()).unwrap();
    assert_eq!(v, json!({"title": "x"}));
    run(&dir, &["update", "tasks", "t1", "title=y"]).expect_ok("replacing the field itself");
}
