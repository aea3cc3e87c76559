//! Group commit for ingress appends: concurrent requests to one partition this node leads share
//! one record batch. The first request to find a partition idle starts a writer task; the
//! writer appends everything queued (up to [`GROUP_BYTES_MAX`]) as one batch, and answers each
//! request with the offset of its own first record once the high watermark has passed the
//! batch. Requests that arrive meanwhile form the next batch. Each request stays all or nothing:
//! its records are in one batch, and a batch appends or fails whole.
//!
//! The writer is a task of its own, so a request whose client goes away never strands the others,
//! and it does not wait for replication: each batch's commit is awaited by a task of its own, so
//! one slow commit never holds back the appends behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use spate_cloudevents::log::{LogError, Record};
use tokio::sync::oneshot;

use super::{append_now, record_batch, wait_committed};
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
        let appended = record_batch(records)
            .and_then(|batch| append_now(&broker, &topic, partition, &p, batch));
        match appended {
            Err(error) => answer(answers, &counts, Err(error)),
            // Committed already (a partition without followers to wait for).
            Ok(base) if p.high_watermark() > base + total - 1 => answer(answers, &counts, Ok(base)),
            Ok(base) => {
                let p = p.clone();
                tokio::spawn(async move {
                    let committed = wait_committed(&p, base + total - 1).await;
                    answer(answers, &counts, committed.map(|()| base));
                });
            }
        }
    }
}

/// Answers each request of a group: the offset of its first record, or the group's error.
fn answer(
    answers: Vec<oneshot::Sender<Result<i64, LogError>>>,
    counts: &[i64],
    result: Result<i64, LogError>,
) {
    let mut offset = 0;
    for (done, count) in answers.into_iter().zip(counts) {
        // A request whose client went away no longer listens.
        let _ = done.send(result.clone().map(|base| base + offset));
        offset += count;
    }
}
