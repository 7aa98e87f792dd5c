//! deltasync-lock (being written).
#![forbid(unsafe_code)]
