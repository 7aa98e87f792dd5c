//! The WebDAV password in the system keyring (issue 3, part 2), end to end: the `deltasync`
//! binary against a real lighttpd WebDAV server and a real Secret Service (gnome-keyring on a
//! private D-Bus, both started by `deltasync-testservers`), with `secret-tool` (libsecret) as a
//! second, independent client of the same keyring.
//!
//! No password reaches the binary through its environment here: it comes from the keyring,
//! or on standard input to `init --keyring --password-stdin` and `login --password-stdin`.
//! Each test checks that the password shows up in no output and no file deltasync wrote.

mod support;

use std::io::Write as _;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deltasync_testservers::{
    Kind, SecretService, Server, start_or_skip, start_secret_service_or_skip,
};
use support::{EXIT_ERROR, EXIT_OK, EXIT_TEMPORARY, Run, deltasync};

/// The keyring service deltasync's entries use.
const SERVICE: &str = "deltasync";

struct Setup {
    server: Server,
    keyring: SecretService,
    root: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let server = start_or_skip(Kind::Lighttpd)?;
    let keyring = start_secret_service_or_skip()?;
    Some(Setup {
        server,
        keyring,
        root: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    /// The keyring entry's user name for the server: `user@127.0.0.1:port`.
    fn account(&self) -> String {
        let host = self
            .server
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        format!("{}@{host}", self.server.user())
    }

    fn dir(&self, device: &str) -> std::path::PathBuf {
        self.root.path().join(device)
    }

    /// `deltasync -C <device> args…`, reaching the private keyring.
    fn cmd(&self, device: &str, args: &[&str]) -> Command {
        let mut c = deltasync();
        for (k, v) in self.keyring.env() {
            c.env(k, v);
        }
        c.arg("-C").arg(self.dir(device)).args(args);
        c
    }

    fn run(&self, device: &str, args: &[&str]) -> Run {
        Run::command(self.cmd(device, args).stdin(Stdio::null()))
    }

    fn run_with_stdin(&self, device: &str, args: &[&str], input: &str) -> Run {
        let mut child = self
            .cmd(device, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::of(child.wait_with_output().unwrap())
    }

    fn ok(&self, device: &str, args: &[&str]) -> Run {
        let r = self.run(device, args);
        assert_eq!(
            r.code,
            Some(EXIT_OK),
            "deltasync {args:?} on {device}:\n{r}"
        );
        self.assert_no_password(&r);
        r
    }

    fn init_args(&self) -> Vec<String> {
        [
            "init",
            "--remote",
            self.server.url(),
            "--user",
            self.server.user(),
            "--device",
            "x",
            "--collection",
            "tasks=dir:tasks",
            "--keyring",
        ]
        .map(String::from)
        .to_vec()
    }

    fn assert_no_password(&self, r: &Run) {
        let pw = self.server.password();
        assert!(!r.all().contains(pw), "the password was printed:\n{r}");
    }

    /// No file under the test's folders (workspaces, their state) holds the password.
    fn assert_password_in_no_file(&self) {
        fn walk(dir: &Path, pw: &[u8]) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, pw);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    assert!(
                        !bytes.windows(pw.len()).any(|w| w == pw),
                        "{} holds the password",
                        path.display()
                    );
                }
            }
        }
        walk(self.root.path(), self.server.password().as_bytes());
    }

    fn write_task(&self, device: &str, id: &str, title: &str) {
        let dir = self.dir(device).join("tasks");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{id}.json")),
            format!(r#"{{"id": "{id}", "title": "{title}"}}"#),
        )
        .unwrap();
    }

    fn read_task(&self, device: &str, id: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(device).join(format!("tasks/{id}.json"))).ok()
    }
}

#[test]
fn init_login_sync_and_logout_through_the_keyring() {
    let Some(s) = setup() else { return };
    let account = s.account();
    let pw = s.server.password().to_string();

    // A: init asks for the password (here on stdin), probes with it, then stores it.
    let args = s.init_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut with_stdin = args.clone();
    with_stdin.push("--password-stdin");
    // A mistyped password: the probe is refused, nothing is stored, no deltasync.toml.
    let r = s.run_with_stdin("a", &with_stdin, "mistyped\n");
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("401"), "{r}");
    assert!(!r.all().contains("mistyped"), "{r}");
    assert_eq!(s.keyring.lookup(SERVICE, &account), None);
    assert!(!s.dir("a").join("deltasync.toml").exists());

    let r = s.run_with_stdin("a", &with_stdin, &format!("{pw}\n"));
    assert_eq!(r.code, Some(EXIT_OK), "{r}");
    s.assert_no_password(&r);
    assert!(
        r.stdout
            .contains(&format!("Stored the password of {account}")),
        "{r}"
    );
    // Another client of the keyring finds it under service/username.
    assert_eq!(s.keyring.lookup(SERVICE, &account).as_deref(), Some(&*pw));
    let toml = std::fs::read_to_string(s.dir("a").join("deltasync.toml")).unwrap();
    assert!(toml.contains("keyring = true"), "{toml}");

    // Syncs take the password from the keyring alone; status says so.
    s.write_task("a", "t1", "from a");
    s.ok("a", &["sync"]);
    let r = s.ok("a", &["status"]);
    assert!(
        r.stdout
            .contains(&format!("password: system keyring ({account})")),
        "{r}"
    );
    let v = s.ok("a", &["status", "--json"]).json();
    assert_eq!(v["password_from"]["kind"], "keyring");
    assert_eq!(v["password_from"]["detail"], account.as_str());

    // B joins with the password already in the keyring: nothing is asked (stdin is closed).
    let r = s.ok("b", &args);
    assert!(!r.stdout.contains("Stored the password"), "{r}");
    s.ok("b", &["sync"]);
    assert!(s.read_task("b", "t1").unwrap().contains("from a"));

    // logout removes it from the keyring; the next sync says what to do, and fails.
    let r = s.ok("b", &["logout"]);
    assert!(
        r.stdout
            .contains(&format!("Removed the password of {account}")),
        "{r}"
    );
    assert_eq!(s.keyring.lookup(SERVICE, &account), None);
    let r = s.run("a", &["sync"]);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("deltasync login"), "{r}");
    assert!(r.stderr.contains(&account), "{r}");
    let r = s.ok("b", &["logout"]);
    assert!(r.stdout.contains("held no password"), "{r}");

    // login with a wrong password: refused by the server, nothing stored.
    let r = s.run_with_stdin("a", &["login", "--password-stdin"], "not-the-password\n");
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("refused the password"), "{r}");
    assert!(!r.all().contains("not-the-password"), "{r}");
    assert_eq!(s.keyring.lookup(SERVICE, &account), None);

    // login with the right one: stored, and syncing works again on both.
    let r = s.run_with_stdin("a", &["login", "--password-stdin"], &format!("{pw}\n"));
    assert_eq!(r.code, Some(EXIT_OK), "{r}");
    s.assert_no_password(&r);
    assert_eq!(s.keyring.lookup(SERVICE, &account).as_deref(), Some(&*pw));
    s.write_task("b", "t2", "from b");
    // Even the most verbose log holds no password (nor its basic-auth encoding).
    let r = Run::command(
        s.cmd("b", &["sync"])
            .env("DELTASYNC_LOG", "trace")
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(EXIT_OK), "{r}");
    s.assert_no_password(&r);
    let basic = base64_of(&format!("{}:{pw}", s.server.user()));
    assert!(
        !r.all().contains(&basic),
        "the Authorization header was logged"
    );
    s.ok("a", &["sync"]);
    assert!(s.read_task("a", "t2").unwrap().contains("from b"));

    // Without a terminal and without --password-stdin, login says how to give it.
    let r = s.run("a", &["login"]);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("--password-stdin"), "{r}");

    s.assert_password_in_no_file();
}

#[test]
fn login_replaces_a_password_variable_and_a_wrong_keyring_password_is_refused() {
    let Some(s) = setup() else { return };
    let account = s.account();
    let pw = s.server.password().to_string();
    // A workspace that takes its password from an environment variable.
    let r = Run::command(
        s.cmd(
            "a",
            &[
                "init",
                "--remote",
                s.server.url(),
                "--user",
                s.server.user(),
                "--collection",
                "tasks=dir:tasks",
            ],
        )
        .env("DELTASYNC_PASSWORD", &pw)
        .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(EXIT_OK), "{r}");
    let r = s.run_with_stdin("a", &["login", "--password-stdin"], &format!("{pw}\r\n"));
    assert_eq!(r.code, Some(EXIT_OK), "{r}");
    let toml = std::fs::read_to_string(s.dir("a").join("deltasync.toml")).unwrap();
    assert!(toml.contains("keyring = true"), "{toml}");
    // The CRLF of a Windows-style line is not part of the password.
    assert_eq!(s.keyring.lookup(SERVICE, &account).as_deref(), Some(&*pw));
    s.write_task("a", "t1", "x");
    s.ok("a", &["sync"]);

    // A wrong password put in the keyring by another tool: a clear 401, naming URL and user.
    s.keyring
        .store(SERVICE, &account, "wrong-password-from-secret-tool")
        .unwrap();
    let r = s.run("a", &["sync"]);
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("401"), "{r}");
    assert!(r.stderr.contains(s.server.user()), "{r}");
    assert!(!r.all().contains("wrong-password-from-secret-tool"), "{r}");

    // Put right by secret-tool: deltasync reads what another client stored.
    s.keyring.store(SERVICE, &account, &pw).unwrap();
    s.ok("a", &["sync"]);

    // A locked keyring (screen lock, logout) whose unlock prompt cannot be shown: a temporary
    // failure that says why, at once.
    s.keyring.lock().unwrap();
    let start = Instant::now();
    let r = s.run("a", &["sync"]);
    assert_eq!(r.code, Some(EXIT_TEMPORARY), "{r}");
    assert!(r.stderr.contains("is it locked?"), "{r}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    // status sends no request and needs no password: it still works, and says where the
    // password would come from.
    let r = s.ok("a", &["status"]);
    assert!(r.stdout.contains("password: system keyring"), "{r}");
    s.assert_password_in_no_file();
}

/// A workspace whose deltasync.toml takes the password from the keyring, written by hand.
fn keyring_workspace(dir: &Path, url: &str, user: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("deltasync.toml"),
        format!(
            "remote = \"{url}\"\ndevice = \"x\"\n\n[auth]\nuser = \"{user}\"\nkeyring = true\n\n\
             [collections.tasks]\nkind = \"dir\"\npath = \"tasks\"\n"
        ),
    )
    .unwrap();
}

/// A "bus" in `dir` that accepts connections and never says a word; its socket's path.
fn silent_bus(dir: &Path) -> std::path::PathBuf {
    let socket = dir.join("silent-bus");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    socket
}

/// `deltasync -C dir command` with the session bus at `socket`.
fn bus_command(dir: &Path, socket: &Path, command: &str) -> Command {
    let mut c = deltasync();
    c.arg("-C").arg(dir).arg(command).env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", socket.display()),
    );
    c
}

#[test]
fn no_keyring_on_the_bus_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    keyring_workspace(dir.path(), "https://cloud.example.org/dav", "me");
    let start = Instant::now();
    let r = Run::command(
        bus_command(dir.path(), &dir.path().join("no-bus"), "sync")
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("system keyring cannot be reached"), "{r}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_keyring_that_never_answers_times_out_as_temporary() {
    let dir = tempfile::tempdir().unwrap();
    keyring_workspace(dir.path(), "https://cloud.example.org/dav", "me");
    let socket = silent_bus(dir.path());
    let start = Instant::now();
    let r = Run::command(
        bus_command(dir.path(), &socket, "sync")
            .env("DELTASYNC_KEYRING_TIMEOUT", "2")
            .stdin(Stdio::null()),
    );
    let took = start.elapsed();
    assert_eq!(r.code, Some(EXIT_TEMPORARY), "{r}");
    assert!(r.stderr.contains("did not answer within 2 s"), "{r}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn keyring_needs_a_user_and_a_webdav_remote() {
    let dir = tempfile::tempdir().unwrap();
    let r = Run::command(
        deltasync()
            .arg("-C")
            .arg(dir.path())
            .args([
                "init",
                "--remote",
                "https://cloud.example.org/dav",
                "--keyring",
                "--password-stdin",
            ])
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("needs a user name"), "{r}");
    let r = Run::command(
        deltasync()
            .arg("-C")
            .arg(dir.path().join("f"))
            .args(["init", "--remote"])
            .arg(dir.path().join("remote"))
            .arg("--keyring")
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(EXIT_ERROR), "{r}");
    assert!(r.stderr.contains("needs no password"), "{r}");
    // --password-stdin alone is a usage error.
    let r = Run::command(
        deltasync()
            .args(["init", "--remote", "https://h/x", "--password-stdin"])
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(2), "{r}");
}

#[test]
fn watch_waits_for_a_keyring_that_does_not_answer_yet() {
    let dir = tempfile::tempdir().unwrap();
    keyring_workspace(dir.path(), "https://cloud.example.org/dav", "me");
    let socket = silent_bus(dir.path());
    let log = dir.path().join("watch.log");
    let mut child = bus_command(dir.path(), &socket, "watch")
        .env("DELTASYNC_KEYRING_TIMEOUT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("cannot open the workspace yet") || Instant::now() > deadline {
            break text;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "watch exited instead of waiting:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("did not answer within 1 s"), "{text}");
    // Still waiting, not failed, a moment later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "watch exited:\n{text}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Standard base64 (RFC 4648, with padding), to look for a logged basic-auth header.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648() {
    assert_eq!(base64_of("f"), "Zg==");
    assert_eq!(base64_of("fo"), "Zm8=");
    assert_eq!(base64_of("foo"), "Zm9v");
    assert_eq!(base64_of("deltasync:pw"), "ZGVsdGFzeW5jOnB3");
}
