//! Group commit for ingress appends: concurrent requests to one partition this node leads share
//! one record batch. The first request to find a partition idle starts a writer task; the
//! writer appends everything queued (up to [`GROUP_BYTES_MAX`]) as one batch, waits once for the
//! high watermark to pass it, and answers each request with the offset of its own first record.
//! Requests that arrive meanwhile form the next batch. Each request stays all or nothing: its
//! records are in one batch, and a batch appends or fails whole.
//!
//! The writer is a task of its own, so a request whose client goes away never strands the others.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use spate_cloudevents::log::{LogError, Record};
use tokio::sync::oneshot;

use super::{append_batch, record_batch};
use crate::Broker;
use crate::replica::partition::Partition;

/// Most bytes of records one shared batch takes from the queue (a single larger request still
/// goes alone, and meets the topic's `max.message.bytes` check by itself).
pub const GROUP_BYTES_MAX: usize = 256 * 1024;
/// Bytes counted per record on top of its key, value and headers (record framing).
const RECORD_OVERHEAD_BYTES: usize = 24;

/// One request waiting for its records to be appended.
struct Waiting {
    records: Vec<Record>,
    bytes: usize,
    done: oneshot::Sender<Result<i64, LogError>>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    /// Whether a writer task is running for this partition.
    writing: bool,
}

/// The queue of one partition.
#[derive(Default)]
struct Lane {
    queue: Mutex<Queue>,
}

/// The lanes of every partition this node has appended to.
#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<String, HashMap<i32, Arc<Lane>>>>,
}

fn size_of(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| {
            RECORD_OVERHEAD_BYTES
                + r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())
                + r.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 4)
                    .sum::<usize>()
        })
        .sum()
}

impl Lanes {
    fn lane(&self, topic: &str, partition: i32) -> Arc<Lane> {
        let mut lanes = self.lanes.lock();
        if let Some(lane) = lanes.get(topic).and_then(|l| l.get(&partition)) {
            return lane.clone();
        }
        lanes
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .clone()
    }

    /// Appends `records` to `partition` of `topic`, which this node leads (`p`), with others
    /// queued for it; resolves with the offset of the first record once the high watermark
    /// has passed the batch.
    pub async fn append(
        &self,
        broker: &Arc<Broker>,
        topic: &str,
        partition: i32,
        p: Arc<Partition>,
        records: Vec<Record>,
    ) -> Result<i64, LogError> {
        let lane = self.lane(topic, partition);
        let (done, answer) = oneshot::channel();
        let start_writer = {
            let mut queue = lane.queue.lock();
            queue.waiting.push_back(Waiting {
                bytes: size_of(&records),
                records,
                done,
            });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            tokio::spawn(write(broker.clone(), lane, topic.to_owned(), partition, p));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(LogError::Other("the append was abandoned".into())))
    }
}

/// Takes the next group off the queue: at least one request, then more while they fit in
/// [`GROUP_BYTES_MAX`]. `None` (and the lane marked idle) when nothing waits.
fn next_group(lane: &Lane) -> Option<Vec<Waiting>> {
    let mut queue = lane.queue.lock();
    let first = match queue.waiting.pop_front() {
        Some(first) => first,
        None => {
            queue.writing = false;
            return None;
        }
    };
    let mut bytes = first.bytes;
    let mut group = vec![first];
    while let Some(next) = queue.waiting.front() {
        if bytes + next.bytes > GROUP_BYTES_MAX {
            break;
        }
        bytes += next.bytes;
        if let Some(next) = queue.waiting.pop_front() {
            group.push(next);
        }
    }
    Some(group)
}

/// The writer of one lane: appends group after group until the queue is empty.
async fn write(
    broker: Arc<Broker>,
    lane: Arc<Lane>,
    topic: String,
    partition: i32,
    p: Arc<Partition>,
) {
    while let Some(group) = next_group(&lane) {
        let counts: Vec<i64> = group.iter().map(|w| w.records.len() as i64).collect();
        let total: i64 = counts.iter().sum();
        let mut records = Vec::with_capacity(total as usize);
        let mut answers = Vec::with_capacity(group.len());
        for waiting in group {
            records.extend(waiting.records);
            answers.push(waiting.done);
        }
        let result = match record_batch(records) {
            Ok(batch) => append_batch(&broker, &topic, partition, &p, batch, total).await,
            Err(error) => Err(error),
        };
        let mut offset = 0;
        for (done, count) in answers.into_iter().zip(counts) {
            // A request whose client went away no longer listens.
            let _ = done.send(result.clone().map(|base| base + offset));
            offset += count;
        }
    }
}
