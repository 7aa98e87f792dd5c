//! The poller part of `deltasync watch`: asks the remote now and then whether other devices
//! committed, through the engine's fetch.

use std::time::{Duration, Instant};

use deltasync_engine::{Engine, EngineError};

/// The poller: when to ask next.
pub struct Poller {
    interval: Duration,
    next: Instant,
}

impl Poller {
    /// A poller that asks every `interval`, the first time an interval from now.
    pub fn new(interval: Duration) -> Poller {
        Poller {
            interval,
            next: Instant::now() + interval,
        }
    }

    /// When the next poll is due.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Whether a poll is due.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// The remote was just asked (by a sync): the next poll is due an interval from now.
    pub fn asked(&mut self) {
        self.next = Instant::now() + self.interval;
    }

    /// Asks the remote whether meta.json changed ([`Engine::fetch`]: a conditional GET, so a
    /// 304 is one request with no body and nothing is parsed, except where ETags can go stale
    /// and the engine reads meta.json in full now and then); if it did, the mirror is brought
    /// up to date. Returns whether other devices' commits wait to be written here. The next
    /// poll is due an interval from now, so a laptop waking from sleep polls once, not a
    /// storm.
    pub fn poll(&mut self, engine: &mut Engine) -> Result<bool, EngineError> {
        self.next = Instant::now() + self.interval;
        let (_, _, applied) = engine.fetch()?;
        Ok(applied > 0)
    }
}
