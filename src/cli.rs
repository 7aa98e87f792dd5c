//! The command line as clap parses it: `Cli`, its subcommands and their options.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::watch;

/// The exit codes, as `--help` and the man page give them (README's table says the same).
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (the message says which)
  2  bad usage
  3  temporary failure (network, busy server, other devices kept committing): try again
  4  refused for safety, nothing changed: a mass delete (--allow-mass-delete if meant), a
     remote format too new (upgrade), a remote that lost commits (deltasync repair)
  5  done, but this run needs you: it held back an unreadable file, or recorded a new
     conflict; receipts of earlier runs that are still open do not count (deltasync status
     and deltasync conflicts list them)";

#[derive(Parser, Debug)]
#[command(
    name = "deltasync",
    version,
    about = "Keep JSON entities in step across devices through a dumb file remote (WebDAV, Nextcloud, a folder), uploading only what changed.",
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    /// Run as if started in DIR (the workspace).
    #[arg(short = 'C', global = true, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create deltasync.toml in the workspace and the remote layout if the remote is empty.
    Init {
        /// Remote: a folder path, file://PATH, https://host/path or nextcloud://user@host/path.
        #[arg(long)]
        remote: String,
        /// A name for this device.
        #[arg(long)]
        device: Option<String>,
        /// A collection: NAME=dir:PATH or NAME=file:PATH[#POINTER][@ID_FIELD]. Repeatable.
        #[arg(long = "collection", value_name = "NAME=SPEC")]
        collections: Vec<String>,
        /// WebDAV user name.
        #[arg(long)]
        user: Option<String>,
        /// Keep the WebDAV password in the system keyring (asked for when the keyring has none
        /// for this user and server yet, and stored once the server has accepted it).
        #[arg(long)]
        keyring: bool,
        /// With --keyring: read the password from standard input instead of asking.
        #[arg(long, requires = "keyring")]
        password_stdin: bool,
        /// Overwrite an existing deltasync.toml.
        #[arg(long)]
        force: bool,
    },
    /// Store the WebDAV password in the system keyring (checked with the server first), and
    /// have deltasync.toml read it from there.
    Login {
        /// The WebDAV user name (default: auth.user, or the one in the URL).
        #[arg(long)]
        user: Option<String>,
        /// Read the password from standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
        /// On Nextcloud: type an app password instead of granting one in the browser (Login
        /// Flow v2, the default there).
        #[arg(long, conflicts_with = "password_stdin")]
        manual: bool,
    },
    /// Remove the WebDAV password from the system keyring.
    Logout,
    /// Show the workspace's state: device, remote head, collections, conflicts (no request).
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: for each entity what a sync would do (push, pull, merge, hold and why) and
    /// the fields it changes; every conflict with the value it keeps, whose and why.
    Diff {
        /// Show only this collection.
        collection: Option<String>,
        /// Each field's old and new value on each side (default: the fields' names).
        #[arg(short, long)]
        verbose: bool,
        /// Machine-readable output, every entity and field.
        #[arg(long)]
        json: bool,
    },
    /// Pull what changed elsewhere, merge, push what changed here. Exit 5 when this run
    /// held back a file or recorded a new conflict; 0 when nothing new needs you.
    Sync {
        /// Plan only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a push that deletes more than half of a collection.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List, show and resolve conflict receipts.
    Conflicts {
        #[command(subcommand)]
        action: Option<ConflictAction>,
        /// Machine-readable output.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Probe the remote: does it honour If-Match and If-None-Match, are its ETags strong and
    /// fresh? Says what deltasync will do about it.
    Doctor {
        /// Record the result in deltasync.toml (`[server]`), which decides how commits are made.
        #[arg(long)]
        save: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove the remote's lease lock (used on servers without compare-and-swap) that a
    /// crashed device left behind.
    Unlock {
        /// Required: removing another device's lease while it writes can cost a retry.
        #[arg(long)]
        force: bool,
    },
    /// Put this device's data back on a remote that lost commits it had applied (emptied,
    /// initialised again, or restored from an older copy): push what the remote lacks, merge
    /// what both have, pull the rest; nothing is deleted on either side.
    Repair {
        /// Say how many entities would be pushed, merged and pulled; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Fold the deltas into a new snapshot, archive them in archive/, remove old orphans.
    Compact {
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Drop tombstones older than this many days (default: [compact] tombstone_days, 90).
        #[arg(long, value_name = "DAYS")]
        tombstone_days: Option<u64>,
        /// Remove unreferenced files older than this many seconds (default: 24 hours).
        #[arg(long, value_name = "SECS")]
        orphan_grace: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Compare the remote with the local files and check the remote's integrity (read-only).
    /// Exit status 0 only when everything matches.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Entities spot-checked field by field per collection.
        #[arg(long, default_value_t = 5, value_name = "N")]
        sample: usize,
        /// Check every entity and every field.
        #[arg(long)]
        deep: bool,
        /// Numbers within this absolute difference are equal.
        #[arg(long, default_value_t = 0.0, value_name = "EPS")]
        tolerance: f64,
    },
    /// Keep the workspace in step in the background: push local changes as they are saved,
    /// pull other devices' commits as they appear (until SIGTERM or SIGINT).
    Watch {
        /// How often to ask the remote for other devices' commits (a conditional GET of
        /// meta.json): e.g. 1s, 5s, 2m.
        #[arg(long, default_value = "5s", value_parser = watch::parse_duration)]
        poll: std::time::Duration,
        /// Quiet time after a file changes before the change is pushed.
        #[arg(long, default_value = "500ms", value_parser = watch::parse_duration)]
        debounce: std::time::Duration,
        /// How often to compare every file's size and mtime with what was last seen (for the
        /// events a file watcher misses, e.g. on network file systems).
        #[arg(long, default_value = "5m", value_parser = watch::parse_duration)]
        rescan: std::time::Duration,
        /// How long a sync in progress may go on after SIGTERM or SIGINT before the watcher
        /// exits anyway (exit 1; the next start finishes or undoes a commit in flight).
        #[arg(long, default_value = "30s", value_parser = watch::parse_duration)]
        stop_grace: std::time::Duration,
    },
    /// Show one entity: every field, its remote version and whether the local copy differs.
    Get {
        /// Collection.
        collection: String,
        /// Entity id.
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List a collection's entity ids (local and remote).
    List {
        /// Collection.
        collection: String,
        /// Print only the number of entities.
        #[arg(long)]
        count: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set fields of one entity (field=value; JSON if it parses, else a string; a.b reaches
    /// nested fields) and sync; a concurrent change elsewhere is merged, not overwritten.
    Update {
        /// Collection.
        collection: String,
        /// Entity id.
        id: String,
        /// field=value, repeatable.
        #[arg(required = true, value_name = "FIELD=VALUE")]
        fields: Vec<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Delete one entity on every device (asks first unless --force).
    Delete {
        /// Collection.
        collection: String,
        /// Entity id.
        id: String,
        /// Do not ask (needed without a terminal).
        #[arg(long)]
        force: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The commits: seq, device, time, entities per collection (archived ones included).
    Log {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Every version of one entity across the deltas and the archives.
    History {
        /// Collection.
        collection: String,
        /// Entity id.
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Save the remote's whole state in a zip with a manifest of counts and checksums.
    Backup {
        /// The zip to write (default: deltasync-backup-<time>.zip).
        #[arg(short = 'o', long = "output", value_name = "FILE.zip")]
        output: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup (or, with --at and no file, the state as of a past commit) as a new
    /// commit. Checks every checksum first; shows what changes and how risky it is.
    Restore {
        /// The backup zip.
        file: Option<PathBuf>,
        /// Restore the state as of this commit, rebuilt from the archives.
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go ahead with a risky (overwrites) or dangerous (deletes) restore.
        #[arg(long)]
        yes: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the shell completion script (e.g. `deltasync completions bash >
    /// ~/.local/share/bash-completion/completions/deltasync`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page deltasync(1) (`deltasync man | man -l -`), or write one page per
    /// command into a folder.
    Man {
        /// Write deltasync.1, deltasync-sync.1, … into this folder instead.
        #[arg(long = "dir", value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Run a demonstration in a temporary folder: two devices and a local-folder remote.
    Demo {
        /// Number of synthetic tasks.
        #[arg(long, default_value_t = 1000)]
        entities: usize,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConflictAction {
    /// List the receipts (open first).
    List,
    /// Show one receipt.
    Show {
        /// The receipt id.
        id: String,
    },
    /// Resolve one receipt by taking this device's value or the other device's.
    Resolve {
        /// The receipt id.
        id: String,
        /// Which value to keep.
        #[arg(long, value_enum)]
        take: Take,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Take {
    /// The value this device wrote.
    Local,
    /// The other device's value.
    Remote,
}
