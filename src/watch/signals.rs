//! The signal part of `deltasync watch`: SIGTERM or SIGINT asks the loop to stop once the
//! sync in progress has finished; a second signal, or a sync that has not finished within the
//! stop grace, ends the process at once (the engine's journal finishes or undoes a commit in
//! flight on the next start, as after a crash).
//!
//! On Unix a thread reads the signals as they come (`signal_hook::iterator`); that module does
//! not exist on Windows, where Ctrl+C (SIGINT) and SIGTERM set a flag that a thread looks at
//! ten times a second, and a second signal ends the process from the handler itself.

use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Event;

/// Starts the signal thread; the first signal goes to `tx` as [`Event::Stop`].
#[cfg(unix)]
pub fn start(tx: Sender<Event>, grace: Duration) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("installing signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if seen == 1 {
                    let _ = tx.send(Event::Stop(name));
                    arm_grace(name, grace);
                } else {
                    tracing::warn!(
                        signal = name,
                        "second signal: stopping now; the next start finishes or undoes any commit in flight"
                    );
                    std::process::exit(crate::exit::ERROR.into());
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Starts the signal thread; the first signal goes to `tx` as [`Event::Stop`].
#[cfg(not(unix))]
pub fn start(tx: Sender<Event>, grace: Duration) -> Result<()> {
    start_polled(tx, grace)
}

/// [`start`] without `signal_hook::iterator` (which Windows lacks): SIGINT and SIGTERM set a
/// flag, a thread polls it every 100 ms; once it is set, another of them exits at once with
/// status 1 from the handler (`register_conditional_shutdown`, registered first so that it
/// sees the flag before the same signal sets it). Compiled everywhere, so that this machine's
/// build checks it; used where the iterator is missing.
#[cfg_attr(unix, allow(dead_code))]
fn start_polled(tx: Sender<Event>, grace: Duration) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(
            sig,
            i32::from(crate::exit::ERROR),
            Arc::clone(&stop),
        )
        .context("installing signals")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signals")?;
        // Which signal came, for the message.
        signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize)
            .context("installing signals")?;
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let name = if which.load(Ordering::SeqCst) == SIGINT as usize {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            let _ = tx.send(Event::Stop(name));
            arm_grace(name, grace);
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Ends the process `grace` after the first signal if the loop has not ended it by then: a
/// sync stuck on a server that does not answer must not hold a stop for minutes (each request
/// has a deadline, but a sync makes many, and retries some).
fn arm_grace(signal: &'static str, grace: Duration) {
    let started = std::thread::Builder::new()
        .name("stop-grace".into())
        .spawn(move || {
            std::thread::sleep(grace);
            tracing::warn!(
                signal,
                grace_s = grace.as_secs_f64(),
                "the sync in progress did not finish within the stop grace: stopping now; the next start finishes or undoes any commit in flight"
            );
            std::process::exit(crate::exit::ERROR.into());
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the stop timer; waiting for the sync in progress");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polled signals (the way on Windows, which has no signal iterator) hand the first
    /// SIGTERM to the loop as a stop.
    #[test]
    fn polled_signals_hand_the_first_signal_to_the_loop() {
        let (tx, rx) = std::sync::mpsc::channel();
        start_polled(tx, Duration::from_secs(3600)).unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Stop(name)) => assert_eq!(name, "SIGTERM"),
            Ok(Event::Files(_)) => panic!("a file event from nowhere"),
            Err(e) => panic!("no stop after SIGTERM: {e}"),
        }
    }
}
