//! Opening a workspace's remote for the commands: the engine's [`OpenedRemote`] with the
//! configured credentials (advice on its errors is in `hints.rs`).

use anyhow::Result;
use deltasync_engine::Workspace;
use deltasync_engine::config::Config;
use deltasync_engine::workspace::{
    ConfiguredCredentials, Credentials, GivenSecret, NoCredentials, OpenedRemote,
};
use deltasync_remote::Secret;
use std::path::Path;

pub use deltasync_engine::workspace::{
    credentials_source, has_credentials, keyring_of, settings_of,
};

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
    Ok(OpenedRemote::open(config, credentials)?)
}

/// Opens the workspace at `dir` whose configuration is `config`, as every command that syncs.
pub fn workspace(dir: &Path, config: Config) -> Result<Workspace> {
    Ok(Workspace::open_with_config(
        dir,
        config,
        &ConfiguredCredentials,
    )?)
}
