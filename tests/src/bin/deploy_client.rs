//! `deploy-client`: the Kafka client side of the deployment tests, as a program, so the same
//! code runs beside three local `spate` processes and inside a container on the podman
//! network of the three-container test (where only the pods' DNS names resolve).
//!
//! ```text
//! deploy-client create-topic BOOTSTRAP TOPIC PARTITIONS REPLICATION [KEY=VALUE...]
//! deploy-client produce BOOTSTRAP TOPIC PARTITIONS OUT_FILE STOP_FILE
//! deploy-client verify BOOTSTRAP TOPIC PARTITIONS ACKS_FILE
//! ```
//!
//! `produce` runs librdkafka's idempotent producer with `acks=all`, one record every few
//! milliseconds, round-robin over the partitions, until STOP_FILE exists; it then flushes and
//! writes one line per record to OUT_FILE: `acked SEQ PARTITION OFFSET`, `failed SEQ PARTITION
//! ERROR`, or `pending SEQ PARTITION`. `verify` reads every partition from the start to its high
//! watermark and checks the acknowledgements against it: every acknowledged record is at the
//! offset its acknowledgement named (no loss), no value appears twice (no duplicates), each
//! partition holds the values in send order, and nothing else is there. It prints one summary
//! line starting `verify:` and exits 1 on any violation.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// Pause between two produced records: about 200 records a second, enough to have records in
/// flight through every restart without filling the disk of a long run.
const PRODUCE_INTERVAL_MS: u64 = 5;
/// Upper bound on records one `produce` run sends, whatever the stop file says.
const PRODUCE_RECORDS_MAX: u64 = 500_000;
/// Upper bound on one `produce` run's sending phase.
const PRODUCE_DURATION_MS_MAX: u64 = 15 * 60 * 1000;
/// How long the idempotent producer retries one record (through leader moves and restarts)
/// before reporting it failed: longer than a restart of one node.
const MESSAGE_TIMEOUT_MS: u64 = 120_000;
/// Bound on the final flush of `produce`.
const FLUSH_TIMEOUT_MS: u64 = 150_000;
/// Bound on creating the topic, retried through transient errors.
const CREATE_TIMEOUT_MS: u64 = 60_000;
/// Bound on reading one partition to its high watermark in `verify`.
const READ_TIMEOUT_MS: u64 = 60_000;
/// Bound on one metadata or watermark request.
const REQUEST_TIMEOUT_MS: u64 = 10_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("create-topic") => create_topic(&args[1..]),
        Some("produce") => produce(&args[1..]),
        Some("verify") => verify(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: deploy-client create-topic|produce|verify ... (see the source's doc)"
        )),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("deploy-client: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn arg<'a>(args: &'a [String], index: usize, name: &str) -> Result<&'a str> {
    args.get(index)
        .map(String::as_str)
        .with_context(|| format!("missing argument {name}"))
}

fn create_topic(args: &[String]) -> Result<bool> {
    let bootstrap = arg(args, 0, "BOOTSTRAP")?;
    let topic = arg(args, 1, "TOPIC")?;
    let partitions: i32 = arg(args, 2, "PARTITIONS")?.parse()?;
    let replication: i32 = arg(args, 3, "REPLICATION")?.parse()?;
    let configs: Vec<(&str, &str)> = args[4..]
        .iter()
        .map(|kv| kv.split_once('=').context("configs are KEY=VALUE"))
        .collect::<Result<_>>()?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("cannot create an admin client")?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in &configs {
        new = new.set(k, v);
    }
    let options =
        AdminOptions::new().operation_timeout(Some(Duration::from_millis(REQUEST_TIMEOUT_MS)));
    let deadline = Instant::now() + Duration::from_millis(CREATE_TIMEOUT_MS);
    loop {
        let outcome = block_on(admin.create_topics([&new], &options));
        let error = match outcome {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => return Ok(true),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => return Ok(true),
                Some(Err((_, code))) => format!("{code:?}"),
                None => "no result".to_owned(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("CreateTopics {topic}: {error}");
        }
        eprintln!("deploy-client: CreateTopics {topic}: {error}; retrying");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One record's outcome.
#[derive(Debug, Clone)]
enum Outcome {
    Acked { offset: i64 },
    Failed(String),
}

/// Collects delivery reports, keyed by the record's sequence number.
#[derive(Default)]
struct Reports {
    outcomes: Mutex<HashMap<u64, Outcome>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Outcome::Acked {
                offset: message.offset(),
            },
            Err((error, _)) => Outcome::Failed(error.to_string()),
        };
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.insert(*seq, outcome);
        }
    }
}

fn value_of(seq: u64) -> String {
    format!("deploy-{seq:09}")
}

fn produce(args: &[String]) -> Result<bool> {
    let bootstrap = arg(args, 0, "BOOTSTRAP")?;
    let topic = arg(args, 1, "TOPIC")?;
    let partitions: u64 = arg(args, 2, "PARTITIONS")?.parse()?;
    ensure!(partitions > 0, "PARTITIONS must be positive");
    let out = PathBuf::from(arg(args, 3, "OUT_FILE")?);
    let stop = PathBuf::from(arg(args, 4, "STOP_FILE")?);
    let producer: BaseProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create_with_context(Reports::default())
        .context("cannot create the producer")?;
    let reports: Arc<Reports> = producer.context().clone();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut last_progress = Instant::now();
    while !stop.exists()
        && sent < PRODUCE_RECORDS_MAX
        && started.elapsed() < Duration::from_millis(PRODUCE_DURATION_MS_MAX)
    {
        let seq = sent;
        let value = value_of(seq);
        let partition = (seq % partitions) as i32;
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(seq))
            .partition(partition)
            .payload(value.as_bytes())
            .key(value.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("produce record {seq}: {error}"),
            }
        }
        sent += 1;
        producer.poll(Duration::from_millis(PRODUCE_INTERVAL_MS));
        if last_progress.elapsed() > Duration::from_secs(5) {
            let acked = reports.outcomes.lock().map(|o| o.len()).unwrap_or(0);
            eprintln!(
                "deploy-client: {:>4}s sent {sent}, answered {acked}",
                started.elapsed().as_secs()
            );
            last_progress = Instant::now();
        }
    }
    let flushed = producer.flush(Duration::from_millis(FLUSH_TIMEOUT_MS));
    let outcomes = reports
        .outcomes
        .lock()
        .map_err(|_| anyhow::anyhow!("delivery reports poisoned"))?
        .clone();
    let mut file = BufWriter::new(File::create(&out)?);
    let (mut acked, mut failed, mut pending) = (0, 0, 0);
    for seq in 0..sent {
        let partition = seq % partitions;
        match outcomes.get(&seq) {
            Some(Outcome::Acked { offset }) => {
                acked += 1;
                writeln!(file, "acked {seq} {partition} {offset}")?;
            }
            Some(Outcome::Failed(error)) => {
                failed += 1;
                writeln!(file, "failed {seq} {partition} {error}")?;
            }
            None => {
                pending += 1;
                writeln!(file, "pending {seq} {partition}")?;
            }
        }
    }
    file.flush()?;
    println!(
        "produce: sent {sent}, acknowledged {acked}, failed {failed}, unanswered {pending} in {:.1}s{}",
        started.elapsed().as_secs_f64(),
        if flushed.is_err() {
            " (flush timed out)"
        } else {
            ""
        }
    );
    Ok(true)
}

/// What the acknowledgements file says about one record.
struct Ack {
    partition: i32,
    offset: Option<i64>,
}

fn read_acks(path: &Path) -> Result<BTreeMap<u64, Ack>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut acks = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        let (Some(kind), Some(seq), Some(partition)) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            bail!("bad line in {}: {line}", path.display());
        };
        let offset = match *kind {
            "acked" => Some(
                fields
                    .get(3)
                    .context("acked line without offset")?
                    .parse::<i64>()?,
            ),
            "failed" | "pending" => None,
            other => bail!("unknown outcome {other} in {}", path.display()),
        };
        acks.insert(
            seq.parse()?,
            Ack {
                partition: partition.parse()?,
                offset,
            },
        );
    }
    Ok(acks)
}

/// Every record of `topic` partition `partition` from the log start to the high watermark.
fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Result<Vec<(i64, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "spate-deploy-verify")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .context("cannot create the consumer")?;
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .with_context(|| format!("watermarks of {topic}-{partition}"))?;
    let mut records = Vec::new();
    if high <= low {
        return Ok(records);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_millis(READ_TIMEOUT_MS);
    let mut next = low;
    while next < high {
        ensure!(
            Instant::now() < deadline,
            "{topic}-{partition}: read to {next} of {high} within {READ_TIMEOUT_MS} ms"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value = message
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                next = message.offset() + 1;
                records.push((message.offset(), value));
            }
            Some(Err(error)) => eprintln!("deploy-client: {topic}-{partition}: {error}"),
            None => {}
        }
    }
    Ok(records)
}

fn verify(args: &[String]) -> Result<bool> {
    let bootstrap = arg(args, 0, "BOOTSTRAP")?;
    let topic = arg(args, 1, "TOPIC")?;
    let partitions: i32 = arg(args, 2, "PARTITIONS")?.parse()?;
    let acks = read_acks(Path::new(arg(args, 3, "ACKS_FILE")?))?;
    let mut log: HashMap<(i32, i64), String> = HashMap::new();
    let mut violations: Vec<String> = Vec::new();
    let mut seen: HashMap<String, (i32, i64)> = HashMap::new();
    let mut records = 0usize;
    let (mut duplicated, mut reordered, mut strangers) = (0usize, 0usize, 0usize);
    for partition in 0..partitions {
        let mut previous: Option<u64> = None;
        for (offset, value) in read_partition(bootstrap, topic, partition)? {
            records += 1;
            let seq = value
                .strip_prefix("deploy-")
                .and_then(|s| s.parse::<u64>().ok());
            match seq.and_then(|s| acks.get(&s).map(|a| (s, a))) {
                Some((s, ack)) if ack.partition == partition => {
                    if previous.is_some_and(|p| p >= s) {
                        reordered += 1;
                        violations.push(format!("reordered: {value} at {partition}/{offset}"));
                    }
                    previous = Some(s);
                }
                _ => {
                    strangers += 1;
                    violations.push(format!("stranger: {value:?} at {partition}/{offset}"));
                }
            }
            if let Some(first) = seen.insert(value.clone(), (partition, offset)) {
                duplicated += 1;
                violations.push(format!(
                    "duplicated: {value} at {}/{} and {partition}/{offset}",
                    first.0, first.1
                ));
            }
            log.insert((partition, offset), value);
        }
    }
    let (mut acked, mut lost, mut unacked_present) = (0usize, 0usize, 0usize);
    for (seq, ack) in &acks {
        let value = value_of(*seq);
        match ack.offset {
            // librdkafka acknowledges some records without an offset (-1001): an idempotent
            // producer knows they were written because the broker accepted a later sequence.
            // They must be in their partition; where is unknown.
            Some(offset) if offset < 0 => {
                acked += 1;
                if seen.get(&value).is_none_or(|(p, _)| *p != ack.partition) {
                    lost += 1;
                    violations.push(format!(
                        "lost: {value} acknowledged in partition {} without an offset, found at {:?}",
                        ack.partition,
                        seen.get(&value)
                    ));
                }
            }
            Some(offset) => {
                acked += 1;
                if log.get(&(ack.partition, offset)) != Some(&value) {
                    lost += 1;
                    violations.push(format!(
                        "lost: {value} acknowledged at {}/{offset}, the log has {:?} there{}",
                        ack.partition,
                        log.get(&(ack.partition, offset)),
                        seen.get(&value)
                            .map(|(p, o)| format!(" and the value at {p}/{o}"))
                            .unwrap_or_default()
                    ));
                }
            }
            None => {
                if seen.contains_key(&value) {
                    unacked_present += 1;
                }
            }
        }
    }
    println!(
        "verify: produced {} acknowledged {acked}; log {records} records; lost {lost} duplicated {duplicated} reordered {reordered} strangers {strangers}; unacknowledged but present {unacked_present}",
        acks.len()
    );
    for violation in violations.iter().take(20) {
        println!("  {violation}");
    }
    Ok(violations.is_empty())
}
