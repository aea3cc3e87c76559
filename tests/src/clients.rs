//! The Kafka clients under test behind one interface, [`KafkaClient`]: the client programs in
//! `tests/clients/` (Python, Node, Java, Go), kcat driven through its command line, and librdkafka
//! in-process through the `rdkafka` crate ([`crate::rdkafka_client`]).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::check::{ConfigEntry, NoneOffset};
use crate::kafka::java;
use crate::paths::{self, installed};
use crate::process;
use crate::records::{self, Consumed, Header, Produced, Profile, Record};

/// Bound on one produce or consume run of a client program (10,000 records take seconds against
/// Kafka; the rest is margin for a loaded machine, and the cost of a broken broker).
pub const CLIENT_BULK_TIMEOUT_MS: u64 = 90_000;
/// Bound on one admin command (create topic, list offsets, describe configs); the programs give
/// up on a request after 30 s themselves.
pub const CLIENT_ADMIN_TIMEOUT_MS: u64 = 45_000;
/// What `consume` is told to wait for its records, below [`CLIENT_BULK_TIMEOUT_MS`] so the
/// program reports what it got instead of being killed. Against Kafka every client consumes
/// 10,000 records in a few seconds; the margin is for a loaded CI machine.
pub const CONSUME_TIMEOUT_MS: u64 = 45_000;
/// JVM heap of the Java client program.
pub const JAVA_CLIENT_HEAP_MIB: u32 = 256;

/// A compression codec of the Kafka record batch format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Codec {
    /// Every codec, in Kafka's attribute order.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The name Kafka configs use (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A capability a client may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Creating a topic with partitions and configs (an admin API).
    CreateTopic,
    /// Producing with this codec.
    Codec(Codec),
    /// Reporting each record's partition and offset after produce.
    DeliveryReports,
    /// ListOffsets by timestamp.
    ListOffsetsByTimestamp,
    /// DescribeConfigs of a topic.
    DescribeConfigs,
}

/// ListOffsets answers: `(timestamp, partition → offset)`.
pub type TimestampOffsets = Vec<(i64, BTreeMap<i32, i64>)>;

/// One Kafka client library, driven the same way whatever language it is written in.
pub trait KafkaClient {
    /// Stable short name (`confluent-kafka-python`, `kcat`, ...), used in topic names and results.
    fn name(&self) -> &'static str;
    /// The library and version, for the compatibility table.
    fn describe(&self) -> String;
    /// `Some(reason)` when the client cannot do `feature`.
    fn unsupported(&self, feature: Feature) -> Option<&'static str>;
    /// What the generated records may contain for this client.
    fn profile(&self) -> Profile {
        Profile::full()
    }
    /// How the client reports "no offset at or after this timestamp".
    fn none_offset(&self) -> NoneOffset {
        NoneOffset::MinusOne
    }
    /// Creates `topic` with `partitions` partitions, replication factor 1 and `configs`.
    fn create_topic(
        &self,
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        work: &Path,
    ) -> Result<()>;
    /// Produces `records` in order with `codec`; returns the delivery reports if the client
    /// gives them.
    fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        codec: Codec,
        records: &[Record],
        work: &Path,
    ) -> Result<Option<Vec<Produced>>>;
    /// Consumes every partition of `topic` from the earliest offset until `expect` records arrived.
    fn consume(
        &self,
        bootstrap: &str,
        topic: &str,
        expect: usize,
        work: &Path,
    ) -> Result<Vec<Consumed>>;
    /// ListOffsets by timestamp for every partition of `topic`, once per timestamp.
    fn list_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        timestamps: &[i64],
        work: &Path,
    ) -> Result<TimestampOffsets>;
    /// DescribeConfigs of `topic`.
    fn describe_configs(
        &self,
        bootstrap: &str,
        topic: &str,
        work: &Path,
    ) -> Result<Vec<ConfigEntry>>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct OffsetsFile {
    results: Vec<OffsetsResult>,
}

#[derive(Deserialize)]
struct OffsetsResult {
    timestamp: i64,
    offsets: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
struct ConfigsFile {
    configs: Vec<ConfigEntry>,
}

fn parse_offsets(path: &Path) -> Result<TimestampOffsets> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: OffsetsFile = serde_json::from_str(&text)
        .with_context(|| format!("bad offsets file {}", path.display()))?;
    file.results
        .into_iter()
        .map(|r| {
            let offsets = r
                .offsets
                .into_iter()
                .map(|(p, o)| {
                    Ok((
                        p.parse::<i32>()
                            .with_context(|| format!("partition {p:?}"))?,
                        o,
                    ))
                })
                .collect::<Result<_>>()?;
            Ok((r.timestamp, offsets))
        })
        .collect()
}

fn parse_configs(path: &Path) -> Result<Vec<ConfigEntry>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: ConfigsFile = serde_json::from_str(&text)
        .with_context(|| format!("bad configs file {}", path.display()))?;
    Ok(file.configs)
}

/// Which client program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// confluent-kafka (librdkafka) from Python.
    ConfluentPython,
    /// kafka-python.
    KafkaPython,
    /// kafkajs on Node.js.
    KafkaJs,
    /// org.apache.kafka:kafka-clients.
    Java,
    /// franz-go with kadm.
    FranzGo,
    /// IBM Sarama.
    Sarama,
}

/// A client program from `tests/clients/` that implements the common command-line interface
/// (see `tests/clients/README.md`).
pub struct ProgramClient {
    program: Program,
    command: Vec<String>,
}

impl ProgramClient {
    /// Finds the installed program; an error naming `tests/setup` if it is not installed.
    pub fn find(program: Program) -> Result<ProgramClient> {
        let clients = paths::clients_dir();
        let cache = paths::cache_dir();
        let python = || {
            installed(
                clients.join("python/.venv/bin/python"),
                "the Python client venv (confluent-kafka, kafka-python)",
            )
        };
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let command = match program {
            Program::ConfluentPython => vec![
                path(python()?),
                path(clients.join("python/confluent_client.py")),
            ],
            Program::KafkaPython => vec![
                path(python()?),
                path(clients.join("python/kafka_python_client.py")),
            ],
            Program::KafkaJs => {
                installed(
                    clients.join("node/node_modules/kafkajs/package.json"),
                    "kafkajs (npm)",
                )?;
                vec!["node".to_owned(), path(clients.join("node/client.js"))]
            }
            Program::Java => {
                let cp_file = installed(
                    cache.join("java/client/classpath"),
                    "the Java client (kafka-clients)",
                )?;
                let classes = installed(
                    cache.join("java/client/classes"),
                    "the compiled Java client",
                )?;
                let cp = fs::read_to_string(&cp_file)
                    .with_context(|| format!("cannot read {}", cp_file.display()))?;
                vec![
                    path(java()),
                    format!("-Xmx{JAVA_CLIENT_HEAP_MIB}m"),
                    // The client's own warnings go to stderr (captured); its info chatter does not.
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn".to_owned(),
                    "-cp".to_owned(),
                    format!("{}:{}", classes.display(), cp.trim()),
                    "io.spate.e2e.Client".to_owned(),
                ]
            }
            Program::FranzGo => vec![path(installed(
                cache.join("bin/franzgo"),
                "the franz-go client",
            )?)],
            Program::Sarama => vec![path(installed(
                cache.join("bin/sarama"),
                "the Sarama client",
            )?)],
        };
        Ok(ProgramClient { program, command })
    }

    fn run(
        &self,
        step: &str,
        args: &[String],
        work: &Path,
        timeout_ms: u64,
    ) -> Result<process::Output> {
        let mut cmd = Command::new(&self.command[0]);
        if self.program == Program::Java {
            // The compression codecs unpack native libraries into the temp dir at every start;
            // keep them in the work dir instead of leaving them in the shared /tmp.
            cmd.arg(format!("-Djava.io.tmpdir={}", work.display()));
        }
        cmd.args(&self.command[1..]).args(args).current_dir(work);
        process::run(
            &mut cmd,
            work,
            &format!("{}-{step}", self.name()),
            Duration::from_millis(timeout_ms),
        )
    }

    fn file(&self, work: &Path, topic: &str, what: &str) -> PathBuf {
        work.join(format!("{topic}.{}.{what}", self.name()))
    }
}

fn s(v: impl fmt::Display) -> String {
    v.to_string()
}

impl KafkaClient for ProgramClient {
    fn name(&self) -> &'static str {
        match self.program {
            Program::ConfluentPython => "confluent-kafka-python",
            Program::KafkaPython => "kafka-python",
            Program::KafkaJs => "kafkajs",
            Program::Java => "java",
            Program::FranzGo => "franz-go",
            Program::Sarama => "sarama",
        }
    }

    fn describe(&self) -> String {
        match self.program {
            Program::ConfluentPython => "confluent-kafka 2.16.1 (Python, librdkafka)",
            Program::KafkaPython => "kafka-python 3.0.12",
            Program::KafkaJs => "kafkajs 2.2.4 (+ kafkajs-snappy 1.1.0)",
            Program::Java => "Java kafka-clients 4.3.1",
            Program::FranzGo => "franz-go 1.22.2 + kadm 1.19.0",
            Program::Sarama => "IBM Sarama 1.61.1",
        }
        .to_owned()
    }

    fn unsupported(&self, feature: Feature) -> Option<&'static str> {
        match (self.program, feature) {
            (Program::KafkaJs, Feature::Codec(Codec::Lz4 | Codec::Zstd)) => Some(
                "kafkajs ships gzip only; its lz4 and zstd codec packages are native modules (not installed)",
            ),
            _ => None,
        }
    }

    fn none_offset(&self) -> NoneOffset {
        match self.program {
            // admin.fetchTopicOffsetsByTimestamp replaces -1 with the partition's end offset.
            Program::KafkaJs => NoneOffset::EndOffset,
            _ => NoneOffset::MinusOne,
        }
    }

    fn create_topic(
        &self,
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        work: &Path,
    ) -> Result<()> {
        let mut args = vec![
            s("create-topic"),
            s("--bootstrap"),
            s(bootstrap),
            s("--topic"),
            s(topic),
            s("--partitions"),
            s(partitions),
        ];
        for (k, v) in configs {
            args.extend([s("--config"), format!("{k}={v}")]);
        }
        self.run(
            &format!("{topic}-create"),
            &args,
            work,
            CLIENT_ADMIN_TIMEOUT_MS,
        )?;
        Ok(())
    }

    fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        codec: Codec,
        records: &[Record],
        work: &Path,
    ) -> Result<Option<Vec<Produced>>> {
        let input = self.file(work, topic, "input.jsonl");
        let out = self.file(work, topic, "produced.jsonl");
        records::write_input(&input, records)?;
        let args = [
            s("produce"),
            s("--bootstrap"),
            s(bootstrap),
            s("--topic"),
            s(topic),
            s("--input"),
            s(input.display()),
            s("--codec"),
            s(codec),
            s("--out"),
            s(out.display()),
        ];
        self.run(
            &format!("{topic}-produce"),
            &args,
            work,
            CLIENT_BULK_TIMEOUT_MS,
        )?;
        Ok(Some(records::read_produced(&out)?))
    }

    fn consume(
        &self,
        bootstrap: &str,
        topic: &str,
        expect: usize,
        work: &Path,
    ) -> Result<Vec<Consumed>> {
        let out = self.file(work, topic, "consumed.jsonl");
        let args = [
            s("consume"),
            s("--bootstrap"),
            s(bootstrap),
            s("--topic"),
            s(topic),
            s("--expect"),
            s(expect),
            s("--timeout-ms"),
            s(CONSUME_TIMEOUT_MS),
            s("--out"),
            s(out.display()),
        ];
        let run = self.run(
            &format!("{topic}-consume"),
            &args,
            work,
            CLIENT_BULK_TIMEOUT_MS,
        );
        // A short read still leaves a file worth checking: the checker says what is missing.
        match (run, records::read_consumed(&out)) {
            (Ok(_), consumed) => consumed,
            (Err(e), Ok(consumed)) if !consumed.is_empty() => {
                eprintln!(
                    "{}: consume failed after {} records: {e:#}",
                    self.name(),
                    consumed.len()
                );
                Ok(consumed)
            }
            (Err(e), _) => Err(e),
        }
    }

    fn list_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        timestamps: &[i64],
        work: &Path,
    ) -> Result<TimestampOffsets> {
        let out = self.file(work, topic, "offsets.json");
        let mut args = vec![
            s("list-offsets"),
            s("--bootstrap"),
            s(bootstrap),
            s("--topic"),
            s(topic),
        ];
        for ts in timestamps {
            args.extend([s("--timestamp"), s(ts)]);
        }
        args.extend([s("--out"), s(out.display())]);
        self.run(
            &format!("{topic}-list-offsets"),
            &args,
            work,
            CLIENT_ADMIN_TIMEOUT_MS,
        )?;
        parse_offsets(&out)
    }

    fn describe_configs(
        &self,
        bootstrap: &str,
        topic: &str,
        work: &Path,
    ) -> Result<Vec<ConfigEntry>> {
        let out = self.file(work, topic, "configs.json");
        let args = [
            s("describe-configs"),
            s("--bootstrap"),
            s(bootstrap),
            s("--topic"),
            s(topic),
            s("--out"),
            s(out.display()),
        ];
        self.run(
            &format!("{topic}-describe-configs"),
            &args,
            work,
            CLIENT_ADMIN_TIMEOUT_MS,
        )?;
        parse_configs(&out)
    }
}

/// kcat (Debian's package, librdkafka underneath), driven through its command line as a shell
/// user would: keys and values through stdin with a tab as key delimiter, headers with `-H`
/// (the same for every record of a run), JSON output with `-J`.
pub struct Kcat {
    bin: PathBuf,
}

/// The headers kcat puts on every record (`-H name=value`), repeats adjacent.
pub fn kcat_headers() -> Vec<Header> {
    let h = |n: &str, v: &str| Header {
        name: n.to_owned(),
        value: Some(v.as_bytes().to_vec()),
    };
    vec![
        h("source", "kcat"),
        h("dup", "1"),
        h("dup", "2"),
        h("empty", ""),
    ]
}

#[derive(Deserialize)]
struct KcatMessage {
    partition: i32,
    offset: i64,
    tstype: String,
    ts: i64,
    #[serde(default)]
    headers: Option<Vec<Option<String>>>,
    key: Option<String>,
    payload: Option<String>,
}

impl Kcat {
    /// Finds `kcat` on `PATH`; an error naming `tests/setup` if it is not installed.
    pub fn find() -> Result<Kcat> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("kcat");
            if bin.exists() {
                return Ok(Kcat { bin });
            }
        }
        bail!("kcat is not installed (not on PATH): run `tests/setup` from the repository root")
    }

    fn command(&self, bootstrap: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-b", bootstrap, "-q"]);
        cmd
    }

    fn partitions(&self, bootstrap: &str, topic: &str, work: &Path) -> Result<Vec<i32>> {
        #[derive(Deserialize)]
        struct Meta {
            topics: Vec<MetaTopic>,
        }
        #[derive(Deserialize)]
        struct MetaTopic {
            topic: String,
            partitions: Vec<MetaPartition>,
        }
        #[derive(Deserialize)]
        struct MetaPartition {
            partition: i32,
        }
        let mut cmd = self.command(bootstrap);
        cmd.args(["-L", "-J", "-t", topic]).current_dir(work);
        let out = process::run(
            &mut cmd,
            work,
            &format!("kcat-{topic}-metadata"),
            Duration::from_millis(CLIENT_ADMIN_TIMEOUT_MS),
        )?;
        let meta: Meta =
            serde_json::from_str(&out.stdout_text()?).context("bad kcat -L -J output")?;
        let mut ps: Vec<i32> = meta
            .topics
            .iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.partitions.iter().map(|p| p.partition))
            .collect();
        ps.sort_unstable();
        if ps.is_empty() {
            bail!("kcat -L lists no partitions for {topic}");
        }
        Ok(ps)
    }
}

impl KafkaClient for Kcat {
    fn name(&self) -> &'static str {
        "kcat"
    }

    fn describe(&self) -> String {
        "kcat 1.7.1 (Debian)".to_owned()
    }

    fn unsupported(&self, feature: Feature) -> Option<&'static str> {
        match feature {
            Feature::CreateTopic | Feature::DescribeConfigs => Some("kcat has no admin commands"),
            Feature::DeliveryReports => Some("kcat -P prints no offsets"),
            Feature::Codec(_) | Feature::ListOffsetsByTimestamp => None,
        }
    }

    fn profile(&self) -> Profile {
        Profile {
            binary: false,
            per_record_headers: false,
            fixed_headers: kcat_headers(),
            explicit_timestamps: false,
        }
    }

    fn create_topic(&self, _: &str, _: &str, _: i32, _: &[(&str, &str)], _: &Path) -> Result<()> {
        bail!("kcat has no admin commands")
    }

    fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        codec: Codec,
        records: &[Record],
        work: &Path,
    ) -> Result<Option<Vec<Produced>>> {
        let input = work.join(format!("{topic}.kcat.input.txt"));
        let mut text = Vec::new();
        for r in records {
            let (Some(key), Some(value)) = (&r.key, &r.value) else {
                bail!("kcat input needs a key and a value");
            };
            if key.contains(&b'\t') || [key, value].iter().any(|b| b.contains(&b'\n')) {
                bail!("kcat input must not contain tabs in keys or newlines");
            }
            text.extend_from_slice(key);
            text.push(b'\t');
            text.extend_from_slice(value);
            text.push(b'\n');
        }
        fs::write(&input, text).with_context(|| format!("cannot write {}", input.display()))?;
        let mut cmd = self.command(bootstrap);
        cmd.args(["-P", "-t", topic, "-K", "\\t", "-z", codec.name()]);
        for h in kcat_headers() {
            let value =
                String::from_utf8_lossy(h.value.as_deref().unwrap_or_default()).into_owned();
            cmd.args(["-H", &format!("{}={value}", h.name)]);
        }
        cmd.arg("-l").arg(&input).current_dir(work);
        process::run(
            &mut cmd,
            work,
            &format!("kcat-{topic}-produce"),
            Duration::from_millis(CLIENT_BULK_TIMEOUT_MS),
        )?;
        Ok(None)
    }

    fn consume(
        &self,
        bootstrap: &str,
        topic: &str,
        expect: usize,
        work: &Path,
    ) -> Result<Vec<Consumed>> {
        let mut cmd = self.command(bootstrap);
        cmd.args([
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-c",
            &expect.to_string(),
        ])
        .current_dir(work)
        .stdin(Stdio::null());
        let out = process::run(
            &mut cmd,
            work,
            &format!("kcat-{topic}-consume"),
            Duration::from_millis(CLIENT_BULK_TIMEOUT_MS),
        )?;
        let mut consumed = Vec::new();
        for line in out.stdout_text()?.lines().filter(|l| !l.trim().is_empty()) {
            let m: KcatMessage = serde_json::from_str(line)
                .with_context(|| format!("bad kcat -J line {line:.200}"))?;
            let mut headers = Vec::new();
            let flat = m.headers.unwrap_or_default();
            for pair in flat.chunks(2) {
                let [name, value] = pair else {
                    bail!("odd kcat header list in {line:.200}");
                };
                headers.push(Header {
                    name: name.clone().unwrap_or_default(),
                    value: value.as_ref().map(|v| v.as_bytes().to_vec()),
                });
            }
            consumed.push(Consumed {
                partition: m.partition,
                offset: m.offset,
                key: m.key.map(String::into_bytes),
                value: m.payload.map(String::into_bytes),
                headers,
                timestamp: m.ts,
                timestamp_type: match m.tstype.as_str() {
                    "create" => "CreateTime".to_owned(),
                    "logappend" => "LogAppendTime".to_owned(),
                    other => other.to_owned(),
                },
            });
        }
        records::write_consumed(
            &work.join(format!("{topic}.kcat.consumed.jsonl")),
            &consumed,
        )?;
        Ok(consumed)
    }

    fn list_offsets(
        &self,
        bootstrap: &str,
        topic: &str,
        timestamps: &[i64],
        work: &Path,
    ) -> Result<TimestampOffsets> {
        let partitions = self.partitions(bootstrap, topic, work)?;
        let mut results = Vec::new();
        for (n, &ts) in timestamps.iter().enumerate() {
            let mut cmd = self.command(bootstrap);
            cmd.args(["-Q", "-J"]);
            for p in &partitions {
                cmd.args(["-t", &format!("{topic}:{p}:{ts}")]);
            }
            cmd.current_dir(work);
            let out = process::run(
                &mut cmd,
                work,
                &format!("kcat-{topic}-query-{n}"),
                Duration::from_millis(CLIENT_ADMIN_TIMEOUT_MS),
            )?;
            // {"<topic>": {"topic": "<topic>", "0": {"partition": 0, "offset": 12}, ...}}
            let v: serde_json::Value =
                serde_json::from_str(&out.stdout_text()?).context("bad kcat -Q -J output")?;
            let mut offsets = BTreeMap::new();
            if let Some(obj) = v.get(topic).and_then(|t| t.as_object()) {
                for (k, entry) in obj {
                    if k == "topic" {
                        continue;
                    }
                    let partition = entry.get("partition").and_then(|p| p.as_i64());
                    let offset = entry.get("offset").and_then(|o| o.as_i64());
                    match (partition, offset) {
                        (Some(p), Some(o)) => {
                            offsets.insert(p as i32, o);
                        }
                        _ => bail!("kcat -Q entry without partition/offset: {entry}"),
                    }
                }
            }
            results.push((ts, offsets));
        }
        Ok(results)
    }

    fn describe_configs(&self, _: &str, _: &str, _: &Path) -> Result<Vec<ConfigEntry>> {
        bail!("kcat has no admin commands")
    }
}
