//! The WebDAV backend: any WebDAV server, Nextcloud first.
//!
//! Requests go through one blocking [`ureq`] client (rustls, connections reused, no async
//! runtime; [`crate::http`]) with basic auth. Reads and writes are conditional by ETag
//! (`If-None-Match`, `If-Match`, `If-None-Match: *`); ETags are normalised
//! ([`Etag::normalise`]) and Nextcloud's `OC-ETag` is preferred. A `PUT` whose answer carries
//! no ETag is followed by a `HEAD` (then a `PROPFIND`) to learn it. Missing parent folders
//! are created with `MKCOL` when a `PUT` fails for want of them.
//!
//! Errors: 401/403 are [`RemoteError::Auth`] (URL and user, never the password); 412 is
//! [`RemoteError::PreconditionFailed`]; 423, 429, 5xx, timeouts and connection failures are
//! [`RemoteError::Transient`] — retried here, with jittered backoff and `Retry-After` honoured
//! within bounds, only for idempotent requests (GET, HEAD, PROPFIND, DELETE, MKCOL); a failed
//! PUT is returned at once, since only the caller knows whether repeating it is safe. TLS
//! failures are [`RemoteError::Permanent`] and say why.
//!
//! How far a server's compare-and-swap can be trusted is found by [`WebDav::probe`]; until
//! then [`WebDav::capabilities`] says [`CasClass::NonAtomic`] (the safe assumption) unless
//! [`WebDavOptions::capabilities`] says otherwise.
//!
//! Here: the options, the type and its [`Remote`] methods; sending one request (errors,
//! retries, `PROPFIND`) is in `requests.rs`, the `PUT` with its `MKCOL`s in `write.rs`.

mod keyring;
mod login_flow;
mod multistatus;
mod requests;
mod secret;
mod target;
mod write;

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use ureq::http::{HeaderMap, Method};

pub use keyring::{DEFAULT_KEYRING_TIMEOUT, KEYRING_SERVICE, Keyring};
pub use login_flow::{AppPassword, LoginFlow};
pub use secret::{PASSWORD_ENV, Secret, SecretError};
use target::Target;
pub(crate) use target::is_loopback;

use crate::http::{Client, HttpPolicy, Redirects, Response, header, http_date_ms};
use crate::probe::RawPut;
use crate::{
    Capabilities, CasClass, Etag, GetResult, ObjectInfo, PathError, PutMode, Remote, RemoteError,
    check_path,
};

/// How to reach a WebDAV server. `Debug` never shows the password.
#[derive(Debug, Clone, Default)]
pub struct WebDavOptions {
    /// The user for basic auth; when `None`, the user named in the URL (if any).
    pub user: Option<String>,
    /// The password (for Nextcloud: an app password), e.g. from [`Secret::from_env`] or
    /// [`Secret::from_command`]. Never put it in the URL.
    pub password: Option<Secret>,
    /// Allow plain `http://` to a host that is not this machine (the password would travel
    /// unencrypted). Loopback addresses are always allowed.
    pub allow_insecure_http: bool,
    /// Timeouts and retries.
    pub http: HttpPolicy,
    /// Capabilities to assume instead of the safe default (`NonAtomic`) until probed, e.g.
    /// from a stored `doctor` result.
    pub capabilities: Option<Capabilities>,
    /// The server is known to be Nextcloud (recorded by an earlier probe), before any answer
    /// says so.
    pub nextcloud: bool,
}

impl WebDavOptions {
    /// The timeouts and retries.
    pub(crate) fn policy(&self) -> &HttpPolicy {
        &self.http
    }

    /// Options with a user and password.
    pub fn with_credentials(user: impl Into<String>, password: Secret) -> WebDavOptions {
        WebDavOptions {
            user: Some(user.into()),
            password: Some(password),
            ..WebDavOptions::default()
        }
    }
}

/// A WebDAV remote, Nextcloud first.
///
/// One blocking HTTP client (rustls, connections reused) with basic auth. Reads and writes are
/// conditional by ETag; ETags are normalised ([`Etag::normalise`]) and Nextcloud's `OC-ETag` is
/// preferred; a PUT whose answer has no ETag is followed by a HEAD (then a PROPFIND); missing
/// parent folders are created with MKCOL when a PUT fails for want of them.
///
/// Errors: 401/403 are [`RemoteError::Auth`] (URL and user, never the password); 412 is
/// [`RemoteError::PreconditionFailed`]; 423, 429, 5xx, timeouts and connection failures are
/// [`RemoteError::Transient`], retried here (jittered backoff, `Retry-After` within bounds)
/// only for idempotent requests (GET, HEAD, PROPFIND, DELETE, MKCOL); TLS failures are
/// [`RemoteError::Permanent`] and say why. [`WebDav::capabilities`] is non-atomic until
/// [`WebDav::probe`] finds better (or [`WebDavOptions::capabilities`] says otherwise).
///
/// ```no_run
/// use deltasync_remote::{Remote, Secret, WebDav, WebDavOptions, PASSWORD_ENV};
///
/// let password = Secret::from_env(PASSWORD_ENV)?;
/// let dav = WebDav::open(
///     "nextcloud://alice@cloud.example.org/Apps/deltasync",
///     &WebDavOptions::with_credentials("alice", password),
/// )?;
/// for line in dav.probe()?.explain() {
///     println!("{line}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WebDav {
    target: Target,
    user: Option<String>,
    password: Option<Secret>,
    client: Client,
    options: WebDavOptions,
    capabilities: RwLock<Capabilities>,
    /// Known to be Nextcloud (or ownCloud): from the URL, or from an answer's `OC-ETag` /
    /// `OC-FileId` header.
    nextcloud: AtomicBool,
}

/// The capabilities assumed before a probe: compare-and-swap is not trusted to be atomic.
fn unprobed_capabilities() -> Capabilities {
    Capabilities {
        cas: CasClass::NonAtomic,
        conditional_get: true,
        recursive_delete: true,
        weak_window_ms: 0,
        stale_etags: true,
        networked: true,
        retries_reads: true,
    }
}

impl WebDav {
    /// Opens a WebDAV remote: `http(s)://[user@]host[:port]/path` or
    /// `nextcloud://user@host[:port]/path` (which is
    /// `https://host/remote.php/dav/files/user/path`). Sends nothing yet.
    pub fn open(url: &str, options: &WebDavOptions) -> Result<Self, RemoteError> {
        let target = Target::parse(url, options.allow_insecure_http)?;
        let user = options.user.clone().or_else(|| target.user.clone());
        if options.password.is_some() && user.is_none() {
            return Err(RemoteError::Permanent {
                what: format!("remote {}", target.base),
                detail: "a password is given but no user: name one in the options or the URL \
                         (nextcloud://user@host/folder)"
                    .into(),
            });
        }
        // Up to 5 redirects, but not the one from a folder's URL to the same URL with `/`:
        // that answer itself says "this is a folder".
        let client = options.policy().client(Redirects::WebDav);
        Ok(WebDav {
            capabilities: RwLock::new(
                options
                    .capabilities
                    .clone()
                    .unwrap_or_else(unprobed_capabilities),
            ),
            nextcloud: AtomicBool::new(target.nextcloud || options.nextcloud),
            target,
            user,
            password: options.password.clone(),
            client,
            options: options.clone(),
        })
    }

    /// The root URL, without credentials (ends with `/`).
    pub fn base_url(&self) -> &str {
        self.target.base.as_str()
    }

    /// The user sent with basic auth, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether this is a Nextcloud (or ownCloud) server: a `nextcloud://` URL, a
    /// `/remote.php/` path, or — whatever the URL — an answer that carried Nextcloud's own
    /// `OC-ETag` or `OC-FileId` header.
    pub fn is_nextcloud(&self) -> bool {
        self.nextcloud.load(Ordering::Relaxed)
    }

    /// Notes a Nextcloud answer.
    fn note_answer(&self, resp: &Response) {
        let h = resp.headers();
        if (h.contains_key("oc-etag") || h.contains_key("oc-fileid"))
            && !self.nextcloud.swap(true, Ordering::Relaxed)
        {
            tracing::debug!(url = %self.target.base, "the server answers as Nextcloud does");
        }
    }

    /// Replaces the capabilities this remote reports (e.g. from a stored probe result).
    pub fn set_capabilities(&self, capabilities: Capabilities) {
        *self.capabilities.write().unwrap_or_else(|e| e.into_inner()) = capabilities;
    }

    /// Probes the server with throw-away files (see [`crate::probe`]), including what only the
    /// raw HTTP answers show (weak ETags, ETags missing from PUT answers), and from then on
    /// reports the capabilities found.
    pub fn probe(&self) -> Result<crate::ProbeReport, RemoteError> {
        let report = crate::probe::probe_webdav(self)?;
        self.set_capabilities(report.capabilities());
        Ok(report)
    }

    /// Moves (renames) `from` to `to` with `MOVE`, creating `to`'s parent folders. With
    /// `overwrite` false an existing `to` gives [`RemoteError::PreconditionFailed`]. Not
    /// retried on transient failures (a repeated MOVE is not idempotent).
    pub fn move_to(&self, from: &str, to: &str, overwrite: bool) -> Result<(), RemoteError> {
        check_file_path(from)?;
        check_file_path(to)?;
        let src = self.target.url(from);
        let dest = self.target.url(to);
        let what = format!("MOVE {src} to {dest}");
        let send = || -> Result<Response, RemoteError> {
            let req = self
                .request(Method::from_bytes(b"MOVE").expect("valid method"), &src)
                .header("Destination", &dest)
                .header("Overwrite", if overwrite { "T" } else { "F" });
            self.send_raw(&what, req)
        };
        let mut resp = send()?;
        // A missing destination folder: 409 (RFC 4918), 403 (rclone), 500 (Apache).
        if matches!(resp.status().as_u16(), 409 | 404 | 403 | 500) && self.create_parents(&dest)? {
            resp = send()?;
        }
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            412 => Err(RemoteError::PreconditionFailed {
                path: to.to_string(),
            }),
            _ => Err(self.status_error(&what, resp)),
        }
    }

    /// `HEAD` of a file, returning its `ETag` header exactly as sent (`W/"…"` for a weak one);
    /// `None` when missing or without ETag.
    pub fn raw_etag(&self, path: &str) -> Result<Option<String>, RemoteError> {
        check_file_path(path)?;
        let url = self.target.url(path);
        let what = format!("HEAD {url}");
        self.with_retries(true, || {
            let resp = self.send(&what, self.request(Method::HEAD, &url))?;
            match resp.status().as_u16() {
                200..=299 => Ok(header(resp.headers(), "etag").map(str::to_string)),
                404 | 410 => Ok(None),
                _ => Err(self.status_error(&what, resp).into()),
            }
        })
    }

    /// A PUT that reports the answer's ETag header raw, without the HEAD fallback.
    pub(crate) fn put_raw(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<RawPut, RemoteError> {
        check_file_path(path)?;
        let resp = self.put_response(path, body, mode, None)?;
        Ok(RawPut {
            etag: etag_header(resp.headers()).map(str::to_string),
        })
    }
}

impl Remote for WebDav {
    fn get(&self, path: &str, if_none_match: Option<&Etag>) -> Result<GetResult, RemoteError> {
        self.get_max(path, if_none_match, u64::MAX)
    }

    fn get_max(
        &self,
        path: &str,
        if_none_match: Option<&Etag>,
        max_len: u64,
    ) -> Result<GetResult, RemoteError> {
        check_file_path(path)?;
        let url = self.target.url(path);
        let what = format!("GET {url}");
        self.with_retries(true, || {
            let started = std::time::Instant::now();
            let mut req = self.request(Method::GET, &url);
            if let Some(etag) = if_none_match {
                req = req.header("If-None-Match", etag.quoted());
            }
            let resp = self.send(&what, req)?;
            match resp.status().as_u16() {
                200 => {
                    let etag = etag_header(resp.headers()).map(Etag::normalise);
                    let body = self
                        .options
                        .policy()
                        .read_body(&what, path, resp, max_len, started)?;
                    Ok(GetResult::Found { body, etag })
                }
                304 => Ok(GetResult::NotModified),
                404 | 410 => Ok(GetResult::NotFound),
                _ => Err(self.status_error(&what, resp).into()),
            }
        })
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        self.put_at(path, body, mode, None)
    }

    fn put_with_mtime(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: u64,
    ) -> Result<Option<Etag>, RemoteError> {
        self.put_at(path, body, mode, Some(mtime))
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        check_file_path(path)?;
        let url = self.target.url(path);
        let what = format!("HEAD {url}");
        let answer = self.with_retries(true, || {
            let resp = self.send(&what, self.request(Method::HEAD, &url))?;
            match resp.status().as_u16() {
                200..=299 => {
                    let h = resp.headers();
                    let etag = etag_header(h).map(Etag::normalise);
                    let size = header(h, "content-length").and_then(|v| v.parse().ok());
                    let is_dir = header(h, "content-type")
                        .is_some_and(|t| t.starts_with("httpd/unix-directory"));
                    // sabre/dav (and so Nextcloud) answers HEAD on a folder with the 200 of a
                    // GET that failed, saying so in X-Sabre-Real-Status.
                    let failed_get = header(h, "x-sabre-real-status")
                        .is_some_and(|status| !status.starts_with('2'));
                    if failed_get || (etag.is_none() && size.is_none() && !is_dir) {
                        // No ETag and no length: probably a folder; ask PROPFIND.
                        return Ok(Head::AskPropfind);
                    }
                    Ok(Head::Found(ObjectInfo {
                        name: path.to_string(),
                        // Not `content_length()`: for HEAD it is the (empty) body's length.
                        size: size.unwrap_or(0),
                        etag,
                        is_dir,
                        modified_ms: header(h, "last-modified").and_then(http_date_ms),
                    }))
                }
                404 | 410 => Ok(Head::Missing),
                // A folder: redirected to its URL with '/' (lighttpd, nginx), or HEAD refused
                // on folders (403 wsgidav, 405 rclone). PROPFIND tells; real auth failures
                // fail there too.
                300..=399 | 403 | 405 => Ok(Head::AskPropfind),
                _ => Err(self.status_error(&what, resp).into()),
            }
        })?;
        match answer {
            Head::Found(info) => Ok(Some(info)),
            Head::Missing => Ok(None),
            Head::AskPropfind => {
                let entries = self.propfind(path, &url, "0")?.unwrap_or_default();
                Ok(entries.into_iter().next().map(|e| ObjectInfo {
                    name: path.to_string(),
                    size: if e.is_dir { 0 } else { e.size.unwrap_or(0) },
                    etag: e.etag.as_deref().map(Etag::normalise),
                    is_dir: e.is_dir,
                    modified_ms: e.modified.as_deref().and_then(http_date_ms),
                }))
            }
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        check_path(dir)?;
        let url = self.target.dir_url(dir);
        let Some(entries) = self.propfind(dir, &url, "1")? else {
            return Ok(Vec::new());
        };
        let own = format!(
            "{}{}",
            self.target.base_path,
            if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            }
        );
        let own_trimmed = own.trim_end_matches('/');
        let mut out = Vec::new();
        for e in entries {
            let path = target::href_path(&e.href);
            let trimmed = path.trim_end_matches('/');
            if trimmed == own_trimmed {
                continue;
            }
            let name = match trimmed.strip_prefix(own.as_str()) {
                Some(rest) => rest,
                // A server that rewrote the href: take its last segment.
                None => trimmed.rsplit('/').next().unwrap_or_default(),
            };
            if name.is_empty() || name.contains('/') {
                continue;
            }
            out.push(ObjectInfo {
                name: name.to_string(),
                size: if e.is_dir { 0 } else { e.size.unwrap_or(0) },
                etag: e.etag.as_deref().map(Etag::normalise),
                is_dir: e.is_dir,
                modified_ms: e.modified.as_deref().and_then(http_date_ms),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        check_file_path(path)?;
        let url = self.target.url(path);
        let what = format!("DELETE {url}");
        let delete = |url: &str| {
            self.with_retries(true, || {
                // Nextcloud would keep every deleted file in the user's trash bin: folded
                // deltas and probe files are litter, not something to restore.
                let req = self
                    .request(Method::DELETE, url)
                    .header("Depth", "infinity")
                    .header("X-NC-Skip-Trashbin", "true");
                self.send(&what, req)
            })
        };
        let mut resp = delete(&url)?;
        if matches!(resp.status().as_u16(), 409 | 300..=399) {
            // nginx wants a folder's URL to end with '/' (409); others redirect to it.
            resp = delete(&format!("{url}/"))?;
        }
        match resp.status().as_u16() {
            200..=206 | 208..=299 | 404 | 410 => Ok(()),
            207 => Err(RemoteError::Permanent {
                what,
                detail: "some of the folder's contents could not be deleted".into(),
            }),
            _ => Err(self.status_error(&what, resp)),
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = self
            .capabilities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Whatever a probe saw: a same-second rewrite can keep its ETag on many servers, and
        // a probe that happened not to see it proves nothing.
        caps.stale_etags = true;
        // What this backend is, whatever a probe or a configuration said.
        caps.networked = true;
        caps.retries_reads = self.options.policy().retries > 0;
        caps
    }

    fn describe(&self) -> String {
        self.target.base.to_string()
    }
}

/// What a HEAD found.
enum Head {
    Found(ObjectInfo),
    Missing,
    AskPropfind,
}

/// Paths of files (not the root) must be non-empty.
fn check_file_path(path: &str) -> Result<(), RemoteError> {
    check_path(path)?;
    if path.is_empty() {
        return Err(PathError {
            path: String::new(),
            reason: "the remote root itself",
        }
        .into());
    }
    Ok(())
}

/// `OC-ETag` (Nextcloud) if present, else `ETag`.
fn etag_header(h: &HeaderMap) -> Option<&str> {
    header(h, "oc-etag").or_else(|| header(h, "etag"))
}

#[cfg(test)]
mod tests;
