//! Hybrid logical clock.

use serde::{Deserialize, Serialize};

/// A hybrid logical clock value: wall-clock milliseconds and a counter. Serialised as the pair
/// `[ms, counter]` so that JavaScript readers see exact numbers.
///
/// Ordering is by `(ms, counter)`; ties between devices are broken by the caller (device id).
/// A device that receives a clock from the future moves its own clock past it, so a device with
/// a wrong clock cannot win every conflict forever: its values only win until another device
/// writes after having seen them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(from = "(u64, u32)", into = "(u64, u32)")]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (the larger of the wall clock and any clock seen).
    pub ms: u64,
    /// Logical counter for events within the same millisecond.
    pub counter: u32,
}

impl From<(u64, u32)> for Hlc {
    fn from((ms, counter): (u64, u32)) -> Self {
        Hlc { ms, counter }
    }
}

impl From<Hlc> for (u64, u32) {
    fn from(h: Hlc) -> Self {
        (h.ms, h.counter)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch (0 for a clock set before 1970): the
/// one clock reading of every crate here.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Hlc {
    /// The clock for a local event at wall time `now_ms`, after `self` (the last clock issued
    /// or seen).
    pub fn tick(self, now_ms: u64) -> Hlc {
        if now_ms > self.ms {
            Hlc {
                ms: now_ms,
                counter: 0,
            }
        } else {
            Hlc {
                ms: self.ms,
                counter: self.counter.saturating_add(1),
            }
        }
    }

    /// The clock after receiving `other` at wall time `now_ms`: strictly greater than both.
    pub fn observe(self, other: Hlc, now_ms: u64) -> Hlc {
        let top = self.max(other);
        top.tick(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_monotonic_even_when_wall_clock_goes_back() {
        let a = Hlc::default().tick(1000);
        let b = a.tick(900);
        assert!(b > a);
        assert_eq!(b.ms, 1000);
        let c = b.tick(2000);
        assert_eq!(
            c,
            Hlc {
                ms: 2000,
                counter: 0
            }
        );
    }

    #[test]
    fn observe_passes_a_clock_from_the_future() {
        let mine = Hlc {
            ms: 1000,
            counter: 0,
        };
        let theirs = Hlc {
            ms: 5000,
            counter: 7,
        };
        let next = mine.observe(theirs, 1001);
        assert!(next > theirs);
    }

    #[test]
    fn serialises_as_pair() {
        let h = Hlc {
            ms: 1_732_000_000_000,
            counter: 3,
        };
        assert_eq!(serde_json::to_string(&h).unwrap(), "[1732000000000,3]");
        let back: Hlc = serde_json::from_str("[1732000000000,3]").unwrap();
        assert_eq!(back, h);
    }
}
