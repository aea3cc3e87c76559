//! DescribeQuorum (55): the metadata quorum's voters, leader, epoch, high watermark, and each
//! voter's log end offset, answered for `__cluster_metadata` partition 0 as KRaft does. Any node
//! answers: the quorum asks its leader.
//!
//! Offsets are raft indexes, counted like Kafka's: a replica's log end offset is the number of
//! entries it holds, the high watermark the number committed, so `lag = leader LEO - voter LEO`.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use spate_controller::controller::ControllerError;
use spate_controller::frontend::{QuorumDescription, QuorumReplica};
use spate_protocol::error::ErrorCode;

use crate::Broker;

/// The metadata log's topic name, as Kafka names it.
pub const METADATA_TOPIC_NAME: &str = "__cluster_metadata";
/// The listener name reported for controller endpoints (v2's `nodes`).
const CONTROLLER_LISTENER_NAME: &str = "CONTROLLER";

/// The Kafka error for a quorum that could not answer.
fn map_quorum_error(error: &ControllerError) -> ErrorCode {
    match error {
        // No leader, or none reachable: clients retry against another node.
        ControllerError::Unavailable(_) => ErrorCode::NotLeaderOrFollower,
        _ => ErrorCode::UnknownServerError,
    }
}

fn replica_state(replica: &QuorumReplica, version: i16) -> ReplicaState {
    let state = ReplicaState::default()
        .with_replica_id(BrokerId(replica.node_id.0))
        .with_log_end_offset(replica.log_end_offset);
    if version >= 1 {
        state
            .with_last_fetch_timestamp(replica.last_fetch_timestamp_ms)
            .with_last_caught_up_timestamp(replica.last_caught_up_timestamp_ms)
    } else {
        state
    }
}

fn partition_data(description: &QuorumDescription, version: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(description.leader_id.0))
        .with_leader_epoch(description.leader_epoch as i32)
        .with_high_watermark(description.high_watermark)
        .with_current_voters(
            description
                .voters
                .iter()
                .map(|r| replica_state(r, version))
                .collect(),
        )
        .with_observers(
            description
                .observers
                .iter()
                .map(|r| replica_state(r, version))
                .collect(),
        )
}

fn nodes(description: &QuorumDescription) -> Vec<Node> {
    description
        .voter_addresses
        .iter()
        .filter_map(|(id, address)| {
            let (host, port) = address.rsplit_once(':')?;
            let port = port.parse().ok()?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(id.0))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(StrBytes::from_static_str(CONTROLLER_LISTENER_NAME))
                            .with_host(StrBytes::from_string(
                                host.trim_start_matches('[')
                                    .trim_end_matches(']')
                                    .to_string(),
                            ))
                            .with_port(port),
                    ]),
            )
        })
        .collect()
}

/// Serves DescribeQuorum.
pub async fn describe_quorum(
    broker: &Arc<Broker>,
    request: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let description = broker.metadata.describe_quorum().await;
    let failed = |index: i32, code: ErrorCode, message: String| {
        let data = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(code.code())
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1)
            .with_high_watermark(-1);
        if version >= 2 {
            data.with_error_message(Some(StrBytes::from_string(message)))
        } else {
            data
        }
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if topic.topic_name.0.as_str() != METADATA_TOPIC_NAME || p.partition_index != 0
                    {
                        return failed(
                            p.partition_index,
                            ErrorCode::UnknownTopicOrPartition,
                            "DescribeQuorum describes __cluster_metadata partition 0 only".into(),
                        );
                    }
                    match &description {
                        Ok(description) => partition_data(description, version),
                        Err(error) => failed(0, map_quorum_error(error), error.to_string()),
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let response = DescribeQuorumResponse::default().with_topics(topics);
    match (&description, version >= 2) {
        (Ok(description), true) => response.with_nodes(nodes(description)),
        _ => response,
    }
}
