//! A Spate cluster whose nodes each live in their own network namespace, so a test can cut one
//! node off from the others while clients still reach every node.
//!
//! Layout (created with `ip`, root required): a bridge in the test's namespace holding
//! `10.A.B.254/24`, and per node a namespace with a veth pair whose inner end holds
//! `10.A.B.(i+1)/24` and whose outer end is a bridge port. Every node listens on the same
//! ports (Kafka 9092, controller 9093, admin 9644) on its own address: the shape of a
//! StatefulSet. Clients in the test process reach all nodes through the bridge.
//!
//! [`NetCluster::cut_off`] adds blackhole routes between one node and the others, in both
//! directions, so no packet flows between them while the clients' traffic (from the bridge
//! address) is untouched; [`NetCluster::heal`] removes them. Everything is removed on drop; a
//! run killed before that leaves names with its pid in them, which the next run removes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::{self, LOG_TAIL_BYTES};
use crate::spate::{SPATE_READY_TIMEOUT_MS, SPATE_STOP_TIMEOUT_MS, spate_binary};

/// The Kafka port every node listens on.
pub const KAFKA_PORT: u16 = 9092;
/// The controller (quorum) port.
pub const CONTROLLER_PORT: u16 = 9093;
/// The admin HTTP port.
pub const ADMIN_PORT: u16 = 9644;
/// The CloudEvents ingress port.
pub const CLOUDEVENTS_PORT: u16 = 8080;
/// Prefix of every interface and namespace name this module creates.
const NAME_PREFIX: &str = "spr";
/// Pause between readiness checks.
const READY_POLL_INTERVAL_MS: u64 = 50;
/// Bound on one `ip` command.
const IP_COMMAND_TIMEOUT_MS: u64 = 10_000;

/// Why network namespaces cannot be used here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".into());
    }
    let probe = format!("{NAME_PREFIX}{}probe", std::process::id() % 100_000);
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("`ip netns add` does not work here: {e:#}"));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

/// Runs `ip` with `args`; its stderr in the error.
fn ip(args: &[&str]) -> Result<String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip` (iproute2)")?;
    let deadline = Instant::now() + Duration::from_millis(IP_COMMAND_TIMEOUT_MS);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("`ip {}` did not finish", args.join(" "));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Removes namespaces and bridges left by runs whose process is gone.
fn remove_stale() {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let owner = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(NAME_PREFIX)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Some(pid) = owner(name)
                && !alive(pid)
            {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        for line in list.lines() {
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            if let Some(pid) = owner(name)
                && !alive(pid)
            {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// One node of a [`NetCluster`].
pub struct NetNode {
    /// Node id.
    pub id: usize,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
    namespace: String,
}

impl NetNode {
    fn stdout(&self) -> PathBuf {
        self.dir.path().join("spate.stdout")
    }

    fn stderr(&self) -> PathBuf {
        self.dir.path().join("spate.stderr")
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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

/// A cluster of `spate serve` processes in their own network namespaces.
pub struct NetCluster {
    /// The nodes, by id.
    pub nodes: Vec<NetNode>,
    /// Broker configs given to every node as `--set KEY=VALUE`.
    sets: Vec<(String, String)>,
    /// `10.A.B`: the first three octets of every address.
    subnet: String,
    bridge: String,
    /// Nodes currently cut off.
    cut: BTreeSet<usize>,
}

impl NetCluster {
    /// Creates the network and starts `nodes` voters with `sets`, waiting until all are ready.
    pub fn start(nodes: usize, sets: Vec<(String, String)>) -> Result<NetCluster> {
        remove_stale();
        let pid = std::process::id() % 100_000;
        let subnet = free_subnet(pid)?;
        let bridge = format!("{NAME_PREFIX}{pid}b");
        let mut cluster = NetCluster {
            nodes: Vec::new(),
            sets,
            subnet,
            bridge: bridge.clone(),
            cut: BTreeSet::new(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", cluster.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for id in 0..nodes {
            let namespace = format!("{NAME_PREFIX}{pid}n{id}");
            let outer = format!("{NAME_PREFIX}{pid}h{id}");
            let inner = format!("{NAME_PREFIX}{pid}i{id}");
            ip(&["netns", "add", &namespace])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &namespace])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{}/24", cluster.host(id)),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &namespace, "link", "set", &inner, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            let dir = tempfile::Builder::new()
                .prefix(&format!("spate-e2e-net-{id}-"))
                .tempdir()
                .context("cannot create a temp dir")?;
            fs::create_dir_all(dir.path().join("data"))?;
            cluster.nodes.push(NetNode {
                id,
                dir,
                child: None,
                starts: 0,
                namespace,
            });
        }
        for id in 0..nodes {
            cluster.launch(id)?;
        }
        for id in 0..nodes {
            cluster.wait_ready(id)?;
        }
        Ok(cluster)
    }

    /// The address of node `id`.
    pub fn host(&self, id: usize) -> String {
        format!("{}.{}", self.subnet, id + 1)
    }

    /// The Kafka address of node `id`.
    pub fn bootstrap(&self, id: usize) -> String {
        format!("{}:{KAFKA_PORT}", self.host(id))
    }

    /// Every node's Kafka address, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.bootstrap(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The admin HTTP address of node `id`.
    pub fn admin(&self, id: usize) -> String {
        format!("{}:{ADMIN_PORT}", self.host(id))
    }

    fn voters(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("{i}@{}:{CONTROLLER_PORT}", self.host(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn launch(&mut self, id: usize) -> Result<()> {
        let bin = spate_binary()?;
        let voters = self.voters();
        let host = self.host(id);
        let sets = self.sets.clone();
        let node = &mut self.nodes[id];
        let listeners = node.data_dir().join("listeners.json");
        match fs::remove_file(&listeners) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("cannot remove a stale listeners.json"),
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.namespace])
            .arg(&bin)
            .arg("serve")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(node.data_dir())
            .args(["--kafka-listen", &format!("{host}:{KAFKA_PORT}")])
            .args(["--admin-listen", &format!("{host}:{ADMIN_PORT}")])
            .args([
                "--cloudevents-listen",
                &format!("{host}:{CLOUDEVENTS_PORT}"),
            ])
            .args(["--controller-listen", &format!("{host}:{CONTROLLER_PORT}")])
            .args(["--controller-voters", &voters]);
        for (key, value) in &sets {
            cmd.args(["--set", &format!("{key}={value}")]);
        }
        cmd.current_dir(node.dir.path()).env("RUST_BACKTRACE", "1");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPATE_") && name != "SPATE_LOG" {
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
        // `ip netns exec` execs the command, so the child is the spate process itself.
        node.child = Some(process::spawn_logged(
            &mut cmd,
            &node.stdout(),
            &node.stderr(),
        )?);
        Ok(())
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

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.nodes[id].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `id` again (after [`NetCluster::kill9`]) without waiting for it.
    pub fn relaunch(&mut self, id: usize) -> Result<()> {
        if self.nodes[id].child.is_some() {
            bail!("node {id} is running");
        }
        self.launch(id)
    }

    /// SIGTERM node `id` and wait for it to exit.
    pub fn stop(&mut self, id: usize) -> Result<()> {
        let Some(mut child) = self.nodes[id].child.take() else {
            return Ok(());
        };
        process::signal(&child, libc::SIGCONT);
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

    /// Freezes node `id` (SIGSTOP): it holds its connections but does nothing.
    pub fn pause(&mut self, id: usize) {
        if let Some(child) = &self.nodes[id].child {
            process::freeze(child);
        }
    }

    /// Thaws node `id` (SIGCONT).
    pub fn resume(&mut self, id: usize) {
        if let Some(child) = &self.nodes[id].child {
            process::signal(child, libc::SIGCONT);
        }
    }

    /// Whether node `id`'s process runs.
    pub fn is_running(&mut self, id: usize) -> bool {
        match self.nodes[id].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn blackhole(&self, from: usize, to: usize, add: bool) -> Result<()> {
        let verb = if add { "add" } else { "del" };
        let target = format!("{}/32", self.host(to));
        ip(&[
            "-n",
            &self.nodes[from].namespace,
            "route",
            verb,
            "blackhole",
            &target,
        ])
        .map(|_| ())
    }

    /// Cuts node `id` off from every other node, both ways; clients still reach it.
    pub fn cut_off(&mut self, id: usize) -> Result<()> {
        if !self.cut.insert(id) {
            return Ok(());
        }
        for other in 0..self.nodes.len() {
            if other != id {
                self.blackhole(id, other, true)?;
                self.blackhole(other, id, true)?;
            }
        }
        Ok(())
    }

    /// Undoes [`NetCluster::cut_off`].
    pub fn heal(&mut self, id: usize) -> Result<()> {
        if !self.cut.remove(&id) {
            return Ok(());
        }
        for other in 0..self.nodes.len() {
            if other != id {
                self.blackhole(id, other, false)?;
                self.blackhole(other, id, false)?;
            }
        }
        Ok(())
    }

    /// Every node's logs.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(NetNode::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The full stderr of node `id`.
    pub fn stderr(&self, id: usize) -> String {
        fs::read_to_string(self.nodes[id].stderr()).unwrap_or_default()
    }

    /// The working directory of node `id`.
    pub fn dir(&self, id: usize) -> &Path {
        self.nodes[id].dir.path()
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // `SPATE_E2E_KEEP_LOGS=DIR` keeps every node's whole log there for a post-mortem, also
        // after a run that passed.
        if let Some(keep) = std::env::var_os("SPATE_E2E_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            for node in &self.nodes {
                let _ = fs::create_dir_all(&keep);
                let _ = fs::copy(node.stderr(), keep.join(format!("node-{}.stderr", node.id)));
                let _ = fs::copy(node.stdout(), keep.join(format!("node-{}.stdout", node.id)));
            }
        }
        for id in 0..self.nodes.len() {
            if let Some(child) = &self.nodes[id].child {
                process::signal(child, libc::SIGCONT);
            }
            self.kill9(id);
        }
        for node in &self.nodes {
            // Deleting a namespace deletes its veth end, and with it the pair.
            let _ = ip(&["netns", "del", &node.namespace]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// A `10.A.B` prefix no route of this host uses yet, derived from the pid.
fn free_subnet(pid: u32) -> Result<String> {
    let routes = ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    for attempt in 0..200u32 {
        let n = pid.wrapping_add(attempt.wrapping_mul(7919));
        let subnet = format!("10.{}.{}", 200 + n % 50, (n / 50) % 250);
        if !routes.contains(&format!("{subnet}.")) {
            return Ok(subnet);
        }
    }
    bail!("no free 10.x.y.0/24 subnet for the test network")
}
