//! The record-level checks a broker makes on a produced batch, after Kafka's `LogValidator`.
//!
//! [`validate_records`] walks every record once and checks what Kafka checks for a magic v2 batch
//! from a client: the header's offset range matches its record count, offset deltas run 0, 1, 2…
//! (Kafka: "inner records offset should always be continuous"), keys are present on compacted
//! topics, and CreateTime timestamps fall in the topic's window. It returns what the broker needs
//! afterwards (the largest timestamp and where it is, the uncompressed size).
//!
//! The error says which Kafka error code applies: [`ValidationError::kind`].

use super::batch::RecordBatch;
use super::builder::NO_TIMESTAMP;
use super::record::RecordError;

/// What a produced batch must satisfy, from the topic's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRules {
    /// Cap on the decompressed size of the records (the codec bomb guard).
    pub max_inflated_bytes: usize,
    /// Every record needs a non-null key (`cleanup.policy` includes `compact`).
    pub require_keys: bool,
    /// Inclusive window for CreateTime record timestamps, in ms since the epoch, from
    /// `message.timestamp.before.max.ms` / `after.max.ms` and the broker's clock. `None` skips the
    /// check (LogAppendTime topics, where the broker overwrites timestamps).
    pub timestamp_window_ms: Option<(i64, i64)>,
    /// The batch comes from a client's Produce (Kafka's `AppendOrigin.CLIENT`): control batches
    /// are refused, the header's offset range must match its record count, and a producer id
    /// needs a sequence. False for batches the broker's own coordinators write.
    pub from_client: bool,
}

/// Which Kafka error code a validation failure maps to; the broker's error mapping owns the
/// actual codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationErrorKind {
    /// The bytes are not valid records: CORRUPT_MESSAGE.
    Corrupt,
    /// The records are well-formed but break a rule: INVALID_RECORD.
    InvalidRecord,
    /// A timestamp outside the allowed window: INVALID_TIMESTAMP.
    InvalidTimestamp,
}

/// Why a produced batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The records could not be read (or inflate past the cap).
    #[error(transparent)]
    Records(#[from] RecordError),
    /// `lastOffsetDelta + 1` is not `recordsCount`.
    #[error(
        "inconsistent batch offset range and record count: last offset delta {last_offset_delta}, \
         {records_count} records"
    )]
    OffsetRange {
        /// `lastOffsetDelta` from the header.
        last_offset_delta: i32,
        /// `recordsCount` from the header.
        records_count: i32,
    },
    /// A record whose offset delta is not its index.
    #[error("record {record_index} has offset delta {offset_delta}")]
    OffsetDeltaNotConsecutive {
        /// Index of the record.
        record_index: i32,
        /// Its offset delta.
        offset_delta: i32,
    },
    /// A null key on a topic that needs keys.
    #[error("compacted topic cannot accept record {record_index} without a key")]
    MissingKey {
        /// Index of the record.
        record_index: i32,
    },
    /// A CreateTime timestamp outside the topic's window.
    #[error("record {record_index} timestamp {timestamp_ms} is outside [{min_ms}, {max_ms}]")]
    TimestampOutOfRange {
        /// Index of the record.
        record_index: i32,
        /// Its timestamp.
        timestamp_ms: i64,
        /// Earliest allowed.
        min_ms: i64,
        /// Latest allowed.
        max_ms: i64,
    },
    /// A control batch where none is allowed.
    #[error("clients are not allowed to write control records")]
    ControlBatch,
    /// A producer id with a negative base sequence.
    #[error("producer id {producer_id} with invalid base sequence {base_sequence}")]
    InvalidSequence {
        /// The batch's producer id.
        producer_id: i64,
        /// Its base sequence.
        base_sequence: i32,
    },
}

impl ValidationError {
    /// The class of Kafka error this failure is answered with.
    pub fn kind(&self) -> ValidationErrorKind {
        match self {
            ValidationError::Records(_) => ValidationErrorKind::Corrupt,
            ValidationError::TimestampOutOfRange { .. } => ValidationErrorKind::InvalidTimestamp,
            _ => ValidationErrorKind::InvalidRecord,
        }
    }
}

/// What validation learned about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    /// Records in the batch.
    pub records_count: i32,
    /// Largest record timestamp (CreateTime), or `-1` for an empty batch.
    pub max_timestamp: i64,
    /// Offset delta of the first record with `max_timestamp` (Kafka's "offset of max timestamp").
    pub offset_delta_of_max_timestamp: i32,
    /// Size of the records once decompressed.
    pub uncompressed_size_bytes: usize,
}

/// Checks a produced batch's records against `rules`, reading each record once.
///
/// The header must already be valid ([`RecordBatch::new`]) and, for untrusted bytes, the CRC
/// checked ([`RecordBatch::verify_crc`]).
pub fn validate_records(
    batch: &RecordBatch,
    rules: &RecordRules,
) -> Result<RecordsSummary, ValidationError> {
    let records_count = batch.records_count();
    if rules.from_client {
        if i64::from(batch.last_offset_delta()) + 1 != i64::from(records_count) {
            return Err(ValidationError::OffsetRange {
                last_offset_delta: batch.last_offset_delta(),
                records_count,
            });
        }
        if batch.is_control() {
            return Err(ValidationError::ControlBatch);
        }
        if batch.producer_id().0 >= 0 && batch.base_sequence() < 0 {
            return Err(ValidationError::InvalidSequence {
                producer_id: batch.producer_id().0,
                base_sequence: batch.base_sequence(),
            });
        }
    }
    let records = batch.records(rules.max_inflated_bytes)?;
    let uncompressed_size_bytes = records.records_bytes().len();
    let base_timestamp = batch.base_timestamp();
    let mut max_timestamp = NO_TIMESTAMP;
    let mut offset_delta_of_max_timestamp = -1;
    for (record_index, record) in (0..).zip(records) {
        let record = record?;
        if record.offset_delta != record_index {
            return Err(ValidationError::OffsetDeltaNotConsecutive {
                record_index,
                offset_delta: record.offset_delta,
            });
        }
        if rules.require_keys && record.key.is_none() {
            return Err(ValidationError::MissingKey { record_index });
        }
        let timestamp_ms = record.timestamp(base_timestamp);
        // Kafka exempts records without a timestamp (-1) from the window check.
        if let Some((min_ms, max_ms)) = rules.timestamp_window_ms
            && timestamp_ms != NO_TIMESTAMP
            && !(min_ms..=max_ms).contains(&timestamp_ms)
        {
            return Err(ValidationError::TimestampOutOfRange {
                record_index,
                timestamp_ms,
                min_ms,
                max_ms,
            });
        }
        if timestamp_ms > max_timestamp || offset_delta_of_max_timestamp < 0 {
            max_timestamp = timestamp_ms;
            offset_delta_of_max_timestamp = record.offset_delta;
        }
    }
    Ok(RecordsSummary {
        records_count,
        max_timestamp,
        offset_delta_of_max_timestamp,
        uncompressed_size_bytes,
    })
}
