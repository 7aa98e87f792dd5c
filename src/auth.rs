//! `deltasync login` and `logout`: the WebDAV password in the system keyring, and asking a
//! person for it.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;

use anyhow::{Context, Result, bail};
use deltasync_engine::config::Config;
use deltasync_remote::{Keyring, RemoteError, Secret, SecretError};

use crate::{exit, load, remote};

/// Reads a password: one line of standard input with `from_stdin`, else asked for on the
/// terminal without echo.
pub fn read_password(account: &str, from_stdin: bool) -> Result<Secret> {
    let value = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line)
            .to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(
                "no terminal to ask for the password of {account}: give it on standard input \
                 with --password-stdin"
            );
        }
        rpassword::prompt_password(format!("Password for {account}: "))
            .context("reading the password from the terminal")?
    };
    if value.is_empty() {
        bail!("the password given for {account} is empty");
    }
    Ok(Secret::new(value))
}

/// Sends one request with `password`, so that a mistyped password is caught before it is
/// stored.
pub fn check_password(config: &Config, password: &Secret) -> Result<()> {
    let opened = remote::open_with(config, Some(password.clone()))?;
    match opened.remote.head("meta.json") {
        Ok(_) => Ok(()),
        Err(e @ RemoteError::Auth { .. }) => {
            Err(anyhow::Error::new(e).context("the server refused the password; nothing stored"))
        }
        Err(e) => Err(anyhow::Error::new(e).context("checking the password with the server")),
    }
}

fn webdav_config(dir: &Path) -> Result<Config> {
    let config = load(dir)?;
    if !remote::is_webdav(&config.remote) {
        bail!(
            "the remote {} is a folder: it needs no password",
            config.remote
        );
    }
    Ok(config)
}

/// `deltasync login`: asks for the password (or reads it from standard input), checks it with
/// the server, stores it in the system keyring and sets `auth.keyring` in deltasync.toml.
pub fn login(dir: &Path, user: Option<String>, password_stdin: bool) -> Result<u8> {
    let mut config = webdav_config(dir)?;
    if user.is_some() {
        config.auth.user = user;
    }
    let keyring = remote::keyring_of(&config)?;
    let password = read_password(keyring.account(), password_stdin)?;
    check_password(&config, &password)?;
    keyring
        .set(&password)
        .with_context(|| format!("storing the password of {}", keyring.account()))?;
    let replaced = match (
        config.auth.password_env.take(),
        config.auth.password_command.take(),
    ) {
        (Some(var), _) => Some(format!("auth.password_env (${var})")),
        (_, Some(_)) => Some("auth.password_command".to_string()),
        _ => None,
    };
    config.auth.keyring = true;
    config.validate()?;
    config.save(dir)?;
    println!(
        "Stored the password of {} in the system keyring (service '{}').",
        keyring.account(),
        deltasync_remote::KEYRING_SERVICE
    );
    match replaced {
        Some(old) => println!("deltasync.toml now reads it from there instead of {old}."),
        None => println!("deltasync.toml reads it from there (auth.keyring = true)."),
    }
    Ok(exit::OK)
}

/// `deltasync logout`: removes the remote's password from the system keyring.
pub fn logout(dir: &Path) -> Result<u8> {
    let config = webdav_config(dir)?;
    let keyring = remote::keyring_of(&config)?;
    if keyring
        .delete()
        .with_context(|| format!("removing the password of {}", keyring.account()))?
    {
        println!(
            "Removed the password of {} from the system keyring.",
            keyring.account()
        );
    } else {
        println!(
            "The system keyring held no password for {}.",
            keyring.account()
        );
    }
    if config.auth.keyring {
        println!(
            "deltasync.toml still reads the password from the keyring: run `deltasync login` \
             before the next sync."
        );
    }
    Ok(exit::OK)
}

/// For `init --keyring`: the password to use when the keyring has none yet (asked for, and
/// stored once the probe has shown that the server accepts it); `None` when the keyring has
/// one already.
pub fn password_for_init(keyring: &Keyring, password_stdin: bool) -> Result<Option<Secret>> {
    match keyring.get() {
        Ok(_) if !password_stdin => Ok(None),
        Ok(_) | Err(SecretError::KeyringMissing { .. }) => {
            read_password(keyring.account(), password_stdin).map(Some)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether an error is one a later attempt may not meet: a locked keyring, or one that did
/// not answer in time.
pub fn is_temporary(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<SecretError>(),
            Some(SecretError::KeyringLocked { .. } | SecretError::KeyringTimeout { .. })
        )
    })
}
