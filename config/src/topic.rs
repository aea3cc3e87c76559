//! Topic configs with Apache Kafka 4.x's names, types, defaults, valid values and broker synonyms.
//!
//! The table is the full set Kafka 4.3 describes for a topic, in the order Kafka defines them
//! (which is also the order it validates them in, so the first error reported is the same).
//! Kafka 4.0 removed `message.format.version`, `message.timestamp.difference.max.ms` and
//! `message.downconversion.enable` from this set; they are unknown names here as they are there.

use std::collections::BTreeMap;

use crate::value::{ConfigType, ConfigValue, InvalidConfig, Validator, parse_value};

/// How a broker synonym's value becomes the topic config's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynonymUnit {
    /// The broker value is used as it is.
    Same,
    /// The broker value is in minutes; the topic value is in milliseconds.
    MinutesToMillis,
    /// The broker value is in hours; the topic value is in milliseconds.
    HoursToMillis,
}

/// A broker config that supplies a topic config's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerSynonym {
    /// The broker config name, e.g. `log.retention.hours`.
    pub name: &'static str,
    /// How its value converts to the topic config's unit.
    pub unit: SynonymUnit,
}

/// One topic config: what Kafka calls a `ConfigKey` in `LogConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicConfigDef {
    /// The config name, e.g. `retention.ms`.
    pub name: &'static str,
    /// Its type.
    pub config_type: ConfigType,
    /// Its default as Kafka prints it.
    pub default: &'static str,
    /// The values it accepts.
    pub validator: Validator,
    /// The broker configs that set its cluster-wide default, first one winning (Kafka's order).
    pub synonyms: &'static [BrokerSynonym],
    /// What it does.
    pub documentation: &'static str,
}

const fn same(name: &'static str) -> BrokerSynonym {
    BrokerSynonym {
        name,
        unit: SynonymUnit::Same,
    }
}

const fn range_min(min: i64) -> Validator {
    Validator::Range {
        min: Some(min),
        max: None,
    }
}

/// The largest 64-bit value, Kafka's "no limit" for many time and count configs.
const LONG_MAX: &str = "9223372036854775807";

/// The cleanup policies a topic may combine.
pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
/// The values of `compression.type`, in Kafka's order.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// The values of `message.timestamp.type`.
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// The lowest zstd level Kafka accepts (zstd's fastest negative level).
pub const ZSTD_LEVEL_MIN: i64 = -131_072;
/// The highest zstd level.
pub const ZSTD_LEVEL_MAX: i64 = 22;
/// The smallest `segment.bytes` Kafka 4.x accepts (KIP-1030 raised it to 1 MiB).
pub const SEGMENT_BYTES_MIN: i64 = 1_048_576;

/// Every topic config, in Kafka's definition order.
pub static TOPIC_CONFIG_DEFS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        default: "1073741824",
        validator: range_min(SEGMENT_BYTES_MIN),
        synonyms: &[same("log.segment.bytes")],
        documentation: "Size in bytes at which the active segment file is closed and a new one started. \
            Retention and compaction work on whole segments, so smaller segments give finer control at the \
            cost of more files.",
    },
    TopicConfigDef {
        name: "segment.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        validator: range_min(1),
        synonyms: &[
            same("log.roll.ms"),
            BrokerSynonym {
                name: "log.roll.hours",
                unit: SynonymUnit::HoursToMillis,
            },
        ],
        documentation: "Time after which the active segment is rolled even if it is not full, so that \
            retention and compaction can reach old data.",
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        config_type: ConfigType::Long,
        default: "0",
        validator: range_min(0),
        synonyms: &[
            same("log.roll.jitter.ms"),
            BrokerSynonym {
                name: "log.roll.jitter.hours",
                unit: SynonymUnit::HoursToMillis,
            },
        ],
        documentation: "Largest random amount subtracted from segment.ms per segment, so that many \
            partitions do not all roll at the same moment.",
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        default: "10485760",
        validator: range_min(4),
        synonyms: &[same("log.index.size.max.bytes")],
        documentation: "Size in bytes preallocated for a segment's offset index; the index is trimmed \
            when the segment rolls, and a full index rolls the segment.",
    },
    TopicConfigDef {
        name: "flush.messages",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: range_min(1),
        synonyms: &[same("log.flush.interval.messages")],
        documentation: "Number of records appended to a partition after which the log is fsynced. The \
            default leaves durability to replication and the operating system's writeback.",
    },
    TopicConfigDef {
        name: "flush.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: range_min(0),
        synonyms: &[
            same("log.flush.interval.ms"),
            same("log.flush.scheduler.interval.ms"),
        ],
        documentation: "Time after which appended records are fsynced. The default leaves durability to \
            replication and the operating system's writeback.",
    },
    TopicConfigDef {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        default: "-1",
        validator: Validator::Any,
        synonyms: &[same("log.retention.bytes")],
        documentation: "Largest size in bytes a partition may reach before its oldest segments are \
            deleted under the delete policy; -1 means no size limit. Applies per partition.",
    },
    TopicConfigDef {
        name: "retention.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        validator: range_min(-1),
        synonyms: &[
            same("log.retention.ms"),
            BrokerSynonym {
                name: "log.retention.minutes",
                unit: SynonymUnit::MinutesToMillis,
            },
            BrokerSynonym {
                name: "log.retention.hours",
                unit: SynonymUnit::HoursToMillis,
            },
        ],
        documentation: "Time a segment is kept after its newest record before it is deleted under the \
            delete policy; -1 means no time limit.",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        default: "1048588",
        validator: range_min(0),
        synonyms: &[same("message.max.bytes")],
        documentation: "Largest record batch, after compression, the topic accepts; larger batches are \
            refused with MESSAGE_TOO_LARGE.",
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        default: "4096",
        validator: range_min(0),
        synonyms: &[same("log.index.interval.bytes")],
        documentation: "Bytes of log between two entries of the sparse offset index (and of the time \
            index when the timestamp grows). Denser indexes make lookups land closer but use more space.",
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        config_type: ConfigType::Long,
        default: "86400000",
        validator: range_min(0),
        synonyms: &[same("log.cleaner.delete.retention.ms")],
        documentation: "Time a tombstone is kept in a compacted topic after compaction reaches it, which \
            bounds how long a consumer reading from the start has to see the delete.",
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: "0",
        validator: range_min(0),
        synonyms: &[same("log.cleaner.min.compaction.lag.ms")],
        documentation: "Shortest time a record stays uncompacted in a compacted topic.",
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: range_min(1),
        synonyms: &[same("log.cleaner.max.compaction.lag.ms")],
        documentation: "Longest time a record may stay ineligible for compaction in a compacted topic.",
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        config_type: ConfigType::Long,
        default: "60000",
        validator: range_min(0),
        synonyms: &[same("log.segment.delete.delay.ms")],
        documentation: "Time a deleted segment's files are kept before they are removed from disk, so \
            reads in flight can finish.",
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        config_type: ConfigType::Double,
        default: "0.5",
        validator: Validator::Range {
            min: Some(0),
            max: Some(1),
        },
        synonyms: &[same("log.cleaner.min.cleanable.ratio")],
        documentation: "Share of a compacted log that must be uncompacted before the cleaner works on it \
            (unless max.compaction.lag.ms forces it earlier). Higher means fewer, cheaper cleanings and \
            more space held by duplicates.",
    },
    TopicConfigDef {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        default: "delete",
        validator: Validator::ListOf {
            allowed: CLEANUP_POLICIES,
            empty_allowed: true,
        },
        synonyms: &[same("log.cleanup.policy")],
        documentation: "What happens to old segments: `delete` removes them by retention.ms and \
            retention.bytes, `compact` keeps the latest record per key, `compact,delete` does both, and an \
            empty list keeps everything.",
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::Any,
        synonyms: &[same("unclean.leader.election.enable")],
        documentation: "Whether a replica outside the ISR may become leader when no in-sync replica is \
            left, trading possible loss of acknowledged records for availability.",
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        default: "1",
        validator: range_min(1),
        synonyms: &[same("min.insync.replicas")],
        documentation: "Fewest in-sync replicas, leader included, that must hold a write for a produce \
            with acks=all to succeed; with fewer, producers get NOT_ENOUGH_REPLICAS.",
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: ConfigType::String,
        default: "producer",
        validator: Validator::OneOf(COMPRESSION_TYPES),
        synonyms: &[same("compression.type")],
        documentation: "Codec batches are stored with: `producer` keeps the producer's codec, \
            `uncompressed` stores them plain, and gzip, snappy, lz4 or zstd recompress them.",
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        config_type: ConfigType::Int,
        default: "-1",
        validator: Validator::GzipLevel,
        synonyms: &[same("compression.gzip.level")],
        documentation: "gzip level used when compression.type is gzip; -1 is the codec's default.",
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        config_type: ConfigType::Int,
        default: "9",
        validator: Validator::Range {
            min: Some(1),
            max: Some(17),
        },
        synonyms: &[same("compression.lz4.level")],
        documentation: "lz4 level used when compression.type is lz4.",
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        config_type: ConfigType::Int,
        default: "3",
        validator: Validator::Range {
            min: Some(ZSTD_LEVEL_MIN),
            max: Some(ZSTD_LEVEL_MAX),
        },
        synonyms: &[same("compression.zstd.level")],
        documentation: "zstd level used when compression.type is zstd.",
    },
    TopicConfigDef {
        name: "preallocate",
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::Any,
        synonyms: &[same("log.preallocate")],
        documentation: "Whether a new segment file is preallocated on disk to its full size.",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        default: "CreateTime",
        validator: Validator::OneOf(TIMESTAMP_TYPES),
        synonyms: &[same("log.message.timestamp.type")],
        documentation: "Which timestamp records carry: `CreateTime` keeps the producer's, \
            `LogAppendTime` replaces it with the broker's clock at append.",
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        default: LONG_MAX,
        validator: range_min(0),
        synonyms: &[same("log.message.timestamp.before.max.ms")],
        documentation: "With CreateTime, how far a record's timestamp may lie before the broker's clock; \
            older batches are refused with INVALID_TIMESTAMP.",
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        default: "3600000",
        validator: range_min(0),
        synonyms: &[same("log.message.timestamp.after.max.ms")],
        documentation: "With CreateTime, how far a record's timestamp may lie after the broker's clock; \
            batches further in the future are refused with INVALID_TIMESTAMP.",
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        validator: Validator::ThrottledReplicas,
        synonyms: &[],
        documentation: "Replicas, as partition:broker pairs or `*` for all, whose replication is \
            throttled on the leader's side (leader.replication.throttled.rate).",
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        validator: Validator::ThrottledReplicas,
        synonyms: &[],
        documentation: "Replicas, as partition:broker pairs or `*` for all, whose replication is \
            throttled on the follower's side (follower.replication.throttled.rate).",
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::Any,
        synonyms: &[],
        documentation: "Tiered storage for the topic. Spate has no tiered storage, so only false is \
            accepted, as on a Kafka broker with tiered storage disabled.",
    },
    TopicConfigDef {
        name: "local.retention.ms",
        config_type: ConfigType::Long,
        default: "-2",
        validator: range_min(-2),
        synonyms: &[same("log.local.retention.ms")],
        documentation: "With tiered storage, time local segments are kept; -2 means retention.ms. \
            Without tiered storage it has no effect.",
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        config_type: ConfigType::Long,
        default: "-2",
        validator: range_min(-2),
        synonyms: &[same("log.local.retention.bytes")],
        documentation: "With tiered storage, bytes of local segments kept per partition; -2 means \
            retention.bytes. Without tiered storage it has no effect.",
    },
    TopicConfigDef {
        name: "remote.log.copy.disable",
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::Any,
        synonyms: &[],
        documentation: "With tiered storage, stops copying new segments to remote storage. Without \
            tiered storage it has no effect.",
    },
    TopicConfigDef {
        name: "remote.log.delete.on.disable",
        config_type: ConfigType::Boolean,
        default: "false",
        validator: Validator::Any,
        synonyms: &[],
        documentation: "With tiered storage, deletes remote data when tiered storage is turned off for \
            the topic. Without tiered storage it has no effect.",
    },
];

/// The definition of topic config `name`, if Kafka has one.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIG_DEFS.iter().find(|def| def.name == name)
}

/// What happens to old segments (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    /// Segments past retention.ms / retention.bytes are deleted.
    pub delete: bool,
    /// The log keeps only the latest record per key.
    pub compact: bool,
}

/// The codec batches are stored with (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// Keep whatever codec the producer used.
    Producer,
    /// Store batches uncompressed.
    Uncompressed,
    /// Recompress with gzip.
    Gzip,
    /// Recompress with snappy.
    Snappy,
    /// Recompress with lz4.
    Lz4,
    /// Recompress with zstd.
    Zstd,
}

/// Which timestamp records carry (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp.
    CreateTime,
    /// The broker's clock at append.
    LogAppendTime,
}

/// Which replicas are replication-throttled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ThrottledReplicas {
    /// None.
    #[default]
    None,
    /// Every replica of the topic (`*`).
    All,
    /// These `(partition, broker)` pairs.
    Listed(Vec<(i32, i32)>),
}

/// A topic's effective configuration, every value typed.
///
/// Field names are the Kafka names with dots as underscores; units are in the names.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct TopicConfig {
    pub cleanup_policy: CleanupPolicy,
    pub compression_type: CompressionType,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub follower_replication_throttled_replicas: ThrottledReplicas,
    pub index_interval_bytes: i32,
    pub leader_replication_throttled_replicas: ThrottledReplicas,
    pub local_retention_bytes: i64,
    pub local_retention_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_after_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_type: TimestampType,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    pub remote_log_copy_disable: bool,
    pub remote_log_delete_on_disable: bool,
    pub remote_storage_enable: bool,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub segment_bytes: i32,
    pub segment_index_bytes: i32,
    pub segment_jitter_ms: i64,
    pub segment_ms: i64,
    pub unclean_leader_election_enable: bool,
}

impl Default for TopicConfig {
    /// Kafka 4.x's topic defaults (a test checks them against the table).
    fn default() -> Self {
        TopicConfig {
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: false,
            },
            compression_type: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            delete_retention_ms: 86_400_000,
            file_delete_delay_ms: 60_000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            follower_replication_throttled_replicas: ThrottledReplicas::None,
            index_interval_bytes: 4096,
            leader_replication_throttled_replicas: ThrottledReplicas::None,
            local_retention_bytes: -2,
            local_retention_ms: -2,
            max_compaction_lag_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            message_timestamp_after_max_ms: 3_600_000,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            min_insync_replicas: 1,
            preallocate: false,
            remote_log_copy_disable: false,
            remote_log_delete_on_disable: false,
            remote_storage_enable: false,
            retention_bytes: -1,
            retention_ms: 604_800_000,
            segment_bytes: 1_073_741_824,
            segment_index_bytes: 10_485_760,
            segment_jitter_ms: 0,
            segment_ms: 604_800_000,
            unclean_leader_election_enable: false,
        }
    }
}

fn throttled(value: &ConfigValue) -> ThrottledReplicas {
    let ConfigValue::List(elements) = value else {
        return ThrottledReplicas::None;
    };
    let trimmed: Vec<&str> = elements
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    if trimmed == ["*"] {
        return ThrottledReplicas::All;
    }
    let pairs: Vec<(i32, i32)> = trimmed
        .iter()
        .filter_map(|pair| {
            let (partition, broker) = pair.split_once(':')?;
            Some((partition.parse().ok()?, broker.parse().ok()?))
        })
        .collect();
    if pairs.is_empty() {
        ThrottledReplicas::None
    } else {
        ThrottledReplicas::Listed(pairs)
    }
}

impl TopicConfig {
    /// Sets the field for topic config `name` from an already validated value; names and
    /// types that do not match leave the config unchanged.
    pub(crate) fn assign(&mut self, name: &str, value: &ConfigValue) {
        let long = value.as_i64();
        let int = long.and_then(|v| i32::try_from(v).ok());
        let boolean = match value {
            ConfigValue::Boolean(b) => Some(*b),
            _ => None,
        };
        let text = value.to_kafka_string();
        match name {
            "cleanup.policy" => {
                if let ConfigValue::List(policies) = value {
                    self.cleanup_policy = CleanupPolicy {
                        delete: policies.iter().any(|p| p == "delete"),
                        compact: policies.iter().any(|p| p == "compact"),
                    };
                }
            }
            "compression.type" => {
                self.compression_type = match text.as_str() {
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => CompressionType::Producer,
                }
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = if text == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            "min.cleanable.dirty.ratio" => {
                if let ConfigValue::Double(ratio) = value {
                    self.min_cleanable_dirty_ratio = *ratio;
                }
            }
            "leader.replication.throttled.replicas" => {
                self.leader_replication_throttled_replicas = throttled(value)
            }
            "follower.replication.throttled.replicas" => {
                self.follower_replication_throttled_replicas = throttled(value)
            }
            _ => {
                let int_field = match name {
                    "compression.gzip.level" => Some(&mut self.compression_gzip_level),
                    "compression.lz4.level" => Some(&mut self.compression_lz4_level),
                    "compression.zstd.level" => Some(&mut self.compression_zstd_level),
                    "index.interval.bytes" => Some(&mut self.index_interval_bytes),
                    "max.message.bytes" => Some(&mut self.max_message_bytes),
                    "min.insync.replicas" => Some(&mut self.min_insync_replicas),
                    "segment.bytes" => Some(&mut self.segment_bytes),
                    "segment.index.bytes" => Some(&mut self.segment_index_bytes),
                    _ => None,
                };
                if let (Some(field), Some(v)) = (int_field, int) {
                    *field = v;
                    return;
                }
                let long_field = match name {
                    "delete.retention.ms" => Some(&mut self.delete_retention_ms),
                    "file.delete.delay.ms" => Some(&mut self.file_delete_delay_ms),
                    "flush.messages" => Some(&mut self.flush_messages),
                    "flush.ms" => Some(&mut self.flush_ms),
                    "local.retention.bytes" => Some(&mut self.local_retention_bytes),
                    "local.retention.ms" => Some(&mut self.local_retention_ms),
                    "max.compaction.lag.ms" => Some(&mut self.max_compaction_lag_ms),
                    "message.timestamp.after.max.ms" => {
                        Some(&mut self.message_timestamp_after_max_ms)
                    }
                    "message.timestamp.before.max.ms" => {
                        Some(&mut self.message_timestamp_before_max_ms)
                    }
                    "min.compaction.lag.ms" => Some(&mut self.min_compaction_lag_ms),
                    "retention.bytes" => Some(&mut self.retention_bytes),
                    "retention.ms" => Some(&mut self.retention_ms),
                    "segment.jitter.ms" => Some(&mut self.segment_jitter_ms),
                    "segment.ms" => Some(&mut self.segment_ms),
                    _ => None,
                };
                if let (Some(field), Some(v)) = (long_field, long) {
                    *field = v;
                    return;
                }
                let bool_field = match name {
                    "preallocate" => Some(&mut self.preallocate),
                    "remote.log.copy.disable" => Some(&mut self.remote_log_copy_disable),
                    "remote.log.delete.on.disable" => Some(&mut self.remote_log_delete_on_disable),
                    "remote.storage.enable" => Some(&mut self.remote_storage_enable),
                    "unclean.leader.election.enable" => {
                        Some(&mut self.unclean_leader_election_enable)
                    }
                    _ => None,
                };
                if let (Some(field), Some(v)) = (bool_field, boolean) {
                    *field = v;
                }
            }
        }
    }

    /// The topic's config built from cluster-wide defaults and its own overrides.
    ///
    /// The overrides are validated as Kafka validates a CreateTopics or AlterConfigs request:
    /// unknown names first, then each value in definition order, then the checks that involve
    /// two values.
    pub fn with_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, InvalidConfig> {
        let parsed = parse_topic_overrides(overrides)?;
        let mut config = defaults.clone();
        for (name, value) in &parsed {
            config.assign(name, value);
        }
        check_topic_config(&config)?;
        Ok(config)
    }

    /// The value of topic config `name` as Kafka prints it, or `None` for an unknown name.
    pub fn value_string(&self, name: &str) -> Option<String> {
        let text = match name {
            "cleanup.policy" => {
                let mut policies = Vec::new();
                if self.cleanup_policy.compact {
                    policies.push("compact");
                }
                if self.cleanup_policy.delete {
                    policies.push("delete");
                }
                policies.join(",")
            }
            "compression.type" => match self.compression_type {
                CompressionType::Producer => "producer",
                CompressionType::Uncompressed => "uncompressed",
                CompressionType::Gzip => "gzip",
                CompressionType::Snappy => "snappy",
                CompressionType::Lz4 => "lz4",
                CompressionType::Zstd => "zstd",
            }
            .to_string(),
            "message.timestamp.type" => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_string(),
            "min.cleanable.dirty.ratio" => {
                crate::value::java_double_string(self.min_cleanable_dirty_ratio)
            }
            "leader.replication.throttled.replicas" => {
                throttled_string(&self.leader_replication_throttled_replicas)
            }
            "follower.replication.throttled.replicas" => {
                throttled_string(&self.follower_replication_throttled_replicas)
            }
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "remote.log.copy.disable" => self.remote_log_copy_disable.to_string(),
            "remote.log.delete.on.disable" => self.remote_log_delete_on_disable.to_string(),
            "remote.storage.enable" => self.remote_storage_enable.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            _ => return None,
        };
        Some(text)
    }
}

fn throttled_string(replicas: &ThrottledReplicas) -> String {
    match replicas {
        ThrottledReplicas::None => String::new(),
        ThrottledReplicas::All => "*".to_string(),
        ThrottledReplicas::Listed(pairs) => pairs
            .iter()
            .map(|(partition, broker)| format!("{partition}:{broker}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Parses topic overrides: unknown names are rejected first (Kafka's `validateNames`), then each
/// value in Kafka's definition order.
pub fn parse_topic_overrides(
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<(&'static str, ConfigValue)>, InvalidConfig> {
    if let Some(unknown) = overrides
        .keys()
        .find(|name| topic_config_def(name).is_none())
    {
        return Err(InvalidConfig::UnknownTopicConfig(unknown.clone()));
    }
    let mut parsed = Vec::with_capacity(overrides.len());
    for def in TOPIC_CONFIG_DEFS {
        if let Some(raw) = overrides.get(def.name) {
            parsed.push((
                def.name,
                parse_value(def.name, raw, def.config_type, &def.validator)?,
            ));
        }
    }
    Ok(parsed)
}

/// The checks Kafka makes on a topic's combined config (`LogConfig.validateValues` and the
/// tiered-storage checks of a broker without tiered storage).
pub fn check_topic_config(config: &TopicConfig) -> Result<(), InvalidConfig> {
    if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
        return Err(InvalidConfig::CompactionLagConflict {
            min_ms: config.min_compaction_lag_ms,
            max_ms: config.max_compaction_lag_ms,
        });
    }
    if config.remote_storage_enable {
        return Err(InvalidConfig::RemoteStorageDisabled);
    }
    Ok(())
}

/// Validates a topic's overrides against Kafka's defaults, as CreateTopics with
/// `validate_only` would; returns Kafka's message for the first problem.
pub fn validate_topic_configs(overrides: &BTreeMap<String, String>) -> Result<(), InvalidConfig> {
    TopicConfig::with_overrides(&TopicConfig::default(), overrides).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        match validate_topic_configs(&map(pairs)) {
            Ok(()) => panic!("{pairs:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// The defaults Apache Kafka 4.3 reports for a new topic (its `LogConfig`), written out here
    /// independently of the table so a typo in either shows up.
    const KAFKA_4_DEFAULTS: &[(&str, &str, &str)] = &[
        ("cleanup.policy", "LIST", "delete"),
        ("compression.gzip.level", "INT", "-1"),
        ("compression.lz4.level", "INT", "9"),
        ("compression.type", "STRING", "producer"),
        ("compression.zstd.level", "INT", "3"),
        ("delete.retention.ms", "LONG", "86400000"),
        ("file.delete.delay.ms", "LONG", "60000"),
        ("flush.messages", "LONG", "9223372036854775807"),
        ("flush.ms", "LONG", "9223372036854775807"),
        ("follower.replication.throttled.replicas", "LIST", ""),
        ("index.interval.bytes", "INT", "4096"),
        ("leader.replication.throttled.replicas", "LIST", ""),
        ("local.retention.bytes", "LONG", "-2"),
        ("local.retention.ms", "LONG", "-2"),
        ("max.compaction.lag.ms", "LONG", "9223372036854775807"),
        ("max.message.bytes", "INT", "1048588"),
        ("message.timestamp.after.max.ms", "LONG", "3600000"),
        (
            "message.timestamp.before.max.ms",
            "LONG",
            "9223372036854775807",
        ),
        ("message.timestamp.type", "STRING", "CreateTime"),
        ("min.cleanable.dirty.ratio", "DOUBLE", "0.5"),
        ("min.compaction.lag.ms", "LONG", "0"),
        ("min.insync.replicas", "INT", "1"),
        ("preallocate", "BOOLEAN", "false"),
        ("remote.log.copy.disable", "BOOLEAN", "false"),
        ("remote.log.delete.on.disable", "BOOLEAN", "false"),
        ("remote.storage.enable", "BOOLEAN", "false"),
        ("retention.bytes", "LONG", "-1"),
        ("retention.ms", "LONG", "604800000"),
        ("segment.bytes", "INT", "1073741824"),
        ("segment.index.bytes", "INT", "10485760"),
        ("segment.jitter.ms", "LONG", "0"),
        ("segment.ms", "LONG", "604800000"),
        ("unclean.leader.election.enable", "BOOLEAN", "false"),
    ];

    #[test]
    fn every_default_equals_kafka_4() {
        let mut names: Vec<&str> = TOPIC_CONFIG_DEFS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        let expected: Vec<&str> = KAFKA_4_DEFAULTS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(
            names, expected,
            "the set of topic configs differs from Kafka 4.x"
        );
        let defaults = TopicConfig::default();
        for (name, ty, default) in KAFKA_4_DEFAULTS {
            let def = topic_config_def(name).expect("listed above");
            assert_eq!(def.config_type.kafka_name(), *ty, "{name} type");
            assert_eq!(def.default, *default, "{name} default in the table");
            assert_eq!(
                defaults.value_string(name).as_deref(),
                Some(*default),
                "{name} typed default"
            );
            let parsed = parse_value(name, default, def.config_type, &def.validator)
                .unwrap_or_else(|e| panic!("{name} default does not pass its own validator: {e}"));
            let mut config = TopicConfig::default();
            config.assign(name, &parsed);
            assert_eq!(
                config, defaults,
                "{name}: parsing the default changes the typed config"
            );
        }
    }

    #[test]
    fn removed_configs_are_unknown_as_in_kafka_4() {
        for removed in [
            "message.format.version",
            "message.timestamp.difference.max.ms",
            "message.downconversion.enable",
        ] {
            assert_eq!(
                error(&[(removed, "1")]),
                format!("Unknown topic config name: {removed}")
            );
        }
        assert_eq!(error(&[("foo", "1")]), "Unknown topic config name: foo");
    }

    #[test]
    fn messages_match_kafka_invalid_configuration_texts() {
        assert_eq!(
            error(&[("retention.ms", "abc")]),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            error(&[("segment.bytes", "100")]),
            "Invalid value 100 for configuration segment.bytes: Value must be at least 1048576"
        );
        assert_eq!(
            error(&[("compression.type", "GZIP")]),
            "Invalid value GZIP for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            error(&[("message.timestamp.type", "createtime")]),
            "Invalid value createtime for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
        );
        assert_eq!(
            error(&[("compression.zstd.level", "23")]),
            "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"
        );
        assert_eq!(
            error(&[("local.retention.ms", "-3")]),
            "Invalid value -3 for configuration local.retention.ms: Value must be at least -2"
        );
        assert_eq!(
            error(&[
                ("min.compaction.lag.ms", "10"),
                ("max.compaction.lag.ms", "5")
            ]),
            "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
        );
        assert_eq!(
            error(&[("remote.storage.enable", "true")]),
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
        );
        // Kafka validates in definition order: segment.bytes comes before retention.bytes.
        assert_eq!(
            error(&[("retention.bytes", "abc"), ("segment.bytes", "abc")]),
            "Invalid value abc for configuration segment.bytes: Not a number of type INT"
        );
    }

    #[test]
    fn overrides_produce_typed_values() {
        let config = TopicConfig::with_overrides(
            &TopicConfig::default(),
            &map(&[
                ("cleanup.policy", "compact, delete"),
                ("retention.ms", "-1"),
                ("compression.type", " zstd "),
                ("leader.replication.throttled.replicas", "0:1,1:2"),
                ("follower.replication.throttled.replicas", "*"),
                ("min.cleanable.dirty.ratio", "0.1"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            config.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(config.retention_ms, -1);
        assert_eq!(config.compression_type, CompressionType::Zstd);
        assert_eq!(
            config.leader_replication_throttled_replicas,
            ThrottledReplicas::Listed(vec![(0, 1), (1, 2)])
        );
        assert_eq!(
            config.follower_replication_throttled_replicas,
            ThrottledReplicas::All
        );
        assert_eq!(
            config.value_string("cleanup.policy").as_deref(),
            Some("compact,delete")
        );
        assert_eq!(
            config.value_string("min.cleanable.dirty.ratio").as_deref(),
            Some("0.1")
        );
        let empty =
            TopicConfig::with_overrides(&TopicConfig::default(), &map(&[("cleanup.policy", "")]))
                .expect("an empty policy list means keep everything");
        assert_eq!(
            empty.cleanup_policy,
            CleanupPolicy {
                delete: false,
                compact: false
            }
        );
    }
}
