//! RecordBatch v2: the zero-copy view, record iteration, the batch builder and the codecs.
//!
//! # Layout
//! - [`batch`]: the 61-byte header view, CRC-32C check, in-place edits.
//! - [`record`]: lazy, zero-copy parsing of the records inside a batch.
//! - [`compression`]: gzip, snappy (raw and xerial), lz4 frames, zstd; capped decompression.
//! - [`builder`]: encoding a batch from records; re-encoding with another codec.
//! - [`control`]: transaction markers and other control records.
//! - [`validate`]: the record checks a broker makes on produce.
//! - [`varint`]: Kafka's zigzag varints.

pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
pub mod record;
pub mod validate;
pub mod varint;

#[cfg(test)]
mod tests;

pub use batch::{
    BATCH_HEADER_SIZE_BYTES, BatchError, Compression, LOG_OVERHEAD_BYTES, MAGIC_V2, RecordBatch,
    RecordBatchMut, TimestampType, peek_entry_size, restamp,
};
pub use builder::{BuildError, NO_SEQUENCE, NO_TIMESTAMP, RecordBatchBuilder, reencode};
pub use compression::{CompressionError, compress, compress_with_level, decompress};
pub use control::{ControlRecordKey, ControlRecordType, EndTxnMarker};
pub use record::{Header, Record, RecordError, RecordIter};
pub use validate::{
    RecordRules, RecordsSummary, ValidationError, ValidationErrorKind, validate_records,
};
