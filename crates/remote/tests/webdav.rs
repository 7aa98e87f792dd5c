//! The WebDAV backend against real servers started by `deltasync-testservers`: for each one,
//! the probe's verdict (DESIGN §3's table), the shared conformance suite, refused credentials,
//! and racing conditional writes. A server that is not installed is skipped with a loud
//! `SKIPPED:` line, except under `CI=true`, where it fails (install them with
//! `scripts/install-test-servers`). Each server is its own test; they run one at a time so that
//! their timing-sensitive probes do not disturb each other.

use std::sync::{Barrier, Mutex};

use deltasync_remote::{
    CasClass, Etag, GetResult, PutMode, Remote, RemoteError, Secret, WebDav, WebDavOptions,
    conformance,
};
use deltasync_testservers::{Kind, Server, start_or_skip};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn open(server: &Server, folder: &str, password: &str) -> WebDav {
    let url = format!("{}{folder}", server.url());
    WebDav::open(
        &url,
        &WebDavOptions::with_credentials(server.user(), Secret::new(password)),
    )
    .unwrap_or_else(|e| panic!("{}: open {url}: {e}", server.kind()))
}

/// Runs the whole check list against one server; `expected` are the classes DESIGN §3 allows.
fn check_server(kind: Kind, expected: &[CasClass]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = start_or_skip(kind) else {
        return;
    };
    let on_failure = Guard(&server);
    // A folder with a space and a non-ASCII letter: paths are percent-encoded per segment,
    // and the remote's root folder does not exist yet (created by MKCOL on first write).
    let dav = open(&server, "deltasync tëst/", server.password());

    probe_matches_the_table(&server, &dav, expected);
    conformance_suite(&server, &dav);
    basic_operations(&server, &dav);
    wrong_password_is_refused(&server);
    racing_if_match(&server, &dav);
    std::mem::forget(on_failure);
}

/// Prints the server's log when a check panics.
struct Guard<'a>(&'a Server);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- {} log (tail) ---\n{}", self.0.kind(), tail.join("\n"));
        }
    }
}

fn probe_matches_the_table(server: &Server, dav: &WebDav, expected: &[CasClass]) {
    let report = dav
        .probe()
        .unwrap_or_else(|e| panic!("{}: probe failed: {e}", server.kind()));
    eprintln!("=== {} probe ({} ms)", server.kind(), report.elapsed_ms);
    for line in report.explain() {
        eprintln!("    {line}");
    }
    assert!(
        expected.contains(&report.class),
        "{}: probe says {} ({:?}), DESIGN §3 expects one of {:?}",
        server.kind(),
        report.class,
        report,
        expected
    );
    assert_eq!(dav.capabilities(), report.capabilities());
    if server.kind() == Kind::Apache {
        assert!(
            report.weak_window_ms >= 1000,
            "apache: no weak-ETag window found: {report:?}"
        );
    }
    // The probe cleans up after itself.
    let left: Vec<String> = dav
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.starts_with(".deltasync-probe"))
        .collect();
    assert!(left.is_empty(), "{}: probe left {left:?}", server.kind());
}

fn conformance_suite(server: &Server, dav: &WebDav) {
    let probed = dav.capabilities();
    if server.kind() == Kind::SabreDav && probed.cas == CasClass::Atomic {
        // The probe did not catch one of sabre/dav's rare double creates this time; the suite's
        // one-round create race could, so hold it to what was measured over many rounds. Its
        // If-Match race is still held to one winner by `racing_if_match`.
        dav.set_capabilities(deltasync_remote::Capabilities {
            cas: CasClass::NonAtomic,
            ..probed.clone()
        });
    }
    let report = conformance::run(dav);
    dav.set_capabilities(probed);
    let report = report.unwrap_or_else(|e| panic!("{}: conformance: {e}", server.kind()));
    eprintln!(
        "=== {} conformance: {} passed, {} skipped",
        server.kind(),
        report.passed.len(),
        report.skipped.len()
    );
    for s in &report.skipped {
        eprintln!("    skipped {}: {}", s.check, s.reason);
    }
    for n in &report.notes {
        eprintln!("    note: {n}");
    }
}

fn basic_operations(server: &Server, dav: &WebDav) {
    let k = server.kind();
    let path = "odd names/a b+c%d&e#f?.json";
    let etag = dav
        .put(path, b"{\"x\":1}", &PutMode::CreateOnly)
        .unwrap_or_else(|e| panic!("{k}: put {path}: {e}"))
        .unwrap_or_else(|| panic!("{k}: no etag after put"));
    // The file landed where the path says, byte for byte.
    let on_disk = server
        .data_dir()
        .join("deltasync tëst/odd names/a b+c%d&e#f?.json");
    assert_eq!(
        std::fs::read(&on_disk).unwrap_or_else(|e| panic!("{k}: {}: {e}", on_disk.display())),
        b"{\"x\":1}"
    );
    assert_eq!(
        dav.get(path, Some(&etag)).unwrap(),
        GetResult::NotModified,
        "{k}: conditional GET"
    );
    let listed = dav.list("odd names").unwrap();
    assert_eq!(listed.len(), 1, "{k}: {listed:?}");
    assert_eq!(listed[0].name, "a b+c%d&e#f?.json");
    assert_eq!(listed[0].size, 7);
    let head = dav.head(path).unwrap().unwrap();
    assert_eq!(head.size, 7, "{k}");
    // MOVE, then the old name is gone.
    dav.move_to(path, "moved/here.json", false).unwrap();
    assert_eq!(dav.get(path, None).unwrap(), GetResult::NotFound);
    assert!(matches!(
        dav.get("moved/here.json", None).unwrap(),
        GetResult::Found { .. }
    ));
    dav.put("moved/other.json", b"{}", &PutMode::Overwrite)
        .unwrap();
    let e = dav
        .move_to("moved/other.json", "moved/here.json", false)
        .unwrap_err();
    assert!(
        e.is_precondition_failed(),
        "{k}: MOVE without overwrite: {e}"
    );
    dav.delete("odd names").unwrap();
    dav.delete("moved").unwrap();
    assert!(dav.list("moved").unwrap().is_empty(), "{k}");
}

fn wrong_password_is_refused(server: &Server) {
    let k = server.kind();
    let wrong = format!("{}-wrong", server.password());
    let dav = open(server, "deltasync tëst/", &wrong);
    let e = dav.get("meta.json", None).unwrap_err();
    let RemoteError::Auth { url, user, status } = &e else {
        panic!("{k}: a wrong password gave {e:?}")
    };
    assert_eq!(*status, 401, "{k}");
    assert_eq!(user, server.user());
    assert!(url.starts_with(server.url()), "{k}: {url}");
    for text in [
        e.to_string(),
        format!("{e:?}"),
        dav.describe(),
        format!("{dav:?}"),
    ] {
        assert!(!text.contains(&wrong), "{k}: password in {text}");
        assert!(!text.contains(server.password()), "{k}: password in {text}");
    }
    // Writes are refused the same way.
    let e = dav.put("x.json", b"{}", &PutMode::Overwrite).unwrap_err();
    assert!(matches!(e, RemoteError::Auth { .. }), "{k}: {e:?}");
}

/// Eight writers with one ETag: on a server whose CAS the probe trusts, exactly one wins and
/// the file holds the winner's body; elsewhere, report how many won.
fn racing_if_match(server: &Server, dav: &WebDav) {
    let k = server.kind();
    let caps = dav.capabilities();
    let path = "race/meta.json";
    dav.put(path, b"{\"head\":0}", &PutMode::Overwrite).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(caps.weak_window_ms));
    let etag: Etag = dav.head(path).unwrap().unwrap().etag.unwrap();
    const N: usize = 8;
    let barrier = Barrier::new(N);
    let winners: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (barrier, etag) = (&barrier, &etag);
                s.spawn(move || {
                    let body = format!("{{\"head\":1,\"writer\":{i}}}").into_bytes();
                    barrier.wait();
                    match dav.put(path, &body, &PutMode::UpdateIfMatch(etag.clone())) {
                        Ok(_) => Some(body),
                        Err(e) if e.is_precondition_failed() => None,
                        // rclone answers 423 Locked to writes racing on one file.
                        Err(e) if e.is_temporary() => None,
                        Err(e) => panic!("{k}: racing put: {e}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    eprintln!(
        "=== {k} race: {N} writers with one ETag, {} won",
        winners.len()
    );
    let GetResult::Found { body, .. } = dav.get(path, None).unwrap() else {
        panic!("{k}: race file gone")
    };
    // lighttpd lets exactly one of racing If-Match writers win (measured in every round),
    // whatever else the probe found. sabre/dav usually does too, but in 3 of 15 CLI `doctor`
    // runs a round had 2 winners, so it is held only to the class it was probed as.
    let atomic_if_match = matches!(server.kind(), Kind::Lighttpd);
    match caps.cas {
        _ if atomic_if_match => {
            assert_eq!(winners.len(), 1, "{k}: {} writers won", winners.len());
            assert_eq!(body, winners[0], "{k}: the file is not the winner's");
        }
        CasClass::Atomic => {
            assert_eq!(winners.len(), 1, "{k}: {} writers won", winners.len());
            assert_eq!(body, winners[0], "{k}: the file is not the winner's");
        }
        CasClass::WeakWindow | CasClass::NonAtomic | CasClass::None => {
            assert!(!winners.is_empty(), "{k}: nobody won");
            assert!(winners.contains(&body), "{k}: the file is no winner's");
        }
    }
    dav.delete("race").unwrap();
}

#[test]
fn lighttpd() {
    check_server(Kind::Lighttpd, &[CasClass::Atomic]);
}

/// DESIGN §3 has Apache as weak-window with "1, sometimes 2" racing winners. Measured here
/// (Apache 2.4 on 2 cores): up to 4 of 8 racing If-Match writers win, and 2 of 8 racing
/// create-only writers, so the probe usually says non-atomic; the weak-ETag window (about 1 s)
/// is found either way.
#[test]
fn apache() {
    check_server(Kind::Apache, &[CasClass::WeakWindow, CasClass::NonAtomic]);
}

/// DESIGN §3 has sabre/dav 1.8 as atomic, from racing If-Match writers: measured here too,
/// one winner in every round. But racing `If-None-Match: *` creators are not quite atomic: two
/// of eight win in 0–5 % of the rounds (measured), so the probe says non-atomic when it
/// catches one, atomic otherwise.
#[test]
fn sabredav() {
    check_server(Kind::SabreDav, &[CasClass::Atomic, CasClass::NonAtomic]);
}

#[test]
fn wsgidav() {
    check_server(Kind::WsgiDav, &[CasClass::NonAtomic]);
}

#[test]
fn nginx() {
    check_server(Kind::NginxDav, &[CasClass::None]);
}

#[test]
fn rclone() {
    check_server(Kind::Rclone, &[CasClass::None]);
}

/// A server whose certificate no authority signed: a permanent error that says so (here a
/// self-signed certificate served by `openssl s_server` on 127.0.0.1).
#[test]
fn untrusted_certificate_is_a_permanent_explained_error() {
    use std::process::{Command, Stdio};
    let Ok(status) = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
    else {
        if deltasync_testservers::in_ci() {
            panic!(
                "openssl is missing: run scripts/install-test-servers (apt-get install openssl)"
            );
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: openssl is missing (apt-get install openssl) ***\n"
        );
        return;
    };
    assert!(status.success());
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl req failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-www", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dav = WebDav::open(
        &format!("https://127.0.0.1:{port}/dav/"),
        &WebDavOptions::with_credentials("me", Secret::new("tls-test-password")),
    )
    .unwrap();
    let result = dav.get("meta.json", None);
    let _ = server.kill();
    let _ = server.wait();
    let e = result.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("certificate not trusted"), "{msg}");
    assert!(!msg.contains("tls-test-password"), "{msg}");
    eprintln!("untrusted certificate: {msg}");
}

/// The Nextcloud stand-in (`deltasync_testservers::Nextcloud`, built from what was measured on
/// Nextcloud 34): the probe calls it non-atomic and Nextcloud, the conformance suite passes
/// with what the probe found, nothing lands in the trash bin, an explicit mtime gives a fresh
/// ETag where the same second would reuse it, and a PUT of a new file that a cold file cache
/// answers 404 is temporary, not an error.
#[test]
fn nextcloud_stand_in() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nc = deltasync_testservers::Nextcloud::start().unwrap();
    let url = format!("{}deltasync tëst/", nc.url());
    let dav = WebDav::open(
        &url,
        &WebDavOptions::with_credentials(nc.user(), Secret::new(nc.password())),
    )
    .unwrap();
    let report = dav.probe().unwrap();
    for line in report.explain() {
        eprintln!("    {line}");
    }
    assert_eq!(report.class, CasClass::NonAtomic, "{report:?}");
    assert!(report.nextcloud && dav.is_nextcloud());
    assert_eq!(report.summary_json()["nextcloud"], true);
    assert!(nc.trash().is_empty(), "the probe left {:?}", nc.trash());
    let suite = conformance::run(&dav).unwrap();
    eprintln!("    conformance: {} passed", suite.passed.len());

    // Same second, no mtime given: the ETag is reused (what the stand-in reproduces)...
    let e1 = dav
        .put("m.json", b"{\"v\":1}", &PutMode::Overwrite)
        .unwrap()
        .unwrap();
    let e2 = dav
        .put("m.json", b"{\"v\":22}", &PutMode::Overwrite)
        .unwrap()
        .unwrap();
    // ...unless the two PUTs straddled a second; an mtime above the last always gives a new one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let e3 = dav
        .put_with_mtime("m.json", b"{\"v\":333}", &PutMode::Overwrite, now + 5)
        .unwrap()
        .unwrap();
    assert_ne!(e3, e2);
    eprintln!("    same-second rewrite kept the ETag: {}", e1 == e2);
    assert!(matches!(
        dav.get("m.json", Some(&e2)).unwrap(),
        GetResult::Found { .. }
    ));

    // Into an existing folder: 404, MKCOL says it exists, 404 again: temporary.
    dav.put("deltas/first.json", b"{}", &PutMode::CreateOnly)
        .unwrap();
    nc.cold_cache(2);
    let e = dav
        .put("deltas/new.json", b"{}", &PutMode::CreateOnly)
        .unwrap_err();
    assert!(e.is_temporary(), "{e:?}");
    dav.put("deltas/new.json", b"{}", &PutMode::CreateOnly)
        .unwrap();
    dav.delete("deltas").unwrap();
    dav.delete("m.json").unwrap();
    assert!(nc.trash().is_empty(), "{:?}", nc.trash());
}
