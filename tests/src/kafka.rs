//! A real Apache Kafka 4.3.1 broker (KRaft, combined broker + controller, one node) started from
//! the Maven Central jars that `tests/setup` resolves: the differential baseline for every test.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::paths;
use crate::probe;
use crate::process::{self, LOG_TAIL_BYTES};

/// The Apache Kafka release the tests compare against (the jars `tests/setup` resolves).
pub const KAFKA_VERSION: &str = "4.3.1";
/// JVM heap of the broker, stated so runs are comparable (Kafka's own start script uses 1 GiB).
pub const KAFKA_HEAP_MIB: u32 = 1024;
/// How long a broker may take from `java` start to answering Metadata with itself listed.
pub const KAFKA_READY_TIMEOUT_MS: u64 = 120_000;
/// How long formatting the log directory may take.
const KAFKA_FORMAT_TIMEOUT_MS: u64 = 60_000;
/// How long a clean shutdown (SIGTERM) may take before the broker is killed.
const KAFKA_STOP_TIMEOUT_MS: u64 = 30_000;
/// Pause between readiness probes.
const READY_POLL_INTERVAL_MS: u64 = 250;
/// Node id of the single combined broker/controller.
const KAFKA_NODE_ID: u32 = 1;

/// Settings for [`KafkaNode::start`].
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// Broker configs with Kafka's names (`num.partitions`, `log.retention.ms`, ...), written to
    /// `server.properties` after the harness's own, so they override them.
    pub configs: Vec<(String, String)>,
}

/// The classpath (one `:`-joined line) of the Kafka server and tools jars.
pub fn kafka_classpath() -> Result<String> {
    let file = paths::installed(
        paths::cache_dir().join("java/kafka/classpath"),
        "Apache Kafka (server and tools jars)",
    )?;
    let cp =
        fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(cp.trim().to_owned())
}

/// The `java` launcher: `$JAVA_HOME/bin/java` when set, else `java` from `PATH`.
pub fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").exists() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again right away).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A running single-node Apache Kafka. Killed on drop; its logs are printed if the test is
/// panicking at that moment.
pub struct KafkaNode {
    dir: TempDir,
    kafka_port: u16,
    controller_port: u16,
    child: Option<Child>,
    configs: Vec<(String, String)>,
}

impl KafkaNode {
    /// Formats a fresh log directory and starts Kafka on free loopback ports, returning once it
    /// answers Metadata listing itself.
    pub fn start(options: KafkaOptions) -> Result<KafkaNode> {
        let dir = tempfile::Builder::new()
            .prefix("spate-e2e-kafka-")
            .tempdir()
            .context("cannot create a temp dir for Kafka")?;
        let mut node = KafkaNode {
            dir,
            kafka_port: free_port()?,
            controller_port: free_port()?,
            child: None,
            configs: options.configs,
        };
        node.write_config()?;
        node.format()?;
        node.launch()?;
        Ok(node)
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// The node's working directory (config, data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn properties(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    fn stdout(&self) -> PathBuf {
        self.dir.path().join("kafka.stdout")
    }

    fn stderr(&self) -> PathBuf {
        self.dir.path().join("kafka.stderr")
    }

    fn write_config(&self) -> Result<()> {
        let data = self.dir.path().join("data");
        let (k, c) = (self.kafka_port, self.controller_port);
        let mut props = format!(
            "process.roles=broker,controller\n\
             node.id={KAFKA_NODE_ID}\n\
             controller.quorum.voters={KAFKA_NODE_ID}@127.0.0.1:{c}\n\
             listeners=PLAINTEXT://127.0.0.1:{k},CONTROLLER://127.0.0.1:{c}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{k}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n",
            data.display()
        );
        for (key, value) in &self.configs {
            let _ = writeln!(props, "{key}={value}");
        }
        fs::write(self.properties(), props).context("cannot write server.properties")?;
        fs::write(
            self.dir.path().join("log4j2.properties"),
            "status = error\n\
             appender.out.type = Console\n\
             appender.out.name = STDOUT\n\
             appender.out.layout.type = PatternLayout\n\
             appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = INFO\n\
             rootLogger.appenderRefs = out\n\
             rootLogger.appenderRef.out.ref = STDOUT\n\
             logger.kafka.name = kafka\n\
             logger.kafka.level = INFO\n\
             logger.raft.name = org.apache.kafka.raft\n\
             logger.raft.level = WARN\n",
        )
        .context("cannot write log4j2.properties")?;
        Ok(())
    }

    fn java_command(&self, main_class: &str) -> Result<Command> {
        let mut cmd = Command::new(java());
        cmd.arg(format!("-Xms{KAFKA_HEAP_MIB}m"))
            .arg(format!("-Xmx{KAFKA_HEAP_MIB}m"))
            .arg("-XX:+UseG1GC")
            .arg("-Djava.awt.headless=true")
            // Compression libraries unpack native code into the temp dir on every start; keep it
            // inside this node's directory, which goes with the node.
            .arg(format!("-Djava.io.tmpdir={}", self.dir.path().display()))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.path().join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(kafka_classpath()?)
            .arg(main_class)
            .current_dir(self.dir.path());
        Ok(cmd)
    }

    /// `kafka-storage format`: the equivalent of Kafka's script, with a fresh cluster id.
    fn format(&self) -> Result<()> {
        let mut cmd = self.java_command("kafka.tools.StorageTool")?;
        // `--cluster-id=ID` in one argument: a base64 id may start with '-', which the tool's
        // argument parser would take for an option.
        let cluster_id = format!("--cluster-id={}", random_cluster_id()?);
        cmd.args(["format", &cluster_id, "--config"])
            .arg(self.properties());
        process::run(
            &mut cmd,
            self.dir.path(),
            "kafka-storage-format",
            Duration::from_millis(KAFKA_FORMAT_TIMEOUT_MS),
        )?;
        Ok(())
    }

    fn launch(&mut self) -> Result<()> {
        let mut cmd = self.java_command("kafka.Kafka")?;
        cmd.arg(self.properties());
        let child = process::spawn_logged(&mut cmd, &self.stdout(), &self.stderr())?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready() {
            self.kill9();
            bail!("{e:#}\n{}", self.logs());
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let timeout = Duration::from_millis(KAFKA_READY_TIMEOUT_MS);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("Kafka exited with {status} before it was ready");
            }
            match probe::metadata_broker_count(&self.bootstrap()) {
                Ok(n) if n > 0 => return Ok(()),
                _ if started.elapsed() > timeout => {
                    bail!("Kafka did not answer Metadata within {timeout:?}")
                }
                _ => thread::sleep(Duration::from_millis(READY_POLL_INTERVAL_MS)),
            }
        }
    }

    /// Clean shutdown: SIGTERM, then wait (SIGKILL if it overstays its timeout).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        process::signal(&child, libc::SIGTERM);
        let timeout = Duration::from_millis(KAFKA_STOP_TIMEOUT_MS);
        if process::wait_timeout(&mut child, timeout)?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "Kafka did not stop within {timeout:?} of SIGTERM\n{}",
                self.logs()
            );
        }
        Ok(())
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (cleanly) if running and starts again on the same data and ports.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// The end of the broker's stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- Kafka stdout ({}) ---\n{}\n--- Kafka stderr ({}) ---\n{}",
            self.stdout().display(),
            process::tail(&self.stdout(), LOG_TAIL_BYTES),
            self.stderr().display(),
            process::tail(&self.stderr(), LOG_TAIL_BYTES),
        )
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill9();
    }
}

/// A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (22 characters), the
/// form `kafka-storage random-uuid` prints.
fn random_cluster_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    Ok(out)
}

/// JVM heap of one of Kafka's command-line tools (its own scripts use 256 MiB).
pub const KAFKA_TOOL_HEAP_MIB: u32 = 256;
/// Bound on one tool run.
pub const KAFKA_TOOL_TIMEOUT_MS: u64 = 120_000;

/// Kafka's `kafka-topics` main class.
pub const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
/// Kafka's `kafka-configs` main class.
pub const CONFIG_COMMAND: &str = "kafka.admin.ConfigCommand";

/// Runs one of Apache Kafka's command-line tools (`main_class`, e.g. [`TOPIC_COMMAND`]) from the
/// Maven jars, as its shell script would, with output captured as `<work>/<name>.stdout|stderr`.
pub fn run_tool(
    main_class: &str,
    args: &[String],
    work: &Path,
    name: &str,
) -> Result<process::Output> {
    let mut cmd = Command::new(java());
    cmd.arg(format!("-Xmx{KAFKA_TOOL_HEAP_MIB}m"))
        .arg("-Djava.awt.headless=true")
        // Native libraries the JVM unpacks go to the work dir, not the shared /tmp.
        .arg(format!("-Djava.io.tmpdir={}", work.display()))
        .arg("-cp")
        .arg(kafka_classpath()?)
        .arg(main_class)
        .args(args)
        .current_dir(work);
    process::run(
        &mut cmd,
        work,
        name,
        Duration::from_millis(KAFKA_TOOL_TIMEOUT_MS),
    )
}
