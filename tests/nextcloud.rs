//! The `deltasync` binary against the Nextcloud stand-in (`deltasync_testservers::Nextcloud`,
//! built from what was measured on Nextcloud 34: ETags reused within a second, non-atomic
//! If-Match with 423 Locked, a trash bin, Login Flow v2; see docs/servers.md). No registry
//! ships Nextcloud, so this stand-in is what CI runs against; a real Nextcloud is for a person
//! to try by hand.
//!
//! Back-to-back syncs on two devices, a `file` collection with nested edits, 8 processes × 25
//! commits, two watchers, compaction and the trash bin, a cold file cache, a refused password,
//! and the Login Flow.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deltasync_testservers::Nextcloud;
use serde_json::{Value, json};
use support::{EXIT_OK, EXIT_TEMPORARY, Run, deltasync_in};

/// A workspace on the stand-in.
struct Dev {
    name: String,
    dir: PathBuf,
    password: String,
}

impl Dev {
    fn command(&self, args: &[&str]) -> Command {
        deltasync_in(&self.dir, Some(&self.password), args)
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::command(&mut self.command(args))
    }

    fn ok(&self, args: &[&str]) -> Run {
        self.run(args)
            .expect_ok(format_args!("{}: deltasync {args:?}", self.name))
    }

    /// `sync --json`, which must exit 0.
    fn sync(&self) -> Value {
        self.ok(&["sync", "--json"]).json()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, v: &Value) {
        support::write_renamed(&self.path(rel), v);
    }

    fn read(&self, rel: &str) -> Option<Value> {
        let bytes = std::fs::read(self.path(rel)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    /// Every `tasks/*.json`, by file name.
    fn tasks(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Ok(rd) = std::fs::read_dir(self.path("tasks")) else {
            return out;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                out.insert(
                    name,
                    serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap(),
                );
            }
        }
        out
    }
}

/// A stand-in and the workspaces made on it.
struct Cloud {
    nc: Nextcloud,
    tmp: tempfile::TempDir,
}

impl Cloud {
    fn start() -> Cloud {
        Cloud {
            nc: Nextcloud::start().expect("starting the Nextcloud stand-in"),
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self, folder: &str) -> String {
        format!("{}{folder}/", self.nc.url())
    }

    /// `init` of a device on `folder` with `collections` (`NAME=SPEC`).
    fn init_with(&self, folder: &str, name: &str, collections: &[&str]) -> (Dev, Run) {
        let dev = Dev {
            name: name.to_string(),
            dir: self.tmp.path().join(name),
            password: self.nc.password().to_string(),
        };
        let url = self.url(folder);
        let mut args = vec![
            "init",
            "--remote",
            &url,
            "--device",
            name,
            "--user",
            self.nc.user(),
        ];
        for c in collections {
            args.extend(["--collection", c]);
        }
        let r = dev.ok(&args);
        (dev, r)
    }

    fn init(&self, folder: &str, name: &str) -> Dev {
        self.init_with(folder, name, &["tasks=dir:tasks"]).0
    }

    fn assert_no_trash(&self, after: &str) {
        let trash = self.nc.trash();
        assert!(
            trash.is_empty(),
            "after {after}: {} entries in the trash bin, e.g. {:?}",
            trash.len(),
            &trash[..trash.len().min(5)]
        );
    }
}

#[test]
fn back_to_back_syncs_converge_every_time() {
    let cloud = Cloud::start();
    let (a, init_a) = cloud.init_with("b2b", "a", &["tasks=dir:tasks"]);
    assert!(
        init_a.stdout.contains("Class: non-atomic") && init_a.stdout.contains("Nextcloud"),
        "the probe must see a non-atomic Nextcloud:\n{init_a}"
    );
    let toml = std::fs::read_to_string(a.path("deltasync.toml")).unwrap();
    assert!(toml.contains("nextcloud = true"), "{toml}");
    cloud.assert_no_trash("the probe of init");
    // The second device takes the recorded verdict: no probe, a handful of requests.
    let before = cloud.nc.stats().requests;
    let (b, init_b) = cloud.init_with("b2b", "b", &["tasks=dir:tasks"]);
    let used = cloud.nc.stats().requests - before;
    assert!(init_b.stdout.contains("Joining"), "{init_b}");
    assert!(used <= 5, "a joining init sent {used} requests");

    a.write(
        "tasks/t1.json",
        &json!({"title": "milk", "done": false, "n": 0}),
    );
    a.sync();
    b.sync();
    for n in 1..=8 {
        // Different fields on A and B, then A, B, A with no pause.
        let mut on_b = b.read("tasks/t1.json").unwrap();
        on_b["n"] = json!(n);
        b.write("tasks/t1.json", &on_b);
        b.sync();
        a.sync();
        let mut on_a = a.read("tasks/t1.json").unwrap();
        assert_eq!(on_a["n"], json!(n), "round {n}: A missed B's commit");
        on_a["title"] = json!(format!("milk {n}"));
        a.write("tasks/t1.json", &on_a);
        a.sync();
        b.sync();
        let want = json!({"title": format!("milk {n}"), "done": false, "n": n});
        assert_eq!(b.read("tasks/t1.json"), Some(want.clone()), "round {n}: B");
        a.sync();
        assert_eq!(a.read("tasks/t1.json"), Some(want), "round {n}: A");
    }
    // Delete on A, edit on B: the edit survives on both.
    a.write("tasks/t2.json", &json!({"title": "bread"}));
    a.sync();
    b.sync();
    std::fs::remove_file(a.path("tasks/t2.json")).unwrap();
    b.write("tasks/t2.json", &json!({"title": "bread", "done": true}));
    a.sync();
    // The sync that finds the delete-edit conflict records a receipt: exit 5.
    let r = b.run(&["sync"]);
    assert!(matches!(r.code, Some(0 | 5)), "{r}");
    a.sync();
    assert_eq!(
        a.read("tasks/t2.json"),
        Some(json!({"title": "bread", "done": true}))
    );
    for dev in [&a, &b] {
        let v = dev.ok(&["verify", "--json"]).json();
        assert_eq!(v["ok"], json!(true), "{}: {v}", dev.name);
    }
    assert!(
        cloud.nc.stats().stale_304 > 0 || cloud.nc.stats().not_modified > 0,
        "the stand-in answered no 304 at all: {:?}",
        cloud.nc.stats()
    );
    cloud.assert_no_trash("the syncs");
}

#[test]
fn a_file_collection_with_nested_edits_converges() {
    let cloud = Cloud::start();
    let doc = |capital: &str| {
        let entities: serde_json::Map<String, Value> = (0..250)
            .map(|i| {
                let city = if i == 137 {
                    capital.to_string()
                } else {
                    format!("city {i}")
                };
                let v = json!({"name": format!("country {i}"), "facts": {"capital": city, "population": i * 1000}});
                (format!("c{i}"), v)
            })
            .collect();
        json!({"version": 3, "project": {"entities": entities}})
    };
    let spec = "countries=file:main.json#/project/entities";
    let (a, _) = cloud.init_with("file", "a", &[spec]);
    a.write("main.json", &doc("Bonn"));
    a.sync();
    let (b, _) = cloud.init_with("file", "b", &[spec]);
    b.sync();
    for (round, capital) in ["Berlin", "Paris", "Rome", "Madrid"].iter().enumerate() {
        let mut on_b = b.read("main.json").unwrap();
        on_b["project"]["entities"]["c137"]["facts"]["capital"] = json!(capital);
        b.write("main.json", &on_b);
        b.sync();
        // A edits another entity's nested field at once, then syncs twice in a row.
        let mut on_a = a.read("main.json").unwrap();
        on_a["project"]["entities"]["c3"]["facts"]["population"] = json!(round);
        a.write("main.json", &on_a);
        a.sync();
        a.sync();
        let got = a.read("main.json").unwrap();
        assert_eq!(
            got["project"]["entities"]["c137"]["facts"]["capital"],
            json!(capital),
            "round {round}: A kept an old capital"
        );
        b.sync();
        for dev in [&a, &b] {
            let v = dev.ok(&["verify", "--json"]).json();
            assert_eq!(v["ok"], json!(true), "{} round {round}: {v}", dev.name);
        }
    }
    let entities = |d: &Dev| {
        let v = d.read("main.json").unwrap();
        let map = v["project"]["entities"].as_object().unwrap().clone();
        map.into_iter().collect::<BTreeMap<String, Value>>()
    };
    let (on_a, on_b) = (entities(&a), entities(&b));
    let differing: Vec<&String> = on_a
        .keys()
        .filter(|k| on_a.get(*k) != on_b.get(*k))
        .collect();
    assert_eq!(on_a.len(), on_b.len());
    assert!(differing.is_empty(), "entities differ: {differing:?}");
}

/// 8 processes × 25 commits at once: every entity everywhere, and no sync gives up.
#[test]
fn eight_devices_commit_at_once_and_none_gives_up() {
    const DEVICES: usize = 8;
    const COMMITS: usize = 25;
    let cloud = Cloud::start();
    let devs: Vec<Dev> = (0..DEVICES)
        .map(|d| cloud.init("race", &format!("d{d}")))
        .collect();
    let started = Instant::now();
    let results: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = devs
            .iter()
            .enumerate()
            .map(|(d, dev)| {
                s.spawn(move || {
                    let mut temporary = Vec::new();
                    let mut failed = Vec::new();
                    for i in 0..COMMITS {
                        dev.write(&format!("tasks/d{d}-{i}.json"), &json!({"dev": d, "i": i}));
                        loop {
                            let r = dev.run(&["sync", "--json"]);
                            match r.code {
                                Some(EXIT_OK) => break,
                                Some(EXIT_TEMPORARY) if temporary.len() < 20 => {
                                    temporary.push(r.stderr.trim().to_string());
                                }
                                _ => {
                                    failed.push(format!("{}: commit {i}: {r}", dev.name));
                                    break;
                                }
                            }
                        }
                    }
                    (temporary, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let racing = started.elapsed();
    let temporary: Vec<&String> = results.iter().flat_map(|r| &r.0).collect();
    let failed: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let gave_up: Vec<&&String> = temporary.iter().filter(|t| t.contains("gave up")).collect();
    assert!(gave_up.is_empty(), "syncs gave up: {gave_up:#?}");
    let stats = cloud.nc.stats();
    eprintln!(
        "=== nextcloud stand-in: {DEVICES} × {COMMITS} commits in {:.1} s; {} syncs exited 3 \
         (none gave up): {temporary:?}; 423 answers: {}, stale 304s: {}",
        racing.as_secs_f64(),
        temporary.len(),
        stats.locked,
        stats.stale_304
    );
    // Converge, then every device and a fresh one hold all 200 entities.
    for _ in 0..3 {
        for dev in &devs {
            dev.sync();
        }
    }
    let fresh = cloud.init("race", "fresh");
    fresh.sync();
    let reference = devs[0].tasks();
    assert_eq!(reference.len(), DEVICES * COMMITS);
    for dev in devs.iter().chain([&fresh]) {
        assert!(dev.tasks() == reference, "{} holds other data", dev.name);
    }
    cloud.assert_no_trash("8 × 25 commits");
}

/// Two watchers exchange edits; each edit reaches the other device within the bound on a
/// stale "not modified" (30 s) plus a poll.
#[test]
fn watchers_see_each_others_edits_within_the_bound() {
    let cloud = Cloud::start();
    let a = cloud.init("watch", "a");
    let b = cloud.init("watch", "b");
    a.write("tasks/t0.json", &json!({"v": 0}));
    a.sync();
    b.sync();
    let mut watchers: Vec<Watcher> = [&a, &b].iter().map(|d| Watcher::start(d)).collect();
    let bound = Duration::from_secs(30 + 1 + 10);
    let mut worst = Duration::ZERO;
    for i in 1..=6 {
        // Alternate writers, back to back, the other device sometimes writing at once too.
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let id = format!("tasks/t{i}.json");
        from.write(&id, &json!({"v": i, "by": from.name}));
        let t = Instant::now();
        loop {
            if to.read(&id).is_some_and(|v| v["v"] == json!(i)) {
                break;
            }
            assert!(
                t.elapsed() < bound,
                "{}: edit {i} of {} not seen within {} s\n--- {} log ---\n{}\n--- {} log ---\n{}",
                to.name,
                from.name,
                bound.as_secs(),
                from.name,
                watchers[0].log(),
                to.name,
                watchers[1].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        worst = worst.max(t.elapsed());
    }
    for w in &mut watchers {
        w.stop();
    }
    eprintln!(
        "=== nextcloud stand-in: the slowest edit took {:.1} s to reach the other watcher",
        worst.as_secs_f64()
    );
    assert_eq!(a.tasks(), b.tasks());
}

/// A running `deltasync watch` (poll 1 s), stopped with SIGTERM.
struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Watcher {
    fn start(dev: &Dev) -> Watcher {
        let log = dev.dir.join("watch.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = dev
            .command(&["watch", "--poll", "1s"])
            .env("DELTASYNC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("starting deltasync watch");
        let started = Instant::now();
        while !dev.path(".deltasync/watch.json").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "watch did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Watcher { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `doctor` and `compact` leave nothing in the trash bin; a cold file cache (php-fpm just
/// restarted: a PUT of a fresh delta answers 404) is retried, not an error.
#[test]
fn doctor_compact_and_a_cold_cache_leave_no_litter() {
    let cloud = Cloud::start();
    let a = cloud.init("litter", "a");
    let b = cloud.init("litter", "b");
    a.ok(&["doctor", "--save"]);
    cloud.assert_no_trash("doctor");
    for i in 0..6 {
        a.write(&format!("tasks/t{i}.json"), &json!({"i": i}));
        a.sync();
    }
    cloud.nc.cold_cache(2);
    a.write("tasks/cold.json", &json!({"cold": true}));
    let r = a.sync();
    assert!(r["committed"].is_u64(), "{r}");
    b.sync();
    assert_eq!(b.read("tasks/cold.json"), Some(json!({"cold": true})));
    a.ok(&["compact"]);
    b.sync();
    assert_eq!(a.tasks(), b.tasks());
    // The folded deltas are deleted once no writer can still use them (2 minutes, or the
    // orphan grace on a non-atomic server): here at once, through the engine.
    let mut engine = deltasync_engine::Workspace::open(
        &a.dir,
        &deltasync_engine::workspace::GivenSecret(deltasync_remote::Secret::new(
            cloud.nc.password(),
        )),
    )
    .unwrap();
    for i in 0..3 {
        a.write(&format!("tasks/more{i}.json"), &json!({"i": i}));
        engine.sync(&Default::default()).unwrap();
    }
    let report = engine
        .compact_with(
            &deltasync_engine::maintenance::CompactOptions {
                settle_ms: Some(0),
                orphan_grace_ms: Some(0),
                ..Default::default()
            },
            &deltasync_engine::progress::NoProgress,
        )
        .unwrap();
    assert!(
        !report.removed.is_empty(),
        "compaction deleted nothing: {report:?}"
    );
    assert!(
        !cloud.nc.data_dir().join("litter/deltas/g0").exists(),
        "the folded generation's deltas are still there"
    );
    cloud.assert_no_trash("compact");
    let (versions, bytes) = cloud.nc.versions();
    eprintln!("=== nextcloud stand-in: {versions} old versions kept ({bytes} bytes)");
}

/// A refused password stops at once: one 401 per command, never a retry loop (Nextcloud
/// throttles every request from an address after failed logins).
#[test]
fn a_refused_password_is_not_retried() {
    let cloud = Cloud::start();
    let a = cloud.init("auth", "a");
    let wrong = Dev {
        password: "not-the-password".into(),
        name: "a-wrong".into(),
        dir: a.dir.clone(),
    };
    let before = cloud.nc.stats().unauthorized;
    let r = wrong.run(&["sync"]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("access denied"), "{r}");
    assert!(!r.all().contains("not-the-password"), "{r}");
    let refused = cloud.nc.stats().unauthorized - before;
    assert_eq!(refused, 1, "a refused password was sent {refused} times");
    // A watcher stops at the first refusal instead of polling with it.
    let before = cloud.nc.stats().unauthorized;
    let mut w = Watcher::start(&wrong);
    let t = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the watcher kept running with a refused password:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "{}", w.log());
    assert!(w.log().contains("refused the password"), "{}", w.log());
    let refused = cloud.nc.stats().unauthorized - before;
    assert!(
        refused <= 2,
        "the watcher sent a refused password {refused} times"
    );
}

/// `nextcloud+http://user@host/folder` reaches a Nextcloud over plain http (here on this
/// machine; another host needs `auth.allow_insecure_http`).
#[test]
fn the_plain_http_nextcloud_shorthand_works() {
    let cloud = Cloud::start();
    let authority = cloud.nc.base_url().strip_prefix("http://").unwrap();
    let url = format!("nextcloud+http://{}@{authority}/short", cloud.nc.user());
    let dev = Dev {
        name: "short".into(),
        dir: cloud.tmp.path().join("short"),
        password: cloud.nc.password().to_string(),
    };
    dev.ok(&["init", "--remote", &url, "--collection", "tasks=dir:tasks"]);
    dev.write("tasks/t1.json", &json!({"x": 1}));
    dev.sync();
    assert!(
        cloud.nc.data_dir().join("short/meta.json").is_file(),
        "meta.json not under the user's files"
    );
}

/// `deltasync login` on Nextcloud: Login Flow v2. It prints the page to open; once access is
/// granted there, Nextcloud's new app password goes into the system keyring, and syncs use it.
#[test]
fn login_flow_stores_an_app_password_in_the_keyring() {
    use std::io::BufRead as _;
    let Some(keyring) = deltasync_testservers::start_secret_service_or_skip() else {
        return;
    };
    let cloud = Cloud::start();
    let a = cloud.init("login", "a");
    let mut cmd = deltasync_in(&a.dir, None, &["login"]);
    for (k, v) in keyring.env() {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let login_url = loop {
        let line = lines
            .next()
            .expect("login printed no URL")
            .expect("reading login's output");
        if let Some(url) = line.trim().strip_prefix(cloud.nc.base_url()) {
            break format!("{}{url}", cloud.nc.base_url());
        }
    };
    // The person opens the page and grants access.
    std::thread::sleep(Duration::from_millis(500));
    assert!(cloud.nc.approve_login(&login_url), "{login_url}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "login failed:\n{}\n{stderr}",
        rest.join("\n")
    );
    let issued = cloud.nc.app_passwords();
    assert_eq!(issued.len(), 1);
    let authority = cloud.nc.base_url().trim_start_matches("http://");
    let account = format!("{}@{authority}", cloud.nc.user());
    assert_eq!(
        keyring.lookup("deltasync", &account).as_deref(),
        Some(issued[0].as_str())
    );
    let toml = std::fs::read_to_string(a.path("deltasync.toml")).unwrap();
    assert!(toml.contains("keyring = true"), "{toml}");
    assert!(
        !toml.contains(&issued[0]),
        "the app password is in deltasync.toml"
    );
    // A sync with no password in the environment: the keyring's app password.
    a.write("tasks/t1.json", &json!({"via": "app password"}));
    let mut sync = deltasync_in(&a.dir, None, &["sync"]);
    for (k, v) in keyring.env() {
        sync.env(k, v);
    }
    Run::command(&mut sync).expect_ok("sync with the app password");
}
