//! What one load-generator run measured, as the JSON line `rdload` prints on stdout.

use serde::{Deserialize, Serialize};

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value seen.
    pub max_ms: f64,
    /// Points of the cumulative distribution: (percentile in 0..=100, latency in ms), for plots.
    pub cdf: Vec<(f64, f64)>,
}

/// One run of `rdload produce`, `consume` or `latency`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    /// `produce`, `consume` or `latency`.
    pub mode: String,
    /// Records acknowledged (produce), received (consume, latency).
    pub records: u64,
    /// Record value bytes behind `records`.
    pub bytes: u64,
    /// Measured interval in seconds (first send to last acknowledgement; first to last record
    /// received).
    pub seconds: f64,
    /// `records / seconds`.
    pub records_per_s: f64,
    /// `bytes / seconds` in MiB (2^20 bytes) per second, the unit Kafka's perf tools print.
    pub mib_per_s: f64,
    /// Records the client gave up on (delivery errors, or records sent but never received).
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// End-to-end latency (latency mode) or produce acknowledgement latency (produce mode).
    pub latency: Option<Latency>,
    /// The rate asked for, in records per second (latency mode).
    pub target_rate_per_s: Option<f64>,
}
