//! Node configuration (file, environment, flags) and topic configuration with Kafka's names.
//!
//! Knows nothing of the crates that use it.
#![deny(missing_docs)]
