//! A layer that counts requests and bytes (stub: being written).

/// Requests and bytes counted by [`Counting`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {}

/// Wraps a remote and counts what goes through it.
#[derive(Debug)]
pub struct Counting<R> {
    inner: R,
}

impl<R> Counting<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Counting { inner }
    }
    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}
