//! Helpers shared by the binary's integration tests: running `deltasync` as a child process
//! with a clean environment, and what one run gave.
#![allow(dead_code)] // Each test binary uses a different part.

use std::path::Path;
use std::process::{Command, Output};

/// Exit codes (README, `src/main.rs` `exit`).
pub const EXIT_OK: i32 = 0;
/// An error.
pub const EXIT_ERROR: i32 = 1;
/// A temporary failure: try again.
pub const EXIT_TEMPORARY: i32 = 3;
/// Done, but something needs a person.
pub const EXIT_ATTENTION: i32 = 5;

/// The `deltasync` binary, with no log filter, no password and no proxy from the test's own
/// environment (all traffic stays on 127.0.0.1).
pub fn deltasync() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deltasync"));
    c.env_remove("DELTASYNC_LOG")
        .env_remove("DELTASYNC_PASSWORD")
        .env_remove("DELTASYNC_KEYRING_TIMEOUT");
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c.env("NO_PROXY", "127.0.0.1,localhost");
    c
}

/// `deltasync -C <dir> args…` ([`deltasync`]), with `password` as `DELTASYNC_PASSWORD` when
/// given.
pub fn deltasync_in(dir: &Path, password: Option<&str>, args: &[&str]) -> Command {
    let mut c = deltasync();
    if let Some(p) = password {
        c.env("DELTASYNC_PASSWORD", p);
    }
    c.arg("-C").arg(dir).args(args);
    c
}

/// What one `deltasync` run gave.
pub struct Run {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// From a finished process's output.
    pub fn of(out: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `cmd` to its end.
    pub fn command(cmd: &mut Command) -> Run {
        Run::of(
            cmd.output()
                .unwrap_or_else(|e| panic!("running {cmd:?}: {e}")),
        )
    }

    /// Standard output as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
    }

    /// Both outputs together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The run itself, after asserting that it exited 0; `what` (say the device and the
    /// arguments) begins the panic message otherwise.
    pub fn expect_ok(self, what: impl std::fmt::Display) -> Run {
        assert_eq!(self.code, Some(EXIT_OK), "{what} failed:\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.signal {
            Some(signal) => write!(f, "killed by signal {signal}")?,
            None => write!(f, "exit {:?}", self.code)?,
        }
        write!(
            f,
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// An app-style save of `v` as pretty JSON at `path`: a temp file next to it, then a rename
/// over it (its folder made first if need be).
pub fn write_renamed(path: &Path, v: &serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("json.tmp~");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// What an S3 device gets in its environment.
#[derive(Clone)]
pub struct S3Env {
    /// `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub key: String,
}

/// Sets AWS's variables for an S3 device: endpoint, region, key and `secret`; no profile file
/// of the machine's user is read.
pub fn s3_env(c: &mut Command, env: &S3Env, secret: &str, dir: &Path) {
    for var in [
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &env.key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        );
}

/// `deltasync init` of workspace `dir` as device `name`, on the folder remote `remote`, with
/// one collection `tasks=dir:tasks`.
pub fn init_tasks(dir: &Path, remote: &Path, name: &str) -> Run {
    let remote = remote.display().to_string();
    Run::command(&mut deltasync_in(
        dir,
        None,
        &[
            "init",
            "--remote",
            &remote,
            "--device",
            name,
            "--collection",
            "tasks=dir:tasks",
        ],
    ))
}
