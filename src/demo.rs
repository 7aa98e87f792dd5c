//! `deltasync demo`: two devices and a local-folder remote in a temporary folder.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use deltasync_engine::config::{CollectionConfig, Config};
use deltasync_engine::{Engine, SyncOptions};
use deltasync_remote::{Counting, LocalFolder, Remote};
use serde_json::{Value, json};

fn task(i: usize) -> Value {
    json!({
        "id": format!("task-{i:05}"),
        "title": format!("Task number {i}: water the plants and call the plumber"),
        "done": false,
        "priority": i % 4,
        "project": format!("project-{}", i % 17),
        "notes": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
        "tags": ["home", "errand"],
        "createdAt": 1_763_000_000_000u64 + i as u64,
    })
}

fn write_task(ws: &Path, id: &str, v: &Value) -> Result<()> {
    let path = ws.join("tasks").join(format!("{id}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn read_task(ws: &Path, id: &str) -> Result<Value> {
    let path = ws.join("tasks").join(format!("{id}.json"));
    Ok(serde_json::from_slice(&std::fs::read(&path)?)?)
}

/// Runs the demonstration with `n` synthetic tasks.
pub fn run(n: usize) -> Result<()> {
    ensure!(n >= 10, "the demo needs at least 10 entities");
    let tmp = tempfile::tempdir()?;
    let remote_dir = tmp.path().join("remote");
    let (ws_a, ws_b) = (tmp.path().join("laptop"), tmp.path().join("phone"));
    println!("deltasync demo in {}", tmp.path().display());
    println!("  remote: a local folder ({})", remote_dir.display());
    println!("  devices: laptop and phone, each with a `tasks` folder of JSON files\n");

    let counted = Arc::new(Counting::new(LocalFolder::new(&remote_dir)?));
    let remote: Arc<dyn Remote> = counted.clone();
    let mut config: Config = toml::from_str(&format!(
        "remote = {}",
        toml::Value::String(remote_dir.display().to_string())
    ))?;
    config
        .collections
        .insert("tasks".into(), CollectionConfig::parse_spec("dir:tasks")?);

    for ws in [&ws_a, &ws_b] {
        std::fs::create_dir_all(ws.join("tasks"))?;
    }
    let mut total_bytes = 0u64;
    for i in 0..n {
        let t = task(i);
        total_bytes += serde_json::to_vec_pretty(&t)?.len() as u64;
        write_task(&ws_a, &format!("task-{i:05}"), &t)?;
    }

    let mut a = Engine::with_remote(
        &ws_a,
        Config {
            device: "laptop".into(),
            ..config.clone()
        },
        remote.clone(),
    )?;
    let mut b = Engine::with_remote(
        &ws_b,
        Config {
            device: "phone".into(),
            ..config
        },
        remote,
    )?;
    a.init_remote(None)?;
    let r = a.sync(&SyncOptions::default())?;
    println!(
        "1. laptop pushes {n} tasks ({total_bytes} bytes): commit {:?}",
        r.committed.unwrap_or(0)
    );
    // Fold the import into the snapshot, as `compact` does now and then: meta.json stays small.
    a.compact()?;
    b.sync(&SyncOptions::default())?;
    println!(
        "   phone syncs and now has {} task files\n",
        std::fs::read_dir(ws_b.join("tasks"))?.count()
    );

    // Concurrent edits of different fields of one entity.
    let id = "task-00007";
    let mut on_a = read_task(&ws_a, id)?;
    on_a["title"] = json!("Water the plants (and the orchid)");
    write_task(&ws_a, id, &on_a)?;
    let mut on_b = read_task(&ws_b, id)?;
    on_b["done"] = json!(true);
    write_task(&ws_b, id, &on_b)?;
    println!("2. offline, laptop edits the title of {id} and phone marks it done");
    counted.reset();
    a.sync(&SyncOptions::default())?;
    let push = counted.stats();
    b.sync(&SyncOptions::default())?;
    a.sync(&SyncOptions::default())?;
    let (fa, fb) = (read_task(&ws_a, id)?, read_task(&ws_b, id)?);
    ensure!(fa == fb, "devices differ after sync: {fa} vs {fb}");
    ensure!(
        fa["done"] == json!(true) && fa["title"] == json!("Water the plants (and the orchid)"),
        "merge lost an edit: {fa}"
    );
    println!(
        "   after syncing both: title = {}, done = {} on both devices (no conflict)\n",
        fa["title"], fa["done"]
    );

    // A true conflict: the same field, two values.
    let id = "task-00008";
    let mut on_a = read_task(&ws_a, id)?;
    on_a["priority"] = json!(1);
    write_task(&ws_a, id, &on_a)?;
    let mut on_b = read_task(&ws_b, id)?;
    on_b["priority"] = json!(3);
    write_task(&ws_b, id, &on_b)?;
    println!("3. offline, laptop sets priority of {id} to 1 and phone sets it to 3");
    a.sync(&SyncOptions::default())?;
    let rb = b.sync(&SyncOptions::default())?;
    a.sync(&SyncOptions::default())?;
    let (fa, fb) = (read_task(&ws_a, id)?, read_task(&ws_b, id)?);
    ensure!(fa == fb, "devices differ after sync");
    let receipt = rb
        .conflicts
        .first()
        .context("expected a conflict receipt")?;
    println!(
        "   one value wins everywhere (priority = {}); the other ({}) is kept in receipt {}",
        fa["priority"], receipt.lost, receipt.id
    );
    println!(
        "   both devices list it: laptop {} open, phone {} open (`deltasync conflicts`)\n",
        a.conflicts()?.iter().filter(|c| !c.resolved).count(),
        b.conflicts()?.iter().filter(|c| !c.resolved).count()
    );

    println!("4. what the edit of one task cost the laptop's push:");
    println!(
        "   {} requests, {} bytes up, {} bytes down",
        push.requests(),
        push.bytes_up,
        push.bytes_down
    );
    println!(
        "   uploading the whole dataset instead: {} bytes ({}x more)",
        total_bytes,
        total_bytes / push.bytes_up.max(1)
    );
    Ok(())
}
