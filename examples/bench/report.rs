//! The Markdown report: number and time formatting, the tables and the notes under them.

use super::*;

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(v: u64) -> String {
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
pub(crate) fn breakdown(st: &RequestStats) -> String {
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
pub(crate) fn fmt_time(d: Duration) -> String {
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
pub(crate) fn time_text(samples: &[Sample]) -> String {
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

/// `1000` → `1k`.
pub(crate) fn size_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The file system holding `path`, from `/proc/mounts` (Linux): (mount point, type, device).
pub(crate) fn filesystem_of(path: &Path) -> Option<(String, String, String)> {
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
pub(crate) fn table_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// The rows of a table.
pub(crate) fn rows_table(
    out: &mut String,
    runs: &[Run],
    pick: impl Fn(&Run) -> &[Row],
    budgets: bool,
) {
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
pub(crate) fn report(runs: &[Run], args: &Args) -> String {
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
    let late = format!("push ≤ entity + 1 KB up, {LATE_COMMIT}th commit after a compact");
    let mut lines: Vec<(&str, &str, Check)> = vec![
        ("push ≤ 3 requests", "push one", &push_requests),
        (
            "push ≤ 3 requests, right after the first import (no compaction)",
            "push right after",
            &push_requests,
        ),
        (
            "push ≤ entity + 1 KB up (issue 12), right after the first import (no compaction)",
            "push right after",
            &push_bytes,
        ),
        (
            "push ≤ entity + 1 KB up, first commits after a compact",
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

/// The note on meta.json's size across commits (format 2: constant but for its padding), and
/// whether every push kept the budget.
pub(crate) fn meta_growth(out: &mut String, run: &Run) {
    let (Some(&first), Some(&last)) = (run.meta_sizes.first(), run.meta_sizes.last()) else {
        return;
    };
    let commits = run.meta_sizes.len() as u64;
    if commits < 2 {
        return;
    }
    let (least, most) = (
        run.meta_sizes.iter().copied().min().unwrap_or(first),
        run.meta_sizes.iter().copied().max().unwrap_or(last),
    );
    let _ = write!(
        out,
        "- {} {}: every push uploads the whole meta.json, which names only the newest delta: \
         {} bytes after the push right after the import, {} bytes one commit after the \
         compact, {} bytes {commits} commits after it ({}–{} bytes over those {commits}: \
         the padding to the commit count modulo 32, no growth per commit).",
        run.remote.label(),
        size_label(run.n),
        thousands(run.meta_after_import),
        thousands(first),
        thousands(last),
        thousands(least),
        thousands(most)
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

/// Issue 12's goal row for the bytes of a push, as one line for the file `scripts/lib/goals.py` writes
/// (tab-separated: row, measured, bound, met, section): the largest push of every run (right
/// after the import, after a compact, the later commits), beside the whole-file upload of the
/// same run.
pub(crate) fn push_goal_line(runs: &[Run]) -> Option<String> {
    let mut worst: Option<(u64, String)> = None;
    for run in runs {
        for row in run.main.iter().filter(|r| r.op.starts_with("push")) {
            for (s, e) in row.samples.iter().zip(&row.entity_bytes) {
                let over = s.stats.bytes_up.saturating_sub(*e);
                if worst.as_ref().is_none_or(|(w, _)| over > *w) {
                    let at = format!(
                        "{} at {}, \"{}\"; whole-file upload {} B",
                        run.remote.label(),
                        size_label(run.n),
                        row.op,
                        thousands(run.whole_bytes)
                    );
                    worst = Some((over, at));
                }
            }
        }
    }
    let (over, at) = worst?;
    let pushes: usize = runs
        .iter()
        .flat_map(|r| r.main.iter().filter(|r| r.op.starts_with("push")))
        .map(|r| r.samples.len())
        .sum();
    Some(format!(
        "bytes up for one change, any time after `init` + first `sync`, at any commit count\t\
         largest of {pushes} pushes: entity + {} B ({at})\t≤ entity + {} B\t{}\t\
         budget tables",
        thousands(over),
        thousands(PUSH_OVERHEAD_BUDGET),
        if over <= PUSH_OVERHEAD_BUDGET {
            "yes"
        } else {
            "no"
        }
    ))
}
