//! One local partition replica: its log, its producer state, and its high watermark.
//!
//! Appends from clients run under the partition's append lock, which also guards the producer
//! state, so the sequence check, the append and the state update are one step. Reads never take
//! that lock: they go straight to the log, bounded by the high watermark.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use spate_protocol::records::{
    Compression, RecordBatch,
    builder::reencode,
    validate::{RecordRules, ValidationError, ValidationErrorKind, validate_records},
};
use spate_protocol::types::{LeaderEpoch, Offset};
use spate_storage::{PartitionLog, StorageError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::replica::producer_state::{
    BatchMetadata, ProducerStateTable, SequenceCheck, SequenceError,
};
use crate::replica::settings::{TimestampPolicy, TopicCompression, TopicSettings};

/// Why a produced batch was not appended. The produce handler maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// This replica is not the leader.
    #[error("this broker is not the leader for the partition")]
    NotLeader,
    /// Bad CRC, bad header, or records that do not parse: CORRUPT_MESSAGE.
    #[error("{0}")]
    Corrupt(String),
    /// A batch above `max.message.bytes`: MESSAGE_TOO_LARGE.
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    TooLarge {
        /// The batch size.
        size_bytes: usize,
        /// The limit.
        max_bytes: i32,
    },
    /// Well-formed records that break a rule: INVALID_RECORD or INVALID_TIMESTAMP.
    #[error("{error}")]
    Invalid {
        /// The failed check.
        error: ValidationError,
    },
    /// An idempotence check failed.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// The log refused the write.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a successful append reports back to the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// The broker's append time for LogAppendTime topics, -1 otherwise.
    pub log_append_time_ms: i64,
    /// The log start offset after the append.
    pub log_start_offset: Offset,
}

/// Why a fetch of this partition failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} is out of range")]
    OutOfRange {
        /// The requested offset.
        requested: i64,
    },
    /// FENCED_LEADER_EPOCH: the client's epoch is older than ours.
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    /// UNKNOWN_LEADER_EPOCH: the client's epoch is newer than ours.
    #[error("unknown leader epoch")]
    UnknownLeaderEpoch,
    /// The log failed.
    #[error(transparent)]
    Storage(StorageError),
}

/// Records read for a fetch, with the offsets the response reports.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// Whole batches, possibly empty.
    pub records: Bytes,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Last stable offset at the time of the read.
    pub last_stable_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}

/// Which offsets a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
}

/// A local replica of one partition.
pub struct Partition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// The log.
    pub log: Arc<PartitionLog>,
    leader_epoch: AtomicI64,
    high_watermark: AtomicI64,
    settings: RwLock<Arc<TopicSettings>>,
    producers: Mutex<ProducerStateTable>,
    /// Woken whenever the high watermark moves, for long-polling fetches.
    pub data_arrived: Notify,
}

impl Partition {
    /// Wraps an opened log. The producer state comes from the latest snapshot plus a replay of
    /// the batches after it.
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: Arc<PartitionLog>,
        leader_epoch: LeaderEpoch,
        settings: Arc<TopicSettings>,
    ) -> Partition {
        let producers = load_producer_state(&log);
        let high_watermark = log.log_end_offset().0;
        log.set_high_watermark(Offset(high_watermark));
        Partition {
            topic,
            topic_id,
            index,
            log,
            leader_epoch: AtomicI64::new(i64::from(leader_epoch.0)),
            high_watermark: AtomicI64::new(high_watermark),
            settings: RwLock::new(settings),
            producers: Mutex::new(producers),
            data_arrived: Notify::new(),
        }
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.leader_epoch.load(Ordering::Acquire) as i32)
    }

    /// Adopts a new leader epoch from the metadata image.
    pub fn become_leader(&self, epoch: LeaderEpoch) -> Result<(), StorageError> {
        let previous = self.leader_epoch.swap(i64::from(epoch.0), Ordering::AcqRel);
        if previous != i64::from(epoch.0) {
            self.log.assign_epoch(epoch, self.log.log_end_offset())?;
        }
        Ok(())
    }

    /// The effective topic settings.
    pub fn settings(&self) -> Arc<TopicSettings> {
        self.settings.read().clone()
    }

    /// Replaces the topic settings after a config change.
    pub fn update_settings(&self, settings: Arc<TopicSettings>) {
        if let Err(error) = self.log.set_config(settings.log.clone()) {
            tracing::warn!(topic = %self.topic, partition = self.index, %error, "log config not applied");
        }
        *self.settings.write() = settings;
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// The last stable offset: the high watermark while there are no open transactions.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
    }

    fn advance_high_watermark(&self, to: i64) {
        let previous = self.high_watermark.fetch_max(to, Ordering::AcqRel);
        if to > previous {
            // Retention, DeleteRecords and the cleaner never pass the high watermark.
            self.log.set_high_watermark(Offset(to));
        }
        self.data_arrived.notify_waiters();
    }

    /// Checks a client's idea of the leader epoch (`currentLeaderEpoch`, -1 = unknown).
    pub fn check_leader_epoch(&self, client_epoch: i32) -> Result<(), ReadError> {
        if client_epoch < 0 {
            return Ok(());
        }
        let ours = self.leader_epoch().0;
        match client_epoch.cmp(&ours) {
            std::cmp::Ordering::Less => Err(ReadError::FencedLeaderEpoch),
            std::cmp::Ordering::Greater => Err(ReadError::UnknownLeaderEpoch),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Validates and appends one client batch (Produce v3+ carries exactly one per partition).
    pub fn append_from_client(
        &self,
        records: Bytes,
        now_ms: i64,
        max_inflated_bytes: usize,
    ) -> Result<AppendOutcome, ProduceError> {
        let settings = self.settings();
        let batch = RecordBatch::new(records).map_err(|e| ProduceError::Corrupt(e.to_string()))?;
        batch
            .verify_crc()
            .map_err(|e| ProduceError::Corrupt(e.to_string()))?;
        if batch.size_bytes() > settings.max_message_bytes.max(0) as usize {
            return Err(ProduceError::TooLarge {
                size_bytes: batch.size_bytes(),
                max_bytes: settings.max_message_bytes,
            });
        }
        let batch = self.validate_and_convert(batch, &settings, now_ms, max_inflated_bytes)?;
        let log_append_time =
            (settings.timestamp_policy == TimestampPolicy::LogAppendTime).then_some(now_ms);

        let mut producers = self.producers.lock();
        let producer_id = batch.producer_id();
        if producer_id.0 >= 0 {
            let check = producers.check(
                producer_id,
                batch.producer_epoch(),
                batch.base_sequence(),
                batch.last_sequence(),
            )?;
            if let SequenceCheck::Duplicate(original) = check {
                return Ok(AppendOutcome {
                    base_offset: original.first_offset,
                    log_append_time_ms: log_append_time.map_or(-1, |_| original.max_timestamp),
                    log_start_offset: self.log.log_start_offset(),
                });
            }
        }
        let epoch = self.leader_epoch();
        let info =
            self.log
                .append_as_leader(std::slice::from_ref(&batch), epoch, log_append_time)?;
        if producer_id.0 >= 0 {
            producers.record(
                producer_id,
                batch.producer_epoch(),
                BatchMetadata {
                    first_sequence: batch.base_sequence(),
                    last_sequence: batch.last_sequence(),
                    first_offset: info.first_offset,
                    last_offset: info.last_offset,
                    max_timestamp: log_append_time.unwrap_or(batch.max_timestamp()),
                },
            );
        }
        drop(producers);
        // A single replica is its own ISR: what is appended is committed.
        self.advance_high_watermark(info.log_end_offset.0);
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// Appends a batch the broker itself built (the group coordinator's records in
    /// `__consumer_offsets`). The client-only checks (record validation, producer sequences,
    /// codec conversion) do not apply; the topic's `max.message.bytes` does, so an oversized
    /// group state fails here as Kafka's coordinator fails it.
    pub fn append_internal(&self, batch: RecordBatch) -> Result<AppendOutcome, ProduceError> {
        let settings = self.settings();
        if batch.size_bytes() > settings.max_message_bytes.max(0) as usize {
            return Err(ProduceError::TooLarge {
                size_bytes: batch.size_bytes(),
                max_bytes: settings.max_message_bytes,
            });
        }
        // The producer-state lock is the partition's append lock.
        let producers = self.producers.lock();
        let epoch = self.leader_epoch();
        let info = self
            .log
            .append_as_leader(std::slice::from_ref(&batch), epoch, None)?;
        drop(producers);
        self.advance_high_watermark(info.log_end_offset.0);
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            log_append_time_ms: -1,
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// Record-level validation and, when the topic pins a codec, re-encoding.
    ///
    /// Uncompressed batches are checked record by record, as Kafka's `LogValidator` does. A
    /// compressed batch is only opened when the topic requires it — keys on a compacted topic,
    /// a lower timestamp bound, or a different codec — otherwise its header's timestamps are
    /// checked, which keeps decompression off the produce hot path.
    fn validate_and_convert(
        &self,
        batch: RecordBatch,
        settings: &TopicSettings,
        now_ms: i64,
        max_inflated_bytes: usize,
    ) -> Result<RecordBatch, ProduceError> {
        let window = match settings.timestamp_policy {
            TimestampPolicy::LogAppendTime => None,
            TimestampPolicy::CreateTime => Some((
                now_ms.saturating_sub(settings.timestamp_before_max_ms),
                now_ms.saturating_add(settings.timestamp_after_max_ms),
            )),
        };
        let rules = RecordRules {
            max_inflated_bytes,
            require_keys: settings.is_compacted(),
            timestamp_window_ms: window,
            from_client: true,
        };
        let target = match settings.compression {
            TopicCompression::Producer => batch.compression(),
            TopicCompression::Codec(codec) => codec,
        };
        let must_open = batch.compression() == Compression::None
            || rules.require_keys
            || settings.timestamp_before_max_ms != i64::MAX
            || target != batch.compression();
        let invalid = |error: ValidationError| match error.kind() {
            ValidationErrorKind::Corrupt => ProduceError::Corrupt(error.to_string()),
            _ => ProduceError::Invalid { error },
        };
        if must_open {
            validate_records(&batch, &rules).map_err(invalid)?;
        } else {
            header_checks(&batch, window).map_err(invalid)?;
        }
        if target == batch.compression() {
            return Ok(batch);
        }
        let bytes = reencode(
            &batch,
            target,
            settings.compression_level,
            max_inflated_bytes,
        )
        .map_err(|e| ProduceError::Corrupt(e.to_string()))?;
        RecordBatch::new(bytes).map_err(|e| ProduceError::Corrupt(e.to_string()))
    }

    /// Reads from `fetch_offset` for a consumer (or follower), bounded by isolation.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: Isolation,
        min_one_batch: bool,
    ) -> Result<PartitionRead, ReadError> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let upper = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        let log_start_offset = self.log.log_start_offset().0;
        if fetch_offset < log_start_offset || fetch_offset > self.log.log_end_offset().0 {
            return Err(ReadError::OutOfRange {
                requested: fetch_offset,
            });
        }
        let records = if fetch_offset >= upper {
            Bytes::new()
        } else {
            let read = self
                .log
                .read(
                    Offset(fetch_offset),
                    max_bytes,
                    Offset(upper),
                    min_one_batch,
                )
                .map_err(|e| match e {
                    StorageError::OffsetOutOfRange { .. } => ReadError::OutOfRange {
                        requested: fetch_offset,
                    },
                    other => ReadError::Storage(other),
                })?;
            read.records
        };
        Ok(PartitionRead {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset,
        })
    }

    /// Producer state for DescribeProducers.
    pub fn producers(&self) -> ProducerStateTable {
        self.producers.lock().clone()
    }

    /// Writes a producer-state snapshot at the log end (on roll and clean shutdown).
    pub fn snapshot_producer_state(&self) -> Result<(), StorageError> {
        let producers = self.producers.lock();
        let end = self.log.log_end_offset();
        self.log.write_producer_snapshot(end, &producers.encode())
    }
}

/// Timestamp checks on a compressed batch's header, standing in for record-level checks when
/// the records are not opened.
fn header_checks(batch: &RecordBatch, window: Option<(i64, i64)>) -> Result<(), ValidationError> {
    if i64::from(batch.last_offset_delta()) + 1 != i64::from(batch.records_count()) {
        return Err(ValidationError::OffsetRange {
            last_offset_delta: batch.last_offset_delta(),
            records_count: batch.records_count(),
        });
    }
    if batch.is_control() {
        return Err(ValidationError::ControlBatch);
    }
    if let Some((min_ms, max_ms)) = window
        && batch.max_timestamp() > max_ms
    {
        return Err(ValidationError::TimestampOutOfRange {
            record_index: 0,
            timestamp_ms: batch.max_timestamp(),
            min_ms,
            max_ms,
        });
    }
    Ok(())
}

/// Rebuilds producer state: the latest snapshot, then every idempotent batch after it.
fn load_producer_state(log: &PartitionLog) -> ProducerStateTable {
    let (mut table, from) = match log.latest_producer_snapshot() {
        Ok(Some((offset, bytes))) => match ProducerStateTable::decode(bytes) {
            Some(table) => (table, offset),
            None => {
                tracing::warn!("producer snapshot unreadable; rebuilding from the log start");
                (ProducerStateTable::new(), log.log_start_offset())
            }
        },
        Ok(None) => (ProducerStateTable::new(), log.log_start_offset()),
        Err(error) => {
            tracing::warn!(%error, "producer snapshot unreadable; rebuilding from the log start");
            (ProducerStateTable::new(), log.log_start_offset())
        }
    };
    let end = log.log_end_offset();
    let mut next = from;
    while next < end {
        let Ok(read) = log.read(next, 1 << 20, end, true) else {
            break;
        };
        let mut bytes = read.records;
        if bytes.is_empty() {
            break;
        }
        while let Ok(batch) = RecordBatch::split_first(&mut bytes) {
            if batch.producer_id().0 >= 0 && !batch.is_control() {
                table.record(
                    batch.producer_id(),
                    batch.producer_epoch(),
                    BatchMetadata {
                        first_sequence: batch.base_sequence(),
                        last_sequence: batch.last_sequence(),
                        first_offset: batch.base_offset(),
                        last_offset: batch.last_offset(),
                        max_timestamp: batch.max_timestamp(),
                    },
                );
            }
            next = batch.next_offset();
        }
    }
    table
}
