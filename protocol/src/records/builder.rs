//! Building RecordBatch v2 bytes from records.
//!
//! The builder is how Spate writes batches of its own: transaction markers, recompression for a
//! topic's `compression.type`, batches rewritten by the log cleaner, the CLI producer and tests.
//! Every header field that follows from the records (`baseTimestamp`, `maxTimestamp`,
//! `lastOffsetDelta`, `recordsCount`, `batchLength`, the CRC and the compression bits) is computed
//! here, never copied from elsewhere, so a re-encoded batch cannot carry a stale value.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{
    ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT, BASE_TIMESTAMP_AT, BATCH_HEADER_SIZE_BYTES,
    BATCH_LENGTH_AT, CONTROL_FLAG, CRC_AT, Compression, DELETE_HORIZON_FLAG, LAST_OFFSET_DELTA_AT,
    LEADER_EPOCH_AT, LOG_OVERHEAD_BYTES, MAGIC_AT, MAGIC_V2, MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT,
    PRODUCER_ID_AT, RECORDS_COUNT_AT, RecordBatch, TIMESTAMP_TYPE_FLAG, TRANSACTIONAL_FLAG,
    TimestampType,
};
use super::compression::{self, CompressionError};
use super::record::{Header, Record, RecordError, RecordParts};
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// The timestamp Kafka writes when there is none (`RecordBatch.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;
/// The sequence Kafka writes for a producer without idempotence (`RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;

/// Why a batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// An explicit offset delta that does not increase, as Kafka's `MemoryRecordsBuilder` also
    /// refuses.
    #[error("offset delta {offset_delta} does not follow {previous}")]
    OffsetDeltaNotIncreasing {
        /// The previous record's offset delta.
        previous: i32,
        /// The one offered.
        offset_delta: i32,
    },
    /// More records (or a larger offset delta) than an `i32` holds.
    #[error("offset delta past i32::MAX after {records_count} records")]
    OffsetDeltaOverflow {
        /// Records appended so far.
        records_count: usize,
    },
    /// A timestamp too far from the batch's base timestamp for an `i64` delta.
    #[error("timestamp {timestamp} is too far from base timestamp {base_timestamp}")]
    TimestampDeltaOverflow {
        /// The record's timestamp.
        timestamp: i64,
        /// The batch's base timestamp.
        base_timestamp: i64,
    },
    /// A key, value or header longer than a varint length can say.
    #[error("record field of {size_bytes} bytes is longer than i32::MAX")]
    FieldTooLarge {
        /// Its size.
        size_bytes: usize,
    },
    /// The encoded batch is longer than `batchLength` can say.
    #[error("record batch of {size_bytes} bytes is longer than i32::MAX")]
    BatchTooLarge {
        /// Its size, header included.
        size_bytes: usize,
    },
    /// The codec failed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The records of a batch being re-encoded could not be read.
    #[error(transparent)]
    Records(#[from] RecordError),
}

/// A record waiting to be encoded, with its absolute timestamp.
#[derive(Debug, Clone)]
struct PendingRecord {
    offset_delta: i32,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
    attributes: i8,
}

/// Builds one RecordBatch v2.
///
/// Configure with the consuming setters, append records, then [`RecordBatchBuilder::build`]:
///
/// ```
/// use bytes::Bytes;
/// use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
///
/// let mut builder = RecordBatchBuilder::new(Compression::Zstd);
/// builder.append(1_700_000_000_000, Some(Bytes::from("k")), Some(Bytes::from("v")), vec![])?;
/// let batch = RecordBatch::new(builder.build()?)?;
/// assert_eq!(batch.records_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Records are kept as `Bytes` handles until `build`, so appending copies no payload.
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    compression: Compression,
    compression_level: Option<i32>,
    base_offset: Offset,
    partition_leader_epoch: LeaderEpoch,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    log_append_time: Option<i64>,
    delete_horizon: Option<i64>,
    min_last_offset_delta: i32,
    records: Vec<PendingRecord>,
    records_size_bytes: usize,
}

impl RecordBatchBuilder {
    /// A builder for a batch compressed with `compression`, with Kafka's defaults for everything
    /// else: base offset 0, no leader epoch, no producer id, CreateTime, not transactional.
    pub fn new(compression: Compression) -> RecordBatchBuilder {
        RecordBatchBuilder {
            compression,
            compression_level: None,
            base_offset: Offset(0),
            partition_leader_epoch: LeaderEpoch::UNKNOWN,
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch(-1),
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            log_append_time: None,
            delete_horizon: None,
            min_last_offset_delta: 0,
            records: Vec::new(),
            records_size_bytes: 0,
        }
    }

    /// Compression level (Kafka's `compression.<codec>.level`); the codec's default when unset.
    pub fn compression_level(mut self, level: Option<i32>) -> Self {
        self.compression_level = level;
        self
    }

    /// `baseOffset` (0 for batches a producer sends; the broker stamps the real one).
    pub fn base_offset(mut self, base_offset: Offset) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// `partitionLeaderEpoch`.
    pub fn partition_leader_epoch(mut self, epoch: LeaderEpoch) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Producer id, epoch and the sequence of the first record, for idempotent producers.
    pub fn producer(mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch (transaction markers).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Makes the batch LogAppendTime with `append_time` as its `maxTimestamp`.
    pub fn log_append_time(mut self, append_time: i64) -> Self {
        self.log_append_time = Some(append_time);
        self
    }

    /// Sets the delete horizon (KIP-534): the flag, and `baseTimestamp` = `delete_horizon`, with
    /// record timestamps stored relative to it, as Kafka's log cleaner writes them.
    pub fn delete_horizon(mut self, delete_horizon: i64) -> Self {
        self.delete_horizon = Some(delete_horizon);
        self
    }

    /// Keeps `lastOffsetDelta` at least this large, so a batch that lost records to compaction
    /// still covers its original offset range (Kafka keeps it so producer state survives).
    pub fn min_last_offset_delta(mut self, last_offset_delta: i32) -> Self {
        self.min_last_offset_delta = last_offset_delta;
        self
    }

    /// Number of records appended.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Size of the batch if built uncompressed now, header included; an upper bound for the
    /// compressed size in practice, used to stop filling a batch at a size limit.
    pub fn uncompressed_size_bytes(&self) -> usize {
        BATCH_HEADER_SIZE_BYTES + self.records_size_bytes
    }

    /// Appends a record with the next offset delta (0 for the first).
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<Header>,
    ) -> Result<(), BuildError> {
        let offset_delta = match self.records.last() {
            None => 0,
            Some(last) => {
                last.offset_delta
                    .checked_add(1)
                    .ok_or(BuildError::OffsetDeltaOverflow {
                        records_count: self.records.len(),
                    })?
            }
        };
        self.push(PendingRecord {
            offset_delta,
            timestamp,
            key,
            value,
            headers,
            attributes: 0,
        })
    }

    /// Appends `record` keeping its offset delta and attributes, at absolute `timestamp`. Offset
    /// deltas must increase; gaps are allowed (compacted batches have them).
    pub fn append_record(&mut self, record: &Record, timestamp: i64) -> Result<(), BuildError> {
        if let Some(last) = self.records.last()
            && record.offset_delta <= last.offset_delta
        {
            return Err(BuildError::OffsetDeltaNotIncreasing {
                previous: last.offset_delta,
                offset_delta: record.offset_delta,
            });
        }
        if record.offset_delta < 0 {
            return Err(BuildError::OffsetDeltaNotIncreasing {
                previous: -1,
                offset_delta: record.offset_delta,
            });
        }
        self.push(PendingRecord {
            offset_delta: record.offset_delta,
            timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
            attributes: record.attributes,
        })
    }

    fn push(&mut self, record: PendingRecord) -> Result<(), BuildError> {
        let check = |size_bytes: usize| {
            if i32::try_from(size_bytes).is_err() {
                Err(BuildError::FieldTooLarge { size_bytes })
            } else {
                Ok(())
            }
        };
        check(record.key.as_ref().map_or(0, Bytes::len))?;
        check(record.value.as_ref().map_or(0, Bytes::len))?;
        check(record.headers.len())?;
        for header in &record.headers {
            check(header.key.len())?;
            check(header.value.as_ref().map_or(0, Bytes::len))?;
        }
        // The size is only an estimate for batching decisions; the exact deltas are known once
        // the base timestamp is.
        self.records_size_bytes = self
            .records_size_bytes
            .saturating_add(parts(&record, 0).encoded_size_bytes());
        self.records.push(record);
        Ok(())
    }

    fn base_timestamp(&self) -> i64 {
        match (self.delete_horizon, self.records.first()) {
            (Some(horizon), _) => horizon,
            (None, Some(first)) => first.timestamp,
            (None, None) => NO_TIMESTAMP,
        }
    }

    fn attributes(&self) -> i16 {
        let mut attributes = i16::from(self.compression.id());
        if self.log_append_time.is_some() {
            attributes |= TIMESTAMP_TYPE_FLAG;
        }
        if self.transactional {
            attributes |= TRANSACTIONAL_FLAG;
        }
        if self.control {
            attributes |= CONTROL_FLAG;
        }
        if self.delete_horizon.is_some() {
            attributes |= DELETE_HORIZON_FLAG;
        }
        attributes
    }

    /// The timestamp type the batch will have.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.log_append_time.is_some() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Encodes the batch.
    pub fn build(self) -> Result<Bytes, BuildError> {
        let base_timestamp = self.base_timestamp();
        let max_timestamp = match self.log_append_time {
            Some(append_time) => append_time,
            None => self
                .records
                .iter()
                .map(|r| r.timestamp)
                .max()
                .unwrap_or(NO_TIMESTAMP),
        };
        let last_offset_delta = self
            .records
            .last()
            .map_or(0, |r| r.offset_delta)
            .max(self.min_last_offset_delta);
        let records_count =
            i32::try_from(self.records.len()).map_err(|_| BuildError::OffsetDeltaOverflow {
                records_count: self.records.len(),
            })?;

        let mut out = BytesMut::with_capacity(self.uncompressed_size_bytes());
        out.put_bytes(0, BATCH_HEADER_SIZE_BYTES);
        let encode_records = |out: &mut BytesMut| -> Result<(), BuildError> {
            for pending in &self.records {
                let timestamp_delta = pending.timestamp.checked_sub(base_timestamp).ok_or(
                    BuildError::TimestampDeltaOverflow {
                        timestamp: pending.timestamp,
                        base_timestamp,
                    },
                )?;
                parts(pending, timestamp_delta).encode(out);
            }
            Ok(())
        };
        match self.compression {
            Compression::None => encode_records(&mut out)?,
            codec => {
                let mut plain = BytesMut::with_capacity(self.records_size_bytes);
                encode_records(&mut plain)?;
                let packed =
                    compression::compress_with_level(codec, &plain, self.compression_level)?;
                out.put_slice(&packed);
            }
        }

        let size_bytes = out.len();
        let batch_length = i32::try_from(size_bytes - LOG_OVERHEAD_BYTES)
            .map_err(|_| BuildError::BatchTooLarge { size_bytes })?;
        put_at(&mut out, BASE_OFFSET_AT, &self.base_offset.0.to_be_bytes());
        put_at(&mut out, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
        put_at(
            &mut out,
            LEADER_EPOCH_AT,
            &self.partition_leader_epoch.0.to_be_bytes(),
        );
        put_at(&mut out, MAGIC_AT, &MAGIC_V2.to_be_bytes());
        put_at(&mut out, ATTRIBUTES_AT, &self.attributes().to_be_bytes());
        put_at(
            &mut out,
            LAST_OFFSET_DELTA_AT,
            &last_offset_delta.to_be_bytes(),
        );
        put_at(&mut out, BASE_TIMESTAMP_AT, &base_timestamp.to_be_bytes());
        put_at(&mut out, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
        put_at(&mut out, PRODUCER_ID_AT, &self.producer_id.0.to_be_bytes());
        put_at(
            &mut out,
            PRODUCER_EPOCH_AT,
            &self.producer_epoch.0.to_be_bytes(),
        );
        put_at(
            &mut out,
            BASE_SEQUENCE_AT,
            &self.base_sequence.to_be_bytes(),
        );
        put_at(&mut out, RECORDS_COUNT_AT, &records_count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        put_at(&mut out, CRC_AT, &crc.to_be_bytes());
        Ok(out.freeze())
    }
}

fn put_at(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn parts(pending: &PendingRecord, timestamp_delta: i64) -> RecordParts<'_> {
    RecordParts {
        attributes: pending.attributes,
        timestamp_delta,
        offset_delta: pending.offset_delta,
        key: &pending.key,
        value: &pending.value,
        headers: &pending.headers,
    }
}

/// Re-encodes `batch` with `compression`: same header fields (offsets, epochs, producer,
/// sequence, flags, timestamps), same records, new codec. The compression bits always name the
/// codec actually used.
///
/// `max_inflated_bytes` caps the decompression of the source batch.
pub fn reencode(
    batch: &RecordBatch,
    compression: Compression,
    compression_level: Option<i32>,
    max_inflated_bytes: usize,
) -> Result<Bytes, BuildError> {
    let mut builder = RecordBatchBuilder::new(compression)
        .compression_level(compression_level)
        .base_offset(batch.base_offset())
        .partition_leader_epoch(batch.partition_leader_epoch())
        .producer(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        )
        .transactional(batch.is_transactional())
        .control(batch.is_control())
        .min_last_offset_delta(batch.last_offset_delta());
    if batch.has_delete_horizon() {
        builder = builder.delete_horizon(batch.base_timestamp());
    }
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        builder = builder.log_append_time(batch.max_timestamp());
    }
    let base_timestamp = batch.base_timestamp();
    for record in batch.records(max_inflated_bytes)? {
        let record = record?;
        builder.append_record(&record, record.timestamp(base_timestamp))?;
    }
    builder.build()
}
