//! The `deltasync` command: a thin layer of argument parsing and output over
//! [`deltasync_engine`].
#![forbid(unsafe_code)]

mod auth;
mod cli;
mod cmd_maint;
mod cmd_sync;
mod demo;
mod diff;
mod generated;
mod hints;
mod names;
mod output;
mod remote;
mod watch;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use deltasync_engine::config::{CollectionConfig, Config};
use deltasync_engine::{Engine, EngineError};

use cli::{Cli, Command};
pub(crate) use cli::{ConflictAction, Take};

/// mimalloc gives freed memory back to the system soon after a sync (glibc's malloc kept a
/// watcher as large as its largest sync); figures in `docs/architecture.md`. It is built
/// without transparent huge pages (feature `no_thp`): with them its memory is backed 2 MiB at
/// a time, which a watcher sitting idle between syncs pays for (an idle watcher over 100,000
/// entities held 30.6 MiB with them and 20.4 MiB without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (documented in the README).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error (the message says which).
    pub const ERROR: u8 = 1;
    /// Bad usage (unknown command or option).
    pub const USAGE: u8 = 2;
    /// A temporary failure (network, server busy, other devices committing): try again.
    pub const TEMPORARY: u8 = 3;
    /// Refused for safety (mass delete, newer format): nothing was changed.
    pub const REFUSED: u8 = 4;
    /// Done, but this run needs a person: it held back an unreadable file, or recorded a new
    /// conflict (receipts recorded by earlier runs do not count).
    pub const ATTENTION: u8 = 5;
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(matches!(cli.command, Command::Watch { .. }));
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            if let Some(hint) = hints::of(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// `deltasync log | head`: when the reader of standard output goes away, stop quietly (exit
/// 0), as Unix tools do, instead of panicking with "failed printing to stdout: Broken pipe".
/// Nothing is in flight then: output is printed after the work is done.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(exit::OK.into());
        }
        default(info);
    }));
}

/// Logs to stderr, filtered by `DELTASYNC_LOG`; by default warnings, and for the long-running
/// `watch` what it pushes and pulls too (`info`), without colours when stderr is no terminal
/// (journald).
fn init_logging(daemon: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("DELTASYNC_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The error and its causes, each cause once: library errors often repeat their source in
/// their own message, so a cause already contained in the text so far is skipped.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

pub(crate) fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<EngineError>() {
        Some(
            EngineError::MassDelete { .. }
            | EngineError::ReadOnly(_)
            | EngineError::RemoteBehind { .. }
            | EngineError::Store(deltasync_store::StoreError::Format {
                source: deltasync_meta::FormatError::TooNew { .. },
                ..
            }),
        ) => exit::REFUSED,
        Some(err) if err.is_temporary() => exit::TEMPORARY,
        _ if auth::is_temporary(e) => exit::TEMPORARY,
        _ => exit::ERROR,
    }
}

fn load(dir: &Path) -> Result<Config> {
    let file = dir.join(deltasync_engine::config::CONFIG_FILE);
    if !file.exists() {
        bail!(
            "{} is not a deltasync workspace: it has no {} (run `deltasync init` there first)",
            dir.display(),
            deltasync_engine::config::CONFIG_FILE
        );
    }
    // It is one: say what is wrong with its configuration (the file, line and column).
    Config::load(dir).context("the workspace's configuration is not valid; fix it and try again")
}

fn open(dir: &Path) -> Result<Engine> {
    Ok(remote::workspace(dir, load(dir)?)?.into_engine())
}

fn run(cli: Cli) -> Result<u8> {
    let dir = cli.dir;
    match cli.command {
        Command::Init {
            remote,
            device,
            collections,
            user,
            keyring,
            password_stdin,
            force,
        } => init(
            &dir,
            InitArgs {
                remote,
                device,
                specs: collections,
                user,
                keyring,
                password_stdin,
                force,
            },
        ),
        Command::Login {
            user,
            password_stdin,
            manual,
        } => auth::login(&dir, user, password_stdin || manual, password_stdin),
        Command::Logout => auth::logout(&dir),
        Command::Status { json } => {
            // status sends no request: it needs no password (the keyring may be locked).
            let config = load(&dir)?;
            let opened = remote::open_offline(&config)?;
            let engine = deltasync_engine::Workspace::with_opened(&dir, config, opened)?;
            let status = engine.status()?;
            let (kind, detail) = remote::credentials_source(engine.config());
            if json {
                let mut value = serde_json::to_value(&status)?;
                value["password_from"] = serde_json::json!({"kind": kind, "detail": detail});
                value["watcher"] = watch::status_json(&dir);
                output::json(&value)?;
            } else {
                output::status(&status, &names::Names::of(&engine), watch::last_error(&dir));
                match kind {
                    "keyring" => println!("password: system keyring ({detail})"),
                    "command" => println!("password: the command '{detail}'"),
                    "env" if detail == "AWS_ACCESS_KEY_ID" => println!(
                        "credentials: environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    ),
                    "env" => println!("password: environment variable ${detail}"),
                    "profile" => println!("credentials: AWS profile {detail}"),
                    _ => {}
                }
                watch::print_status(&dir);
            }
            Ok(exit::OK)
        }
        Command::Diff {
            collection,
            verbose,
            json,
        } => cmd_sync::diff(&dir, collection, verbose, json),
        Command::Sync {
            dry_run,
            allow_mass_delete,
            json,
        } => cmd_sync::sync(&dir, dry_run, allow_mass_delete, json),
        Command::Conflicts { action, json } => {
            cmd_sync::conflicts(&dir, action.unwrap_or(ConflictAction::List), json)
        }
        Command::Doctor { save, json } => doctor(&dir, save, json),
        Command::Unlock { force } => unlock(&dir, force),
        Command::Repair { dry_run, json } => cmd_maint::repair(&dir, dry_run, json),
        Command::Compact {
            dry_run,
            tombstone_days,
            orphan_grace,
            json,
        } => cmd_maint::compact(&dir, dry_run, tombstone_days, orphan_grace, json),
        Command::Verify {
            json,
            sample,
            deep,
            tolerance,
        } => cmd_maint::verify(&dir, json, sample, deep, tolerance),
        Command::Watch {
            poll,
            debounce,
            rescan,
            stop_grace,
        } => watch::run(
            &dir,
            watch::Options {
                poll,
                debounce,
                rescan,
                stop_grace,
            },
        ),
        Command::Get {
            collection,
            id,
            json,
        } => cmd_maint::get(&dir, &collection, &id, json),
        Command::List {
            collection,
            count,
            json,
        } => cmd_maint::list(&dir, &collection, count, json),
        Command::Update {
            collection,
            id,
            fields,
            json,
        } => cmd_maint::update(&dir, &collection, &id, &fields, json),
        Command::Delete {
            collection,
            id,
            force,
            json,
        } => cmd_maint::delete(&dir, &collection, &id, force, json),
        Command::Log { json } => cmd_maint::log(&dir, json),
        Command::History {
            collection,
            id,
            json,
        } => cmd_maint::history(&dir, &collection, &id, json),
        Command::Backup { output, json } => cmd_maint::backup(&dir, output, json),
        Command::Restore {
            file,
            at,
            dry_run,
            yes,
            json,
        } => cmd_maint::restore(&dir, file, at, dry_run, yes, json),
        Command::Demo { entities } => demo::run(entities).map(|_| exit::OK),
        Command::Completions { shell } => {
            generated::completions(<Cli as clap::CommandFactory>::command(), shell)
                .map(|_| exit::OK)
        }
        Command::Man { out_dir } => {
            generated::man(<Cli as clap::CommandFactory>::command(), out_dir.as_deref())
                .map(|_| exit::OK)
        }
    }
}

/// What `init` was given.
struct InitArgs {
    remote: String,
    device: Option<String>,
    specs: Vec<String>,
    user: Option<String>,
    keyring: bool,
    password_stdin: bool,
    force: bool,
}

fn init(dir: &Path, args: InitArgs) -> Result<u8> {
    let InitArgs {
        remote,
        device,
        specs,
        user,
        keyring,
        password_stdin,
        force,
    } = args;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(deltasync_engine::config::CONFIG_FILE);
    if path.exists() && !force {
        bail!(
            "{} exists already; use --force to overwrite it",
            path.display()
        );
    }
    let device = device.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "device".into())
    });
    let mut config: Config = toml::from_str(&format!("remote = {}", toml_string(&remote)))
        .context("building the configuration")?;
    config.device = device;
    config.auth.user = user;
    for spec in specs {
        let (name, rest) = spec
            .split_once('=')
            .with_context(|| format!("invalid --collection '{spec}': expected NAME=dir:PATH or NAME=file:PATH[#POINTER][@ID_FIELD]"))?;
        config
            .collections
            .insert(name.to_string(), CollectionConfig::parse_spec(rest)?);
    }
    let mut new_password = None;
    let mut keyring_entry = None;
    if keyring {
        if !remote::has_credentials(&config.remote) {
            bail!(
                "--keyring: the remote {} is a folder, it needs no password",
                config.remote
            );
        }
        config.auth.keyring = true;
        config.validate()?;
        let entry = remote::keyring_of(&config)?;
        new_password = auth::password_for_init(&entry, password_stdin)?;
        keyring_entry = Some(entry);
    }
    config.validate()?;
    let opened = remote::open_with(&config, new_password.clone())?;
    // A remote that another device initialised holds the verdict of its probe in meta.json:
    // a joining device takes it instead of probing again (`deltasync doctor` does on demand).
    let recorded = opened
        .recorded_verdict()
        .with_context(|| format!("reading meta.json on {}", opened.remote().describe()))?;
    let summary = match &recorded {
        Some(settings) => {
            println!(
                "Joining {}: taking the verdict its first device recorded (server.cas = \"{}\"{}); `deltasync doctor` probes again.",
                opened.remote().describe(),
                settings.cas,
                if settings.nextcloud {
                    ", Nextcloud"
                } else {
                    ""
                }
            );
            opened.assume(settings)?;
            config.server = Some(settings.clone());
            None
        }
        None => {
            println!("Probing {} …", opened.remote().describe());
            let report = opened
                .probe()
                .with_context(|| format!("probing {}", opened.remote().describe()))?;
            for line in report.explain() {
                println!("  {line}");
            }
            config.server = Some(remote::settings_of(&report));
            // meta.json is rewritten by every commit, so it records the probe's verdict, not
            // the whole report (`deltasync doctor` shows that).
            Some(report.summary_json())
        }
    };
    if let (Some(entry), Some(password)) = (&keyring_entry, &new_password) {
        // The probe, or the read of meta.json, got through: the server accepts this password.
        entry
            .set(password)
            .with_context(|| format!("storing the password of {}", entry.account()))?;
        println!(
            "Stored the password of {} in the system keyring.",
            entry.account()
        );
    }
    let engine = deltasync_engine::Workspace::with_opened(dir, config.clone(), opened)?;
    let created = engine.init_remote(summary)?;
    config.save(dir)?;
    println!(
        "Initialised workspace {} (device '{}', id {}).",
        dir.display(),
        config.device,
        engine.device_id()
    );
    println!(
        "Remote {}: {}.",
        engine.store().remote().describe(),
        if created {
            "created an empty layout"
        } else {
            "already initialised, joining it"
        }
    );
    if config.collections.is_empty() {
        println!(
            "No collections yet: add them to deltasync.toml, or run init again with --collection NAME=dir:PATH --force."
        );
    }
    Ok(exit::OK)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn doctor(dir: &Path, save: bool, json: bool) -> Result<u8> {
    let mut config = load(dir)?;
    let opened = remote::open(&config)?;
    let report = opened
        .probe()
        .with_context(|| format!("probing {}", opened.remote().describe()))?;
    if json {
        output::json(&report.to_json())?;
    } else {
        for line in report.explain() {
            println!("{line}");
        }
    }
    if save {
        // A class seen once is never upgraded by a luckier probe: keep the weakest of this
        // probe, the one recorded here and the one recorded on the remote.
        let probed = remote::settings_of(&report);
        let mut kept = probed.clone();
        if let Some(old) = &config.server {
            kept = kept.weaker(old);
        }
        if let Some(recorded) = opened
            .recorded_verdict()
            .with_context(|| format!("reading meta.json on {}", opened.remote().describe()))?
        {
            kept = kept.weaker(&recorded);
        }
        config.server = Some(kept.clone());
        config.save(dir)?;
        if !json {
            if kept.cas != probed.cas {
                println!(
                    "Kept server.cas = \"{}\" in deltasync.toml: an earlier probe saw it, and a \
                     luckier probe does not upgrade a class (edit [server] in deltasync.toml if \
                     the server itself changed).",
                    kept.cas
                );
            } else {
                println!("Recorded in deltasync.toml: server.cas = \"{}\"", kept.cas);
            }
        }
    }
    Ok(exit::OK)
}

fn unlock(dir: &Path, force: bool) -> Result<u8> {
    if !force {
        bail!(
            "unlock removes the remote's lease even if another device holds it: run it with --force"
        );
    }
    let config = load(dir)?;
    let opened = remote::open(&config)?;
    match deltasync_lock::break_lease(opened.remote().as_ref())? {
        Some(info) => println!(
            "Removed the lease of device '{}' ({}).",
            info.owner_name, info.owner
        ),
        None => println!("The remote was not locked."),
    }
    Ok(exit::OK)
}
