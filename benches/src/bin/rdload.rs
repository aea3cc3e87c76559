//! `rdload`: a librdkafka load generator for the comparison with Apache Kafka, so that the
//! figures are not only the Java client's.
//!
//! - `produce`: as fast as the producer goes, a fixed number of records; throughput and
//!   acknowledgement latency.
//! - `consume`: reads a fixed number of records from the beginning of every partition (no group
//!   rebalance: partitions are assigned); throughput.
//! - `latency`: produces at a fixed rate with the intended send time in the first 8 bytes of each
//!   value, consumes in the same process, and records the end-to-end latency in an HDR
//!   histogram. The intended time (not the actual one) is stamped, so that a stalled producer is
//!   charged for the wait (no coordinated omission).
//! - `create-topic`: creates a topic through the admin API.
//!
//! Each mode prints one JSON object (`spate_benches::load::LoadReport`) on stdout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use spate_benches::load::{Latency, LoadReport};

/// Largest latency the histograms hold, in microseconds (a minute); larger values saturate.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant digits of the histograms.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How long metadata and admin requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final flush of a producer may take before the run counts as failed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a consumer waits without any record before it gives up.
const CONSUME_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the latency run's consumer keeps reading after the producer stopped.
const LATENCY_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes at the start of each latency-run value holding the intended send time (ns since epoch).
const TIMESTAMP_BYTES: usize = 8;
/// Percentiles written as the CDF of a run, for plots.
const CDF_PERCENTILES: [f64; 24] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0, 97.5, 99.0,
    99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9999, 100.0,
];

#[derive(Parser)]
#[command(about = "librdkafka load generator for Spate's comparison with Apache Kafka")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Produce a fixed number of records as fast as possible.
    Produce(ProduceArgs),
    /// Consume a fixed number of records from the beginning.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate and measure end-to-end latency.
    Latency(LatencyArgs),
    /// Create a topic.
    CreateTopic(CreateTopicArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Extra librdkafka properties, `key=value`, repeatable.
    #[arg(long = "prop")]
    props: Vec<String>,
}

#[derive(Args, Clone)]
struct ProducerSettings {
    /// Value size of each record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// `acks`.
    #[arg(long, default_value = "all")]
    acks: String,
    /// `batch.size`.
    #[arg(long, default_value_t = 65536)]
    batch_bytes: usize,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerSettings,
    /// Records to produce.
    #[arg(long)]
    records: u64,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Records to consume.
    #[arg(long)]
    records: u64,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerSettings,
    /// Records per second.
    #[arg(long)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long)]
    duration_s: f64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
}

#[derive(Args)]
struct CreateTopicArgs {
    #[command(flatten)]
    common: Common,
    /// Partitions.
    #[arg(long)]
    partitions: i32,
    /// Replication factor.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Topic configs, `key=value`, repeatable.
    #[arg(long = "config")]
    configs: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Produce(args) => produce(&args),
        Mode::Consume(args) => consume(&args),
        Mode::Latency(args) => latency(&args),
        Mode::CreateTopic(args) => create_topic(&args).map(|()| LoadReport {
            mode: "create-topic".into(),
            ..LoadReport::default()
        }),
    };
    match result {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("rdload: cannot encode the report: {error}");
                std::process::exit(1);
            }
        },
        Err(error) => {
            eprintln!("rdload: {error:#}");
            std::process::exit(1);
        }
    }
}

fn split_prop(prop: &str) -> Result<(&str, &str)> {
    prop.split_once('=')
        .with_context(|| format!("property {prop:?} is not key=value"))
}

fn client_config(common: &Common) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &common.bootstrap);
    for prop in &common.props {
        let (key, value) = split_prop(prop)?;
        config.set(key, value);
    }
    Ok(config)
}

fn producer_config(common: &Common, settings: &ProducerSettings) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &common.bootstrap)
        .set("acks", &settings.acks)
        .set("batch.size", settings.batch_bytes.to_string())
        .set("linger.ms", settings.linger_ms.to_string())
        .set("compression.type", "none")
        // Room for a whole second of records at several hundred MB/s, so that the queue is not
        // what limits throughput.
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for prop in &common.props {
        let (key, value) = split_prop(prop)?;
        config.set(key, value);
    }
    Ok(config)
}

/// Counts acknowledgements and records their latency; shared with the delivery callback.
struct Deliveries {
    started: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: ErrorSlot,
    histogram: std::sync::Mutex<Histogram<u64>>,
}

/// Holds the first error message reported by librdkafka's delivery callbacks.
#[derive(Default)]
struct ErrorSlot(std::sync::Mutex<Option<String>>);

impl ErrorSlot {
    /// Keeps `message` if no error was kept before.
    fn offer(&self, message: String) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(message);
        }
    }

    /// The kept error.
    fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

struct DeliveryContext(Arc<Deliveries>);

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    /// The send time, in microseconds since the run started.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        match result {
            Ok(_) => {
                self.0.acked.fetch_add(1, Ordering::Relaxed);
                let now_us = self.0.started.elapsed().as_micros() as u64;
                if let Ok(mut histogram) = self.0.histogram.lock() {
                    histogram.saturating_record(now_us.saturating_sub(sent_us as u64).max(1));
                }
            }
            Err((error, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                self.0.first_error.offer(error.to_string());
            }
        }
    }
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .context("cannot create a histogram")
}

fn latency_of(histogram: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
        cdf: CDF_PERCENTILES
            .iter()
            .map(|p| (*p, ms(histogram.value_at_quantile(p / 100.0))))
            .collect(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Sends one record, waiting for queue space when librdkafka's queue is full.
fn send(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    value: &[u8],
    sent_us: usize,
) -> Result<()> {
    let mut record = BaseRecord::with_opaque_to(topic, sent_us).payload(value);
    loop {
        match producer.send::<[u8], [u8]>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => bail!("send failed: {error}"),
        }
    }
}

fn produce(args: &ProduceArgs) -> Result<LoadReport> {
    let deliveries = Arc::new(Deliveries {
        started: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Default::default(),
        histogram: std::sync::Mutex::new(histogram()?),
    });
    let producer: BaseProducer<DeliveryContext> = producer_config(&args.common, &args.producer)?
        .create_with_context(DeliveryContext(deliveries.clone()))
        .context("cannot create the producer")?;
    let value = vec![b'x'; args.producer.record_bytes];
    let start = Instant::now();
    for i in 0..args.records {
        let sent_us = deliveries.started.elapsed().as_micros() as usize;
        send(&producer, &args.common.topic, &value, sent_us)?;
        if i % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(FLUSH_TIMEOUT)
        .context("the producer did not flush in time")?;
    let seconds = start.elapsed().as_secs_f64();
    let records = deliveries.acked.load(Ordering::Relaxed);
    let bytes = records * args.producer.record_bytes as u64;
    let latency = deliveries.histogram.lock().ok().map(|h| latency_of(&h));
    Ok(LoadReport {
        mode: "produce".into(),
        records,
        bytes,
        seconds,
        records_per_s: records as f64 / seconds,
        mib_per_s: mib(bytes) / seconds,
        errors: deliveries.failed.load(Ordering::Relaxed),
        first_error: deliveries.first_error.take(),
        latency,
        target_rate_per_s: None,
    })
}

/// A consumer assigned every partition of the topic at `offset`.
fn assigned_consumer(common: &Common, offset: Offset) -> Result<BaseConsumer> {
    let mut config = client_config(common)?;
    config
        .set("group.id", format!("rdload-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&common.topic), ADMIN_TIMEOUT)
        .context("metadata request failed")?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        bail!("topic {} has no partitions", common.topic);
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(&common.topic, p, offset)
            .context("cannot build the assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("cannot assign partitions")?;
    Ok(consumer)
}

fn consume(args: &ConsumeArgs) -> Result<LoadReport> {
    let consumer = assigned_consumer(&args.common, Offset::Beginning)?;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    while records < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                records += 1;
                bytes += message.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(error)) => bail!("consume failed after {records} records: {error}"),
            None if last_progress.elapsed() > CONSUME_IDLE_TIMEOUT => bail!(
                "no record for {CONSUME_IDLE_TIMEOUT:?} after {records} of {} records",
                args.records
            ),
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    Ok(LoadReport {
        mode: "consume".into(),
        records,
        bytes,
        seconds,
        records_per_s: records as f64 / seconds,
        mib_per_s: mib(bytes) / seconds,
        ..LoadReport::default()
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn latency(args: &LatencyArgs) -> Result<LoadReport> {
    if args.producer.record_bytes < TIMESTAMP_BYTES {
        bail!("records must hold at least {TIMESTAMP_BYTES} bytes for the timestamp");
    }
    if args.rate <= 0.0 {
        bail!("the rate must be positive");
    }
    let consumer = assigned_consumer(&args.common, Offset::End)?;
    // Let the consumer resolve its end offsets before the first record is sent, so that none of
    // the measured records is skipped.
    for _ in 0..10 {
        consumer.poll(Duration::from_millis(100));
    }
    let measure_from_ns = now_ns() + (args.warmup_s * 1e9) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let measured_sent = Arc::new(AtomicU64::new(0));
    let reader = {
        let stop = stop.clone();
        let measured_sent = measured_sent.clone();
        thread::spawn(move || -> Result<(Histogram<u64>, u64, u64)> {
            let mut histogram = histogram()?;
            let mut received = 0u64;
            let mut bytes = 0u64;
            let mut drain_started: Option<Instant> = None;
            loop {
                if stop.load(Ordering::Acquire) {
                    let started = *drain_started.get_or_insert_with(Instant::now);
                    if received >= measured_sent.load(Ordering::Acquire)
                        || started.elapsed() > LATENCY_DRAIN_TIMEOUT
                    {
                        break;
                    }
                }
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(message)) => {
                        let now = now_ns();
                        let Some(payload) = message.payload() else {
                            continue;
                        };
                        let Some(stamp) = payload.get(..TIMESTAMP_BYTES) else {
                            continue;
                        };
                        let mut raw = [0u8; TIMESTAMP_BYTES];
                        raw.copy_from_slice(stamp);
                        let sent = u64::from_be_bytes(raw);
                        if sent >= measure_from_ns {
                            received += 1;
                            bytes += payload.len() as u64;
                            histogram.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                        }
                    }
                    Some(Err(error)) => bail!("consume failed: {error}"),
                    None => {}
                }
            }
            Ok((histogram, received, bytes))
        })
    };

    let deliveries = Arc::new(Deliveries {
        started: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Default::default(),
        histogram: std::sync::Mutex::new(histogram()?),
    });
    let producer: BaseProducer<DeliveryContext> = producer_config(&args.common, &args.producer)?
        .create_with_context(DeliveryContext(deliveries.clone()))
        .context("cannot create the producer")?;
    let mut value = vec![b'x'; args.producer.record_bytes];
    let interval_ns = 1e9 / args.rate;
    let total = ((args.warmup_s + args.duration_s) * args.rate) as u64;
    let start_ns = now_ns();
    let start = Instant::now();
    let mut sent_measured = 0u64;
    for i in 0..total {
        let intended_ns = start_ns + (i as f64 * interval_ns) as u64;
        // Sleep while more than a millisecond ahead of schedule, spin the last stretch.
        loop {
            let now = now_ns();
            if now >= intended_ns {
                break;
            }
            if intended_ns - now > 1_000_000 {
                producer.poll(Duration::ZERO);
                thread::sleep(Duration::from_micros(500));
            } else {
                std::hint::spin_loop();
            }
        }
        value[..TIMESTAMP_BYTES].copy_from_slice(&intended_ns.to_be_bytes());
        let sent_us = deliveries.started.elapsed().as_micros() as usize;
        send(&producer, &args.common.topic, &value, sent_us)?;
        if intended_ns >= measure_from_ns {
            sent_measured += 1;
        }
        if i % 64 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    let produce_seconds = start.elapsed().as_secs_f64();
    let flushed = producer.flush(FLUSH_TIMEOUT);
    measured_sent.store(sent_measured, Ordering::Release);
    stop.store(true, Ordering::Release);
    let (histogram, received, bytes) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;
    flushed.context("the producer did not flush in time")?;
    let failed = deliveries.failed.load(Ordering::Relaxed);
    let missing = sent_measured.saturating_sub(received);
    let achieved = total as f64 / produce_seconds;
    let first_error = deliveries.first_error.take().or_else(|| {
        (missing > 0)
            .then(|| format!("{missing} of {sent_measured} measured records never arrived"))
    });
    Ok(LoadReport {
        mode: "latency".into(),
        records: received,
        bytes,
        seconds: args.duration_s,
        records_per_s: achieved,
        mib_per_s: mib(bytes) / args.duration_s,
        errors: failed + missing,
        first_error,
        latency: Some(latency_of(&histogram)),
        target_rate_per_s: Some(args.rate),
    })
}

fn create_topic(args: &CreateTopicArgs) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(&args.common)?
        .create()
        .context("cannot create the admin client")?;
    let configs: Vec<(&str, &str)> = args
        .configs
        .iter()
        .map(|c| split_prop(c))
        .collect::<Result<_>>()?;
    let mut topic = NewTopic::new(
        &args.common.topic,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    for (key, value) in &configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let runtime = block_on(admin.create_topics([&topic], &options));
    for result in runtime.context("CreateTopics failed")? {
        if let Err((name, code)) = result {
            bail!("cannot create topic {name}: {code}");
        }
    }
    Ok(())
}

/// Drives one future to completion on this thread. rdkafka's admin futures complete from
/// librdkafka's own threads, so a park/unpark waker is all they need.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context as TaskContext, Poll, Wake, Waker};

    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}
