//! Nextcloud's Login Flow v2: an app password granted in the browser, without typing one.
//!
//! `POST <server>/index.php/login/v2` answers a URL for the person to open and a token; the
//! client polls `POST <poll endpoint>` with `token=<token>` (404 until access is granted)
//! and receives the server, the login name and a new app password once.

use std::io::Read as _;
use std::time::{Duration, Instant};

use super::secret::Secret;
use super::target::Target;
use crate::RemoteError;
use crate::http::{Client, HttpError, Redirects, Response};

/// The most a Login Flow answer may hold (they are a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// A Login Flow v2 in progress: the URL to open, and what polling needs. `Debug` never shows
/// the token.
pub struct LoginFlow {
    /// The page the person opens to grant access (shown to them).
    pub login_url: String,
    poll_endpoint: String,
    token: Secret,
    client: Client,
}

impl std::fmt::Debug for LoginFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFlow")
            .field("login_url", &self.login_url)
            .field("poll_endpoint", &self.poll_endpoint)
            .finish_non_exhaustive()
    }
}

/// What a granted Login Flow gives: the login name and a new app password for it.
#[derive(Debug, Clone)]
pub struct AppPassword {
    /// The server's own URL, as it reports it.
    pub server: String,
    /// The user's login name (the WebDAV user).
    pub login_name: String,
    /// The new app password.
    pub app_password: Secret,
}

impl LoginFlow {
    /// Starts a flow on the Nextcloud server of the remote at `remote_url` (`nextcloud://…`
    /// or a `…/remote.php/dav/…` URL): one request, no credentials.
    pub fn start(remote_url: &str, allow_insecure_http: bool) -> Result<LoginFlow, RemoteError> {
        let target = Target::parse(remote_url, allow_insecure_http)?;
        let root = target
            .nextcloud_root()
            .ok_or_else(|| RemoteError::Permanent {
                what: format!("remote {}", target.base),
                detail:
                    "Login Flow needs a Nextcloud URL (nextcloud://user@host/folder or one with \
                     /remote.php/dav/): for another server, give the password by hand"
                        .into(),
            })?;
        let client = Client::new(
            Duration::from_secs(10),
            Duration::from_secs(30),
            Redirects::Limited(10),
        );
        let url = format!("{root}index.php/login/v2");
        let what = format!("POST {url}");
        let answer =
            read_json(&what, client.post(&url).body(Vec::new()).send())?.ok_or_else(|| {
                RemoteError::Permanent {
                    what: what.clone(),
                    detail: "the server has no Login Flow v2 (Nextcloud 16 or later has it)".into(),
                }
            })?;
        let field = |v: &serde_json::Value, ptr: &str| {
            v.pointer(ptr)
                .and_then(|s| s.as_str())
                .map(str::to_string)
                .ok_or_else(|| RemoteError::Permanent {
                    what: what.clone(),
                    detail: format!("the answer has no {ptr}"),
                })
        };
        Ok(LoginFlow {
            login_url: field(&answer, "/login")?,
            poll_endpoint: field(&answer, "/poll/endpoint")?,
            token: Secret::new(field(&answer, "/poll/token")?),
            client,
        })
    }

    /// Whether `remote_url` names a Nextcloud server by its form (`nextcloud://`,
    /// `nextcloud+http://`, or a `/remote.php/` path), where a flow can be started.
    pub fn start_is_possible(remote_url: &str) -> bool {
        Target::parse(remote_url, true).is_ok_and(|t| t.nextcloud_root().is_some())
    }

    /// Asks once whether access was granted: `None` while it was not (yet).
    pub fn poll(&self) -> Result<Option<AppPassword>, RemoteError> {
        let what = format!("POST {}", self.poll_endpoint);
        let body = format!(
            "token={}",
            percent_encoding::utf8_percent_encode(
                self.token.expose(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let req = self
            .client
            .post(&self.poll_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        let Some(v) = read_json(&what, req.send())? else {
            return Ok(None);
        };
        let get = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
        match (get("server"), get("loginName"), get("appPassword")) {
            (Some(server), Some(login_name), Some(password)) if !password.is_empty() => {
                Ok(Some(AppPassword {
                    server,
                    login_name,
                    app_password: Secret::new(password),
                }))
            }
            _ => Err(RemoteError::Permanent {
                what,
                detail: "the answer lacks server, loginName or appPassword".into(),
            }),
        }
    }

    /// Polls every `interval` until access is granted, or fails after `timeout` (Nextcloud
    /// forgets a flow after 20 minutes).
    pub fn wait(&self, interval: Duration, timeout: Duration) -> Result<AppPassword, RemoteError> {
        let started = Instant::now();
        loop {
            match self.poll() {
                Ok(Some(granted)) => return Ok(granted),
                Ok(None) => {}
                Err(e) if e.is_temporary() => {
                    tracing::debug!(error = %e, "Login Flow poll failed; polling on");
                }
                Err(e) => return Err(e),
            }
            if started.elapsed() + interval > timeout {
                return Err(RemoteError::Transient {
                    what: "Login Flow".into(),
                    detail: format!("access was not granted within {} s", timeout.as_secs()),
                });
            }
            std::thread::sleep(interval);
        }
    }
}

/// The JSON of a 200 answer; `None` for 404 (Login Flow's "not yet" and "no such flow").
fn read_json(
    what: &str,
    sent: Result<Response, HttpError>,
) -> Result<Option<serde_json::Value>, RemoteError> {
    let mut resp = sent.map_err(|e| RemoteError::Transient {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    match status {
        200 => {}
        404 => return Ok(None),
        429 | 500..=599 => {
            return Err(RemoteError::Transient {
                what: what.to_string(),
                detail: format!("HTTP {}", resp.status()),
            });
        }
        _ => {
            return Err(RemoteError::Permanent {
                what: what.to_string(),
                detail: format!("HTTP {}", resp.status()),
            });
        }
    }
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
        return Err(RemoteError::Permanent {
            what: what.to_string(),
            detail: "the answer is too large for a Login Flow answer".into(),
        });
    }
    let mut bytes = Vec::new();
    resp.reader()
        .take(MAX_ANSWER as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RemoteError::Transient {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    if bytes.len() > MAX_ANSWER {
        return Err(RemoteError::Permanent {
            what: what.to_string(),
            detail: "the answer is too large for a Login Flow answer".into(),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RemoteError::Permanent {
            what: what.to_string(),
            detail: format!("not a Login Flow answer: {e}"),
        })
}
