//! Two workspaces — two devices — kept in step through one WebDAV folder, opened the way the
//! `deltasync` binary opens them ([`Workspace::open`]).
//!
//! ```sh
//! DELTASYNC_PASSWORD=secret cargo run -p deltasync-engine --example two_workspaces -- \
//!     https://cloud.example.org/remote.php/dav/files/me/notes me
//! ```
//!
//! The URL's folder must exist and be empty (or hold a deltasync remote already). The
//! password comes from `DELTASYNC_PASSWORD`, as the configuration below says by default; an
//! app with its own password store implements [`deltasync_engine::Credentials`] instead.

use std::path::Path;

use deltasync_engine::workspace::{ConfiguredCredentials, settings_of};
use deltasync_engine::{SyncOptions, Workspace};

/// Writes a workspace's `deltasync.toml`: one `dir` collection of tasks on `url`, the
/// password from `password_command` if given, else from `DELTASYNC_PASSWORD`.
fn configure(
    root: &Path,
    url: &str,
    user: &str,
    password_command: Option<&str>,
    device: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("tasks"))?;
    let command = password_command
        .map(|c| format!("password_command = {c:?}\n"))
        .unwrap_or_default();
    let toml = format!(
        "remote = {url:?}\ndevice = {device:?}\n\n[auth]\nuser = {user:?}\n{command}\
         allow_insecure_http = true\n\n[collections.tasks]\nkind = \"dir\"\npath = \"tasks\"\n"
    );
    std::fs::write(root.join("deltasync.toml"), toml)
}

/// Creates a task on device A (in `a`), syncs A then B (in `b`), and returns what B holds.
pub fn run(
    url: &str,
    user: &str,
    password_command: Option<&str>,
    a: &Path,
    b: &Path,
) -> Result<String, Box<dyn std::error::Error>> {
    configure(a, url, user, password_command, "laptop")?;
    configure(b, url, user, password_command, "phone")?;

    let mut laptop = Workspace::open(a, &ConfiguredCredentials)?;
    // The first device probes the server once (`deltasync init` does) and records the verdict
    // in meta.json, where every other device finds it.
    let report = laptop.remote().probe()?;
    laptop.init_remote(Some(report.summary_json()))?;
    println!("server: {}", settings_of(&report).cas);

    std::fs::write(
        a.join("tasks/milk.json"),
        r#"{"title": "buy milk", "done": false}"#,
    )?;
    let pushed = laptop.sync(&SyncOptions::default())?;
    println!("laptop committed {:?}", pushed.committed);

    let mut phone = Workspace::open(b, &ConfiguredCredentials)?;
    if let Some(verdict) = phone.remote().recorded_verdict()? {
        phone.remote().assume(&verdict)?;
    }
    let pulled = phone.sync(&SyncOptions::default())?;
    println!("phone is at head {}", pulled.head);
    Ok(std::fs::read_to_string(b.join("tasks/milk.json"))?)
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(user)) = (args.next(), args.next()) else {
        eprintln!("usage: two_workspaces WEBDAV_URL USER   (password in DELTASYNC_PASSWORD)");
        std::process::exit(2);
    };
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let task = run(&url, &user, None, a.path(), b.path())?;
    println!("the phone's tasks/milk.json: {task}");
    Ok(())
}
