//! Benchmark of `deltasync watch` (run by `scripts/bench-watch`, which builds the release
//! binary first and puts the result into BENCHMARKS.md).
//!
//! 1. Latency: two watchers (poll 1 s) on two workspaces sharing a lighttpd WebDAV folder; a
//!    file save on A (temp file + rename) until B's file holds the new content, over N edits
//!    spaced by a random pause; median, p95, max.
//! 2. Idle cost: one watcher over a workspace of M entities (one file each), after its first
//!    sync: CPU time and RSS during 60 s with nothing changing.
//!
//! Prints a Markdown section on stdout; progress on stderr.
//!
//! `cargo run --release --example bench_watch -- BINARY [EDITS] [ENTITIES] [IDLE_SECS]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deltasync_testservers::{Kind, Server};
use serde_json::{Value, json};

struct Ctx {
    bin: PathBuf,
    server: Server,
    tmp: PathBuf,
}

impl Ctx {
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("DELTASYNC_PASSWORD", self.server.password())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .arg("-C")
            .arg(dir)
            .args(args);
        c
    }

    fn ok(&self, dir: &Path, args: &[&str]) {
        let out = self.command(dir, args).output().expect("run deltasync");
        assert!(
            out.status.success(),
            "deltasync {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn init(&self, name: &str, folder: &str) -> PathBuf {
        let dir = self.tmp.join(name);
        std::fs::create_dir_all(dir.join("tasks")).unwrap();
        let url = format!("{}{folder}/", self.server.url());
        self.ok(
            &dir,
            &[
                "init",
                "--remote",
                &url,
                "--device",
                name,
                "--user",
                self.server.user(),
                "--collection",
                "tasks=dir:tasks",
            ],
        );
        dir
    }

    fn watch(&self, dir: &Path, log: &str) -> Child {
        let log = std::fs::File::create(self.tmp.join(log)).unwrap();
        self.command(dir, &["watch", "--poll", "1s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start watch")
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn write_renamed(path: &Path, v: &Value) {
    let tmp = path.with_extension("json.tmp~");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// utime + stime of a process, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(0) ppid(1) … utime(11) stime(12), in clock ticks (100 Hz).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A `/proc/<pid>/status` field in MB (VmRSS, VmHWM).
fn mem_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(
        args.get(1)
            .expect("usage: bench_watch BINARY [EDITS] [ENTITIES] [IDLE_SECS]"),
    );
    let edits: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(60);
    let entities: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let idle_secs: u64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(60);
    let server = Server::start(Kind::Lighttpd).expect("lighttpd (scripts/install-test-servers)");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        bin: bin.canonicalize().unwrap(),
        server,
        tmp: tmp.path().to_path_buf(),
    };

    // 1. Latency.
    eprintln!("latency: {edits} edits, poll 1 s");
    let a = ctx.init("a", "lat");
    let b = ctx.init("b", "lat");
    let _wa = Kill(ctx.watch(&a, "a.log"));
    let _wb = Kill(ctx.watch(&b, "b.log"));
    std::thread::sleep(Duration::from_secs(2));
    let mut lat = Vec::with_capacity(edits);
    for i in 0..edits {
        let name = format!("tasks/t{}.json", i % 10);
        let v = json!({"id": format!("t{}", i % 10), "title": format!("edit {i}"), "n": i});
        let start = Instant::now();
        write_renamed(&a.join(&name), &v);
        let bp = b.join(&name);
        wait_for(Duration::from_secs(60), "B's file", || {
            read(&bp).as_ref() == Some(&v)
        });
        lat.push(start.elapsed().as_secs_f64());
        eprint!(".");
        // A random pause, so that saves fall anywhere in B's poll period.
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(..700)));
    }
    eprintln!();
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, p95, max) = (
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.95),
        sorted[sorted.len() - 1],
    );
    drop((_wa, _wb));

    // 2. Idle cost over a large workspace.
    eprintln!("idle: {entities} entities");
    let c = ctx.init("c", "big");
    for i in 0..entities {
        let v = json!({"id": format!("e{i}"), "title": format!("entity {i}"), "done": i % 3 == 0, "tags": ["a", "b"]});
        std::fs::write(
            c.join(format!("tasks/e{i}.json")),
            serde_json::to_vec(&v).unwrap(),
        )
        .unwrap();
    }
    let t = Instant::now();
    ctx.ok(&c, &["sync"]);
    let first_sync = t.elapsed();
    eprintln!("first sync (separate process) {first_sync:?}");
    let t = Instant::now();
    let wc = Kill(ctx.watch(&c, "c.log"));
    let pid = wc.0.id();
    let rec = c.join(".deltasync/watch.json");
    wait_for(Duration::from_secs(600), "the watcher's first sync", || {
        read(&rec).is_some_and(|v| v["last_contact_ms"].is_u64())
    });
    let startup = t.elapsed();
    // (The record is written once the first sync is over.)
    // Let the start-up settle (stamps of every file, first poll).
    std::thread::sleep(Duration::from_secs(3));
    let cpu0 = cpu_s(pid);
    let t0 = Instant::now();
    let mut rss_max: f64 = 0.0;
    while t0.elapsed() < Duration::from_secs(idle_secs) {
        rss_max = rss_max.max(mem_mb(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu = cpu_s(pid) - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    let rss_end = mem_mb(pid, "VmRSS:");
    let hwm = mem_mb(pid, "VmHWM:");
    drop(wc);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("### `deltasync watch` (scripts/bench-watch)\n");
    println!(
        "lighttpd on 127.0.0.1, release build, {cores} cores; measured {}.\n",
        String::from_utf8_lossy(
            &Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d %H:%M UTC")
                .output()
                .unwrap()
                .stdout
        )
        .trim()
    );
    println!("| measure | value | goal |\n|---|---|---|");
    println!(
        "| save on A (temp + rename) → B's file updated, {edits} edits, poll 1 s: median | {:.2} s | < 1.5 s |",
        median
    );
    println!("| same: p95 / max | {p95:.2} s / {max:.2} s | |");
    println!(
        "| idle watcher over {entities} entities, {idle_secs} s: CPU | {:.2} s ({:.2} %) | |",
        cpu,
        100.0 * cpu / secs
    );
    println!(
        "| same: RSS (max during the idle period / at its end) | {rss_max:.1} MB / {rss_end:.1} MB | ≤ 50 MB |"
    );
    println!(
        "| same: peak RSS of the watcher process (VmHWM; its syncs run in it) | {hwm:.1} MB | |"
    );
    println!(
        "| watcher start-up over {entities} entities (first sync: a scan of every file) | {:.1} s | |",
        startup.as_secs_f64()
    );
    println!(
        "| (for reference) first `deltasync sync` of the {entities} entities, one process | {:.1} s | |",
        first_sync.as_secs_f64()
    );
    println!(
        "\nLatency = the watcher's debounce (500 ms, plus the quiet period that gathers a burst) + A's sync + up to one poll period on B (1 s) + B's sync. Idle = one conditional GET of meta.json per second (304), the debouncer's 50 ms tick, no file reads. Each sync runs in the watcher's own process (the scan of every file is in these RSS figures; mimalloc gives it back after the sync)."
    );
    println!("\nCommand: `scripts/bench-watch {edits} {entities} {idle_secs}`.");
}
