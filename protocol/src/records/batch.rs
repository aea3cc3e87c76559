//! A zero-copy view of one RecordBatch (magic v2) and the in-place edits the broker makes.
//!
//! Layout (all integers big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  batchLength            (bytes after this field)
//!     12     4  partitionLeaderEpoch
//!     16     1  magic                  (2)
//!     17     4  crc                    (CRC-32C of attributes..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     -  records
//! ```
//!
//! `baseOffset` and `partitionLeaderEpoch` sit outside the CRC, so the broker can assign offsets
//! and stamp the epoch without recomputing it.

use bytes::{Bytes, BytesMut};

use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Size of the fixed RecordBatch v2 header, records excluded.
pub const BATCH_HEADER_SIZE_BYTES: usize = 61;
/// Size of the `baseOffset` + `batchLength` prefix that every log entry starts with.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only message format Spate stores.
pub const MAGIC_V2: i8 = 2;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORDS_COUNT_AT: usize = 57;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
pub(crate) const TRANSACTIONAL_FLAG: i16 = 0x10;
pub(crate) const CONTROL_FLAG: i16 = 0x20;
pub(crate) const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Why bytes are not a valid RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or than the header's `batchLength` says.
    #[error("record batch truncated: need {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        /// Bytes the header says the batch occupies.
        needed_bytes: usize,
        /// Bytes actually present.
        available_bytes: usize,
    },
    /// `batchLength` smaller than the fixed header, or negative.
    #[error("record batch length {batch_length} is invalid")]
    InvalidLength {
        /// The `batchLength` field as read.
        batch_length: i32,
    },
    /// A magic byte other than 2.
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic {
        /// The magic byte as read.
        magic: i8,
    },
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over attributes..end.
        computed: u32,
    },
    /// A compression codec id outside 0..=4.
    #[error("unknown compression codec id {codec_id}")]
    UnknownCompression {
        /// The three low attribute bits.
        codec_id: u8,
    },
    /// A header field that contradicts another (e.g. a negative record count).
    #[error("record batch header invalid: {reason}")]
    InvalidHeader {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Compression codec of a batch, from the three low attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, raw or in the xerial framing.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec for an attribute id, if it is one Kafka defines.
    pub fn from_id(codec_id: u8) -> Option<Compression> {
        match codec_id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The attribute id of this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec, as used by `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Meaning of a batch's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append.
    LogAppendTime,
}

/// A validated, zero-copy view of one RecordBatch v2 in a `Bytes` buffer.
///
/// Construction checks that the whole batch is present, the magic is 2, the length is sane and the
/// codec is known. The CRC is checked separately by [`RecordBatch::verify_crc`], because readers
/// that trust their source (the log after recovery) skip it on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Reads the total size in bytes (`LOG_OVERHEAD_BYTES + batchLength`) of the entry at the start of
/// `buf`, if at least the 12-byte prefix is present. Does not validate anything else.
pub fn peek_entry_size(buf: &[u8]) -> Option<Result<usize, BatchError>> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    let batch_length = read_i32(buf, BATCH_LENGTH_AT);
    let min_length = (BATCH_HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if batch_length < min_length {
        return Some(Err(BatchError::InvalidLength { batch_length }));
    }
    Some(Ok(LOG_OVERHEAD_BYTES + batch_length as usize))
}

impl RecordBatch {
    /// Splits the first batch off the front of `buf` and validates its header (not its CRC).
    ///
    /// On success `buf` is advanced past the batch. On error `buf` is left untouched.
    pub fn split_first(buf: &mut Bytes) -> Result<RecordBatch, BatchError> {
        let size = match peek_entry_size(buf) {
            None => {
                return Err(BatchError::Truncated {
                    needed_bytes: BATCH_HEADER_SIZE_BYTES,
                    available_bytes: buf.len(),
                });
            }
            Some(size) => size?,
        };
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed_bytes: size,
                available_bytes: buf.len(),
            });
        }
        let batch = RecordBatch::new(buf.slice(..size))?;
        let _ = buf.split_to(size);
        Ok(batch)
    }

    /// Wraps exactly one batch. `bytes` must hold the whole batch and nothing after it.
    pub fn new(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        if bytes.len() < BATCH_HEADER_SIZE_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_SIZE_BYTES,
                available_bytes: bytes.len(),
            });
        }
        let batch_length = read_i32(&bytes, BATCH_LENGTH_AT);
        let min_length = (BATCH_HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES) as i32;
        if batch_length < min_length {
            return Err(BatchError::InvalidLength { batch_length });
        }
        let size = LOG_OVERHEAD_BYTES + batch_length as usize;
        if size != bytes.len() {
            return Err(BatchError::Truncated {
                needed_bytes: size,
                available_bytes: bytes.len(),
            });
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        let batch = RecordBatch { bytes };
        let codec_id = (batch.attributes() & COMPRESSION_MASK) as u8;
        if Compression::from_id(codec_id).is_none() {
            return Err(BatchError::UnknownCompression { codec_id });
        }
        if batch.records_count() < 0 {
            return Err(BatchError::InvalidHeader {
                reason: "negative record count",
            });
        }
        if batch.last_offset_delta() < 0 {
            return Err(BatchError::InvalidHeader {
                reason: "negative last offset delta",
            });
        }
        Ok(batch)
    }

    /// Checks the stored CRC-32C against attributes..end.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.crc();
        let computed = self.compute_crc();
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }

    /// CRC-32C over attributes..end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..])
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the view, returning the batch bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Total size in bytes, header included.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> Offset {
        Offset(read_i64(&self.bytes, BASE_OFFSET_AT))
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    ///
    /// Wraps instead of overflowing on a nonsense `baseOffset` near `i64::MAX`, as Kafka's Java
    /// arithmetic does, so that reading a header from the network can never panic.
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset()
                .0
                .wrapping_add(i64::from(self.last_offset_delta())),
        )
    }

    /// Offset after the last record (wrapping, like [`RecordBatch::last_offset`]).
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().0.wrapping_add(1))
    }

    /// `batchLength`: the bytes after the length field.
    pub fn batch_length(&self) -> i32 {
        read_i32(&self.bytes, BATCH_LENGTH_AT)
    }

    /// Leader epoch stamped by the broker that appended the batch.
    pub fn partition_leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(read_i32(&self.bytes, LEADER_EPOCH_AT))
    }

    /// The stored CRC.
    pub fn crc(&self) -> u32 {
        read_u32(&self.bytes, CRC_AT)
    }

    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        read_i16(&self.bytes, ATTRIBUTES_AT)
    }

    /// Compression codec.
    pub fn compression(&self) -> Compression {
        // Validated in `new`.
        Compression::from_id((self.attributes() & COMPRESSION_MASK) as u8)
            .unwrap_or(Compression::None)
    }

    /// Timestamp type.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_FLAG != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_FLAG != 0
    }

    /// Whether the batch holds a control record (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_FLAG != 0
    }

    /// Whether `baseTimestamp` holds the delete horizon set by the log cleaner (KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_FLAG != 0
    }

    /// `lastOffsetDelta`.
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(&self.bytes, LAST_OFFSET_DELTA_AT)
    }

    /// `baseTimestamp`: the first record's timestamp (or the delete horizon).
    pub fn base_timestamp(&self) -> i64 {
        read_i64(&self.bytes, BASE_TIMESTAMP_AT)
    }

    /// `maxTimestamp`: the largest record timestamp, or the append time for LogAppendTime.
    pub fn max_timestamp(&self) -> i64 {
        read_i64(&self.bytes, MAX_TIMESTAMP_AT)
    }

    /// Producer id, `-1` when not idempotent.
    pub fn producer_id(&self) -> ProducerId {
        ProducerId(read_i64(&self.bytes, PRODUCER_ID_AT))
    }

    /// Producer epoch.
    pub fn producer_epoch(&self) -> ProducerEpoch {
        ProducerEpoch(read_i16(&self.bytes, PRODUCER_EPOCH_AT))
    }

    /// Sequence number of the first record, `-1` when not idempotent.
    pub fn base_sequence(&self) -> i32 {
        read_i32(&self.bytes, BASE_SEQUENCE_AT)
    }

    /// Sequence number of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let last = i64::from(base) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }

    /// Number of records.
    pub fn records_count(&self) -> i32 {
        read_i32(&self.bytes, RECORDS_COUNT_AT)
    }

    /// The record bytes after the header (compressed when the batch is).
    pub fn records_bytes(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_SIZE_BYTES..)
    }
}

/// In-place edits of a batch that is being appended. Works on a mutable copy (or the request
/// buffer) before the batch is frozen into the log.
pub struct RecordBatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> RecordBatchMut<'a> {
    /// Wraps a buffer that holds exactly one batch whose header was validated by
    /// [`RecordBatch::new`].
    pub fn new(bytes: &'a mut [u8]) -> Result<RecordBatchMut<'a>, BatchError> {
        if bytes.len() < BATCH_HEADER_SIZE_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_SIZE_BYTES,
                available_bytes: bytes.len(),
            });
        }
        Ok(RecordBatchMut { bytes })
    }

    /// Sets `baseOffset` (outside the CRC).
    pub fn set_base_offset(&mut self, offset: Offset) {
        self.bytes[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&offset.0.to_be_bytes());
    }

    /// Sets `partitionLeaderEpoch` (outside the CRC).
    pub fn set_partition_leader_epoch(&mut self, epoch: LeaderEpoch) {
        self.bytes[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.0.to_be_bytes());
    }

    /// Marks the batch as LogAppendTime with `max_timestamp`, then recomputes the CRC, as Kafka
    /// does for topics with `message.timestamp.type=LogAppendTime`.
    pub fn set_log_append_time(&mut self, max_timestamp: i64) {
        let attributes = read_i16(self.bytes, ATTRIBUTES_AT) | TIMESTAMP_TYPE_FLAG;
        self.bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        self.update_crc();
    }

    /// Sets `maxTimestamp` and the timestamp type, then recomputes the CRC if anything changed.
    ///
    /// Kafka's log validator does this for CreateTime batches whose header disagrees with the
    /// largest record timestamp it computed.
    pub fn set_max_timestamp(&mut self, timestamp_type: TimestampType, max_timestamp: i64) {
        let old_attributes = read_i16(self.bytes, ATTRIBUTES_AT);
        let attributes = match timestamp_type {
            TimestampType::CreateTime => old_attributes & !TIMESTAMP_TYPE_FLAG,
            TimestampType::LogAppendTime => old_attributes | TIMESTAMP_TYPE_FLAG,
        };
        if attributes == old_attributes && read_i64(self.bytes, MAX_TIMESTAMP_AT) == max_timestamp {
            return;
        }
        self.bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        self.update_crc();
    }

    /// Recomputes and stores the CRC-32C.
    pub fn update_crc(&mut self) {
        let crc = crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..]);
        self.bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Copies `batch` into a fresh buffer with `base_offset` and `epoch` stamped, for callers that
/// cannot edit the request buffer in place.
pub fn restamp(batch: &RecordBatch, base_offset: Offset, epoch: LeaderEpoch) -> Bytes {
    let mut copy = BytesMut::from(batch.as_bytes().as_ref());
    let mut edit = RecordBatchMut { bytes: &mut copy };
    edit.set_base_offset(base_offset);
    edit.set_partition_leader_epoch(epoch);
    copy.freeze()
}
