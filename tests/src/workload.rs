//! Workloads for fault tests, with librdkafka in-process: a producer that writes continuously
//! and records every produce's outcome, a consumer that records what it sees while faults run,
//! and a reader of the final contents — the three parts of a [`crate::history`] — plus the
//! Metadata view (leaders and ISRs) the tests steer their faults by.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use poison_free::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::history::{Observation, Outcome, ProduceOp};

/// `std`'s mutex without poisoning: a poisoned lock only follows a panic in a test thread,
/// which fails the test anyway, and the history recorded so far is still worth reporting.
mod poison_free {
    /// A mutex whose lock ignores poisoning.
    pub struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// Wraps `value`.
        pub fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        /// Locks, recovering from poisoning.
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// Bound on flushing the producer at the end of a run.
pub const PRODUCER_FLUSH_TIMEOUT_MS: u64 = 60_000;
/// One consumer poll.
const POLL_INTERVAL_MS: u64 = 100;

/// Client settings that make librdkafka notice failed brokers and moved leaders within a few
/// seconds instead of its defaults' tens of seconds, as a fault test needs.
pub const FAST_FAILOVER_SETTINGS: &[(&str, &str)] = &[
    ("socket.timeout.ms", "2000"),
    ("socket.connection.setup.timeout.ms", "2000"),
    ("reconnect.backoff.ms", "50"),
    ("reconnect.backoff.max.ms", "500"),
    ("retry.backoff.ms", "50"),
    ("retry.backoff.max.ms", "500"),
    ("topic.metadata.refresh.interval.ms", "1000"),
    ("topic.metadata.refresh.fast.interval.ms", "100"),
    ("metadata.max.age.ms", "3000"),
];

/// What the producer recorded.
struct Recorder {
    start: Instant,
    ops: Mutex<Vec<ProduceOp>>,
    /// Per partition, when its last acknowledgement arrived (ms since start).
    last_ack_ms: Mutex<BTreeMap<i32, u64>>,
}

impl Recorder {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

struct RecordingContext {
    recorder: Arc<Recorder>,
}

impl ClientContext for RecordingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        // `SPATE_E2E_RDKAFKA_DEBUG=eos,msg` (librdkafka's `debug`) shows the producer's view of
        // a fault, timestamped on the history's clock.
        if std::env::var_os("SPATE_E2E_RDKAFKA_DEBUG").is_some() {
            eprintln!(
                "[{} ms] rdkafka {level:?} {fac}: {log_message}",
                self.recorder.now_ms()
            );
        }
    }
}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sequence: Box<u64>) {
        let now = self.recorder.now_ms();
        let outcome = match result {
            Ok(message) => {
                self.recorder
                    .last_ack_ms
                    .lock()
                    .insert(message.partition(), now);
                Outcome::Acked {
                    partition: message.partition(),
                    offset: message.offset(),
                }
            }
            Err((error, _)) => Outcome::Failed(error.to_string()),
        };
        if let Some(op) = self.recorder.ops.lock().get_mut(*sequence as usize) {
            op.outcome = outcome;
            op.done_ms = now;
        }
    }
}

/// A producer writing one record every `interval` round-robin over the partitions, each value
/// `<prefix>-<sequence>`, idempotent with `acks=all`, until stopped.
pub struct ContinuousProducer {
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ContinuousProducer {
    /// Starts producing to `topic` through `bootstrap`.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        prefix: &str,
        interval: Duration,
    ) -> Result<ContinuousProducer> {
        let recorder = Arc::new(Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            last_ack_ms: Mutex::new(BTreeMap::new()),
        });
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("request.timeout.ms", "2000")
            .set("message.timeout.ms", "600000")
            .set("max.in.flight.requests.per.connection", "5");
        for (key, value) in FAST_FAILOVER_SETTINGS {
            config.set(*key, *value);
        }
        if let Ok(debug) = std::env::var("SPATE_E2E_RDKAFKA_DEBUG") {
            // The client's log level otherwise follows the `log` crate's, which lets only
            // errors through here.
            config
                .set("debug", debug)
                .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
        let producer: BaseProducer<RecordingContext> = config
            .create_with_context(RecordingContext {
                recorder: recorder.clone(),
            })
            .context("cannot create the rdkafka producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let recorder = recorder.clone();
            let stop = stop.clone();
            let topic = topic.to_string();
            let prefix = prefix.to_string();
            thread::spawn(move || {
                let mut sequence: u64 = 0;
                while !stop.load(Ordering::Acquire) {
                    let partition = (sequence % partitions as u64) as i32;
                    let value = format!("{prefix}-{sequence:09}");
                    recorder.ops.lock().push(ProduceOp {
                        sequence,
                        partition,
                        value: value.clone(),
                        sent_ms: recorder.now_ms(),
                        done_ms: 0,
                        outcome: Outcome::Pending,
                    });
                    let record =
                        BaseRecord::<(), str, Box<u64>>::with_opaque_to(&topic, Box::new(sequence))
                            .partition(partition)
                            .payload(value.as_str());
                    match producer.send(record) {
                        Ok(()) => sequence += 1,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            // Not sent: forget it and let the queue drain.
                            recorder.ops.lock().pop();
                            producer.poll(Duration::from_millis(50));
                            continue;
                        }
                        Err((error, _)) => {
                            if let Some(op) = recorder.ops.lock().last_mut() {
                                op.outcome = Outcome::Failed(error.to_string());
                                op.done_ms = recorder.now_ms();
                            }
                            sequence += 1;
                        }
                    }
                    producer.poll(Duration::ZERO);
                    thread::sleep(interval);
                }
                let flushed = producer.flush(Duration::from_millis(PRODUCER_FLUSH_TIMEOUT_MS));
                producer.poll(Duration::ZERO);
                flushed.context("flushing the producer")
            })
        };
        Ok(ContinuousProducer {
            recorder,
            stop,
            thread: Some(thread),
        })
    }

    /// Milliseconds since the producer started: the history's clock.
    pub fn now_ms(&self) -> u64 {
        self.recorder.now_ms()
    }

    /// Records sent so far.
    pub fn sent(&self) -> usize {
        self.recorder.ops.lock().len()
    }

    /// Waits until, in every partition of `0..partitions`, a record sent after `since_ms` has
    /// been acknowledged: service has resumed. Returns how long after `since_ms` the last
    /// partition got its first such acknowledgement.
    pub fn wait_all_acked_after(
        &self,
        partitions: i32,
        since_ms: u64,
        timeout: Duration,
    ) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.first_acks_after(partitions, since_ms) {
                return Ok(Duration::from_millis(at.saturating_sub(since_ms)));
            }
            if Instant::now() > deadline {
                let acks = self.recorder.last_ack_ms.lock().clone();
                bail!(
                    "not every partition acknowledged a record sent after {since_ms} ms within {timeout:?} (last acks: {acks:?})"
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// When the last partition got its first acknowledgement of a record sent after
    /// `since_ms`, if all have.
    fn first_acks_after(&self, partitions: i32, since_ms: u64) -> Option<u64> {
        let ops = self.recorder.ops.lock();
        let mut first: BTreeMap<i32, u64> = BTreeMap::new();
        for op in ops.iter().rev().take_while(|op| op.sent_ms > since_ms) {
            if let Outcome::Acked { partition, .. } = op.outcome {
                let entry = first.entry(partition).or_insert(op.done_ms);
                *entry = (*entry).min(op.done_ms);
            }
        }
        (0..partitions)
            .map(|p| first.get(&p).copied())
            .collect::<Option<Vec<u64>>>()
            .and_then(|ats| ats.into_iter().max())
    }

    /// Stops producing, flushes, and returns every operation with its outcome.
    pub fn stop(mut self) -> Result<Vec<ProduceOp>> {
        self.stop.store(true, Ordering::Release);
        let flushed = match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the producer thread panicked"))?,
            None => Ok(()),
        };
        if let Err(error) = flushed {
            eprintln!("producer: {error:#}; unanswered produces stay pending");
        }
        let end = self.recorder.now_ms();
        let mut ops = std::mem::take(&mut *self.recorder.ops.lock());
        for op in &mut ops {
            if op.outcome == Outcome::Pending {
                op.done_ms = end;
            }
        }
        Ok(ops)
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn consumer(bootstrap: &str) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // Explicit assignment and no commits: the group is never joined.
        .set("group.id", "spate-e2e-history")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    for (key, value) in FAST_FAILOVER_SETTINGS {
        config.set(*key, *value);
    }
    config
        .create()
        .context("cannot create the rdkafka consumer")
}

fn assign_from_start(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<()> {
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment).context("assigning partitions")
}

/// A consumer reading every partition from the start while the faults run, recording what it
/// sees.
pub struct Observer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Observation>>>>,
}

impl Observer {
    /// Starts reading `topic` through `bootstrap`.
    pub fn start(bootstrap: &str, topic: &str, partitions: i32) -> Result<Observer> {
        let consumer = consumer(bootstrap)?;
        assign_from_start(&consumer, topic, partitions)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    // Errors during faults are expected; the consumer recovers by itself.
                    if let Some(Ok(message)) =
                        consumer.poll(Duration::from_millis(POLL_INTERVAL_MS))
                    {
                        seen.push(Observation {
                            partition: message.partition(),
                            offset: message.offset(),
                            value: String::from_utf8_lossy(message.payload().unwrap_or_default())
                                .into_owned(),
                        });
                    }
                }
                Ok(seen)
            })
        };
        Ok(Observer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops reading and returns what was seen.
    pub fn stop(mut self) -> Result<Vec<Observation>> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the observer thread panicked"))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Reads every partition of `topic` from its start to its high watermark: partition → records
/// `(offset, value)` in offset order.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<BTreeMap<i32, Vec<(i64, String)>>> {
    let consumer = consumer(bootstrap)?;
    let deadline = Instant::now() + timeout;
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .with_context(|| format!("watermarks of {topic}-{p}"))?;
        ends.insert(p, high);
    }
    assign_from_start(&consumer, topic, partitions)?;
    let mut log: BTreeMap<i32, Vec<(i64, String)>> =
        (0..partitions).map(|p| (p, Vec::new())).collect();
    let done = |log: &BTreeMap<i32, Vec<(i64, String)>>| {
        ends.iter().all(|(p, end)| {
            *end == 0
                || log
                    .get(p)
                    .and_then(|r| r.last())
                    .is_some_and(|(o, _)| o + 1 >= *end)
        })
    };
    while !done(&log) {
        if Instant::now() > deadline {
            let got: BTreeMap<i32, i64> = log
                .iter()
                .map(|(p, r)| (*p, r.last().map_or(-1, |(o, _)| *o)))
                .collect();
            bail!("reading {topic} to its end {ends:?} timed out at {got:?}");
        }
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(POLL_INTERVAL_MS))
            && let Some(records) = log.get_mut(&message.partition())
        {
            let offset = message.offset();
            if ends
                .get(&message.partition())
                .is_some_and(|end| offset < *end)
            {
                records.push((
                    offset,
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
    }
    Ok(log)
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Partition index.
    pub partition: i32,
    /// Leader id (-1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica ids.
    pub replicas: Vec<i32>,
    /// In-sync replica ids.
    pub isr: Vec<i32>,
}

/// The partitions of `topic` as the node at `addr` describes them (Metadata v12).
pub fn partitions(addr: &str, topic: &str) -> Result<Vec<PartitionView>> {
    let response: MetadataResponse = crate::cluster::request(
        addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )?;
    let found = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .with_context(|| format!("{topic} is not in the metadata of {addr}"))?;
    let mut views: Vec<PartitionView> = found
        .partitions
        .iter()
        .map(|p| PartitionView {
            partition: p.partition_index,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
            isr: p.isr_nodes.iter().map(|r| r.0).collect(),
        })
        .collect();
    views.sort_by_key(|v| v.partition);
    Ok(views)
}

/// Waits until some node among `addrs` reports every partition of `topic` led and with its
/// whole replica set in sync.
pub fn wait_fully_in_sync(addrs: &[String], topic: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        for addr in addrs {
            match partitions(addr, topic) {
                Ok(views)
                    if !views.is_empty()
                        && views
                            .iter()
                            .all(|v| v.leader >= 0 && v.isr.len() == v.replicas.len()) =>
                {
                    return Ok(started.elapsed());
                }
                Ok(views) => last = format!("{views:?}"),
                Err(error) => last = format!("{error:#}"),
            }
        }
        if started.elapsed() > timeout {
            bail!("{topic} was not fully in sync within {timeout:?}: {last}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// One record produced with a raw Produce v9 request (no client library in between, so the
/// test sees the broker's exact error code): `(error code, base offset)`.
pub fn produce_raw(
    addr: &str,
    topic: &str,
    partition: i32,
    acks: i16,
    value: &str,
) -> Result<(i16, i64)> {
    use kafka_protocol::messages::ProduceResponse;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: crate::clients::now_ms(),
        key: None,
        value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    };
    let mut batch = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    let request = kafka_protocol::messages::ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                    topic.to_string(),
                )))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch.freeze())),
                ]),
        ]);
    let response: ProduceResponse = crate::cluster::request(addr, ApiKey::Produce, 9, &request)?;
    let answer = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("Produce answered no partition")?;
    Ok((answer.error_code, answer.base_offset))
}

/// Where one stored record came from, as its batch header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOrigin {
    /// Offset.
    pub offset: i64,
    /// Epoch of the leader that appended the batch.
    pub leader_epoch: i32,
    /// Producer id (-1: not idempotent).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// The record's sequence number.
    pub sequence: i32,
    /// The record's value.
    pub value: String,
}

/// The records of `topic`-`partition` in `[from, to)` with their batches' producer id, epoch and
/// sequences, read from the leader at `addr` with a raw Fetch v12 (a client library would
/// hide them). Used to tell how a record came to be stored twice.
pub fn record_origins(
    addr: &str,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Result<Vec<RecordOrigin>> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::RecordBatchDecoder;
    let mut origins = Vec::new();
    let mut next = from;
    while next < to {
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(next)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let response: FetchResponse = crate::cluster::request(addr, ApiKey::Fetch, 12, &request)?;
        let data = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .context("Fetch answered no partition")?;
        if data.error_code != 0 {
            bail!(
                "Fetch of {topic}-{partition} at {next}: error {}",
                data.error_code
            );
        }
        let mut bytes = data.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            break;
        }
        let before = next;
        while !bytes.is_empty() {
            let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else {
                break;
            };
            for r in set.records {
                next = next.max(r.offset + 1);
                if r.offset >= from && r.offset < to {
                    origins.push(RecordOrigin {
                        offset: r.offset,
                        leader_epoch: r.partition_leader_epoch,
                        producer_id: r.producer_id,
                        producer_epoch: r.producer_epoch,
                        sequence: r.sequence,
                        value: String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                            .into_owned(),
                    });
                }
            }
        }
        if next == before {
            break;
        }
    }
    Ok(origins)
}
