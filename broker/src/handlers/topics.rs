//! CreateTopics (19), DeleteTopics (20), CreatePartitions (37), and Metadata's auto-creation.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_controller::controller::{ControllerError, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_protocol::error::ErrorCode;
use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::Broker;

/// The one place controller refusals become Kafka error codes.
pub fn map_controller_error(error: &ControllerError) -> ErrorCode {
    match error {
        ControllerError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
        ControllerError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
        ControllerError::UnknownTopic => ErrorCode::UnknownTopicOrPartition,
        ControllerError::UnknownTopicId => ErrorCode::UnknownTopicId,
        ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ControllerError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        ControllerError::Unavailable(_) => ErrorCode::NotController,
    }
}

fn message(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

impl Broker {
    /// Creates topics with default settings, as Metadata requests with auto-creation do.
    /// Failures are logged and otherwise ignored: the Metadata answer reports the topic as
    /// unknown and the client retries.
    pub async fn auto_create_topics(&self, names: Vec<String>) {
        let topics = names
            .into_iter()
            .map(|name| NewTopic {
                name,
                ..NewTopic::default()
            })
            .collect();
        let request = ControllerRequest::CreateTopics {
            topics,
            validate_only: false,
        };
        match self.submit(request).await {
            Ok(ControllerReply::TopicsCreated(results)) => {
                for result in results {
                    if let Err(error) = result
                        && !matches!(error, ControllerError::TopicAlreadyExists(_))
                    {
                        tracing::info!(%error, "auto-creation of a topic failed");
                    }
                }
            }
            Ok(other) => tracing::error!(?other, "unexpected controller reply"),
            Err(error) => tracing::warn!(%error, "auto-creation failed"),
        }
    }
}

/// Serves CreateTopics.
pub async fn create_topics(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results: Vec<Option<CreatableTopicResult>> = vec![None; request.topics.len()];
    let mut new_topics = Vec::new();
    let mut positions = Vec::new();
    let mut seen = BTreeMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.as_str().to_string()).or_insert(0) += 1;
    }
    for (i, topic) in request.topics.iter().enumerate() {
        let name = topic.name.0.as_str().to_string();
        let fail = |code: ErrorCode, text: String| {
            Some(
                CreatableTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(code.code())
                    .with_error_message(message(text))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            )
        };
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results[i] = fail(
                ErrorCode::InvalidRequest,
                format!("Create topics request from client contains duplicate topic {name}"),
            );
            continue;
        }
        let configs: Vec<(String, String)> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
            })
            .collect();
        if let Err(text) = broker.validate_topic_configs(&configs) {
            results[i] = fail(ErrorCode::InvalidConfig, text);
            continue;
        }
        let assignments = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| NodeId(b.0)).collect(),
                )
            })
            .collect();
        new_topics.push(NewTopic {
            name,
            partitions: (topic.num_partitions != -1).then_some(topic.num_partitions),
            replication_factor: (topic.replication_factor != -1)
                .then_some(topic.replication_factor),
            assignments,
            configs,
        });
        positions.push(i);
    }
    if !new_topics.is_empty() {
        let submitted = broker
            .submit(ControllerRequest::CreateTopics {
                topics: new_topics.clone(),
                validate_only: request.validate_only,
            })
            .await;
        let created = match submitted {
            Ok(ControllerReply::TopicsCreated(created)) => created,
            Ok(_) => {
                vec![Err(ControllerError::Unavailable("unexpected reply".into())); new_topics.len()]
            }
            Err(error) => vec![Err(error); new_topics.len()],
        };
        for ((position, topic), outcome) in positions.iter().zip(&new_topics).zip(created) {
            let name = TopicName(StrBytes::from_string(topic.name.clone()));
            results[*position] = Some(match outcome {
                Ok(created) => {
                    let mut result = CreatableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(if request.validate_only {
                            Uuid::nil()
                        } else {
                            created.topic_id
                        })
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(created.replication_factor);
                    if version >= 5 {
                        result.configs = Some(broker.created_topic_configs(&topic.configs));
                    }
                    result
                }
                Err(error) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(map_controller_error(&error).code())
                    .with_error_message(message(error.to_string()))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            });
        }
    }
    CreateTopicsResponse::default().with_topics(results.into_iter().flatten().collect())
}

/// Serves DeleteTopics (by name before v6, by name or id from v6).
pub async fn delete_topics(
    broker: &Arc<Broker>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let image = broker.metadata.image();
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_string()),
                    t.topic_id,
                )
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    let mut to_delete = Vec::new();
    let mut positions = Vec::new();
    for (name, id) in wanted {
        let found = match &name {
            Some(name) => image.topic(name).cloned(),
            None => image.topic_by_id(&id).cloned(),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        match found {
            Some(topic) => {
                positions.push(responses.len());
                to_delete.push(topic.id);
                responses.push(
                    result
                        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
                        .with_topic_id(topic.id),
                );
            }
            None => {
                let code = if name.is_some() {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::UnknownTopicId
                };
                responses.push(
                    result
                        .with_error_code(code.code())
                        .with_error_message(message(code.to_string())),
                );
            }
        }
    }
    if !to_delete.is_empty() {
        let outcome = broker
            .submit(ControllerRequest::DeleteTopics {
                topic_ids: to_delete.clone(),
            })
            .await;
        let per_topic = match outcome {
            Ok(ControllerReply::TopicsDeleted(results)) => results,
            Ok(_) => {
                vec![Err(ControllerError::Unavailable("unexpected reply".into())); to_delete.len()]
            }
            Err(error) => vec![Err(error); to_delete.len()],
        };
        for (position, result) in positions.into_iter().zip(per_topic) {
            if let Err(error) = result {
                responses[position].error_code = map_controller_error(&error).code();
                responses[position].error_message = message(error.to_string());
            }
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Serves CreatePartitions.
pub async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str().to_string();
        let assignments = topic.assignments.as_ref().map(|list| {
            list.iter()
                .map(|a| a.broker_ids.iter().map(|b| NodeId(b.0)).collect())
                .collect()
        });
        let outcome = broker
            .submit(ControllerRequest::CreatePartitions {
                topic: name,
                new_total: topic.count,
                assignments,
                validate_only: request.validate_only,
            })
            .await;
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if let Err(error) = outcome {
            result.error_code = map_controller_error(&error).code();
            result.error_message = message(error.to_string());
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}
