//! Shared helpers for Spate benchmarks.
