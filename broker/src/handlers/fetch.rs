//! Fetch (1), v4-v18, for consumers: byte limits, long polls woken by appends, and incremental
//! fetch sessions (KIP-227). Consumers read from partition leaders only, up to the high
//! watermark; a fetch from a follower replica goes to [`crate::handlers::replica_fetch`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use uuid::Uuid;

use crate::Broker;
use crate::fetch_session::{
    CachedPartition, FINAL_EPOCH, INITIAL_EPOCH, INVALID_SESSION_ID, SessionError, SessionPartition,
};
use crate::replica::partition::{Isolation, ReadError};

/// Kafka's `isolation_level` value for read_committed.
const READ_COMMITTED: i8 = 1;
/// The response byte limit before Fetch v3 introduced `max_bytes`.
const RESPONSE_MAX_BYTES_UNLIMITED: i32 = i32::MAX;

/// The one place fetch failures become Kafka error codes.
pub fn map_read_error(error: &ReadError) -> ErrorCode {
    match error {
        ReadError::OutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReadError::FencedLeaderEpoch => ErrorCode::FencedLeaderEpoch,
        ReadError::NotLeader => ErrorCode::NotLeaderOrFollower,
        ReadError::UnknownLeaderEpoch => ErrorCode::UnknownLeaderEpoch,
        ReadError::Storage(_) => ErrorCode::KafkaStorageError,
    }
}

/// One partition this fetch covers, with where to read.
#[derive(Debug, Clone)]
struct Wanted {
    key: SessionPartition,
    cached: CachedPartition,
}

/// One partition's answer.
#[derive(Debug, Clone)]
struct Answer {
    key: SessionPartition,
    error: Option<ErrorCode>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    records: Bytes,
}

/// How the request relates to a session.
#[derive(Debug, Clone, Copy)]
enum SessionMode {
    /// No session (epoch -1, or pre-v7).
    Sessionless,
    /// Full fetch that opens a session.
    Full,
    /// Incremental fetch of an existing session.
    Incremental(i32),
}

struct FetchPlan {
    broker: Arc<Broker>,
    isolation: Isolation,
    max_bytes: i32,
    min_bytes: i32,
    max_wait_ms: i32,
    uses_topic_ids: bool,
    mode: SessionMode,
    wanted: Vec<Wanted>,
}

fn session_error_response(error: SessionError) -> FetchResponse {
    let code = match error {
        SessionError::NotFound => ErrorCode::FetchSessionIdNotFound,
        SessionError::InvalidEpoch => ErrorCode::InvalidFetchSessionEpoch,
        SessionError::TopicIdMismatch => ErrorCode::FetchSessionTopicIdError,
    };
    FetchResponse::default()
        .with_error_code(code.code())
        .with_session_id(INVALID_SESSION_ID)
}

/// What to do with a fetch: answer now, or wait for data.
pub enum FetchReply {
    /// Answer now.
    Now(FetchResponse),
    /// Answer when this completes.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = FetchResponse> + Send>>),
}

/// Serves Fetch.
pub fn handle(broker: &Arc<Broker>, request: FetchRequest, version: i16) -> FetchReply {
    if crate::handlers::replica_fetch::replica_id(&request, version) >= 0 {
        return crate::handlers::replica_fetch::handle(broker, request, version);
    }
    let uses_topic_ids = version >= 13;
    let image = broker.metadata.image();
    let request_partitions: Vec<Wanted> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name = if uses_topic_ids {
                image
                    .topic_by_id(&topic.topic_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                topic.topic.0.as_str().to_string()
            };
            let topic_id = if uses_topic_ids {
                topic.topic_id
            } else {
                Uuid::nil()
            };
            topic.partitions.iter().map(move |p| Wanted {
                key: SessionPartition {
                    topic: name.clone(),
                    topic_id,
                    partition: p.partition,
                },
                cached: CachedPartition::new(
                    p.fetch_offset,
                    p.partition_max_bytes,
                    p.current_leader_epoch,
                    p.log_start_offset,
                ),
            })
        })
        .collect();

    let epoch = if version >= 7 {
        request.session_epoch
    } else {
        FINAL_EPOCH
    };
    let (mode, wanted) = if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
        if request.session_id != INVALID_SESSION_ID {
            broker.fetch_sessions.remove(request.session_id);
        }
        let mode = if epoch == INITIAL_EPOCH {
            SessionMode::Full
        } else {
            SessionMode::Sessionless
        };
        (mode, request_partitions)
    } else {
        let forgotten: Vec<(Uuid, String, i32)> = request
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                let name = if uses_topic_ids {
                    image
                        .topic_by_id(&t.topic_id)
                        .map(|x| x.name.clone())
                        .unwrap_or_default()
                } else {
                    t.topic.0.as_str().to_string()
                };
                let id = if uses_topic_ids {
                    t.topic_id
                } else {
                    Uuid::nil()
                };
                t.partitions.iter().map(move |p| (id, name.clone(), *p))
            })
            .collect();
        let updated = broker.fetch_sessions.with_session(
            request.session_id,
            epoch,
            uses_topic_ids,
            |session| {
                session.partitions.retain(|(key, _)| {
                    !forgotten.iter().any(|(id, name, p)| {
                        key.partition == *p && (key.topic_id == *id && key.topic == *name)
                    })
                });
                for wanted in &request_partitions {
                    match session
                        .partitions
                        .iter_mut()
                        .find(|(key, _)| *key == wanted.key)
                    {
                        Some((_, cached)) => {
                            cached.fetch_offset = wanted.cached.fetch_offset;
                            cached.partition_max_bytes = wanted.cached.partition_max_bytes;
                            cached.current_leader_epoch = wanted.cached.current_leader_epoch;
                            cached.log_start_offset = wanted.cached.log_start_offset;
                        }
                        None => session
                            .partitions
                            .push((wanted.key.clone(), wanted.cached.clone())),
                    }
                }
                session
                    .partitions
                    .iter()
                    .map(|(key, cached)| Wanted {
                        key: key.clone(),
                        cached: cached.clone(),
                    })
                    .collect::<Vec<_>>()
            },
        );
        match updated {
            Ok(wanted) => (SessionMode::Incremental(request.session_id), wanted),
            Err(error) => return FetchReply::Now(session_error_response(error)),
        }
    };

    let plan = FetchPlan {
        broker: broker.clone(),
        isolation: if request.isolation_level == READ_COMMITTED {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        },
        max_bytes: if version >= 3 {
            request.max_bytes
        } else {
            RESPONSE_MAX_BYTES_UNLIMITED
        },
        min_bytes: request.min_bytes,
        max_wait_ms: request.max_wait_ms,
        uses_topic_ids,
        mode,
        wanted,
    };
    let answers = plan.read_all();
    if plan.satisfied(&answers) {
        return FetchReply::Now(plan.respond(answers));
    }
    FetchReply::Later(Box::pin(async move { plan.wait_and_respond().await }))
}

impl FetchPlan {
    /// Reads every partition once, honouring the response and partition byte limits; the first
    /// batch of the first partition with data is returned even when it exceeds them (KIP-74).
    fn read_all(&self) -> Vec<Answer> {
        let mut remaining = self.max_bytes.max(0) as usize;
        let mut first_with_data = true;
        self.wanted
            .iter()
            .map(|wanted| {
                let answer = self.read_one(wanted, remaining, first_with_data);
                if !answer.records.is_empty() {
                    first_with_data = false;
                    remaining = remaining.saturating_sub(answer.records.len());
                }
                answer
            })
            .collect()
    }

    fn read_one(&self, wanted: &Wanted, remaining: usize, min_one: bool) -> Answer {
        let failed = |error: ErrorCode| Answer {
            key: wanted.key.clone(),
            error: Some(error),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Bytes::new(),
        };
        if wanted.key.topic.is_empty() {
            return failed(ErrorCode::UnknownTopicId);
        }
        let Some(partition) = self
            .broker
            .replicas
            .get(&wanted.key.topic, wanted.key.partition)
        else {
            let known = self
                .broker
                .metadata
                .image()
                .topic(&wanted.key.topic)
                .is_some_and(|t| t.partitions.contains_key(&wanted.key.partition));
            return failed(if known {
                ErrorCode::NotLeaderOrFollower
            } else {
                ErrorCode::UnknownTopicOrPartition
            });
        };
        if let Err(error) = partition.check_leader(wanted.cached.current_leader_epoch) {
            return failed(map_read_error(&error));
        }
        let limit = (wanted.cached.partition_max_bytes.max(0) as usize).min(remaining);
        match partition.read(wanted.cached.fetch_offset, limit, self.isolation, min_one) {
            Ok(read) => Answer {
                key: wanted.key.clone(),
                error: None,
                high_watermark: read.high_watermark,
                last_stable_offset: read.last_stable_offset,
                log_start_offset: read.log_start_offset,
                records: read.records,
            },
            // Kafka answers every read error, OFFSET_OUT_OF_RANGE included (without tiered
            // storage), with unknown offsets (-1); clients reset through ListOffsets.
            Err(error) => failed(map_read_error(&error)),
        }
    }

    fn satisfied(&self, answers: &[Answer]) -> bool {
        let bytes: usize = answers.iter().map(|a| a.records.len()).sum();
        self.max_wait_ms <= 0
            || self.wanted.is_empty()
            || bytes >= self.min_bytes.max(0) as usize
            || answers.iter().any(|a| a.error.is_some())
    }

    /// The long poll: sleeps until an append to one of the partitions or the deadline, then
    /// reads again.
    async fn wait_and_respond(self) -> FetchResponse {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.max_wait_ms.max(0) as u64);
        let partitions: Vec<_> = self
            .wanted
            .iter()
            .filter_map(|w| self.broker.replicas.get(&w.key.topic, w.key.partition))
            .collect();
        loop {
            // Register for wake-ups before reading, so an append between the read and the wait
            // is not missed.
            let mut waits: Vec<_> = partitions
                .iter()
                .map(|p| Box::pin(p.data_arrived.notified()))
                .collect();
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            let answers = self.read_all();
            if self.satisfied(&answers) || waits.is_empty() {
                return self.respond(answers);
            }
            let woke = tokio::time::timeout_at(deadline, select_all(waits)).await;
            if woke.is_err() {
                let answers = self.read_all();
                return self.respond(answers);
            }
        }
    }

    fn respond(&self, answers: Vec<Answer>) -> FetchResponse {
        let session_id = match self.mode {
            SessionMode::Sessionless => INVALID_SESSION_ID,
            SessionMode::Full => {
                let partitions = answers
                    .iter()
                    .zip(&self.wanted)
                    .map(|(answer, wanted)| {
                        let mut cached = wanted.cached.clone();
                        note_sent(&mut cached, answer);
                        (wanted.key.clone(), cached)
                    })
                    .collect();
                self.broker
                    .fetch_sessions
                    .create(self.uses_topic_ids, partitions)
                    .unwrap_or(INVALID_SESSION_ID)
            }
            SessionMode::Incremental(id) => id,
        };
        let answers = match self.mode {
            SessionMode::Incremental(id) => {
                // Only partitions with something new go back; remember what was sent.
                self.broker
                    .fetch_sessions
                    .update(id, |session| {
                        answers
                            .into_iter()
                            .filter(|answer| {
                                let Some((_, cached)) = session
                                    .partitions
                                    .iter_mut()
                                    .find(|(k, _)| *k == answer.key)
                                else {
                                    return true;
                                };
                                let changed = answer.error.is_some()
                                    || !answer.records.is_empty()
                                    || cached.sent_high_watermark != answer.high_watermark
                                    || cached.sent_last_stable_offset != answer.last_stable_offset
                                    || cached.sent_log_start_offset != answer.log_start_offset;
                                note_sent(cached, answer);
                                changed
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            }
            _ => answers,
        };
        self.build(answers, session_id)
    }

    fn build(&self, answers: Vec<Answer>, session_id: i32) -> FetchResponse {
        let mut topics: Vec<FetchableTopicResponse> = Vec::new();
        for answer in answers {
            let data = PartitionData::default()
                .with_partition_index(answer.key.partition)
                .with_error_code(answer.error.map_or(0, |e| e.code()))
                .with_high_watermark(answer.high_watermark)
                .with_last_stable_offset(answer.last_stable_offset)
                .with_log_start_offset(answer.log_start_offset)
                .with_aborted_transactions(
                    (self.isolation == Isolation::ReadCommitted).then(Vec::new),
                )
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(answer.records));
            let same_topic = topics.last().is_some_and(|t| {
                if self.uses_topic_ids {
                    t.topic_id == answer.key.topic_id
                } else {
                    t.topic.0.as_str() == answer.key.topic
                }
            });
            if same_topic && let Some(last) = topics.last_mut() {
                last.partitions.push(data);
            } else {
                topics.push(
                    FetchableTopicResponse::default()
                        .with_topic(TopicName(StrBytes::from_string(answer.key.topic.clone())))
                        .with_topic_id(answer.key.topic_id)
                        .with_partitions(vec![data]),
                );
            }
        }
        FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(topics)
    }
}

fn note_sent(cached: &mut CachedPartition, answer: &Answer) {
    cached.sent_high_watermark = answer.high_watermark;
    cached.sent_last_stable_offset = answer.last_stable_offset;
    cached.sent_log_start_offset = answer.log_start_offset;
}
