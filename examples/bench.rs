//! Requests, bytes and time of deltasync's operations, against the whole-file baseline.
//!
//! For each size N: device A gets N synthetic task files (`tasks/<id>.json`, about 300 bytes
//! each), imports them (init + first sync) and compacts (the import is folded into the
//! snapshot, the steady state); device B bootstraps from the remote. Then, `--reps` times, A
//! edits one task and syncs (push), B syncs (pull) and syncs again (no-op). Every remote call
//! goes through [`Counting`], reset around each measured operation. The whole-file baseline is
//! one document holding every task, written to (and read from) the same remote.
//!
//! The Markdown tables go to stdout, progress to stderr. `scripts/bench` runs this in release
//! mode and writes `BENCHMARKS.md`.
//!
//! ```sh
//! cargo run --release --example bench -- --sizes 1000 --reps 5 --workdir target/bench-work
//! ```
//!
//! Options: `--sizes N,N,…` (default 1000,10000,100000), `--quick` (= `--sizes 1000`),
//! `--reps R` (default 5), `--remote KIND,…` (default `folder`; see [`RemoteKind`]),
//! `--workdir DIR` (default: the system temp folder), `--no-probe-record` (initialise the
//! remote without the server probe's report in meta.json, unlike `deltasync init`), `--keep`
//! (leave the workspaces and the remote in the work folder).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use deltasync_engine::config::{CollectionConfig, Config};
use deltasync_engine::{Engine, SyncOptions, SyncReport};
use deltasync_remote::{Counting, GetResult, LocalFolder, PutMode, Remote, RequestStats};
use serde_json::{Value, json};

/// The collection measured: a `dir` collection in `tasks/`.
const COLLECTION: &str = "tasks";

/// Push budget: at most this many bytes uploaded on top of the entity itself.
const PUSH_OVERHEAD_BUDGET: u64 = 2048;

/// The later push measured: this many commits since the last compact (meta.json lists every
/// delta since the snapshot, so a push's upload grows with this number).
const LATE_COMMIT: usize = 20;

/// A kind of remote the benchmark can run against. To add a backend (e.g. a WebDAV server),
/// add a variant, its name in [`RemoteKind::parse`], and a case in [`open_remote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoteKind {
    /// [`LocalFolder`]: a folder on the local disk, next to the workspaces.
    Folder,
    /// lighttpd's mod_webdav on 127.0.0.1, started for the run by `deltasync-testservers`
    /// (`scripts/install-test-servers` installs it), through the WebDAV backend with basic auth.
    Lighttpd,
    /// moto's S3 server (PyPI `moto[server]`) on 127.0.0.1, started for the run, through the S3
    /// backend (SigV4, path-style addressing).
    Moto,
}

impl RemoteKind {
    /// Parses the `--remote` name.
    fn parse(name: &str) -> Result<Self> {
        match name {
            "folder" => Ok(RemoteKind::Folder),
            "lighttpd" => Ok(RemoteKind::Lighttpd),
            "moto" => Ok(RemoteKind::Moto),
            other => bail!("unknown remote kind '{other}' (known: folder, lighttpd, moto)"),
        }
    }

    /// The name in the tables.
    fn label(self) -> &'static str {
        match self {
            RemoteKind::Folder => "folder",
            RemoteKind::Lighttpd => "lighttpd",
            RemoteKind::Moto => "moto (S3)",
        }
    }
}

/// A remote opened for one benchmark run.
struct OpenedRemote {
    /// The backend.
    remote: Arc<dyn Remote>,
    /// What `deltasync.toml` would say (`remote = …`).
    url: String,
    /// The server probe's report, as `deltasync init` records it in meta.json (`server`).
    server: Value,
    /// The WebDAV server process, stopped when the run is over.
    _server: Option<deltasync_testservers::Server>,
}

/// Opens a fresh, empty remote of `kind` for one size and probes it as `deltasync init` does
/// (the probe cleans up after itself). `scratch` is a folder private to this run (removed
/// afterwards); a backend that lives elsewhere (a server) should use a fresh sub-path named
/// after `name` instead.
fn open_remote(kind: RemoteKind, scratch: &Path, name: &str) -> Result<OpenedRemote> {
    match kind {
        RemoteKind::Folder => {
            let dir = scratch.join(name);
            let remote = LocalFolder::new(&dir)
                .with_context(|| format!("opening the folder remote {}", dir.display()))?;
            let server = deltasync_remote::probe(&remote)?.summary_json();
            Ok(OpenedRemote {
                remote: Arc::new(remote),
                url: dir.display().to_string(),
                server,
                _server: None,
            })
        }
        RemoteKind::Lighttpd => {
            let server =
                deltasync_testservers::Server::start(deltasync_testservers::Kind::Lighttpd)
                    .map_err(|e| anyhow::anyhow!("starting lighttpd: {e}"))?;
            let url = format!("{}/{name}/", server.url().trim_end_matches('/'));
            let options = deltasync_remote::WebDavOptions::with_credentials(
                server.user(),
                deltasync_remote::Secret::new(server.password()),
            );
            let dav = deltasync_remote::WebDav::open(&url, &options)?;
            let report = dav.probe()?;
            Ok(OpenedRemote {
                remote: Arc::new(dav),
                url,
                server: report.summary_json(),
                _server: Some(server),
            })
        }
        RemoteKind::Moto => {
            let server = deltasync_testservers::Server::start(deltasync_testservers::Kind::Moto)
                .map_err(|e| anyhow::anyhow!("starting moto: {e}"))?;
            let url = format!("s3://{}/{name}", server.bucket());
            let options = deltasync_remote::S3Options {
                endpoint: Some(server.url().to_string()),
                region: Some("us-east-1".into()),
                credentials: Some(deltasync_remote::S3Credentials::new(
                    server.user(),
                    deltasync_remote::Secret::new(server.password()),
                )),
                ..deltasync_remote::S3Options::default()
            };
            let s3 = deltasync_remote::S3::open(&url, &options)?;
            let report = deltasync_remote::probe_s3(&s3)?;
            s3.set_capabilities(report.capabilities());
            Ok(OpenedRemote {
                remote: Arc::new(s3),
                url,
                server: report.summary_json(),
                _server: Some(server),
            })
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    /// The dataset sizes.
    sizes: Vec<usize>,
    /// Repetitions of the cheap operations (push, pull, no-op, baseline).
    reps: usize,
    /// The remotes to measure.
    remotes: Vec<RemoteKind>,
    /// Where workspaces and folder remotes are created.
    workdir: PathBuf,
    /// Whether meta.json gets the server probe's report, as `deltasync init` writes it.
    probe_record: bool,
    /// Leave the workspaces and the remote in place (for a look, or to remove them later).
    keep: bool,
}

impl Args {
    /// Parses `std::env::args`.
    fn parse() -> Result<Self> {
        let mut args = Args {
            sizes: vec![1_000, 10_000, 100_000],
            reps: 5,
            remotes: vec![RemoteKind::Folder],
            workdir: std::env::temp_dir(),
            probe_record: true,
            keep: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--quick" => args.sizes = vec![1_000],
                "--sizes" => {
                    args.sizes = value("--sizes")?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>().context("--sizes: a number"))
                        .collect::<Result<_>>()?;
                }
                "--reps" => args.reps = value("--reps")?.parse().context("--reps: a number")?,
                "--remote" => {
                    args.remotes = value("--remote")?
                        .split(',')
                        .map(|s| RemoteKind::parse(s.trim()))
                        .collect::<Result<_>>()?;
                }
                "--workdir" => args.workdir = PathBuf::from(value("--workdir")?),
                "--no-probe-record" => args.probe_record = false,
                "--keep" => args.keep = true,
                "-h" | "--help" => {
                    eprintln!(
                        "usage: bench [--quick | --sizes N,N,…] [--reps R] [--remote folder] [--workdir DIR] [--no-probe-record] [--keep]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument '{other}' (try --help)"),
            }
        }
        ensure!(
            args.sizes.iter().all(|&n| n >= 10),
            "every size must be at least 10"
        );
        ensure!(args.reps >= 1, "--reps must be at least 1");
        Ok(args)
    }
}

/// A small deterministic generator (splitmix64), so that every run has the same data.
struct Rng(u64);

impl Rng {
    /// The next value.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One of `items`.
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The id of task `i`.
fn task_id(i: usize) -> String {
    format!("t{i:06}")
}

/// Synthetic task `i`: a to-do item as an app would store it, about 300 bytes pretty-printed.
fn task(i: usize) -> Value {
    const VERBS: &[&str] = &[
        "Call", "Email", "Review", "Fix", "Plan", "Buy", "Book", "Write", "Clean", "Renew",
    ];
    const THINGS: &[&str] = &[
        "the plumber about the kitchen sink",
        "quarterly report draft",
        "dentist appointment for Tuesday",
        "groceries for the weekend",
        "flights to Lisbon",
        "insurance papers",
        "garage and the bike shed",
        "slides for the team meeting",
    ];
    const TAGS: &[&str] = &["home", "work", "errand", "urgent", "later", "family"];
    const NOTES: &[&str] = &[
        "Ask about the invoice from last month.",
        "Check the shared folder first.",
        "",
        "Needs the new address.",
    ];
    let mut rng = Rng(i as u64);
    let created = 1_760_000_000_000u64 + (i as u64) * 61_000;
    let mut tags: Vec<&str> = Vec::new();
    for _ in 0..1 + rng.next() % 3 {
        let tag = rng.pick(TAGS);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    json!({
        "id": task_id(i),
        "title": format!("{} {}", rng.pick(VERBS), rng.pick(THINGS)),
        "done": rng.next().is_multiple_of(4),
        "priority": rng.next() % 4,
        "project": format!("proj-{:03}", rng.next() % 40),
        "tags": tags,
        "due": format!("2026-{:02}-{:02}", 1 + rng.next() % 12, 1 + rng.next() % 28),
        "notes": rng.pick(NOTES),
        "createdAt": created,
        "updatedAt": created + rng.next() % 86_400_000,
    })
}

/// The text of an entity file, as an app would save it (2-space indent, final newline).
fn file_text(value: &Value) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    Ok(text)
}

/// The path of task `id` in workspace `ws`.
fn task_path(ws: &Path, id: &str) -> PathBuf {
    ws.join(COLLECTION).join(format!("{id}.json"))
}

/// What one measured operation cost.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Requests and bytes.
    stats: RequestStats,
    /// Wall time.
    time: Duration,
    /// CPU time of the process (all threads) during the operation, when known; the rest of the
    /// wall time is spent waiting (mostly for the disk: fsync).
    cpu: Option<Duration>,
}

/// Resets the process's peak resident memory to the current one (Linux, `/proc/self/clear_refs`);
/// false when that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory since the last reset (Linux: `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time the process's threads have run so far, from `/proc/self/task/*/schedstat`
/// (Linux, nanoseconds); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    // The kernel brings a running thread's count up to date when it is scheduled out.
    std::thread::yield_now();
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Runs `op` between a reset and a read of the counters, timing it.
fn measure<T>(
    counted: &Counting<Arc<dyn Remote>>,
    op: impl FnOnce() -> Result<T>,
) -> Result<(T, Sample)> {
    counted.reset();
    let cpu_before = cpu_time();
    let start = Instant::now();
    let out = op()?;
    let time = start.elapsed();
    let cpu = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok((
        out,
        Sample {
            stats: counted.stats(),
            time,
            cpu,
        },
    ))
}

/// A budget an operation is held to.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// At most `requests`, and at most `overhead` bytes up beyond the entity.
    Push { requests: u64, overhead: u64 },
    /// At most `requests`.
    Pull { requests: u64 },
    /// At most `requests` and no body bytes either way.
    NoOp { requests: u64 },
}

/// One row of the main table: an operation measured one or more times.
struct Row {
    /// Dataset size.
    n: usize,
    /// The operation.
    op: String,
    /// Its measurements.
    samples: Vec<Sample>,
    /// The bytes of the entity involved (push budget), per sample.
    entity_bytes: Vec<u64>,
    /// The budget, if any.
    budget: Option<Budget>,
}

impl Row {
    /// A row without budget.
    fn plain(n: usize, op: &str, samples: Vec<Sample>) -> Self {
        Row {
            n,
            op: op.to_string(),
            samples,
            entity_bytes: Vec::new(),
            budget: None,
        }
    }

    /// The largest value of `f` over the samples.
    fn max(&self, f: impl Fn(&RequestStats) -> u64) -> u64 {
        self.samples.iter().map(|s| f(&s.stats)).max().unwrap_or(0)
    }

    /// Whether every sample is within the budget (`None`: no budget).
    fn within_budget(&self) -> Option<bool> {
        let budget = self.budget?;
        Some(self.samples.iter().enumerate().all(|(i, s)| {
            let st = &s.stats;
            match budget {
                Budget::Push { requests, overhead } => {
                    let entity = self.entity_bytes.get(i).copied().unwrap_or(0);
                    st.requests() <= requests && st.bytes_up <= entity + overhead
                }
                Budget::Pull { requests } => st.requests() <= requests,
                Budget::NoOp { requests } => {
                    st.requests() <= requests && st.bytes_up == 0 && st.bytes_down == 0
                }
            }
        }))
    }

    /// The budget as text, with the verdict.
    fn budget_text(&self) -> String {
        let Some(budget) = self.budget else {
            return String::new();
        };
        let what = match budget {
            Budget::Push { requests, overhead } => {
                let entity = self.entity_bytes.iter().copied().max().unwrap_or(0);
                format!(
                    "≤ {requests} req, ≤ {} B up (entity {} + {})",
                    thousands(entity + overhead),
                    thousands(entity),
                    thousands(overhead)
                )
            }
            Budget::Pull { requests } => format!("≤ {requests} req"),
            Budget::NoOp { requests } => format!("≤ {requests} req, 0 B"),
        };
        let verdict = if self.within_budget() == Some(true) {
            "met"
        } else {
            "**not met**"
        };
        format!("{what}: {verdict}")
    }
}

/// `1234567` → `1,234,567`.
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Requests by kind, e.g. `GET 1 (304), PUT 2`.
fn breakdown(st: &RequestStats) -> String {
    let mut parts = Vec::new();
    if st.gets > 0 {
        if st.not_modified > 0 {
            parts.push(format!("GET {} ({} × 304)", st.gets, st.not_modified));
        } else {
            parts.push(format!("GET {}", st.gets));
        }
    }
    for (name, count) in [
        ("PUT", st.puts),
        ("HEAD", st.heads),
        ("LIST", st.lists),
        ("DELETE", st.deletes),
    ] {
        if count > 0 {
            parts.push(format!("{name} {count}"));
        }
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

/// A duration for the table: ms below 10 s, s above.
fn fmt_time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// Median (and range, when more than one) of the samples' times.
fn time_text(samples: &[Sample]) -> String {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    match times.len() {
        0 => "—".into(),
        1 => format!("{} (1 run)", fmt_time(times[0])),
        n => format!(
            "{} (median of {n}; {}–{})",
            fmt_time(times[n / 2]),
            fmt_time(times[0]),
            fmt_time(times[n - 1])
        ),
    }
}

/// Everything measured for one size and one remote.
struct Run {
    /// The remote kind.
    remote: RemoteKind,
    /// Dataset size.
    n: usize,
    /// Bytes of the N entity files.
    dataset_bytes: u64,
    /// Bytes of the whole-file baseline document.
    whole_bytes: u64,
    /// Rows of the main table (per-change costs).
    main: Vec<Row>,
    /// Rows of the setup table (import, compact, where the time goes).
    setup: Vec<Row>,
    /// Size of meta.json after each push, in order (the first is one commit after compact).
    meta_sizes: Vec<u64>,
    /// Bytes uploaded by each push and the size of its entity, in the same order.
    push_series: Vec<(u64, u64)>,
    /// Bytes of the probe report in meta.json (`server`), if it has one.
    probe_record_bytes: Option<u64>,
    /// The process's peak resident memory during this size's run (bytes), when known.
    peak_rss: Option<u64>,
}

/// A sync that must succeed and report no problems.
fn sync(engine: &mut Engine) -> Result<SyncReport> {
    let report = engine.sync(&SyncOptions::default())?;
    ensure!(
        report.problems.is_empty(),
        "sync reported problems: {:?}",
        report.problems
    );
    Ok(report)
}

/// Total of a report's incoming or outgoing changes.
fn changes(report: &SyncReport, up: bool) -> u64 {
    report
        .collections
        .values()
        .map(|c| {
            let k = if up { &c.up } else { &c.down };
            k.new + k.updated + k.deleted
        })
        .sum()
}

/// Measures one size against one remote.
fn run(kind: RemoteKind, n: usize, args: &Args) -> Result<Run> {
    let (reps, workdir) = (args.reps, args.workdir.as_path());
    let rss_known = reset_peak_rss();
    let scratch = tempfile::Builder::new()
        .prefix(&format!("bench-{}-{n}-", kind.label()))
        .tempdir_in(workdir)
        .with_context(|| format!("creating a folder in {}", workdir.display()))?;
    let opened = open_remote(kind, scratch.path(), "remote")?;
    let server = args.probe_record.then(|| opened.server.clone());
    let counted = Arc::new(Counting::new(opened.remote));
    let remote: Arc<dyn Remote> = counted.clone();
    let (ws_a, ws_b) = (
        scratch.path().join("device-a"),
        scratch.path().join("device-b"),
    );
    let progress = |what: &str, t: Duration| {
        eprintln!("  [{} N={n}] {what}: {}", kind.label(), fmt_time(t));
    };

    // The dataset, on device A.
    let started = Instant::now();
    std::fs::create_dir_all(ws_a.join(COLLECTION))?;
    std::fs::create_dir_all(&ws_b)?;
    let mut dataset_bytes = 0u64;
    for i in 0..n {
        let text = file_text(&task(i))?;
        dataset_bytes += text.len() as u64;
        std::fs::write(task_path(&ws_a, &task_id(i)), &text)?;
    }
    progress("wrote the dataset", started.elapsed());

    let mut config: Config = toml::from_str(&format!(
        "remote = {}",
        toml::Value::String(opened.url.clone())
    ))?;
    config.collections.insert(
        COLLECTION.into(),
        CollectionConfig::parse_spec(&format!("dir:{COLLECTION}"))?,
    );
    let kind_of_collection = config.collections[COLLECTION].kind();
    let mut a = Engine::with_remote(
        &ws_a,
        Config {
            device: "device-a".into(),
            ..config.clone()
        },
        remote.clone(),
    )?;
    let mut b = Engine::with_remote(
        &ws_b,
        Config {
            device: "device-b".into(),
            ..config
        },
        remote.clone(),
    )?;

    let mut setup = Vec::new();
    let (created, s) = measure(&counted, || Ok(a.init_remote(server)?))?;
    ensure!(created, "the remote was not empty");
    let meta: Value = match counted.inner().get(deltasync_meta::META_FILE, None)? {
        GetResult::Found { body, .. } => serde_json::from_slice(&body)?,
        _ => bail!("meta.json is missing after init"),
    };
    let probe_record_bytes = match meta.get("server") {
        Some(v) if !v.is_null() => Some(serde_json::to_vec(v)?.len() as u64),
        _ => None,
    };
    setup.push(Row::plain(
        n,
        if args.probe_record {
            "init: empty layout + probe report, as `deltasync init` (A; the probe itself not counted)"
        } else {
            "init: empty layout (A)"
        },
        vec![s],
    ));
    let (r, s) = measure(&counted, || sync(&mut a))?;
    ensure!(
        changes(&r, true) == n as u64 && r.committed.is_some(),
        "the import pushed {} of {n} entities",
        changes(&r, true)
    );
    progress("import", s.time);
    setup.push(Row::plain(
        n,
        "import: first sync of N entities (A)",
        vec![s],
    ));
    let (generation, s) = measure(&counted, || Ok(a.compact()?))?;
    ensure!(generation.is_some(), "compact did nothing");
    progress("compact", s.time);
    setup.push(Row::plain(
        n,
        "compact: fold the import into a snapshot (A)",
        vec![s],
    ));

    let mut main = Vec::new();
    let (r, s) = measure(&counted, || sync(&mut b))?;
    ensure!(
        changes(&r, false) == n as u64,
        "the bootstrap pulled {} of {n} entities",
        changes(&r, false)
    );
    progress("bootstrap", s.time);
    main.push(Row::plain(n, "bootstrap a new device (B)", vec![s]));

    // Per-change costs: A edits a different task each time, pushes; B pulls, then syncs again.
    let (mut push, mut pull, mut noop, mut entity_bytes, mut meta_sizes, mut push_series) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    // Edits task `i` on A as an app would (rewrites its file); returns the new value and size.
    let edit = |i: usize, round: usize| -> Result<(String, Value, u64)> {
        let id = task_id(i);
        let mut t: Value = serde_json::from_slice(&std::fs::read(task_path(&ws_a, &id))?)?;
        t["title"] = json!(format!(
            "{} (edited, round {round})",
            t["title"].as_str().unwrap_or("")
        ));
        t["done"] = json!(!t["done"].as_bool().unwrap_or(false));
        t["updatedAt"] = json!(t["updatedAt"].as_u64().unwrap_or(0) + 1_000);
        let text = file_text(&t)?;
        std::fs::write(task_path(&ws_a, &id), &text)?;
        Ok((id, t, text.len() as u64))
    };
    // The size of meta.json now (read past the counters).
    let meta_size = || -> Result<u64> {
        match counted.inner().get(deltasync_meta::META_FILE, None)? {
            GetResult::Found { body, .. } => Ok(body.len() as u64),
            _ => bail!("meta.json is missing"),
        }
    };
    // A push of one edited entity, checked.
    let push_one = |a: &mut Engine| -> Result<Sample> {
        let (r, s) = measure(&counted, || sync(a))?;
        ensure!(
            changes(&r, true) == 1 && r.committed.is_some(),
            "the push sent {} entities",
            changes(&r, true)
        );
        Ok(s)
    };
    for rep in 0..reps {
        let (id, t, size) = edit((rep * 7_919 + n / 3) % n, rep)?;
        entity_bytes.push(size);
        let s = push_one(&mut a)?;
        push.push(s);
        push_series.push((s.stats.bytes_up, size));
        meta_sizes.push(meta_size()?);
        let (r, s) = measure(&counted, || sync(&mut b))?;
        ensure!(
            changes(&r, false) == 1 && r.committed.is_none(),
            "the pull took {} entities",
            changes(&r, false)
        );
        let on_b: Value = serde_json::from_slice(&std::fs::read(task_path(&ws_b, &id))?)?;
        ensure!(on_b == t, "device B has {on_b}, not the edit {t}");
        pull.push(s);
        let (r, s) = measure(&counted, || sync(&mut b))?;
        ensure!(
            changes(&r, false) + changes(&r, true) == 0 && r.committed.is_none(),
            "the no-op sync changed something"
        );
        noop.push(s);
    }
    progress("push (median)", median(&push));
    progress("pull (median)", median(&pull));
    progress("no-op (median)", median(&noop));
    main.push(Row {
        n,
        op: "push one changed entity (A)".into(),
        samples: push,
        entity_bytes,
        budget: Some(Budget::Push {
            requests: 3,
            overhead: PUSH_OVERHEAD_BUDGET,
        }),
    });
    main.push(Row {
        n,
        op: "pull it on another device (B)".into(),
        samples: pull,
        entity_bytes: Vec::new(),
        budget: Some(Budget::Pull { requests: 2 }),
    });
    main.push(Row {
        n,
        op: "no-op sync (B)".into(),
        samples: noop,
        entity_bytes: Vec::new(),
        budget: Some(Budget::NoOp { requests: 1 }),
    });

    // Where a no-op's time goes, part by part: the remote part (a conditional GET of
    // meta.json), scanning the N files, reading every entity's local state, and hashing the
    // N entities (the planner compares content hashes).
    let (mut fetch, mut scan, mut states, mut hashing) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let (applied, s) = measure(&counted, || Ok(b.fetch()?.2))?;
        ensure!(applied == 0, "nothing new was expected");
        fetch.push(s);
        let (entities, s) = measure(&counted, || {
            Ok(deltasync_engine::collections::scan(&ws_b, &kind_of_collection)?.entities)
        })?;
        ensure!(
            entities.len() == n,
            "the scan found {} of {n} entities",
            entities.len()
        );
        scan.push(s);
        let (rows, s) = measure(&counted, || Ok(b.state().all_states()?.len()))?;
        ensure!(rows == n, "the local state has {rows} of {n} entities");
        states.push(s);
        let (_, s) = measure(&counted, || {
            Ok(entities
                .values()
                .map(deltasync_meta::content_hash)
                .filter(|h| h.is_empty())
                .count())
        })?;
        hashing.push(s);
    }
    setup.push(Row::plain(n, "no-op part: fetch only (B)", fetch));
    setup.push(Row::plain(n, "no-op part: scan the N files only (B)", scan));
    setup.push(Row::plain(
        n,
        "no-op part: read every entity's local state only (B)",
        states,
    ));
    setup.push(Row::plain(
        n,
        "no-op part: content hash of the N entities only (B)",
        hashing,
    ));

    // More commits without a compact (A only), then one more measured push: meta.json lists
    // every delta since the snapshot, so this one uploads more.
    let mut late = None;
    for k in reps..LATE_COMMIT {
        let (_, _, size) = edit((k * 7_919 + n / 3) % n, k)?;
        let s = push_one(&mut a)?;
        meta_sizes.push(meta_size()?);
        push_series.push((s.stats.bytes_up, size));
        late = Some((s, size));
    }
    if let Some((s, size)) = late {
        progress("push after more commits", s.time);
        let after_push = main
            .iter()
            .position(|r| r.op.starts_with("push one"))
            .map_or(main.len(), |i| i + 1);
        main.insert(
            after_push,
            Row {
                n,
                op: format!("push, {LATE_COMMIT}th commit since the last compact (A)"),
                samples: vec![s],
                entity_bytes: vec![size],
                budget: Some(Budget::Push {
                    requests: 3,
                    overhead: PUSH_OVERHEAD_BUDGET,
                }),
            },
        );
    }

    // The whole-file baseline: the dataset (A's files as they are now) as one document,
    // uploaded per change, downloaded per pull.
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        all.push(serde_json::from_slice::<Value>(&std::fs::read(
            task_path(&ws_a, &task_id(i)),
        )?)?);
    }
    let whole = serde_json::to_vec(&Value::Array(all))?;
    let whole_path = "whole-file/tasks.json";
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (_, s) = measure(&counted, || {
            Ok(remote.put(whole_path, &whole, &PutMode::Overwrite)?)
        })?;
        up.push(s);
        let (got, s) = measure(&counted, || Ok(remote.get(whole_path, None)?))?;
        ensure!(
            matches!(&got, GetResult::Found { body, .. } if body.len() == whole.len()),
            "the baseline document did not come back whole"
        );
        down.push(s);
    }
    progress("whole-file upload (median)", median(&up));
    main.push(Row::plain(
        n,
        "baseline: upload the whole dataset (per change)",
        up,
    ));
    main.push(Row::plain(
        n,
        "baseline: download the whole dataset (per pull)",
        down,
    ));

    let started = Instant::now();
    drop((a, b));
    progress("closed both engines", started.elapsed());
    let started = Instant::now();
    if args.keep {
        eprintln!("  kept {}", scratch.keep().display());
    } else {
        scratch.close()?;
    }
    progress("removed the folders", started.elapsed());
    Ok(Run {
        remote: kind,
        n,
        dataset_bytes,
        whole_bytes: whole.len() as u64,
        main,
        setup,
        meta_sizes,
        push_series,
        probe_record_bytes,
        peak_rss: if rss_known { peak_rss() } else { None },
    })
}

/// The median wall time of some samples.
fn median(samples: &[Sample]) -> Duration {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The median CPU time of some samples, when known.
fn median_cpu(samples: &[Sample]) -> Option<Duration> {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.cpu).collect::<Option<_>>()?;
    times.sort();
    times.get(times.len() / 2).copied()
}

/// `1000` → `1k`.
fn size_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The file system holding `path`, from `/proc/mounts` (Linux): (mount point, type, device).
fn filesystem_of(path: &Path) -> Option<(String, String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (dev, mnt, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt)
                .then(|| (mnt.to_string(), fs.to_string(), dev.to_string()))
        })
        .max_by_key(|(mnt, _, _)| mnt.len())
}

/// A table row of cells.
fn table_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// The rows of a table.
fn rows_table(out: &mut String, runs: &[Run], pick: impl Fn(&Run) -> &[Row], budgets: bool) {
    let mut header: Vec<String> = [
        "remote",
        "N",
        "operation",
        "requests",
        "by kind",
        "bytes up",
        "bytes down",
        "wall time",
        "CPU time",
    ]
    .map(String::from)
    .to_vec();
    if budgets {
        header.push("budget".into());
    }
    table_row(out, &header);
    table_row(out, &vec!["---".to_string(); header.len()]);
    for run in runs {
        for row in pick(run) {
            let worst = row
                .samples
                .iter()
                .max_by_key(|s| (s.stats.requests(), s.stats.bytes_up + s.stats.bytes_down))
                .map(|s| s.stats)
                .unwrap_or_default();
            let mut cells = vec![
                run.remote.label().to_string(),
                size_label(row.n),
                row.op.to_string(),
                row.max(RequestStats::requests).to_string(),
                breakdown(&worst),
                thousands(row.max(|s| s.bytes_up)),
                thousands(row.max(|s| s.bytes_down)),
                time_text(&row.samples),
                median_cpu(&row.samples).map_or_else(|| "—".into(), fmt_time),
            ];
            if budgets {
                cells.push(row.budget_text());
            }
            table_row(out, &cells);
        }
    }
}

/// The Markdown report.
fn report(runs: &[Run], args: &Args) -> String {
    let mut out = String::new();
    let fs = match filesystem_of(&args.workdir) {
        Some((mnt, fs, dev)) => format!("`{fs}` on `{dev}`, mounted at `{mnt}`"),
        None => "file system unknown".into(),
    };
    let _ = writeln!(
        out,
        "Workspaces and the folder remote were created under `{}` ({fs}), page cache warm. \
         Push, pull, no-op and the baseline were repeated {} times per N (a different entity \
         edited each time); requests and bytes are the largest of the repetitions, time the \
         median. Import, compact and bootstrap ran once per N. Every time is the wall time of \
         the whole call: a sync includes scanning the local folder and the local state. CPU \
         time is the process's, all threads; the rest of the wall time is waiting, mostly for \
         the disk (or for a core, when the machine is busy). Peak RSS is the benchmark \
         process's peak resident memory during one N (both devices' engines live in it).\n",
        args.workdir.display(),
        args.reps
    );
    let _ = writeln!(out, "### Data sets\n");
    table_row(
        &mut out,
        &[
            "remote",
            "N",
            "entity files (bytes)",
            "mean entity (bytes)",
            "whole-file document (bytes, compact JSON)",
            "peak RSS of the run",
        ]
        .map(String::from),
    );
    table_row(&mut out, &vec!["---".to_string(); 6]);
    for run in runs {
        table_row(
            &mut out,
            &[
                run.remote.label().to_string(),
                size_label(run.n),
                thousands(run.dataset_bytes),
                thousands(run.dataset_bytes / run.n as u64),
                thousands(run.whole_bytes),
                run.peak_rss
                    .map_or_else(|| "—".into(), |b| format!("{} MiB", b.div_ceil(1 << 20))),
            ],
        );
    }
    let _ = writeln!(
        out,
        "\n### Per change: push, pull, no-op, bootstrap, baseline\n"
    );
    rows_table(&mut out, runs, |r| &r.main, true);
    let _ = writeln!(out, "\n### Setup, and where a no-op's time goes\n");
    rows_table(&mut out, runs, |r| &r.setup, false);

    let _ = writeln!(out, "\n### Budgets\n");
    let mut header = vec!["budget".to_string()];
    for run in runs {
        header.push(format!("{} {}", run.remote.label(), size_label(run.n)));
    }
    table_row(&mut out, &header);
    table_row(&mut out, &vec!["---".to_string(); header.len()]);
    // Each line: its name, the row it reads (by operation prefix), and the value with its
    // verdict for one run.
    type Check<'a> = &'a dyn Fn(&Run, &Row) -> Option<(String, bool)>;
    let overhead = |r: &Row, less: u64| {
        r.samples
            .iter()
            .zip(&r.entity_bytes)
            .map(|(s, e)| s.stats.bytes_up.saturating_sub(*e).saturating_sub(less))
            .max()
            .unwrap_or(0)
    };
    let push_bytes = |_: &Run, r: &Row| {
        let over = overhead(r, 0);
        Some((
            format!("entity + {}", thousands(over)),
            over <= PUSH_OVERHEAD_BUDGET,
        ))
    };
    let push_bytes_without_probe = |run: &Run, r: &Row| {
        let over = overhead(r, run.probe_record_bytes?);
        Some((
            format!("entity + {}", thousands(over)),
            over <= PUSH_OVERHEAD_BUDGET,
        ))
    };
    let requests = |limit: u64| {
        move |_: &Run, r: &Row| {
            let most = r.max(RequestStats::requests);
            Some((most.to_string(), most <= limit))
        }
    };
    let (push_requests, pull_requests, noop_requests) = (requests(3), requests(2), requests(1));
    let noop_bytes = |_: &Run, r: &Row| {
        let most = r.max(|s| s.bytes_up + s.bytes_down);
        Some((thousands(most), most == 0))
    };
    let late = format!("push ≤ entity + 2 KB up, {LATE_COMMIT}th commit after a compact");
    let mut lines: Vec<(&str, &str, Check)> = vec![
        ("push ≤ 3 requests", "push one", &push_requests),
        (
            "push ≤ entity + 2 KB up (first commits after a compact)",
            "push one",
            &push_bytes,
        ),
        (&late, "push, ", &push_bytes),
    ];
    if runs.iter().any(|r| r.probe_record_bytes.is_some()) {
        lines.push((
            "the same, first commits, without the probe report in meta.json (measured − its size)",
            "push one",
            &push_bytes_without_probe,
        ));
    }
    lines.extend([
        ("pull ≤ 2 requests", "pull", &pull_requests as Check),
        ("no-op ≤ 1 request", "no-op", &noop_requests),
        ("no-op 0 body bytes", "no-op", &noop_bytes),
    ]);
    for (name, prefix, check) in lines {
        let mut cells = vec![name.to_string()];
        for run in runs {
            let cell = run
                .main
                .iter()
                .find(|r| r.op.starts_with(prefix))
                .and_then(|row| check(run, row));
            cells.push(match cell {
                Some((value, true)) => format!("{value} — met"),
                Some((value, false)) => format!("{value} — **not met**"),
                None => "—".into(),
            });
        }
        table_row(&mut out, &cells);
    }
    let _ = writeln!(out);
    for run in runs {
        if let (Some(push), Some(base)) = (
            run.main.iter().find(|r| r.op.starts_with("push one")),
            run.main
                .iter()
                .find(|r| r.op.starts_with("baseline: upload")),
        ) {
            let ours = push.max(|s| s.bytes_up).max(1);
            let theirs = base.max(|s| s.bytes_up);
            let _ = writeln!(
                out,
                "- {} {}: one change uploads at most {} bytes (over the first {} commits after \
                 a compact) instead of {} ({}× less).",
                run.remote.label(),
                size_label(run.n),
                thousands(ours),
                push.samples.len(),
                thousands(theirs),
                thousands(theirs / ours)
            );
        }
        meta_growth(&mut out, run);
    }
    out
}

/// The note on meta.json's growth between compactions, and where the push budget breaks.
fn meta_growth(out: &mut String, run: &Run) {
    let (Some(&first), Some(&last)) = (run.meta_sizes.first(), run.meta_sizes.last()) else {
        return;
    };
    let commits = run.meta_sizes.len() as u64;
    if commits < 2 {
        return;
    }
    let per_commit = last.saturating_sub(first) / (commits - 1);
    let _ = write!(
        out,
        "- {} {}: every push uploads the whole meta.json: {} bytes one commit after the \
         compact, {} bytes {commits} commits after it (+{} bytes per commit).",
        run.remote.label(),
        size_label(run.n),
        thousands(first),
        thousands(last),
        thousands(per_commit)
    );
    if let Some(bytes) = run.probe_record_bytes {
        let _ = write!(
            out,
            " Of it, {} bytes are the server probe's report that `deltasync init` records \
             (`server`), uploaded again with every push.",
            thousands(bytes)
        );
    }
    // The last commit after the compact (1-based) whose push stayed within the budget, with
    // `less` bytes taken off each upload.
    let within = |less: u64| {
        run.push_series
            .iter()
            .take_while(|(up, entity)| up.saturating_sub(less) <= entity + PUSH_OVERHEAD_BUDGET)
            .count()
    };
    let verdict = |k: usize| match k {
        0 => "none of them".to_string(),
        k if k == run.push_series.len() => format!("all {k}"),
        k => format!("the first {k}"),
    };
    let _ = write!(
        out,
        " Of the {} pushes measured after the compact, {} stayed within entity + {} bytes",
        run.push_series.len(),
        verdict(within(0)),
        thousands(PUSH_OVERHEAD_BUDGET)
    );
    match run.probe_record_bytes {
        Some(bytes) => {
            let _ = write!(
                out,
                "; without the probe report it would have been {}.",
                verdict(within(bytes))
            );
        }
        None => {
            let _ = write!(out, ".");
        }
    }
    let _ = writeln!(out);
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    std::fs::create_dir_all(&args.workdir)?;
    let mut runs = Vec::new();
    let started = Instant::now();
    for &kind in &args.remotes {
        for &n in &args.sizes {
            eprintln!("[{} N={n}] starting", kind.label());
            let t = Instant::now();
            runs.push(run(kind, n, &args)?);
            eprintln!("[{} N={n}] done in {}", kind.label(), fmt_time(t.elapsed()));
        }
    }
    print!("{}", report(&runs, &args));
    eprintln!("all done in {}", fmt_time(started.elapsed()));
    Ok(())
}
