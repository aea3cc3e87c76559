//! An in-memory [`EventLog`], standing in for the broker in this crate's unit tests and
//! benchmarks. It keeps the contract the broker keeps (offsets, all-or-nothing appends,
//! `max.message.bytes`, long-polling reads, committed group offsets) and lets a test inject the
//! failures the real broker can return.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::log::{EventLog, LogError, Record, StoredRecord, TopicSpec};

/// Kafka's default `max.message.bytes`, used when a topic does not set it.
pub const MAX_MESSAGE_BYTES_DEFAULT: usize = 1_048_588;

#[derive(Default)]
struct Topic {
    partitions: Vec<Vec<StoredRecord>>,
    max_message_bytes: usize,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    offsets: HashMap<(String, String, i32), i64>,
    /// Errors to return from the next appends to a partition, one per append.
    append_faults: HashMap<(String, i32), Vec<LogError>>,
    /// Partitions that this "node" does not lead.
    not_led: HashMap<String, Vec<i32>>,
    commits: u64,
}

/// The in-memory log. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryLog {
    state: Mutex<State>,
    appended: Notify,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next appends to a partition fail with these errors, in order.
    pub fn fail_appends(&self, topic: &str, partition: i32, errors: Vec<LogError>) {
        let mut state = self.state.lock();
        let queue = state
            .append_faults
            .entry((topic.to_owned(), partition))
            .or_default();
        queue.extend(errors);
    }

    /// Says which partitions of a topic this node does not lead.
    pub fn set_not_led(&self, topic: &str, partitions: Vec<i32>) {
        self.state
            .lock()
            .not_led
            .insert(topic.to_owned(), partitions);
    }

    /// All records of a partition.
    pub fn records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        let state = self.state.lock();
        state
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .cloned()
            .unwrap_or_default()
    }

    /// All records of every partition of a topic, partition by partition.
    pub fn all_records(&self, topic: &str) -> Vec<StoredRecord> {
        let state = self.state.lock();
        state
            .topics
            .get(topic)
            .map(|t| t.partitions.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// A group's committed offset, read synchronously for assertions.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let state = self.state.lock();
        state
            .offsets
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .copied()
    }

    /// How many offset commits were made, for tests that check commits are batched.
    pub fn commit_count(&self) -> u64 {
        self.state.lock().commits
    }
}

fn record_size_bytes(record: &Record) -> usize {
    // Close to the v2 record size; what matters is that big values are refused as Kafka does.
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 2)
        .sum();
    record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + headers
        + 20
}

impl EventLog for MemoryLog {
    async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<i64, LogError> {
        let base = {
            let mut state = self.state.lock();
            if let Some(queue) = state.append_faults.get_mut(&(topic.to_owned(), partition))
                && !queue.is_empty()
            {
                return Err(queue.remove(0));
            }
            let t = state
                .topics
                .get_mut(topic)
                .ok_or_else(|| LogError::UnknownTopic {
                    topic: topic.to_owned(),
                })?;
            let size_bytes: usize = records.iter().map(record_size_bytes).sum::<usize>() + 61;
            if size_bytes > t.max_message_bytes {
                return Err(LogError::TooLarge {
                    size_bytes,
                    max_bytes: t.max_message_bytes,
                });
            }
            let log =
                t.partitions
                    .get_mut(partition as usize)
                    .ok_or_else(|| LogError::UnknownTopic {
                        topic: format!("{topic}-{partition}"),
                    })?;
            let base = log.len() as i64;
            for (i, record) in records.into_iter().enumerate() {
                log.push(StoredRecord {
                    offset: base + i as i64,
                    record,
                });
            }
            base
        };
        self.appended.notify_waiters();
        Ok(base)
    }

    fn partition_count(&self, topic: &str) -> Result<i32, LogError> {
        let state = self.state.lock();
        state
            .topics
            .get(topic)
            .map(|t| t.partitions.len() as i32)
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.to_owned(),
            })
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Register interest before looking, so an append between the look and the wait is
            // not missed.
            let notified = self.appended.notified();
            {
                let state = self.state.lock();
                let log = state
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(partition as usize))
                    .ok_or_else(|| LogError::UnknownTopic {
                        topic: format!("{topic}-{partition}"),
                    })?;
                let end = log.len() as i64;
                if offset < 0 || offset > end {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start_offset: 0,
                    });
                }
                if offset < end {
                    let from = offset as usize;
                    let to = (from + max_records).min(log.len());
                    return Ok(log[from..to].to_vec());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        let state = self.state.lock();
        state
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .map(|p| p.len() as i64)
            .ok_or_else(|| LogError::UnknownTopic {
                topic: format!("{topic}-{partition}"),
            })
    }

    async fn start_offset(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        self.end_offset(topic, partition).await.map(|_| 0)
    }

    async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), LogError> {
        let mut state = self.state.lock();
        state.commits += 1;
        state
            .offsets
            .insert((group.to_owned(), topic.to_owned(), partition), offset);
        Ok(())
    }

    async fn fetch_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, LogError> {
        Ok(self.committed(group, topic, partition))
    }

    fn led_partitions(&self, topic: &str) -> Vec<i32> {
        let state = self.state.lock();
        let Some(t) = state.topics.get(topic) else {
            return Vec::new();
        };
        let not_led = state.not_led.get(topic);
        (0..t.partitions.len() as i32)
            .filter(|p| not_led.is_none_or(|n| !n.contains(p)))
            .collect()
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        let mut state = self.state.lock();
        let max_message_bytes = spec
            .configs
            .get("max.message.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_MESSAGE_BYTES_DEFAULT);
        state
            .topics
            .entry(spec.name.clone())
            .or_insert_with(|| Topic {
                partitions: vec![Vec::new(); spec.partitions.max(1) as usize],
                max_message_bytes,
            });
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        self.state.lock().topics.remove(topic);
        Ok(())
    }
}

/// Topic configs as a map, for tests: `configs(&[("max.message.bytes", "100")])`.
pub fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
