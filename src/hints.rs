//! What to run about an error: the CLI's advice, added here to the libraries' typed errors
//! (which say what happened and whether a retry helps, never which command to type).

use deltasync_engine::{EngineError, OpenError};
use deltasync_lock::LeaseError;
use deltasync_remote::{RemoteError, SecretError};
use deltasync_store::{Remedy, StoreError};

/// The command or step that helps with `e`, if one does.
pub fn of(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return engine(e);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store(e);
        }
        if let Some(e) = cause.downcast_ref::<OpenError>() {
            return open(e);
        }
        if let Some(e) = cause.downcast_ref::<LeaseError>() {
            return lease(e);
        }
        cause.downcast_ref::<RemoteError>().and_then(remote)
    })
}

/// [`of`] for an engine error (the watcher's record).
pub fn engine(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::MassDelete { .. } => {
            Some("if this is intended, run again with --allow-mass-delete")
        }
        EngineError::RemoteBehind { .. } => Some(
            "`deltasync repair --dry-run` shows what putting this device's data back on the \
             remote would do; `deltasync repair` does it",
        ),
        EngineError::Store(e) => store(e),
        EngineError::Open(e) => open(e),
        EngineError::Lease(e) => lease(e),
        EngineError::Remote(e) => remote(e),
        _ => None,
    }
}

fn store(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::NotInitialised => Some("run `deltasync init` first"),
        StoreError::Damaged {
            remedy: Remedy::RestoreMeta,
            ..
        } => Some(
            "`deltasync restore BACKUP.zip` puts a backup back; or move meta.json away and run \
             `deltasync repair` on a device that has all the data",
        ),
        StoreError::Damaged {
            remedy: Remedy::CompactFromSyncedDevice,
            ..
        } => Some("run `deltasync compact` on a device that has synced it"),
        StoreError::Remote(e) => remote(e),
        _ => None,
    }
}

fn open(e: &OpenError) -> Option<&'static str> {
    match e {
        OpenError::Secret(SecretError::KeyringMissing { .. }) => {
            Some("no password to send: store it with `deltasync login`")
        }
        OpenError::PasswordEnvUnset { .. } => {
            Some("set the variable, or change auth.password_env in deltasync.toml")
        }
        OpenError::S3NeedsUser => Some("set auth.user in deltasync.toml to the access key id"),
        OpenError::Remote(e) => remote(e),
        _ => None,
    }
}

fn lease(e: &LeaseError) -> Option<&'static str> {
    match e {
        LeaseError::Held { .. } => {
            Some("if that device crashed, `deltasync unlock --force` breaks the lock")
        }
        LeaseError::Remote(e) => remote(e),
    }
}

fn remote(e: &RemoteError) -> Option<&'static str> {
    match e {
        RemoteError::Transient { what, .. } if what == "Login Flow" => {
            Some("run `deltasync login` again")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(e: impl Into<anyhow::Error>) -> &'static str {
        of(&e.into()).unwrap_or_default()
    }

    /// Each error whose remedy is a command gets that command, through any wrapping.
    #[test]
    fn each_remedy_names_its_command() {
        let mass = EngineError::MassDelete {
            collection: "tasks".into(),
            deletes: 5,
            total: 5,
            percent: 50,
        };
        assert!(hint(mass).contains("--allow-mass-delete"));
        let behind = EngineError::RemoteBehind {
            remote: "r".into(),
            detail: "d".into(),
        };
        assert!(hint(behind).contains("deltasync repair"));
        let damaged = |remedy| StoreError::Damaged {
            path: "meta.json".into(),
            detail: "d".into(),
            remedy,
        };
        assert!(
            hint(EngineError::Store(damaged(Remedy::RestoreMeta))).contains("deltasync repair")
        );
        assert!(hint(damaged(Remedy::CompactFromSyncedDevice)).contains("deltasync compact"));
        assert!(hint(StoreError::NotInitialised).contains("deltasync init"));
        let held = LeaseError::Held {
            owner: "o".into(),
            name: "laptop".into(),
            seconds: 30,
        };
        assert!(hint(EngineError::Lease(held)).contains("unlock --force"));
        let missing = OpenError::Secret(SecretError::KeyringMissing {
            account: "me@host".into(),
        });
        assert!(hint(EngineError::Open(missing)).contains("deltasync login"));
        let login = RemoteError::Transient {
            what: "Login Flow".into(),
            detail: "access was not granted within 600 s".into(),
        };
        assert!(hint(login).contains("deltasync login"));
        let wrapped = anyhow::Error::new(StoreError::NotInitialised).context("syncing");
        assert!(of(&wrapped).is_some_and(|h| h.contains("deltasync init")));
        assert_eq!(hint(EngineError::TooManyRetries(3)), "");
    }
}
