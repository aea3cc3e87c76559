//! The narrow interface between CloudEvents and the broker: append records to a topic
//! partition, read them back from an offset, commit and fetch a consumer group's offsets, say
//! which partitions this node leads, and create a broker's topic.
//!
//! This crate never sees the broker's internals; the broker implements [`EventLog`] over its
//! replica manager and group coordinator, and tests use [`crate::memory::MemoryLog`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

/// One Kafka record as this crate writes and reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record key (`partitionkey` for CloudEvents), or `None` for a null key.
    pub key: Option<Bytes>,
    /// The record value (the event data), or `None` for a null value.
    pub value: Option<Bytes>,
    /// Headers in order; Kafka allows repeats and null values.
    pub headers: Vec<RecordHeader>,
    /// The record timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// One Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null header value.
    pub value: Option<Bytes>,
}

impl Record {
    /// The first header with this name, if any, with a non-null value.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_ref())
    }
}

/// A record read back from a partition, with its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The Kafka offset of the record.
    pub offset: i64,
    /// The record itself.
    pub record: Record,
}

/// What a broker's topic looks like when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name (`knative-broker-<namespace>-<name>`).
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs with Kafka's names (`retention.ms`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, String>,
}

/// Why a log operation failed, in the terms the ingress and dispatcher act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// This node does not lead the partition (or no leader is known): retry later.
    #[error("not the leader of {topic}-{partition}")]
    NotLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Fewer in-sync replicas than `min.insync.replicas`: an `acks=all` append cannot complete.
    #[error("not enough in-sync replicas for {topic}-{partition}")]
    NotEnoughReplicas {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The records are bigger than the topic's `max.message.bytes`.
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    TooLarge {
        /// Size of what was offered.
        size_bytes: usize,
        /// The topic's limit.
        max_bytes: usize,
    },
    /// No such topic (or partition).
    #[error("unknown topic or partition {topic}")]
    UnknownTopic {
        /// Topic.
        topic: String,
    },
    /// The requested offset is outside the log (deleted by retention, or past the end).
    #[error("offset {offset} out of range, log starts at {log_start_offset}")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The partition's current log start offset.
        log_start_offset: i64,
    },
    /// The operation did not complete in time (replication did not catch up).
    #[error("timed out")]
    Timeout,
    /// The broker is shedding load: retry after the given time.
    #[error("throttled, retry after {retry_after_ms} ms")]
    Throttled {
        /// How long to back off.
        retry_after_ms: u64,
    },
    /// The group coordinator is elsewhere or loading: retry later.
    #[error("coordinator not available for group {group}")]
    CoordinatorNotAvailable {
        /// Group id.
        group: String,
    },
    /// The node that leads the partition or coordinates the group, to which this node forwards
    /// the operation, could not be reached or dropped the connection: retry later.
    #[error("cannot reach {peer}: {reason}")]
    Unreachable {
        /// The other node, as the broker names it (id and address).
        peer: String,
        /// What failed.
        reason: String,
    },
    /// Anything else, with the broker's description.
    #[error("{0}")]
    Other(String),
}

impl LogError {
    /// Whether a retry may succeed without anything changing but time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LogError::NotLeader { .. }
                | LogError::NotEnoughReplicas { .. }
                | LogError::Timeout
                | LogError::Throttled { .. }
                | LogError::CoordinatorNotAvailable { .. }
                | LogError::Unreachable { .. }
        )
    }
}

/// The broker, as CloudEvents sees it. Every method is cheap to call concurrently.
pub trait EventLog: Send + Sync + 'static {
    /// Appends records to one partition, all or nothing, and returns the first record's offset
    /// once the append is as durable as `acks=all` promises (high watermark past it, ISR at
    /// least `min.insync.replicas`).
    fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<i64, LogError>> + Send;

    /// The number of partitions of a topic.
    fn partition_count(&self, topic: &str) -> Result<i32, LogError>;

    /// Reads committed records (below the high watermark) from `offset` on, at most
    /// `max_records`, waiting up to `max_wait` for the first one when none is there yet (an empty
    /// result then is normal).
    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_wait: Duration,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, LogError>> + Send;

    /// The partition's high watermark: the offset the next committed record will get.
    fn end_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<i64, LogError>> + Send;

    /// The partition's log start offset (the earliest readable offset).
    fn start_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<i64, LogError>> + Send;

    /// Commits `offset` (the next offset to consume) for a consumer group, durably.
    fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> impl Future<Output = Result<(), LogError>> + Send;

    /// A consumer group's committed offset, `None` when it has none.
    fn fetch_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<Option<i64>, LogError>> + Send;

    /// The partitions of `topic` this node currently leads; its dispatcher serves exactly these.
    fn led_partitions(&self, topic: &str) -> Vec<i32>;

    /// Creates a topic; creating one that already exists succeeds.
    fn create_topic(&self, spec: &TopicSpec) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Deletes a topic; deleting a missing one succeeds.
    fn delete_topic(&self, topic: &str) -> impl Future<Output = Result<(), LogError>> + Send;
}
