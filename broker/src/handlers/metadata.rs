//! Metadata (key 3): brokers, controller, and topic/partition leadership, v0-v13.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_controller::image::{MetadataImage, TopicImage};
use spate_protocol::error::ErrorCode;
use uuid::Uuid;

use crate::Broker;

/// Authorized-operations value meaning "not requested", as Kafka sends it.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Topics Kafka marks internal.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state" || name == "__share_group_state"
}

pub(crate) fn broker_list(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoints.first()?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

/// A topic's partitions as the image has them, except that leaderships of this node that are in
/// doubt ([`Broker::leadership_in_doubt`]) are answered as LEADER_NOT_AVAILABLE, so clients
/// look for the new leaders elsewhere instead of coming back.
fn topic_response(
    broker: &Broker,
    image: &MetadataImage,
    topic: &TopicImage,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .values()
        .map(|p| {
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| image.broker(**r).is_none_or(|b| b.fenced))
                .map(|r| BrokerId(r.0))
                .collect();
            let leader = p.leader.filter(|_| !broker.leadership_in_doubt(image, p));
            let error_code = match leader {
                Some(_) => spate_protocol::error::NONE,
                None => ErrorCode::LeaderNotAvailable.code(),
            };
            MetadataResponsePartition::default()
                .with_error_code(error_code)
                .with_partition_index(p.id.0)
                .with_leader_id(BrokerId(leader.map_or(-1, |l| l.0)))
                .with_leader_epoch(p.leader_epoch.0)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(r.0)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(r.0)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn error_topic(name: Option<&str>, id: Uuid, error: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// Serves Metadata.
pub async fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 has no null: an empty list means every topic. From v1, null means every topic and an
    // empty list none.
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let mut topics = Vec::new();
    if all_topics {
        let image = broker.metadata.image();
        let mut all: Vec<_> = image.topics().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        topics.extend(all.iter().map(|t| topic_response(broker, &image, t)));
    } else {
        let requested = request.topics.unwrap_or_default();
        let auto_create =
            request.allow_auto_topic_creation && broker.settings.auto_create_topics_enable;
        // Create missing topics first, in one controller round, so the answer below sees them.
        if auto_create {
            let image = broker.metadata.image();
            let missing: Vec<String> = requested
                .iter()
                .filter(|t| t.topic_id.is_nil())
                .filter_map(|t| t.name.as_ref())
                .map(|n| n.0.as_str().to_string())
                .filter(|n| image.topic(n).is_none() && !is_internal_topic(n))
                .collect();
            if !missing.is_empty() {
                broker.auto_create_topics(missing).await;
            }
        }
        let image = broker.metadata.image();
        for requested in &requested {
            // A topic named by id (v12+) is looked up by id whatever its name field holds: the
            // Java client sends the name's default, an empty string, as KafkaApis expects.
            let name = requested
                .name
                .as_ref()
                .filter(|_| requested.topic_id.is_nil());
            let response = match name {
                Some(name) => match image.topic(name.0.as_str()) {
                    Some(topic) => topic_response(broker, &image, topic),
                    None => {
                        let error = if auto_create
                            && spate_controller::controller::validate_topic_name(name.0.as_str())
                                .is_err()
                        {
                            ErrorCode::InvalidTopicException
                        } else {
                            ErrorCode::UnknownTopicOrPartition
                        };
                        error_topic(Some(name.0.as_str()), Uuid::nil(), error)
                    }
                },
                None => match image.topic_by_id(&requested.topic_id) {
                    Some(topic) => topic_response(broker, &image, topic),
                    None => error_topic(None, requested.topic_id, ErrorCode::UnknownTopicId),
                },
            };
            topics.push(response);
        }
    }
    let image = broker.metadata.image();
    MetadataResponse::default()
        .with_brokers(broker_list(&image))
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
