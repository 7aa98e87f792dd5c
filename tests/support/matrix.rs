//! The two-device scenarios, `doctor`'s class, refused credentials and N devices × M commits
//! of the `deltasync` binary against one real server: shared by `webdav_matrix.rs` and
//! `s3_matrix.rs` (included with `#[path]`, beside `mod support`).
#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{
    EXIT_ATTENTION, EXIT_ERROR, EXIT_OK, EXIT_TEMPORARY, Run, S3Env, deltasync_in, s3_env,
};
use deltasync_testservers::{Kind, Server, start_or_skip};
use serde_json::{Value, json};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the servers of one test binary to one at a time (the machine may have 2 cores).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Devices racing in the concurrency test: 4 on WebDAV servers, 8 on S3 servers.
fn devices_for(kind: Kind) -> usize {
    if kind.is_s3() { 8 } else { 4 }
}

/// Commits each device makes in the concurrency test: 50, except on Apache, where 4 × 50 took
/// 258 s (measured): its ETags are weak for ~1 s after every write and a weak ETag never
/// matches, so after each commit nobody can commit for about a second. Apache runs 4 × 25.
/// `DELTASYNC_MATRIX_COMMITS=N` sets N for every server.
fn commits_for(kind: Kind) -> usize {
    if let Some(n) = std::env::var("DELTASYNC_MATRIX_COMMITS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    match kind {
        Kind::Apache | Kind::Moto | Kind::S3rver => 25,
        _ => 50,
    }
}

/// How often a sync that exits 3 (temporary) is tried again: as a person would, after a
/// jittered pause. With 8 racing devices one can lose 10 rounds in a row several syncs
/// running (measured on moto: 6 times), so the limit is generous; it stays a limit.
const TEMPORARY_RETRIES: usize = 15;

/// The classes the probe may honestly measure on each server (docs/servers.md, "Measured").
fn expected_classes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Lighttpd => &["atomic"],
        // Weak ETags for ~1 s after a write, and racing If-Match writers that can both win:
        // weak-window when no race round shows two winners, non-atomic (usual) when one does.
        Kind::Apache => &["weak-window", "non-atomic"],
        // Racing create-only writers win twice in 0–5 % of rounds, and (measured here, in 3
        // of 15 probes) racing If-Match writers now and then too.
        Kind::SabreDav => &["atomic", "non-atomic"],
        Kind::WsgiDav => &["non-atomic"],
        Kind::NginxDav | Kind::Rclone => &["none"],
        // Under racing writers moto lets two win now and then (about 2 % of rounds).
        Kind::Moto => &["atomic", "non-atomic"],
        // Accepts If-Match and If-None-Match: * and ignores them.
        Kind::S3rver => &["none"],
    }
}

/// Whether every probe of this server measures the same class (then `init` and `doctor` must
/// agree exactly).
fn class_is_stable(kind: Kind) -> bool {
    expected_classes(kind).len() == 1
}

/// One workspace (device) on the server's remote.
pub struct Dev {
    name: String,
    dir: PathBuf,
    password: String,
    /// S3: the endpoint and credentials, passed as AWS's variables; WebDAV: none (the
    /// password goes in `DELTASYNC_PASSWORD`).
    s3_env: Option<S3Env>,
}

impl Dev {
    /// `deltasync -C <dir> args…` with this device's password (WebDAV) or AWS variables (S3),
    /// and no proxy: all traffic stays on 127.0.0.1.
    pub fn command(&self, args: &[&str]) -> Command {
        match &self.s3_env {
            None => deltasync_in(&self.dir, Some(&self.password), args),
            Some(env) => {
                let mut c = deltasync_in(&self.dir, None, args);
                s3_env(&mut c, env, &self.password, &self.dir);
                c
            }
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::command(&mut self.command(args))
    }

    /// Runs and expects exit code 0.
    fn ok(&self, args: &[&str]) -> Run {
        self.run(args)
            .expect_ok(format_args!("{}: deltasync {args:?}", self.name))
    }

    /// `sync --json`, retried while it exits 3 (temporary); returns the last run, its report
    /// (`Null` when the run printed none) and the errors of the runs that exited 3.
    fn sync_json(&self) -> (Run, Value, Vec<String>) {
        let mut temporary = Vec::new();
        loop {
            let r = self.run(&["sync", "--json"]);
            if r.code == Some(EXIT_TEMPORARY) && temporary.len() < TEMPORARY_RETRIES {
                let error = r.stderr.lines().rfind(|l| !l.trim().is_empty());
                temporary.push(error.unwrap_or("(no message)").trim().to_string());
                let pause = 100 * temporary.len().min(8) as u64 + fastrand::u64(0..300);
                std::thread::sleep(Duration::from_millis(pause));
                continue;
            }
            let report = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
            return (r, report, temporary);
        }
    }

    /// `sync --json` that must end with one of `codes`; returns the report.
    fn sync_expect(&self, codes: &[i32]) -> Value {
        let (r, report, _) = self.sync_json();
        assert!(
            r.code.is_some_and(|c| codes.contains(&c)),
            "{}: sync exited {:?}, expected one of {codes:?}:\n{r}",
            self.name,
            r.code
        );
        report
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// An app-style save: a temp file, then a rename.
    fn write(&self, rel: &str, v: &Value) {
        crate::support::write_renamed(&self.path(rel), v);
    }

    fn read(&self, rel: &str) -> Option<Value> {
        let bytes = std::fs::read(self.path(rel)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{}: {rel} is not JSON ({e})", self.name);
        }))
    }

    /// Every `tasks/*.json` file, parsed, by file name.
    fn tasks(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.path("tasks")).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let bytes = std::fs::read(entry.path()).unwrap();
                let v: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{}: tasks/{name}: {e}", self.name));
                out.insert(name, v);
            }
        }
        out
    }

    /// The conflict receipts this device lists (`conflicts --json`).
    fn receipts(&self) -> Vec<Value> {
        let r = self.ok(&["conflicts", "--json"]);
        r.json()
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{}: conflicts --json is not a list:\n{r}", self.name))
    }

    /// The receipts for one entity of `tasks`.
    fn receipts_for(&self, id: &str) -> Vec<Value> {
        self.receipts()
            .into_iter()
            .filter(|c| c["collection"] == json!("tasks") && c["entityId"] == json!(id))
            .collect()
    }

    fn config(&self) -> toml::Value {
        let text = std::fs::read_to_string(self.path("deltasync.toml")).unwrap();
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: deltasync.toml: {e}", self.name))
    }
}

/// One server and the workspaces made on it.
struct Matrix {
    server: Server,
    tmp: tempfile::TempDir,
}

impl Matrix {
    fn kind(&self) -> Kind {
        self.server.kind()
    }

    /// The remote URL of `folder` on the server.
    fn url(&self, folder: &str) -> String {
        if self.kind().is_s3() {
            format!("s3://{}/{folder}", self.server.bucket())
        } else {
            format!("{}{folder}/", self.server.url())
        }
    }

    /// A device that has not been initialised, using `password`.
    fn device_with(&self, name: &str, password: &str) -> Dev {
        Dev {
            name: format!("{}/{name}", self.kind()),
            dir: self.tmp.path().join(name),
            password: password.to_string(),
            s3_env: self.kind().is_s3().then(|| S3Env {
                endpoint: self.server.url().to_string(),
                key: self.server.user().to_string(),
            }),
        }
    }

    /// `init` of a new device on `folder`, with the user on the command line (WebDAV) and the
    /// password or secret key in the environment.
    fn init(&self, folder: &str, name: &str) -> Dev {
        let dev = self.device_with(name, self.server.password());
        let url = self.url(folder);
        let mut args = vec!["init", "--remote", &url, "--device", name];
        if !self.kind().is_s3() {
            args.extend(["--user", self.server.user()]);
        }
        args.extend(["--collection", "tasks=dir:tasks"]);
        dev.ok(&args);
        dev
    }
}

/// Prints the server's log when a check panics.
struct LogOnPanic<'a>(&'a Server);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- {} log (tail) ---\n{}", self.0.kind(), tail.join("\n"));
        }
    }
}

/// Runs everything against one server.
pub fn check_server(kind: Kind) {
    let _one = one_at_a_time();
    let Some(server) = start_or_skip(kind) else {
        return;
    };
    let started = Instant::now();
    let m = Matrix {
        server,
        tmp: tempfile::tempdir().unwrap(),
    };
    let _log = LogOnPanic(&m.server);

    let t = Instant::now();
    let (a, b) = (m.init("two-devices", "a"), m.init("two-devices", "b"));
    two_device_scenarios(&m, &a, &b);
    let scenarios = t.elapsed();

    let class = doctor_classifies_the_server(&m, &a, &b);
    if kind == Kind::Moto {
        eprintln!("=== moto: accepts any credentials, so refused ones are tested on s3rver");
    } else {
        wrong_password_is_refused_without_showing_it(&m, &a);
    }
    let commits = commits_for(kind);
    let c = concurrent_devices(&m, commits);
    remote_is_clean(&m, &["two-devices", "concurrency"]);

    eprintln!(
        "=== {kind}: class {class}; two-device scenarios {:.1} s; concurrency {} × \
         {commits} commits {:.1} s (+{:.1} s to converge; {} syncs exited 3 and were retried, \
         {} commit rounds lost and retried in-process, {} commits overwritten and made again); \
         whole test {:.1} s",
        scenarios.as_secs_f64(),
        devices_for(kind),
        c.racing.as_secs_f64(),
        c.converging.as_secs_f64(),
        c.temporary.len(),
        c.engine_retries,
        c.recommitted,
        started.elapsed().as_secs_f64()
    );
    let mut why: BTreeMap<String, usize> = BTreeMap::new();
    for e in &c.temporary {
        // Ports, ids and counts differ from run to run.
        let e: String = e
            .chars()
            .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
            .collect();
        *why.entry(e).or_default() += 1;
    }
    for (e, n) in why {
        eprintln!("    exit 3 ({n}×): {e}");
    }
}

fn two_device_scenarios(m: &Matrix, a: &Dev, b: &Dev) {
    let k = m.kind();

    // Create on A appears on B.
    a.write("tasks/created.json", &json!({"title": "milk"}));
    let report = a.sync_expect(&[EXIT_OK]);
    assert!(
        report["committed"].is_u64(),
        "{k}: nothing committed: {report}"
    );
    assert_eq!(
        report["collections"]["tasks"]["up"]["new"],
        json!(1),
        "{k}: {report}"
    );
    let report = b.sync_expect(&[EXIT_OK]);
    assert_eq!(
        report["collections"]["tasks"]["down"]["new"],
        json!(1),
        "{k}: {report}"
    );
    assert_eq!(
        b.read("tasks/created.json"),
        Some(json!({"title": "milk"})),
        "{k}"
    );

    // Different fields edited on A and B: both survive, on both, without a receipt.
    a.write(
        "tasks/fields.json",
        &json!({"title": "milk", "done": false, "prio": 0}),
    );
    a.sync_expect(&[EXIT_OK]);
    b.sync_expect(&[EXIT_OK]);
    a.write(
        "tasks/fields.json",
        &json!({"title": "oat milk", "done": false, "prio": 0}),
    );
    b.write(
        "tasks/fields.json",
        &json!({"title": "milk", "done": true, "prio": 0}),
    );
    a.sync_expect(&[EXIT_OK]);
    let report = b.sync_expect(&[EXIT_OK]);
    assert_eq!(report["conflicts"], json!([]), "{k}: {report}");
    assert!(
        report["committed"].is_u64(),
        "{k}: B's merge not pushed: {report}"
    );
    a.sync_expect(&[EXIT_OK]);
    let merged = json!({"title": "oat milk", "done": true, "prio": 0});
    assert_eq!(a.read("tasks/fields.json"), Some(merged.clone()), "{k}: A");
    assert_eq!(b.read("tasks/fields.json"), Some(merged), "{k}: B");
    for dev in [a, b] {
        assert_eq!(dev.receipts_for("fields"), Vec::<Value>::new(), "{k}");
    }

    // A half-written JSON file on A is reported (exit 5, file and position named), is not
    // overwritten, is not taken as a deletion, and goes out once the app finishes writing it.
    a.write("tasks/half.json", &json!({"title": "milk"}));
    a.sync_expect(&[EXIT_OK]);
    b.sync_expect(&[EXIT_OK]);
    let half = b"{\n  \"title\": \"mi";
    std::fs::write(a.path("tasks/half.json"), half).unwrap();
    let (r, report, _) = a.sync_json();
    assert_eq!(r.code, Some(EXIT_ATTENTION), "{k}: half-written file:\n{r}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("half.json"), "{k}: {report}");
    assert!(
        report["committed"].is_null(),
        "{k}: pushed something: {report}"
    );
    let human = a.run(&["sync"]);
    assert_eq!(human.code, Some(EXIT_ATTENTION), "{k}:\n{human}");
    assert!(
        human.stdout.contains("half.json") && human.stdout.contains("line 2"),
        "{k}: names the file and position:\n{human}"
    );
    assert_eq!(
        std::fs::read(a.path("tasks/half.json")).unwrap(),
        half,
        "{k}: the half-written file was touched"
    );
    b.sync_expect(&[EXIT_OK]);
    assert_eq!(
        b.read("tasks/half.json"),
        Some(json!({"title": "milk"})),
        "{k}: lost on B"
    );
    a.write("tasks/half.json", &json!({"title": "milk and honey"}));
    a.sync_expect(&[EXIT_OK]);
    b.sync_expect(&[EXIT_OK]);
    assert_eq!(
        b.read("tasks/half.json"),
        Some(json!({"title": "milk and honey"})),
        "{k}"
    );

    // Delete on A, edit on B: the edit survives on both, with a delete-edit receipt. Both
    // orders: the delete reaches the remote first, or the edit does.
    for (id, delete_first) in [("deledit1", true), ("deledit2", false)] {
        let rel = format!("tasks/{id}.json");
        a.write(&rel, &json!({"title": "milk"}));
        a.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
        b.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
        assert!(b.path(&rel).is_file(), "{k}: {id} did not reach B");
        std::fs::remove_file(a.path(&rel)).unwrap();
        b.write(&rel, &json!({"title": "oat milk"}));
        let order: [&Dev; 2] = if delete_first { [a, b] } else { [b, a] };
        for dev in order {
            dev.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
        }
        for dev in [a, b] {
            dev.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
        }
        let edit = Some(json!({"title": "oat milk"}));
        assert_eq!(
            a.read(&rel),
            edit,
            "{k}: {id} on A (delete first: {delete_first})"
        );
        assert_eq!(
            b.read(&rel),
            edit,
            "{k}: {id} on B (delete first: {delete_first})"
        );
        let (ra, rb) = (a.receipts_for(id), b.receipts_for(id));
        assert_eq!(ra.len(), 1, "{k}: {id}: receipts on A: {ra:?}");
        assert_eq!(ra, rb, "{k}: {id}: A and B list different receipts");
        assert_eq!(ra[0]["kind"], json!("delete-edit"), "{k}: {ra:?}");
    }

    // The same field on both: one winner, on both, and one receipt that both list.
    a.write("tasks/same.json", &json!({"title": "milk", "prio": 0}));
    a.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
    b.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
    a.write("tasks/same.json", &json!({"title": "milk", "prio": 1}));
    b.write("tasks/same.json", &json!({"title": "milk", "prio": 3}));
    let report = a.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
    assert_eq!(report["conflicts"], json!([]), "{k}: {report}");
    let (r, report, _) = b.sync_json();
    assert_eq!(
        r.code,
        Some(EXIT_ATTENTION),
        "{k}: a conflict needs attention:\n{r}"
    );
    let created = report["conflicts"].as_array().cloned().unwrap_or_default();
    assert_eq!(created.len(), 1, "{k}: {report}");
    a.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
    let (sa, sb) = (
        a.read("tasks/same.json").unwrap(),
        b.read("tasks/same.json").unwrap(),
    );
    assert_eq!(sa, sb, "{k}: A and B differ");
    let winner = sa["prio"].clone();
    assert!(winner == json!(1) || winner == json!(3), "{k}: {sa}");
    let (ra, rb) = (a.receipts_for("same"), b.receipts_for("same"));
    assert_eq!(ra.len(), 1, "{k}: receipts on A: {ra:?}");
    assert_eq!(ra, rb, "{k}: A and B list different receipts");
    let receipt = &ra[0];
    assert_eq!(receipt["id"], created[0]["id"], "{k}: {receipt}");
    assert_eq!(receipt["field"], json!(["prio"]), "{k}: {receipt}");
    assert_eq!(receipt["kind"], json!("field"), "{k}: {receipt}");
    assert_eq!(receipt["kept"], winner, "{k}: {receipt}");
    let loser = if winner == json!(1) {
        json!(3)
    } else {
        json!(1)
    };
    assert_eq!(receipt["lost"], loser, "{k}: {receipt}");
    assert_eq!(receipt["resolved"], json!(false), "{k}: {receipt}");

    // Nothing else was disturbed along the way.
    let (ta, tb) = (a.tasks(), b.tasks());
    assert_eq!(ta, tb, "{k}: A and B hold different data");
    assert_eq!(ta.len(), 6, "{k}: {:?}", ta.keys());
}

/// `doctor --json` on A gives a class the server may have; `init` recorded one in both
/// workspaces' deltasync.toml (the same one where the server's class is stable). Returns
/// doctor's class.
fn doctor_classifies_the_server(m: &Matrix, a: &Dev, b: &Dev) -> String {
    let k = m.kind();
    let expected = expected_classes(k);
    let r = a.ok(&["doctor", "--json"]);
    let report = r.json();
    let class = report["class"].as_str().unwrap_or_default().to_string();
    eprintln!(
        "=== {k}: doctor says {class} ({} ms): {}",
        report["elapsed_ms"], report["class_reasons"]
    );
    assert!(
        expected.contains(&class.as_str()),
        "{k}: doctor says {class}, expected one of {expected:?}:\n{r}"
    );
    for dev in [a, b] {
        let config = dev.config();
        let recorded = config["server"]["cas"].as_str().unwrap_or_default();
        eprintln!(
            "=== {k}: init recorded server.cas = {recorded} for {}",
            dev.name
        );
        assert!(
            expected.contains(&recorded),
            "{}: init recorded {recorded}, expected one of {expected:?}",
            dev.name
        );
        if class_is_stable(k) {
            assert_eq!(recorded, class, "{}: init and doctor disagree", dev.name);
        }
        if recorded == "weak-window" || k == Kind::Apache {
            // Apache's ETags are weak for about 1 s after a write (measured every run).
            let window = config["server"]["weak_window_ms"].as_integer().unwrap_or(0);
            assert!(window >= 1000, "{}: weak_window_ms = {window}", dev.name);
        }
        if !k.is_s3() {
            assert_eq!(
                config["auth"]["user"].as_str(),
                Some(m.server.user()),
                "{}: [auth] user",
                dev.name
            );
        }
        assert_no_password_in(&dev.dir, m.server.password(), &dev.name);
    }
    // doctor --save records what it measured.
    a.ok(&["doctor", "--save"]);
    let saved = a.config()["server"]["cas"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        expected.contains(&saved.as_str()),
        "{k}: doctor --save recorded {saved}"
    );
    class
}

/// No lease (`lock.json`) and no probe folder is left in the remote folders.
fn remote_is_clean(m: &Matrix, folders: &[&str]) {
    if m.kind().is_s3() {
        use deltasync_remote::Remote as _;
        for folder in folders {
            let s3 = deltasync_remote::S3::open(
                &m.url(folder),
                &deltasync_remote::S3Options {
                    endpoint: Some(m.server.url().to_string()),
                    credentials: Some(deltasync_remote::S3Credentials::new(
                        m.server.user(),
                        deltasync_remote::Secret::new(m.server.password()),
                    )),
                    ..Default::default()
                },
            )
            .unwrap();
            let names: Vec<String> = s3.list("").unwrap().into_iter().map(|o| o.name).collect();
            assert!(
                names.iter().any(|n| n == "meta.json"),
                "{}: {folder}: {names:?}",
                m.kind()
            );
            assert!(
                !names
                    .iter()
                    .any(|n| n == "lock.json" || n.starts_with(".deltasync-probe")),
                "{}: {folder}: left on the remote: {names:?}",
                m.kind()
            );
        }
        return;
    }
    for folder in folders {
        let dir = m.server.data_dir().join(folder);
        assert!(
            dir.join("meta.json").is_file(),
            "{}: no {folder}/meta.json",
            m.kind()
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name != "lock.json" && !name.starts_with(".deltasync-probe"),
                "{}: {folder}/{name} was left on the remote",
                m.kind()
            );
        }
    }
}

/// No file of the workspace (configuration, local state) holds the password.
fn assert_no_password_in(dir: &Path, password: &str, who: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes
                        .windows(password.len())
                        .any(|w| w == password.as_bytes()),
                    "{who}: the password is stored in {}",
                    path.display()
                );
            }
        }
    }
}

/// A wrong password: `sync` on a working workspace and `init` of a new one fail with exit
/// code 1 and an error naming the URL and the user; neither password appears in the output.
fn wrong_password_is_refused_without_showing_it(m: &Matrix, a: &Dev) {
    let k = m.kind();
    let wrong = format!("{}-wrong", m.server.password());
    let url = m.url("two-devices");
    let user = format!("'{}'", m.server.user());
    let check = |what: &str, r: &Run| {
        assert_eq!(
            r.code,
            Some(EXIT_ERROR),
            "{k}: {what} with a wrong password:\n{r}"
        );
        let text = r.all();
        assert!(
            text.contains(&url),
            "{k}: {what}: the error does not name {url}:\n{r}"
        );
        let names_who = if k.is_s3() {
            text.contains("InvalidAccessKeyId") && text.contains("AWS_ACCESS_KEY_ID")
        } else {
            text.contains(&format!("user {user}"))
        };
        assert!(
            names_who,
            "{k}: {what}: the error does not name the user {user} (S3: the refused key):\n{r}"
        );
        assert!(
            !text.contains(&wrong),
            "{k}: {what}: the wrong password is shown:\n{r}"
        );
        assert!(
            !text.contains(m.server.password()),
            "{k}: {what}: the password is shown:\n{r}"
        );
        eprintln!("=== {k}: {what} with a wrong password: {}", r.stderr.trim());
    };

    // s3rver checks access key ids, not SigV4 signatures: refuse a wrong key there.
    let wrong_key = |dev: &mut Dev| {
        if let Some(env) = &mut dev.s3_env {
            env.key = format!("{}WRONG", env.key);
        }
    };
    let mut wrong_a = m.device_with("a", &wrong);
    wrong_key(&mut wrong_a);
    wrong_a.name = format!("{k}/a with a wrong password");
    check("sync", &wrong_a.run(&["sync"]));
    check("doctor", &wrong_a.run(&["doctor"]));

    let mut c = m.device_with("c", &wrong);
    wrong_key(&mut c);
    let mut args = vec!["init", "--remote", &url, "--device", "c"];
    if !k.is_s3() {
        args.extend(["--user", m.server.user()]);
    }
    args.extend(["--collection", "tasks=dir:tasks"]);
    let r = c.run(&args);
    check("init", &r);
    assert!(
        !c.path("deltasync.toml").exists(),
        "{k}: a failed init left a deltasync.toml"
    );

    // The right password still works: nothing was locked out or damaged.
    a.sync_expect(&[EXIT_OK, EXIT_ATTENTION]);
}

#[path = "matrix_concurrency.rs"]
mod concurrency;
use concurrency::concurrent_devices;
