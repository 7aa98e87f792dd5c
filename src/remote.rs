//! Opening the remote a configuration names, with its credentials and probed capabilities.

use std::sync::Arc;

use anyhow::{Context, Result};
use deltasync_engine::config::{Config, ServerSettings};
use deltasync_remote::{ProbeReport, Remote, Secret, WebDav, WebDavOptions};

/// A remote, and the WebDAV handle when it is one (for the probe's raw-HTTP checks).
pub struct Opened {
    /// The remote.
    pub remote: Arc<dyn Remote>,
    dav: Option<Arc<WebDav>>,
}

fn is_webdav(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://") || url.starts_with("nextcloud://")
}

/// The password, from `auth.password_command`, `auth.password_env` or `DELTASYNC_PASSWORD`
/// (in that order); none when nothing is set. Never logged.
fn password(config: &Config) -> Result<Option<Secret>> {
    if let Some(cmd) = &config.auth.password_command {
        return Ok(Some(Secret::from_command(cmd)?));
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

/// Opens the remote of `config`.
pub fn open(config: &Config) -> Result<Opened> {
    if !is_webdav(&config.remote) {
        let remote = deltasync_remote::open(&config.remote, &WebDavOptions::default())?;
        return Ok(Opened { remote, dav: None });
    }
    let mut options = WebDavOptions {
        user: config.auth.user.clone(),
        password: password(config)?,
        allow_insecure_http: config.auth.allow_insecure_http,
        ..WebDavOptions::default()
    };
    if let Some(server) = &config.server {
        options.capabilities = Some(server.capabilities()?);
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

/// The settings to record for a probe result.
pub fn settings_of(report: &ProbeReport) -> ServerSettings {
    ServerSettings {
        cas: report.class.to_string(),
        weak_window_ms: report.weak_window_ms,
    }
}
