//! DeleteRecords (21), OffsetForLeaderEpoch (23), DescribeLogDirs (35), DescribeProducers (61).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    DescribeProducersRequest, DescribeProducersResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use spate_protocol::types::{LeaderEpoch, Offset};

use crate::Broker;
use crate::handlers::fetch::map_read_error;
use crate::replica::partition::Partition;

/// DeleteRecords offset meaning "up to the high watermark".
const DELETE_TO_HIGH_WATERMARK: i64 = -1;
/// Kafka's replica id of a debugging client, which may read any replica, leader or not.
const DEBUGGING_REPLICA_ID: i32 = -2;

fn missing_partition_error(broker: &Broker, topic: &str, partition: i32) -> ErrorCode {
    let known = broker
        .metadata
        .image()
        .topic(topic)
        .is_some_and(|t| t.partitions.contains_key(&partition));
    if known {
        ErrorCode::NotLeaderOrFollower
    } else {
        ErrorCode::UnknownTopicOrPartition
    }
}

/// Serves DeleteRecords: moves each partition's log start offset forward.
pub fn delete_records(
    broker: &Arc<Broker>,
    request: &DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(partition) = broker.replicas.get(name, p.partition_index) else {
                        return result.with_error_code(
                            missing_partition_error(broker, name, p.partition_index).code(),
                        );
                    };
                    // The leader moves the log start; followers follow it through their fetches.
                    if !partition.is_leader() {
                        return result.with_error_code(ErrorCode::NotLeaderOrFollower.code());
                    }
                    // Kafka's `Partition.deleteRecordsOnLeader`: only a log with the delete
                    // policy may lose records from its start.
                    if !partition.log.config().cleanup_policy.deletes() {
                        return result.with_error_code(ErrorCode::PolicyViolation.code());
                    }
                    let high_watermark = partition.high_watermark();
                    let target = if p.offset == DELETE_TO_HIGH_WATERMARK {
                        high_watermark
                    } else {
                        p.offset
                    };
                    if target < 0 || target > high_watermark {
                        return result.with_error_code(ErrorCode::OffsetOutOfRange.code());
                    }
                    match partition.log.delete_records_before(Offset(target)) {
                        Ok(start) => result.with_low_watermark(start.0),
                        Err(error) => {
                            tracing::warn!(topic = name, partition = p.partition_index, %error, "DeleteRecords failed");
                            result.with_error_code(ErrorCode::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Serves OffsetForLeaderEpoch: the end offset of the largest epoch at or below the one asked.
pub fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    request: &OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.topic.0.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = broker.replicas.get(name, p.partition) else {
                        return result.with_error_code(
                            missing_partition_error(broker, name, p.partition).code(),
                        );
                    };
                    // Only the leader's epochs are the partition's history; a debugging client
                    // (replica id -2) may ask any replica.
                    let checked = if request.replica_id.0 == DEBUGGING_REPLICA_ID {
                        partition.check_leader_epoch(p.current_leader_epoch)
                    } else {
                        partition.check_leader(p.current_leader_epoch)
                    };
                    if let Err(error) = checked {
                        return result.with_error_code(map_read_error(&error).code());
                    }
                    let (epoch, end) = partition
                        .log
                        .end_offset_for_epoch(LeaderEpoch(p.leader_epoch));
                    result.with_leader_epoch(epoch.0).with_end_offset(end.0)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is a valid out pointer;
    // statvfs initializes it on success, which is checked before reading.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the struct is initialized.
    let stat = unsafe { stat.assume_init() };
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}

/// Serves DescribeLogDirs: the one data directory and the partitions in it.
pub fn describe_log_dirs(
    broker: &Arc<Broker>,
    request: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let mut hosted: Vec<Arc<Partition>> = broker.replicas.all();
    hosted.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
    let wanted = |p: &Partition| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == &*p.topic && t.partitions.contains(&p.index)),
    };
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for partition in hosted.iter().filter(|p| wanted(p)) {
        let entry = DescribeLogDirsPartition::default()
            .with_partition_index(partition.index)
            .with_partition_size(partition.log.size_bytes() as i64)
            .with_offset_lag(
                (partition.log.log_end_offset().0 - partition.high_watermark()).max(0),
            );
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == &*partition.topic => last.partitions.push(entry),
            _ => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(
                        partition.topic.to_string(),
                    )))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let dir = broker.replicas.data_dir();
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (total, usable) = disk_space(&absolute).unwrap_or((-1, -1));
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(absolute.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
    ])
}

/// Serves DescribeProducers: the idempotent producers with state on each partition.
pub fn describe_producers(
    broker: &Arc<Broker>,
    request: &DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let result = PartitionResponse::default().with_partition_index(*index);
                    let Some(partition) = broker.replicas.get(name, *index) else {
                        return result
                            .with_error_code(missing_partition_error(broker, name, *index).code());
                    };
                    if !partition.is_leader() {
                        return result.with_error_code(ErrorCode::NotLeaderOrFollower.code());
                    }
                    let producers = partition.producers();
                    let mut active: Vec<ProducerState> = producers
                        .iter()
                        .map(|(id, entry)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id.0))
                                .with_producer_epoch(i32::from(entry.epoch.0))
                                .with_last_sequence(entry.last_sequence())
                                .with_last_timestamp(entry.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(-1)
                        })
                        .collect();
                    active.sort_by_key(|p| p.producer_id.0);
                    result.with_active_producers(active)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
