//! Opening the remote a configuration names, with its credentials and probed capabilities.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deltasync_engine::config::{Config, ServerSettings};
use deltasync_remote::{
    DEFAULT_KEYRING_TIMEOUT, Keyring, ProbeReport, Remote, S3, S3Credentials, S3Options, Secret,
    SecretError, WebDav, WebDavOptions,
};

/// A remote, and the WebDAV or S3 handle when it is one (for the probe's raw-HTTP checks).
pub struct Opened {
    /// The remote.
    pub remote: Arc<dyn Remote>,
    dav: Option<Arc<WebDav>>,
    s3: Option<Arc<S3>>,
}

/// Whether `url` names an S3 remote (`s3://BUCKET/PREFIX`).
pub fn is_s3(url: &str) -> bool {
    url.starts_with("s3://")
}

/// Whether `url` names a remote that takes credentials (WebDAV or S3).
pub fn has_credentials(url: &str) -> bool {
    is_webdav(url) || is_s3(url)
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

/// The keyring entry of the configured remote (`user@host[:port]`, service `deltasync`; for
/// S3 `ACCESS_KEY_ID@s3://BUCKET`).
pub fn keyring_of(config: &Config) -> Result<Keyring> {
    if is_s3(&config.remote) {
        let bucket = config.remote["s3://".len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        let key = config.auth.user.as_deref().with_context(
            || "a secret access key in the keyring needs its access key id: set auth.user",
        )?;
        return Ok(Keyring::new(format!("{key}@s3://{bucket}")).with_timeout(keyring_timeout()));
    }
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
    if is_s3(&config.remote) && !auth.keyring && auth.password_command.is_none() {
        return s3_credentials_source();
    }
    if !is_webdav(&config.remote) && !is_s3(&config.remote) {
        return ("none", String::new());
    }
    if let Some(cmd) = &auth.password_command {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        return ("command", program.to_string());
    }
    if auth.keyring {
        let account = keyring_of(config)
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
        None if is_s3(&config.remote)
            && (config.auth.keyring || config.auth.password_command.is_some()) =>
        {
            self::password(config)?
        }
        None => None,
    };
    open_inner(config, password)
}

/// The profile file and name AWS's tools read: `AWS_SHARED_CREDENTIALS_FILE` or
/// `~/.aws/credentials`, profile `AWS_PROFILE` or `default`.
fn aws_profile() -> (Option<std::path::PathBuf>, String) {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".aws/credentials"))
        });
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "default".into());
    (file, profile)
}

/// Where S3 credentials come from when neither the keyring nor a command is configured.
fn s3_credentials_source() -> (&'static str, String) {
    if S3Credentials::from_vars(|v| std::env::var(v).ok()).is_some() {
        return ("env", "AWS_ACCESS_KEY_ID".into());
    }
    let (file, profile) = aws_profile();
    match file {
        Some(f) if f.is_file() => ("profile", format!("{profile} in {}", f.display())),
        _ => ("none", String::new()),
    }
}

/// S3 credentials: the secret from `password` (keyring or command, with `auth.user` as the
/// access key id); else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`;
/// else the `AWS_PROFILE` (or `default`) profile of `~/.aws/credentials`; else none
/// (unsigned requests, for a public bucket).
fn s3_credentials(config: &Config, password: Option<Secret>) -> Result<Option<S3Credentials>> {
    if let Some(secret) = password {
        let key = config
            .auth
            .user
            .clone()
            .context("S3: auth.user must hold the access key id of the secret")?;
        return Ok(Some(S3Credentials::new(key, secret)));
    }
    if let Some(c) = S3Credentials::from_vars(|v| std::env::var(v).ok()) {
        return Ok(Some(c));
    }
    let (file, profile) = aws_profile();
    if let Some(file) = file {
        if let Some(c) = S3Credentials::from_profile_file(&file, &profile)? {
            return Ok(Some(c));
        }
        if std::env::var_os("AWS_PROFILE").is_some() {
            anyhow::bail!(
                "AWS_PROFILE names the profile '{profile}', which {} does not hold (with \
                 aws_access_key_id and aws_secret_access_key)",
                file.display()
            );
        }
    }
    Ok(None)
}

/// The first non-blank of these environment variables.
fn env_first(vars: &[&str]) -> Option<String> {
    vars.iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
}

fn open_s3(config: &Config, password: Option<Secret>) -> Result<Opened> {
    let options = S3Options {
        endpoint: env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
            .or_else(|| config.s3.endpoint.clone()),
        region: env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .or_else(|| config.s3.region.clone()),
        path_style: config.s3.path_style,
        credentials: s3_credentials(config, password)?,
        allow_insecure_http: config.auth.allow_insecure_http,
        capabilities: match &config.server {
            Some(server) => Some(server.capabilities()?),
            None => None,
        },
        ..S3Options::default()
    };
    let s3 = Arc::new(S3::open(&config.remote, &options)?);
    Ok(Opened {
        remote: s3.clone(),
        dav: None,
        s3: Some(s3),
    })
}

/// Opens the remote of `config` without asking for the password, for commands that send no
/// request (`status`): a locked keyring or a missing variable does not stop them.
pub fn open_offline(config: &Config) -> Result<Opened> {
    open_inner(config, None)
}

fn open_inner(config: &Config, password: Option<Secret>) -> Result<Opened> {
    if is_s3(&config.remote) {
        return open_s3(config, password);
    }
    if !is_webdav(&config.remote) {
        let remote = deltasync_remote::open(&config.remote, &WebDavOptions::default())?;
        return Ok(Opened {
            remote,
            dav: None,
            s3: None,
        });
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
        s3: None,
    })
}

impl Opened {
    /// Probes the server with throw-away files.
    pub fn probe(&self) -> Result<ProbeReport> {
        let report = match (&self.dav, &self.s3) {
            (Some(dav), _) => deltasync_remote::probe_webdav(dav),
            (_, Some(s3)) => deltasync_remote::probe_s3(s3),
            _ => deltasync_remote::probe(self.remote.as_ref()),
        }
        .with_context(|| format!("probing {}", self.remote.describe()))?;
        if let Some(dav) = &self.dav {
            dav.set_capabilities(report.capabilities());
        }
        if let Some(s3) = &self.s3 {
            s3.set_capabilities(report.capabilities());
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
            .get_max(
                deltasync_meta::META_FILE,
                None,
                deltasync_store::MAX_META_BYTES,
            )
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
        if let Some(s3) = &self.s3 {
            s3.set_capabilities(settings.capabilities()?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_remote::RemoteError;
    use deltasync_remote::{Capabilities, Etag, GetResult, MemoryRemote, ObjectInfo, PutMode};

    /// A remote that refuses reads without a size limit, and remembers the limits asked for.
    struct OnlyCapped(MemoryRemote, std::sync::Mutex<Vec<u64>>);

    impl Remote for OnlyCapped {
        fn get(&self, path: &str, _: Option<&Etag>) -> Result<GetResult, RemoteError> {
            panic!("GET {path} without a size limit");
        }
        fn get_max(
            &self,
            path: &str,
            inm: Option<&Etag>,
            max_len: u64,
        ) -> Result<GetResult, RemoteError> {
            self.1.lock().unwrap().push(max_len);
            self.0.get_max(path, inm, max_len)
        }
        fn put(
            &self,
            path: &str,
            body: &[u8],
            mode: &PutMode,
        ) -> Result<Option<Etag>, RemoteError> {
            self.0.put(path, body, mode)
        }
        fn head(&self, path: &str) -> Result<Option<ObjectInfo>, RemoteError> {
            self.0.head(path)
        }
        fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, RemoteError> {
            self.0.list(dir)
        }
        fn delete(&self, path: &str) -> Result<(), RemoteError> {
            self.0.delete(path)
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
    }

    /// A joining device's read of the recorded verdict had no size limit.
    #[test]
    fn the_recorded_verdict_is_read_with_meta_jsons_size_limit() {
        let inner = MemoryRemote::new();
        inner
            .put(deltasync_meta::META_FILE, b"{}", &PutMode::Overwrite)
            .unwrap();
        let remote = Arc::new(OnlyCapped(inner, Default::default()));
        let opened = Opened {
            remote: remote.clone(),
            dav: None,
            s3: None,
        };
        assert_eq!(opened.recorded_verdict().unwrap(), None);
        assert_eq!(*remote.1.lock().unwrap(), [deltasync_store::MAX_META_BYTES]);
    }
}
