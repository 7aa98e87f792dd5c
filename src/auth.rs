//! `deltasync login` and `logout`: the WebDAV password in the system keyring, and asking a
//! person for it.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use deltasync_engine::config::Config;
use deltasync_remote::{AppPassword, Keyring, LoginFlow, RemoteError, Secret, SecretError};

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
    match opened.remote().head("meta.json") {
        Ok(_) => Ok(()),
        Err(e @ (RemoteError::Auth { .. } | RemoteError::Denied { .. })) => {
            Err(anyhow::Error::new(e).context("the server refused the password; nothing stored"))
        }
        Err(e) => Err(anyhow::Error::new(e).context("checking the password with the server")),
    }
}

fn webdav_config(dir: &Path) -> Result<Config> {
    let config = load(dir)?;
    if !remote::has_credentials(&config.remote) {
        bail!(
            "the remote {} is a folder: it needs no password",
            config.remote
        );
    }
    Ok(config)
}

/// How often `login` asks Nextcloud whether access was granted, and for how long.
const LOGIN_FLOW_POLL: Duration = Duration::from_secs(2);
const LOGIN_FLOW_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// `deltasync login`: on Nextcloud (unless `by_hand`), Login Flow v2 — the person grants
/// access in the browser and Nextcloud hands over a new app password; elsewhere, asks for the
/// password (or reads it from standard input). The password is checked with the server, stored
/// in the system keyring, and deltasync.toml set to read it from there (`auth.keyring`).
pub fn login(dir: &Path, user: Option<String>, by_hand: bool, password_stdin: bool) -> Result<u8> {
    let mut config = webdav_config(dir)?;
    if user.is_some() {
        config.auth.user = user;
    }
    let password = if LoginFlow::start_is_possible(&config.remote) && !by_hand {
        let granted = login_flow(&config)?;
        if config.auth.user.as_deref() != Some(granted.login_name.as_str()) {
            config.auth.user = Some(granted.login_name.clone());
        }
        granted.app_password
    } else {
        let keyring = remote::keyring_of(&config)?;
        read_password(keyring.account(), password_stdin)?
    };
    let keyring = remote::keyring_of(&config)?;
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

/// Runs Login Flow v2: prints the page to open, waits until access is granted there.
fn login_flow(config: &Config) -> Result<AppPassword> {
    let flow = LoginFlow::start(&config.remote, config.auth.allow_insecure_http)
        .context("starting Nextcloud's Login Flow")?;
    println!("Open this page in a browser, log in to Nextcloud and grant deltasync access:");
    println!();
    println!("    {}", flow.login_url);
    println!();
    println!(
        "Waiting for access to be granted (up to {} minutes; `deltasync login --manual` takes an app password typed by hand instead) …",
        LOGIN_FLOW_TIMEOUT.as_secs() / 60
    );
    // The URL must reach a person (or a test) reading a pipe before the wait begins.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let granted = flow
        .wait(LOGIN_FLOW_POLL, LOGIN_FLOW_TIMEOUT)
        .context("waiting for Nextcloud to grant access")?;
    println!(
        "Access granted: Nextcloud made an app password for {} on {}.",
        granted.login_name, granted.server
    );
    Ok(granted)
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
        c.downcast_ref::<deltasync_engine::OpenError>()
            .is_some_and(|o| o.is_temporary())
            || matches!(
                c.downcast_ref::<SecretError>(),
                Some(
                    SecretError::KeyringLocked { .. }
                        | SecretError::KeyringTimeout { .. }
                        | SecretError::CommandTimeout { .. }
                )
            )
    })
}
