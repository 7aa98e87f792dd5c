//! Starts real WebDAV and S3 servers on `127.0.0.1` for deltasync's tests (dev only, never published).
//!
//! Each [`Server`] runs one server binary on a free port, with its own configuration, data
//! folder and log in a temporary folder, basic auth with a random password, and stops (kills)
//! the processes it started — its own process group — when dropped.
//!
//! The servers come from Debian and PyPI; `scripts/install-test-servers` installs them. When one
//! is missing, [`Server::start`] fails with [`Error::NotInstalled`] naming what to install;
//! [`start_or_skip`] turns that into a loud `SKIPPED:` line outside CI and a failure under
//! `CI=true`, so a CI run never passes by skipping.
//!
//! [`SecretService`] starts a private, unlocked system keyring (a D-Bus of its own and
//! gnome-keyring) for the tests of deltasync's keyring support; [`FaultProxy`] puts network
//! failures (resets before and after the server acts, 503s, cut answers) in front of a server.
//! [`Nextcloud`] is an in-process stand-in for Nextcloud 34's WebDAV (no registry ships
//! Nextcloud) that reproduces what was measured on a real one: same-second ETag reuse,
//! non-atomic `If-Match` with 423 Locked, trash bin, versions, Login Flow v2.
//!
//! ```no_run
//! use deltasync_testservers::{Kind, start_or_skip};
//!
//! let Some(server) = start_or_skip(Kind::Lighttpd) else { return };
//! println!("{} as {}", server.url(), server.user());
//! ```
#![forbid(unsafe_code)]
// Unix only (process groups, file modes, `chown`, `sh -c`): the servers it starts are Debian's.
// Elsewhere the crate is empty, so that `cargo check --workspace` builds for macOS and Windows.
#![cfg(unix)]

mod fault_proxy;
mod nextcloud;
mod s3;
mod secret_service;
mod webdav_servers;

pub use fault_proxy::{FaultProxy, FaultStats};
pub use nextcloud::{Nextcloud, NextcloudOptions, NextcloudStats};
pub use s3::BUCKET;
pub use secret_service::{SecretService, SecretServiceError, start_secret_service_or_skip};
use webdav_servers::{apache, lighttpd, nginx, rclone, sabredav, wsgidav};

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDAV servers the harness can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// lighttpd 1.4 with mod_webdav (Debian `lighttpd`, `lighttpd-mod-webdav`).
    Lighttpd,
    /// Apache 2.4 with mod_dav_fs (Debian `apache2`), dropping to `www-data` when run as root.
    Apache,
    /// sabre/dav 1.8 with the FSExt backend (Debian `php-sabre-dav`) under `php -S` with
    /// `PHP_CLI_SERVER_WORKERS=4`.
    SabreDav,
    /// wsgidav on cheroot (PyPI `wsgidav`, `cheroot`).
    WsgiDav,
    /// nginx with its dav module and dav_ext (Debian `nginx-extras`).
    NginxDav,
    /// `rclone serve webdav` (Debian `rclone`).
    Rclone,
    /// An S3 server: moto (PyPI `moto[server]`), which honours `If-Match` and
    /// `If-None-Match: *`. Its endpoint is [`Server::url`], with the bucket [`BUCKET`].
    Moto,
    /// An S3 server: s3rver (npm), which accepts `If-Match` and `If-None-Match: *` and ignores
    /// them. Credentials are its fixed `S3RVER` / `S3RVER`, which it checks.
    S3rver,
}

impl Kind {
    /// The S3 servers.
    pub const S3: [Kind; 2] = [Kind::Moto, Kind::S3rver];

    /// Every WebDAV server, in a fixed order.
    pub const ALL: [Kind; 6] = [
        Kind::Lighttpd,
        Kind::Apache,
        Kind::SabreDav,
        Kind::WsgiDav,
        Kind::NginxDav,
        Kind::Rclone,
    ];

    /// A short lowercase name (`lighttpd`, `apache`, `sabredav`, `wsgidav`, `nginx`, `rclone`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lighttpd => "lighttpd",
            Kind::Apache => "apache",
            Kind::SabreDav => "sabredav",
            Kind::WsgiDav => "wsgidav",
            Kind::NginxDav => "nginx",
            Kind::Rclone => "rclone",
            Kind::Moto => "moto",
            Kind::S3rver => "s3rver",
        }
    }

    /// Whether this is an S3 server (its URL is an endpoint, not a WebDAV folder).
    pub fn is_s3(self) -> bool {
        matches!(self, Kind::Moto | Kind::S3rver)
    }

    /// What installs this server.
    pub fn install_hint(self) -> &'static str {
        match self {
            Kind::Lighttpd => "apt-get install lighttpd lighttpd-mod-webdav",
            Kind::Apache => "apt-get install apache2 apache2-utils",
            Kind::SabreDav => "apt-get install php-cli php-sabre-dav",
            Kind::WsgiDav => {
                "python3 -m venv /opt/deltasync-wsgidav && /opt/deltasync-wsgidav/bin/pip install wsgidav cheroot \
                 (or set DELTASYNC_WSGIDAV to a wsgidav binary)"
            }
            Kind::NginxDav => "apt-get install nginx-extras",
            Kind::Rclone => "apt-get install rclone",
            Kind::Moto => {
                "python3 -m venv /opt/deltasync-moto && /opt/deltasync-moto/bin/pip install 'moto[server]' \
                 (or set DELTASYNC_MOTO to a moto_server binary)"
            }
            Kind::S3rver => {
                "apt-get install nodejs npm && npm install --prefix /opt/deltasync-s3rver s3rver \
                 (or set DELTASYNC_S3RVER to s3rver's bin/s3rver.js)"
            }
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary or file the server needs is missing.
    #[error(
        "{kind}: {what} is missing: run scripts/install-test-servers (or: {hint})",
        hint = kind.install_hint()
    )]
    NotInstalled {
        /// The server.
        kind: Kind,
        /// The missing binary or file.
        what: String,
    },
    /// Writing the configuration or spawning the process failed.
    #[error("{kind}: {what}: {source}")]
    Io {
        /// The server.
        kind: Kind,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process exited while starting.
    #[error("{kind}: exited while starting ({status}); its log:\n{log}")]
    Exited {
        /// The server.
        kind: Kind,
        /// The exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// The server did not answer HTTP in time.
    #[error("{kind}: did not answer on {url} within {secs} s; its log:\n{log}")]
    NotReady {
        /// The server.
        kind: Kind,
        /// Where it was asked.
        url: String,
        /// How long the harness waited.
        secs: u64,
        /// The end of its log.
        log: String,
    },
}

impl Error {
    /// Whether the server is simply not installed (the only case a local run may skip).
    pub fn is_not_installed(&self) -> bool {
        matches!(self, Error::NotInstalled { .. })
    }
}

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !matches!(v.trim(), "" | "0" | "false" | "False" | "FALSE"),
        Err(_) => false,
    }
}

/// Starts `kind`, or — when it is not installed and this is not CI — prints a loud
/// `SKIPPED: …` line to stderr and returns `None`.
///
/// # Panics
///
/// When the server is missing under CI (a CI run must not pass by skipping), or when it is
/// installed but fails to start.
pub fn start_or_skip(kind: Kind) -> Option<Server> {
    match Server::start(kind) {
        Ok(server) => Some(server),
        Err(e) if e.is_not_installed() && !in_ci() => {
            // Straight to the process's stderr: the test harness captures `eprintln!`.
            let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {e} ***\n");
            None
        }
        Err(e) if e.is_not_installed() => {
            panic!("{e}\n(CI is set: a missing test server fails the run instead of skipping)")
        }
        Err(e) => panic!("{e}"),
    }
}

/// A running WebDAV server; stopped when dropped.
pub struct Server {
    kind: Kind,
    url: String,
    user: String,
    password: String,
    child: Child,
    data: PathBuf,
    log: PathBuf,
    // Dropped after the processes are stopped (fields drop in declaration order, after `drop`).
    _dir: tempfile::TempDir,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("pid", &self.child.id())
            .finish()
    }
}

const USER: &str = "deltasync";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths and settings one start attempt uses.
pub(crate) struct Setup<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) data: &'a Path,
    pub(crate) log: &'a Path,
    pub(crate) port: u16,
    pub(crate) user: &'a str,
    pub(crate) password: &'a str,
}

impl Server {
    /// Starts a server of `kind` on `127.0.0.1` at a free port, with basic auth, and waits
    /// until it answers HTTP.
    pub fn start(kind: Kind) -> Result<Server, Error> {
        let password = format!("pw-{:016x}", fastrand::u64(..));
        let mut last = None;
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            match Self::start_once(kind, &password) {
                Ok(s) => return Ok(s),
                Err(e @ (Error::Exited { .. } | Error::NotReady { .. }))
                    if e.to_string().contains("in use") =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn start_once(kind: Kind, password: &str) -> Result<Server, Error> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { kind, what, source }
        };
        check_installed(kind)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("deltasync-{}-", kind.name()))
            .tempdir()
            .map_err(io("creating a temp folder"))?;
        // Servers that drop privileges (Apache) must reach their folders.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(io("chmod temp folder"))?;
        let data = dir.path().join("data");
        fs::create_dir(&data).map_err(io("creating the data folder"))?;
        let log = dir.path().join("server.log");
        let port = free_port().map_err(io("finding a free port"))?;
        let setup = Setup {
            dir: dir.path(),
            data: &data,
            log: &log,
            port,
            user: USER,
            password,
        };
        let mut cmd = match kind {
            Kind::Lighttpd => lighttpd(&setup),
            Kind::Apache => apache(&setup),
            Kind::SabreDav => sabredav(&setup),
            Kind::WsgiDav => wsgidav(&setup),
            Kind::NginxDav => nginx(&setup),
            Kind::Rclone => rclone(&setup),
            Kind::Moto => s3::moto(&setup),
            Kind::S3rver => s3::s3rver(&setup),
        }
        .map_err(io("writing the configuration"))?;
        let out = fs::File::create(&log).map_err(io("creating the log"))?;
        let err = out.try_clone().map_err(io("creating the log"))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(dir.path())
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(io(&format!("starting {:?}", cmd.get_program())))?;
        let (user, password) = match kind {
            Kind::S3rver => (s3::S3RVER_KEY, s3::S3RVER_KEY),
            _ => (USER, password),
        };
        let mut server = Server {
            kind,
            url: format!("http://127.0.0.1:{port}/"),
            user: user.to_string(),
            password: password.to_string(),
            child,
            data,
            log,
            _dir: dir,
        };
        server.wait_ready(port)?;
        s3::create_bucket(kind, port).map_err(io("creating the test bucket"))?;
        Ok(server)
    }

    fn wait_ready(&mut self, port: u16) -> Result<(), Error> {
        let start = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Exited {
                    kind: self.kind,
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if answers_http(addr) {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    kind: self.kind,
                    url: self.url.clone(),
                    secs: READY_TIMEOUT.as_secs(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's base URL, `http://127.0.0.1:<port>/` (ends with `/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bucket of an S3 server ([`BUCKET`]).
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The basic-auth user name (S3: the access key id).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The basic-auth password, random per start (S3: the secret access key).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Which server this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The folder the server serves.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's log so far (its own error log and stdout/stderr), for failing tests.
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(&self.log).unwrap_or_default();
        for extra in ["error.log", "php.log"] {
            if let Ok(more) = fs::read_to_string(self.log.with_file_name(extra)) {
                s.push_str(&more);
            }
        }
        s
    }

    fn log_tail(&self) -> String {
        let s = self.log();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn stop(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        // Workers the server forked are in the same group; make sure none outlives it.
        signal_group(pgid, "KILL");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal to the process group the harness created (its id is the leader's pid).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("bash")
        .args([
            "-c",
            "kill -s \"$1\" -- -\"$2\" 2>/dev/null",
            "bash",
            signal,
        ])
        .arg(pgid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 8 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf[..got].starts_with(b"HTTP/1.")
}

fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn wsgidav_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DELTASYNC_WSGIDAV") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let venv = PathBuf::from("/opt/deltasync-wsgidav/bin/wsgidav");
    if venv.is_file() {
        return Some(venv);
    }
    which("wsgidav")
}

/// The binaries and files each kind needs.
fn requirements(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Lighttpd => &["lighttpd", "/usr/lib/lighttpd/mod_webdav.so"],
        Kind::Apache => &[
            "apache2",
            "htpasswd",
            "/usr/lib/apache2/modules/mod_dav_fs.so",
        ],
        Kind::SabreDav => &["php", "/usr/share/php/Sabre/DAV/FSExt/Directory.php"],
        Kind::WsgiDav => &[],
        Kind::NginxDav => &["nginx", "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"],
        Kind::Rclone => &["rclone"],
        Kind::Moto => &[],
        Kind::S3rver => &["node"],
    }
}

fn check_installed(kind: Kind) -> Result<(), Error> {
    for what in requirements(kind) {
        let found = if what.starts_with('/') {
            Path::new(what).exists()
        } else {
            which(what).is_some()
        };
        if !found {
            return Err(Error::NotInstalled {
                kind,
                what: what.to_string(),
            });
        }
    }
    let missing = match kind {
        Kind::Moto if s3::moto_binary().is_none() => Some("moto_server"),
        Kind::S3rver if s3::s3rver_script().is_none() => Some("s3rver"),
        _ => None,
    };
    if let Some(what) = missing {
        return Err(Error::NotInstalled {
            kind,
            what: what.to_string(),
        });
    }
    if kind == Kind::WsgiDav && wsgidav_binary().is_none() {
        return Err(Error::NotInstalled {
            kind,
            what: "wsgidav".to_string(),
        });
    }
    Ok(())
}

pub(crate) fn program(name: &str) -> Command {
    Command::new(which(name).unwrap_or_else(|| PathBuf::from(name)))
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_names_and_hints() {
        for k in Kind::ALL.into_iter().chain(Kind::S3) {
            assert!(!k.name().is_empty());
            assert!(k.install_hint().contains("install"));
        }
    }

    #[test]
    fn missing_server_names_what_to_install() {
        let e = Error::NotInstalled {
            kind: Kind::Rclone,
            what: "rclone".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("scripts/install-test-servers"), "{msg}");
        assert!(msg.contains("apt-get install rclone"), "{msg}");
        assert!(e.is_not_installed());
    }

    #[test]
    fn php_strings_are_quoted() {
        assert_eq!(webdav_servers::php_str("a'b\\c"), "'a\\'b\\\\c'");
    }

    /// Starts every installed server once and checks it answers with auth; a missing one
    /// follows [`start_or_skip`]'s rules.
    #[test]
    fn every_server_starts_and_stops() {
        for kind in Kind::ALL.into_iter().chain(Kind::S3) {
            let Some(server) = start_or_skip(kind) else {
                continue;
            };
            let addr: SocketAddr = server.url()["http://".len()..]
                .trim_end_matches('/')
                .parse()
                .unwrap();
            assert!(answers_http(addr), "{kind}");
            let pid = server.child.id();
            drop(server);
            assert!(
                !Path::new(&format!("/proc/{pid}/exe")).exists(),
                "{kind}: pid {pid} still running"
            );
        }
    }
}
