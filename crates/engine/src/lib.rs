//! deltasync's sync engine (being written).
#![forbid(unsafe_code)]

pub mod collections;
pub mod ids;
pub mod merge;
pub mod planner;
