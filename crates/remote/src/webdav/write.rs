//! Writing a file over WebDAV: the conditional `PUT`, parent folders made with `MKCOL` when it
//! fails for want of them, and the ETag learnt by `HEAD` or `PROPFIND` when its answer has none.

use std::time::{SystemTime, UNIX_EPOCH};

use ureq::http::Method;

use super::{WebDav, check_file_path, etag_header, target};
use crate::http::Response;
use crate::{CasClass, Etag, PutMode, Remote, RemoteError};

impl WebDav {
    /// One PUT (and, for want of its folder, MKCOL and the PUT again). Every PUT carries
    /// `X-OC-MTime` — `mtime`, or now — which Nextcloud and ownCloud take as the file's
    /// modification time (and so as what decides whether its ETag changes); other servers
    /// ignore it.
    pub(super) fn put_response(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Response, RemoteError> {
        let url = self.target.url(path);
        let what = format!("PUT {url}");
        let send = || -> Result<Response, RemoteError> {
            let mut req = self
                .request(Method::PUT, &url)
                .header(
                    "Content-Type",
                    if path.ends_with(".json") {
                        "application/json"
                    } else {
                        "application/octet-stream"
                    },
                )
                .body(body.to_vec());
            req = match mode {
                PutMode::CreateOnly => req.header("If-None-Match", "*"),
                PutMode::UpdateIfMatch(etag) => req.header("If-Match", etag.quoted()),
                PutMode::Overwrite => req,
            };
            let mtime = mtime.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
            });
            req = req.header("X-OC-MTime", mtime.to_string());
            self.send_raw(&what, req)
        };
        let resp = send()?;
        let code = resp.status().as_u16();
        // A missing parent folder: 409 (RFC 4918), 404 (sabre/dav, rclone), 500 (nginx).
        if matches!(code, 404 | 409 | 500) {
            if self.create_parents(&url)? {
                if matches!(mode, PutMode::UpdateIfMatch(_)) {
                    // The folder did not exist, so neither did the file.
                    return Err(RemoteError::PreconditionFailed {
                        path: path.to_string(),
                    });
                }
                return check_put(self, &what, path, send()?);
            }
            if code != 500 && matches!(mode, PutMode::UpdateIfMatch(_)) {
                return Err(RemoteError::PreconditionFailed {
                    path: path.to_string(),
                });
            }
            // The folder exists now although our MKCOL created nothing: another writer
            // created it between our PUT and our MKCOL. Send the PUT once more.
            if code != 500 {
                let resp = send()?;
                return self.check_create(&what, path, mode, resp);
            }
        }
        self.check_create(&what, path, mode, resp)
    }

    /// [`check_put`], and for a create-only PUT answered 404 (or, on Nextcloud, 403) although
    /// its folder exists: Nextcloud says so right after php-fpm restarts (its file cache is
    /// not warm) and to racing creators. A file there now is a lost race (412); otherwise it
    /// is worth another try.
    fn check_create(
        &self,
        what: &str,
        path: &str,
        mode: &PutMode,
        resp: Response,
    ) -> Result<Response, RemoteError> {
        let code = resp.status().as_u16();
        let odd = code == 404 || (code == 403 && self.is_nextcloud());
        if !odd || *mode != PutMode::CreateOnly {
            return check_put(self, what, path, resp);
        }
        if self.head(path)?.is_some() {
            return Err(RemoteError::PreconditionFailed {
                path: path.to_string(),
            });
        }
        Err(RemoteError::Transient {
            what: what.to_string(),
            detail: format!(
                "HTTP {} although the folder exists (a server whose file cache lags, as \
                 Nextcloud's does right after a restart)",
                resp.status()
            ),
        })
    }

    /// Makes sure the collection holding `url` exists; `true` if something was created.
    pub(super) fn create_parents(&self, url: &str) -> Result<bool, RemoteError> {
        match target::parent_url(url) {
            Some(parent) => self.make_collection(&parent, 0),
            None => Ok(false),
        }
    }

    /// `MKCOL` of `url`, and of its parents first when the server says they are missing (up to
    /// 64 levels); `true` if something was created.
    fn make_collection(&self, url: &str, depth: usize) -> Result<bool, RemoteError> {
        let what = format!("MKCOL {url}");
        let mkcol = || {
            self.with_retries(true, || {
                let resp = self.send(
                    &what,
                    self.request(Method::from_bytes(b"MKCOL").expect("valid"), url),
                )?;
                Ok(resp)
            })
        };
        let resp = mkcol()?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            // Exists already (405 per RFC 4918; some servers say 301 for a folder URL).
            405 | 301 | 302 => Ok(false),
            409 | 404 if depth < 64 => match target::parent_url(url) {
                Some(parent) => {
                    self.make_collection(&parent, depth + 1)?;
                    let resp = mkcol()?;
                    match resp.status().as_u16() {
                        200..=299 => Ok(true),
                        405 => Ok(false),
                        _ => Err(self.status_error(&what, resp)),
                    }
                }
                None => Err(self.status_error(&what, resp)),
            },
            _ => Err(self.status_error(&what, resp)),
        }
    }

    /// [`Remote::put`] with an optional `X-OC-MTime`.
    pub(super) fn put_at(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
        mtime: Option<u64>,
    ) -> Result<Option<Etag>, RemoteError> {
        check_file_path(path)?;
        if matches!(mode, PutMode::UpdateIfMatch(_))
            && self.capabilities().cas == CasClass::NonAtomic
            && self.head(path)?.is_none()
        {
            // Servers not proven atomic may ignore If-Match on a missing file and create it
            // (wsgidav does): refuse that case here. Only existence is checked, not the ETag,
            // so what the server itself does with If-Match stays visible (to the probe too).
            return Err(RemoteError::PreconditionFailed {
                path: path.to_string(),
            });
        }
        let resp = self.put_response(path, body, mode, mtime)?;
        match etag_header(resp.headers()) {
            Some(raw) => Ok(Some(Etag::normalise(raw))),
            None => self.etag_after_put(path, body.len()),
        }
    }

    /// The ETag of a file just written, when the PUT answer had none: HEAD, then PROPFIND.
    /// Taken only if the size is what we wrote (otherwise someone else wrote meanwhile, and
    /// their ETag must not pass for ours).
    fn etag_after_put(&self, path: &str, len: usize) -> Result<Option<Etag>, RemoteError> {
        if let Some(info) = self.head(path)? {
            if info.size != len as u64 {
                tracing::debug!(path, "size changed after our PUT: someone else wrote");
                return Ok(None);
            }
            if info.etag.is_some() {
                return Ok(info.etag);
            }
        }
        let url = self.target.url(path);
        let entries = self.propfind(path, &url, "0")?.unwrap_or_default();
        Ok(entries
            .into_iter()
            .find(|e| e.size.is_none_or(|s| s == len as u64))
            .and_then(|e| e.etag)
            .map(|e| Etag::normalise(&e)))
    }
}

/// The answer of a `PUT`, or the error its status says (412, 423 or another).
fn check_put(
    dav: &WebDav,
    what: &str,
    path: &str,
    resp: Response,
) -> Result<Response, RemoteError> {
    match resp.status().as_u16() {
        200..=299 => Ok(resp),
        412 => Err(RemoteError::PreconditionFailed {
            path: path.to_string(),
        }),
        // Another request holds the file's lock (Nextcloud, rclone): nothing was written.
        423 => Err(RemoteError::Locked {
            what: what.to_string(),
        }),
        _ => Err(dav.status_error(what, resp)),
    }
}
