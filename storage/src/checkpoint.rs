//! Kafka's `OffsetCheckpointFile`: a versioned text file of `topic partition offset` lines,
//! used for `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `cleaner-offset-checkpoint` and, by the broker, `replication-offset-checkpoint`.
//!
//! ```text
//! 0                 <- version
//! 2                 <- number of entries
//! orders 0 1200
//! orders 1 877
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use spate_protocol::types::{Offset, PartitionId};

use crate::error::{Result, StorageError};
use crate::files::{read_if_exists, write_atomically};

const CHECKPOINT_VERSION: i32 = 0;

/// A topic name and partition index: the identity of a partition log on disk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name (Kafka's legal characters: ASCII letters, digits, `.`, `_`, `-`).
    pub topic: String,
    /// Partition index.
    pub partition: PartitionId,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition: PartitionId(partition),
        }
    }

    /// The partition's directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition.0)
    }

    /// Parses a directory name `<topic>-<partition>`; the topic may itself contain `-`.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition.0)
    }
}

/// One offset checkpoint file.
#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    path: PathBuf,
}

impl OffsetCheckpointFile {
    /// The checkpoint at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> OffsetCheckpointFile {
        OffsetCheckpointFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every entry; a missing file reads as empty. A malformed file is an error naming it.
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, Offset>> {
        let Some(raw) = read_if_exists(&self.path)? else {
            return Ok(BTreeMap::new());
        };
        let path = &self.path;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| StorageError::corrupt(path, "checkpoint is not UTF-8"))?;
        let mut lines = text.lines();
        let version = lines
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
            .ok_or_else(|| StorageError::corrupt(path, "version line missing or malformed"))?;
        if version != CHECKPOINT_VERSION {
            return Err(StorageError::corrupt(
                path,
                format!("unsupported checkpoint version {version}"),
            ));
        }
        let count = lines
            .next()
            .and_then(|l| l.trim().parse::<usize>().ok())
            .ok_or_else(|| StorageError::corrupt(path, "entry count missing or malformed"))?;
        let mut entries = BTreeMap::new();
        for i in 0..count {
            let line = lines.next().ok_or_else(|| {
                StorageError::corrupt(path, format!("entry {i} of {count} missing"))
            })?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [topic, partition, offset] = fields.as_slice() else {
                return Err(StorageError::corrupt(
                    path,
                    format!("entry {i} {line:?} is not `topic partition offset`"),
                ));
            };
            let partition: i32 = partition.parse().map_err(|_| {
                StorageError::corrupt(path, format!("entry {i}: partition {partition:?}"))
            })?;
            let offset: i64 = offset.parse().map_err(|_| {
                StorageError::corrupt(path, format!("entry {i}: offset {offset:?}"))
            })?;
            entries.insert(TopicPartition::new(*topic, partition), Offset(offset));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(StorageError::corrupt(
                path,
                "more entries than the count says",
            ));
        }
        Ok(entries)
    }

    /// Replaces the file with `entries`, atomically.
    pub fn write(&self, entries: &BTreeMap<TopicPartition, Offset>) -> Result<()> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
        for (tp, offset) in entries {
            text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition.0, offset.0));
        }
        write_atomically(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_with_dashes_in_topics() {
        let tp = TopicPartition::new("knative-broker-default-b", 7);
        assert_eq!(tp.dir_name(), "knative-broker-default-b-7");
        assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("__cluster_metadata"), None);
        assert_eq!(TopicPartition::from_dir_name("t-1.abc-delete"), None);
        assert_eq!(TopicPartition::from_dir_name("-1"), None);
    }

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = OffsetCheckpointFile::new(dir.path().join("recovery-point-offset-checkpoint"));
        assert!(file.read().expect("empty").is_empty());
        let mut entries = BTreeMap::new();
        entries.insert(TopicPartition::new("orders", 0), Offset(1200));
        entries.insert(TopicPartition::new("orders", 1), Offset(877));
        file.write(&entries).expect("write");
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(text, "0\n2\norders 0 1200\norders 1 877\n");
        assert_eq!(file.read().expect("read"), entries);
        std::fs::write(file.path(), "0\n1\norders zero 1\n").expect("write");
        let err = file.read().expect_err("malformed");
        assert!(
            err.to_string().contains("recovery-point-offset-checkpoint"),
            "{err}"
        );
    }
}
