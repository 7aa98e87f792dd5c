//! A private, unlocked system keyring for the tests: a session D-Bus of its own (`dbus-daemon`
//! with a configuration that starts nothing by itself) and `gnome-keyring-daemon` serving the
//! Secret Service API on it, with its keyring files in a temporary folder.
//!
//! Clients reach it through the bus address ([`SecretService::bus_address`]), which a test
//! passes to a child process as `DBUS_SESSION_BUS_ADDRESS`. Nothing of the user's own keyring
//! or session bus is touched. [`SecretService::store`] and [`SecretService::lookup`] go through
//! `secret-tool` (libsecret), a second, independent client of the same keyring.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{in_ci, signal_group, which};

/// The programs the keyring needs, with the Debian package of each.
const PROGRAMS: [(&str, &str); 4] = [
    ("dbus-daemon", "dbus-daemon"),
    ("dbus-send", "dbus-bin"),
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
];

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the keyring could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SecretServiceError {
    /// A program is missing.
    #[error(
        "secret service: {program} is missing: run scripts/install-test-servers (or: apt-get install {package})"
    )]
    NotInstalled {
        /// The program.
        program: &'static str,
        /// Its Debian package.
        package: &'static str,
    },
    /// Setting up or starting failed.
    #[error("secret service: {what}: {detail}")]
    Failed {
        /// What was being done.
        what: String,
        /// What went wrong (with the daemons' logs when they matter).
        detail: String,
    },
}

fn failed(what: &str, detail: impl std::fmt::Display) -> SecretServiceError {
    SecretServiceError::Failed {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// A running private keyring; both daemons are stopped when it is dropped.
#[derive(Debug)]
pub struct SecretService {
    bus: Child,
    keyring: Option<Child>,
    address: String,
    dir: tempfile::TempDir,
}

/// Starts the keyring, or — when a program is missing and this is not CI — prints a loud
/// `SKIPPED: …` line to stderr and returns `None`.
///
/// # Panics
///
/// When a program is missing under CI, or when the keyring fails to start.
pub fn start_secret_service_or_skip() -> Option<SecretService> {
    match SecretService::start() {
        Ok(s) => Some(s),
        Err(e @ SecretServiceError::NotInstalled { .. }) if !in_ci() => {
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {e} ***\n");
            None
        }
        Err(e @ SecretServiceError::NotInstalled { .. }) => {
            panic!("{e}\n(CI is set: a missing test server fails the run instead of skipping)")
        }
        Err(e) => panic!("{e}"),
    }
}

impl SecretService {
    /// Starts a private session bus and an unlocked gnome-keyring on it, and waits until an
    /// item can be stored and read back.
    pub fn start() -> Result<SecretService, SecretServiceError> {
        for (program, package) in PROGRAMS {
            if which(program).is_none() {
                return Err(SecretServiceError::NotInstalled { program, package });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("deltasync-keyring-")
            .tempdir()
            .map_err(|e| failed("creating a temp folder", e))?;
        for sub in ["run", "home", "data", "cache", "config"] {
            let p = dir.path().join(sub);
            fs::create_dir(&p).map_err(|e| failed("creating folders", e))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                .map_err(|e| failed("creating folders", e))?;
        }
        let socket = dir.path().join("run/bus");
        let config = dir.path().join("bus.conf");
        // No <servicedir>: the bus must not start a second, locked gnome-keyring by itself.
        fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .map_err(|e| failed("writing the bus configuration", e))?;
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| failed("starting dbus-daemon", e))?;
        let address = match read_first_line(&mut bus, Duration::from_secs(10)) {
            Some(a) if !a.is_empty() => a,
            _ => {
                signal_group(bus.id(), "KILL");
                let _ = bus.wait();
                return Err(failed("starting dbus-daemon", "it printed no address"));
            }
        };
        let mut service = SecretService {
            bus,
            keyring: None,
            address,
            dir,
        };
        service.start_keyring()?;
        service.wait_ready()?;
        Ok(service)
    }

    fn start_keyring(&mut self) -> Result<(), SecretServiceError> {
        let log = fs::File::create(self.dir.path().join("keyring.log"))
            .map_err(|e| failed("creating the keyring log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| failed("creating the keyring log", e))?;
        let mut cmd = Command::new("gnome-keyring-daemon");
        cmd.args(["--unlock", "--components=secrets", "--foreground"])
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        self.apply_env(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| failed("starting gnome-keyring-daemon", e))?;
        // --unlock reads the login keyring's password from stdin, up to its end; a fresh home
        // gets a new login keyring with that password, unlocked.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"deltasync-test-unlock");
        }
        self.keyring = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), SecretServiceError> {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.keyring.as_mut().map(|c| c.try_wait()) {
                return Err(failed(
                    "starting gnome-keyring-daemon",
                    format!("it exited ({status}); its log:\n{}", self.log()),
                ));
            }
            if self.store("deltasync-harness", "ready", "ok").is_ok()
                && self.lookup("deltasync-harness", "ready").as_deref() == Some("ok")
            {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(failed(
                    "starting gnome-keyring-daemon",
                    format!(
                        "no item could be stored within {} s; its log:\n{}",
                        READY_TIMEOUT.as_secs(),
                        self.log()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bus address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The environment a client of this keyring needs: the bus address, and a home and XDG
    /// folders of the keyring's own (so nothing else of the user's is found).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let p = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("HOME", p("home")),
            ("XDG_RUNTIME_DIR", p("run")),
            ("XDG_DATA_HOME", p("data")),
            ("XDG_CACHE_HOME", p("cache")),
            ("XDG_CONFIG_HOME", p("config")),
        ]
    }

    fn apply_env(&self, cmd: &mut Command) {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }

    fn secret_tool(&self, args: &[&str], input: Option<&str>) -> Option<String> {
        let mut cmd = Command::new("secret-tool");
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.apply_env(&mut cmd);
        let mut child = cmd.spawn().ok()?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(text.as_bytes());
        }
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(out)) if out.status.success() => {
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(_) => None,
            Err(_) => {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                None
            }
        }
    }

    /// Stores `password` under the attributes `service` and `username` (what the keyring crate
    /// and `secret-tool store … service S username U` use), with `secret-tool`.
    pub fn store(
        &self,
        service: &str,
        username: &str,
        password: &str,
    ) -> Result<(), SecretServiceError> {
        let label = format!("--label={username}@{service}");
        self.secret_tool(
            &["store", &label, "service", service, "username", username],
            Some(password),
        )
        .map(|_| ())
        .ok_or_else(|| failed("secret-tool store", "failed"))
    }

    /// The password stored under `service` and `username`, read with `secret-tool`; `None`
    /// when there is none.
    pub fn lookup(&self, service: &str, username: &str) -> Option<String> {
        self.secret_tool(&["lookup", "service", service, "username", username], None)
    }

    /// Locks the default (login) collection, as a screen lock or a logout would. Unlocking it
    /// again needs a prompt, which this headless keyring cannot show: a client then gets
    /// "prompt dismissed".
    pub fn lock(&self) -> Result<(), SecretServiceError> {
        let mut cmd = Command::new("dbus-send");
        cmd.args([
            "--session",
            "--print-reply",
            "--reply-timeout=10000",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        self.apply_env(&mut cmd);
        let out = cmd.output().map_err(|e| failed("dbus-send Lock", e))?;
        if !out.status.success() {
            return Err(failed(
                "dbus-send Lock",
                String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(())
    }

    /// The keyring daemon's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("keyring.log")).unwrap_or_default()
    }
}

fn read_first_line(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line.trim().to_string());
        // Keep the pipe open (and drained) for as long as the bus runs.
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
    });
    rx.recv_timeout(timeout).ok()
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(mut k) = self.keyring.take() {
            signal_group(k.id(), "KILL");
            let _ = k.wait();
        }
        signal_group(self.bus.id(), "KILL");
        let _ = self.bus.wait();
    }
}
