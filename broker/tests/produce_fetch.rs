//! Produce (0), Fetch (1) and ListOffsets (2) over a real socket against an in-process broker,
//! including what survives a restart: the records, and the idempotent-producer state that makes
//! a retried batch a duplicate (KIP-98) rather than a second copy.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;
use spate_protocol::records::{Compression, RecordBatch, RecordBatchBuilder};
use support::{Client, TestBroker};

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

async fn create_topic(client: &mut Client, name: &str, configs: &[(&str, &str)]) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                ),
        ])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse = client.send(ApiKey::CreateTopics, 7, &request).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

fn batch(producer: Option<(i64, i16, i32)>, keys: &[&str], compression: Compression) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    support::keyed_batch(now, keys, producer, compression)
}

async fn produce(client: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let response: ProduceResponse = client.send(ApiKey::Produce, 9, &request).await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

/// Fetches everything from `offset`, returning the keys in order and the high watermark.
async fn fetch_keys(client: &mut Client, topic: &str, offset: i64) -> (Vec<String>, i64) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response: FetchResponse = client.send(ApiKey::Fetch, 11, &request).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut keys = Vec::new();
    while !records.is_empty() {
        let batch = RecordBatch::split_first(&mut records).expect("whole batches");
        batch.verify_crc().expect("intact batch");
        for record in batch.records(1 << 26).expect("records") {
            let record = record.expect("record");
            if record.offset(batch.base_offset()).0 >= offset {
                keys.push(String::from_utf8(record.key.expect("keyed").to_vec()).expect("utf8"));
            }
        }
    }
    (keys, partition.high_watermark)
}

#[tokio::test]
async fn records_and_idempotence_survive_a_restart() {
    let mut broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "durable", &[]).await;
    let pid = (4242, 0, 0);
    assert_eq!(
        produce(
            &mut client,
            "durable",
            batch(Some(pid), &["a", "b"], Compression::Lz4)
        )
        .await,
        (0, 0)
    );
    assert_eq!(
        produce(
            &mut client,
            "durable",
            batch(Some((4242, 0, 2)), &["c"], Compression::None)
        )
        .await,
        (0, 2)
    );
    // A retry of the first batch is answered with its original offset, not appended again.
    assert_eq!(
        produce(
            &mut client,
            "durable",
            batch(Some(pid), &["a", "b"], Compression::Lz4)
        )
        .await,
        (0, 0)
    );
    drop(client);
    broker.restart().await;
    let mut client = broker.client().await;
    let (keys, high_watermark) = fetch_keys(&mut client, "durable", 0).await;
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(high_watermark, 3);
    // After the restart the producer state is rebuilt: the retry is still a duplicate, and a gap
    // in sequence numbers is still refused.
    assert_eq!(
        produce(
            &mut client,
            "durable",
            batch(Some((4242, 0, 2)), &["c"], Compression::None)
        )
        .await,
        (0, 2)
    );
    assert_eq!(
        produce(
            &mut client,
            "durable",
            batch(Some((4242, 0, 9)), &["z"], Compression::None)
        )
        .await
        .0,
        ErrorCode::OutOfOrderSequenceNumber.code()
    );
    let (keys, _) = fetch_keys(&mut client, "durable", 1).await;
    assert_eq!(
        keys,
        ["b", "c"],
        "a fetch from inside a batch skips the records before it"
    );
}

/// Produce (0) validation per Kafka's LogValidator: keyless records on a compacted topic are
/// INVALID_RECORD, a batch over max.message.bytes is MESSAGE_TOO_LARGE, a flipped byte is
/// CORRUPT_MESSAGE; nothing of a refused batch is appended.
#[tokio::test]
async fn produce_validation_errors_append_nothing() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "compacted", &[("cleanup.policy", "compact")]).await;
    create_topic(&mut client, "small", &[("max.message.bytes", "200")]).await;

    let mut keyless = RecordBatchBuilder::new(Compression::None);
    keyless
        .append(0, None, Some(Bytes::from_static(b"v")), Vec::new())
        .expect("record fits");
    let (error, _) = produce(&mut client, "compacted", keyless.build().expect("builds")).await;
    assert_eq!(error, ErrorCode::InvalidRecord.code());

    let big: Vec<String> = (0..20).map(|i| format!("key-{i:04}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let (error, _) = produce(&mut client, "small", batch(None, &big, Compression::None)).await;
    assert_eq!(error, ErrorCode::MessageTooLarge.code());

    let mut corrupt = batch(None, &["x"], Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (error, _) = produce(&mut client, "small", Bytes::from(corrupt)).await;
    assert_eq!(error, ErrorCode::CorruptMessage.code());

    let (keys, high_watermark) = fetch_keys(&mut client, "small", 0).await;
    assert!(keys.is_empty());
    assert_eq!(high_watermark, 0);
    let (error, offset) = produce(
        &mut client,
        "small",
        batch(None, &["ok"], Compression::None),
    )
    .await;
    assert_eq!((error, offset), (0, 0));
}

/// Produce (0) to an unknown topic with auto-creation off in the request path: Produce never
/// creates topics, it answers UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn produce_to_an_unknown_topic() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let (error, offset) = produce(
        &mut client,
        "nowhere",
        batch(None, &["k"], Compression::None),
    )
    .await;
    assert_eq!(
        (error, offset),
        (ErrorCode::UnknownTopicOrPartition.code(), -1)
    );
}

async fn fetch_raw(client: &mut Client, version: i16, request: FetchRequest) -> FetchResponse {
    client.send(ApiKey::Fetch, version, &request).await
}

fn fetch_request(
    topic: &str,
    offset: i64,
    partition_max_bytes: i32,
    max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ])
}

fn batches_in(records: Option<Bytes>) -> Vec<RecordBatch> {
    let mut records = records.unwrap_or_default();
    let mut out = Vec::new();
    while !records.is_empty() {
        out.push(RecordBatch::split_first(&mut records).expect("whole batches"));
    }
    out
}

/// Fetch (1) v11: the batch containing the requested offset comes back whole (clients skip the
/// records before their offset), and one batch comes back even when it exceeds both the
/// partition and the response byte limits (KIP-74).
#[tokio::test]
async fn fetch_returns_whole_batches_and_at_least_one() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "whole", &[]).await;
    let keys: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    produce(
        &mut client,
        "whole",
        batch(None, &keys[..25], Compression::Zstd),
    )
    .await;
    produce(
        &mut client,
        "whole",
        batch(None, &keys[25..], Compression::None),
    )
    .await;

    let response = fetch_raw(
        &mut client,
        11,
        fetch_request("whole", 10, 1 << 20, 1 << 20),
    )
    .await;
    let batches = batches_in(response.responses[0].partitions[0].records.clone());
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[0].base_offset().0,
        0,
        "the batch holding offset 10 starts at 0"
    );

    // Limits of 1 byte: still exactly one whole batch.
    let response = fetch_raw(&mut client, 11, fetch_request("whole", 30, 1, 1)).await;
    let batches = batches_in(response.responses[0].partitions[0].records.clone());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].base_offset().0, 25);
    assert_eq!(batches[0].records_count(), 25);
}

/// Fetch (1): responses far larger than what is sent by reference (record slices of a segment
/// go to the socket with `sendfile`, the rest with vectored writes) arrive byte for byte: every
/// batch intact, every record once and in order, over many responses on one connection.
#[tokio::test]
async fn large_fetch_responses_arrive_intact() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "large", &[]).await;
    let padding = "k".repeat(1000);
    let mut expected = Vec::new();
    for b in 0..40 {
        let keys: Vec<String> = (0..64)
            .map(|i| format!("{:05}-{padding}", b * 64 + i))
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (error, _) = produce(&mut client, "large", batch(None, &refs, Compression::None)).await;
        assert_eq!(error, 0);
        expected.extend(keys);
    }
    let mut fetched = Vec::new();
    let mut responses = 0;
    while fetched.len() < expected.len() {
        let (keys, high_watermark) = fetch_keys(&mut client, "large", fetched.len() as i64).await;
        assert_eq!(high_watermark, expected.len() as i64);
        assert!(
            !keys.is_empty(),
            "a fetch below the high watermark returns records"
        );
        fetched.extend(keys);
        responses += 1;
    }
    assert!(responses > 1, "the log spans several 1 MiB responses");
    assert_eq!(fetched, expected);
}

/// Fetch (1): with min_bytes unmet the request waits up to max_wait_ms, and an append to the
/// partition completes it early; with nothing appended it answers empty at the deadline.
#[tokio::test]
async fn fetch_long_poll_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "poll", &[]).await;

    let started = std::time::Instant::now();
    let response = fetch_raw(
        &mut client,
        11,
        fetch_request("poll", 0, 1 << 20, 1 << 20).with_max_wait_ms(300),
    )
    .await;
    assert!(batches_in(response.responses[0].partitions[0].records.clone()).is_empty());
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "waited for max_wait_ms"
    );

    let addr = broker.addr();
    let waiter = tokio::spawn(async move {
        let mut client = Client::connect(addr).await;
        let started = std::time::Instant::now();
        let response = fetch_raw(
            &mut client,
            11,
            fetch_request("poll", 0, 1 << 20, 1 << 20).with_max_wait_ms(30_000),
        )
        .await;
        (started.elapsed(), response)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    produce(
        &mut client,
        "poll",
        batch(None, &["wake"], Compression::None),
    )
    .await;
    let (elapsed, response) = waiter.await.expect("waiter");
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "woken by the append, not the deadline"
    );
    assert_eq!(
        batches_in(response.responses[0].partitions[0].records.clone()).len(),
        1
    );
}

/// Fetch (1) v12 incremental sessions (KIP-227): a full fetch opens a session; incremental
/// fetches name only changed partitions and get back only partitions with something new; a
/// wrong epoch is INVALID_FETCH_SESSION_EPOCH and an unknown id FETCH_SESSION_ID_NOT_FOUND.
#[tokio::test]
async fn incremental_fetch_sessions() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "sess", &[]).await;
    produce(&mut client, "sess", batch(None, &["a"], Compression::None)).await;

    let open = fetch_request("sess", 0, 1 << 20, 1 << 20)
        .with_session_id(0)
        .with_session_epoch(0);
    let response = fetch_raw(&mut client, 12, open).await;
    assert_eq!(response.error_code, 0);
    let session = response.session_id;
    assert_ne!(session, 0, "a session was created");
    assert_eq!(
        batches_in(response.responses[0].partitions[0].records.clone()).len(),
        1
    );

    // Epoch 1, nothing changed from the client's side: the partition's fetch offset is still 0
    // in the session, so its data comes back again; move it to 1.
    let incremental = |epoch: i32, offset: Option<i64>| {
        let topics = match offset {
            Some(offset) => fetch_request("sess", offset, 1 << 20, 1 << 20).topics,
            None => Vec::new(),
        };
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(session)
            .with_session_epoch(epoch)
            .with_topics(topics)
    };
    let response = fetch_raw(&mut client, 12, incremental(1, Some(1))).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_id, session);
    // At offset 1 nothing is new and the high watermark was already sent: omitted.
    assert!(
        response.responses.is_empty(),
        "unchanged partitions are left out"
    );

    produce(&mut client, "sess", batch(None, &["b"], Compression::None)).await;
    let response = fetch_raw(&mut client, 12, incremental(2, None)).await;
    assert_eq!(
        response.responses.len(),
        1,
        "new data brings the partition back"
    );
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, 2);
    assert_eq!(batches_in(partition.records.clone()).len(), 1);

    let response = fetch_raw(&mut client, 12, incremental(7, None)).await;
    assert_eq!(
        response.error_code,
        ErrorCode::InvalidFetchSessionEpoch.code()
    );
    let response = fetch_raw(
        &mut client,
        12,
        incremental(3, None).with_session_id(session.wrapping_add(1000)),
    )
    .await;
    assert_eq!(
        response.error_code,
        ErrorCode::FetchSessionIdNotFound.code()
    );
}

/// Fetch (1) v4, the oldest Kafka 4 serves (non-flexible, as Sarama and kafkajs send), and
/// OFFSET_OUT_OF_RANGE past the log end.
#[tokio::test]
async fn old_fetch_versions_and_out_of_range() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "old", &[]).await;
    produce(
        &mut client,
        "old",
        batch(None, &["x", "y"], Compression::Gzip),
    )
    .await;
    let response = fetch_raw(&mut client, 4, fetch_request("old", 0, 1 << 20, 1 << 20)).await;
    assert_eq!(
        batches_in(response.responses[0].partitions[0].records.clone()).len(),
        1
    );
    let response = fetch_raw(&mut client, 8, fetch_request("old", 5, 1 << 20, 1 << 20)).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, ErrorCode::OffsetOutOfRange.code());
    // Kafka's ReplicaManager answers a read error with unknown offsets.
    assert_eq!(partition.high_watermark, -1);
    assert_eq!(partition.log_start_offset, -1);
}
