//! Admin and log APIs of a single-node broker over a real socket, as Apache Kafka answers them:
//! Produce with acks=0 (0), ListOffsets (2), DeleteTopics (20), DeleteRecords (21),
//! OffsetForLeaderEpoch (23), DescribeLogDirs (35), DescribeCluster (60), DescribeProducers (61)
//! and CreateTopics (19) with a manual replica assignment.

mod support;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::PartitionResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeProducersRequest, DescribeProducersResponse, FetchRequest,
    FetchResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use spate_protocol::error::ErrorCode;
use spate_protocol::records::{Compression, RecordBatch};
use support::{Client, TestBroker, encode_request};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// ListOffsets special timestamps (Kafka's `ListOffsetsRequest`).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// The replica id of an ordinary consumer.
const CONSUMER: i32 = -1;
/// DeleteRecords offset meaning "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;
/// The test broker's node id.
const BROKER_ID: i32 = 0;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn creatable(name: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

async fn create_topics(
    client: &mut Client,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Vec<CreatableTopicResult> {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    let response: CreateTopicsResponse = client.send(ApiKey::CreateTopics, 7, &request).await;
    response.topics
}

/// Creates a topic and returns its id.
async fn create_topic(client: &mut Client, topic: CreatableTopic) -> Uuid {
    let name = topic.name.0.to_string();
    let results = create_topics(client, vec![topic], false).await;
    assert_eq!(
        results[0].error_code, 0,
        "creating {name}: {:?}",
        results[0].error_message
    );
    results[0].topic_id
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One batch of keyed records, all with `timestamp`, optionally from an idempotent producer
/// `(id, epoch, base sequence)`.
fn batch_at(timestamp: i64, keys: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    support::keyed_batch(timestamp, keys, producer, Compression::None)
}

fn batch(keys: &[&str]) -> Bytes {
    batch_at(now_ms(), keys, None)
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Produces with acks=all and returns the partition's answer.
async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let request = produce_request(topic, partition, records, -1);
    let response: ProduceResponse = client.send(ApiKey::Produce, 9, &request).await;
    response.responses[0].partition_responses[0].clone()
}

async fn produce_ok(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> i64 {
    let answer = produce(client, topic, partition, records).await;
    assert_eq!(
        answer.error_code, 0,
        "produce to {topic}-{partition}: {:?}",
        answer.error_message
    );
    answer.base_offset
}

fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(CONSUMER))
        .with_isolation_level(0)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ])
}

/// ListOffsets v7 (the first with MAX_TIMESTAMP) for one partition.
async fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let request = list_offsets_request(topic, partition, timestamp);
    let response: ListOffsetsResponse = client.send(ApiKey::ListOffsets, 7, &request).await;
    response.topics[0].partitions[0].clone()
}

/// Fetch v11 of one partition from `offset`.
async fn fetch(client: &mut Client, topic: &str, partition: i32, offset: i64) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(CONSUMER))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = client.send(ApiKey::Fetch, 11, &request).await;
    response.responses[0].partitions[0].clone()
}

/// The keys of the fetched records at or after `from`, in order.
fn keys_from(records: Option<Bytes>, from: i64) -> Vec<String> {
    let mut records = records.unwrap_or_default();
    let mut keys = Vec::new();
    while !records.is_empty() {
        let batch = RecordBatch::split_first(&mut records).expect("whole batches");
        for record in batch.records(1 << 26).expect("records") {
            let record = record.expect("record");
            if record.offset(batch.base_offset()).0 >= from {
                keys.push(String::from_utf8(record.key.expect("keyed").to_vec()).expect("utf8"));
            }
        }
    }
    keys
}

/// Metadata v12 without auto-creation: every topic with `None`, else the named ones.
async fn metadata(client: &mut Client, topics: Option<&[&str]>) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    client.send(ApiKey::Metadata, 12, &request).await
}

fn find_topic<'a>(response: &'a MetadataResponse, name: &str) -> Option<&'a MetadataResponseTopic> {
    response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
}

/// The current leader epoch of partition 0 of `topic`, from Metadata.
async fn leader_epoch(client: &mut Client, topic: &str) -> i32 {
    let response = metadata(client, Some(&[topic])).await;
    let topic = find_topic(&response, topic).expect("topic in metadata");
    assert_eq!(topic.error_code, 0);
    topic.partitions[0].leader_epoch
}

/// Writes one request frame, ignoring a connection the broker already closed.
async fn write_frame_lenient(client: &mut Client, frame: &[u8]) {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_u32(frame.len() as u32);
    out.extend_from_slice(frame);
    let _ = client.stream.write_all(&out).await;
}

/// Produce (0) with acks=0: Kafka sends no response at all (`sendNoOpResponseExemptThrottle`),
/// and it still appends. Requests on one connection are handled in order, so a ListOffsets sent
/// after two acks=0 produces is answered first and already sees their records.
#[tokio::test]
async fn produce_with_acks_zero_gets_no_response_but_appends() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("fire-and-forget", 1)).await;

    let first = produce_request("fire-and-forget", 0, batch(&["a", "b"]), 0);
    let second = produce_request("fire-and-forget", 0, batch(&["c"]), 0);
    let latest = list_offsets_request("fire-and-forget", 0, LATEST);
    client
        .write_frame(&encode_request(ApiKey::Produce, 9, 9001, &first))
        .await;
    client
        .write_frame(&encode_request(ApiKey::Produce, 9, 9002, &second))
        .await;
    client
        .write_frame(&encode_request(ApiKey::ListOffsets, 7, 9003, &latest))
        .await;

    let mut frame = client.read_frame().await.expect("a response frame");
    let header = ResponseHeader::decode(&mut frame, ApiKey::ListOffsets.response_header_version(7))
        .expect("response header");
    assert_eq!(
        header.correlation_id, 9003,
        "the first response on the connection must answer the ListOffsets: acks=0 produces get none"
    );
    let response = ListOffsetsResponse::decode(&mut frame, 7).expect("ListOffsets response");
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(
        partition.offset, 3,
        "both acks=0 batches were appended before the ListOffsets was handled"
    );

    let fetched = fetch(&mut client, "fire-and-forget", 0, 0).await;
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.high_watermark, 3);
    assert_eq!(keys_from(fetched.records, 0), ["a", "b", "c"]);
}

/// Produce (0) with acks=0 that fails: the producer expects no response, so Kafka closes the
/// connection instead (`requestChannel.closeConnection`), which makes the client refresh its
/// metadata. Produce never auto-creates topics, so an unknown topic is such a failure.
#[tokio::test]
async fn produce_with_acks_zero_that_fails_closes_the_connection() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let request = produce_request("no-such-topic", 0, batch(&["x"]), 0);
    client
        .write_frame(&encode_request(ApiKey::Produce, 9, 1, &request))
        .await;
    // A follow-up request: answered only if the connection was (wrongly) kept open.
    let follow_up = encode_request(ApiKey::ApiVersions, 0, 2, &ApiVersionsRequest::default());
    write_frame_lenient(&mut client, &follow_up).await;
    assert!(
        client.read_frame().await.is_none(),
        "an acks=0 produce that fails must close the connection"
    );
}

/// DeleteTopics (20) v6, by name and by topic id: deleted topics leave Metadata; an unknown name
/// is UNKNOWN_TOPIC_OR_PARTITION and an unknown id UNKNOWN_TOPIC_ID. Produce never creates a
/// topic (whatever `auto.create.topics.enable` says, only Metadata auto-creates), so producing to
/// a deleted topic is UNKNOWN_TOPIC_OR_PARTITION and leaves it deleted; a Metadata request that
/// allows auto-creation then creates it afresh, with a new topic id.
#[tokio::test]
async fn delete_topics_by_name_and_by_id() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let by_name_id = create_topic(&mut client, creatable("doomed-by-name", 1)).await;
    let by_id = create_topic(&mut client, creatable("doomed-by-id", 2)).await;
    create_topic(&mut client, creatable("survivor", 1)).await;
    produce_ok(&mut client, "doomed-by-name", 0, batch(&["a"])).await;
    produce_ok(&mut client, "doomed-by-id", 1, batch(&["b"])).await;
    let unknown_id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    let request = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("doomed-by-name"))),
            DeleteTopicState::default().with_topic_id(by_id),
            DeleteTopicState::default().with_name(Some(topic_name("never-existed"))),
            DeleteTopicState::default().with_topic_id(unknown_id),
        ])
        .with_timeout_ms(10_000);
    let response: DeleteTopicsResponse = client.send(ApiKey::DeleteTopics, 6, &request).await;
    assert_eq!(response.responses.len(), 4, "{:?}", response.responses);
    let named = |name: &str| {
        response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .unwrap_or_else(|| panic!("a result for {name}: {:?}", response.responses))
    };
    let with_id = |id: Uuid| {
        response
            .responses
            .iter()
            .find(|r| r.topic_id == id)
            .unwrap_or_else(|| panic!("a result for {id}: {:?}", response.responses))
    };
    assert_eq!(named("doomed-by-name").error_code, 0);
    assert_eq!(with_id(by_id).error_code, 0, "deletion by topic id");
    assert_eq!(
        named("never-existed").error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        with_id(unknown_id).error_code,
        ErrorCode::UnknownTopicId.code()
    );
    assert!(
        with_id(unknown_id).name.is_none(),
        "an unknown id has no name to report"
    );

    let all = metadata(&mut client, None).await;
    assert!(find_topic(&all, "doomed-by-name").is_none());
    assert!(find_topic(&all, "doomed-by-id").is_none());
    assert!(find_topic(&all, "survivor").is_some());
    let named_request = metadata(&mut client, Some(&["doomed-by-name"])).await;
    assert_eq!(
        find_topic(&named_request, "doomed-by-name")
            .expect("the topic asked for is answered")
            .error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    // Deleting it again: it is unknown now.
    let again = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("doomed-by-name"))),
        ])
        .with_timeout_ms(10_000);
    let response: DeleteTopicsResponse = client.send(ApiKey::DeleteTopics, 6, &again).await;
    assert_eq!(
        response.responses[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let answer = produce(&mut client, "doomed-by-name", 0, batch(&["late"])).await;
    assert_eq!(
        (answer.error_code, answer.base_offset),
        (ErrorCode::UnknownTopicOrPartition.code(), -1),
        "Produce does not recreate a deleted topic"
    );
    let after_produce = metadata(&mut client, None).await;
    assert!(
        find_topic(&after_produce, "doomed-by-name").is_none(),
        "the produce left the topic deleted"
    );

    // Metadata with auto-creation allowed (and auto.create.topics.enable at its default, true)
    // creates it again: a new topic, with a new id and an empty log.
    let auto = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("doomed-by-name"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let _: MetadataResponse = client.send(ApiKey::Metadata, 12, &auto).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let recreated_id = loop {
        let response = metadata(&mut client, Some(&["doomed-by-name"])).await;
        let topic = find_topic(&response, "doomed-by-name").expect("answered");
        if topic.error_code == 0 && topic.partitions.first().is_some_and(|p| p.leader_id.0 >= 0) {
            break topic.topic_id;
        }
        assert!(Instant::now() < deadline, "auto-creation did not complete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(recreated_id, by_name_id, "a recreated topic has a new id");
    let latest = list_offset(&mut client, "doomed-by-name", 0, LATEST).await;
    assert_eq!(
        (latest.error_code, latest.offset),
        (0, 0),
        "the recreated topic starts empty"
    );
}

async fn delete_records(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
        .with_timeout_ms(10_000);
    let response: DeleteRecordsResponse = client.send(ApiKey::DeleteRecords, 2, &request).await;
    response.topics[0].partitions[0].clone()
}

/// DeleteRecords (21) v2: the log start offset moves to the requested offset (even inside a
/// batch) and is answered as the low watermark; earlier offsets are then out of range for Fetch
/// and ListOffsets EARLIEST returns the new start. An offset below the current start changes
/// nothing, one past the high watermark is OFFSET_OUT_OF_RANGE (low watermark -1), and -1 means
/// "up to the high watermark".
#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("trimmed", 1)).await;
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    produce_ok(&mut client, "trimmed", 0, batch(&keys[..6])).await;
    produce_ok(&mut client, "trimmed", 0, batch(&keys[6..])).await;

    let result = delete_records(&mut client, "trimmed", 0, 4).await;
    assert_eq!(
        (result.error_code, result.low_watermark),
        (0, 4),
        "low watermark after deleting before offset 4"
    );
    let earliest = list_offset(&mut client, "trimmed", 0, EARLIEST).await;
    assert_eq!((earliest.error_code, earliest.offset), (0, 4));
    let latest = list_offset(&mut client, "trimmed", 0, LATEST).await;
    assert_eq!((latest.error_code, latest.offset), (0, 10));

    let below = fetch(&mut client, "trimmed", 0, 0).await;
    assert_eq!(
        below.error_code,
        ErrorCode::OffsetOutOfRange.code(),
        "fetching below the log start offset"
    );
    let from_start = fetch(&mut client, "trimmed", 0, 4).await;
    assert_eq!(from_start.error_code, 0);
    assert_eq!(from_start.log_start_offset, 4);
    assert_eq!(
        keys_from(from_start.records, 4),
        ["k4", "k5", "k6", "k7", "k8", "k9"]
    );

    let behind = delete_records(&mut client, "trimmed", 0, 2).await;
    assert_eq!(
        (behind.error_code, behind.low_watermark),
        (0, 4),
        "an offset below the log start offset deletes nothing"
    );

    let past = delete_records(&mut client, "trimmed", 0, 11).await;
    assert_eq!(
        (past.error_code, past.low_watermark),
        (ErrorCode::OffsetOutOfRange.code(), -1),
        "deleting past the high watermark"
    );

    let all = delete_records(&mut client, "trimmed", 0, HIGH_WATERMARK).await;
    assert_eq!(
        (all.error_code, all.low_watermark),
        (0, 10),
        "-1 deletes up to the high watermark"
    );
    let earliest = list_offset(&mut client, "trimmed", 0, EARLIEST).await;
    assert_eq!((earliest.error_code, earliest.offset), (0, 10));
    let at_end = fetch(&mut client, "trimmed", 0, 10).await;
    assert_eq!(at_end.error_code, 0, "the log end is still fetchable");
    assert!(keys_from(at_end.records, 10).is_empty());

    let unknown = delete_records(&mut client, "trimmed", 3, 0).await;
    assert_eq!(
        unknown.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

/// DeleteRecords (21) on a topic whose cleanup.policy does not include `delete`: Kafka's
/// `Partition.deleteRecordsOnLeader` refuses it with POLICY_VIOLATION and keeps the records.
#[tokio::test]
async fn delete_records_on_a_compacted_topic_is_a_policy_violation() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(
        &mut client,
        creatable("compacted", 1).with_configs(vec![
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("compact"))),
        ]),
    )
    .await;
    produce_ok(&mut client, "compacted", 0, batch(&["a", "b", "c"])).await;

    let result = delete_records(&mut client, "compacted", 0, 2).await;
    assert_eq!(
        (result.error_code, result.low_watermark),
        (ErrorCode::PolicyViolation.code(), -1),
        "records of a compacted topic cannot be deleted"
    );
    let earliest = list_offset(&mut client, "compacted", 0, EARLIEST).await;
    assert_eq!(earliest.offset, 0, "nothing was deleted");
}

/// ListOffsets (2) v7: MAX_TIMESTAMP (-3) finds the record with the largest timestamp (not the
/// last one), with that timestamp and its batch's leader epoch; an empty partition answers
/// offset -1 and timestamp -1. LATEST is the high watermark, EARLIEST the log start, and a
/// timestamp finds the first record at or after it (or -1 when none is).
#[tokio::test]
async fn list_offsets_max_timestamp_latest_and_by_timestamp() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("stamped", 1)).await;
    create_topic(&mut client, creatable("stamped-empty", 1)).await;
    for (timestamp, key) in [(100, "t100"), (300, "t300"), (200, "t200")] {
        produce_ok(&mut client, "stamped", 0, batch_at(timestamp, &[key], None)).await;
    }
    let epoch = leader_epoch(&mut client, "stamped").await;

    let max = list_offset(&mut client, "stamped", 0, MAX_TIMESTAMP).await;
    assert_eq!(max.error_code, 0);
    assert_eq!(
        (max.offset, max.timestamp),
        (1, 300),
        "the record with the largest timestamp"
    );
    assert_eq!(max.leader_epoch, epoch);

    let empty = list_offset(&mut client, "stamped-empty", 0, MAX_TIMESTAMP).await;
    assert_eq!(
        (empty.error_code, empty.offset, empty.timestamp),
        (0, -1, -1),
        "MAX_TIMESTAMP of an empty partition"
    );

    let latest = list_offset(&mut client, "stamped", 0, LATEST).await;
    assert_eq!(
        (latest.error_code, latest.offset, latest.timestamp),
        (0, 3, -1)
    );
    assert_eq!(latest.leader_epoch, epoch);
    let earliest = list_offset(&mut client, "stamped", 0, EARLIEST).await;
    assert_eq!(
        (earliest.error_code, earliest.offset, earliest.timestamp),
        (0, 0, -1)
    );
    let empty_latest = list_offset(&mut client, "stamped-empty", 0, LATEST).await;
    assert_eq!((empty_latest.error_code, empty_latest.offset), (0, 0));

    for (target, offset, timestamp) in [
        (50, 0, 100),
        (100, 0, 100),
        (150, 1, 300),
        (200, 1, 300),
        (300, 1, 300),
        (301, -1, -1),
    ] {
        let found = list_offset(&mut client, "stamped", 0, target).await;
        assert_eq!(
            (found.error_code, found.offset, found.timestamp),
            (0, offset, timestamp),
            "the first record with a timestamp at or after {target}"
        );
    }
    let none = list_offset(&mut client, "stamped-empty", 0, 100).await;
    assert_eq!((none.error_code, none.offset, none.timestamp), (0, -1, -1));
}

async fn offset_for_leader_epoch(
    client: &mut Client,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(CONSUMER))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current_leader_epoch)
                        .with_leader_epoch(leader_epoch),
                ]),
        ]);
    let response: OffsetForLeaderEpochResponse =
        client.send(ApiKey::OffsetForLeaderEpoch, 4, &request).await;
    response.topics[0].partitions[0].clone()
}

/// OffsetForLeaderEpoch (23) v4 from a consumer (replica id -1), after a restart gave the
/// partition a new leader epoch: the current epoch ends at the log end offset; an older epoch
/// ends where the next epoch with records starts (answered with the largest epoch at or below
/// it); an epoch above every known one is UNDEFINED (epoch -1, end offset -1). A
/// current_leader_epoch newer than the broker's is UNKNOWN_LEADER_EPOCH (75), an older one
/// FENCED_LEADER_EPOCH (74).
#[tokio::test]
async fn offset_for_leader_epoch_from_a_consumer() {
    let mut broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("epochs", 1)).await;
    let first_epoch = leader_epoch(&mut client, "epochs").await;
    produce_ok(&mut client, "epochs", 0, batch(&["a", "b", "c"])).await;

    let current = offset_for_leader_epoch(&mut client, "epochs", first_epoch, first_epoch).await;
    assert_eq!(
        (current.error_code, current.leader_epoch, current.end_offset),
        (0, first_epoch, 3),
        "the current epoch ends at the log end offset"
    );

    drop(client);
    broker.restart().await;
    let mut client = broker.client().await;
    let epoch = leader_epoch(&mut client, "epochs").await;
    assert!(
        epoch > first_epoch,
        "leadership was lost and regained over the restart, so the epoch moved on (still {epoch})"
    );
    produce_ok(&mut client, "epochs", 0, batch(&["d", "e"])).await;

    let current = offset_for_leader_epoch(&mut client, "epochs", epoch, epoch).await;
    assert_eq!(
        (current.error_code, current.leader_epoch, current.end_offset),
        (0, epoch, 5),
        "the current epoch ends at the log end offset"
    );
    let unchecked = offset_for_leader_epoch(&mut client, "epochs", -1, epoch).await;
    assert_eq!(
        (unchecked.error_code, unchecked.end_offset),
        (0, 5),
        "current_leader_epoch -1 skips the fencing check"
    );
    for older in first_epoch..epoch {
        let ended = offset_for_leader_epoch(&mut client, "epochs", epoch, older).await;
        assert_eq!(
            (ended.error_code, ended.leader_epoch, ended.end_offset),
            (0, first_epoch, 3),
            "epoch {older} ends where the next epoch with records starts"
        );
    }
    let future = offset_for_leader_epoch(&mut client, "epochs", epoch, epoch + 1).await;
    assert_eq!(
        (future.error_code, future.leader_epoch, future.end_offset),
        (0, -1, -1),
        "an epoch larger than any known one is undefined"
    );

    let newer = offset_for_leader_epoch(&mut client, "epochs", epoch + 1, epoch).await;
    assert_eq!(
        (newer.error_code, newer.end_offset),
        (ErrorCode::UnknownLeaderEpoch.code(), -1),
        "a current_leader_epoch newer than the broker's"
    );
    let stale = offset_for_leader_epoch(&mut client, "epochs", epoch - 1, epoch).await;
    assert_eq!(
        (stale.error_code, stale.end_offset),
        (ErrorCode::FencedLeaderEpoch.code(), -1),
        "a current_leader_epoch older than the broker's"
    );

    let unknown = offset_for_leader_epoch(&mut client, "no-such-topic", -1, 0).await;
    assert_eq!(
        unknown.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

/// DescribeCluster (60) v0 and v1 on a broker: the cluster id, the one broker with the host and
/// port of the listener the client connected to, and as controller id a live broker (KRaft
/// brokers hide the controllers from clients), here the only one.
#[tokio::test]
async fn describe_cluster_lists_the_broker() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let addr = broker.addr();
    let metadata_view = metadata(&mut client, None).await;

    for version in [0, 1] {
        let request = DescribeClusterRequest::default().with_endpoint_type(1);
        let response: DescribeClusterResponse = client
            .send(ApiKey::DescribeCluster, version, &request)
            .await;
        assert_eq!(
            response.error_code, 0,
            "v{version}: {:?}",
            response.error_message
        );
        assert!(!response.cluster_id.is_empty(), "v{version}: a cluster id");
        assert_eq!(
            Some(response.cluster_id.as_str()),
            metadata_view.cluster_id.as_deref(),
            "v{version}: the cluster id Metadata reports"
        );
        assert_eq!(response.controller_id.0, BROKER_ID, "v{version}");
        assert_eq!(
            response.brokers.len(),
            1,
            "v{version}: {:?}",
            response.brokers
        );
        let only = &response.brokers[0];
        assert_eq!(only.broker_id.0, BROKER_ID);
        assert_eq!(only.host.as_str(), addr.ip().to_string(), "v{version}");
        assert_eq!(only.port, i32::from(addr.port()), "v{version}");
        assert_eq!(only.rack, None);
        if version >= 1 {
            assert_eq!(response.endpoint_type, 1, "v1 answers for broker endpoints");
        }
        assert_eq!(
            response.cluster_authorized_operations,
            i32::MIN,
            "authorized operations were not asked for"
        );
    }
}

/// DescribeCluster (60) v1 asking a broker for controller endpoints (endpoint_type 2):
/// MISMATCHED_ENDPOINT_TYPE (114); an endpoint type Kafka does not know (here 9):
/// UNSUPPORTED_ENDPOINT_TYPE (115). Both as in Kafka's `computeDescribeClusterResponse`.
#[tokio::test]
async fn describe_cluster_with_another_endpoint_type_is_refused() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
    let response: DescribeClusterResponse =
        client.send(ApiKey::DescribeCluster, 1, &controllers).await;
    assert_eq!(
        response.error_code,
        ErrorCode::MismatchedEndpointType.code(),
        "controller endpoints asked of a broker: {:?}",
        response.error_message
    );
    let unknown = DescribeClusterRequest::default().with_endpoint_type(9);
    let response: DescribeClusterResponse = client.send(ApiKey::DescribeCluster, 1, &unknown).await;
    assert_eq!(
        response.error_code,
        ErrorCode::UnsupportedEndpointType.code(),
        "an unknown endpoint type: {:?}",
        response.error_message
    );
}

async fn describe_log_dirs(
    client: &mut Client,
    topics: Option<Vec<DescribableLogDirTopic>>,
) -> DescribeLogDirsResponse {
    let request = DescribeLogDirsRequest::default().with_topics(topics);
    client.send(ApiKey::DescribeLogDirs, 4, &request).await
}

/// DescribeLogDirs (35) v4: the broker's one log dir, without error, with its disk's total and
/// usable bytes and the partitions it holds (their size in bytes). `topics: null` asks for
/// every partition; a list asks for exactly those, and topics left with no partition are
/// omitted.
#[tokio::test]
async fn describe_log_dirs_lists_the_data_dir_and_partitions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("dirs-a", 2)).await;
    create_topic(&mut client, creatable("dirs-b", 1)).await;
    produce_ok(&mut client, "dirs-a", 0, batch(&["a", "b"])).await;
    produce_ok(&mut client, "dirs-b", 0, batch(&["c"])).await;
    let data_dir = std::fs::canonicalize(broker.dir.path()).expect("data dir exists");

    let all = describe_log_dirs(&mut client, None).await;
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one log dir");
    let dir = &all.results[0];
    assert_eq!(dir.error_code, 0);
    assert_eq!(
        std::fs::canonicalize(dir.log_dir.as_str()).expect("the log dir exists"),
        data_dir
    );
    assert!(dir.total_bytes > 0, "total bytes of the disk");
    assert!(
        dir.usable_bytes >= 0 && dir.usable_bytes <= dir.total_bytes,
        "usable bytes of the disk"
    );
    let sizes = |topics: &[DescribeLogDirsTopic], name: &str| {
        let mut sizes: Vec<(i32, i64)> = topics
            .iter()
            .filter(|t| t.name.0.as_str() == name)
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        sizes.sort();
        sizes
    };
    let a = sizes(&dir.topics, "dirs-a");
    assert_eq!(a.len(), 2, "both partitions of dirs-a: {a:?}");
    assert!(a[0].1 > 0, "partition 0 holds a batch: {a:?}");
    assert_eq!(a[1].1, 0, "partition 1 is empty: {a:?}");
    let b = sizes(&dir.topics, "dirs-b");
    assert_eq!(b.len(), 1);
    assert!(b[0].1 > 0);
    for topic in &dir.topics {
        for partition in &topic.partitions {
            assert_eq!(partition.offset_lag, 0, "a leader has no lag");
            assert!(!partition.is_future_key);
        }
    }

    let some = describe_log_dirs(
        &mut client,
        Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name("dirs-a"))
                .with_partitions(vec![0]),
        ]),
    )
    .await;
    assert_eq!(some.error_code, 0);
    let dir = &some.results[0];
    assert_eq!(dir.error_code, 0);
    assert_eq!(dir.topics.len(), 1, "only dirs-a: {:?}", dir.topics);
    assert_eq!(sizes(&dir.topics, "dirs-a"), a[..1]);

    let none = describe_log_dirs(&mut client, Some(Vec::new())).await;
    assert_eq!(none.results.len(), 1, "the log dir is still described");
    assert!(
        none.results[0].topics.is_empty(),
        "an empty topic list asks for no partition: {:?}",
        none.results[0].topics
    );
}

async fn describe_producers(
    client: &mut Client,
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<PartitionResponse> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions),
    ]);
    let response: DescribeProducersResponse =
        client.send(ApiKey::DescribeProducers, 0, &request).await;
    response.topics[0].partitions.clone()
}

/// DescribeProducers (61) v0: after an idempotent produce, the partition lists the producer
/// with its epoch, the last sequence it wrote and that batch's max timestamp; not being
/// transactional, its coordinator epoch and transaction start offset are -1. Batches without a
/// producer id leave no producer state. A partition the broker does not know is
/// UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn describe_producers_after_an_idempotent_produce() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("idempotent", 1)).await;

    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let producer: InitProducerIdResponse = client.send(ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(producer.error_code, 0);
    let (id, epoch) = (producer.producer_id.0, producer.producer_epoch);
    assert!(id >= 0, "a producer id was allocated");

    let timestamp = now_ms();
    produce_ok(&mut client, "idempotent", 0, batch(&["plain"])).await;
    let base = produce_ok(
        &mut client,
        "idempotent",
        0,
        batch_at(timestamp, &["p0", "p1", "p2"], Some((id, epoch, 0))),
    )
    .await;
    assert_eq!(base, 1);

    let partitions = describe_producers(&mut client, "idempotent", vec![0]).await;
    assert_eq!(partitions.len(), 1);
    let partition = &partitions[0];
    assert_eq!(partition.partition_index, 0);
    assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    assert_eq!(
        partition.active_producers.len(),
        1,
        "only the idempotent producer: {:?}",
        partition.active_producers
    );
    let state = &partition.active_producers[0];
    assert_eq!(state.producer_id.0, id);
    assert_eq!(state.producer_epoch, i32::from(epoch));
    assert_eq!(state.last_sequence, 2, "three records from sequence 0");
    assert_eq!(state.last_timestamp, timestamp);
    assert_eq!(state.coordinator_epoch, -1);
    assert_eq!(state.current_txn_start_offset, -1);

    let missing = describe_producers(&mut client, "idempotent", vec![5]).await;
    assert_eq!(missing[0].partition_index, 5);
    assert_eq!(
        missing[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let unknown = describe_producers(&mut client, "no-such-topic", vec![0]).await;
    assert_eq!(
        unknown[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

fn assigned(name: &str, brokers: &[i32]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![
            CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect()),
        ])
}

/// CreateTopics (19) v7 with a manual replica assignment (numPartitions and replicationFactor
/// both -1): the topic gets exactly those replicas, and the first leads. An assignment naming a
/// broker that is not registered is INVALID_REPLICA_ASSIGNMENT (39); an assignment together
/// with a partition count is INVALID_REQUEST (42); validate_only checks and creates nothing.
#[tokio::test]
async fn create_topics_with_a_manual_assignment() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;

    let created = create_topics(&mut client, vec![assigned("placed", &[BROKER_ID])], false).await;
    assert_eq!(created[0].error_code, 0, "{:?}", created[0].error_message);
    assert_eq!(created[0].num_partitions, 1);
    assert_eq!(created[0].replication_factor, 1);
    let response = metadata(&mut client, Some(&["placed"])).await;
    let topic = find_topic(&response, "placed").expect("answered");
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.topic_id, created[0].topic_id);
    assert_eq!(topic.partitions.len(), 1);
    let partition = &topic.partitions[0];
    assert_eq!(partition.leader_id.0, BROKER_ID);
    assert_eq!(partition.replica_nodes, [BrokerId(BROKER_ID)]);
    assert_eq!(partition.isr_nodes, [BrokerId(BROKER_ID)]);
    produce_ok(&mut client, "placed", 0, batch(&["works"])).await;

    let refused = create_topics(&mut client, vec![assigned("misplaced", &[7])], false).await;
    assert_eq!(
        refused[0].error_code,
        ErrorCode::InvalidReplicaAssignment.code(),
        "broker 7 is not registered: {:?}",
        refused[0].error_message
    );
    let both = create_topics(
        &mut client,
        vec![assigned("over-specified", &[BROKER_ID]).with_num_partitions(1)],
        false,
    )
    .await;
    assert_eq!(
        both[0].error_code,
        ErrorCode::InvalidRequest.code(),
        "an assignment and a partition count: {:?}",
        both[0].error_message
    );

    let validated = create_topics(&mut client, vec![assigned("dry-run", &[BROKER_ID])], true).await;
    assert_eq!(
        validated[0].error_code, 0,
        "{:?}",
        validated[0].error_message
    );
    assert_eq!(validated[0].num_partitions, 1);
    let invalid = create_topics(&mut client, vec![assigned("dry-run-bad", &[7])], true).await;
    assert_eq!(
        invalid[0].error_code,
        ErrorCode::InvalidReplicaAssignment.code(),
        "validate_only reports the same errors"
    );

    let all = metadata(&mut client, None).await;
    for absent in ["misplaced", "over-specified", "dry-run", "dry-run-bad"] {
        assert!(
            find_topic(&all, absent).is_none(),
            "{absent} must not have been created"
        );
    }
    assert!(find_topic(&all, "placed").is_some());
}

/// ListOffsets v11 (KIP-1023) adds EARLIEST_PENDING_UPLOAD (-6): without remote storage Kafka
/// answers offset -1, timestamp -1 and leader epoch -1, without error; the other lookups answer
/// as in earlier versions.
#[tokio::test]
async fn list_offsets_v11_earliest_pending_upload_is_unknown_without_remote_storage() {
    const EARLIEST_PENDING_UPLOAD: i64 = -6;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("pending-upload", 1)).await;
    produce_ok(
        &mut client,
        "pending-upload",
        0,
        batch_at(100, &["a", "b"], None),
    )
    .await;

    let ask = |timestamp| list_offsets_request("pending-upload", 0, timestamp);
    let pending: ListOffsetsResponse = client
        .send(ApiKey::ListOffsets, 11, &ask(EARLIEST_PENDING_UPLOAD))
        .await;
    let p = &pending.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.offset, p.timestamp, p.leader_epoch),
        (0, -1, -1, -1),
        "EARLIEST_PENDING_UPLOAD without remote storage"
    );
    let latest: ListOffsetsResponse = client.send(ApiKey::ListOffsets, 11, &ask(LATEST)).await;
    let p = &latest.topics[0].partitions[0];
    assert_eq!((p.error_code, p.offset), (0, 2), "LATEST at v11");
}

/// DescribeLogDirs v5 adds IsCordoned to each log dir; Spate's one data dir is never cordoned.
#[tokio::test]
async fn describe_log_dirs_v5_reports_the_dir_not_cordoned() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, creatable("cordon", 1)).await;
    let request = DescribeLogDirsRequest::default().with_topics(None);
    let response: DescribeLogDirsResponse = client.send(ApiKey::DescribeLogDirs, 5, &request).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.results.len(), 1, "{:?}", response.results);
    let dir = &response.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(!dir.is_cordoned);
    assert!(dir.total_bytes > 0 && dir.usable_bytes >= 0, "{dir:?}");
    assert!(
        dir.topics.iter().any(|t| t.name.0.as_str() == "cordon"),
        "{:?}",
        dir.topics
    );
}
