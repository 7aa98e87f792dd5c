//! An in-process stand-in for a Nextcloud 34 WebDAV server (nginx + php-fpm, SQLite, DB file
//! locking, files_versions and files_trashbin on), for tests of what a real Nextcloud does to a
//! WebDAV client.
//!
//! No package registry ships Nextcloud, so [`Nextcloud`] is a WebDAV server of our own, on
//! `127.0.0.1` only (a thread per connection, so requests really run concurrently), with the
//! user's files on disk in a temporary folder ([`Nextcloud::data_dir`]). It reproduces what
//! was measured on a real Nextcloud 34.0.1:
//!
//! 1. **File cache with same-second ETag reuse.** Per path the server keeps {etag, mtime in
//!    whole seconds, fileid, size}. A PUT sets the mtime to its `X-OC-MTime` header (integer
//!    seconds) if given, else to the current second. If the file existed and the new mtime
//!    equals the stored one, the ETag is **kept** (although size and content changed);
//!    otherwise a new random 13-hex-digit ETag (like PHP's `uniqid()`) is given. A PUT with
//!    `X-OC-MTime` is answered with `X-OC-MTime: accepted`. HEAD, GET and PROPFIND report the
//!    cached ETag, so a `GET` with `If-None-Match: "<etag>"` answers **304 over changed
//!    content** while that ETag is still cached, and `If-Match` is checked against the cached
//!    ETag: a stale one succeeds after a same-second rewrite. Folders have ETags too; a change
//!    inside a folder gives it and its ancestors new ones.
//! 2. Every answer about a file (GET, HEAD, PUT) has `ETag: "<etag>"`, `OC-ETag: "<etag>"`,
//!    `OC-FileId: <8 digits>oc<instance id>` (the fileid stays with the path across rewrites and
//!    MOVEs) and `Last-Modified` from the mtime. PROPFIND (Depth 0 and 1; `infinity` is taken
//!    as 1, as Nextcloud does) answers 207 with `d:getetag` (quoted, as `&quot;`),
//!    `d:getcontentlength` (files), `d:getlastmodified`, `d:resourcetype` (`d:collection` for
//!    folders), `d:getcontenttype` (files), `oc:fileid`, `oc:id` and `oc:size`, where `d:` is
//!    `DAV:` and `oc:` is `http://owncloud.org/ns`; hrefs are percent-encoded as sabre/dav does
//!    and folders end with `/`. Request paths are percent-decoded (`+` stays `+`), so names with
//!    spaces, `+ % & # ?` and non-ASCII work.
//! 3. **Non-atomic If-Match with locking.** A PUT first checks its precondition (`If-Match`
//!    against the cached ETag: 412 on a mismatch or a missing file; `If-None-Match: *`: 412 if
//!    the file exists), then spends a random time (0 to 1.25 × `write_delay`, from the seeded
//!    generator) receiving the body into a part file, as Nextcloud does before it locks, THEN
//!    tries to take the exclusive lock on the path: held by another request, it answers **423
//!    Locked** at once (`OCA\DAV\Connector\Sabre\Exception\FileLocked`). Holding the lock it
//!    sleeps `write_delay` (the write), stores the file, updates the cache and releases. Two
//!    writers that both passed the check can thus both win, when the second takes the lock
//!    after the first released it; most losers get 423, not 412 (measured: 8 parallel PUTs with
//!    one ETag had 2 winners in 3 of 6 rounds). A GET or HEAD of a path whose lock is held
//!    answers 423 too. A racing creator (`If-None-Match: *`) that meets the lock answers 403,
//!    404 or 423, chosen by the seeded generator (measured: "403 and 404 as well as 412").
//!    Whether a PUT answers 201 (created) or 204 is decided at its check, so two racing creators
//!    that both win both answer 201.
//! 4. [`Nextcloud::cold_cache`]`(n)`: the next `n` PUTs answer 404 and store nothing (measured
//!    right after php-fpm restarted: a PUT of a fresh delta got 404). Only PUTs that get past
//!    auth and the parent check count: a PUT into a missing folder still answers 409.
//! 5. **Trash bin.** DELETE (a file, or a folder with its contents) moves it into the trash bin
//!    (`files_trashbin/files/<name>.d<time>` beside the data folder, not under it; listed by
//!    [`Nextcloud::trash`] with the original relative path) unless the request has
//!    `X-NC-Skip-Trashbin: true`, in which case it is really removed. 204 on success, 404 if
//!    missing, 423 if something in it is locked. A MOVE that overwrites its destination moves
//!    the old destination into the trash bin too.
//! 6. **Versions** (files_versions): each overwrite of an existing file keeps the old content as
//!    a version (`files_versions/<path>.v<mtime>`), even within one second; none is ever thinned
//!    (measured: after 200 commits, 101 versions of `meta.json` = 2.15 MB). See
//!    [`Nextcloud::versions`].
//! 7. MKCOL: 201; 405 if it exists; 409 if the parent is missing. A PUT into a missing folder:
//!    409; a PUT onto a folder: 409. MOVE with `Destination` (an absolute URL or path) and
//!    `Overwrite: T|F` (412 when `F` and the target exists): 201, or 204 when it overwrote.
//!    A GET of a folder answers 501, a HEAD of one an empty 200 without ETag (as sabre/dav
//!    does); COPY, PROPPATCH, LOCK: 501.
//! 8. **Auth**: basic auth with the user and its password or any app password issued by Login
//!    Flow v2; otherwise 401 with `WWW-Authenticate: Basic realm="Nextcloud"`. Wrong
//!    credentials are answered only after `failed_login_delay` (brute-force throttling); a
//!    request without credentials gets its 401 at once.
//! 9. `GET /status.php` (no auth) gives Nextcloud 34.0.1's status JSON.
//! 10. **Login Flow v2**: `POST /index.php/login/v2` (no auth) starts a flow and answers with the
//!     poll token and endpoint and the login URL (JSON with `\/`-escaped slashes, as PHP writes
//!     it); `POST /index.php/login/v2/poll` with the form body `token=<token>` answers 404 until
//!     the flow was granted — by [`Nextcloud::approve_login`] or by a GET of the login URL (the
//!     user granting access in the browser) — then once 200 with `server`, `loginName` and a
//!     72-character `appPassword`, after which the token is gone (404). The `/index.php` part
//!     may be left out, as with Nextcloud's pretty URLs.
//!
//! Answers are HTTP/1.1 with keep-alive (`Connection: close` and HTTP/1.0 are honoured) and
//! `Server: nginx`.

mod dav;
mod http;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USER: &str = "deltasync";
const DAV_PREFIX: &str = "/remote.php/dav/files/";
const LEGACY_PREFIX: &str = "/remote.php/webdav";
const STATUS_JSON: &str = r#"{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"34.0.1.0","versionstring":"34.0.1","edition":"","productname":"Nextcloud","extendedSupport":false}"#;
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// How a [`Nextcloud`] behaves.
#[derive(Debug, Clone)]
pub struct NextcloudOptions {
    /// How long a PUT holds the file lock while "writing" (default 30 ms). The time before it
    /// takes the lock (receiving the body) is random, up to 1.25 × this.
    pub write_delay: Duration,
    /// Seed for the random choices: delays, which error a creator meeting a lock gets, ETags
    /// (default: random).
    pub seed: u64,
    /// How long a login with wrong credentials waits before its 401 (default 700 ms).
    pub failed_login_delay: Duration,
}

impl Default for NextcloudOptions {
    fn default() -> Self {
        NextcloudOptions {
            write_delay: Duration::from_millis(30),
            seed: fastrand::u64(..),
            failed_login_delay: Duration::from_millis(700),
        }
    }
}

/// What a [`Nextcloud`] has answered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextcloudStats {
    /// Requests answered.
    pub requests: u64,
    /// Answers by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// 401 answers.
    pub unauthorized: u64,
    /// 423 answers.
    pub locked: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// 304 answers given while the content had changed since that ETag was first handed out
    /// (same-second rewrites that kept the ETag).
    pub stale_304: u64,
    /// DELETEs that moved something into the trash bin.
    pub deletes_to_trash: u64,
    /// DELETEs with `X-NC-Skip-Trashbin: true` that removed something for good.
    pub deletes_skipping_trash: u64,
}

/// One path in the file cache.
#[derive(Debug, Clone)]
struct Entry {
    etag: String,
    /// Whole seconds since the epoch.
    mtime: i64,
    fileid: u64,
    size: u64,
    dir: bool,
    /// Writes to this file so far, and how many there were when the ETag was given out.
    writes: u64,
    etag_writes: u64,
}

struct TrashItem {
    original: String,
}

struct Flow {
    poll_token: String,
    login_token: String,
    granted: bool,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, Entry>,
    locks: HashSet<String>,
    next_fileid: u64,
    cold: usize,
    trash: Vec<TrashItem>,
    versions: (u64, u64),
    flows: Vec<Flow>,
    app_passwords: Vec<String>,
    stats: NextcloudStats,
    uploads: u64,
}

/// What the worker threads share.
struct Shared {
    opts: NextcloudOptions,
    base_url: String,
    password: String,
    /// `oc` and 10 characters, as Nextcloud's `instanceid`.
    instance_id: String,
    files: PathBuf,
    trash_dir: PathBuf,
    versions_dir: PathBuf,
    uploads_dir: PathBuf,
    state: Mutex<State>,
    rng: Mutex<fastrand::Rng>,
}

/// A running Nextcloud stand-in on `127.0.0.1`; stopped when dropped.
pub struct Nextcloud {
    shared: Arc<Shared>,
    // Stopped first (fields drop in declaration order): no request runs once the folder goes.
    _http: http::HttpServer,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Nextcloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nextcloud")
            .field("url", &self.url())
            .field("user", &USER)
            .field("password", &"***")
            .finish()
    }
}

impl Nextcloud {
    /// Starts a Nextcloud stand-in with the default options.
    pub fn start() -> std::io::Result<Nextcloud> {
        Self::start_with(NextcloudOptions::default())
    }

    /// Starts a Nextcloud stand-in on a free port of `127.0.0.1`.
    pub fn start_with(opts: NextcloudOptions) -> std::io::Result<Nextcloud> {
        let dir = tempfile::Builder::new()
            .prefix("deltasync-nextcloud-")
            .tempdir()?;
        let user_dir = dir.path().join("data").join(USER);
        let files = user_dir.join("files");
        let trash_dir = user_dir.join("files_trashbin").join("files");
        let versions_dir = user_dir.join("files_versions");
        let uploads_dir = user_dir.join("uploads");
        for d in [&files, &trash_dir, &versions_dir, &uploads_dir] {
            fs::create_dir_all(d)?;
        }
        let mut rng = fastrand::Rng::with_seed(opts.seed);
        let instance_id = format!(
            "oc{}",
            random_string(&mut rng, 10, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        // The port is known once listening; the handler waits for the shared state.
        let slot: Arc<std::sync::OnceLock<Arc<Shared>>> = Arc::default();
        let handler_slot = slot.clone();
        let server =
            http::HttpServer::start(Arc::new(move |req: &Req| match handler_slot.get() {
                Some(shared) => respond(shared, req),
                None => Reply::new(503),
            }))?;
        let port = server.addr().port();
        let shared = Arc::new(Shared {
            base_url: format!("http://127.0.0.1:{port}"),
            password: random_string(&mut fastrand::Rng::new(), 24, ALNUM),
            instance_id,
            files,
            trash_dir,
            versions_dir,
            uploads_dir,
            state: Mutex::new(State {
                next_fileid: 100,
                ..State::default()
            }),
            rng: Mutex::new(rng),
            opts,
        });
        let _ = slot.set(shared.clone());
        Ok(Nextcloud {
            shared,
            _http: server,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The user's WebDAV root: `{base_url}/remote.php/dav/files/{user}/`.
    pub fn url(&self) -> String {
        format!("{}{DAV_PREFIX}{USER}/", self.shared.base_url)
    }

    /// The user (`deltasync`).
    pub fn user(&self) -> &str {
        USER
    }

    /// The user's login password (random per start), for basic auth.
    pub fn password(&self) -> &str {
        &self.shared.password
    }

    /// The user's files on disk: what [`Nextcloud::url`] maps to.
    pub fn data_dir(&self) -> &Path {
        &self.shared.files
    }

    /// What is in the trash bin (original paths relative to the user's root), oldest first.
    pub fn trash(&self) -> Vec<String> {
        let st = self.shared.state();
        st.trash.iter().map(|t| t.original.clone()).collect()
    }

    /// The old versions kept: (how many, their total bytes).
    pub fn versions(&self) -> (u64, u64) {
        self.shared.state().versions
    }

    /// What the server has answered so far.
    pub fn stats(&self) -> NextcloudStats {
        self.shared.state().stats.clone()
    }

    /// Makes the next `n` PUTs answer 404 and store nothing, as right after php-fpm restarted
    /// (a PUT into a missing folder answers 409 as ever and does not count).
    pub fn cold_cache(&self, n: usize) {
        self.shared.state().cold = n;
    }

    /// The app passwords issued through Login Flow v2 so far.
    pub fn app_passwords(&self) -> Vec<String> {
        self.shared.state().app_passwords.clone()
    }

    /// Grants the Login Flow v2 whose login URL this is, as the user does in the browser;
    /// `false` if no flow has that URL (unknown, or already polled).
    pub fn approve_login(&self, login_url: &str) -> bool {
        let Some((_, rest)) = login_url.split_once("/login/v2/flow/") else {
            return false;
        };
        let token = rest.split(['?', '#', '/']).next().unwrap_or("");
        self.shared.grant(token)
    }
}

fn random_string(rng: &mut fastrand::Rng, len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rng.usize(..alphabet.len())] as char)
        .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An answer: status, headers and body (the HTTP layer adds Date, Server, Content-Length, Connection).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self.header("Content-Type", content_type)
    }

    fn json(status: u16, body: &str) -> Reply {
        Reply::new(status).body("application/json; charset=utf-8", body)
    }

    /// A sabre/dav error document.
    fn sabre(status: u16, exception: &str, message: &str) -> Reply {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\">\n  <s:exception>{}</s:exception>\n  <s:message>{}</s:message>\n</d:error>\n",
            xml_escape(exception),
            xml_escape(message)
        );
        Reply::new(status).body("application/xml; charset=utf-8", body)
    }
}

/// Escapes text for XML content.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON string contents as PHP's `json_encode` writes them (slashes escaped too).
fn json_str(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A request's method, path, query, headers and body.
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers one request and counts the answer.
fn respond(shared: &Shared, req: &Req) -> Reply {
    let reply = route(shared, req);
    let mut st = shared.state();
    let s = &mut st.stats;
    s.requests += 1;
    *s.by_status.entry(reply.status).or_default() += 1;
    match reply.status {
        401 => s.unauthorized += 1,
        423 => s.locked += 1,
        304 => s.not_modified += 1,
        _ => {}
    }
    drop(st);
    reply
}

fn route(shared: &Shared, req: &Req) -> Reply {
    let path = req.path.as_str();
    if path == "/status.php" {
        return match req.method.as_str() {
            "GET" | "HEAD" => Reply::json(200, STATUS_JSON),
            _ => Reply::new(405),
        };
    }
    let login = path.strip_prefix("/index.php").unwrap_or(path);
    if let Some(rest) = login.strip_prefix("/login/v2") {
        return shared.login_flow(req, rest);
    }
    let rel = if let Some(rest) = path.strip_prefix(DAV_PREFIX) {
        let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some(denied) = shared.authenticate(req) {
            return denied;
        }
        if decode(user).as_deref() != Some(USER) {
            return Reply::sabre(
                404,
                "Sabre\\DAV\\Exception\\NotFound",
                &format!("Principal with name {user} not found"),
            );
        }
        rest
    } else if let Some(rest) = path.strip_prefix(LEGACY_PREFIX) {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Reply::new(404);
        }
        if let Some(denied) = shared.authenticate(req) {
            return denied;
        }
        rest
    } else {
        return Reply::new(404).body("text/html; charset=utf-8", "<h1>Page not found</h1>\n");
    };
    match relative_path(rel) {
        Some(rel) => dav::dispatch(shared, req, &rel),
        None => Reply::sabre(400, "Sabre\\DAV\\Exception\\BadRequest", "Invalid path"),
    }
}

/// Percent-decodes a path (`+` stays `+`); `None` if it is not UTF-8.
fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The decoded path below the user's root, segments joined with `/` (`""` is the root);
/// `None` for `.`/`..` segments, NUL or invalid UTF-8.
fn relative_path(raw: &str) -> Option<String> {
    let mut segments = Vec::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        let seg = decode(seg)?;
        if seg == "." || seg == ".." || seg.contains('\0') || seg.contains('/') {
            return None;
        }
        segments.push(seg);
    }
    Some(segments.join("/"))
}

/// Decodes standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes `application/x-www-form-urlencoded` and returns the value of `key`.
fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(&k.replace('+', " "))?;
        (k == key).then(|| decode(&v.replace('+', " ")))?
    })
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rng<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new ETag: 13 hex digits, like PHP's `uniqid()`.
    fn new_etag(&self) -> String {
        self.rng(|r| format!("{:013x}", r.u64(..1 << 52)))
    }

    /// `None` if the request's basic auth is the user with its password or an app password;
    /// else the 401 to answer (after the brute-force delay when credentials were wrong).
    fn authenticate(&self, req: &Req) -> Option<Reply> {
        let given = req.header("Authorization").and_then(|h| {
            let (scheme, value) = h.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| base64_decode(value))?
        });
        if let Some(raw) = &given {
            let raw = String::from_utf8_lossy(raw);
            if let Some((user, pass)) = raw.split_once(':') {
                let ok = user == USER
                    && (pass == self.password
                        || self.state().app_passwords.iter().any(|p| p == pass));
                if ok {
                    return None;
                }
            }
        }
        if req.header("Authorization").is_some() {
            std::thread::sleep(self.opts.failed_login_delay);
        }
        Some(
            Reply::sabre(
                401,
                "Sabre\\DAV\\Exception\\NotAuthenticated",
                "No public access to this resource., No 'Authorization: Basic' header found, Username or password was incorrect",
            )
            .header("WWW-Authenticate", "Basic realm=\"Nextcloud\""),
        )
    }

    /// Marks the flow with this login token as granted.
    fn grant(&self, login_token: &str) -> bool {
        let mut st = self.state();
        match st
            .flows
            .iter_mut()
            .find(|f| !login_token.is_empty() && f.login_token == login_token)
        {
            Some(flow) => {
                flow.granted = true;
                true
            }
            None => false,
        }
    }

    /// `/index.php/login/v2…`; `rest` is what follows `/login/v2`.
    fn login_flow(&self, req: &Req, rest: &str) -> Reply {
        let base = json_str(&self.base_url);
        match (req.method.as_str(), rest.trim_end_matches('/')) {
            ("POST", "") => {
                let mut r = fastrand::Rng::new();
                let flow = Flow {
                    poll_token: random_string(&mut r, 64, ALNUM),
                    login_token: random_string(&mut r, 64, ALNUM),
                    granted: false,
                };
                let body = format!(
                    r#"{{"poll":{{"token":"{}","endpoint":"{base}\/index.php\/login\/v2\/poll"}},"login":"{base}\/index.php\/login\/v2\/flow\/{}"}}"#,
                    flow.poll_token, flow.login_token
                );
                self.state().flows.push(flow);
                Reply::json(200, &body)
            }
            ("POST", "/poll") => {
                let form = String::from_utf8_lossy(&req.body);
                let token = form_value(&form, "token").or_else(|| form_value(&req.query, "token"));
                let mut st = self.state();
                let found = token.and_then(|t| {
                    st.flows
                        .iter()
                        .position(|f| f.granted && !t.is_empty() && f.poll_token == t)
                });
                let Some(i) = found else {
                    return Reply::json(404, "[]");
                };
                st.flows.remove(i);
                let password = random_string(&mut fastrand::Rng::new(), 72, ALNUM);
                st.app_passwords.push(password.clone());
                Reply::json(
                    200,
                    &format!(
                        r#"{{"server":"{base}","loginName":"{USER}","appPassword":"{password}"}}"#
                    ),
                )
            }
            ("GET", flow) if flow.starts_with("/flow/") => {
                if self.grant(&flow["/flow/".len()..]) {
                    Reply::new(200).body(
                        "text/html; charset=utf-8",
                        "<!DOCTYPE html>\n<html><body><h2>Account connected</h2><p>Your client should now be connected! You can close this window.</p></body></html>\n",
                    )
                } else {
                    Reply::new(403).body(
                        "text/html; charset=utf-8",
                        "<!DOCTYPE html>\n<html><body><h2>Access forbidden</h2><p>Your login token is invalid or has expired</p></body></html>\n",
                    )
                }
            }
            _ => Reply::new(404).body("text/html; charset=utf-8", "<h1>Page not found</h1>\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("ZGVsdGFzeW5jOnB3").unwrap(), b"deltasync:pw");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn paths_are_decoded_and_checked() {
        assert_eq!(relative_path("/a%20b/c+d%3F/").unwrap(), "a b/c+d?");
        assert_eq!(relative_path("").unwrap(), "");
        assert_eq!(relative_path("//x//").unwrap(), "x");
        assert!(relative_path("/a/../b").is_none());
        assert!(relative_path("/a%2Fb").is_none());
        assert!(relative_path("/%FF").is_none());
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_value("a=1&token=x%2By+z", "token").unwrap(), "x+y z");
        assert!(form_value("a=1", "token").is_none());
    }

    #[test]
    fn json_escapes_like_php() {
        assert_eq!(json_str("http://a/b\"c"), "http:\\/\\/a\\/b\\\"c");
    }
}
