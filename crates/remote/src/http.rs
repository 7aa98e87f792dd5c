//! HTTP plumbing shared by the WebDAV and S3 backends: timeouts and retry policy, transport
//! error mapping, retries with [`Backoff`] and `Retry-After`, and reading an answer's body
//! within a size cap and the request's deadline.

mod client;

use std::io::Read as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ureq::http::{HeaderMap, HeaderValue};

pub(crate) use client::{Client, HttpError, Redirects, RequestBuilder, Response};

use crate::{Backoff, RemoteError};

/// The longest delay between two retries of one request (before jitter).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Timeouts and retries of an HTTP backend (WebDAV, S3): every request has a deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Time allowed to connect (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, body included (default 60 s).
    pub timeout: Duration,
    /// How many times an idempotent request is retried after a transient failure (default 3).
    pub retries: u32,
    /// The first backoff delay; it doubles per retry, with jitter (default 250 ms).
    pub retry_base_delay: Duration,
    /// The longest `Retry-After` honoured; a server asking for more gets the error reported
    /// instead (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            retries: 3,
            retry_base_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// A failed attempt: the error, and how long the server asked us to wait.
pub(crate) struct Failure {
    pub error: RemoteError,
    pub retry_after: Option<Duration>,
}

impl From<RemoteError> for Failure {
    fn from(error: RemoteError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

impl HttpPolicy {
    /// One blocking client with these timeouts (rustls, connections reused) following
    /// `redirects`.
    pub(crate) fn client(&self, redirects: Redirects) -> Client {
        Client::new(self.connect_timeout, self.timeout, redirects)
    }

    /// Maps a transport failure: TLS and certificate problems are permanent and say why,
    /// timeouts are [`RemoteError::TimedOut`], the rest (resets, refused connections) transient.
    pub(crate) fn transport_error(&self, what: &str, e: &HttpError) -> RemoteError {
        let detail = e.to_string();
        if let Some((certificate, said)) = e.tls() {
            let lower = said.to_ascii_lowercase();
            if certificate || lower.contains("certificate") || lower.contains("unknownissuer") {
                return RemoteError::Permanent {
                    what: what.to_string(),
                    detail: format!(
                        "certificate not trusted: {said} (the server's TLS certificate is not \
                         signed by an authority this machine trusts, is expired, or names \
                         another host; install a proper certificate, e.g. from Let's Encrypt, \
                         or add its authority to the system's trust store)"
                    ),
                };
            }
            return RemoteError::Permanent {
                what: what.to_string(),
                detail: format!(
                    "TLS failed: {said} (is this an https:// URL for a server that speaks \
                     plain http, or the other way round?)"
                ),
            };
        }
        if e.is_builder_or_redirect() {
            return RemoteError::Permanent {
                what: what.to_string(),
                detail,
            };
        }
        if e.is_timeout() {
            return RemoteError::TimedOut {
                what: what.to_string(),
                detail: format!(
                    "timed out (connect {} s, request {} s): {detail}",
                    self.connect_timeout.as_secs(),
                    self.timeout.as_secs()
                ),
            };
        }
        let detail = if e.is_connect() {
            format!("cannot connect: {detail}")
        } else {
            detail
        };
        RemoteError::Transient {
            what: what.to_string(),
            detail,
        }
    }

    /// Runs `attempt`, retrying transient failures (when `retry` is true) with jittered
    /// exponential backoff ([`Backoff`]: `retry_base_delay` doubling up to 10 s, at most
    /// `retries` times), or the server's `Retry-After` when within bounds.
    pub(crate) fn with_retries<T>(
        &self,
        retry: bool,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, RemoteError> {
        let mut backoff = Backoff::new(self.retry_base_delay, MAX_RETRY_DELAY, self.retries);
        loop {
            let failure = match attempt() {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            let RemoteError::Transient { what, detail } = failure.error else {
                return Err(failure.error);
            };
            if !retry {
                return Err(RemoteError::Transient { what, detail });
            }
            let Some(backoff_delay) = backoff.next_delay() else {
                let tries = backoff.attempts() + 1;
                let detail = if tries > 1 {
                    format!("{detail} (tried {tries} times)")
                } else {
                    detail
                };
                return Err(RemoteError::Transient { what, detail });
            };
            let delay = match failure.retry_after {
                Some(d) if d > self.max_retry_after => {
                    return Err(RemoteError::Transient {
                        what,
                        detail: format!(
                            "{detail}; the server asks to retry after {} s",
                            d.as_secs()
                        ),
                    });
                }
                Some(d) => d,
                None => backoff_delay,
            };
            tracing::debug!(%what, %detail, try_no = backoff.attempts(), ?delay, "retrying");
            std::thread::sleep(delay);
        }
    }

    /// Reads an answer's body: refused past `max_len` bytes (by `Content-Length`, or one byte
    /// past the limit while streaming: a huge or endless answer is never held in memory), and
    /// within the request's deadline counted from `started` (a server trickling its answer
    /// byte by byte does not hold a sync for hours).
    pub(crate) fn read_body(
        &self,
        what: &str,
        path: &str,
        mut resp: Response,
        max_len: u64,
        started: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let too_large = || RemoteError::TooLarge {
            path: path.to_string(),
            limit: max_len,
        };
        if resp.content_length().is_some_and(|n| n > max_len) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut reader = resp.reader();
        loop {
            let n = reader
                .read(&mut chunk)
                .map_err(|e| RemoteError::Transient {
                    what: what.to_string(),
                    detail: format!("reading the answer: {e}"),
                })?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
            if body.len() as u64 > max_len {
                return Err(too_large());
            }
            if started.elapsed() > self.timeout {
                return Err(RemoteError::TimedOut {
                    what: what.to_string(),
                    detail: format!(
                        "the answer took longer than {} s (a server sending too slowly)",
                        self.timeout.as_secs()
                    ),
                });
            }
        }
        Ok(body)
    }
}

/// Statuses a later retry may get past: 408, 423, 425, 429 and 5xx.
pub(crate) fn is_transient_status(code: u16) -> bool {
    matches!(code, 408 | 423 | 425 | 429 | 500..=599)
}

/// A header's value, trimmed; `None` when missing, empty or not text.
pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = header(h, "retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An HTTP date as ms since the Unix epoch.
pub(crate) fn http_date_ms(v: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(v).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}
