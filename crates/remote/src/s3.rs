//! The S3 backend: AWS S3 and S3-compatible servers (MinIO, Cloudflare R2, Ceph, moto, …).
//!
//! Requests are presigned with SigV4 by [`rusty_s3`] (sans-IO: no runtime, no C toolchain) and
//! sent by the same blocking [`ureq`] client setup as WebDAV's ([`crate::http`]: timeouts,
//! a whole-answer deadline, size caps, jittered retries). The conditional headers
//! (`If-None-Match: *`, `If-Match`) are signed in. Paths are keys under the URL's prefix;
//! folders are key prefixes (`list` uses ListObjectsV2 with `/` as delimiter, following
//! continuation tokens), so a folder exists while something is in it.
//!
//! Errors: 412, and 404 on a PUT with `If-Match` (AWS: NoSuchKey), are
//! [`RemoteError::PreconditionFailed`]; 503 SlowDown, 500, 409 ConditionalRequestConflict and
//! timeouts are temporary; SignatureDoesNotMatch, InvalidAccessKeyId and RequestTimeTooSkewed
//! are [`RemoteError::Denied`] with a hint (the clock skew measured from the server's `Date`);
//! NoSuchBucket names the bucket. Retries: reads, lists and deletes on any temporary failure;
//! PUTs only on answers that mean nothing was written (503, 429, 409
//! ConditionalRequestConflict). Signed URLs and secrets never appear in errors or logs.

mod errors;
mod options;

use std::sync::RwLock;
use std::time::{Duration, Instant};

use rusty_s3::actions::{ListObjectsV2, ObjectIdentifier};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::http::Method;

use options::Target;
pub use options::{S3Credentials, S3Options};

use crate::http::{
    Client, Failure, Redirects, RequestBuilder, Response, header, http_date_ms, retry_after,
};
use crate::probe::RawPut;
use crate::{
    Capabilities, CasClass, Etag, GetResult, MAX_LISTING_BYTES, ObjectInfo, PathError, PutMode,
    Remote, RemoteError, check_path,
};

/// How long a signed request stays valid: S3's own tolerance for clock skew.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// DeleteObjects takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// The most a list answer (one page) or an error answer is read.
const LIST_PAGE_LIMIT: u64 = 16 * 1024 * 1024;
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// An S3 bucket (or a prefix of one) as a remote.
///
/// ```no_run
/// use deltasync_remote::{Remote, S3, S3Credentials, S3Options};
///
/// let credentials = S3Credentials::from_vars(|v| std::env::var(v).ok());
/// let s3 = S3::open(
///     "s3://my-bucket/notes",
///     &S3Options { region: Some("eu-west-1".into()), credentials, ..S3Options::default() },
/// )?;
/// for line in s3.probe()?.explain() {
///     println!("{line}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct S3 {
    target: Target,
    bucket: Bucket,
    credentials: Option<Credentials>,
    client: Client,
    options: S3Options,
    capabilities: RwLock<Capabilities>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("remote", &self.target.describe())
            .field("endpoint", &self.target.endpoint.as_str())
            .field("region", &self.target.region)
            .field("path_style", &self.target.path_style)
            .field("credentials", &self.options.credentials)
            .finish_non_exhaustive()
    }
}

/// The capabilities assumed before a probe: compare-and-swap not trusted to be atomic. S3
/// ETags of single-part uploads are the body's MD5, so a kept ETag means kept content.
fn unprobed_capabilities() -> Capabilities {
    Capabilities {
        cas: CasClass::NonAtomic,
        conditional_get: true,
        recursive_delete: false,
        weak_window_ms: 0,
        stale_etags: false,
        networked: true,
        retries_reads: true,
    }
}

impl S3 {
    /// Opens `s3://BUCKET/PREFIX`. Sends nothing yet.
    pub fn open(url: &str, options: &S3Options) -> Result<S3, RemoteError> {
        let target = Target::parse(url, options)?;
        let style = if target.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            target.endpoint.clone(),
            style,
            target.bucket.clone(),
            target.region.clone(),
        )
        .map_err(|e| RemoteError::Permanent {
            what: format!("remote {url}"),
            detail: format!("cannot address the bucket at {}: {e}", target.endpoint),
        })?;
        let credentials = options
            .credentials
            .as_ref()
            .map(|c| match &c.session_token {
                Some(token) => Credentials::new_with_token(
                    c.access_key_id.clone(),
                    c.secret_access_key.expose(),
                    token.expose(),
                ),
                None => Credentials::new(c.access_key_id.clone(), c.secret_access_key.expose()),
            });
        // A redirect is S3 naming another region: reported, not followed.
        let client = options.policy().client(Redirects::None);
        Ok(S3 {
            capabilities: RwLock::new(
                options
                    .capabilities
                    .clone()
                    .unwrap_or_else(unprobed_capabilities),
            ),
            target,
            bucket,
            credentials,
            client,
            options: options.clone(),
        })
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        self.target.endpoint.as_str()
    }

    /// Replaces the capabilities this remote reports (e.g. from a stored probe result).
    pub fn set_capabilities(&self, capabilities: Capabilities) {
        *self.capabilities.write().unwrap_or_else(|e| e.into_inner()) = capabilities;
    }

    /// Probes the bucket with throw-away objects (see [`crate::probe`]), including whether an
    /// `If-Match` on a missing key is refused, and from then on reports what it found.
    pub fn probe(&self) -> Result<crate::ProbeReport, RemoteError> {
        let report = crate::probe::probe_s3(self)?;
        self.set_capabilities(report.capabilities());
        Ok(report)
    }

    /// A PUT as the server answers it, without the existence check of
    /// [`Remote::put`] (for the probe).
    pub(crate) fn put_raw(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<RawPut, RemoteError> {
        check_file_path(path)?;
        let etag = self.put_once(path, body, mode)?;
        Ok(RawPut {
            etag: etag.map(|e| e.quoted()),
        })
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn what(&self, method: &str, key: &str) -> String {
        format!("{method} s3://{}/{key}", self.target.bucket)
    }

    /// Signs `action` with the conditional `headers`, and builds the request with them.
    fn request<'a>(
        &'a self,
        method: Method,
        mut action: impl S3Action<'a>,
        headers: &[(&'static str, String)],
    ) -> RequestBuilder<'a> {
        for (name, value) in headers {
            action.headers_mut().insert(*name, value.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let mut req = self.client.request(method, url.as_str());
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req
    }

    fn send(&self, what: &str, req: RequestBuilder<'_>) -> Result<Response, RemoteError> {
        req.send()
            .map_err(|e| self.options.policy().transport_error(what, &e))
    }

    /// The error of an answer the caller did not expect, with `retry_after` for a retry.
    fn failure(&self, what: &str, resp: Response) -> Failure {
        let (error, retry_after, _) = self.error_of(what, resp);
        Failure { error, retry_after }
    }

    /// The error of an answer, how long the server asked to wait, and its S3 error code.
    fn error_of(&self, what: &str, resp: Response) -> (RemoteError, Option<Duration>, String) {
        let status = resp.status().as_u16();
        let date = header(resp.headers(), "date").map(str::to_string);
        let wait = retry_after(resp.headers());
        let body = self
            .options
            .policy()
            .read_body(what, "", resp, ERROR_BODY_LIMIT, Instant::now())
            .unwrap_or_default();
        let err = errors::parse(&String::from_utf8_lossy(&body));
        (
            errors::status_error(
                what,
                status,
                &err,
                date.as_deref(),
                &self.target.bucket,
                self.target.endpoint.as_str(),
            ),
            wait,
            err.code,
        )
    }

    /// One PUT, retried only on answers that mean nothing was written.
    fn put_once(
        &self,
        path: &str,
        body: &[u8],
        mode: &PutMode,
    ) -> Result<Option<Etag>, RemoteError> {
        let key = self.target.key(path);
        let what = self.what("PUT", &key);
        let mut headers = vec![(
            "content-type",
            if path.ends_with(".json") {
                "application/json"
            } else {
                "application/octet-stream"
            }
            .to_string(),
        )];
        match mode {
            PutMode::CreateOnly => headers.push(("if-none-match", "*".into())),
            PutMode::UpdateIfMatch(etag) => headers.push(("if-match", etag.quoted())),
            PutMode::Overwrite => {}
        }
        let answer = self.options.policy().with_retries(true, || {
            let action = self.bucket.put_object(self.credentials.as_ref(), &key);
            let req = self
                .request(Method::PUT, action, &headers)
                .header("content-length", body.len())
                .body(body.to_vec());
            // A reset or a cut answer: the PUT may have been done; only the caller knows
            // whether sending it again is safe, so it is not retried here.
            let resp = match self.send(&what, req) {
                Ok(resp) => resp,
                Err(e) => return Ok(Err(e)),
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 => Ok(Ok(header(resp.headers(), "etag").map(Etag::normalise))),
                412 => Ok(Err(RemoteError::PreconditionFailed {
                    path: path.to_string(),
                })),
                _ => {
                    let (error, wait, code) = self.error_of(&what, resp);
                    if status == 404
                        && code != "NoSuchBucket"
                        && matches!(mode, PutMode::UpdateIfMatch(_))
                    {
                        // AWS: If-Match on a missing key is 404 NoSuchKey.
                        return Ok(Err(RemoteError::PreconditionFailed {
                            path: path.to_string(),
                        }));
                    }
                    if errors::nothing_done(status, &code) {
                        return Err(Failure {
                            error,
                            retry_after: wait,
                        });
                    }
                    Ok(Err(error))
                }
            }
        });
        answer?
    }

    /// The keys under `prefix` (every depth), following continuation tokens: each page read up
    /// to 16 MiB, all of them together up to [`MAX_LISTING_BYTES`] (a larger listing is
    /// [`RemoteError::ListingTooLarge`] naming the remote folder `dir`: a server naming page
    /// after page without end is not followed for ever).
    fn list_keys(
        &self,
        dir: &str,
        prefix: &str,
        delimiter: bool,
    ) -> Result<(Vec<ObjectInfo>, Vec<String>), RemoteError> {
        let what = self.what("LIST", prefix);
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut token: Option<String> = None;
        let mut listed = 0u64;
        loop {
            let too_large = || RemoteError::ListingTooLarge {
                dir: dir.to_string(),
                limit: MAX_LISTING_BYTES,
            };
            let page_limit = LIST_PAGE_LIMIT.min(MAX_LISTING_BYTES - listed);
            let page = self.options.policy().with_retries(true, || {
                let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
                action.with_prefix(prefix);
                if delimiter {
                    action.with_delimiter("/");
                }
                if self.options.list_page_keys != 1000 {
                    action.with_max_keys(self.options.list_page_keys.max(1));
                }
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                let started = Instant::now();
                let resp = self.send(&what, self.request(Method::GET, action, &[]))?;
                if !resp.status().is_success() {
                    return Err(self.failure(&what, resp));
                }
                let body = match self
                    .options
                    .policy()
                    .read_body(&what, prefix, resp, page_limit, started)
                {
                    Err(RemoteError::TooLarge { .. }) if page_limit < LIST_PAGE_LIMIT => {
                        return Err(too_large().into());
                    }
                    other => other?,
                };
                let text = with_aws_namespace(&String::from_utf8_lossy(&body), "ListBucketResult");
                let page = ListObjectsV2::parse_response(&text).map_err(|e| {
                    Failure::from(RemoteError::Permanent {
                        what: what.clone(),
                        detail: format!("unreadable ListObjectsV2 answer: {e}"),
                    })
                })?;
                Ok((page, body.len() as u64))
            })?;
            let (page, len) = page;
            listed += len;
            for c in page.contents {
                files.push(ObjectInfo {
                    name: c.key,
                    size: c.size.unwrap_or(0),
                    etag: c.etag.as_deref().map(Etag::normalise),
                    is_dir: false,
                    modified_ms: c.last_modified.as_deref().and_then(iso_ms),
                });
            }
            dirs.extend(page.common_prefixes.into_iter().map(|p| p.prefix));
            match page.next_continuation_token {
                Some(_) if listed >= MAX_LISTING_BYTES => return Err(too_large()),
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok((files, dirs))
    }

    /// Deletes `keys` with DeleteObjects, a thousand per request.
    fn delete_keys(&self, keys: &[String]) -> Result<(), RemoteError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let what = format!(
                "DELETE {} objects from s3://{} (first {})",
                batch.len(),
                self.target.bucket,
                batch[0]
            );
            let ids: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|k| ObjectIdentifier::new(k.clone()))
                .collect();
            let answer = self.options.policy().with_retries(true, || {
                let mut action = self
                    .bucket
                    .delete_objects(self.credentials.as_ref(), ids.iter());
                action.set_quiet(true);
                let url = action.sign(SIGNED_FOR);
                let (body, md5) = action.body_with_md5();
                let req = self
                    .client
                    .post(url.as_str())
                    .header("content-md5", md5)
                    .header("content-type", "application/xml")
                    .body(body);
                let started = Instant::now();
                let resp = self.send(&what, req)?;
                if !resp.status().is_success() {
                    return Err(self.failure(&what, resp));
                }
                Ok(self
                    .options
                    .policy()
                    .read_body(&what, "", resp, LIST_PAGE_LIMIT, started)?)
            })?;
            let text = with_aws_namespace(&String::from_utf8_lossy(&answer), "DeleteResult");
            if text.trim().is_empty() {
                continue;
            }
            let parsed = rusty_s3::actions::DeleteObjectsResponse::parse(&text).map_err(|e| {
                RemoteError::Permanent {
                    what: what.clone(),
                    detail: format!("unreadable DeleteObjects answer: {e}"),
                }
            })?;
            if let Some(e) = parsed.errors.first() {
                return Err(RemoteError::Transient {
                    what,
                    detail: format!(
                        "{} of {} objects not deleted, e.g. {}: {} {}",
                        parsed.errors.len(),
                        batch.len(),
                        e.key,
                        e.code,
                        e.message
                    ),
                });
            }
        }
        Ok(())
    }

    fn head_key(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        let key = self.target.key(path);
        let what = self.what("HEAD", &key);
        self.options.policy().with_retries(true, || {
            let action = self.bucket.head_object(self.credentials.as_ref(), &key);
            let resp = self.send(&what, self.request(Method::HEAD, action, &[]))?;
            match resp.status().as_u16() {
                200..=299 => {
                    let h = resp.headers();
                    Ok(Some(ObjectInfo {
                        name: path.to_string(),
                        size: header(h, "content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                        etag: header(h, "etag").map(Etag::normalise),
                        is_dir: false,
                        modified_ms: header(h, "last-modified").and_then(http_date_ms),
                    }))
                }
                404 => Ok(None),
                _ => Err(self.failure(&what, resp)),
            }
        })
    }
}

impl Remote for S3 {
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
        let key = self.target.key(path);
        let what = self.what("GET", &key);
        let headers: Vec<(&'static str, String)> = if_none_match
            .map(|e| vec![("if-none-match", e.quoted())])
            .unwrap_or_default();
        self.options.policy().with_retries(true, || {
            let started = Instant::now();
            let action = self.bucket.get_object(self.credentials.as_ref(), &key);
            let resp = self.send(&what, self.request(Method::GET, action, &headers))?;
            match resp.status().as_u16() {
                200 => {
                    let etag = header(resp.headers(), "etag").map(Etag::normalise);
                    let body = self
                        .options
                        .policy()
                        .read_body(&what, path, resp, max_len, started)?;
                    Ok(GetResult::Found { body, etag })
                }
                304 => Ok(GetResult::NotModified),
                404 => match self.error_of(&what, resp) {
                    (error, _, code) if code == "NoSuchBucket" => Err(error.into()),
                    _ => Ok(GetResult::NotFound),
                },
                _ => Err(self.failure(&what, resp)),
            }
        })
    }

    fn put(&self, path: &str, body: &[u8], mode: &PutMode) -> Result<Option<Etag>, RemoteError> {
        check_file_path(path)?;
        if matches!(mode, PutMode::UpdateIfMatch(_))
            && self.capabilities().cas != CasClass::Atomic
            && self.head_key(path)?.is_none()
        {
            // Servers not proven atomic may ignore If-Match on a missing key and create it
            // (s3rver does, and older MinIO): refuse that case here.
            return Err(RemoteError::PreconditionFailed {
                path: path.to_string(),
            });
        }
        match self.put_once(path, body, mode)? {
            Some(etag) => Ok(Some(etag)),
            None => Ok(self
                .head_key(path)?
                .filter(|i| i.size == body.len() as u64)
                .and_then(|i| i.etag)),
        }
    }

    fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
        check_file_path(path)?;
        self.head_key(path)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
        check_path(dir)?;
        let base = self.target.key(dir);
        let prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/")
        };
        let (files, dirs) = self.list_keys(dir, &prefix, true)?;
        // A folder is the first segment after the prefix of a deeper key or common prefix:
        // some servers give deeper common prefixes (s3rver: `n1/n2/` for `n1/n2/k`, not
        // `n1/`) or ignore the delimiter.
        let mut folders = std::collections::BTreeSet::new();
        let mut out: Vec<ObjectInfo> = Vec::new();
        for mut f in files {
            let Some(name) = f.name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            match name.split_once('/') {
                Some((dir, _)) => {
                    folders.insert(dir.to_string());
                }
                // A zero-length "folder marker" some tools write ("dir/") is no entry.
                None if name.is_empty() => {}
                None => {
                    f.name = name.to_string();
                    out.push(f);
                }
            }
        }
        for d in dirs {
            if let Some(name) = d.strip_prefix(prefix.as_str()) {
                folders.insert(name.split('/').next().unwrap_or_default().to_string());
            }
        }
        out.extend(
            folders
                .into_iter()
                .filter(|n| !n.is_empty())
                .map(|name| ObjectInfo {
                    name,
                    size: 0,
                    etag: None,
                    is_dir: true,
                    modified_ms: None,
                }),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<(), RemoteError> {
        check_file_path(path)?;
        let key = self.target.key(path);
        let what = self.what("DELETE", &key);
        self.options.policy().with_retries(true, || {
            let action = self.bucket.delete_object(self.credentials.as_ref(), &key);
            let resp = self.send(&what, self.request(Method::DELETE, action, &[]))?;
            match resp.status().as_u16() {
                200..=299 | 404 => Ok(()),
                _ => Err(self.failure(&what, resp)),
            }
        })?;
        // A "folder": everything under `key/`.
        let (under, _) = self.list_keys(path, &format!("{key}/"), false)?;
        let keys: Vec<String> = under.into_iter().map(|o| o.name).collect();
        self.delete_keys(&keys)
    }

    fn delete_many(&self, paths: &[String]) -> Result<(), RemoteError> {
        for path in paths {
            check_file_path(path)?;
        }
        let keys: Vec<String> = paths.iter().map(|p| self.target.key(p)).collect();
        self.delete_keys(&keys)
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = self
            .capabilities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // What this backend is, whatever a probe or a configuration said.
        caps.networked = true;
        caps.retries_reads = self.options.policy().retries > 0;
        caps
    }

    fn describe(&self) -> String {
        self.target.describe()
    }
}

/// S3's XML namespace.
const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// `xml` with the `root` element in S3's namespace: some S3-compatible servers give another
/// one (s3rver: `http://doc.s3.amazonaws.com/2006-03-01/`) or none, which the strict parser
/// would refuse.
fn with_aws_namespace(xml: &str, root: &str) -> String {
    let open = format!("<{root}");
    let Some(start) = xml.find(&open) else {
        return xml.to_string();
    };
    let Some(end) = xml[start..].find('>').map(|e| start + e) else {
        return xml.to_string();
    };
    let tag = &xml[start..end];
    if tag.contains(S3_NS) {
        return xml.to_string();
    }
    let self_closing = tag.ends_with('/');
    format!(
        "{}<{root} xmlns=\"{S3_NS}\"{}{}",
        &xml[..start],
        if self_closing { "/" } else { "" },
        &xml[end..]
    )
}

/// Paths of objects (not the root) must be non-empty.
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

/// `2026-12-01T18:52:54.000Z` (ListObjectsV2's LastModified) as ms since the Unix epoch.
fn iso_ms(v: &str) -> Option<u64> {
    let (date, time) = v.trim().trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + min) * 60 + s)
        .ok()
        .map(|secs| secs * 1000 + ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_namespaces_are_replaced() {
        let odd = r#"<?xml version="1.0"?><ListBucketResult xmlns="http://doc.s3.amazonaws.com/2006-03-01/"><Name>b</Name></ListBucketResult>"#;
        let fixed = with_aws_namespace(odd, "ListBucketResult");
        assert!(
            fixed.contains(&format!("<ListBucketResult xmlns=\"{S3_NS}\"><Name>")),
            "{fixed}"
        );
        let none = with_aws_namespace("<DeleteResult/>", "DeleteResult");
        assert_eq!(none, format!("<DeleteResult xmlns=\"{S3_NS}\"/>"));
        let good = format!("<DeleteResult xmlns=\"{S3_NS}\"></DeleteResult>");
        assert_eq!(with_aws_namespace(&good, "DeleteResult"), good);
    }

    #[test]
    fn list_times_are_read() {
        assert_eq!(iso_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(iso_ms("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        assert_eq!(iso_ms("nonsense"), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let s3 = S3::open(
            "s3://bucket/prefix",
            &S3Options {
                credentials: Some(S3Credentials::new(
                    "AKIAEXAMPLE",
                    crate::Secret::new("very-secret-key"),
                )),
                ..S3Options::default()
            },
        )
        .unwrap();
        let shown = format!("{s3:?}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert_eq!(s3.describe(), "s3://bucket/prefix");
    }
}
