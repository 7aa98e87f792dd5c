//! Opening a workspace exactly as the `deltasync` binary does: its configuration, the remote it
//! names with the credentials that remote needs, and the server verdict recorded at `init`.
//!
//! An app embedding deltasync calls [`Workspace::open`] with a [`Credentials`] (the CLI's is
//! [`ConfiguredCredentials`]: `auth.password_command`, the system keyring, or an environment
//! variable) and gets the [`Engine`] the CLI would get.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deltasync_remote::{
    DEFAULT_KEYRING_TIMEOUT, Keyring, ProbeReport, Remote, RemoteError, S3, S3Credentials,
    S3Options, Secret, SecretError, WebDav, WebDavOptions,
};

use crate::config::{Config, ConfigError, ServerSettings};
use crate::{Engine, EngineError};

/// Where the secret a remote needs comes from. The binary's is [`ConfiguredCredentials`]; an
/// app may keep its users' passwords in its own store.
pub trait Credentials {
    /// The secret to send to `config`'s remote — a WebDAV password, or an S3 secret access key
    /// whose id is `auth.user` — or `None`: send none (a folder remote), or, for S3, let the
    /// AWS chain decide (`AWS_ACCESS_KEY_ID`…, then `~/.aws/credentials`).
    fn secret(&self, config: &Config) -> Result<Option<Secret>, OpenError>;
}

/// No secret: folder remotes, S3 through the AWS chain, and commands that send no request (a
/// locked keyring does not stop `status`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl Credentials for NoCredentials {
    fn secret(&self, _: &Config) -> Result<Option<Secret>, OpenError> {
        Ok(None)
    }
}

/// A secret given by the caller (a password just typed, or one from an app's own store).
#[derive(Debug, Clone)]
pub struct GivenSecret(pub Secret);

impl Credentials for GivenSecret {
    fn secret(&self, _: &Config) -> Result<Option<Secret>, OpenError> {
        Ok(Some(self.0.clone()))
    }
}

/// The secret the configuration names: `auth.password_command`, else the system keyring
/// (`auth.keyring`), else `auth.password_env` or `DELTASYNC_PASSWORD` (WebDAV; S3 takes the
/// AWS variables instead). Read when the remote is opened, never logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfiguredCredentials;

impl Credentials for ConfiguredCredentials {
    fn secret(&self, config: &Config) -> Result<Option<Secret>, OpenError> {
        if let Some(cmd) = &config.auth.password_command {
            return Ok(Some(Secret::from_command(cmd)?));
        }
        if config.auth.keyring {
            return Ok(Some(keyring_of(config)?.get()?));
        }
        if !is_webdav(&config.remote) {
            return Ok(None);
        }
        let var = config
            .auth
            .password_env
            .clone()
            .unwrap_or_else(|| deltasync_remote::PASSWORD_ENV.to_string());
        match std::env::var_os(&var) {
            Some(_) => Ok(Some(Secret::from_env(&var)?)),
            None if config.auth.password_env.is_some() => Err(OpenError::PasswordEnvUnset { var }),
            None => Ok(None),
        }
    }
}

/// Why a workspace's remote could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The secret could not be had (command, keyring, environment).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// `auth.password_env` names a variable that is not set.
    #[error("auth.password_env names ${var}, which is not set")]
    PasswordEnvUnset {
        /// The variable.
        var: String,
    },
    /// An S3 secret from the keyring or a command without its access key id.
    #[error(
        "S3: a secret access key from the keyring or a command needs its access key id in auth.user"
    )]
    S3NeedsUser,
    /// `AWS_PROFILE` names a profile the credentials file does not hold.
    #[error(
        "AWS_PROFILE names the profile '{profile}', which {} does not hold (with aws_access_key_id and aws_secret_access_key)",
        file.display()
    )]
    NoSuchAwsProfile {
        /// The profile.
        profile: String,
        /// The credentials file.
        file: PathBuf,
    },
    /// The `[server]` verdict in deltasync.toml is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The remote refused, failed or is not a valid URL.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl OpenError {
    /// Whether a retry later can help: a server down, a locked keyring, a keyring or password
    /// command that did not answer in time.
    pub fn is_temporary(&self) -> bool {
        match self {
            OpenError::Remote(e) => e.is_temporary(),
            OpenError::Secret(
                SecretError::KeyringLocked { .. }
                | SecretError::KeyringTimeout { .. }
                | SecretError::CommandTimeout { .. },
            ) => true,
            _ => false,
        }
    }
}

/// Whether `url` names an S3 remote (`s3://BUCKET/PREFIX`).
pub fn is_s3(url: &str) -> bool {
    url.starts_with("s3://")
}

/// Whether `url` names a WebDAV remote (`http(s)://`, `nextcloud://`).
pub fn is_webdav(url: &str) -> bool {
    ["http://", "https://", "nextcloud://", "nextcloud+http://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// Whether `url` names a remote that takes credentials (WebDAV or S3).
pub fn has_credentials(url: &str) -> bool {
    is_webdav(url) || is_s3(url)
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

/// The keyring entry of the configured remote (service `deltasync`, account
/// `user@host[:port]`; for S3 `ACCESS_KEY_ID@s3://BUCKET`).
pub fn keyring_of(config: &Config) -> Result<Keyring, OpenError> {
    if is_s3(&config.remote) {
        let bucket = config.remote["s3://".len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        let key = config.auth.user.as_deref().ok_or(OpenError::S3NeedsUser)?;
        return Ok(Keyring::new(format!("{key}@s3://{bucket}")).with_timeout(keyring_timeout()));
    }
    Ok(
        Keyring::for_remote(&config.remote, config.auth.user.as_deref())?
            .with_timeout(keyring_timeout()),
    )
}

/// Where the secret comes from, without reading it: `(kind, detail)` with kind `keyring`
/// (detail: the entry's account), `command` (its first word), `env` (the variable), `profile`
/// (an AWS profile and its file) or `none`.
pub fn credentials_source(config: &Config) -> (&'static str, String) {
    let auth = &config.auth;
    if is_s3(&config.remote) && !auth.keyring && auth.password_command.is_none() {
        return s3_chain_source();
    }
    if !has_credentials(&config.remote) {
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

/// The profile file and name AWS's tools read: `AWS_SHARED_CREDENTIALS_FILE` or
/// `~/.aws/credentials`, profile `AWS_PROFILE` or `default`.
fn aws_profile() -> (Option<PathBuf>, String) {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "default".into());
    (file, profile)
}

/// Where S3 credentials come from when neither the keyring nor a command is configured.
fn s3_chain_source() -> (&'static str, String) {
    if S3Credentials::from_vars(|v| std::env::var(v).ok()).is_some() {
        return ("env", "AWS_ACCESS_KEY_ID".into());
    }
    let (file, profile) = aws_profile();
    match file {
        Some(f) if f.is_file() => ("profile", format!("{profile} in {}", f.display())),
        _ => ("none", String::new()),
    }
}

/// S3 credentials: `secret` (keyring or command, with `auth.user` as the access key id); else
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`; else the
/// `AWS_PROFILE` (or `default`) profile of the credentials file; else none (unsigned requests,
/// for a public bucket).
fn s3_credentials(
    config: &Config,
    secret: Option<Secret>,
) -> Result<Option<S3Credentials>, OpenError> {
    if let Some(secret) = secret {
        let key = config.auth.user.clone().ok_or(OpenError::S3NeedsUser)?;
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
            return Err(OpenError::NoSuchAwsProfile { profile, file });
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

/// The remote a configuration names, opened with its credentials and the recorded verdict,
/// and the WebDAV or S3 handle behind it (the probe's raw-HTTP checks need it).
#[derive(Clone)]
pub struct OpenedRemote {
    remote: Arc<dyn Remote>,
    dav: Option<Arc<WebDav>>,
    s3: Option<Arc<S3>>,
}

impl std::fmt::Debug for OpenedRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedRemote")
            .field("remote", &self.remote.describe())
            .finish()
    }
}

impl OpenedRemote {
    /// Opens the remote of `config` with the secret from `credentials`, taking the server's
    /// class from `[server]` when it is recorded there (else the backend's default until a
    /// probe or [`OpenedRemote::assume`]).
    pub fn open(config: &Config, credentials: &dyn Credentials) -> Result<Self, OpenError> {
        let secret = if has_credentials(&config.remote) {
            credentials.secret(config)?
        } else {
            None
        };
        let capabilities = match &config.server {
            Some(server) => Some(server.capabilities()?),
            None => None,
        };
        if is_s3(&config.remote) {
            let options = S3Options {
                endpoint: env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
                    .or_else(|| config.s3.endpoint.clone()),
                region: env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                    .or_else(|| config.s3.region.clone()),
                path_style: config.s3.path_style,
                credentials: s3_credentials(config, secret)?,
                allow_insecure_http: config.auth.allow_insecure_http,
                capabilities,
                ..S3Options::default()
            };
            let s3 = Arc::new(S3::open(&config.remote, &options)?);
            return Ok(OpenedRemote {
                remote: s3.clone(),
                dav: None,
                s3: Some(s3),
            });
        }
        if !is_webdav(&config.remote) {
            let remote = deltasync_remote::open(&config.remote, &WebDavOptions::default())?;
            return Ok(OpenedRemote::from_remote(remote));
        }
        let options = WebDavOptions {
            user: config.auth.user.clone(),
            password: secret,
            allow_insecure_http: config.auth.allow_insecure_http,
            capabilities,
            nextcloud: config.server.as_ref().is_some_and(|s| s.nextcloud),
            ..WebDavOptions::default()
        };
        let dav = Arc::new(WebDav::open(&config.remote, &options)?);
        Ok(OpenedRemote {
            remote: dav.clone(),
            dav: Some(dav),
            s3: None,
        })
    }

    /// Wraps a remote opened elsewhere (tests, an app's own backend); the probe then runs only
    /// the checks every remote answers.
    pub fn from_remote(remote: Arc<dyn Remote>) -> Self {
        OpenedRemote {
            remote,
            dav: None,
            s3: None,
        }
    }

    /// The remote.
    pub fn remote(&self) -> &Arc<dyn Remote> {
        &self.remote
    }

    /// Probes the server with throw-away files, and takes the verdict as its capabilities.
    pub fn probe(&self) -> Result<ProbeReport, RemoteError> {
        let report = match (&self.dav, &self.s3) {
            (Some(dav), _) => deltasync_remote::probe_webdav(dav),
            (_, Some(s3)) => deltasync_remote::probe_s3(s3),
            _ => deltasync_remote::probe(self.remote.as_ref()),
        }?;
        self.set_capabilities(report.capabilities());
        Ok(report)
    }

    /// The probe verdict recorded in the remote's meta.json by the device that initialised
    /// it; `None` when the remote has no meta.json (or one without a verdict this version
    /// knows). The read is authenticated, and limited to meta.json's size: a refused password
    /// fails here.
    pub fn recorded_verdict(&self) -> Result<Option<ServerSettings>, RemoteError> {
        let answer = self.remote.get_max(
            deltasync_meta::META_FILE,
            None,
            deltasync_store::MAX_META_BYTES,
        )?;
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
    pub fn assume(&self, settings: &ServerSettings) -> Result<(), ConfigError> {
        self.set_capabilities(settings.capabilities()?);
        Ok(())
    }

    fn set_capabilities(&self, c: deltasync_remote::Capabilities) {
        if let Some(dav) = &self.dav {
            dav.set_capabilities(c.clone());
        }
        if let Some(s3) = &self.s3 {
            s3.set_capabilities(c);
        }
    }
}

/// The settings to record in `[server]` for a probe result.
pub fn settings_of(report: &ProbeReport) -> ServerSettings {
    ServerSettings {
        cas: report.class.to_string(),
        weak_window_ms: report.weak_window_ms,
        nextcloud: report.nextcloud,
    }
}

/// An opened workspace: its [`Engine`] (which it dereferences to) and its remote.
///
/// ```no_run
/// use deltasync_engine::{SyncOptions, Workspace, workspace::ConfiguredCredentials};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut ws = Workspace::open("/home/me/notes".as_ref(), &ConfiguredCredentials)?;
/// let report = ws.sync(&SyncOptions::default())?;
/// println!("head {}", report.head);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Workspace {
    engine: Engine,
    remote: OpenedRemote,
}

impl Workspace {
    /// Opens the workspace at `root` (its `deltasync.toml`), its remote with `credentials`.
    pub fn open(root: &Path, credentials: &dyn Credentials) -> Result<Self, EngineError> {
        let config = Config::load(root)?;
        Self::open_with_config(root, config, credentials)
    }

    /// Opens the workspace at `root` with `config` instead of its `deltasync.toml` (`init`,
    /// before the file is written).
    pub fn open_with_config(
        root: &Path,
        config: Config,
        credentials: &dyn Credentials,
    ) -> Result<Self, EngineError> {
        let remote = OpenedRemote::open(&config, credentials)?;
        Self::with_opened(root, config, remote)
    }

    /// The workspace at `root` on a remote opened already.
    pub fn with_opened(
        root: &Path,
        config: Config,
        remote: OpenedRemote,
    ) -> Result<Self, EngineError> {
        let engine = Engine::with_remote(root, config, remote.remote.clone())?;
        Ok(Workspace { engine, remote })
    }

    /// The opened remote (probe, recorded verdict).
    pub fn remote(&self) -> &OpenedRemote {
        &self.remote
    }

    /// The engine.
    pub fn into_engine(self) -> Engine {
        self.engine
    }
}

impl std::ops::Deref for Workspace {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl std::ops::DerefMut for Workspace {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_remote::{Etag, GetResult, MemoryRemote, PutMode};

    /// A remote that refuses reads without a size limit, and remembers the limits asked for.
    struct OnlyCapped(MemoryRemote, std::sync::Mutex<Vec<u64>>);

    impl deltasync_remote::Forward for OnlyCapped {
        fn inner(&self) -> &dyn Remote {
            &self.0
        }
        fn read(
            &self,
            path: &str,
            inm: Option<&Etag>,
            max_len: Option<u64>,
        ) -> Result<GetResult, RemoteError> {
            let Some(max_len) = max_len else {
                panic!("GET {path} without a size limit");
            };
            self.1.lock().unwrap().push(max_len);
            self.0.get_max(path, inm, max_len)
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
        let opened = OpenedRemote::from_remote(remote.clone());
        assert_eq!(opened.recorded_verdict().unwrap(), None);
        assert_eq!(*remote.1.lock().unwrap(), [deltasync_store::MAX_META_BYTES]);
    }

    fn config(remote: &str) -> Config {
        toml::from_str(&format!("remote = '{remote}'")).unwrap()
    }

    /// The URL schemes pick the backend and whether credentials are asked.
    #[test]
    fn the_remote_kinds_are_told_apart() {
        assert!(is_webdav("https://h/dav") && is_webdav("nextcloud://u@h"));
        assert!(is_s3("s3://bucket/prefix") && !is_webdav("s3://bucket"));
        assert!(!has_credentials("/tmp/folder") && !has_credentials("file:///tmp/x"));
        assert_eq!(credentials_source(&config("/tmp/folder")).0, "none");
    }

    /// A folder remote is opened without asking the credentials for anything.
    #[test]
    fn a_folder_remote_asks_no_credentials() {
        struct Refuse;
        impl Credentials for Refuse {
            fn secret(&self, _: &Config) -> Result<Option<Secret>, OpenError> {
                panic!("a folder remote asked for a secret");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let opened = OpenedRemote::open(&config(&dir.path().display().to_string()), &Refuse);
        assert!(opened.is_ok(), "{opened:?}");
    }

    /// `auth.password_env` naming an unset variable says which.
    #[test]
    fn an_unset_password_variable_is_named() {
        let mut c = config("https://dav.example.org/files");
        c.auth.password_env = Some("DELTASYNC_TEST_SURELY_UNSET_VARIABLE".into());
        let e = ConfiguredCredentials.secret(&c).unwrap_err();
        assert!(
            matches!(&e, OpenError::PasswordEnvUnset { var } if var == "DELTASYNC_TEST_SURELY_UNSET_VARIABLE"),
            "{e:?}"
        );
        assert!(!e.is_temporary());
    }
}
