//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44) on topic and broker
//! resources, with Kafka's values, sources, synonyms and messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use spate_config::alter::{
    incremental_alter_broker, incremental_alter_topic, legacy_alter_broker, legacy_alter_topic,
};
use spate_config::describe::{
    describe_broker_configs, describe_cluster_default_configs, describe_topic_configs,
};
use spate_config::{AlterConfigEntry, AlterConfigError, AlterConfigOp, DescribedConfig};
use spate_controller::frontend::ControllerRequest;
use spate_controller::image::MetadataImage;
use spate_controller::records::{CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC};
use spate_protocol::error::ErrorCode;

use crate::Broker;
use crate::handlers::topics::map_controller_error;

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// A resource a request names, resolved against the image.
enum Resource {
    Topic(String),
    /// A broker's own configs (`Some(id)`) or the cluster-wide defaults (`None`).
    Broker(Option<i32>),
    BrokerLogger,
}

fn resolve(
    broker: &Broker,
    image: &MetadataImage,
    resource_type: i8,
    name: &str,
) -> Result<Resource, (ErrorCode, String)> {
    match resource_type {
        RESOURCE_TOPIC => {
            if image.topic(name).is_none() {
                return Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ));
            }
            Ok(Resource::Topic(name.to_string()))
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            if name.is_empty() {
                if resource_type == RESOURCE_BROKER_LOGGER {
                    return Err((
                        ErrorCode::InvalidRequest,
                        "Broker id must not be empty".into(),
                    ));
                }
                return Ok(Resource::Broker(None));
            }
            let id: i32 = name.parse().map_err(|_| {
                (
                    ErrorCode::InvalidRequest,
                    format!("Broker id must be an integer, but it is: {name}"),
                )
            })?;
            if id != broker.node_id.0 {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id
                    ),
                ));
            }
            Ok(if resource_type == RESOURCE_BROKER {
                Resource::Broker(Some(id))
            } else {
                Resource::BrokerLogger
            })
        }
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type: {other}"),
        )),
    }
}

fn to_wire(
    config: DescribedConfig,
    include_synonyms: bool,
    include_docs: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        config
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(s.value.map(StrBytes::from_string))
                    .with_source(s.source.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(config.name))
        .with_value(config.value.map(StrBytes::from_string))
        .with_read_only(config.read_only)
        .with_config_source(config.source.code())
        .with_is_sensitive(config.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(config.config_type.code())
        .with_documentation(include_docs.then(|| StrBytes::from_static_str(config.documentation)))
}

/// Serves DescribeConfigs.
pub fn describe(broker: &Arc<Broker>, request: &DescribeConfigsRequest) -> DescribeConfigsResponse {
    let image = broker.metadata.image();
    let layers = broker.config_layers(&image);
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let described = match resolve(
                broker,
                &image,
                resource.resource_type,
                resource.resource_name.as_str(),
            ) {
                Err((code, message)) => {
                    return base
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(message)));
                }
                Ok(Resource::Topic(name)) => {
                    match describe_topic_configs(&layers, &Broker::topic_overrides(&image, &name)) {
                        Ok(configs) => configs,
                        Err(error) => {
                            return base
                                .with_error_code(ErrorCode::InvalidConfig.code())
                                .with_error_message(Some(StrBytes::from_string(
                                    error.to_string(),
                                )));
                        }
                    }
                }
                Ok(Resource::Broker(Some(_))) => describe_broker_configs(&layers),
                Ok(Resource::Broker(None)) => describe_cluster_default_configs(&layers),
                Ok(Resource::BrokerLogger) => Vec::new(),
            };
            let keys = resource.configuration_keys.as_ref();
            let configs = described
                .into_iter()
                .filter(|c| keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name)))
                .map(|c| to_wire(c, request.include_synonyms, request.include_documentation))
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The changes that turn `current` into `updated`: set what differs, remove what is gone.
fn diff(
    current: &BTreeMap<String, String>,
    updated: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>)> {
    let mut changes: Vec<(String, Option<String>)> = updated
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    changes.extend(
        current
            .keys()
            .filter(|k| !updated.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    changes
}

fn alter_error(error: &AlterConfigError) -> ErrorCode {
    match error {
        AlterConfigError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        AlterConfigError::InvalidConfig(_) => ErrorCode::InvalidConfig,
    }
}

/// Computes a resource's new dynamic configs and commits them (unless `validate_only`).
async fn apply(
    broker: &Arc<Broker>,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    compute: impl FnOnce(
        &Resource,
        &spate_config::ConfigLayers,
        &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, AlterConfigError>,
) -> Result<(), (ErrorCode, String)> {
    let image = broker.metadata.image();
    let resource = resolve(broker, &image, resource_type, name)?;
    let layers = broker.config_layers(&image);
    let (record_type, record_name, current) = match &resource {
        Resource::Topic(topic) => (
            CONFIG_RESOURCE_TOPIC,
            topic.clone(),
            Broker::topic_overrides(&image, topic),
        ),
        Resource::Broker(Some(id)) => (
            CONFIG_RESOURCE_BROKER,
            id.to_string(),
            layers.dynamic_broker.clone(),
        ),
        Resource::Broker(None) => (
            CONFIG_RESOURCE_BROKER,
            String::new(),
            layers.dynamic_default.clone(),
        ),
        Resource::BrokerLogger => {
            return Err((
                ErrorCode::InvalidRequest,
                "Broker loggers cannot be altered".into(),
            ));
        }
    };
    let updated =
        compute(&resource, &layers, &current).map_err(|e| (alter_error(&e), e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let changes = diff(&current, &updated);
    if changes.is_empty() {
        return Ok(());
    }
    broker
        .submit(ControllerRequest::AlterConfigs {
            resource_type: record_type,
            resource_name: record_name,
            changes,
        })
        .await
        .map(|_| ())
        .map_err(|e| (map_controller_error(&e), e.to_string()))
}

/// Serves AlterConfigs: each resource's dynamic configs are replaced by the request's.
pub async fn alter(broker: &Arc<Broker>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let configs: BTreeMap<String, Option<String>> = resource
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.as_str().to_string(),
                    c.value.as_ref().map(|v| v.as_str().to_string()),
                )
            })
            .collect();
        let outcome = apply(
            broker,
            resource.resource_type,
            resource.resource_name.as_str(),
            request.validate_only,
            |target, layers, _current| match target {
                Resource::Topic(_) => legacy_alter_topic(layers, &configs),
                Resource::Broker(id) => legacy_alter_broker(layers, &configs, id.is_some()),
                Resource::BrokerLogger => Ok(BTreeMap::new()),
            },
        )
        .await;
        let mut response = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Err((code, message)) = outcome {
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
        responses.push(response);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Serves IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT per config.
pub async fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let entries: Result<Vec<AlterConfigEntry>, (ErrorCode, String)> = resource
            .configs
            .iter()
            .map(|c| {
                let op = AlterConfigOp::from_code(c.config_operation).ok_or_else(|| {
                    (
                        ErrorCode::InvalidRequest,
                        format!("Unknown alter config operation type {}", c.config_operation),
                    )
                })?;
                Ok(AlterConfigEntry {
                    name: c.name.as_str().to_string(),
                    op,
                    value: c.value.as_ref().map(|v| v.as_str().to_string()),
                })
            })
            .collect();
        let outcome = match entries {
            Err(error) => Err(error),
            Ok(entries) => {
                apply(
                    broker,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    request.validate_only,
                    |target, layers, current| match target {
                        Resource::Topic(_) => incremental_alter_topic(layers, current, &entries),
                        Resource::Broker(id) => {
                            incremental_alter_broker(layers, &entries, id.is_some())
                        }
                        Resource::BrokerLogger => Ok(BTreeMap::new()),
                    },
                )
                .await
            }
        };
        let mut response =
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
        if let Err((code, message)) = outcome {
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
        responses.push(response);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
