//! Per-partition log settings, with Kafka's topic-config names and defaults.
//!
//! The broker turns topic configs (and cluster defaults) into a [`LogConfig`]; storage never
//! parses config text itself.

use crate::error::{Result, StorageError};

/// Kafka's `segment.bytes` ceiling: positions in the offset index are 32-bit signed.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Kafka's `segment.bytes` floor (the size of the smallest legacy record).
pub const SEGMENT_BYTES_MIN: u64 = 14;
/// Smallest `segment.index.bytes`: one time-index entry must fit.
pub const SEGMENT_INDEX_BYTES_MIN: u64 = 12;

/// `cleanup.policy`: what happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CleanupPolicy {
    /// Delete whole segments by `retention.ms` / `retention.bytes` (Kafka's default).
    Delete,
    /// Keep the latest record per key (log compaction).
    Compact,
    /// `compact,delete`: compact, and also delete by retention.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Whether retention by time and size applies.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }

    /// Whether the cleaner compacts this log.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }
}

/// Settings of one partition log. Field names follow Kafka's topic configs (`segment.bytes` is
/// `segment_bytes`); `-1` keeps Kafka's meaning of "unlimited" where Kafka allows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once it is this old (by its first record's
    /// timestamp), so retention can delete data even from a quiet partition.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: up to this much is subtracted from `segment.ms` per segment, so that
    /// many partitions created together do not all roll at the same instant.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: size the offset and time indexes are preallocated to; a full
    /// index rolls the segment.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of batches between two offset-index entries. Smaller means
    /// faster lookups and bigger indexes.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older than this; `-1` keeps data
    /// forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this; `-1`
    /// means no size limit.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a compacted log keeps tombstones after the cleaner first
    /// saw them, so that consumers reading from the start still see the delete.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted away.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest uncompacted record is older than this is
    /// compacted even if it is not dirty enough.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact once this fraction of the log is uncompacted.
    pub min_cleanable_dirty_ratio: f64,
    /// `flush.messages`: fsync after this many appended records (`i64::MAX`: never force).
    pub flush_messages: i64,
    /// `flush.ms`: fsync once unflushed data is this old (`i64::MAX`: never force).
    pub flush_ms: i64,
    /// `file.delete.delay.ms`: how long a retired segment file keeps its `.deleted` name before it
    /// is unlinked.
    pub file_delete_delay_ms: i64,
    /// `preallocate`: extend a new segment file to `segment.bytes` up front.
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            preallocate: false,
        }
    }
}

impl LogConfig {
    /// Checks ranges and relations between settings, with a message naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(StorageError::InvalidConfig { reason });
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return bad(format!(
                "segment.bytes {} is outside [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]",
                self.segment_bytes
            ));
        }
        if self.segment_index_bytes < SEGMENT_INDEX_BYTES_MIN
            || self.segment_index_bytes > SEGMENT_BYTES_MAX
        {
            return bad(format!(
                "segment.index.bytes {} is outside [{SEGMENT_INDEX_BYTES_MIN}, {SEGMENT_BYTES_MAX}]",
                self.segment_index_bytes
            ));
        }
        if self.segment_ms < 1 {
            return bad(format!("segment.ms {} must be at least 1", self.segment_ms));
        }
        if self.segment_jitter_ms < 0 {
            return bad(format!(
                "segment.jitter.ms {} must not be negative",
                self.segment_jitter_ms
            ));
        }
        if self.retention_ms < -1 {
            return bad(format!("retention.ms {} must be >= -1", self.retention_ms));
        }
        if self.retention_bytes < -1 {
            return bad(format!(
                "retention.bytes {} must be >= -1",
                self.retention_bytes
            ));
        }
        if self.delete_retention_ms < 0 {
            return bad(format!(
                "delete.retention.ms {} must not be negative",
                self.delete_retention_ms
            ));
        }
        if self.min_compaction_lag_ms < 0 || self.max_compaction_lag_ms < 1 {
            return bad(format!(
                "min.compaction.lag.ms {} must be >= 0 and max.compaction.lag.ms {} >= 1",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            ));
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return bad(format!(
                "min.compaction.lag.ms {} is larger than max.compaction.lag.ms {}",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return bad(format!(
                "min.cleanable.dirty.ratio {} is outside [0, 1]",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.flush_messages < 1 || self.flush_ms < 0 {
            return bad(format!(
                "flush.messages {} must be >= 1 and flush.ms {} >= 0",
                self.flush_messages, self.flush_ms
            ));
        }
        if self.file_delete_delay_ms < 0 {
            return bad(format!(
                "file.delete.delay.ms {} must not be negative",
                self.file_delete_delay_ms
            ));
        }
        Ok(())
    }

    /// Number of offset-index entries a segment's index can hold.
    pub(crate) fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / crate::index::OFFSET_ENTRY_BYTES as u64) as usize
    }

    /// Number of time-index entries a segment's time index can hold.
    pub(crate) fn time_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / crate::index::TIME_ENTRY_BYTES as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = LogConfig::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.segment_bytes, 1 << 30);
        assert_eq!(config.segment_index_bytes, 10 << 20);
        assert_eq!(config.retention_bytes, -1);
        assert_eq!(config.cleanup_policy, CleanupPolicy::Delete);
    }

    #[test]
    fn out_of_range_settings_name_themselves() {
        let config = LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        };
        let err = config.validate().expect_err("too small");
        assert!(err.to_string().contains("segment.bytes"), "{err}");
        let config = LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        };
        let err = config.validate().expect_err("ratio");
        assert!(
            err.to_string().contains("min.cleanable.dirty.ratio"),
            "{err}"
        );
    }
}
