//! Requests, bytes and time of deltasync's operations, against the whole-file baseline.
//!
//! For each size N: device A gets N synthetic task files (`tasks/<id>.json`, about 300 bytes
//! each), imports them (init + first sync), edits one and syncs (a push right after the import,
//! as a user runs it, no compaction), then compacts (the import is folded into the snapshot,
//! the steady state); device B bootstraps from the remote. Then, `--reps` times, A
//! edits one task and syncs (push), B syncs (pull) and syncs again (no-op). Every remote call
//! goes through [`Counting`], reset around each measured operation. The whole-file baseline is
//! one document holding every task, written to (and read from) the same remote.
//!
//! The Markdown tables go to stdout, progress to stderr. `scripts/bench` runs this in release
//! mode and writes `BENCHMARKS.md`. Here: the command line and the measured run; the remotes,
//! the data, the measuring and the report are in the modules beside this file.
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

mod data;
mod measure;
mod remote;
mod report;

use data::*;
use measure::*;
use remote::*;
use report::*;

/// The collection measured: a `dir` collection in `tasks/`.
const COLLECTION: &str = "tasks";

/// Push budget, issue 12's goal: at most this many bytes uploaded on top of the entity itself,
/// at any commit count after `init` + first `sync`.
const PUSH_OVERHEAD_BUDGET: u64 = 1024;

/// The later push measured: this many commits since the last compact (in format 1 meta.json
/// listed every delta since the snapshot, so a push's upload grew with this number; in
/// format 2 it names only the newest delta).
const LATE_COMMIT: usize = 20;

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
    /// Size of meta.json after the push right after the import (no compaction).
    meta_after_import: u64,
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
    // One change right after the import, as a user runs it (`init`, `sync`, edit, `sync`):
    // no compaction yet, so the import's delta is the newest link in meta.json.
    let (_, _, size) = edit(n / 2, 0)?;
    let s = push_one(&mut a)?;
    progress("push right after the import", s.time);
    let first_push = Row {
        n,
        op: "push right after the first import, no compaction (A)".into(),
        samples: vec![s],
        entity_bytes: vec![size],
        budget: Some(Budget::Push {
            requests: 3,
            overhead: PUSH_OVERHEAD_BUDGET,
        }),
    };
    let meta_after_import = meta_size()?;
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
    main.push(first_push);

    // Per-change costs: A edits a different task each time, pushes; B pulls, then syncs again.
    let (mut push, mut pull, mut noop, mut entity_bytes, mut meta_sizes, mut push_series) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
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

    // More commits without a compact (A only), then one more measured push: in format 1
    // meta.json listed every delta since the snapshot; in format 2 it names only the newest.
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
        meta_after_import,
        push_series,
        probe_record_bytes,
        peak_rss: if rss_known { peak_rss() } else { None },
    })
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
    // scripts/bench gathers issue 12's goal rows from every benchmark script in one file.
    if let (Some(path), Some(line)) = (
        std::env::var_os("DELTASYNC_GOALS"),
        report::push_goal_line(&runs),
    ) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    eprintln!("all done in {}", fmt_time(started.elapsed()));
    Ok(())
}
