//! The per-topic settings the produce and fetch paths read, resolved from the topic's effective
//! configuration once per metadata change rather than per request.

use spate_protocol::records::Compression;
use spate_storage::config::LogConfig;

/// `compression.type` of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicCompression {
    /// Keep whatever the producer sent (`producer`).
    Producer,
    /// Store every batch with this codec, re-encoding others.
    Codec(Compression),
}

/// `message.timestamp.type` of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPolicy {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite them with the broker's clock on append.
    LogAppendTime,
}

/// Effective settings of one topic.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: i32,
    /// `message.timestamp.type`.
    pub timestamp_policy: TimestampPolicy,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `compression.type`.
    pub compression: TopicCompression,
    /// `compression.<codec>.level`, for the topic's codec when it re-encodes.
    pub compression_level: Option<i32>,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// The storage settings.
    pub log: LogConfig,
}

impl TopicSettings {
    /// Whether the topic is compacted (records need keys).
    pub fn is_compacted(&self) -> bool {
        self.log.cleanup_policy.compacts()
    }
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            max_message_bytes: 1_048_588,
            timestamp_policy: TimestampPolicy::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: TopicCompression::Producer,
            compression_level: None,
            min_insync_replicas: 1,
            log: LogConfig::default(),
        }
    }
}

impl TopicSettings {
    /// Resolves the request-path settings from a topic's effective configuration.
    pub fn from_config(config: &spate_config::TopicConfig) -> TopicSettings {
        use spate_config::topic::{CompressionType, TimestampType};
        use spate_storage::CleanupPolicy;
        let (compression, compression_level) = match config.compression_type {
            CompressionType::Producer => (TopicCompression::Producer, None),
            CompressionType::Uncompressed => (TopicCompression::Codec(Compression::None), None),
            CompressionType::Gzip => (
                TopicCompression::Codec(Compression::Gzip),
                Some(config.compression_gzip_level),
            ),
            CompressionType::Snappy => (TopicCompression::Codec(Compression::Snappy), None),
            CompressionType::Lz4 => (
                TopicCompression::Codec(Compression::Lz4),
                Some(config.compression_lz4_level),
            ),
            CompressionType::Zstd => (
                TopicCompression::Codec(Compression::Zstd),
                Some(config.compression_zstd_level),
            ),
        };
        let cleanup_policy = match (config.cleanup_policy.delete, config.cleanup_policy.compact) {
            (true, true) => CleanupPolicy::CompactAndDelete,
            (false, true) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        };
        let log = LogConfig {
            segment_bytes: config.segment_bytes.max(0) as u64,
            segment_ms: config.segment_ms,
            segment_jitter_ms: config.segment_jitter_ms,
            segment_index_bytes: config.segment_index_bytes.max(0) as u64,
            index_interval_bytes: config.index_interval_bytes.max(0) as u64,
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            cleanup_policy,
            delete_retention_ms: config.delete_retention_ms,
            min_compaction_lag_ms: config.min_compaction_lag_ms,
            max_compaction_lag_ms: config.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: config.min_cleanable_dirty_ratio,
            flush_messages: config.flush_messages,
            flush_ms: config.flush_ms,
            file_delete_delay_ms: config.file_delete_delay_ms,
            preallocate: config.preallocate,
        };
        TopicSettings {
            max_message_bytes: config.max_message_bytes,
            timestamp_policy: match config.message_timestamp_type {
                TimestampType::CreateTime => TimestampPolicy::CreateTime,
                TimestampType::LogAppendTime => TimestampPolicy::LogAppendTime,
            },
            timestamp_before_max_ms: config.message_timestamp_before_max_ms,
            timestamp_after_max_ms: config.message_timestamp_after_max_ms,
            compression,
            compression_level,
            min_insync_replicas: config.min_insync_replicas,
            log,
        }
    }
}

/// The broker settings replication runs with (Kafka's `replica.*` configs), resolved once at
/// startup from the node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`: an ISR member that has not caught up for this long is dropped.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: bytes a follower's fetch waits for.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: record bytes per partition per follower fetch.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: record bytes per follower fetch response.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch or a partition error.
    pub fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: bound on one follower request's round trip.
    pub socket_timeout_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often high watermarks are written.
    pub high_watermark_checkpoint_interval_ms: u64,
}

impl Default for ReplicationSettings {
    /// Kafka's defaults.
    fn default() -> Self {
        ReplicationSettings {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_backoff_ms: 1_000,
            socket_timeout_ms: 30_000,
            high_watermark_checkpoint_interval_ms: 5_000,
        }
    }
}

impl ReplicationSettings {
    /// Resolves the settings from the node's config layers; a value that does not parse keeps
    /// Kafka's default (the config crate validated it already).
    pub fn from_layers(layers: &spate_config::broker::ConfigLayers) -> ReplicationSettings {
        let defaults = ReplicationSettings::default();
        let number = |name: &str, default: i64| {
            layers
                .value(name)
                .ok()
                .flatten()
                .and_then(|v| v.as_i64())
                .unwrap_or(default)
        };
        let positive_ms = |name: &str, default: u64| number(name, default as i64).max(1) as u64;
        let int = |name: &str, default: i32| {
            i32::try_from(number(name, i64::from(default))).unwrap_or(default)
        };
        ReplicationSettings {
            lag_time_max_ms: number("replica.lag.time.max.ms", defaults.lag_time_max_ms).max(1),
            fetch_wait_max_ms: int("replica.fetch.wait.max.ms", defaults.fetch_wait_max_ms).max(0),
            fetch_min_bytes: int("replica.fetch.min.bytes", defaults.fetch_min_bytes).max(1),
            fetch_max_bytes: int("replica.fetch.max.bytes", defaults.fetch_max_bytes).max(1),
            fetch_response_max_bytes: int(
                "replica.fetch.response.max.bytes",
                defaults.fetch_response_max_bytes,
            )
            .max(1),
            fetch_backoff_ms: positive_ms("replica.fetch.backoff.ms", defaults.fetch_backoff_ms),
            socket_timeout_ms: positive_ms("replica.socket.timeout.ms", defaults.socket_timeout_ms),
            high_watermark_checkpoint_interval_ms: positive_ms(
                "replica.high.watermark.checkpoint.interval.ms",
                defaults.high_watermark_checkpoint_interval_ms,
            ),
        }
    }
}
