//! Progress of long operations (compact, verify --deep, backup, restore, a first sync).
//!
//! Libraries never print: the engine reports through [`Progress`], whose methods do nothing
//! by default, and the binary draws bars.

/// Receives the progress of a long operation. Every method has a no-op default.
pub trait Progress {
    /// A phase starts: `what` it does and how many steps it has (0: unknown).
    fn start(&self, _what: &str, _total: u64) {}
    /// `n` more steps are done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
