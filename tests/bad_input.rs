//! The binary on bad local input and bad remote records (issue 10, "Nothing lost, whatever
//! happens"): each case runs `deltasync` on two or three workspaces sharing a local-folder
//! remote, and checks the exit codes, the key words of what is reported, and that no device
//! lost anything.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::{EXIT_ATTENTION, EXIT_ERROR, EXIT_OK, EXIT_TEMPORARY, Run, deltasync_in};

fn run(dir: &Path, args: &[&str]) -> Run {
    Run::command(&mut deltasync_in(dir, None, args))
}

/// Workspaces on one local-folder remote, each with its own collections (`name=spec`).
struct Setup {
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

impl Setup {
    fn new(devices: &[&[&str]]) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("remote");
        let mut dirs = Vec::new();
        for (i, collections) in devices.iter().enumerate() {
            let dir = tmp.path().join(format!("d{i}"));
            let remote = remote.display().to_string();
            let name = format!("d{i}");
            let mut args = vec!["init", "--remote", &remote, "--device", &name];
            for c in *collections {
                args.extend(["--collection", c]);
            }
            run(&dir, &args).expect_ok(format_args!("init d{i}"));
            dirs.push(dir);
        }
        Setup { _tmp: tmp, dirs }
    }

    fn sync(&self, i: usize) -> Run {
        run(&self.dirs[i], &["sync"])
    }

    fn path(&self, i: usize, rel: &str) -> PathBuf {
        self.dirs[i].join(rel)
    }

    fn write(&self, i: usize, rel: &str, text: &str) {
        let p = self.path(i, rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, i: usize, rel: &str) -> Option<Value> {
        let bytes = std::fs::read(self.path(i, rel)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }
}

/// Neither an error nor a temporary failure: the sync went through.
fn went_through(r: &Run, what: &str) {
    assert!(
        matches!(r.code, Some(EXIT_OK | EXIT_ATTENTION)),
        "{what}: {r}"
    );
    assert!(
        !matches!(r.code, Some(EXIT_ERROR | EXIT_TEMPORARY)),
        "{what}: {r}"
    );
}

/// One case: set up, act, check.
struct Case {
    name: &'static str,
    devices: &'static [&'static [&'static str]],
    run: fn(&Setup),
}

const TASKS: &[&str] = &["tasks=dir:tasks", "notes=dir:notes"];

fn dangling_symlinks(s: &Setup) {
    for i in 0..20 {
        s.write(0, &format!("tasks/t{i}.json"), &format!("{{\"n\": {i}}}"));
    }
    s.sync(0).expect_ok("first sync of d0");
    s.sync(1).expect_ok("first sync of d1");
    for i in 0..10 {
        let p = s.path(0, &format!("tasks/t{i}.json"));
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(s.path(0, &format!("gone/t{i}.json")), &p).unwrap();
    }
    let r = s.sync(0);
    assert_eq!(r.code, Some(EXIT_ATTENTION), "{r}");
    assert!(r.all().contains("symbolic link"), "{r}");
    s.sync(1).expect_ok("d1");
    for i in 0..20 {
        assert_eq!(
            s.read(1, &format!("tasks/t{i}.json")),
            Some(json!({"n": i})),
            "d1 lost t{i}"
        );
    }
}

fn overlapping_collections(s: &Setup) {
    // By hand, as a user might: a second collection on tasks' folder.
    let toml = std::fs::read_to_string(s.path(0, "deltasync.toml")).unwrap();
    let toml = toml.replace("path = \"notes\"", "path = \"tasks\"");
    std::fs::write(s.path(0, "deltasync.toml"), toml).unwrap();
    s.write(0, "tasks/t3.json", "{\"n\": 3}");
    let r = s.sync(0);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    for w in ["notes", "tasks", "both use the path"] {
        assert!(r.stderr.contains(w), "no {w:?} in {r}");
    }
    assert!(s.path(0, "tasks/t3.json").exists());
    // And init refuses them.
    let r = run(
        &s.path(0, "other"),
        &[
            "init",
            "--remote",
            &s.path(0, "r2").display().to_string(),
            "--collection",
            "a=dir:data",
            "--collection",
            "b=file:data/main.json",
        ],
    );
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("inside"), "{r}");
}

fn long_id_in_a_folder(s: &Setup) {
    let long = "x".repeat(250);
    s.write(
        0,
        "tasks.json",
        &serde_json::to_string(&json!({ &long: {"n": 1}, "short": {"n": 2} })).unwrap(),
    );
    s.write(0, "notes/n1.json", "{\"text\": \"hi\"}");
    s.sync(0).expect_ok("d0");
    for round in 0..2 {
        went_through(&s.sync(1), &format!("d1, round {round}"));
    }
    assert_eq!(s.read(1, "tasks/short.json"), Some(json!({"n": 2})));
    assert_eq!(s.read(1, "notes/n1.json"), Some(json!({"text": "hi"})));
    s.sync(0).expect_ok("d0 again");
    assert_eq!(
        s.read(0, "tasks.json"),
        Some(json!({ &long: {"n": 1}, "short": {"n": 2} }))
    );
}

fn too_deep(s: &Setup) {
    let mut deep = json!({});
    for _ in 1..126 {
        deep = json!({ "d": deep });
    }
    let text = serde_json::to_string(&deep).unwrap();
    s.write(0, "tasks/deep.json", &text);
    s.write(0, "tasks/ok.json", "{\"n\": 1}");
    let r = s.sync(0);
    assert_eq!(r.code, Some(EXIT_ATTENTION), "{r}");
    assert!(r.all().contains("nested"), "{r}");
    for round in 0..2 {
        s.sync(1).expect_ok(format_args!("d1, round {round}"));
        went_through(&s.sync(0), &format!("d0, round {round}"));
    }
    assert_eq!(s.read(1, "tasks/ok.json"), Some(json!({"n": 1})));
    assert_eq!(
        std::fs::read_to_string(s.path(0, "tasks/deep.json")).unwrap(),
        text
    );
}

fn id_array_on_a_fresh_device(s: &Setup) {
    s.write(
        0,
        "main.json",
        "{\"items\": [{\"id\": \"i1\", \"n\": 1}, {\"id\": \"i2\", \"n\": 2}]}",
    );
    s.sync(0).expect_ok("d0");
    s.sync(1).expect_ok("d1");
    assert_eq!(
        s.read(1, "main.json"),
        Some(json!({"items": [{"id": "i1", "n": 1}, {"id": "i2", "n": 2}]}))
    );
}

fn stale_temporary_files(s: &Setup) {
    s.write(0, "tasks/t1.json", "{\"n\": 1}");
    let stale = s.path(0, "tasks/.t2.deltasync-tmp-a1B2c3D4e5");
    std::fs::write(&stale, "{\"half\": ").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&stale)
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    drop(f);
    s.sync(0).expect_ok("d0");
    assert!(!stale.exists());
    s.sync(1).expect_ok("d1");
    assert_eq!(s.read(1, "tasks/t1.json"), Some(json!({"n": 1})));
    assert_eq!(s.read(1, "tasks/t2.json"), None);
}

/// Files that are not an entity: each is held and named, left byte for byte as it was, and
/// the good one beside them syncs. Duplicate keys are among them: JSON parsers keep one of
/// the values, so syncing such a file would drop the other without a word.
fn unreadable_files_are_held_untouched(s: &Setup) {
    let bad: &[(&str, &[u8], &str)] = &[
        ("trunc", b"{\"n\": 1", "invalid JSON"),
        ("empty", b"", "invalid JSON"),
        ("badutf8", b"{\"s\": \"\xff\xfe\"}", "invalid"),
        ("array", b"[1, 2]", "array"),
        ("number", b"42", "number"),
        (
            "dup",
            b"{\"a\": 1, \"b\": {\"c\": 2}, \"a\": 3}",
            "\"a\" twice",
        ),
        ("dupdeep", b"{\"x\": {\"c\": 1, \"c\": 2}}", "\"c\" twice"),
        ("dupescaped", b"{\"k\": 1, \"\\u006b\": 2}", "\"k\" twice"),
    ];
    for (id, bytes, _) in bad {
        let p = s.path(0, &format!("tasks/{id}.json"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::create_dir_all(s.path(0, "tasks/folder.json")).unwrap();
    // Not duplicates: the same key in two objects, and a key spelled like a value.
    s.write(
        0,
        "tasks/ok.json",
        "{\"a\": {\"k\": 1}, \"b\": {\"k\": \"a\"}, \"k\": [\"k\"]}",
    );
    let r = s.sync(0);
    assert_eq!(r.code, Some(EXIT_ATTENTION), "{r}");
    for (id, _, words) in bad {
        let line = r
            .all()
            .lines()
            .find(|l| l.contains(&format!("{id}.json")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{id} is not named: {r}"));
        assert!(line.contains(words), "{id}: no {words:?} in {line:?}");
        assert!(
            line.contains("held") || line.contains("fix the file"),
            "{line}"
        );
    }
    assert!(r.all().contains("folder.json"), "{r}");
    for round in 0..2 {
        s.sync(1).expect_ok(format_args!("d1, round {round}"));
        went_through(&s.sync(0), &format!("d0, round {round}"));
    }
    assert_eq!(
        s.read(1, "tasks/ok.json"),
        Some(json!({"a": {"k": 1}, "b": {"k": "a"}, "k": ["k"]}))
    );
    for (id, bytes, _) in bad {
        assert_eq!(
            std::fs::read(s.path(0, &format!("tasks/{id}.json"))).unwrap(),
            *bytes,
            "{id} was changed"
        );
        assert!(
            !s.path(1, &format!("tasks/{id}.json")).exists(),
            "{id} went out"
        );
    }
}

/// Ids from another device's document that are not file names (`..`, `a/b`, NUL…) land inside
/// the folder collection, encoded, and nowhere else; they go back unchanged.
fn remote_ids_never_become_paths_outside(s: &Setup) {
    let doc = r#"{"../escape": {"n": 1}, "a/b": {"n": 2}, "..": {"n": 3}, ".": {"n": 4},
        "x\u0000y": {"n": 5}, "a\\b": {"n": 6}, ".hidden": {"n": 7}, "CON": {"n": 8},
        "/abs": {"n": 9}, "ok": {"n": 10}}"#;
    s.write(0, "tasks.json", doc);
    s.sync(0).expect_ok("d0");
    s.sync(1).expect_ok("d1");
    let files: Vec<PathBuf> = walk(s.path(1, ""))
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == ".deltasync"))
        .collect();
    assert_eq!(files.len(), 11, "{files:?}"); // ten entities and deltasync.toml
    for f in &files {
        assert!(
            f.starts_with(s.path(1, "tasks")) || f.ends_with("deltasync.toml"),
            "{f:?} is outside the collection"
        );
    }
    assert!(!s.path(1, "escape.json").exists() && !s.path(0, "escape.json").exists());
    assert!(!Path::new("/abs.json").exists());
    // Stable: nothing to do on either side, and d0's document is as it was.
    for i in [1, 0, 1] {
        let r = s.sync(i);
        r.expect_ok(format_args!("d{i} again"));
    }
    let want: Value = serde_json::from_str(doc).unwrap();
    assert_eq!(s.read(0, "tasks.json"), Some(want));
}

fn walk(dir: PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn bad_input_never_stops_the_rest_and_loses_nothing() {
    let cases = [
        Case {
            name: "dangling symlinks are held",
            devices: &[TASKS, TASKS],
            run: dangling_symlinks,
        },
        Case {
            name: "collections that overlap are refused",
            devices: &[TASKS],
            run: overlapping_collections,
        },
        Case {
            name: "an id too long for a file name is held",
            devices: &[
                &["tasks=file:tasks.json", "notes=dir:notes"],
                &["tasks=dir:tasks", "notes=dir:notes"],
            ],
            run: long_id_in_a_folder,
        },
        Case {
            name: "an entity too deep for a delta is held",
            devices: &[TASKS, TASKS],
            run: too_deep,
        },
        Case {
            name: "a fresh device writes an @id array as an array",
            devices: &[
                &["items=file:main.json#/items@id"],
                &["items=file:main.json#/items@id"],
            ],
            run: id_array_on_a_fresh_device,
        },
        Case {
            name: "stale temporary files are removed",
            devices: &[TASKS, TASKS],
            run: stale_temporary_files,
        },
        Case {
            name: "unreadable files and duplicate keys are held untouched",
            devices: &[TASKS, TASKS],
            run: unreadable_files_are_held_untouched,
        },
        Case {
            name: "remote ids never become paths outside the collection",
            devices: &[&["tasks=file:tasks.json"], &["tasks=dir:tasks"]],
            run: remote_ids_never_become_paths_outside,
        },
    ];
    // Every case runs, each on its own workspaces; the failures are listed together.
    let mut failed = Vec::new();
    for case in cases {
        let setup = Setup::new(case.devices);
        let outcome = std::panic::catch_unwind(|| (case.run)(&setup));
        if outcome.is_err() {
            eprintln!("case failed: {}", case.name);
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
