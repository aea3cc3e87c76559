//! Consumer group members as real processes, for the group tests.
//!
//! Every group-member program (see `tests/clients/README.md`, "Group members") subscribes to
//! topics in a group, consumes, commits after every poll batch, and writes one JSON line per
//! step to an events file: `started`, `assigned`/`revoked`/`lost` (from the library's rebalance
//! callbacks), `record`, `committed`, `commit_failed`, `closed`. A test follows the members
//! through those files while they run and after they are stopped (a stop file: the member
//! closes cleanly and leaves the group) or SIGKILLed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::executor::block_on;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Deserialize;

use crate::kafka::{java, kafka_classpath};
use crate::paths::{self, installed};
use crate::process;

/// Pause between looks at the events files.
const EVENTS_POLL_INTERVAL_MS: u64 = 100;
/// How long a member may take to close after its stop file appears.
pub const MEMBER_STOP_TIMEOUT_MS: u64 = 30_000;
/// Bound on producing the test records.
const PRODUCE_TIMEOUT_MS: u64 = 30_000;

/// Which library a member runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberProgram {
    /// confluent-kafka (librdkafka) from Python.
    Librdkafka,
    /// org.apache.kafka:kafka-clients 4.3 (`classic` or `consumer` group protocol).
    Java,
    /// IBM Sarama at a protocol version (`2.0.0`, `3.6.0`, ...).
    Sarama(String),
    /// franz-go.
    FranzGo,
    /// kafkajs.
    KafkaJs,
}

impl MemberProgram {
    /// Short name for files.
    pub fn name(&self) -> String {
        match self {
            MemberProgram::Librdkafka => "librdkafka".into(),
            MemberProgram::Java => "java".into(),
            MemberProgram::Sarama(v) => format!("sarama-{v}"),
            MemberProgram::FranzGo => "franzgo".into(),
            MemberProgram::KafkaJs => "kafkajs".into(),
        }
    }

    fn command(&self) -> Result<Command> {
        let clients = paths::clients_dir();
        let cache = paths::cache_dir();
        Ok(match self {
            MemberProgram::Librdkafka => {
                let python = installed(
                    clients.join("python/.venv/bin/python"),
                    "the Python client venv (confluent-kafka)",
                )?;
                let mut cmd = Command::new(python);
                cmd.arg(clients.join("python/group_member.py"));
                cmd
            }
            MemberProgram::Java => {
                let classes = installed(
                    cache.join("java/client/classes"),
                    "the compiled Java client",
                )?;
                let classpath = fs::read_to_string(installed(
                    cache.join("java/client/classpath"),
                    "the Java client classpath",
                )?)?;
                let mut cmd = Command::new(java());
                cmd.arg("-Xmx256m")
                    .arg("-cp")
                    .arg(format!("{}:{}", classes.display(), classpath.trim()))
                    .arg("io.spate.e2e.GroupMember");
                cmd
            }
            MemberProgram::Sarama(version) => {
                let bin = installed(cache.join("bin/groupmember"), "the Go group member")?;
                let mut cmd = Command::new(bin);
                cmd.args(["--library", "sarama", "--sarama-version", version]);
                cmd
            }
            MemberProgram::FranzGo => {
                let bin = installed(cache.join("bin/groupmember"), "the Go group member")?;
                let mut cmd = Command::new(bin);
                cmd.args(["--library", "franzgo"]);
                cmd
            }
            MemberProgram::KafkaJs => {
                installed(
                    clients.join("node/node_modules/kafkajs/package.json"),
                    "kafkajs (npm)",
                )?;
                let mut cmd = Command::new("node");
                cmd.arg(clients.join("node/group_member.js"));
                cmd
            }
        })
    }
}

/// How a member joins.
#[derive(Debug, Clone)]
pub struct MemberOptions {
    /// Bootstrap address.
    pub bootstrap: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Group id.
    pub group: String,
    /// Static membership instance id.
    pub instance_id: Option<String>,
    /// Subscribe by regular expression instead of `topics` (Java member only).
    pub topic_pattern: Option<String>,
    /// Client-side assignor (`range`, `roundrobin`, `sticky`, `cooperative-sticky`).
    pub assignor: Option<String>,
    /// `classic` or `consumer` (KIP-848).
    pub protocol: Option<String>,
    /// Session timeout (classic protocol).
    pub session_timeout_ms: Option<u32>,
}

/// One line of a member's events file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The member runs.
    Started {
        /// When, ms since the epoch.
        ts: i64,
    },
    /// Partitions given to the member (all of them for eager assignors, the added ones for
    /// cooperative ones).
    Assigned {
        /// `(topic, partition)`.
        partitions: Vec<(String, i32)>,
        /// When.
        ts: i64,
    },
    /// Partitions taken away.
    Revoked {
        /// `(topic, partition)`.
        partitions: Vec<(String, i32)>,
        /// When.
        ts: i64,
    },
    /// Partitions lost (the member was fenced).
    Lost {
        /// `(topic, partition)`.
        partitions: Vec<(String, i32)>,
        /// When.
        ts: i64,
    },
    /// A record consumed.
    Record {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Key, hex.
        #[serde(default)]
        key: Option<String>,
        /// When.
        ts: i64,
    },
    /// Offsets committed: `(topic, partition, next offset)`.
    Committed {
        /// The committed offsets.
        offsets: Vec<(String, i32, i64)>,
        /// When.
        ts: i64,
    },
    /// A refused commit.
    CommitFailed {
        /// The error.
        error: String,
        /// When.
        ts: i64,
    },
    /// A consume error.
    Error {
        /// The error.
        error: String,
        /// When.
        ts: i64,
    },
    /// The member closed cleanly.
    Closed {
        /// When.
        ts: i64,
    },
}

/// A running group member process.
pub struct GroupMember {
    /// Name for messages.
    pub name: String,
    child: Option<Child>,
    events: PathBuf,
    stop_file: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl GroupMember {
    /// Starts a member; its files go to `work/<name>.*`.
    pub fn start(
        program: &MemberProgram,
        options: &MemberOptions,
        work: &Path,
        name: &str,
    ) -> Result<GroupMember> {
        let events = work.join(format!("{name}.events.jsonl"));
        let stop_file = work.join(format!("{name}.stop"));
        let _ = fs::remove_file(&stop_file);
        let mut cmd = program.command()?;
        cmd.args(["--bootstrap", &options.bootstrap])
            .args(["--group", &options.group])
            .arg("--out")
            .arg(&events)
            .arg("--stop-file")
            .arg(&stop_file)
            .args(["--client-id", name]);
        for topic in &options.topics {
            cmd.args(["--topic", topic]);
        }
        if let Some(instance) = &options.instance_id {
            cmd.args(["--instance-id", instance]);
        }
        if let Some(pattern) = &options.topic_pattern {
            cmd.args(["--topic-pattern", pattern]);
        }
        if let Some(assignor) = &options.assignor {
            cmd.args(["--assignor", assignor]);
        }
        if let Some(protocol) = &options.protocol {
            cmd.args(["--protocol", protocol]);
        }
        if let Some(timeout) = options.session_timeout_ms {
            cmd.args(["--session-timeout-ms", &timeout.to_string()]);
        }
        cmd.current_dir(work);
        let stdout = work.join(format!("{name}.stdout"));
        let stderr = work.join(format!("{name}.stderr"));
        let child = process::spawn_logged(&mut cmd, &stdout, &stderr)?;
        Ok(GroupMember {
            name: name.to_string(),
            child: Some(child),
            events,
            stop_file,
            stdout,
            stderr,
        })
    }

    /// Every event so far (a partly written last line is ignored).
    pub fn events(&self) -> Result<Vec<Event>> {
        let text = match fs::read_to_string(&self.events) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).context(format!("cannot read {}", self.events.display())),
        };
        let mut events = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(event) => events.push(event),
                Err(_) if !text.ends_with('\n') && text.ends_with(line) => break,
                Err(e) => bail!("{}: bad event line {line:?}: {e}", self.name),
            }
        }
        Ok(events)
    }

    /// The partitions the member owns now, by its callbacks.
    pub fn owned(&self) -> Result<BTreeSet<(String, i32)>> {
        Ok(owned_after(&self.events()?))
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Creates the stop file and waits for a clean exit.
    pub fn stop(&mut self) -> Result<()> {
        fs::write(&self.stop_file, b"stop").context("cannot write the stop file")?;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status =
            process::wait_timeout(&mut child, Duration::from_millis(MEMBER_STOP_TIMEOUT_MS))?;
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("{} exited with {status}\n{}", self.name, self.logs()),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not stop in time\n{}", self.name, self.logs())
            }
        }
    }

    /// SIGKILL: the member vanishes without leaving the group.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of the member's output, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stderr ---\n{}\n--- {} stdout ---\n{}",
            self.name,
            process::tail(&self.stderr, process::LOG_TAIL_BYTES),
            self.name,
            process::tail(&self.stdout, process::LOG_TAIL_BYTES / 4)
        )
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill9();
    }
}

/// The partitions owned after `events`: `assigned` adds, `revoked` and `lost` remove.
pub fn owned_after(events: &[Event]) -> BTreeSet<(String, i32)> {
    let mut owned = BTreeSet::new();
    for event in events {
        match event {
            Event::Assigned { partitions, .. } => owned.extend(partitions.iter().cloned()),
            Event::Revoked { partitions, .. } | Event::Lost { partitions, .. } => {
                for p in partitions {
                    owned.remove(p);
                }
            }
            _ => {}
        }
    }
    owned
}

/// Records consumed, as `(topic, partition, offset)` in consumption order.
pub fn records(events: &[Event]) -> Vec<(String, i32, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Record {
                topic,
                partition,
                offset,
                ..
            } => Some((topic.clone(), *partition, *offset)),
            _ => None,
        })
        .collect()
}

/// The last committed offset per partition.
pub fn last_commits(events: &[Event]) -> BTreeMap<(String, i32), i64> {
    let mut commits = BTreeMap::new();
    for event in events {
        if let Event::Committed { offsets, .. } = event {
            for (t, p, o) in offsets {
                commits.insert((t.clone(), *p), *o);
            }
        }
    }
    commits
}

/// Waits until `check` returns `Ok(true)`, or fails after `timeout` with `what` and the last
/// state `check` reported through `describe`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<bool>,
    describe: impl Fn() -> String,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if check()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("{what}: not reached within {timeout:?}\n{}", describe());
        }
        thread::sleep(Duration::from_millis(EVENTS_POLL_INTERVAL_MS));
    }
}

/// Produces `count` records round-robin over `partitions` partitions (record `i` to partition
/// `i % partitions`, key `k<i % keys>`), in order, with librdkafka in-process.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    first: usize,
    count: usize,
) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("cannot create a producer")?;
    let mut futures = Vec::with_capacity(count);
    for i in first..first + count {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let partition = (i % partitions.max(1) as usize) as i32;
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        futures.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("enqueue failed: {e}"))?,
        );
    }
    for future in futures {
        match block_on(future) {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => bail!("produce to {topic} failed: {e}"),
            Err(_) => bail!("produce to {topic} was cancelled"),
        }
    }
    producer
        .flush(Duration::from_millis(PRODUCE_TIMEOUT_MS))
        .context("flush")?;
    Ok(())
}

/// Apache Kafka's `kafka-consumer-groups` main class.
pub const CONSUMER_GROUP_COMMAND: &str =
    "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// Runs `kafka-consumer-groups` with `args` and returns its stdout.
pub fn consumer_groups_tool(
    bootstrap: &str,
    args: &[&str],
    work: &Path,
    name: &str,
) -> Result<String> {
    let mut full = vec!["--bootstrap-server".to_string(), bootstrap.to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    let _ = kafka_classpath()?;
    crate::kafka::run_tool(CONSUMER_GROUP_COMMAND, &full, work, name)?.stdout_text()
}

/// A group scenario's knobs.
#[derive(Debug, Clone)]
pub struct SplitScenario {
    /// The member program.
    pub program: MemberProgram,
    /// `classic` or `consumer`; `None` for the library default.
    pub protocol: Option<String>,
    /// Client-side (classic) or server-side (consumer) assignor.
    pub assignor: Option<String>,
    /// Session timeout for classic members.
    pub session_timeout_ms: Option<u32>,
    /// Topic and group names are made from this.
    pub name: String,
}

/// Partitions of the scenario topic.
const SPLIT_PARTITIONS: i32 = 6;
/// Bound on the group settling after a membership change.
const SPLIT_SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

fn split_describe(members: &[&GroupMember]) -> String {
    members
        .iter()
        .map(|m| {
            let owned = m
                .owned()
                .map(|o| format!("{o:?}"))
                .unwrap_or_else(|e| e.to_string());
            format!("{}: owns {owned}\n{}", m.name, m.logs())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `members` own every partition exactly once, each within one of the others.
pub fn evenly_split(members: &[&GroupMember], partitions: i32) -> Result<bool> {
    let mut all = BTreeSet::new();
    let mut sizes = Vec::new();
    for m in members {
        let owned = m.owned()?;
        sizes.push(owned.len());
        for p in owned {
            if !all.insert(p) {
                return Ok(false);
            }
        }
    }
    let (min, max) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    Ok(all.len() == partitions as usize && max - min <= 1 && min > 0)
}

/// Whether every offset below `per_partition` of every partition of `topic` was consumed.
pub fn all_consumed(
    members: &[&GroupMember],
    topic: &str,
    partitions: i32,
    per_partition: i64,
) -> Result<bool> {
    let mut seen: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for m in members {
        for (t, p, o) in records(&m.events()?) {
            if t == topic {
                seen.entry(p).or_default().insert(o);
            }
        }
    }
    Ok((0..partitions).all(|p| {
        seen.get(&p)
            .is_some_and(|offsets| (0..per_partition).all(|o| offsets.contains(&o)))
    }))
}

/// The standard group scenario every member program runs: two members split six partitions
/// and consume everything; a third joins and takes its share; one leaves cleanly and the others
/// take its share; finally a new member of the same group starts exactly at the committed
/// offsets. `create_topic` makes the six-partition topic.
pub fn split_scenario(
    scenario: &SplitScenario,
    bootstrap: &str,
    work: &Path,
    create_topic: &dyn Fn(&str, i32) -> Result<()>,
) -> Result<()> {
    let topic = format!("{}-topic", scenario.name);
    let group = format!("{}-group", scenario.name);
    create_topic(&topic, SPLIT_PARTITIONS)?;
    produce(bootstrap, &topic, SPLIT_PARTITIONS, 0, 600)?;
    let options = MemberOptions {
        bootstrap: bootstrap.to_string(),
        topics: vec![topic.clone()],
        group,
        instance_id: None,
        topic_pattern: None,
        assignor: scenario.assignor.clone(),
        protocol: scenario.protocol.clone(),
        session_timeout_ms: scenario.session_timeout_ms,
    };
    let program = &scenario.program;
    let mut m1 = GroupMember::start(program, &options, work, "m1")?;
    let mut m2 = GroupMember::start(program, &options, work, "m2")?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "two members split the partitions",
        || evenly_split(&[&m1, &m2], SPLIT_PARTITIONS),
        || split_describe(&[&m1, &m2]),
    )?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "the first 600 records are consumed",
        || all_consumed(&[&m1, &m2], &topic, SPLIT_PARTITIONS, 100),
        || split_describe(&[&m1, &m2]),
    )?;
    let mut m3 = GroupMember::start(program, &options, work, "m3")?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "a third member takes its share",
        || evenly_split(&[&m1, &m2, &m3], SPLIT_PARTITIONS),
        || split_describe(&[&m1, &m2, &m3]),
    )?;
    m1.stop()?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "the remaining two take over after a clean leave",
        || evenly_split(&[&m2, &m3], SPLIT_PARTITIONS),
        || split_describe(&[&m2, &m3]),
    )?;
    produce(bootstrap, &topic, SPLIT_PARTITIONS, 600, 600)?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "all 1200 records are consumed",
        || all_consumed(&[&m1, &m2, &m3], &topic, SPLIT_PARTITIONS, 200),
        || split_describe(&[&m2, &m3]),
    )?;
    m2.stop()?;
    m3.stop()?;
    produce(bootstrap, &topic, SPLIT_PARTITIONS, 1200, 60)?;
    let mut m4 = GroupMember::start(program, &options, work, "m4")?;
    wait_until(
        SPLIT_SETTLE_TIMEOUT,
        "a restarted member consumes the 60 new records",
        || Ok(records(&m4.events()?).len() >= 60),
        || split_describe(&[&m4]),
    )?;
    // Let a replay, if there were one, show up before counting.
    thread::sleep(Duration::from_secs(1));
    let consumed = records(&m4.events()?);
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, p, o) in &consumed {
        firsts
            .entry(*p)
            .and_modify(|f| *f = (*f).min(*o))
            .or_insert(*o);
    }
    if consumed.len() != 60 || (0..SPLIT_PARTITIONS).any(|p| firsts.get(&p) != Some(&200)) {
        bail!(
            "the restarted member should resume at offset 200 of every partition and consume \
             exactly 60 records; it consumed {} starting at {firsts:?}\n{}",
            consumed.len(),
            m4.logs()
        );
    }
    m4.stop()?;
    Ok(())
}
