//! Jittered exponential backoff with a bound on retries: the one delay policy of the HTTP
//! backends' own retries and of the commit protocol's (`deltasync-lock` re-exports it).

use std::time::Duration;

/// Jittered exponential backoff with a bound on attempts.
///
/// ```
/// use std::time::Duration;
/// use deltasync_remote::Backoff;
///
/// let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(40), 2);
/// assert!(b.next_delay().is_some_and(|d| d <= Duration::from_millis(10)));
/// assert!(b.next_delay().is_some_and(|d| d <= Duration::from_millis(20)));
/// assert_eq!(b.next_delay(), None);
/// assert_eq!(b.attempts(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
    max_attempts: u32,
}

impl Backoff {
    /// A backoff starting at `base`, doubling up to `max`, for at most `max_attempts` retries.
    pub fn new(base: Duration, max: Duration, max_attempts: u32) -> Self {
        Backoff {
            attempt: 0,
            base,
            max,
            max_attempts,
        }
    }

    /// The default for network remotes: 100 ms doubling to 5 s, 8 retries.
    pub fn standard() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5), 8)
    }

    /// A fast one for tests and local folders: 1 ms doubling to 20 ms, 8 retries.
    pub fn quick() -> Self {
        Self::new(Duration::from_millis(1), Duration::from_millis(20), 8)
    }

    /// How many retries were handed out.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next retry, or `None` when the bound is reached. The delay is
    /// drawn uniformly from [d/2, d] where d doubles every attempt ("equal jitter").
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt += 1;
        let half = exp / 2;
        let jitter_ns = fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        Some(half + Duration::from_nanos(jitter_ns))
    }

    /// Sleeps for the next delay; false when the bound is reached.
    pub fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(d) => {
                std::thread::sleep(d);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(40), 4);
        let delays: Vec<Duration> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(delays.len(), 4);
        assert!(delays[0] >= Duration::from_millis(5) && delays[0] <= Duration::from_millis(10));
        assert!(delays[3] >= Duration::from_millis(20) && delays[3] <= Duration::from_millis(40));
    }
}
