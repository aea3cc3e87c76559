//! DescribeConfigs (32) and IncrementalAlterConfigs (44) as Kafka answers them: every config with
//! its value, source and synonyms, for topics and brokers; InitProducerId (22) KIP-360 bumps.

mod support;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use support::{Client, TestBroker};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn describe(client: &mut Client, resource_type: i8, name: &str) -> DescribeConfigsResponse {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    client.send(ApiKey::DescribeConfigs, 4, &request).await
}

#[tokio::test]
async fn topic_configs_report_values_sources_and_synonyms() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let created: CreateTopicsResponse = client
        .send(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(s("described")))
                    .with_num_partitions(2)
                    .with_replication_factor(-1)
                    .with_configs(vec![
                        CreatableTopicConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("123456"))),
                    ]),
            ]),
        )
        .await;
    let result = &created.topics[0];
    assert_eq!(result.error_code, 0);
    // CreateTopics v5+ lists the new topic's configs.
    let listed = result.configs.as_ref().expect("configs listed");
    let retention = listed
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("123456"));
    assert_eq!(retention.config_source, SOURCE_TOPIC);

    let response = describe(&mut client, TOPIC, "described").await;
    let configs = &response.results[0].configs;
    assert_eq!(response.results[0].error_code, 0);
    assert!(
        configs.len() >= 30,
        "every topic config is listed, got {}",
        configs.len()
    );
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.config_source, SOURCE_TOPIC);
    let synonyms: Vec<(&str, i8)> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    // Kafka lists broker synonyms from the first one (`log.retention.ms`) onwards; it has no
    // default, so the default `log.retention.hours` is dropped with it (ConfigHelper's
    // dropWhile), leaving only the topic's own value. Observed on Kafka 4.3.1 too.
    assert_eq!(synonyms, [("retention.ms", SOURCE_TOPIC)]);
    let segment = configs
        .iter()
        .find(|c| c.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.config_source, SOURCE_DEFAULT);
    assert_eq!(segment.synonyms[0].name.as_str(), "log.segment.bytes");
    assert!(
        segment
            .documentation
            .as_ref()
            .is_some_and(|d| !d.is_empty())
    );

    let unknown = describe(&mut client, TOPIC, "nope").await;
    assert_eq!(
        unknown.results[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

#[tokio::test]
async fn incremental_alter_then_describe_and_broker_configs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let _: CreateTopicsResponse = client
        .send(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(s("altered")))
                    .with_num_partitions(1)
                    .with_replication_factor(-1),
            ]),
        )
        .await;
    let alter = |name: &str, op: i8, value: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("altered"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s(name))
                        .with_config_operation(op)
                        .with_value(value.map(s)),
                ]),
        ])
    };
    let response: IncrementalAlterConfigsResponse = client
        .send(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter("cleanup.policy", 0, Some("compact")),
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    let response: IncrementalAlterConfigsResponse = client
        .send(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter("retention.ms", 0, Some("soon")),
        )
        .await;
    assert_eq!(
        response.responses[0].error_code,
        ErrorCode::InvalidConfig.code()
    );
    assert!(
        response.responses[0]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("retention.ms"))
    );
    let described = describe(&mut client, TOPIC, "altered").await;
    let policy = described.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(
        (policy.value.as_deref(), policy.config_source),
        (Some("compact"), SOURCE_TOPIC)
    );
    let response: IncrementalAlterConfigsResponse = client
        .send(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter("cleanup.policy", 1, None),
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    let described = describe(&mut client, TOPIC, "altered").await;
    let policy = described.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(
        (policy.value.as_deref(), policy.config_source),
        (Some("delete"), SOURCE_DEFAULT)
    );

    let brokers = describe(&mut client, BROKER, "0").await;
    assert_eq!(brokers.results[0].error_code, 0);
    assert!(
        brokers.results[0]
            .configs
            .iter()
            .any(|c| c.name.as_str() == "num.partitions" && c.value.as_deref() == Some("1"))
    );
    let other = describe(&mut client, BROKER, "7").await;
    assert_eq!(
        other.results[0].error_code,
        ErrorCode::InvalidRequest.code()
    );
}

/// KIP-360: an idempotent producer bumping its epoch sends its current id and epoch; without a
/// transactional id Kafka answers with a fresh producer id at epoch 0, and so does Spate.
#[tokio::test]
async fn init_producer_id_with_an_existing_id_gets_a_fresh_one() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = |id: i64, epoch: i16| {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    };
    let first: InitProducerIdResponse = client
        .send(ApiKey::InitProducerId, 5, &request(-1, -1))
        .await;
    assert_eq!(first.error_code, 0);
    let bumped: InitProducerIdResponse = client
        .send(
            ApiKey::InitProducerId,
            5,
            &request(first.producer_id.0, first.producer_epoch),
        )
        .await;
    assert_eq!(bumped.error_code, 0);
    assert_ne!(bumped.producer_id, first.producer_id);
    assert_eq!(bumped.producer_epoch, 0);
}
