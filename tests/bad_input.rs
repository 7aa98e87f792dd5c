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
    ];
    // Every case runs, each on its own workspaces; the failures are listed together.
    let mut failed = Vec::new();
    for case in cases {
        let setup = Setup::new(case.devices);
        let outcome = std::panic::catch_unwind(|| (case.run)(&setup));
        if outcome.is_err() {
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
