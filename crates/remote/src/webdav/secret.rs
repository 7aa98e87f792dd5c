//! Passwords that never show up in a log, an error or a `Debug` print.

use std::fmt;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a `password_command` may run before it is stopped (a `sleep`, a prompt nobody
/// answers): [`Secret::from_command`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a password command may print (a password is a line, not a file).
const MAX_COMMAND_OUTPUT: u64 = 64 * 1024;

/// The environment variable deltasync reads a WebDAV password from by default.
pub const PASSWORD_ENV: &str = "DELTASYNC_PASSWORD";

/// A password or token. Its `Debug` and `Display` print `***`; only [`Secret::expose`] gives
/// the value, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself. Use it only to send it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret from the environment variable `var` (for example [`PASSWORD_ENV`]).
    pub fn from_env(var: &str) -> Result<Secret, SecretError> {
        match std::env::var(var) {
            Ok(v) if v.is_empty() => Err(SecretError::EnvEmpty {
                var: var.to_string(),
            }),
            Ok(v) => Ok(Secret(v)),
            Err(std::env::VarError::NotPresent) => Err(SecretError::EnvMissing {
                var: var.to_string(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::EnvNotUnicode {
                var: var.to_string(),
            }),
        }
    }

    /// Runs `command` with `sh -c` (`cmd /C` on Windows; a `password_command` such as `pass show nextcloud` or
    /// `secret-tool lookup service nextcloud`) and takes what it prints, less one trailing
    /// newline; stopped after 30 s. See [`Secret::from_command_within`].
    pub fn from_command(command: &str) -> Result<Secret, SecretError> {
        Self::from_command_within(command, DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Secret::from_command`], stopping the command (its whole process group) after
    /// `timeout`. Its stdin is this process's (a pinentry asks on the terminal); what it prints
    /// to stderr is dropped, since it may repeat the password or the command line; neither its
    /// output nor the command line is ever in an error, which names only its first word.
    pub fn from_command_within(command: &str, timeout: Duration) -> Result<Secret, SecretError> {
        let program = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut child = shell(command)
            .stdin(Stdio::inherit())
            .stderr(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| SecretError::CommandSpawn {
                program: program.clone(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.take(MAX_COMMAND_OUTPUT + 1).read_to_end(&mut out);
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    kill_tree(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SecretError::CommandTimeout {
                        program,
                        secs: timeout.as_secs_f64(),
                    });
                }
            }
        };
        let stdout = reader.join().unwrap_or_default();
        // First: a command cut off after 64 KiB dies of a broken pipe.
        if stdout.len() as u64 > MAX_COMMAND_OUTPUT {
            return Err(SecretError::CommandTooLong { program });
        }
        if !status.success() {
            return Err(SecretError::CommandFailed {
                program,
                status: status.to_string(),
            });
        }
        let mut value = String::from_utf8(stdout).map_err(|_| SecretError::CommandNotUnicode {
            program: program.clone(),
        })?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        if value.is_empty() {
            return Err(SecretError::CommandEmpty { program });
        }
        Ok(Secret(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read. Never contains the secret, nor a command's output.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {var} is not set")]
    EnvMissing {
        /// The variable.
        var: String,
    },
    /// The environment variable is set but empty.
    #[error("environment variable {var} is empty")]
    EnvEmpty {
        /// The variable.
        var: String,
    },
    /// The environment variable is not valid UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable.
        var: String,
    },
    /// The password command could not be started.
    #[error("could not run the password command '{program}'")]
    CommandSpawn {
        /// The command's first word.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The password command exited with an error.
    #[error("the password command '{program}' failed ({status})")]
    CommandFailed {
        /// The command's first word.
        program: String,
        /// How it exited.
        status: String,
    },
    /// The password command did not finish in time; it was stopped.
    #[error(
        "the password command '{program}' did not finish within {secs} s and was stopped (is it waiting for input?)"
    )]
    CommandTimeout {
        /// The command's first word.
        program: String,
        /// How long deltasync waited.
        secs: f64,
    },
    /// The password command printed more than a password can be.
    #[error("the password command '{program}' printed more than 64 KiB: that is not a password")]
    CommandTooLong {
        /// The command's first word.
        program: String,
    },
    /// The password command printed nothing.
    #[error("the password command '{program}' printed nothing")]
    CommandEmpty {
        /// The command's first word.
        program: String,
    },
    /// The password command printed something that is not UTF-8.
    #[error("the password command '{program}' printed something that is not UTF-8")]
    CommandNotUnicode {
        /// The command's first word.
        program: String,
    },
    /// The system keyring holds no password for the account.
    #[error("the system keyring has no password for {account} (service 'deltasync')")]
    KeyringMissing {
        /// The entry's user name, `user@host`.
        account: String,
    },
    /// The keyring's entry is empty.
    #[error("the system keyring's password for {account} is empty")]
    KeyringEmpty {
        /// The entry's user name.
        account: String,
    },
    /// The keyring's entry is not text.
    #[error("the system keyring's password for {account} is not UTF-8 text")]
    KeyringNotUnicode {
        /// The entry's user name.
        account: String,
    },
    /// No keyring could be reached (no Secret Service on the session bus, no session bus).
    #[error(
        "the system keyring cannot be reached ({detail}); without a desktop session, give the password through auth.password_command or an environment variable instead"
    )]
    KeyringUnavailable {
        /// The platform's reason.
        detail: String,
    },
    /// The keyring refused access, typically because it is locked.
    #[error("the system keyring refused access to {account} (is it locked?): {detail}")]
    KeyringLocked {
        /// The entry's user name.
        account: String,
        /// The platform's reason.
        detail: String,
    },
    /// The keyring failed otherwise.
    #[error("the system keyring failed for {account}: {detail}")]
    KeyringFailed {
        /// The entry's user name.
        account: String,
        /// The platform's reason.
        detail: String,
    },
    /// The keyring did not answer in time (an unlock prompt nobody answered, a hung bus).
    #[error(
        "the system keyring did not answer within {secs} s for {account} (is it locked, waiting for an unlock prompt?)"
    )]
    KeyringTimeout {
        /// The entry's user name.
        account: String,
        /// How long deltasync waited.
        secs: f64,
    },
}

/// The command line run by the system's shell: `sh -c` in a process group of its own (so that
/// [`kill_tree`] reaches what it forks) on Unix, `cmd /C` on Windows.
#[cfg(unix)]
fn shell(command: &str) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut c = Command::new("sh");
    c.arg("-c").arg(command).process_group(0);
    c
}

/// See the Unix version.
#[cfg(windows)]
fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

/// Stops the shell and everything it started: `sh -c "sleep 1000"` forks, and the sleep
/// holds stdout.
#[cfg(unix)]
fn kill_tree(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// See the Unix version.
#[cfg(windows)]
fn kill_tree(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/T", "/F", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn from_command_trims_one_newline_and_hides_output() {
        let s = Secret::from_command("printf 'pa ss\\n'").unwrap();
        assert_eq!(s.expose(), "pa ss");
        let s = Secret::from_command("printf 'x\\r\\n'").unwrap();
        assert_eq!(s.expose(), "x");
        let e = Secret::from_command("echo sekrit-output; exit 3").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
        assert!(msg.contains("'echo'"), "{msg}");
        assert!(matches!(
            Secret::from_command("true"),
            Err(SecretError::CommandEmpty { .. })
        ));
    }

    /// Issue: `password_command = "sleep 1000"` blocked forever.
    #[test]
    fn a_password_command_that_hangs_is_stopped() {
        let started = Instant::now();
        let e = Secret::from_command_within("sleep 1000", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, SecretError::CommandTimeout { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(e.to_string().contains("'sleep'"), "{e}");
        // The command's own stderr (which may repeat the command or the password) is dropped,
        // and a huge output is refused.
        let e = Secret::from_command("echo 'sekrit' >&2; exit 1").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("sekrit"));
        assert!(matches!(
            Secret::from_command("head -c 100000 /dev/zero | tr '\\0' x"),
            Err(SecretError::CommandTooLong { .. })
        ));
    }

    #[test]
    fn from_env_reports_missing_variables() {
        let e = Secret::from_env("DELTASYNC_TEST_SURELY_NOT_SET_42").unwrap_err();
        assert!(matches!(e, SecretError::EnvMissing { .. }));
        // PATH is always set in a test process.
        assert!(Secret::from_env("PATH").is_ok());
    }
}
