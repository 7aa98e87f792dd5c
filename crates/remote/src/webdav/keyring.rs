//! The password in the system keyring, through the `keyring` crate: the Secret Service
//! (GNOME Keyring, KWallet, KeePassXC) on Linux and the BSDs, the Keychain on macOS, the
//! Credential Manager on Windows.
//!
//! deltasync's entries have the service `deltasync` and the user name `user@host[:port]` of
//! the remote (one password per account and server, shared by every workspace on it). With
//! libsecret's tool the same entry is
//! `secret-tool store --label=deltasync service deltasync username me@cloud.example.org`.

use std::sync::mpsc;
use std::time::Duration;

use super::target::Target;
use super::{Secret, SecretError};
use crate::RemoteError;

/// The keyring service name of deltasync's entries.
pub const KEYRING_SERVICE: &str = "deltasync";

/// How long a keyring call may take by default. A locked keyring may show an unlock prompt,
/// which a person must be given time to answer.
pub const DEFAULT_KEYRING_TIMEOUT: Duration = Duration::from_secs(60);

/// One entry of the system keyring: where a remote's password is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    account: String,
    timeout: Duration,
}

impl Keyring {
    /// The entry for `account` (a `user@host[:port]`).
    pub fn new(account: impl Into<String>) -> Keyring {
        Keyring {
            account: account.into(),
            timeout: DEFAULT_KEYRING_TIMEOUT,
        }
    }

    /// The entry for the remote at `url` (`https://…` or `nextcloud://user@host/…`), whose
    /// user is `user` or else the one the URL names.
    pub fn for_remote(url: &str, user: Option<&str>) -> Result<Keyring, RemoteError> {
        // Only the host and user are needed here; the http rule is enforced when connecting.
        let target = Target::parse(url, true)?;
        let user =
            user.map(str::to_string)
                .or(target.user)
                .ok_or_else(|| RemoteError::Permanent {
                    what: format!("remote {}", target.base),
                    detail: "a password in the keyring needs a user name: set auth.user, or name \
                         the user in the URL (nextcloud://user@host/folder)"
                        .into(),
                })?;
        let host = target.base.host_str().unwrap_or_default();
        let account = match target.base.port() {
            Some(port) => format!("{user}@{host}:{port}"),
            None => format!("{user}@{host}"),
        };
        Ok(Keyring::new(account))
    }

    /// Gives up on a keyring call after `timeout` (default [`DEFAULT_KEYRING_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Keyring {
        self.timeout = timeout;
        self
    }

    /// The entry's user name, `user@host[:port]`.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Reads the password.
    pub fn get(&self) -> Result<Secret, SecretError> {
        match self.call(|entry| entry.get_password()) {
            Ok(p) if p.is_empty() => Err(SecretError::KeyringEmpty {
                account: self.account.clone(),
            }),
            Ok(p) => Ok(Secret::new(p)),
            Err(e) => Err(e),
        }
    }

    /// Stores `password`, replacing what the entry held.
    pub fn set(&self, password: &Secret) -> Result<(), SecretError> {
        let value = password.expose().to_string();
        self.call(move |entry| entry.set_password(&value))
    }

    /// Removes the entry; `false` when there was none.
    pub fn delete(&self) -> Result<bool, SecretError> {
        match self.call(|entry| entry.delete_credential()) {
            Ok(()) => Ok(true),
            Err(SecretError::KeyringMissing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs `op` on the entry in a thread of its own, so that a keyring that never answers
    /// (a prompt nobody sees, a bus that hangs) costs at most the timeout.
    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&::keyring::Entry) -> ::keyring::Result<T> + Send + 'static,
    ) -> Result<T, SecretError> {
        let account = self.account.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let result = ::keyring::Entry::new(KEYRING_SERVICE, &account).and_then(|e| op(&e));
                let _ = tx.send(result);
            })
            .map_err(|e| SecretError::KeyringUnavailable {
                detail: format!("cannot start a thread: {e}"),
            })?;
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.map_error(e)),
            Err(_) => Err(SecretError::KeyringTimeout {
                account: self.account.clone(),
                secs: self.timeout.as_secs_f64(),
            }),
        }
    }

    /// Turns a keyring error into ours. The crate's errors can carry the secret's bytes
    /// (`BadEncoding`, `BadDataFormat`): those are never kept, only named.
    fn map_error(&self, e: ::keyring::Error) -> SecretError {
        use ::keyring::Error as K;
        let account = self.account.clone();
        match e {
            K::NoEntry => SecretError::KeyringMissing { account },
            K::NoDefaultStore => SecretError::KeyringUnavailable {
                detail: match ::keyring::Entry::store_status() {
                    Err(e) => platform_detail(e),
                    Ok(()) => "no credential store".into(),
                },
            },
            K::NoStorageAccess(err) => SecretError::KeyringLocked {
                account,
                detail: err.to_string(),
            },
            K::PlatformFailure(err) => SecretError::KeyringFailed {
                account,
                detail: err.to_string(),
            },
            K::BadEncoding(_) | K::BadDataFormat(..) => SecretError::KeyringNotUnicode { account },
            K::Ambiguous(entries) => SecretError::KeyringFailed {
                account,
                detail: format!(
                    "{} entries match it; remove all but one (e.g. with seahorse or secret-tool clear)",
                    entries.len()
                ),
            },
            other => SecretError::KeyringFailed {
                account,
                detail: platform_detail(&other),
            },
        }
    }
}

/// A keyring error's text, for the errors that cannot hold a secret.
fn platform_detail(e: &::keyring::Error) -> String {
    use ::keyring::Error as K;
    match e {
        K::BadEncoding(_) | K::BadDataFormat(..) => "the stored value is not text".into(),
        K::PlatformFailure(err) | K::NoStorageAccess(err) => err.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_user_at_host() {
        let k = Keyring::for_remote("nextcloud://me@cloud.example.org/sync", None).unwrap();
        assert_eq!(k.account(), "me@cloud.example.org");
        let k = Keyring::for_remote("https://dav.example.org:8443/a/b", Some("bob")).unwrap();
        assert_eq!(k.account(), "bob@dav.example.org:8443");
        // The configured user wins over the URL's.
        let k = Keyring::for_remote("https://ann@dav.example.org/", Some("bob")).unwrap();
        assert_eq!(k.account(), "bob@dav.example.org");
        assert!(Keyring::for_remote("https://dav.example.org/", None).is_err());
    }

    #[test]
    fn timeouts_are_settable() {
        let k = Keyring::new("a@b").with_timeout(Duration::from_millis(5));
        assert_eq!(k.timeout, Duration::from_millis(5));
        assert_eq!(Keyring::new("a@b").timeout, DEFAULT_KEYRING_TIMEOUT);
    }
}
