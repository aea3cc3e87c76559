//! ListOffsets (2), v1-v10: earliest, latest, by timestamp, max timestamp.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use spate_protocol::error::ErrorCode;

use crate::Broker;
use crate::handlers::fetch::map_read_error;
use crate::replica::partition::Partition;

/// Special timestamps of ListOffsets (Kafka's `ListOffsetsRequest`).
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;
/// KIP-1023 (v11): the first offset not yet uploaded to remote storage.
const EARLIEST_PENDING_UPLOAD_TIMESTAMP: i64 = -6;
const READ_COMMITTED: i8 = 1;
/// Kafka's replica id of a debugging client, which may read any replica, leader or not.
const DEBUGGING_REPLICA_ID: i32 = -2;

fn failed(index: i32, code: ErrorCode) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_timestamp(-1)
        .with_offset(-1)
        .with_leader_epoch(-1)
}

fn found(index: i32, offset: i64, timestamp: i64, epoch: i32) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_timestamp(timestamp)
        .with_offset(offset)
        .with_leader_epoch(epoch)
}

/// Serves ListOffsets.
pub fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == READ_COMMITTED;
    // A follower (replica id >= 0) or a debugging client asks for the log end, not for what
    // consumers may see (Kafka's `isolationLevel` is none for them).
    let replica_id = request.replica_id.0;
    let reads_log_end = replica_id >= 0 || replica_id == DEBUGGING_REPLICA_ID;
    let image = broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let mut seen = HashSet::new();
            let duplicates: HashSet<i32> = topic
                .partitions
                .iter()
                .filter(|p| !seen.insert(p.partition_index))
                .map(|p| p.partition_index)
                .collect();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let index = p.partition_index;
                    if duplicates.contains(&index) {
                        return failed(index, ErrorCode::InvalidRequest);
                    }
                    let Some(partition) = broker.replicas.get(&name, index) else {
                        let known = image
                            .topic(&name)
                            .is_some_and(|t| t.partitions.contains_key(&index));
                        return failed(
                            index,
                            if known {
                                ErrorCode::NotLeaderOrFollower
                            } else {
                                ErrorCode::UnknownTopicOrPartition
                            },
                        );
                    };
                    let checked = if replica_id == DEBUGGING_REPLICA_ID {
                        partition.check_leader_epoch(p.current_leader_epoch)
                    } else {
                        partition.check_leader(p.current_leader_epoch)
                    };
                    if let Err(error) = checked {
                        return failed(index, map_read_error(&error));
                    }
                    lookup(
                        &partition,
                        index,
                        p.timestamp,
                        read_committed,
                        reads_log_end,
                    )
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(without_epochs_before_v4(partitions, version))
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    partition: &Partition,
    index: i32,
    timestamp: i64,
    read_committed: bool,
    reads_log_end: bool,
) -> ListOffsetsPartitionResponse {
    let log = &partition.log;
    // The epoch of the leader that wrote `offset`: the last epoch starting at or before it.
    let epoch_at = |offset: i64| {
        log.epoch_entries()
            .iter()
            .rev()
            .find(|e| e.start_offset.0 <= offset)
            .map_or(partition.leader_epoch().0, |e| e.epoch.0)
    };
    let fetchable_end = if reads_log_end {
        log.log_end_offset().0
    } else if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    match timestamp {
        LATEST_TIMESTAMP => found(index, fetchable_end, -1, partition.leader_epoch().0),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            let start = log.log_start_offset().0;
            found(index, start, -1, epoch_at(start))
        }
        // Without tiered storage nothing is tiered.
        // Without remote storage Kafka knows neither offset: -1, -1, epoch -1.
        LATEST_TIERED_TIMESTAMP | EARLIEST_PENDING_UPLOAD_TIMESTAMP => found(index, -1, -1, -1),
        MAX_TIMESTAMP => match log.max_timestamp_offset() {
            Ok(Some(hit)) if hit.offset.0 < fetchable_end => {
                found(index, hit.offset.0, hit.timestamp, hit.leader_epoch.0)
            }
            Ok(_) => found(index, -1, -1, -1),
            Err(_) => failed(index, ErrorCode::KafkaStorageError),
        },
        target if target >= 0 => match log.offset_for_timestamp(target) {
            Ok(Some(hit)) if hit.offset.0 < fetchable_end => {
                found(index, hit.offset.0, hit.timestamp, hit.leader_epoch.0)
            }
            Ok(_) => found(index, -1, -1, -1),
            Err(_) => failed(index, ErrorCode::KafkaStorageError),
        },
        _ => failed(index, ErrorCode::InvalidRequest),
    }
}

/// The leader epoch field exists from v4; older versions must leave it at its default.
fn without_epochs_before_v4(
    mut partitions: Vec<ListOffsetsPartitionResponse>,
    version: i16,
) -> Vec<ListOffsetsPartitionResponse> {
    if version < 4 {
        for p in &mut partitions {
            p.leader_epoch = -1;
        }
    }
    partitions
}
