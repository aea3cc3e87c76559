//! The broker's in-process produce → fetch path, without sockets: encoded request frames go
//! straight to `Broker::dispatch`, as a connection would hand them over, and the encoded
//! response comes back. This covers header and body decode, batch validation with CRC-32C, the
//! partition append, the high watermark, the fetch read from the mapped log, and the response
//! encode; it leaves out only the kernel's socket copies.
//!
//! Workload: a 6-partition topic, Produce v9 with `acks=all` and one 64 KiB batch of 1 KiB
//! records per partition (the comparison harness's producer settings), and Fetch v12 reading
//! them back with 1 MiB per partition. Throughput counts produced record-batch bytes.
//!
//! Each Criterion sample gets a fresh topic, deleted after the sample, so that a long run does
//! not fill the disk. Smoke-run with `cargo bench -p spate-benches --bench broker -- --test`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, FetchRequest,
    FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_broker::Broker;
use spate_broker::dispatch::{Reply, RequestContext};
use spate_broker::server::{RunningServer, ServeOptions, start};
use spate_broker::settings::BrokerSettings;
use spate_protocol::records::{Compression, RecordBatchBuilder};
use spate_protocol::types::NodeId;

/// Partitions of the topic, as the comparison workload's.
const PARTITIONS: i32 = 6;
/// Record value size of the comparison workload.
const RECORD_VALUE_BYTES: usize = 1024;
/// One producer batch per partition per request (`batch.size=65536`).
const PRODUCE_BATCH_BYTES: usize = 64 * 1024;
/// A consumer's `max.partition.fetch.bytes`.
const FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Produce v9: the first flexible version, what librdkafka 2.x sends.
const PRODUCE_VERSION: i16 = 9;
/// Fetch v12: the newest version that names topics (librdkafka's).
const FETCH_VERSION: i16 = 12;
/// CreateTopics and DeleteTopics versions used to set up each sample.
const CREATE_TOPICS_VERSION: i16 = 5;
const DELETE_TOPICS_VERSION: i16 = 6;
/// Bound on one request in the bench; a reply slower than this is a broken broker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn batch() -> Bytes {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    let value = Bytes::from(vec![b'v'; RECORD_VALUE_BYTES]);
    for i in 0..PRODUCE_BATCH_BYTES / (RECORD_VALUE_BYTES + 24) {
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

fn frame<M: Encodable>(api_key: ApiKey, version: i16, body: &M) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    buf.freeze()
}

/// One request through dispatch, waiting for a deferred reply; the response frame.
async fn call(broker: &Arc<Broker>, context: &RequestContext, request: Bytes) -> Bytes {
    let reply = broker.dispatch(context, request).await.expect("dispatch");
    let frame = match reply {
        Reply::Ready(frame) | Reply::ReadyThenClose(frame) => frame,
        Reply::Deferred(future) => tokio::time::timeout(REQUEST_TIMEOUT, future)
            .await
            .expect("deferred reply in time"),
        Reply::None => return Bytes::new(),
    };
    // A fetch response refers to the log's slices; the client side sees them joined.
    frame.chunks().concat().into()
}

fn decode_response<M: Decodable>(api_key: ApiKey, version: i16, mut frame: Bytes) -> M {
    ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .expect("response header");
    M::decode(&mut frame, version).expect("response body")
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

async fn create_topic(broker: &Arc<Broker>, context: &RequestContext, topic: &str) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1),
        ]);
    let response: CreateTopicsResponse = decode_response(
        ApiKey::CreateTopics,
        CREATE_TOPICS_VERSION,
        call(
            broker,
            context,
            frame(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request),
        )
        .await,
    );
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

async fn delete_topic(broker: &Arc<Broker>, context: &RequestContext, topic: &str) {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(name(topic))),
        ]);
    call(
        broker,
        context,
        frame(ApiKey::DeleteTopics, DELETE_TOPICS_VERSION, &request),
    )
    .await;
}

fn produce_frame(topic: &str, records: &Bytes) -> Bytes {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(
                    (0..PARTITIONS)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(records.clone()))
                        })
                        .collect(),
                ),
        ]);
    frame(ApiKey::Produce, PRODUCE_VERSION, &request)
}

fn fetch_frame(topic: &str, offset: i64) -> Bytes {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(FETCH_PARTITION_MAX_BYTES)
                        })
                        .collect(),
                ),
        ]);
    frame(ApiKey::Fetch, FETCH_VERSION, &request)
}

/// A broker in this process with its data in a temp dir. Its listeners are bound (the server
/// needs them), but the bench never connects to them.
struct BenchBroker {
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    context: RequestContext,
    _dir: tempfile::TempDir,
}

impl BenchBroker {
    fn start() -> BenchBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let options = ServeOptions {
            node_id: NodeId(0),
            data_dir: dir.path().to_path_buf(),
            kafka_listen: "127.0.0.1:0".into(),
            kafka_advertise: None,
            admin_listen: "127.0.0.1:0".into(),
            cloudevents_listen: "127.0.0.1:0".into(),
            cluster_id: None,
            rack: None,
            settings: BrokerSettings::default(),
            static_configs: Default::default(),
            quorum: Default::default(),
        };
        let server = runtime.block_on(start(options)).expect("broker starts");
        BenchBroker {
            runtime,
            server: Some(server),
            context: RequestContext {
                peer: SocketAddr::from(([127, 0, 0, 1], 0)),
                client_id: String::new(),
            },
            _dir: dir,
        }
    }

    fn broker(&self) -> Arc<Broker> {
        self.server.as_ref().expect("running").broker.clone()
    }
}

impl Drop for BenchBroker {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// Runs `iters` rounds against a fresh topic; `round` gets the topic and the round number and
/// returns the time it wants counted.
fn per_sample<F>(bench: &BenchBroker, sample: &mut u64, iters: u64, mut round: F) -> Duration
where
    F: AsyncRound,
{
    *sample += 1;
    let topic = format!("bench-{sample}");
    let broker = bench.broker();
    let context = bench.context.clone();
    bench.runtime.block_on(async {
        create_topic(&broker, &context, &topic).await;
        let mut counted = Duration::ZERO;
        for i in 0..iters {
            counted += round.run(&broker, &context, &topic, i).await;
        }
        delete_topic(&broker, &context, &topic).await;
        counted
    })
}

/// One timed round of a bench (a trait rather than a closure so it can borrow across awaits).
trait AsyncRound {
    async fn run(
        &mut self,
        broker: &Arc<Broker>,
        context: &RequestContext,
        topic: &str,
        round: u64,
    ) -> Duration;
}

/// Produce one request and fetch it back: the full round trip of a record through the broker.
struct ProduceThenFetch {
    records: Bytes,
    records_per_batch: i64,
}

impl AsyncRound for ProduceThenFetch {
    async fn run(
        &mut self,
        broker: &Arc<Broker>,
        context: &RequestContext,
        topic: &str,
        round: u64,
    ) -> Duration {
        let produce = produce_frame(topic, &self.records);
        let fetch = fetch_frame(topic, round as i64 * self.records_per_batch);
        let start = Instant::now();
        let produced = call(broker, context, produce).await;
        let fetched = call(broker, context, fetch).await;
        let elapsed = start.elapsed();
        // Checked outside the timed part: every partition acknowledged, and the fetch returned
        // at least the batch bytes of every partition.
        let response: ProduceResponse = decode_response(ApiKey::Produce, PRODUCE_VERSION, produced);
        for partition in &response.responses[0].partition_responses {
            assert_eq!(partition.error_code, 0, "produce error");
        }
        assert!(fetched.len() >= self.records.len() * PARTITIONS as usize);
        elapsed
    }
}

/// Produce only (`acks=all`, single node: answered when the high watermark passes the batch).
struct ProduceOnly {
    records: Bytes,
}

impl AsyncRound for ProduceOnly {
    async fn run(
        &mut self,
        broker: &Arc<Broker>,
        context: &RequestContext,
        topic: &str,
        _round: u64,
    ) -> Duration {
        let produce = produce_frame(topic, &self.records);
        let start = Instant::now();
        let produced = call(broker, context, produce).await;
        let elapsed = start.elapsed();
        assert!(!produced.is_empty());
        elapsed
    }
}

/// Fetch only: the first round produces once (untimed), every round fetches those records
/// again from the page-cache-resident log.
struct FetchOnly {
    records: Bytes,
}

impl AsyncRound for FetchOnly {
    async fn run(
        &mut self,
        broker: &Arc<Broker>,
        context: &RequestContext,
        topic: &str,
        round: u64,
    ) -> Duration {
        if round == 0 {
            call(broker, context, produce_frame(topic, &self.records)).await;
        }
        let fetch = fetch_frame(topic, 0);
        let start = Instant::now();
        let fetched = call(broker, context, fetch).await;
        let elapsed = start.elapsed();
        let response: FetchResponse = decode_response(ApiKey::Fetch, FETCH_VERSION, fetched);
        for partition in &response.responses[0].partitions {
            assert_eq!(partition.error_code, 0, "fetch error");
        }
        elapsed
    }
}

fn in_process(c: &mut Criterion) {
    let bench = BenchBroker::start();
    let records = batch();
    let records_per_batch = i64::from(
        spate_protocol::records::RecordBatch::new(records.clone())
            .expect("valid batch")
            .records_count(),
    );
    let request_bytes = (records.len() * PARTITIONS as usize) as u64;
    let mut sample = 0u64;

    let mut group = c.benchmark_group("broker/in_process");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(request_bytes));
    group.bench_function("produce_acks_all", |b| {
        b.iter_custom(|iters| {
            per_sample(
                &bench,
                &mut sample,
                iters,
                ProduceOnly {
                    records: records.clone(),
                },
            )
        })
    });
    group.bench_function("fetch", |b| {
        b.iter_custom(|iters| {
            per_sample(
                &bench,
                &mut sample,
                iters,
                FetchOnly {
                    records: records.clone(),
                },
            )
        })
    });
    group.bench_function("produce_then_fetch", |b| {
        b.iter_custom(|iters| {
            per_sample(
                &bench,
                &mut sample,
                iters,
                ProduceThenFetch {
                    records: records.clone(),
                    records_per_batch,
                },
            )
        })
    });
    group.finish();
}

criterion_group!(benches, in_process);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
