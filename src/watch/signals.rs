//! The signal part of `deltasync watch`: SIGTERM or SIGINT asks the loop to stop once the
//! sync in progress has finished; a second signal, or a sync that has not finished within the
//! stop grace, ends the process at once (the engine's journal finishes or undoes a commit in
//! flight on the next start, as after a crash).

use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Event;

/// Starts the signal thread; the first signal goes to `tx` as [`Event::Stop`].
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
