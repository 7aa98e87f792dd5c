//! Probing a remote's compare-and-swap behaviour (stub: being written).

use crate::{Remote, RemoteError};

/// What a probe found.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {}

/// Probes `remote` with throw-away files.
pub fn probe(_remote: &dyn Remote) -> Result<ProbeReport, RemoteError> {
    Ok(ProbeReport::default())
}
