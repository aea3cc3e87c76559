//! Protocol-level behaviour other Kafka-compatible brokers got wrong, checked over a real socket
//! against an in-process broker. Each test names the API key and version it exercises.

mod support;

use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use support::{Client, TestBroker, api_versions_v0_error, encode_request};

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("spate-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

/// ApiVersions (18) v3: every implemented API is listed, Produce from v0 (KAFKA-18659).
#[tokio::test]
async fn api_versions_v3_lists_every_served_api_with_produce_from_v0() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response: ApiVersionsResponse = client
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .await;
    assert_eq!(response.error_code, 0);
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("Produce is listed");
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    let fetch = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .expect("Fetch is listed");
    assert_eq!((fetch.min_version, fetch.max_version), (4, 18));
}

/// ApiVersions (18) at an unknown future version: answered in the v0 format with header v0,
/// UNSUPPORTED_VERSION and the supported ranges, so the client can retry with a version it knows.
#[tokio::test]
async fn api_versions_newer_than_supported_gets_a_v0_unsupported_version_answer() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    // Encode as v3 (same header version as any newer one), then claim v42.
    let mut frame = encode_request(ApiKey::ApiVersions, 3, 7, &api_versions_request()).to_vec();
    frame[2..4].copy_from_slice(&42i16.to_be_bytes());
    client.write_frame(&frame).await;
    let response = client
        .read_frame()
        .await
        .expect("an answer, not a closed connection");
    let (correlation_id, error) = api_versions_v0_error(response.clone());
    assert_eq!(correlation_id, 7);
    assert_eq!(error, ErrorCode::UnsupportedVersion.code());
    let mut body = response.slice(4..);
    let decoded =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0)
            .expect("v0 body");
    assert!(
        decoded
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Metadata as i16)
    );
    // The connection stays usable.
    let again: ApiVersionsResponse = client
        .send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(again.error_code, 0);
}

/// Metadata (3): v0 treats an empty topic list as "all topics"; v1+ treats null as all and an
/// empty list as none.
#[tokio::test]
async fn metadata_null_and_empty_topic_lists_follow_each_version() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let topic = |name: &'static str| {
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(name))))
    };
    let created: MetadataResponse = client
        .send(
            ApiKey::Metadata,
            4,
            &MetadataRequest::default()
                .with_topics(Some(vec![topic("auto-a"), topic("auto-b")]))
                .with_allow_auto_topic_creation(true),
        )
        .await;
    assert!(created.topics.iter().all(|t| t.error_code == 0));
    assert_eq!(
        created.topics[0].partitions.len(),
        1,
        "num.partitions default"
    );

    let v0_all: MetadataResponse = client
        .send(
            ApiKey::Metadata,
            0,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    assert_eq!(v0_all.topics.len(), 2);
    let v1_none: MetadataResponse = client
        .send(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .await;
    assert!(v1_none.topics.is_empty());
    let v12_all: MetadataResponse = client
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(v12_all.topics.len(), 2);
    assert!(v12_all.topics.iter().all(|t| !t.topic_id.is_nil()));
    assert_eq!(v12_all.brokers.len(), 1);
    assert_eq!(v12_all.topics[0].partitions[0].leader_epoch, 0);
}

/// Metadata (3) v4+ without auto-creation: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn metadata_for_an_unknown_topic_without_auto_creation() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response: MetadataResponse = client
        .send(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("nope")))),
                ]))
                .with_allow_auto_topic_creation(false),
        )
        .await;
    assert_eq!(
        response.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

/// Produce (0) v0-v2 are advertised but, as in Kafka 4, refused: the connection is closed.
#[tokio::test]
async fn produce_v2_closes_the_connection() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    // The v2 body cannot even be encoded by the v3+ schemas; any bytes do, the header decides.
    let mut frame = encode_request(ApiKey::Produce, 3, 1, &ProduceRequest::default()).to_vec();
    frame[2..4].copy_from_slice(&2i16.to_be_bytes());
    client.write_frame(&frame).await;
    assert!(client.is_closed_by_broker().await);
}

/// A frame larger than `socket.request.max.bytes` is refused from its size prefix alone, and
/// other connections keep working.
#[tokio::test]
async fn oversized_frame_closes_only_its_connection() {
    let broker = TestBroker::start().await;
    let mut bad = broker.client().await;
    let mut good = broker.client().await;
    bad.write_raw(&(200u32 * 1024 * 1024).to_be_bytes()).await;
    assert!(bad.is_closed_by_broker().await);
    let response: ApiVersionsResponse = good
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .await;
    assert_eq!(response.error_code, 0);
}

/// An unknown API key and a body that does not decode each close their connection.
#[tokio::test]
async fn unknown_api_key_and_malformed_body_close_the_connection() {
    let broker = TestBroker::start().await;
    let mut unknown = broker.client().await;
    unknown
        .write_frame(&[0x7f, 0x00, 0x00, 0x00, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(unknown.is_closed_by_broker().await);

    let mut malformed = broker.client().await;
    let mut frame = encode_request(ApiKey::Metadata, 1, 1, &MetadataRequest::default()).to_vec();
    // Metadata v1 topics array length: claim a million topics that are not there.
    let len = frame.len();
    frame[len - 4..].copy_from_slice(&1_000_000i32.to_be_bytes());
    malformed.write_frame(&frame).await;
    assert!(malformed.is_closed_by_broker().await);

    let mut fine = Client::connect(broker.addr()).await;
    let response: ApiVersionsResponse = fine
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .await;
    assert_eq!(response.error_code, 0);
}

/// A request claiming ~2^31 array elements in a few bytes is refused without allocating them:
/// the connection closes and the broker keeps serving (Metadata (3) v1 topics array).
#[tokio::test]
async fn huge_array_count_in_a_tiny_request_does_not_take_the_broker_down() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut frame = encode_request(ApiKey::Metadata, 1, 1, &MetadataRequest::default()).to_vec();
    let len = frame.len();
    frame[len - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
    client.write_frame(&frame).await;
    assert!(client.is_closed_by_broker().await);
    let mut fine = broker.client().await;
    let response: ApiVersionsResponse = fine
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .await;
    assert_eq!(response.error_code, 0);
}

/// InitProducerId (22) v4 from many connections at once: every producer gets a distinct id at
/// epoch 0, across a block refill from the controller.
#[tokio::test]
async fn init_producer_id_hands_out_distinct_ids_concurrently() {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let broker = TestBroker::start().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let addr = broker.addr();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut ids = Vec::new();
            for _ in 0..200 {
                let response: InitProducerIdResponse = client
                    .send(
                        ApiKey::InitProducerId,
                        4,
                        &InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(60_000)
                            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                            .with_producer_epoch(-1),
                    )
                    .await;
                assert_eq!(response.error_code, 0);
                assert_eq!(response.producer_epoch, 0);
                ids.push(response.producer_id.0);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "producer ids must be unique");
}
