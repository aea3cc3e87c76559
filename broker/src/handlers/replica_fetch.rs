//! Fetch (1) from a follower replica (`replica_id`, or from v15 `replica_state.replica_id`,
//! at least 0): the leader's side of replication.
//!
//! A follower reads up to the log end, not the high watermark; its fetch offset tells the
//! leader its log end offset, which moves the high watermark and its ISR membership. With
//! `last_fetched_epoch` (v12+) the leader checks the follower's history against its own epochs
//! and answers a diverging epoch instead of records when they differ (KIP-595); older followers
//! use OffsetForLeaderEpoch for that. The fetch long-polls like a consumer's, waking on appends.
//! Replica fetches are served sessionless: a follower that asks for a session gets session id 0
//! and keeps sending full fetches, which the protocol allows.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::Broker;
use crate::fetch_session::{FINAL_EPOCH, INITIAL_EPOCH, INVALID_SESSION_ID};
use crate::handlers::fetch::{FetchReply, map_read_error};
use crate::replica::partition::ReadError;
use crate::replica::partition::replicated::{FollowerFetch, FollowerRead};

/// One partition of a follower's fetch.
struct Wanted {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch: FollowerFetch,
}

/// One partition's answer.
struct Answer {
    error: Option<ErrorCode>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    diverging: Option<(i32, i64)>,
    records: Bytes,
}

impl Answer {
    fn failed(error: ErrorCode) -> Answer {
        Answer {
            error: Some(error),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging: None,
            records: Bytes::new(),
        }
    }
}

struct Plan {
    broker: Arc<Broker>,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
    uses_topic_ids: bool,
    wanted: Vec<Wanted>,
}

/// The replica id of a fetch: `replica_state.replica_id` from v15, `replica_id` before.
pub fn replica_id(request: &FetchRequest, version: i16) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

/// Serves a follower's Fetch.
pub fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> FetchReply {
    let replica = NodeId(replica_id(&request, version));
    let session_epoch = if version >= 7 {
        request.session_epoch
    } else {
        FINAL_EPOCH
    };
    if session_epoch != INITIAL_EPOCH && session_epoch != FINAL_EPOCH {
        // This leader never handed out a session, so an incremental fetch cannot be one of its.
        return FetchReply::Now(
            FetchResponse::default()
                .with_error_code(ErrorCode::FetchSessionIdNotFound.code())
                .with_session_id(INVALID_SESSION_ID),
        );
    }
    let uses_topic_ids = version >= 13;
    let image = broker.metadata.image();
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let name = if uses_topic_ids {
            image
                .topic_by_id(&topic.topic_id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        } else {
            topic.topic.0.as_str().to_string()
        };
        for p in &topic.partitions {
            wanted.push(Wanted {
                topic: name.clone(),
                topic_id: topic.topic_id,
                partition: p.partition,
                fetch: FollowerFetch {
                    replica,
                    fetch_offset: p.fetch_offset,
                    log_start_offset: p.log_start_offset,
                    last_fetched_epoch: if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                    current_leader_epoch: p.current_leader_epoch,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                },
            });
        }
    }
    let plan = Plan {
        broker: broker.clone(),
        max_bytes: request.max_bytes,
        min_bytes: request.min_bytes,
        max_wait_ms: request.max_wait_ms,
        uses_topic_ids,
        wanted,
    };
    // The follower's position counts from the first read only: a long poll re-reads the same
    // offsets, and the follower's progress is what it asked for when it asked.
    let answers = plan.read_all(true);
    if plan.satisfied(&answers) {
        return FetchReply::Now(plan.build(answers));
    }
    FetchReply::Later(Box::pin(async move { plan.wait_and_respond().await }))
}

impl Plan {
    fn read_all(&self, update_state: bool) -> Vec<Answer> {
        let mut remaining = self.max_bytes.max(0) as usize;
        let mut first_with_data = true;
        self.wanted
            .iter()
            .map(|w| {
                let answer = self.read_one(w, remaining, first_with_data, update_state);
                if !answer.records.is_empty() {
                    first_with_data = false;
                    remaining = remaining.saturating_sub(answer.records.len());
                }
                answer
            })
            .collect()
    }

    fn read_one(&self, w: &Wanted, remaining: usize, min_one: bool, update_state: bool) -> Answer {
        if w.topic.is_empty() {
            return Answer::failed(ErrorCode::UnknownTopicId);
        }
        let Some(partition) = self.broker.replicas.get(&w.topic, w.partition) else {
            let known = self
                .broker
                .metadata
                .image()
                .topic(&w.topic)
                .is_some_and(|t| t.partitions.contains_key(&w.partition));
            return Answer::failed(if known {
                ErrorCode::NotLeaderOrFollower
            } else {
                ErrorCode::UnknownTopicOrPartition
            });
        };
        let mut fetch = w.fetch;
        // KIP-74: the first partition with data returns at least one batch, whatever the limits.
        fetch.max_bytes = if min_one {
            fetch.max_bytes.min(remaining).max(1)
        } else {
            fetch.max_bytes.min(remaining)
        };
        match partition.read_for_follower(&fetch, update_state) {
            Ok(FollowerRead::Records(read)) => {
                let records = if !min_one && read.records.len() > remaining {
                    Bytes::new()
                } else {
                    read.records
                };
                Answer {
                    error: None,
                    high_watermark: read.high_watermark,
                    last_stable_offset: read.last_stable_offset,
                    log_start_offset: read.log_start_offset,
                    diverging: None,
                    records,
                }
            }
            Ok(FollowerRead::Diverging {
                epoch,
                end_offset,
                high_watermark,
                log_start_offset,
            }) => Answer {
                error: None,
                high_watermark,
                last_stable_offset: high_watermark,
                log_start_offset,
                diverging: Some((epoch, end_offset)),
                records: Bytes::new(),
            },
            Err(error) => {
                let mut answer = Answer::failed(map_read_error(&error));
                if matches!(error, ReadError::OutOfRange { .. }) {
                    answer.high_watermark = partition.high_watermark();
                    answer.last_stable_offset = partition.last_stable_offset();
                    answer.log_start_offset = partition.log.log_start_offset().0;
                }
                answer
            }
        }
    }

    fn satisfied(&self, answers: &[Answer]) -> bool {
        let bytes: usize = answers.iter().map(|a| a.records.len()).sum();
        self.max_wait_ms <= 0
            || self.wanted.is_empty()
            || bytes >= self.min_bytes.max(0) as usize
            || answers
                .iter()
                .any(|a| a.error.is_some() || a.diverging.is_some())
    }

    /// The long poll: until an append to one of the partitions, or the deadline.
    async fn wait_and_respond(self) -> FetchResponse {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.max_wait_ms.max(0) as u64);
        let partitions: Vec<_> = self
            .wanted
            .iter()
            .filter_map(|w| self.broker.replicas.get(&w.topic, w.partition))
            .collect();
        loop {
            let mut waits: Vec<_> = partitions
                .iter()
                .map(|p| Box::pin(p.data_arrived.notified()))
                .collect();
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            let answers = self.read_all(false);
            if self.satisfied(&answers) || waits.is_empty() {
                return self.build(answers);
            }
            if tokio::time::timeout_at(deadline, select_all(waits))
                .await
                .is_err()
            {
                let answers = self.read_all(false);
                return self.build(answers);
            }
        }
    }

    fn build(&self, answers: Vec<Answer>) -> FetchResponse {
        let mut topics: Vec<FetchableTopicResponse> = Vec::new();
        for (w, answer) in self.wanted.iter().zip(answers) {
            let mut data = PartitionData::default()
                .with_partition_index(w.partition)
                .with_error_code(answer.error.map_or(0, |e| e.code()))
                .with_high_watermark(answer.high_watermark)
                .with_last_stable_offset(answer.last_stable_offset)
                .with_log_start_offset(answer.log_start_offset)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(answer.records));
            if let Some((epoch, end_offset)) = answer.diverging {
                data.diverging_epoch = EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset);
            }
            if matches!(
                answer.error,
                Some(ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch)
            ) && let Some((leader, epoch)) = self.current_leader(w)
            {
                data.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
            }
            let same_topic = topics.last().is_some_and(|t| {
                if self.uses_topic_ids {
                    t.topic_id == w.topic_id
                } else {
                    t.topic.0.as_str() == w.topic
                }
            });
            if same_topic && let Some(last) = topics.last_mut() {
                last.partitions.push(data);
            } else {
                topics.push(
                    FetchableTopicResponse::default()
                        .with_topic(TopicName(StrBytes::from_string(w.topic.clone())))
                        .with_topic_id(w.topic_id)
                        .with_partitions(vec![data]),
                );
            }
        }
        FetchResponse::default()
            .with_session_id(INVALID_SESSION_ID)
            .with_responses(topics)
    }

    /// The leader and epoch the image names, for a follower sent to the wrong broker (KIP-951).
    fn current_leader(&self, w: &Wanted) -> Option<(i32, i32)> {
        let image = self.broker.metadata.image();
        let partition = image.topic(&w.topic)?.partitions.get(&w.partition)?.clone();
        Some((
            partition.leader.map_or(-1, |l| l.0),
            partition.leader_epoch.0,
        ))
    }
}
