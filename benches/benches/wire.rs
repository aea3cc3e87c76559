//! Request decode and response encode for Produce and Fetch, the two APIs every record crosses.
//!
//! The shapes are the comparison workload's: 6 partitions, 1 KiB records, a producer batch of
//! 64 KiB per partition (`batch.size=65536`), and fetch responses of 1 MiB per partition
//! (`max.partition.fetch.bytes`). Throughput counts the whole frame, so the figures read as the
//! bytes per second one core moves through the protocol layer, before any storage work.
//!
//! What is measured is what the broker does per request: `decode_request` (header) followed by
//! the body decode at the request's version, and `encode_response` of the response body. The
//! request encodes are the client's side, measured too because the in-process broker bench and
//! the load generator pay them.
//!
//! Smoke-run with `cargo bench -p spate-benches --bench wire -- --test`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use spate_protocol::header::{decode_request, encode_response};
use spate_protocol::records::{Compression, RecordBatchBuilder};

/// Partitions per request, as the comparison's topic.
const PARTITIONS: i32 = 6;
/// Record value size of the comparison workload.
const RECORD_VALUE_BYTES: usize = 1024;
/// Producer `batch.size` of the comparison workload: one batch per partition per request.
const PRODUCE_BATCH_BYTES: usize = 64 * 1024;
/// Records per partition in a fetch response: a consumer's `max.partition.fetch.bytes` (1 MiB).
const FETCH_PARTITION_BYTES: usize = 1024 * 1024;
/// Produce v9 is the first flexible version and what librdkafka 2.x sends; v12 is what the
/// Java 4.x producer sends to a 4.x broker.
const PRODUCE_VERSIONS: [i16; 2] = [9, 12];
/// Fetch v12 is librdkafka's newest by name; v16 is the Java 4.x consumer's (topic ids).
const FETCH_VERSIONS: [i16; 2] = [12, 16];

/// An uncompressed batch of 1 KiB records about `size_bytes` long.
fn batch(size_bytes: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    let value = Bytes::from(vec![b'v'; RECORD_VALUE_BYTES]);
    for i in 0..(size_bytes / (RECORD_VALUE_BYTES + 24)).max(1) {
        builder
            .append(
                1_700_000_000_000 + i as i64,
                None,
                Some(value.clone()),
                vec![],
            )
            .expect("append");
    }
    builder.build().expect("build")
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("bench"))
}

/// A request frame (header and body, without the size prefix) as a client writes it.
fn frame<M: Encodable>(api_key: ApiKey, version: i16, body: &M) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    buf.freeze()
}

fn produce_request(records: &Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(
                    (0..PARTITIONS)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(records.clone()))
                        })
                        .collect(),
                ),
        ])
}

fn fetch_request() -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(1_000_000)
                                .with_partition_max_bytes(FETCH_PARTITION_BYTES as i32)
                        })
                        .collect(),
                ),
        ])
}

fn fetch_response(records: &Bytes) -> FetchResponse {
    FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(topic_name())
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        PartitionData::default()
                            .with_partition_index(p)
                            .with_high_watermark(2_000_000)
                            .with_last_stable_offset(2_000_000)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            ),
    ])
}

/// Decoding as the broker's dispatch does: the header, then the body at its version.
fn decode(frame: &Bytes) -> RequestKind {
    let raw = decode_request(frame.clone()).expect("header");
    let mut body = raw.body;
    RequestKind::decode(raw.api_key, &mut body, raw.header.request_api_version).expect("body")
}

fn produce(c: &mut Criterion) {
    let records = batch(PRODUCE_BATCH_BYTES);
    let request = produce_request(&records);
    let mut group = c.benchmark_group("wire/produce");
    for version in PRODUCE_VERSIONS {
        let encoded = frame(ApiKey::Produce, version, &request);
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("request_decode", format!("v{version}")),
            &encoded,
            |b, encoded| b.iter(|| decode(black_box(encoded))),
        );
        group.bench_with_input(
            BenchmarkId::new("request_encode", format!("v{version}")),
            &request,
            |b, request| b.iter(|| frame(ApiKey::Produce, version, black_box(request))),
        );
    }
    group.finish();
}

fn fetch(c: &mut Criterion) {
    let records = batch(FETCH_PARTITION_BYTES);
    let response = fetch_response(&records);
    let request = fetch_request();
    let mut group = c.benchmark_group("wire/fetch");
    for version in FETCH_VERSIONS {
        // Topic ids replace names from v13 on; the bench sets both, and each version encodes the
        // one it carries.
        let encoded = frame(ApiKey::Fetch, version, &request);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("request_decode", format!("v{version}")),
            &encoded,
            |b, encoded| b.iter(|| decode(black_box(encoded))),
        );
        let size = encode_response(ApiKey::Fetch, version, 7, &response)
            .expect("encode")
            .len();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("response_encode", format!("v{version}")),
            &response,
            |b, response| {
                b.iter(|| encode_response(ApiKey::Fetch, version, 7, black_box(response)))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
