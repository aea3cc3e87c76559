//! Committed offsets: OffsetCommit (8), OffsetFetch (9) and OffsetDelete (47).
//!
//! Topic checks happen here, against the metadata image, as Kafka's `KafkaApis` does them
//! before the coordinator sees the request: a commit or delete for a topic or partition that
//! does not exist is UNKNOWN_TOPIC_OR_PARTITION for that partition only.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_controller::image::MetadataImage;
use spate_protocol::error::ErrorCode;
use uuid::Uuid;

use crate::Broker;
use crate::group::records::OffsetCommitValue;
use crate::group::{CommitIdentity, GroupError, OffsetCommitEntry, PartitionCommit};
use crate::handlers::groups::map_group_error;

/// `retention_time_ms` meaning "the broker's retention" (OffsetCommit v2-v4).
const DEFAULT_RETENTION_TIME_MS: i64 = -1;
/// OffsetCommit versions that carry `retention_time_ms`.
const OFFSET_COMMIT_RETENTION_MAX_VERSION: i16 = 4;
/// OffsetFetch version that batches groups.
const OFFSET_FETCH_MULTI_GROUP_VERSION: i16 = 8;
/// OffsetFetch version with a top-level error code.
const OFFSET_FETCH_TOP_LEVEL_ERROR_VERSION: i16 = 2;
/// First OffsetCommit and OffsetFetch version naming topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 10;

/// The name of a topic given by id, as Kafka's `KafkaApis` resolves it before the coordinator
/// sees the request; `None` when no topic has that id (UNKNOWN_TOPIC_ID).
fn topic_name_by_id(image: &MetadataImage, id: &Uuid) -> Option<String> {
    image.topic_by_id(id).map(|t| t.name.clone())
}

fn partition_exists(image: &MetadataImage, topic: &str, partition: i32) -> bool {
    image
        .topic(topic)
        .is_some_and(|t| t.partitions.contains_key(&partition))
}

/// Serves OffsetCommit.
pub async fn offset_commit(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let image = broker.metadata.image();
    let group_id = request.group_id.0.as_str();
    // (topic index, partition index, result) in request order; `None` = goes to the coordinator.
    let mut slots: Vec<(usize, i32, Option<i16>)> = Vec::new();
    let mut entries = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = if version >= TOPIC_ID_VERSION {
            match topic_name_by_id(&image, &topic.topic_id) {
                Some(name) => name,
                None => {
                    for partition in &topic.partitions {
                        let error = ErrorCode::UnknownTopicId.code();
                        slots.push((t, partition.partition_index, Some(error)));
                    }
                    continue;
                }
            }
        } else {
            topic.name.0.as_str().to_string()
        };
        for partition in &topic.partitions {
            let index = partition.partition_index;
            if partition_exists(&image, &name, index) {
                entries.push(OffsetCommitEntry {
                    topic: name.clone(),
                    partition: index,
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_string()),
                });
                slots.push((t, index, None));
            } else {
                slots.push((t, index, Some(ErrorCode::UnknownTopicOrPartition.code())));
            }
        }
    }
    let identity = CommitIdentity {
        member_id: request.member_id.as_str().to_string(),
        instance_id: request
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string()),
        generation_or_epoch: request.generation_id_or_member_epoch,
        api_version: version,
        retention_ms: (version <= OFFSET_COMMIT_RETENTION_MAX_VERSION
            && request.retention_time_ms != DEFAULT_RETENTION_TIME_MS)
            .then_some(request.retention_time_ms),
    };
    let outcomes: Vec<i16> = if entries.is_empty() {
        Vec::new()
    } else {
        match broker
            .groups
            .commit_offsets(&image, group_id, &identity, &entries)
            .await
        {
            Ok(results) => results
                .into_iter()
                .map(|r| match r {
                    PartitionCommit::Committed => 0,
                    PartitionCommit::MetadataTooLarge => ErrorCode::OffsetMetadataTooLarge.code(),
                })
                .collect(),
            Err(error) => vec![map_group_error(&error).code(); entries.len()],
        }
    };
    let mut outcomes = outcomes.into_iter();
    let mut topics: Vec<OffsetCommitResponseTopic> = request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (t, index, preset) in slots {
        let error = preset.unwrap_or_else(|| outcomes.next().unwrap_or(0));
        topics[t].partitions.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(error),
        );
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's fetch: `None` topics means all committed offsets.
struct GroupFetch {
    group_id: String,
    member: Option<(String, i32)>,
    topics: Option<Vec<(String, Vec<i32>)>>,
}

type Fetched = Result<Vec<(String, i32, Option<OffsetCommitValue>)>, GroupError>;

/// A topic's partitions with their committed offsets (`None`: no commit).
type TopicOffsets = (String, Vec<(i32, Option<OffsetCommitValue>)>);

async fn fetch_one(broker: &Arc<Broker>, image: &MetadataImage, fetch: &GroupFetch) -> Fetched {
    broker
        .groups
        .fetch_offsets(
            image,
            &fetch.group_id,
            fetch.member.as_ref().map(|(m, e)| (m.as_str(), *e)),
            fetch.topics.clone(),
        )
        .await
}

/// Groups partitions by topic, keeping first-seen topic order.
fn by_topic(fetched: Vec<(String, i32, Option<OffsetCommitValue>)>) -> Vec<TopicOffsets> {
    let mut topics: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, value) in fetched {
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push((partition, value)),
            None => topics.push((topic, vec![(partition, value)])),
        }
    }
    topics
}

fn offset_fields(value: &Option<OffsetCommitValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata.clone()),
        // Kafka answers a partition without a commit with offset -1 and empty metadata.
        None => (-1, -1, String::new()),
    }
}

/// Serves OffsetFetch: one group before v8, a batch from v8.
pub async fn offset_fetch(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let image = broker.metadata.image();
    if version >= OFFSET_FETCH_MULTI_GROUP_VERSION {
        let mut groups = Vec::with_capacity(request.groups.len());
        let by_id = version >= TOPIC_ID_VERSION;
        for group in &request.groups {
            // Topics named by an id no topic has: answered UNKNOWN_TOPIC_ID per partition.
            let mut unknown_ids = Vec::new();
            let topics = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .filter_map(|t| {
                        let name = if by_id {
                            let name = topic_name_by_id(&image, &t.topic_id);
                            if name.is_none() {
                                unknown_ids.push(t);
                            }
                            name?
                        } else {
                            t.name.0.as_str().to_string()
                        };
                        Some((name, t.partition_indexes.clone()))
                    })
                    .collect()
            });
            let fetch = GroupFetch {
                group_id: group.group_id.0.as_str().to_string(),
                member: group
                    .member_id
                    .as_ref()
                    .map(|m| (m.as_str().to_string(), group.member_epoch)),
                topics,
            };
            let response =
                OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(match fetch_one(broker, &image, &fetch).await {
                Ok(fetched) => response.with_topics(
                    by_topic(fetched)
                        .into_iter()
                        .filter_map(|(topic, partitions)| {
                            // By id, a committed topic that no longer exists has no id to
                            // answer with and is left out, as Kafka does.
                            let topic_id = image.topic(&topic).map(|t| t.id);
                            if by_id && topic_id.is_none() {
                                return None;
                            }
                            let response = OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(topic)))
                                .with_topic_id(topic_id.unwrap_or_else(Uuid::nil));
                            Some(
                                response.with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, value)| {
                                            let (offset, epoch, metadata) = offset_fields(&value);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(StrBytes::from_string(
                                                    metadata,
                                                )))
                                        })
                                        .collect(),
                                ),
                            )
                        })
                        .chain(unknown_ids.iter().map(|t| {
                            OffsetFetchResponseTopics::default()
                                .with_topic_id(t.topic_id)
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(-1)
                                                .with_metadata(Some(StrBytes::default()))
                                                .with_error_code(ErrorCode::UnknownTopicId.code())
                                        })
                                        .collect(),
                                )
                        }))
                        .collect(),
                ),
                Err(error) => response.with_error_code(map_group_error(&error).code()),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let fetch = GroupFetch {
        group_id: request.group_id.0.as_str().to_string(),
        member: None,
        topics: request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes.clone()))
                .collect()
        }),
    };
    let partition = |p: i32, value: &Option<OffsetCommitValue>, error: i16| {
        let (offset, epoch, metadata) = offset_fields(value);
        let mut partition = OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_metadata(Some(StrBytes::from_string(metadata)))
            .with_error_code(error);
        if version >= 5 {
            partition.committed_leader_epoch = epoch;
        }
        partition
    };
    match fetch_one(broker, &image, &fetch).await {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(
            by_topic(fetched)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, value)| partition(p, &value, 0))
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(error) => {
            let error = map_group_error(&error).code();
            if version >= OFFSET_FETCH_TOP_LEVEL_ERROR_VERSION {
                OffsetFetchResponse::default().with_error_code(error)
            } else {
                // v1 has no top-level error: every requested partition carries it.
                OffsetFetchResponse::default().with_topics(
                    request
                        .topics
                        .iter()
                        .flatten()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| partition(*p, &None, error))
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Serves OffsetDelete.
pub async fn offset_delete(
    broker: &Arc<Broker>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let image = broker.metadata.image();
    let mut slots: Vec<(usize, i32, Option<i16>)> = Vec::new();
    let mut wanted = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.as_str();
        for partition in &topic.partitions {
            let index = partition.partition_index;
            if partition_exists(&image, name, index) {
                wanted.push((name.to_string(), index));
                slots.push((t, index, None));
            } else {
                slots.push((t, index, Some(ErrorCode::UnknownTopicOrPartition.code())));
            }
        }
    }
    let outcome = broker
        .groups
        .delete_offsets(&image, request.group_id.0.as_str(), &wanted)
        .await;
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            return OffsetDeleteResponse::default().with_error_code(map_group_error(&error).code());
        }
    };
    let mut results = results.into_iter();
    let mut topics: Vec<OffsetDeleteResponseTopic> = request
        .topics
        .iter()
        .map(|t| OffsetDeleteResponseTopic::default().with_name(t.name.clone()))
        .collect();
    for (t, index, preset) in slots {
        let error = preset.unwrap_or_else(|| {
            results
                .next()
                .and_then(|r| r.err())
                .map_or(0, |e| map_group_error(&e).code())
        });
        topics[t].partitions.push(
            OffsetDeleteResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(error),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
