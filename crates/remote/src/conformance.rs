//! The behaviour suite every backend must pass (stub: being written).
