//! A lease lock for remotes that ignore preconditions (nginx's dav module, `rclone serve
//! webdav`): the only way to keep two writers apart there is to take turns.
//!
//! The lease is a small file `lock.json` holding an owner, a random token and an expiry. It is
//! taken by writing it and reading it back after a short settle time: if the token read back
//! is ours, we hold it. It is renewed while held, taken over once expired (a crashed device
//! cannot hold it forever), released on exit, and can be removed by a person
//! (`deltasync unlock --force`).
//!
//! This is not a perfect mutual exclusion on a server that may reorder writes, which is why
//! correctness never rests on it: deltas are immutable and uniquely named, and a commit that
//! another writer overwrote anyway is detected and made again. The lease only makes that rare.

use deltasync_meta::now_ms;
use std::time::Duration;

use deltasync_remote::{GetResult, PutMode, Remote, RemoteError};
use serde::{Deserialize, Serialize};

use crate::{Backoff, retry_transient};

/// Path of the lease file at the remote root.
pub const LEASE_FILE: &str = "lock.json";

/// What the lease file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// Device id of the holder.
    pub owner: String,
    /// Human name of the holder's device.
    #[serde(default)]
    pub owner_name: String,
    /// Random token of this acquisition.
    pub token: String,
    /// When it was taken, ms since the Unix epoch.
    pub acquired_ms: u64,
    /// When it expires unless renewed, ms since the Unix epoch.
    pub expires_ms: u64,
}

/// Errors of the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another device holds the lease and did not release it in time.
    #[error(
        "the remote is locked by device '{owner}' ({name}) for another {seconds} s; if that device \
         crashed, wait for the lock to expire or break it"
    )]
    Held {
        /// The holder's device id.
        owner: String,
        /// The holder's name.
        name: String,
        /// Seconds until it expires.
        seconds: u64,
    },
    /// The remote failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl LeaseError {
    /// Whether a retry later can help.
    pub fn is_temporary(&self) -> bool {
        match self {
            LeaseError::Held { .. } => true,
            LeaseError::Remote(e) => e.is_temporary(),
        }
    }
}

/// Timing of the lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// How long a lease lasts unless renewed.
    pub ttl: Duration,
    /// How long to wait after writing the lease before reading it back.
    pub settle: Duration,
    /// How long to wait for another holder before giving up.
    pub wait: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(60),
            settle: Duration::from_millis(300),
            wait: Duration::from_secs(30),
        }
    }
}

/// A held lease. Release it with [`Lease::release`]; dropping it releases it best-effort.
pub struct Lease<'a> {
    remote: &'a dyn Remote,
    info: LeaseInfo,
    config: LeaseConfig,
    released: bool,
}

impl std::fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("info", &self.info).finish()
    }
}

/// Reads the lease file, if any (a malformed one counts as absent: it cannot name a holder).
/// Read once: a remote under the `Retry` layer (the store's) retries it.
pub fn read_lease(remote: &dyn Remote) -> Result<Option<LeaseInfo>, RemoteError> {
    // A lease is a few hundred bytes; anything much larger is not one.
    const MAX_LEASE_BYTES: u64 = 64 * 1024;
    match remote.get_max(LEASE_FILE, None, MAX_LEASE_BYTES)? {
        GetResult::Found { body, .. } => Ok(serde_json::from_slice(&body).ok()),
        _ => Ok(None),
    }
}

/// Removes the lease whoever holds it (`deltasync unlock --force`).
pub fn break_lease(remote: &dyn Remote) -> Result<Option<LeaseInfo>, RemoteError> {
    let held = read_lease(remote)?;
    remote.delete(LEASE_FILE)?;
    Ok(held)
}

impl<'a> Lease<'a> {
    /// Takes the lease for `owner`, waiting up to `config.wait` for another holder.
    pub fn acquire(
        remote: &'a dyn Remote,
        owner: &str,
        owner_name: &str,
        config: LeaseConfig,
    ) -> Result<Lease<'a>, LeaseError> {
        let deadline = std::time::Instant::now() + config.wait;
        let mut backoff =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2), u32::MAX);
        loop {
            let now = now_ms();
            if let Some(held) = read_lease(remote)?
                && held.owner != owner
                && held.expires_ms > now
            {
                if std::time::Instant::now() >= deadline {
                    return Err(LeaseError::Held {
                        owner: held.owner,
                        name: held.owner_name,
                        seconds: (held.expires_ms - now).div_ceil(1000),
                    });
                }
                backoff.wait();
                continue;
            }
            let info = LeaseInfo {
                owner: owner.to_string(),
                owner_name: owner_name.to_string(),
                token: format!("{:016x}", fastrand::u64(..)),
                acquired_ms: now,
                expires_ms: now + config.ttl.as_millis() as u64,
            };
            write(remote, &info)?;
            std::thread::sleep(config.settle);
            match read_lease(remote)? {
                Some(back) if back.token == info.token => {
                    tracing::debug!(owner, "lease taken");
                    return Ok(Lease {
                        remote,
                        info,
                        config,
                        released: false,
                    });
                }
                _ => {
                    // Someone wrote after us: they hold it (or will find out the same way).
                    if std::time::Instant::now() >= deadline {
                        let held = read_lease(remote)?;
                        return Err(LeaseError::Held {
                            owner: held.as_ref().map(|h| h.owner.clone()).unwrap_or_default(),
                            name: held.map(|h| h.owner_name).unwrap_or_default(),
                            seconds: config.ttl.as_secs(),
                        });
                    }
                    backoff.wait();
                }
            }
        }
    }

    /// What this lease holds.
    pub fn info(&self) -> &LeaseInfo {
        &self.info
    }

    /// Extends the lease if less than half its time is left; fails if someone took it over.
    pub fn renew_if_needed(&mut self) -> Result<(), LeaseError> {
        let now = now_ms();
        if self.info.expires_ms.saturating_sub(now) > self.config.ttl.as_millis() as u64 / 2 {
            return Ok(());
        }
        match read_lease(self.remote)? {
            Some(back) if back.token == self.info.token => {}
            other => {
                let held = other.unwrap_or_else(|| self.info.clone());
                return Err(LeaseError::Held {
                    owner: held.owner,
                    name: held.owner_name,
                    seconds: 0,
                });
            }
        }
        self.info.expires_ms = now + self.config.ttl.as_millis() as u64;
        write(self.remote, &self.info)?;
        Ok(())
    }

    /// Releases the lease if it is still ours.
    pub fn release(mut self) -> Result<(), RemoteError> {
        self.released = true;
        release(self.remote, &self.info)
    }
}

fn write(remote: &dyn Remote, info: &LeaseInfo) -> Result<(), RemoteError> {
    let body = serde_json::to_vec(info).expect("lease serialises");
    retry_transient(&mut Backoff::standard(), || {
        remote.put(LEASE_FILE, &body, &PutMode::Overwrite)
    })?;
    Ok(())
}

fn release(remote: &dyn Remote, info: &LeaseInfo) -> Result<(), RemoteError> {
    if let Some(back) = read_lease(remote)?
        && back.token == info.token
    {
        remote.delete(LEASE_FILE)?;
    }
    Ok(())
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = release(self.remote, &self.info)
        {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltasync_remote::{Faults, MemoryRemote};

    fn quick() -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_millis(400),
            settle: Duration::from_millis(5),
            wait: Duration::from_millis(50),
        }
    }

    fn no_cas() -> MemoryRemote {
        let r = MemoryRemote::new();
        r.set_faults(Faults {
            ignore_preconditions: true,
            ..Faults::default()
        });
        r
    }

    #[test]
    fn second_holder_waits_then_fails_with_a_clear_message() {
        let r = no_cas();
        let a = Lease::acquire(&r, "dev-a", "laptop", quick()).unwrap();
        let err = Lease::acquire(&r, "dev-b", "phone", quick()).unwrap_err();
        assert!(err.to_string().contains("laptop"), "{err}");
        assert!(
            err.to_string().contains("wait for the lock to expire"),
            "{err}"
        );
        assert!(
            matches!(err, LeaseError::Held { seconds, .. } if seconds > 0),
            "{err}"
        );
        a.release().unwrap();
        Lease::acquire(&r, "dev-b", "phone", quick())
            .unwrap()
            .release()
            .unwrap();
        assert!(read_lease(&r).unwrap().is_none());
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let r = no_cas();
        let a = Lease::acquire(&r, "dev-a", "laptop", quick()).unwrap();
        std::mem::forget(a); // a crashed holder never releases
        std::thread::sleep(Duration::from_millis(450));
        let b = Lease::acquire(&r, "dev-b", "phone", quick()).unwrap();
        assert_eq!(read_lease(&r).unwrap().unwrap().owner, "dev-b");
        drop(b);
        assert!(read_lease(&r).unwrap().is_none(), "drop releases");
    }

    #[test]
    fn renew_notices_a_takeover() {
        let r = no_cas();
        let mut a = Lease::acquire(&r, "dev-a", "laptop", quick()).unwrap();
        break_lease(&r).unwrap();
        let _b = Lease::acquire(&r, "dev-b", "phone", quick()).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(a.renew_if_needed(), Err(LeaseError::Held { .. })));
    }

    #[test]
    fn threads_take_turns() {
        let r = std::sync::Arc::new(no_cas());
        let counter = std::sync::Arc::new(std::sync::Mutex::new((0u32, 0u32)));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (r, counter) = (r.clone(), counter.clone());
                std::thread::spawn(move || {
                    let cfg = LeaseConfig {
                        ttl: Duration::from_secs(5),
                        settle: Duration::from_millis(20),
                        wait: Duration::from_secs(20),
                    };
                    for _ in 0..3 {
                        let lease =
                            Lease::acquire(r.as_ref(), &format!("d{i}"), "t", cfg.clone()).unwrap();
                        {
                            let mut c = counter.lock().unwrap();
                            c.0 += 1;
                            c.1 = c.1.max(c.0);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                        counter.lock().unwrap().0 -= 1;
                        lease.release().unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.lock().unwrap().1, 1, "never two holders at once");
    }
}
