//! A multi-node Spate cluster of real `spate serve` processes on loopback, and a small typed
//! Kafka client for the requests cluster tests need (Metadata, CreateTopics, DescribeQuorum)
//! sent to one chosen node.
//!
//! Node `i` listens on `127.0.0.(i+1)`, every node on the same Kafka and controller ports: the
//! shape of a StatefulSet, where pods differ only in their ordinal. The voters are nodes
//! `0..voters`; further nodes join as learners. Every node gets the same voter list, so the
//! cluster id they derive from it agrees without configuration.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tempfile::TempDir;

use crate::process::{self, LOG_TAIL_BYTES};
use crate::spate::{Listeners, SPATE_READY_TIMEOUT_MS, SPATE_STOP_TIMEOUT_MS, spate_binary};

/// Pause between readiness checks.
const READY_POLL_INTERVAL_MS: u64 = 50;
/// Socket timeout of one request from [`request`].
const REQUEST_IO_TIMEOUT_MS: u64 = 20_000;
/// Largest response [`request`] accepts.
const RESPONSE_SIZE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Attempts at finding ports free on every node's address.
const PORT_SEARCH_ATTEMPTS_MAX: usize = 100;

/// Whether this run targets Spate. Cluster tests exercise Spate's own quorum and processes; the
/// Apache Kafka baseline run (`SPATE_E2E_TARGET=kafka`) has no three-node Kafka to compare
/// with, so they say so and pass there without running.
pub fn targets_spate(test: &str) -> bool {
    match crate::target::TargetKind::from_env() {
        Ok(crate::target::TargetKind::Spate) => true,
        Ok(other) => {
            eprintln!(
                "{test}: a Spate cluster test, not run against {}",
                other.name()
            );
            false
        }
        Err(e) => panic!("{e:#}"),
    }
}

/// The loopback address of node `index`.
pub fn node_host(index: usize) -> String {
    format!("127.0.0.{}", index + 1)
}

fn port_free_everywhere(port: u16, hosts: usize) -> bool {
    (0..hosts).all(|i| TcpListener::bind((node_host(i).as_str(), port)).is_ok())
}

/// A port that is free on every node's loopback address.
fn shared_free_port(hosts: usize, taken: &[u16]) -> Result<u16> {
    for _ in 0..PORT_SEARCH_ATTEMPTS_MAX {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !taken.contains(&port) && port_free_everywhere(port, hosts) {
            return Ok(port);
        }
    }
    bail!("no port is free on all of 127.0.0.1..{}", hosts)
}

/// One node of a [`SpateCluster`].
pub struct ClusterNode {
    /// Node id.
    pub id: usize,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
    extra_args: Vec<String>,
}

impl ClusterNode {
    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn stdout(&self) -> PathBuf {
        self.dir.path().join("spate.stdout")
    }

    fn stderr(&self) -> PathBuf {
        self.dir.path().join("spate.stderr")
    }

    /// Whether its process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The end of its logs.
    pub fn logs(&self) -> String {
        format!(
            "--- node {} stdout ---\n{}\n--- node {} stderr ---\n{}",
            self.id,
            process::tail(&self.stdout(), LOG_TAIL_BYTES),
            self.id,
            process::tail(&self.stderr(), LOG_TAIL_BYTES),
        )
    }
}

/// Cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of voters (nodes `0..voters`).
    pub voters: usize,
    /// Broker configs for every node, as `--set KEY=VALUE`.
    pub sets: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            voters: 3,
            sets: Vec::new(),
        }
    }
}

/// Real `spate serve` processes forming one cluster. Killed on drop; logs printed if the test
/// is panicking then.
pub struct SpateCluster {
    /// The nodes, by id.
    pub nodes: Vec<ClusterNode>,
    options: ClusterOptions,
    kafka_port: u16,
    controller_port: u16,
}

impl SpateCluster {
    /// Starts the voters and waits until every one is ready (registered with the quorum).
    pub fn start(options: ClusterOptions) -> Result<SpateCluster> {
        // Room for learners added later: ports are checked on a few more addresses.
        let hosts = options.voters + 2;
        let kafka_port = shared_free_port(hosts, &[])?;
        let controller_port = shared_free_port(hosts, &[kafka_port])?;
        let mut cluster = SpateCluster {
            nodes: Vec::new(),
            options,
            kafka_port,
            controller_port,
        };
        for _ in 0..cluster.options.voters {
            cluster.add_node_process(Vec::new())?;
        }
        // A node is ready only once a quorum registered it, so all start before any is awaited.
        for id in 0..cluster.nodes.len() {
            cluster.wait_ready(id)?;
        }
        Ok(cluster)
    }

    /// `id@host:port` for every voter.
    pub fn voters_flag(&self) -> String {
        (0..self.options.voters)
            .map(|i| format!("{i}@{}:{}", node_host(i), self.controller_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The Kafka address of node `id`.
    pub fn bootstrap(&self, id: usize) -> String {
        format!("{}:{}", node_host(id), self.kafka_port)
    }

    /// Every node's Kafka address, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.bootstrap(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Adds a node (a learner, since the voters are fixed) and waits until it is ready.
    pub fn add_node(&mut self, extra_args: Vec<String>) -> Result<usize> {
        let id = self.add_node_process(extra_args)?;
        self.wait_ready(id)?;
        Ok(id)
    }

    /// Adds a node without waiting for it.
    pub fn add_node_process(&mut self, extra_args: Vec<String>) -> Result<usize> {
        let id = self.nodes.len();
        let dir = tempfile::Builder::new()
            .prefix(&format!("spate-e2e-cluster-{id}-"))
            .tempdir()
            .context("cannot create a temp dir")?;
        fs::create_dir_all(dir.path().join("data"))?;
        self.nodes.push(ClusterNode {
            id,
            dir,
            child: None,
            starts: 0,
            extra_args,
        });
        self.launch(id)?;
        Ok(id)
    }

    fn launch(&mut self, id: usize) -> Result<()> {
        let bin = spate_binary()?;
        let voters = self.voters_flag();
        let host = node_host(id);
        let (kafka_port, controller_port) = (self.kafka_port, self.controller_port);
        let sets = self.options.sets.clone();
        let node = &mut self.nodes[id];
        let listeners = node.data_dir().join("listeners.json");
        match fs::remove_file(&listeners) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("cannot remove a stale listeners.json"),
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(node.data_dir())
            .args(["--kafka-listen", &format!("{host}:{kafka_port}")])
            .args(["--admin-listen", &format!("{host}:0")])
            .args(["--cloudevents-listen", &format!("{host}:0")])
            .args(["--controller-listen", &format!("{host}:{controller_port}")])
            .args(["--controller-voters", &voters]);
        for (key, value) in &sets {
            cmd.args(["--set", &format!("{key}={value}")]);
        }
        cmd.args(&node.extra_args)
            .current_dir(node.dir.path())
            .env("RUST_BACKTRACE", "1");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPATE_") {
                cmd.env_remove(&name);
            }
        }
        node.starts += 1;
        let marker = format!("=== start {} ===\n", node.starts);
        for log in [node.stdout(), node.stderr()] {
            let mut text = fs::read_to_string(&log).unwrap_or_default();
            text.push_str(&marker);
            fs::write(&log, text)?;
        }
        node.child = Some(process::spawn_logged(
            &mut cmd,
            &node.stdout(),
            &node.stderr(),
        )?);
        Ok(())
    }

    /// The listeners node `id` reported in `listeners.json`.
    pub fn listeners(&self, id: usize) -> Result<Listeners> {
        let file = self.nodes[id].data_dir().join("listeners.json");
        let text = fs::read_to_string(&file)
            .with_context(|| format!("node {id} has no {}", file.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a listeners file", file.display()))
    }

    /// The admin HTTP address (metrics, health) node `id` reported in `listeners.json`.
    pub fn admin_addr(&self, id: usize) -> Result<String> {
        Ok(self.listeners(id)?.admin)
    }

    /// The CloudEvents ingress address node `id` reported in `listeners.json`.
    pub fn cloudevents_addr(&self, id: usize) -> Result<String> {
        self.listeners(id)?
            .cloudevents
            .with_context(|| format!("node {id} reported no CloudEvents ingress"))
    }

    /// The sum of every series of the Prometheus metric `name` on node `id` (0 when absent).
    pub fn metric(&self, id: usize, name: &str) -> Result<f64> {
        self.metric_with(id, name, "")
    }

    /// The sum of the series of the Prometheus metric `name` on node `id` whose labels include
    /// `label` (as the exposition writes it, e.g. `api="Produce"`; "" for every series).
    pub fn metric_with(&self, id: usize, name: &str, label: &str) -> Result<f64> {
        let addr = self.admin_addr(id)?;
        let mut stream = TcpStream::connect(&addr)
            .with_context(|| format!("cannot connect to node {id}'s admin listener {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_millis(REQUEST_IO_TIMEOUT_MS)))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        let mut sum = 0.0;
        for line in body.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            let labels = rest.split_once('}').map_or("", |(labels, _)| labels);
            if !labels.contains(label) {
                continue;
            }
            if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                sum += value;
            }
        }
        Ok(sum)
    }

    /// Waits until node `id` wrote `listeners.json`.
    pub fn wait_ready(&mut self, id: usize) -> Result<()> {
        let started = Instant::now();
        let timeout = Duration::from_millis(SPATE_READY_TIMEOUT_MS);
        let node = &mut self.nodes[id];
        let file = node.data_dir().join("listeners.json");
        loop {
            if let Some(child) = node.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "node {id} exited with {status} before it was ready\n{}",
                    node.logs()
                );
            }
            if file.exists() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "node {id} was not ready within {timeout:?}\n{}",
                    node.logs()
                );
            }
            thread::sleep(Duration::from_millis(READY_POLL_INTERVAL_MS));
        }
    }

    /// SIGKILL node `id`, as a crash would.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.nodes[id].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP node `id`: it stays alive but does nothing, as under a long GC pause or a frozen
    /// VM.
    pub fn pause(&mut self, id: usize) {
        if let Some(child) = &self.nodes[id].child {
            process::freeze(child);
        }
    }

    /// SIGCONT node `id` after [`SpateCluster::pause`].
    pub fn resume(&mut self, id: usize) {
        if let Some(child) = &self.nodes[id].child {
            process::signal(child, libc::SIGCONT);
        }
    }

    /// SIGTERM node `id` and wait for it to exit.
    pub fn stop(&mut self, id: usize) -> Result<()> {
        let Some(mut child) = self.nodes[id].child.take() else {
            return Ok(());
        };
        process::signal(&child, libc::SIGTERM);
        let timeout = Duration::from_millis(SPATE_STOP_TIMEOUT_MS);
        if process::wait_timeout(&mut child, timeout)?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "node {id} did not stop within {timeout:?}\n{}",
                self.nodes[id].logs()
            );
        }
        Ok(())
    }

    /// Starts node `id` again on its data directory and ports, and waits until it is ready.
    pub fn restart(&mut self, id: usize) -> Result<()> {
        self.stop(id)?;
        self.launch(id)?;
        self.wait_ready(id)
    }

    /// Waits for node `id` to exit on its own; its exit status.
    pub fn wait_exit(
        &mut self,
        id: usize,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>> {
        match self.nodes[id].child.as_mut() {
            Some(child) => process::wait_timeout(child, timeout),
            None => Ok(None),
        }
    }

    /// Every node's logs.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The stderr text of node `id`.
    pub fn stderr(&self, id: usize) -> String {
        fs::read_to_string(self.nodes[id].stderr()).unwrap_or_default()
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: usize) -> PathBuf {
        self.nodes[id].data_dir()
    }

    /// The working directory of node `id`.
    pub fn dir(&self, id: usize) -> &Path {
        self.nodes[id].dir.path()
    }
}

impl Drop for SpateCluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for id in 0..self.nodes.len() {
            self.kill9(id);
        }
    }
}

/// Sends one request to `addr` and decodes the response.
pub fn request<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api_key: ApiKey,
    version: i16,
    body: &Req,
) -> Result<Resp> {
    request_on(addr, api_key, version, body).map(|(response, _)| response)
}

/// Whether the node closes `stream` (after answering) within `within`.
pub fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> Result<bool> {
    stream.set_read_timeout(Some(within))?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends one request to `addr` on a new connection and decodes the response; returns the
/// connection too, to see what the node does with it next.
pub fn request_on<Req: Encodable, Resp: Decodable>(
    addr: &str,
    api_key: ApiKey,
    version: i16,
    body: &Req,
) -> Result<(Resp, TcpStream)> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("bad address {addr}"))?;
    let timeout = Duration::from_millis(REQUEST_IO_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&sock, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let correlation_id = 0x5a7e;
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("spate-e2e-cluster")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api_key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    stream.write_all(&frame)?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .with_context(|| format!("no response from {addr}"))?;
    let len = usize::try_from(i32::from_be_bytes(len)).context("negative response size")?;
    ensure!(len <= RESPONSE_SIZE_BYTES_MAX, "response of {len} bytes");
    let mut response = vec![0u8; len];
    stream.read_exact(&mut response)?;
    let mut bytes = Bytes::from(response);
    let header = ResponseHeader::decode(&mut bytes, api_key.response_header_version(version))?;
    ensure!(
        header.correlation_id == correlation_id,
        "correlation id mismatch"
    );
    Ok((Resp::decode(&mut bytes, version)?, stream))
}

/// What a node's Metadata answer says about the cluster.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Listed brokers (id, host, port).
    pub brokers: Vec<(i32, String, i32)>,
    /// The controller id.
    pub controller_id: i32,
    /// Topics with the leader of each partition.
    pub topics: Vec<(String, Vec<(i32, i32)>)>,
}

impl ClusterView {
    /// The partition leaders of `topic`, if listed.
    pub fn leaders(&self, topic: &str) -> Option<&Vec<(i32, i32)>> {
        self.topics
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, p)| p)
    }
}

/// Metadata v12 for all topics from `addr`.
pub fn metadata(addr: &str) -> Result<ClusterView> {
    let response: MetadataResponse = request(
        addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )?;
    Ok(ClusterView {
        brokers: response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect(),
        controller_id: response.controller_id.0,
        topics: response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.to_string();
                let mut partitions: Vec<(i32, i32)> = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect();
                partitions.sort_unstable();
                Some((name, partitions))
            })
            .collect(),
    })
}

/// CreateTopics v7 through `addr`: `Ok(())`, or the Kafka error code and message.
pub fn create_topic(
    addr: &str,
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<std::result::Result<(), (i16, String)>> {
    let request_body = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor),
        ])
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = request(addr, ApiKey::CreateTopics, 7, &request_body)?;
    let topic = response
        .topics
        .first()
        .context("CreateTopics answered no topic")?;
    if topic.error_code == 0 {
        Ok(Ok(()))
    } else {
        Ok(Err((
            topic.error_code,
            topic
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )))
    }
}

/// DescribeQuorum v2 for `__cluster_metadata` partition 0 through `addr`.
pub fn describe_quorum(addr: &str) -> Result<DescribeQuorumResponse> {
    let body = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    request(addr, ApiKey::DescribeQuorum, 2, &body)
}
