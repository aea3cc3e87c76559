//! ElectLeaders (43), v0-v2: preferred-leader election (type 0, the only one before v1) and
//! unclean election of leaderless partitions (type 1), as Kafka's `kafka-leader-election` tool
//! asks for them. The controller decides; the answer comes once this broker has applied it.
//!
//! As Kafka's KRaft controller: with no partitions named (all partitions), partitions that
//! already have the wanted leader are left out of the answer; named ones report
//! ELECTION_NOT_NEEDED.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_controller::controller::ElectionError;
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_protocol::error::ErrorCode;
use uuid::Uuid;

use crate::Broker;
use crate::handlers::topics::map_controller_error;

/// Kafka's `ElectionType.PREFERRED`.
const PREFERRED: i8 = 0;
/// Kafka's `ElectionType.UNCLEAN`.
const UNCLEAN: i8 = 1;

/// The one place election failures become Kafka error codes.
pub fn map_election_error(error: &ElectionError) -> ErrorCode {
    match error {
        ElectionError::ElectionNotNeeded => ErrorCode::ElectionNotNeeded,
        ElectionError::PreferredLeaderNotAvailable => ErrorCode::PreferredLeaderNotAvailable,
        ElectionError::UnknownTopicOrPartition => ErrorCode::UnknownTopicOrPartition,
        ElectionError::EligibleLeadersNotAvailable => ErrorCode::EligibleLeadersNotAvailable,
    }
}

/// Serves ElectLeaders.
pub async fn elect_leaders(
    broker: &Arc<Broker>,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election_type = if version >= 1 {
        request.election_type
    } else {
        PREFERRED
    };
    if election_type != PREFERRED && election_type != UNCLEAN {
        return ElectLeadersResponse::default().with_error_code(ErrorCode::InvalidRequest.code());
    }
    let image = broker.metadata.image();
    // Results by topic name, partition order kept; unknown topics are answered here.
    let mut results: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    let wanted: Option<Vec<(Uuid, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        let mut wanted = Vec::new();
        for topic in topics {
            let name = topic.topic.0.as_str().to_string();
            match image.topic(&name) {
                Some(known) => {
                    results.entry(name).or_default();
                    wanted.extend(topic.partitions.iter().map(|p| (known.id, *p)));
                }
                None => {
                    results.entry(name).or_default().extend(
                        topic
                            .partitions
                            .iter()
                            .map(|p| result(*p, Some(ErrorCode::UnknownTopicOrPartition), None)),
                    );
                }
            }
        }
        wanted
    });
    let all_partitions = wanted.is_none();
    let controller_request = if election_type == PREFERRED {
        ControllerRequest::ElectPreferredLeaders {
            partitions: wanted.clone(),
        }
    } else {
        ControllerRequest::ElectUncleanLeaders {
            partitions: wanted.clone(),
        }
    };
    let elected = match wanted.as_deref() {
        Some([]) => Ok(Vec::new()),
        _ => match broker.submit(controller_request).await {
            Ok(ControllerReply::LeadersElected(elected)) => Ok(elected),
            Ok(other) => Err((
                ErrorCode::UnknownServerError,
                format!("unexpected controller reply {other:?}"),
            )),
            Err(error) => Err((map_controller_error(&error), error.to_string())),
        },
    };
    match elected {
        Ok(elected) => {
            for ((topic_id, partition), outcome) in elected {
                let Some(name) = image.topic_by_id(&topic_id).map(|t| t.name.clone()) else {
                    continue;
                };
                let entry = results.entry(name).or_default();
                match outcome {
                    Ok(()) => entry.push(result(partition, None, None)),
                    // All partitions: those already led as wanted are left out (Kafka).
                    Err(ElectionError::ElectionNotNeeded) if all_partitions => {}
                    Err(error) => entry.push(result(
                        partition,
                        Some(map_election_error(&error)),
                        Some(error.to_string()),
                    )),
                }
            }
        }
        Err((code, message)) => {
            for (topic_id, partition) in wanted.iter().flatten() {
                if let Some(name) = image.topic_by_id(topic_id).map(|t| t.name.clone()) {
                    results.entry(name).or_default().push(result(
                        *partition,
                        Some(code),
                        Some(message.clone()),
                    ));
                }
            }
            if all_partitions {
                return ElectLeadersResponse::default().with_error_code(code.code());
            }
        }
    }
    let replica_election_results = results
        .into_iter()
        .filter(|(_, partitions)| !(all_partitions && partitions.is_empty()))
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(replica_election_results)
}

fn result(partition: i32, error: Option<ErrorCode>, message: Option<String>) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_error_message(message.map(StrBytes::from_string))
}
