//! Nothing: this crate exists for its lock file.
