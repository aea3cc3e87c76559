//! One local partition replica: its log, its producer state, and its high watermark.
//!
//! Appends from clients run under the partition's append lock, which also guards the producer
//! state, so the sequence check, the append and the state update are one step. Reads never take
//! that lock: they go straight to the log, bounded by the high watermark.
//!
//! A replica leads or follows (its [`Role`]); the replication half — role changes, the leader's
//! side of follower fetches, the follower's appends and truncations, waiting for `acks=all` —
//! lives in the child module [`replicated`]. Lock order: the append lock, then the role lock.

pub mod replicated;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

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
    BatchMetadata, ProducerStateTable, RefusedHeads, SequenceCheck, SequenceError,
};
use crate::replica::replication::{LeaderState, Role};
use crate::replica::settings::{TimestampPolicy, TopicCompression, TopicSettings};

/// Why a produced batch was not appended. The produce handler maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// This replica is not the leader.
    #[error("this broker is not the leader for the partition")]
    NotLeader,
    /// `acks=all` with fewer in-sync replicas than `min.insync.replicas`: NOT_ENOUGH_REPLICAS,
    /// refused before anything is appended.
    #[error("the ISR has {in_sync} replicas, fewer than min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicas {
        /// In-sync replicas, the leader included.
        in_sync: usize,
        /// The effective `min.insync.replicas`.
        min_insync_replicas: usize,
    },
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

/// A retriable refusal made before appending, kept to be repeated for the batches queued behind
/// the refused one (see [`RefusedHeads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotLeader,
    NotEnoughReplicas {
        in_sync: usize,
        min_insync_replicas: usize,
    },
}

impl Refusal {
    fn of(error: &ProduceError) -> Option<Refusal> {
        match *error {
            ProduceError::NotLeader => Some(Refusal::NotLeader),
            ProduceError::NotEnoughReplicas {
                in_sync,
                min_insync_replicas,
            } => Some(Refusal::NotEnoughReplicas {
                in_sync,
                min_insync_replicas,
            }),
            _ => None,
        }
    }

    fn error(self) -> ProduceError {
        match self {
            Refusal::NotLeader => ProduceError::NotLeader,
            Refusal::NotEnoughReplicas {
                in_sync,
                min_insync_replicas,
            } => ProduceError::NotEnoughReplicas {
                in_sync,
                min_insync_replicas,
            },
        }
    }
}

/// How durable a produce must be before it is answered: Kafka's `acks`, in our terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `acks=0`: no answer at all.
    None,
    /// `acks=1`: once the leader appended it.
    Leader,
    /// `acks=all`: once every in-sync replica has it (the high watermark passed it), with at
    /// least `min.insync.replicas` of them.
    InSync,
}

impl Durability {
    /// Kafka's `acks` value; `None` for one Kafka does not define.
    pub fn from_acks(acks: i16) -> Option<Durability> {
        match acks {
            0 => Some(Durability::None),
            1 => Some(Durability::Leader),
            -1 => Some(Durability::InSync),
            _ => None,
        }
    }
}

/// What a successful append reports back to the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Offset of the last record: `acks=all` completes once the high watermark passes it.
    pub last_offset: Offset,
    /// The leader epoch the batch was appended in; a waiter fails if the epoch moves on.
    pub leader_epoch: LeaderEpoch,
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
    /// NOT_LEADER_OR_FOLLOWER: this replica does not lead the partition (clients read from
    /// leaders only).
    #[error("this broker is not the leader for the partition")]
    NotLeader,
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
    /// Producers whose next batch was refused before appending; locked under `producers`.
    refused_heads: Mutex<RefusedHeads<Refusal>>,
    /// Woken whenever the log end or the high watermark moves, and on role changes: long-polling
    /// fetches (consumers and followers) and `acks=all` waiters re-check on it.
    pub data_arrived: Notify,
    /// Leader or follower, and the leader's view of its followers.
    role: Mutex<Role>,
    /// `replica.lag.time.max.ms`: how long an ISR member may go without catching up.
    replica_lag_time_max_ms: AtomicI64,
    /// Where ISR changes this leader decides go (to the controller); unset in a partition
    /// outside a replica manager, which then has no followers to change.
    isr_proposals: OnceLock<tokio::sync::mpsc::UnboundedSender<replicated::IsrProposal>>,
}

impl Partition {
    /// Wraps an opened log as the sole replica and leader of its partition at `leader_epoch`
    /// (the replica manager then applies the partition's real role). The producer state comes
    /// from the latest snapshot plus a replay of the batches after it.
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
        let role = Role::Leader(LeaderState::sole(log.log_end_offset()));
        Partition {
            topic,
            topic_id,
            index,
            log,
            leader_epoch: AtomicI64::new(i64::from(leader_epoch.0)),
            high_watermark: AtomicI64::new(high_watermark),
            settings: RwLock::new(settings),
            producers: Mutex::new(producers),
            refused_heads: Mutex::new(RefusedHeads::default()),
            data_arrived: Notify::new(),
            role: Mutex::new(role),
            replica_lag_time_max_ms: AtomicI64::new(replicated::REPLICA_LAG_TIME_MAX_MS_DEFAULT),
            isr_proposals: OnceLock::new(),
        }
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.leader_epoch.load(Ordering::Acquire) as i32)
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

    /// Validates and appends one client batch (Produce v3+ carries exactly one per partition)
    /// as an `acks=1` produce; see [`Partition::append_from_client_as`].
    pub fn append_from_client(
        &self,
        records: Bytes,
        now_ms: i64,
        max_inflated_bytes: usize,
    ) -> Result<AppendOutcome, ProduceError> {
        self.append_from_client_as(records, now_ms, max_inflated_bytes, Durability::Leader)
    }

    /// Validates and appends one client batch. With [`Durability::InSync`] the batch is refused
    /// (NOT_ENOUGH_REPLICAS) before anything is written when the ISR is smaller than
    /// `min.insync.replicas`; the caller then waits for [`Partition::wait_for_commit`].
    pub fn append_from_client_as(
        &self,
        records: Bytes,
        now_ms: i64,
        max_inflated_bytes: usize,
        durability: Durability,
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
        let producer_epoch = batch.producer_epoch();
        let check = (producer_id.0 >= 0).then(|| {
            producers.check(
                producer_id,
                producer_epoch,
                batch.base_sequence(),
                batch.last_sequence(),
            )
        });
        if let Err(refused) = self.check_leader_for_append(&settings, durability) {
            if let (Some(Ok(SequenceCheck::Append)), Some(refusal)) =
                (&check, Refusal::of(&refused))
            {
                self.refused_heads.lock().remember(
                    producer_id,
                    producer_epoch,
                    batch.base_sequence(),
                    refusal,
                );
            }
            return Err(refused);
        }
        if let Some(check) = check {
            let check = match check {
                Err(SequenceError::OutOfOrder { expected, .. }) => {
                    let repeated = self.refused_heads.lock().refusal_for_gap(
                        producer_id,
                        producer_epoch,
                        expected,
                    );
                    if let Some(refusal) = repeated {
                        tracing::debug!(
                            topic = %self.topic,
                            partition = self.index,
                            producer_id = producer_id.0,
                            expected,
                            received = batch.base_sequence(),
                            "a batch behind a refused one gets the same retriable refusal"
                        );
                        return Err(refusal.error());
                    }
                    check?
                }
                check => check?,
            };
            if let SequenceCheck::Duplicate(original) = check {
                // A retry of a batch already in the log: answered with its original offsets, and
                // for acks=all only once those are committed, like the original would have been.
                tracing::debug!(
                    topic = %self.topic,
                    partition = self.index,
                    producer_id = producer_id.0,
                    first_sequence = original.first_sequence,
                    first_offset = original.first_offset.0,
                    "duplicate batch answered with its original offsets"
                );
                return Ok(AppendOutcome {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    leader_epoch: self.leader_epoch(),
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
            tracing::trace!(
                topic = %self.topic,
                partition = self.index,
                producer_id = producer_id.0,
                producer_epoch = batch.producer_epoch().0,
                first_sequence = batch.base_sequence(),
                last_sequence = batch.last_sequence(),
                first_offset = info.first_offset.0,
                leader_epoch = epoch.0,
                "appended an idempotent batch as leader"
            );
            self.refused_heads.lock().forget(producer_id);
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
        self.after_leader_append();
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            leader_epoch: epoch,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// Appends a batch the broker itself built (the group coordinator's records in
    /// `__consumer_offsets`). The client-only checks (record validation, producer sequences,
    /// codec conversion) do not apply; the topic's `max.message.bytes` does, so an oversized
    /// group state fails here as Kafka's coordinator fails it. Only a leader appends; on a
    /// replicated topic the records are durable once [`Partition::wait_for_commit`] says so.
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
        self.check_leader_for_append(&settings, Durability::Leader)?;
        let epoch = self.leader_epoch();
        let info = self
            .log
            .append_as_leader(std::slice::from_ref(&batch), epoch, None)?;
        drop(producers);
        self.after_leader_append();
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            leader_epoch: epoch,
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
