//! The storage crate's operating errors.

use std::io;
use std::path::PathBuf;

use spate_protocol::records::{BatchError, RecordError};
use spate_protocol::types::Offset;

/// Why a storage operation failed.
///
/// Every variant carries the data needed to act on it: the file, the offsets, the limit.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file system call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The error from the operating system.
        source: io::Error,
    },
    /// A file holds data that cannot be recovered; the log refuses to open.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A read or lookup asked for an offset outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: Offset,
        /// The log start offset at the time.
        log_start: Offset,
        /// The log end offset at the time.
        log_end: Offset,
    },
    /// A batch handed to an append is not a valid RecordBatch v2 (bad header or CRC).
    #[error("batch {batch_index} of the append is invalid: {source}")]
    InvalidBatch {
        /// Position of the batch in the append.
        batch_index: usize,
        /// What is wrong with it.
        source: BatchError,
    },
    /// A batch is larger than a whole segment may be (Kafka's RECORD_LIST_TOO_LARGE).
    #[error("batch of {batch_size_bytes} bytes exceeds segment.bytes {segment_bytes}")]
    BatchTooLarge {
        /// Size of the batch.
        batch_size_bytes: usize,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// A follower append whose offsets go backwards or start below the log end offset.
    #[error(
        "append at offset {first_offset} is out of order: expected at least {expected_at_least}"
    )]
    OffsetsOutOfOrder {
        /// Base offset of the offending batch.
        first_offset: Offset,
        /// The smallest base offset that would have been accepted.
        expected_at_least: Offset,
    },
    /// An append whose offsets cannot be represented (past `i64::MAX`).
    #[error("offset overflow appending after {log_end}")]
    OffsetOverflow {
        /// The log end offset at the time.
        log_end: Offset,
    },
    /// DeleteRecords asked to move the log start past the high watermark.
    #[error("cannot move log start to {requested}: high watermark is {high_watermark}")]
    LogStartBeyondHighWatermark {
        /// The requested new log start.
        requested: Offset,
        /// The high watermark at the time.
        high_watermark: Offset,
    },
    /// The records inside a batch could not be read (timestamp lookups, compaction).
    #[error("records of the batch at offset {batch_offset} in {path}: {source}")]
    Records {
        /// The segment file.
        path: PathBuf,
        /// Base offset of the batch.
        batch_offset: Offset,
        /// The decoding error.
        source: RecordError,
    },
    /// A configuration value is out of range or contradicts another.
    #[error("invalid log config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The log was closed or deleted; no more writes are accepted.
    #[error("log {dir} is closed")]
    Closed {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A previous write failed half-way and the log could not be put back in order; it accepts
    /// no more writes until it is reopened (which recovers it).
    #[error("log {dir} failed after an I/O error and must be reopened")]
    Failed {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A partition directory name is not `<topic>-<partition>`.
    #[error("{path} is not a partition directory name")]
    BadPartitionDir {
        /// The directory.
        path: PathBuf,
    },
    /// The data directory is already used by another process.
    #[error("data directory {path} is locked by another process")]
    DirLocked {
        /// The lock file.
        path: PathBuf,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corrupt-file error.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> StorageError {
        StorageError::CorruptFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
