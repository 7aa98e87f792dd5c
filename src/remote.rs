//! Opening the remote a configuration names, with its credentials and probed capabilities.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deltasync_engine::config::{Config, ServerSettings};
use deltasync_remote::{
    DEFAULT_KEYRING_TIMEOUT, Keyring, ProbeReport, Remote, Secret, SecretError, WebDav,
    WebDavOptions,
};

/// A remote, and the WebDAV handle when it is one (for the probe's raw-HTTP checks).
pub struct Opened {
    /// The remote.
    pub remote: Arc<dyn Remote>,
    dav: Option<Arc<WebDav>>,
}

/// Whether `url` names a WebDAV remote (the only kind with a password).
pub fn is_webdav(url: &str) -> bool {
    ["http://", "https://", "nextcloud://", "nextcloud+http://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// How long a keyring call may take: `DELTASYNC_KEYRING_TIMEOUT` seconds, else 60 s (an
/// unlock prompt must be answerable).
fn keyring_timeout() -> Duration {
    std::env::var("DELTASYNC_KEYRING_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_KEYRING_TIMEOUT)
}

/// The keyring entry of the configured remote (`user@host[:port]`, service `deltasync`).
pub fn keyring_of(config: &Config) -> Result<Keyring> {
    Ok(
        Keyring::for_remote(&config.remote, config.auth.user.as_deref())?
            .with_timeout(keyring_timeout()),
    )
}

/// The password, from `auth.password_command`, the system keyring (`auth.keyring`),
/// `auth.password_env` or `DELTASYNC_PASSWORD` (only one of the first three may be set); none
/// when nothing is set. Never logged.
fn password(config: &Config) -> Result<Option<Secret>> {
    if let Some(cmd) = &config.auth.password_command {
        return Ok(Some(Secret::from_command(cmd)?));
    }
    if config.auth.keyring {
        let keyring = keyring_of(config)?;
        return match keyring.get() {
            Ok(secret) => Ok(Some(secret)),
            Err(e @ SecretError::KeyringMissing { .. }) => Err(anyhow::Error::new(e)
                .context("no password to send: store it with `deltasync login`")),
            Err(e) => Err(e.into()),
        };
    }
    let var = config
        .auth
        .password_env
        .clone()
        .unwrap_or_else(|| deltasync_remote::PASSWORD_ENV.to_string());
    match std::env::var_os(&var) {
        Some(_) => Ok(Some(Secret::from_env(&var)?)),
        None if config.auth.password_env.is_some() => Err(anyhow::anyhow!(
            "auth.password_env names ${var}, which is not set"
        )),
        None => Ok(None),
    }
}

/// Where the password comes from, for `status`, without reading it: `(kind, detail)` with kind
/// `keyring` (detail: the entry's user name), `command` (its first word), `env` (the variable)
/// or `none` (a folder remote).
pub fn password_source(config: &Config) -> (&'static str, String) {
    let auth = &config.auth;
    if !is_webdav(&config.remote) {
        return ("none", String::new());
    }
    if let Some(cmd) = &auth.password_command {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        return ("command", program.to_string());
    }
    if auth.keyring {
        let account = Keyring::for_remote(&config.remote, auth.user.as_deref())
            .map(|k| k.account().to_string())
            .unwrap_or_default();
        return ("keyring", account);
    }
    let var = auth
        .password_env
        .clone()
        .unwrap_or_else(|| deltasync_remote::PASSWORD_ENV.to_string());
    ("env", var)
}

/// Opens the remote of `config`.
pub fn open(config: &Config) -> Result<Opened> {
    open_with(config, None)
}

/// Opens the remote of `config` with `password` instead of the configured one (`None`: the
/// configured one).
pub fn open_with(config: &Config, password: Option<Secret>) -> Result<Opened> {
    let password = match password {
        Some(p) => Some(p),
        None if is_webdav(&config.remote) => self::password(config)?,
        None => None,
    };
    open_inner(config, password)
}

/// Opens the remote of `config` without asking for the password, for commands that send no
/// request (`status`): a locked keyring or a missing variable does not stop them.
pub fn open_offline(config: &Config) -> Result<Opened> {
    open_inner(config, None)
}

fn open_inner(config: &Config, password: Option<Secret>) -> Result<Opened> {
    if !is_webdav(&config.remote) {
        let remote = deltasync_remote::open(&config.remote, &WebDavOptions::default())?;
        return Ok(Opened { remote, dav: None });
    }
    let mut options = WebDavOptions {
        user: config.auth.user.clone(),
        password,
        allow_insecure_http: config.auth.allow_insecure_http,
        ..WebDavOptions::default()
    };
    if let Some(server) = &config.server {
        options.capabilities = Some(server.capabilities()?);
        options.nextcloud = server.nextcloud;
    }
    let dav = Arc::new(WebDav::open(&config.remote, &options)?);
    Ok(Opened {
        remote: dav.clone(),
        dav: Some(dav),
    })
}

impl Opened {
    /// Probes the server with throw-away files.
    pub fn probe(&self) -> Result<ProbeReport> {
        let report = match &self.dav {
            Some(dav) => deltasync_remote::probe_webdav(dav),
            None => deltasync_remote::probe(self.remote.as_ref()),
        }
        .with_context(|| format!("probing {}", self.remote.describe()))?;
        if let Some(dav) = &self.dav {
            dav.set_capabilities(report.capabilities());
        }
        Ok(report)
    }
}

impl Opened {
    /// The probe verdict recorded in the remote's meta.json by the device that initialised
    /// it; `None` when the remote has no meta.json (or one without a verdict this version
    /// knows). The read is authenticated: a refused password fails here.
    pub fn recorded_verdict(&self) -> Result<Option<ServerSettings>> {
        let answer = self
            .remote
            .get(deltasync_meta::META_FILE, None)
            .with_context(|| format!("reading meta.json on {}", self.remote.describe()))?;
        let deltasync_remote::GetResult::Found { body, .. } = answer else {
            return Ok(None);
        };
        Ok(deltasync_meta::Meta::from_bytes(&body)
            .ok()
            .and_then(|m| m.server)
            .as_ref()
            .and_then(ServerSettings::from_recorded))
    }

    /// Takes `settings` (a recorded verdict) as the server's capabilities, without probing.
    pub fn assume(&self, settings: &ServerSettings) -> Result<()> {
        if let Some(dav) = &self.dav {
            dav.set_capabilities(settings.capabilities()?);
        }
        Ok(())
    }
}

/// The settings to record for a probe result.
pub fn settings_of(report: &ProbeReport) -> ServerSettings {
    ServerSettings {
        cas: report.class.to_string(),
        weak_window_ms: report.weak_window_ms,
        nextcloud: report.nextcloud,
    }
}
