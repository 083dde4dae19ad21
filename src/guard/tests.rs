//! Guard tests.
