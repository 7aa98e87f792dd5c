//! N devices × M commits racing through one real server, then converging: the concurrency
//! part of the matrix (`matrix.rs`), with what the racing devices did.

use super::*;

/// What the racing devices did.
#[derive(Default)]
pub(super) struct Concurrency {
    pub(super) racing: Duration,
    pub(super) converging: Duration,
    /// The errors of syncs that exited 3 (tried again).
    pub(super) temporary: Vec<String>,
    /// Commit rounds lost to another device and retried within one sync.
    pub(super) engine_retries: u64,
    /// Commits another device's write overwrote, made again.
    pub(super) recommitted: u64,
}

fn token(dev: usize, i: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tok-{dev}-{i}-{nanos:x}")
}

/// One racing device: `commits` times, a new entity with a unique token and its own field of
/// the shared entity, then a sync (exit 3 is retried).
fn race(dev: &Dev, d: usize, commits: usize) -> Result<(Concurrency, Vec<String>), String> {
    let mut run = Concurrency::default();
    let mut tokens = Vec::with_capacity(commits);
    for i in 0..commits {
        let tok = token(d, i);
        dev.write(
            &format!("tasks/d{d}-{i}.json"),
            &json!({"dev": d, "i": i, "token": tok}),
        );
        tokens.push(tok);
        let mut shared = dev
            .read("tasks/shared.json")
            .ok_or_else(|| format!("{}: tasks/shared.json is gone (commit {i})", dev.name))?;
        shared[format!("f{d}")] = json!(i);
        dev.write("tasks/shared.json", &shared);
        let (r, report, temporary) = dev.sync_json();
        if r.code != Some(EXIT_OK) {
            return Err(format!(
                "{}: sync after commit {i} exited {:?} ({} runs exited 3 before: {temporary:?}):\n{r}",
                dev.name,
                r.code,
                temporary.len()
            ));
        }
        // A run that exited 3 may have made the commit already (its answer lost, or a read
        // after the meta write failed): this run then finishes it from the journal and
        // commits nothing new. The convergence check below still wants every token.
        let committed_before = !temporary.is_empty();
        run.temporary.extend(temporary);
        if !report["committed"].is_u64() && !committed_before {
            return Err(format!(
                "{}: commit {i} was not committed: {report}",
                dev.name
            ));
        }
        run.engine_retries += report["retries"].as_u64().unwrap_or(0);
        run.recommitted = run
            .recommitted
            .max(report["recommitted"].as_u64().unwrap_or(0));
    }
    Ok((run, tokens))
}

/// [`devices_for`] processes × `commits` commits on one remote, concurrently; then every device
/// syncs until none commits, and every device — and a fresh one — must hold every entity with
/// its token, each device's last value of its own field of the shared entity, and the same
/// data.
pub(super) fn concurrent_devices(m: &Matrix, commits: usize) -> Concurrency {
    let k = m.kind();
    let devices = devices_for(k);
    let devs: Vec<Dev> = (0..devices)
        .map(|d| m.init("concurrency", &format!("d{d}")))
        .collect();
    let classes: Vec<String> = devs
        .iter()
        .map(|dev| dev.config()["server"]["cas"].to_string())
        .collect();
    eprintln!("=== {k}: the racing devices' init recorded server.cas = {classes:?}");
    devs[0].write("tasks/shared.json", &json!({"name": "shared"}));
    for dev in &devs {
        dev.sync_expect(&[EXIT_OK]);
        assert!(dev.path("tasks/shared.json").is_file(), "{}", dev.name);
    }

    let t = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = devs
            .iter()
            .enumerate()
            .map(|(d, dev)| s.spawn(move || race(dev, d, commits)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let racing = t.elapsed();
    let mut stats = Concurrency {
        racing,
        ..Concurrency::default()
    };
    let mut tokens = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((run, t)) => {
                stats.temporary.extend(run.temporary);
                stats.engine_retries += run.engine_retries;
                stats.recommitted += run.recommitted;
                tokens.push(t);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{k}: racing devices failed after {:.1} s:\n{}",
        racing.as_secs_f64(),
        failures.join("\n\n")
    );

    // Converge: passes over all devices until a pass in which nobody commits.
    let t = Instant::now();
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes <= 10, "{k}: still committing after 10 passes");
        let mut committed = false;
        for dev in &devs {
            let report = dev.sync_expect(&[EXIT_OK]);
            committed |= report["committed"].is_u64();
        }
        if !committed {
            break;
        }
    }
    stats.converging = t.elapsed();

    // A device that joins now reads everything from the remote alone.
    let fresh = m.init("concurrency", "fresh");
    fresh.sync_expect(&[EXIT_OK]);

    let expected_shared = {
        let mut v = json!({"name": "shared"});
        for d in 0..devices {
            v[format!("f{d}")] = json!(commits - 1);
        }
        v
    };
    let reference = devs[0].tasks();
    for dev in devs.iter().chain([&fresh]) {
        let data = dev.tasks();
        let mut missing = Vec::new();
        for (d, toks) in tokens.iter().enumerate() {
            for (i, tok) in toks.iter().enumerate() {
                let name = format!("d{d}-{i}.json");
                let want = json!({"dev": d, "i": i, "token": tok});
                if data.get(&name) != Some(&want) {
                    missing.push(format!("{name}: {:?}", data.get(&name)));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{}: {} of {} entities missing or wrong: {:?}",
            dev.name,
            missing.len(),
            devices * commits,
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            data.get("shared.json"),
            Some(&expected_shared),
            "{}: the shared entity",
            dev.name
        );
        assert_eq!(
            data.len(),
            devices * commits + 1,
            "{}: unexpected entities",
            dev.name
        );
        assert!(
            data == reference,
            "{}: holds other data than {}",
            dev.name,
            devs[0].name
        );
        let receipts = dev.receipts();
        assert!(
            receipts.is_empty(),
            "{}: conflicts where every device wrote only its own fields: {receipts:?}",
            dev.name
        );
    }
    let heads: Vec<Value> = devs
        .iter()
        .chain([&fresh])
        .map(|dev| dev.ok(&["status", "--json"]).json()["head"].clone())
        .collect();
    assert!(
        heads.windows(2).all(|w| w[0] == w[1]),
        "{k}: heads differ: {heads:?}"
    );
    eprintln!(
        "=== {k}: {devices} × {commits} commits raced in {:.1} s, converged in {passes} passes \
         ({:.1} s); head {}",
        racing.as_secs_f64(),
        stats.converging.as_secs_f64(),
        heads[0]
    );
    stats
}
