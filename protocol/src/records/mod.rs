//! RecordBatch v2: the zero-copy view, record iteration, the batch builder and the codecs.

pub mod batch;

pub use batch::{
    BATCH_HEADER_SIZE_BYTES, BatchError, Compression, LOG_OVERHEAD_BYTES, MAGIC_V2, RecordBatch,
    RecordBatchMut, TimestampType, peek_entry_size,
};
