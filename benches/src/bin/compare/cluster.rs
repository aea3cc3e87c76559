//! Starting and stopping the two systems under test with equivalent settings: Spate (`spate
//! serve`) and Apache Kafka (KRaft, combined broker and controller per node, from the Maven
//! jars), as one node or as three nodes on loopback.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::probe;

/// JVM heap of each Kafka broker: Kafka's own start script (`kafka-server-start.sh`) sets
/// `-Xms1G -Xmx1G`.
pub const KAFKA_HEAP_MIB: u32 = 1024;
/// JVM options of Kafka's start script (`KAFKA_JVM_PERFORMANCE_OPTS`), so the broker runs as
/// operators run it.
const KAFKA_JVM_OPTS: [&str; 6] = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];
/// Heap of Kafka's command-line tools (their scripts use 256 MiB; the perf tools get 1 GiB, as
/// `kafka-producer-perf-test.sh` does through `KAFKA_HEAP_OPTS` in Kafka's own docs' examples).
pub const KAFKA_TOOL_HEAP_MIB: u32 = 1024;
/// How long a node may take to be ready (first produce acknowledged, or all nodes registered).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long formatting a Kafka log directory may take.
const FORMAT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a clean stop (SIGTERM) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between readiness checks.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Which broker.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SystemKind {
    /// Spate.
    Spate,
    /// Apache Kafka.
    Kafka,
}

impl SystemKind {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Spate => "spate",
            SystemKind::Kafka => "kafka",
        }
    }
}

/// Broker settings both systems get, by Kafka name.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Nodes: 1 or 3.
    pub nodes: usize,
    /// `num.partitions`.
    pub partitions: u32,
    /// `default.replication.factor`.
    pub replication_factor: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
}

impl Settings {
    /// The broker configs written for both systems. Flush policy: neither forces fsync per
    /// message (Kafka's default, `log.flush.interval.messages` unset; Spate's is the same);
    /// retention: a week by time, unlimited by size (both defaults, stated); segments of 1 GiB.
    pub fn configs(&self) -> Vec<(String, String)> {
        [
            ("num.partitions", self.partitions.to_string()),
            (
                "default.replication.factor",
                self.replication_factor.to_string(),
            ),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            (
                "offsets.topic.replication.factor",
                self.replication_factor.to_string(),
            ),
            ("log.segment.bytes", "1073741824".to_string()),
            ("log.retention.ms", "604800000".to_string()),
            ("log.retention.bytes", "-1".to_string()),
            ("auto.create.topics.enable", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `spate` binary.
    pub spate_bin: PathBuf,
    /// The `rdload` binary.
    pub rdload_bin: PathBuf,
    /// The `java` launcher.
    pub java: PathBuf,
    /// Kafka's server and tools classpath.
    pub kafka_classpath: String,
    /// Scratch space for data directories and logs.
    pub work_dir: PathBuf,
}

/// One broker process.
pub struct Node {
    /// Its process.
    child: Option<Child>,
    /// Its working directory (data, logs).
    pub dir: PathBuf,
    /// Its Kafka address.
    pub kafka_addr: String,
}

impl Node {
    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(READY_POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{} did not stop within {STOP_TIMEOUT:?}",
            self.dir.display()
        )
    }

    /// Whether the process is still running.
    fn check_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "the broker in {} exited with {status}:\n{}",
                self.dir.display(),
                tail(&self.dir.join("stderr.log"), 3000)
            );
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a system took to come up.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// Process start to the Kafka port accepting connections.
    pub listening: Duration,
    /// Process start to the first produce (acks=all) acknowledged without error.
    pub first_produce: Duration,
    /// Kafka only: `kafka-storage format` before the start (not part of the startup time).
    pub format: Option<Duration>,
}

/// A running system: one or three nodes.
pub struct Running {
    /// Its nodes.
    pub nodes: Vec<Node>,
    /// How long it took to start.
    pub startup: Startup,
    root: PathBuf,
}

impl Running {
    /// Every node's Kafka address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.kafka_addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }

    /// Fails if a node has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.check_running()?;
        }
        Ok(())
    }

    /// Stops every node cleanly and removes the data.
    pub fn stop(mut self) -> Result<()> {
        let mut first_error = None;
        for node in &mut self.nodes {
            if let Err(error) = node.stop() {
                first_error.get_or_insert(error);
            }
        }
        self.nodes.clear();
        let _ = fs::remove_dir_all(&self.root);
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Nodes are killed by their own Drop first; the data goes with them.
        self.nodes.clear();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Spawns a child with its output in `dir`, killed if this process dies (PR_SET_PDEATHSIG), so
/// an interrupted comparison leaves no broker behind.
pub fn spawn_in(cmd: &mut Command, dir: &Path) -> Result<Child> {
    let out = File::create(dir.join("stdout.log"))?;
    let err = File::create(dir.join("stderr.log"))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: runs in the forked child before exec and calls only prctl (async-signal-safe).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))
}

/// The last `bytes` of a log file.
pub fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = String::new();
    use std::io::{Seek, SeekFrom};
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let _ = file.read_to_string(&mut text);
    text
}

/// A TCP port free on every one of `hosts`.
fn free_port(hosts: &[String], taken: &[u16]) -> Result<u16> {
    for _ in 0..200 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if taken.contains(&port) {
            continue;
        }
        if hosts
            .iter()
            .all(|h| std::net::TcpListener::bind((h.as_str(), port)).is_ok())
        {
            return Ok(port);
        }
    }
    bail!("no port is free on {hosts:?}")
}

/// Loopback address of node `i`: the shape of a StatefulSet, same ports on different hosts.
fn host(i: usize) -> String {
    format!("127.0.0.{}", i + 1)
}

/// Starts `kind` with `settings`, fresh data, and waits until a produce with `acks=all` to the
/// topic `probe_topic` is acknowledged (auto-created with the default partitions and
/// replication).
pub fn start(
    kind: SystemKind,
    settings: &Settings,
    tools: &Tools,
    probe_topic: &str,
) -> Result<Running> {
    let root = tools.work_dir.join(format!(
        "{}-{}n-{}",
        kind.name(),
        settings.nodes,
        std::process::id() as u64 * 1000 + next_run_id()
    ));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let hosts: Vec<String> = (0..settings.nodes).map(host).collect();
    let kafka_port = free_port(&hosts, &[])?;
    let controller_port = free_port(&hosts, &[kafka_port])?;
    let mut format = None;
    let mut commands = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let dir = root.join(format!("node-{i}"));
        fs::create_dir_all(&dir)?;
        let cmd = match kind {
            SystemKind::Spate => {
                spate_command(tools, settings, &dir, i, h, kafka_port, controller_port)
            }
            SystemKind::Kafka => {
                let cluster_id = "c3BhdGUtYmVuY2gtY29tcA";
                write_kafka_config(settings, &dir, i, h, kafka_port, controller_port)?;
                let started = Instant::now();
                kafka_format(tools, &dir, cluster_id)?;
                *format.get_or_insert(Duration::ZERO) += started.elapsed();
                kafka_command(tools, &dir)
            }
        };
        commands.push((cmd, dir, format!("{h}:{kafka_port}")));
    }
    let started = Instant::now();
    let mut nodes = Vec::new();
    for (mut cmd, dir, kafka_addr) in commands {
        let child = spawn_in(&mut cmd, &dir)?;
        nodes.push(Node {
            child: Some(child),
            dir,
            kafka_addr,
        });
    }
    let mut running = Running {
        nodes,
        startup: Startup {
            listening: Duration::ZERO,
            first_produce: Duration::ZERO,
            format,
        },
        root,
    };
    let first = running.nodes[0].kafka_addr.clone();
    let deadline = started + READY_TIMEOUT;
    loop {
        running.check_running()?;
        if probe::can_connect(&first) {
            running.startup.listening = started.elapsed();
            break;
        }
        if Instant::now() > deadline {
            bail!("{} did not listen within {READY_TIMEOUT:?}", kind.name());
        }
        thread::sleep(Duration::from_millis(2));
    }
    loop {
        running.check_running()?;
        match probe::produce_once(&running.bootstrap(), probe_topic) {
            Ok(()) => {
                running.startup.first_produce = started.elapsed();
                break;
            }
            Err(error) if Instant::now() > deadline => {
                bail!(
                    "{} did not acknowledge a produce within {READY_TIMEOUT:?}: {error:#}",
                    kind.name()
                )
            }
            Err(_) => thread::sleep(READY_POLL_INTERVAL),
        }
    }
    Ok(running)
}

fn next_run_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    RUNS.fetch_add(1, Ordering::Relaxed)
}

fn spate_command(
    tools: &Tools,
    settings: &Settings,
    dir: &Path,
    i: usize,
    host: &str,
    kafka_port: u16,
    controller_port: u16,
) -> Command {
    let voters = (0..settings.nodes)
        .map(|n| format!("{n}@{}:{controller_port}", self::host(n)))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(&tools.spate_bin);
    cmd.arg("serve")
        .args(["--node-id", &i.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--kafka-listen", &format!("{host}:{kafka_port}")])
        .args(["--admin-listen", &format!("{host}:0")])
        .args(["--cloudevents-listen", &format!("{host}:0")])
        .args(["--controller-listen", &format!("{host}:{controller_port}")])
        .args(["--controller-voters", &voters]);
    for (key, value) in settings.configs() {
        cmd.args(["--set", &format!("{key}={value}")]);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SPATE_") {
            cmd.env_remove(&name);
        }
    }
    // Logs at info, as shipped; the comparison measures the default build and settings.
    cmd.env_remove("RUST_LOG").current_dir(dir);
    cmd
}

fn write_kafka_config(
    settings: &Settings,
    dir: &Path,
    i: usize,
    host: &str,
    kafka_port: u16,
    controller_port: u16,
) -> Result<()> {
    let voters = (0..settings.nodes)
        .map(|n| format!("{}@{}:{controller_port}", n + 1, self::host(n)))
        .collect::<Vec<_>>()
        .join(",");
    let mut props = format!(
        "process.roles=broker,controller\n\
         node.id={}\n\
         controller.quorum.voters={voters}\n\
         listeners=PLAINTEXT://{host}:{kafka_port},CONTROLLER://{host}:{controller_port}\n\
         advertised.listeners=PLAINTEXT://{host}:{kafka_port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         transaction.state.log.replication.factor={rf}\n\
         transaction.state.log.min.isr={isr}\n\
         share.coordinator.state.topic.replication.factor={rf}\n\
         share.coordinator.state.topic.min.isr={isr}\n\
         group.initial.rebalance.delay.ms=0\n",
        i + 1,
        dir.join("data").display(),
        rf = settings.replication_factor,
        isr = settings.min_insync_replicas,
    );
    for (key, value) in settings.configs() {
        let _ = writeln!(props, "{key}={value}");
    }
    fs::write(dir.join("server.properties"), props)?;
    fs::write(
        dir.join("log4j2.properties"),
        "status = error\n\
         appender.out.type = Console\n\
         appender.out.name = STDOUT\n\
         appender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = INFO\n\
         rootLogger.appenderRefs = out\n\
         rootLogger.appenderRef.out.ref = STDOUT\n",
    )?;
    Ok(())
}

fn java_command(tools: &Tools, dir: &Path, heap_mib: u32, main_class: &str) -> Command {
    let mut cmd = Command::new(&tools.java);
    cmd.arg(format!("-Xms{heap_mib}m"))
        .arg(format!("-Xmx{heap_mib}m"))
        .args(KAFKA_JVM_OPTS)
        .arg(format!("-Djava.io.tmpdir={}", dir.display()))
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            dir.join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(&tools.kafka_classpath)
        .arg(main_class)
        .current_dir(dir);
    cmd
}

fn kafka_format(tools: &Tools, dir: &Path, cluster_id: &str) -> Result<()> {
    let mut cmd = java_command(tools, dir, 256, "kafka.tools.StorageTool");
    cmd.args(["format", "--cluster-id", cluster_id, "--config"])
        .arg(dir.join("server.properties"));
    let mut child = spawn_in(&mut cmd, dir)?;
    let deadline = Instant::now() + FORMAT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!(
                "kafka-storage format failed ({status}):\n{}",
                tail(&dir.join("stderr.log"), 3000)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("kafka-storage format did not finish within {FORMAT_TIMEOUT:?}");
        }
        thread::sleep(READY_POLL_INTERVAL);
    }
}

fn kafka_command(tools: &Tools, dir: &Path) -> Command {
    let mut cmd = java_command(tools, dir, KAFKA_HEAP_MIB, "kafka.Kafka");
    cmd.arg(dir.join("server.properties"));
    cmd
}

/// A Java command for one of Kafka's tools, its output in `dir`.
pub fn kafka_tool(tools: &Tools, dir: &Path, main_class: &str) -> Command {
    let mut cmd = Command::new(&tools.java);
    cmd.arg(format!("-Xmx{KAFKA_TOOL_HEAP_MIB}m"))
        .args(KAFKA_JVM_OPTS)
        .arg(format!("-Djava.io.tmpdir={}", dir.display()))
        .arg("-cp")
        .arg(&tools.kafka_classpath)
        .arg(main_class)
        .current_dir(dir);
    cmd
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rss {
    /// `VmRSS`: every resident page, including mapped file pages (the page cache a process
    /// maps counts here).
    pub total_kib: u64,
    /// `RssAnon`: anonymous memory only (heap, stacks): what the process itself costs.
    pub anon_kib: u64,
}

/// Reads the RSS of `pid`.
pub fn rss(pid: u32) -> Result<Rss> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Ok(Rss {
        total_kib: field("VmRSS:").context("no VmRSS")?,
        anon_kib: field("RssAnon:").context("no RssAnon")?,
    })
}

/// Sum of the RSS of several processes.
pub fn rss_sum(pids: &[u32]) -> Result<Rss> {
    let mut sum = Rss::default();
    for pid in pids {
        let one = rss(*pid)?;
        sum.total_kib += one.total_kib;
        sum.anon_kib += one.anon_kib;
    }
    Ok(sum)
}

/// Samples RSS every `interval` in a thread and keeps the peak, until dropped.
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<thread::JoinHandle<Rss>>,
}

impl RssSampler {
    /// Starts sampling `pids`.
    pub fn start(pids: Vec<u32>, interval: Duration) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = Rss::default();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(now) = rss_sum(&pids) {
                    peak.total_kib = peak.total_kib.max(now.total_kib);
                    peak.anon_kib = peak.anon_kib.max(now.anon_kib);
                }
                thread::sleep(interval);
            }
            peak
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns the peak.
    pub fn finish(mut self) -> Rss {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}
