//! Sending one WebDAV request: basic auth, transport failures and unexpected statuses mapped to
//! errors, retries of idempotent requests, and `PROPFIND` (its answer capped at
//! [`MAX_LISTING_BYTES`]).

use ureq::http::Method;

use super::secret::Secret;
use super::{WebDav, multistatus};
use crate::http::{Failure, HttpError, RequestBuilder, Response, is_transient_status, retry_after};
use crate::{MAX_LISTING_BYTES, RemoteError};

/// How much of an unexpected answer's body is read for the error that quotes it.
const ERROR_BODY_LIMIT: u64 = 16 * 1024;

/// What a `PROPFIND` asks for: type, length, ETag and modification time.
const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/><d:getetag/><d:getlastmodified/></d:prop></d:propfind>"#;

impl WebDav {
    /// A request to `url`, with basic auth when there is a user.
    pub(super) fn request(&self, method: Method, url: &str) -> RequestBuilder<'_> {
        let req = self.client.request(method, url);
        match &self.user {
            Some(user) => req.basic_auth(user, self.password.as_ref().map(Secret::expose)),
            None => req,
        }
    }

    /// Sends one request; maps transport failures to errors, whatever the status.
    pub(super) fn send_raw(
        &self,
        what: &str,
        req: RequestBuilder<'_>,
    ) -> Result<Response, RemoteError> {
        let resp = req.send().map_err(|e| self.transport_error(what, &e))?;
        self.note_answer(&resp);
        Ok(resp)
    }

    /// Sends one request; maps transport failures and transient statuses to a [`Failure`].
    pub(super) fn send(&self, what: &str, req: RequestBuilder<'_>) -> Result<Response, Failure> {
        let resp = self.send_raw(what, req)?;
        let status = resp.status();
        if is_transient_status(status.as_u16()) {
            let retry_after = retry_after(resp.headers());
            tracing::debug!(%what, %status, ?retry_after, "transient answer");
            return Err(Failure {
                error: RemoteError::Transient {
                    what: what.to_string(),
                    detail: format!("HTTP {status}"),
                },
                retry_after,
            });
        }
        Ok(resp)
    }

    fn transport_error(&self, what: &str, e: &HttpError) -> RemoteError {
        self.options.policy().transport_error(what, e)
    }

    /// Runs `attempt`, retrying transient failures of idempotent requests with jittered
    /// exponential backoff (or the server's `Retry-After`, when within bounds).
    pub(super) fn with_retries<T>(
        &self,
        idempotent: bool,
        attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, RemoteError> {
        self.options.policy().with_retries(idempotent, attempt)
    }

    /// The error for an answer the caller did not expect.
    pub(super) fn status_error(&self, what: &str, resp: Response) -> RemoteError {
        let status = resp.status();
        let code = status.as_u16();
        if code == 401 || code == 403 {
            return RemoteError::Auth {
                url: resp.url().to_string(),
                user: self.user.clone().unwrap_or_else(|| "(none)".into()),
                status: code,
            };
        }
        if is_transient_status(code) {
            return RemoteError::Transient {
                what: what.to_string(),
                detail: format!("HTTP {status}"),
            };
        }
        let hint = match code {
            405 => " (is WebDAV enabled at this URL?)",
            _ => "",
        };
        // The error quotes 200 characters of the body: a server's endless error page is not
        // read to its end.
        let body = resp.text_up_to(ERROR_BODY_LIMIT).unwrap_or_default();
        let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let body: String = body.chars().take(200).collect();
        RemoteError::Permanent {
            what: what.to_string(),
            detail: if body.is_empty() {
                format!("HTTP {status}{hint}")
            } else {
                format!("HTTP {status}{hint}: {body}")
            },
        }
    }

    /// `PROPFIND` with the given depth on the URL of the remote path `path`; `None` when
    /// missing. The answer is read up to [`MAX_LISTING_BYTES`] and within the request's
    /// deadline: a larger one is [`RemoteError::ListingTooLarge`], not read to its end.
    pub(super) fn propfind(
        &self,
        path: &str,
        url: &str,
        depth: &'static str,
    ) -> Result<Option<Vec<multistatus::Entry>>, RemoteError> {
        let what = format!("PROPFIND {url}");
        self.with_retries(true, || {
            let started = std::time::Instant::now();
            let req = self
                .request(Method::from_bytes(b"PROPFIND").expect("valid"), url)
                .header("Depth", depth)
                .header("Content-Type", "application/xml; charset=utf-8")
                .body(PROPFIND_BODY);
            let resp = self.send(&what, req)?;
            match resp.status().as_u16() {
                207 | 200 => {
                    let body = self
                        .options
                        .policy()
                        .read_body(&what, path, resp, MAX_LISTING_BYTES, started)
                        .map_err(|e| match e {
                            RemoteError::TooLarge { limit, .. } => RemoteError::ListingTooLarge {
                                dir: path.to_string(),
                                limit,
                            },
                            e => e,
                        })?;
                    let text = String::from_utf8_lossy(&body);
                    multistatus::parse(&text).map(Some).map_err(|detail| {
                        RemoteError::Permanent {
                            what: what.clone(),
                            detail: format!("unreadable PROPFIND answer: {detail}"),
                        }
                        .into()
                    })
                }
                404 | 410 => Ok(None),
                _ => Err(self.status_error(&what, resp).into()),
            }
        })
    }
}
