//! Shared helpers for Spate benchmarks.
//!
//! The Criterion benches live in `benches/`; the end-to-end comparison with Apache Kafka is the
//! `compare` binary (driven by `compare/run`), and its librdkafka load generator is the `rdload`
//! binary.
//!
//! # Layout
//! - [`load`]: the report `rdload` prints and `compare` reads, one JSON object per run.
#![deny(missing_docs)]

pub mod load;
