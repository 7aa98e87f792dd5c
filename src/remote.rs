//! Opening a workspace's remote for the commands: the engine's [`OpenedRemote`] with the
//! configured credentials, and the CLI's advice on the errors it can give.

use anyhow::{Error, Result};
use deltasync_engine::config::Config;
use deltasync_engine::workspace::{
    ConfiguredCredentials, Credentials, GivenSecret, NoCredentials, OpenedRemote,
};
use deltasync_engine::{EngineError, OpenError, Workspace};
use deltasync_remote::{Secret, SecretError};
use std::path::Path;

pub use deltasync_engine::workspace::{
    credentials_source, has_credentials, keyring_of, settings_of,
};

/// What to tell the person about an error of opening: how to get the secret in place.
fn advice(e: &OpenError) -> Option<&'static str> {
    match e {
        OpenError::Secret(SecretError::KeyringMissing { .. }) => {
            Some("no password to send: store it with `deltasync login`")
        }
        OpenError::PasswordEnvUnset { .. } => {
            Some("set the variable, or change auth.password_env in deltasync.toml")
        }
        OpenError::S3NeedsUser => Some("set auth.user in deltasync.toml to the access key id"),
        _ => None,
    }
}

/// `e` with the CLI's advice, when it is an error of opening.
pub fn with_advice(e: Error) -> Error {
    let hint = match e.downcast_ref::<OpenError>() {
        Some(o) => advice(o),
        None => match e.downcast_ref::<EngineError>() {
            Some(EngineError::Open(o)) => advice(o),
            _ => None,
        },
    };
    match hint {
        Some(h) => e.context(h),
        None => e,
    }
}

/// Opens the remote of `config` with the configured credentials.
pub fn open(config: &Config) -> Result<OpenedRemote> {
    open_as(config, &ConfiguredCredentials)
}

/// Opens the remote of `config` with `password` instead of the configured one (`None`: the
/// configured one).
pub fn open_with(config: &Config, password: Option<Secret>) -> Result<OpenedRemote> {
    match password {
        Some(p) => open_as(config, &GivenSecret(p)),
        None => open(config),
    }
}

/// Opens the remote of `config` without asking for the password, for commands that send no
/// request (`status`): a locked keyring or a missing variable does not stop them.
pub fn open_offline(config: &Config) -> Result<OpenedRemote> {
    open_as(config, &NoCredentials)
}

fn open_as(config: &Config, credentials: &dyn Credentials) -> Result<OpenedRemote> {
    OpenedRemote::open(config, credentials).map_err(|e| with_advice(e.into()))
}

/// Opens the workspace at `dir` whose configuration is `config`, as every command that syncs.
pub fn workspace(dir: &Path, config: Config) -> Result<Workspace> {
    Workspace::open_with_config(dir, config, &ConfiguredCredentials)
        .map_err(|e| with_advice(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing keyring entry gets the advice to log in; the library's text has none.
    #[test]
    fn a_missing_keyring_entry_is_told_to_log_in() {
        let e = OpenError::Secret(SecretError::KeyringMissing {
            account: "me@dav.example.org".into(),
        });
        assert!(!e.to_string().contains("deltasync login"), "{e}");
        let shown = crate::error_chain(&with_advice(EngineError::Open(e).into()));
        assert!(shown.contains("store it with `deltasync login`"), "{shown}");
        assert!(shown.contains("me@dav.example.org"), "{shown}");
    }
}
