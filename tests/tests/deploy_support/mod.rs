//! Shared by the deployment tests: the Kubernetes manifests rendered with kustomize, the exact
//! environment they give each pod of the StatefulSet, the pods run either as local processes
//! or as podman containers, and the scenario both run (quorum, an RF=3 topic, a rolling restart
//! under an idempotent `acks=all` producer with no acknowledged record lost).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use serde_json::Value;
use spate_e2e::cluster::{describe_quorum, request};
use spate_e2e::paths;
use spate_e2e::process;

/// Name of the StatefulSet (and of its headless Service) in the manifests.
pub const STATEFULSET_NAME: &str = "spate";
/// The namespace of objects the manifests leave without one, as `kubectl apply` would use.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Bound on every pod becoming ready after a start: the manifests' startup probe allows 120 s.
pub const POD_READY_TIMEOUT_MS: u64 = 120_000;
/// Bound on a SIGTERMed pod's exit: the manifests' terminationGracePeriodSeconds.
pub const POD_STOP_TIMEOUT_MS: u64 = 60_000;
/// A clean stop (controlled shutdown, at most 5 s, then closing the logs) must take less.
pub const POD_STOP_EXPECTED_MS_MAX: u64 = 20_000;
/// Bound on a restarted pod's partitions rejoining every ISR.
pub const ISR_FULL_TIMEOUT_MS: u64 = 60_000;
/// Bound on a quorum agreeing on a leader after the pods start.
pub const QUORUM_TIMEOUT_MS: u64 = 30_000;
/// Pause between polls of a condition.
const POLL_INTERVAL_MS: u64 = 200;
/// Bound on one HTTP probe.
const HTTP_TIMEOUT_MS: u64 = 3_000;
/// Bound on the client program's one-shot commands.
const CLIENT_TIMEOUT_MS: u64 = 180_000;
/// Producing runs this long before the first restart and after the last one.
const PRODUCE_SETTLE_MS: u64 = 3_000;

/// The topic of the rolling-restart scenario.
pub const TOPIC: &str = "deploy-rf3";
/// Its partitions.
pub const TOPIC_PARTITIONS: usize = 3;

/// The manifests of one kustomization, rendered.
pub struct Manifests {
    /// Every rendered object, as JSON values.
    pub docs: Vec<Value>,
}

impl Manifests {
    /// Renders `deploy/kubernetes/<kustomization>` with `deploy/test/render`.
    pub fn render(kustomization: &str) -> Result<Manifests> {
        let script = paths::repo_root().join("deploy/test/render");
        let output = Command::new(&script)
            .arg(kustomization)
            .output()
            .with_context(|| format!("cannot run {}", script.display()))?;
        ensure!(
            output.status.success(),
            "{} {kustomization} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).context("rendered YAML is not UTF-8")?;
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("rendered {kustomization} is not YAML"))?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        Ok(Manifests { docs })
    }

    /// The object of `kind` named `name`.
    pub fn find(&self, kind: &str, name: &str) -> Result<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .with_context(|| format!("no {kind} {name} in the manifests"))
    }

    /// Every object of `kind`.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The StatefulSet.
    pub fn statefulset(&self) -> Result<&Value> {
        self.find("StatefulSet", STATEFULSET_NAME)
    }

    /// The namespace the StatefulSet's pods run in.
    pub fn namespace(&self) -> Result<String> {
        Ok(self.statefulset()?["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_owned())
    }

    /// Its replica count.
    pub fn replicas(&self) -> Result<usize> {
        let replicas = self.statefulset()?["spec"]["replicas"]
            .as_u64()
            .context("StatefulSet without spec.replicas")?;
        Ok(replicas as usize)
    }

    /// Its `spate` container.
    pub fn container(&self) -> Result<&Value> {
        self.statefulset()?["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "spate"))
            .context("StatefulSet has no container named spate")
    }

    /// The container's command line after the image's entrypoint.
    pub fn args(&self) -> Result<Vec<String>> {
        let container = self.container()?;
        ensure!(
            container.get("command").is_none(),
            "the container overrides the image's entrypoint"
        );
        Ok(container["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The environment the manifests give pod `ordinal`, in the order Kubernetes builds it:
    /// `envFrom` sources, then `env` entries (later ones win), with `$(VAR)` references
    /// expanded against the variables defined before them and downward-API fields resolved as
    /// the API server fills them for a StatefulSet pod. The image's own ENV is not included.
    pub fn pod_env(&self, ordinal: usize, namespace: &str) -> Result<BTreeMap<String, String>> {
        let sts = self.statefulset()?;
        let container = self.container()?;
        let pod_name = format!("{STATEFULSET_NAME}-{ordinal}");
        let mut labels: BTreeMap<String, String> = sts["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        // Labels the StatefulSet controller adds to each pod.
        labels.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            pod_name.clone(),
        );
        labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let prefix = source["prefix"].as_str().unwrap_or("");
            if let Some(name) = source["configMapRef"]["name"].as_str() {
                let map = self.find("ConfigMap", name)?;
                for (key, value) in map["data"].as_object().into_iter().flatten() {
                    let value = value.as_str().context("ConfigMap value not a string")?;
                    env.insert(format!("{prefix}{key}"), value.to_owned());
                }
            } else {
                bail!("envFrom source not supported by this renderer: {source}");
            }
        }
        for entry in container["env"].as_array().into_iter().flatten() {
            let name = entry["name"].as_str().context("env entry without name")?;
            let value = if let Some(value) = entry.get("value") {
                expand(value.as_str().unwrap_or(""), &env)
            } else if let Some(path) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                field_ref(path, &pod_name, namespace, &labels)?
            } else if let Some(key_ref) = entry["valueFrom"].get("configMapKeyRef") {
                let map = self.find(
                    "ConfigMap",
                    key_ref["name"].as_str().context("configMapKeyRef name")?,
                )?;
                map["data"][key_ref["key"].as_str().context("configMapKeyRef key")?]
                    .as_str()
                    .with_context(|| format!("ConfigMap lacks the key of {entry}"))?
                    .to_owned()
            } else {
                bail!("env entry not supported by this renderer: {entry}");
            };
            env.insert(name.to_owned(), value);
        }
        Ok(env)
    }
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`, and
/// a reference to an undefined variable is left as written.
pub fn expand(value: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix("$(")
            && let Some(close) = inner.find(')')
        {
            let name = &inner[..close];
            match defined.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&tail[..close + 3]),
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn field_ref(
    path: &str,
    pod_name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String> {
    if path == "metadata.name" {
        return Ok(pod_name.to_owned());
    }
    if path == "metadata.namespace" {
        return Ok(namespace.to_owned());
    }
    if let Some(label) = path
        .strip_prefix("metadata.labels['")
        .and_then(|p| p.strip_suffix("']"))
    {
        return labels
            .get(label)
            .cloned()
            .with_context(|| format!("pod {pod_name} has no label {label}"));
    }
    bail!("fieldRef {path} not supported by this renderer")
}

/// The `ENV` settings of the Dockerfile's last stage: what every container starts with.
pub fn image_env() -> Result<BTreeMap<String, String>> {
    let path = paths::repo_root().join("Dockerfile");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    // Join continued lines, then keep the last stage.
    let joined = text.replace("\\\n", " ");
    let last_stage = joined
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .context("the Dockerfile has no FROM")?;
    let mut env = BTreeMap::new();
    for line in last_stage.lines() {
        let Some(settings) = line.trim().strip_prefix("ENV ") else {
            continue;
        };
        for pair in settings.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("ENV {pair} is not KEY=VALUE"))?;
            env.insert(key.to_owned(), value.trim_matches('"').to_owned());
        }
    }
    Ok(env)
}

/// The stable DNS names the headless Service gives pod `ordinal`, longest first.
pub fn dns_names(ordinal: usize, namespace: &str) -> Vec<String> {
    let pod = format!("{STATEFULSET_NAME}-{ordinal}.{STATEFULSET_NAME}");
    vec![
        format!("{pod}.{namespace}.svc.cluster.local"),
        format!("{pod}.{namespace}.svc"),
        format!("{pod}.{namespace}"),
        pod,
    ]
}

/// What a pod's stop looked like.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// From SIGTERM to the process's exit.
    pub took: Duration,
    /// The whole stopping command (`podman stop` also tears the container's network down).
    pub wall: Duration,
}

/// Pods of the StatefulSet, run somewhere: local processes or containers.
pub trait Pods {
    /// How many.
    fn count(&self) -> usize;
    /// Starts pod `ordinal` (again, on its own volume).
    fn start(&mut self, ordinal: usize) -> Result<()>;
    /// SIGTERMs pod `ordinal` and waits for it to exit.
    fn stop(&mut self, ordinal: usize) -> Result<StopReport>;
    /// Whether pod `ordinal`'s process is still up (it did not exit on its own).
    fn running(&mut self, ordinal: usize) -> bool;
    /// `host:port` of pod `ordinal`'s Kafka listener as the test process reaches it.
    fn kafka_addr(&self, ordinal: usize) -> String;
    /// `host:port` of pod `ordinal`'s admin listener as the test process reaches it.
    fn admin_addr(&self, ordinal: usize) -> String;
    /// The host name pod `ordinal` advertises to Kafka clients.
    fn advertised_host(&self, ordinal: usize) -> String;
    /// The bootstrap list the client program uses.
    fn client_bootstrap(&self) -> String;
    /// A command that runs the client program with `args` where it reaches the pods.
    fn client_command(&self, args: &[String]) -> Result<Command>;
    /// A path for the client's files, as the client sees `host_path`.
    fn client_path(&self, host_path: &Path) -> String;
    /// A directory the test and the client program share.
    fn work_dir(&self) -> &Path;
    /// The end of every pod's logs.
    fn logs(&self) -> String;
}

/// `GET path` on `addr`; the status code and body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("bad address {addr}"))?;
    let timeout = Duration::from_millis(HTTP_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until pod `ordinal` answers 200 on `/health/ready`, as the readiness probe asks.
pub fn wait_ready(pods: &mut dyn Pods, ordinal: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut last;
    loop {
        ensure!(
            pods.running(ordinal),
            "pod {ordinal} exited before it was ready\n{}",
            pods.logs()
        );
        match http_get(&pods.admin_addr(ordinal), "/health/ready") {
            Ok((200, _)) => return Ok(started.elapsed()),
            Ok((code, body)) => last = format!("{code} {}", body.trim()),
            Err(e) => last = format!("{e:#}"),
        }
        if started.elapsed() > timeout {
            bail!(
                "pod {ordinal} not ready within {timeout:?} (last: {last})\n{}",
                pods.logs()
            );
        }
        thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Index.
    pub partition: i32,
    /// Leader.
    pub leader: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// What Metadata says about the brokers and one topic.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    /// Listed brokers: id and advertised host.
    pub brokers: Vec<(i32, String)>,
    /// The topic's partitions, by index.
    pub partitions: Vec<PartitionView>,
}

/// Metadata v12 through `addr`: the brokers and `topic`'s partitions.
pub fn topic_metadata(addr: &str, topic: &str) -> Result<TopicMetadata> {
    let response: MetadataResponse = request(
        addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string()))
        .collect();
    let mut partitions: Vec<PartitionView> = response
        .topics
        .iter()
        .filter(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
        .flat_map(|t| t.partitions.iter())
        .map(|p| PartitionView {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
            isr: p.isr_nodes.iter().map(|n| n.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicMetadata {
        brokers,
        partitions,
    })
}

/// Waits until every partition of `topic` has all `replicas` replicas in its ISR and a leader,
/// as seen through pod `through`.
pub fn wait_isr_full(
    pods: &dyn Pods,
    through: usize,
    topic: &str,
    replicas: usize,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let last = match topic_metadata(&pods.kafka_addr(through), topic) {
            Ok(TopicMetadata { partitions, .. }) => {
                let full = !partitions.is_empty()
                    && partitions
                        .iter()
                        .all(|p| p.isr.len() == replicas && p.leader >= 0);
                if full {
                    return Ok(started.elapsed());
                }
                format!("{partitions:?}")
            }
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() > timeout {
            bail!("{topic}: the ISRs were not full within {timeout:?}; last: {last}");
        }
        thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// The quorum leader and voters every pod reports through DescribeQuorum (API 55).
pub fn wait_quorum(pods: &dyn Pods, timeout: Duration) -> Result<(i32, BTreeSet<i32>)> {
    let started = Instant::now();
    let mut last;
    loop {
        last = String::from("no answer");
        let mut views = BTreeSet::new();
        for ordinal in 0..pods.count() {
            match describe_quorum(&pods.kafka_addr(ordinal)) {
                Ok(response) => {
                    let Some(partition) =
                        response.topics.first().and_then(|t| t.partitions.first())
                    else {
                        last = format!("pod {ordinal}: empty DescribeQuorum answer");
                        continue;
                    };
                    let voters: BTreeSet<i32> = partition
                        .current_voters
                        .iter()
                        .map(|v| v.replica_id.0)
                        .collect();
                    views.insert((partition.error_code, partition.leader_id.0, voters));
                }
                Err(e) => last = format!("pod {ordinal}: {e:#}"),
            }
        }
        if views.len() == 1
            && let Some((0, leader, voters)) = views.iter().next()
            && *leader >= 0
        {
            return Ok((*leader, voters.clone()));
        }
        if !views.is_empty() {
            last = format!("{views:?}");
        }
        if started.elapsed() > timeout {
            bail!("no agreed quorum within {timeout:?}; last: {last}");
        }
        thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Runs the client program to completion; its stdout.
pub fn run_client(pods: &dyn Pods, name: &str, args: &[String]) -> Result<String> {
    let mut cmd = pods.client_command(args)?;
    let output = process::run(
        &mut cmd,
        pods.work_dir(),
        name,
        Duration::from_millis(CLIENT_TIMEOUT_MS),
    )?;
    output.stdout_text()
}

/// What the scenario measured, for the test output and docs/deploy.md.
#[derive(Debug, Default)]
pub struct ScenarioReport {
    /// From starting every pod to the last one ready.
    pub cluster_ready: Duration,
    /// Quorum leader after start.
    pub leader: i32,
    /// Each restart: the pod, its stop, time to ready again, time until the ISRs were full
    /// again (an error text if they were not).
    pub restarts: Vec<(
        usize,
        StopReport,
        Duration,
        std::result::Result<Duration, String>,
    )>,
    /// The producer's summary line.
    pub produce: String,
    /// The checker's summary line.
    pub verify: String,
    /// Whether the checker found every acknowledged record, and nothing else wrong.
    pub verify_clean: bool,
}

impl ScenarioReport {
    /// Human-readable figures.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cluster ready in {:.1}s, quorum leader {}",
            self.cluster_ready.as_secs_f64(),
            self.leader
        );
        for (ordinal, stop, ready, isr) in &self.restarts {
            let _ = writeln!(
                out,
                "restart pod {ordinal}: SIGTERM to exit {:.2}s (code {:?}; stop command {:.1}s), ready again after {:.1}s, ISRs full {}",
                stop.took.as_secs_f64(),
                stop.exit_code,
                stop.wall.as_secs_f64(),
                ready.as_secs_f64(),
                match isr {
                    Ok(d) => format!("after {:.1}s more", d.as_secs_f64()),
                    Err(e) => format!("NOT within the bound: {e}"),
                }
            );
        }
        let _ = writeln!(out, "{}", self.produce.trim());
        let _ = writeln!(out, "{}", self.verify.trim());
        out
    }
}

/// Starts every pod at once (`podManagementPolicy: Parallel`), then checks the quorum, the
/// brokers' advertised names and readiness; then an RF=3 topic; then restarts the pods one at a
/// time, highest ordinal first as a StatefulSet rolling update does (SIGTERM, wait for the exit,
/// start, wait for readiness, then for the ISRs to be full again) with an idempotent `acks=all`
/// producer running throughout; then checks that no acknowledged record was lost.
///
/// Returns the report; an error for anything that must hold whatever replication does (quorum,
/// readiness, clean exits). Loss and ISR outcomes are in the report for the caller to assert.
pub fn rolling_restart_scenario(pods: &mut dyn Pods) -> Result<ScenarioReport> {
    let mut report = ScenarioReport::default();
    let count = pods.count();
    let started = Instant::now();
    for ordinal in 0..count {
        pods.start(ordinal)?;
    }
    for ordinal in 0..count {
        wait_ready(pods, ordinal, Duration::from_millis(POD_READY_TIMEOUT_MS))?;
    }
    report.cluster_ready = started.elapsed();

    let (leader, voters) = wait_quorum(pods, Duration::from_millis(QUORUM_TIMEOUT_MS))?;
    report.leader = leader;
    let expected_voters: BTreeSet<i32> = (0..count.min(3) as i32).collect();
    ensure!(
        voters == expected_voters,
        "voters {voters:?}, expected {expected_voters:?}"
    );
    for ordinal in 0..count {
        let listed: BTreeMap<i32, String> = topic_metadata(&pods.kafka_addr(ordinal), TOPIC)?
            .brokers
            .into_iter()
            .collect();
        let expected: BTreeMap<i32, String> = (0..count)
            .map(|i| (i as i32, pods.advertised_host(i)))
            .collect();
        ensure!(
            listed == expected,
            "pod {ordinal} lists brokers {listed:?}, expected {expected:?}"
        );
    }

    let replication = count.min(3);
    run_client(
        pods,
        "create-topic",
        &[
            "create-topic".into(),
            pods.client_bootstrap(),
            TOPIC.into(),
            TOPIC_PARTITIONS.to_string(),
            replication.to_string(),
            format!("min.insync.replicas={}", replication.min(2)),
        ],
    )?;
    let partitions = topic_metadata(&pods.kafka_addr(0), TOPIC)?.partitions;
    ensure!(
        partitions.len() == TOPIC_PARTITIONS
            && partitions.iter().all(|p| p.replicas.len() == replication),
        "{TOPIC} should have {TOPIC_PARTITIONS} partitions of {replication} replicas: {partitions:?}"
    );
    wait_isr_full(
        pods,
        0,
        TOPIC,
        replication,
        Duration::from_millis(ISR_FULL_TIMEOUT_MS),
    )?;

    let acks = pods.work_dir().join("acks.txt");
    let stop_file = pods.work_dir().join("stop-producing");
    let _ = fs::remove_file(&stop_file);
    let mut producer = pods.client_command(&[
        "produce".into(),
        pods.client_bootstrap(),
        TOPIC.into(),
        TOPIC_PARTITIONS.to_string(),
        pods.client_path(&acks),
        pods.client_path(&stop_file),
    ])?;
    let producer_out = pods.work_dir().join("produce.stdout");
    let producer_err = pods.work_dir().join("produce.stderr");
    let mut producer: Child = process::spawn_logged(&mut producer, &producer_out, &producer_err)?;
    thread::sleep(Duration::from_millis(PRODUCE_SETTLE_MS));

    let restarted: Result<()> = (|| {
        for ordinal in (0..count).rev() {
            let stop = pods.stop(ordinal)?;
            pods.start(ordinal)?;
            let ready = wait_ready(pods, ordinal, Duration::from_millis(POD_READY_TIMEOUT_MS))?;
            let isr = wait_isr_full(
                pods,
                ordinal,
                TOPIC,
                replication,
                Duration::from_millis(ISR_FULL_TIMEOUT_MS),
            )
            .map_err(|e| format!("{e:#}"));
            eprintln!(
                "deploy: restarted pod {ordinal}: {stop:?}, ready after {ready:?}, ISRs {isr:?}"
            );
            report.restarts.push((ordinal, stop, ready, isr));
        }
        Ok(())
    })();
    thread::sleep(Duration::from_millis(PRODUCE_SETTLE_MS));
    fs::write(&stop_file, b"stop")?;
    let status: Option<ExitStatus> =
        process::wait_timeout(&mut producer, Duration::from_millis(CLIENT_TIMEOUT_MS))?;
    if status.is_none() {
        let _ = producer.kill();
        let _ = producer.wait();
    }
    restarted?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "the producer failed ({status:?}): {}",
        process::tail(&producer_err, process::LOG_TAIL_BYTES)
    );
    report.produce = fs::read_to_string(&producer_out)?;

    let mut verify = pods.client_command(&[
        "verify".into(),
        pods.client_bootstrap(),
        TOPIC.into(),
        TOPIC_PARTITIONS.to_string(),
        pods.client_path(&acks),
    ])?;
    let verify_out = pods.work_dir().join("verify.stdout");
    let verify_err = pods.work_dir().join("verify.stderr");
    let mut checker = process::spawn_logged(&mut verify, &verify_out, &verify_err)?;
    let status = process::wait_timeout(&mut checker, Duration::from_millis(CLIENT_TIMEOUT_MS))?;
    let text = fs::read_to_string(&verify_out).unwrap_or_default();
    ensure!(
        text.contains("verify:"),
        "the checker did not report ({status:?}): {}",
        process::tail(&verify_err, process::LOG_TAIL_BYTES)
    );
    report.verify_clean = status.is_some_and(|s| s.success());
    report.verify = text;
    Ok(report)
}

/// The `deploy_client` program built beside this test.
pub fn client_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deploy_client"))
}
