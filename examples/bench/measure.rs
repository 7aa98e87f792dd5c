//! Measuring one operation (requests, bytes, wall and CPU time, peak memory); the rows of samples.

use super::*;

/// What one measured operation cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Requests and bytes.
    pub(crate) stats: RequestStats,
    /// Wall time.
    pub(crate) time: Duration,
    /// CPU time of the process (all threads) during the operation, when known; the rest of the
    /// wall time is spent waiting (mostly for the disk: fsync).
    pub(crate) cpu: Option<Duration>,
}

/// Resets the process's peak resident memory to the current one (Linux, `/proc/self/clear_refs`);
/// false when that is not possible.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory since the last reset (Linux: `VmHWM`), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time the process's threads have run so far, from `/proc/self/task/*/schedstat`
/// (Linux, nanoseconds); `None` elsewhere.
pub(crate) fn cpu_time() -> Option<Duration> {
    // The kernel brings a running thread's count up to date when it is scheduled out.
    std::thread::yield_now();
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Runs `op` between a reset and a read of the counters, timing it.
pub(crate) fn measure<T>(
    counted: &Counting<Arc<dyn Remote>>,
    op: impl FnOnce() -> Result<T>,
) -> Result<(T, Sample)> {
    counted.reset();
    let cpu_before = cpu_time();
    let start = Instant::now();
    let out = op()?;
    let time = start.elapsed();
    let cpu = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok((
        out,
        Sample {
            stats: counted.stats(),
            time,
            cpu,
        },
    ))
}

/// A budget an operation is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// At most `requests`, and at most `overhead` bytes up beyond the entity.
    Push { requests: u64, overhead: u64 },
    /// At most `requests`.
    Pull { requests: u64 },
    /// At most `requests` and no body bytes either way.
    NoOp { requests: u64 },
}

/// One row of the main table: an operation measured one or more times.
pub(crate) struct Row {
    /// Dataset size.
    pub(crate) n: usize,
    /// The operation.
    pub(crate) op: String,
    /// Its measurements.
    pub(crate) samples: Vec<Sample>,
    /// The bytes of the entity involved (push budget), per sample.
    pub(crate) entity_bytes: Vec<u64>,
    /// The budget, if any.
    pub(crate) budget: Option<Budget>,
}

impl Row {
    /// A row without budget.
    pub(crate) fn plain(n: usize, op: &str, samples: Vec<Sample>) -> Self {
        Row {
            n,
            op: op.to_string(),
            samples,
            entity_bytes: Vec::new(),
            budget: None,
        }
    }

    /// The largest value of `f` over the samples.
    pub(crate) fn max(&self, f: impl Fn(&RequestStats) -> u64) -> u64 {
        self.samples.iter().map(|s| f(&s.stats)).max().unwrap_or(0)
    }

    /// Whether every sample is within the budget (`None`: no budget).
    pub(crate) fn within_budget(&self) -> Option<bool> {
        let budget = self.budget?;
        Some(self.samples.iter().enumerate().all(|(i, s)| {
            let st = &s.stats;
            match budget {
                Budget::Push { requests, overhead } => {
                    let entity = self.entity_bytes.get(i).copied().unwrap_or(0);
                    st.requests() <= requests && st.bytes_up <= entity + overhead
                }
                Budget::Pull { requests } => st.requests() <= requests,
                Budget::NoOp { requests } => {
                    st.requests() <= requests && st.bytes_up == 0 && st.bytes_down == 0
                }
            }
        }))
    }

    /// The budget as text, with the verdict.
    pub(crate) fn budget_text(&self) -> String {
        let Some(budget) = self.budget else {
            return String::new();
        };
        let what = match budget {
            Budget::Push { requests, overhead } => {
                let entity = self.entity_bytes.iter().copied().max().unwrap_or(0);
                format!(
                    "≤ {requests} req, ≤ {} B up (entity {} + {})",
                    thousands(entity + overhead),
                    thousands(entity),
                    thousands(overhead)
                )
            }
            Budget::Pull { requests } => format!("≤ {requests} req"),
            Budget::NoOp { requests } => format!("≤ {requests} req, 0 B"),
        };
        let verdict = if self.within_budget() == Some(true) {
            "met"
        } else {
            "**not met**"
        };
        format!("{what}: {verdict}")
    }
}

/// The median wall time of some samples.
pub(crate) fn median(samples: &[Sample]) -> Duration {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The median CPU time of some samples, when known.
pub(crate) fn median_cpu(samples: &[Sample]) -> Option<Duration> {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.cpu).collect::<Option<_>>()?;
    times.sort();
    times.get(times.len() / 2).copied()
}
