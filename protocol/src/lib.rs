//! The Kafka wire protocol as Spate speaks it.
//!
//! Message schemas (every request and response, every version) come from the `kafka-protocol`
//! crate, generated from Apache Kafka's own JSON specs. This crate owns everything around them:
//! the size-capped frame codec, request header decoding with the right header version per API and
//! version, the single table of API versions the broker supports, the mapping of errors to Kafka
//! error codes, and the RecordBatch v2 format with its compression codecs.
//!
//! It is the lowest layer: it depends on no other Spate crate, and knows nothing of storage,
//! the controller or the broker.
//!
//! # Layout
//! - [`frame`]: size-prefixed frame codec with a size cap.
//! - [`header`]: request/response headers with the right version per API.
//! - [`versions`]: the table of supported API versions.
//! - [`error`]: Kafka error codes.
//! - [`types`]: newtypes for offsets, epochs, partition and node ids.
//! - [`records`]: RecordBatch v2 view, record iteration, builder, codecs.
#![deny(missing_docs)]

pub mod error;
pub mod frame;
pub mod header;
pub mod records;
pub mod types;
pub mod versions;

pub use kafka_protocol;
