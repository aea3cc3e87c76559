//! The Kubernetes manifests (deploy/kubernetes) run as three local processes: for each pod of
//! the three-node overlay's StatefulSet, the exact environment the manifests give it (the
//! ConfigMap, the downward API's pod name, namespace and `apps.kubernetes.io/pod-index` label,
//! `$(VAR)` expansion) over the image's ENV, with the pod network mapped onto the loopback:
//! pod N's stable DNS names and its wildcard binds become 127.0.0.(N+1), and its volume a
//! directory. The three `spate serve` processes must form a metadata quorum (DescribeQuorum,
//! API 55), list each other under the advertised names, serve an RF=3 topic, and survive a
//! rolling restart one pod at a time (SIGTERM, exit 0 within the bound, start, readiness)
//! with an idempotent `acks=all` producer running, with no acknowledged record lost.

mod deploy_support;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deploy_support::{
    Manifests, POD_STOP_EXPECTED_MS_MAX, POD_STOP_TIMEOUT_MS, Pods, StopReport, client_binary,
    dns_names, image_env, rolling_restart_scenario,
};
use spate_e2e::cluster::targets_spate;
use spate_e2e::process;
use spate_e2e::spate::spate_binary;
use tempfile::TempDir;

/// The ports the manifests use; the test keeps them when they are free on 127.0.0.1-3.
const POD_PORTS: [u16; 4] = [9092, 9093, 8080, 9644];
/// The data volume's mount path in the manifests.
const VOLUME_PATH: &str = "/var/lib/spate";

/// The three-node overlay's pods as local processes.
struct LocalPods {
    dir: TempDir,
    manifests: Manifests,
    args: Vec<String>,
    /// Manifest port -> the port used here (the same unless it was taken).
    ports: BTreeMap<u16, u16>,
    envs: Vec<BTreeMap<String, String>>,
    children: Vec<Option<Child>>,
}

fn host(ordinal: usize) -> String {
    format!("127.0.0.{}", ordinal + 1)
}

fn free_on_every_host(port: u16, hosts: usize) -> bool {
    (0..hosts).all(|i| TcpListener::bind((host(i).as_str(), port)).is_ok())
}

/// The manifests' ports when free on every pod address, else free ones (other tests or a
/// developer's broker may hold 9092 on this machine).
fn choose_ports(hosts: usize) -> Result<BTreeMap<u16, u16>> {
    if POD_PORTS.iter().all(|p| free_on_every_host(*p, hosts)) {
        return Ok(POD_PORTS.iter().map(|p| (*p, *p)).collect());
    }
    let mut chosen = BTreeMap::new();
    for port in POD_PORTS {
        let mut found = None;
        for _ in 0..100 {
            let candidate = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            if !chosen.values().any(|p| *p == candidate) && free_on_every_host(candidate, hosts) {
                found = Some(candidate);
                break;
            }
        }
        chosen.insert(port, found.context("no port free on every pod address")?);
    }
    Ok(chosen)
}

/// Maps one value of pod `ordinal`'s environment from the pod network onto the loopback.
fn to_loopback(
    value: &str,
    ordinal: usize,
    pods: usize,
    ports: &BTreeMap<u16, u16>,
    data_dir: &Path,
    namespace: &str,
) -> String {
    let mut out = value.to_owned();
    for other in 0..pods {
        for name in dns_names(other, namespace) {
            out = out.replace(&name, &host(other));
        }
    }
    // A pod's wildcard bind is its own address.
    out = out.replace("0.0.0.0", &host(ordinal));
    for (from, to) in ports {
        out = out.replace(&format!(":{from}"), &format!(":{to}"));
    }
    if out == VOLUME_PATH || out.starts_with(&format!("{VOLUME_PATH}/")) {
        out = out.replacen(VOLUME_PATH, &data_dir.to_string_lossy(), 1);
    }
    out
}

impl LocalPods {
    fn new() -> Result<LocalPods> {
        let manifests = Manifests::render("overlays/three-node")?;
        let pods = manifests.replicas()?;
        let args = manifests.args()?;
        let dir = tempfile::Builder::new()
            .prefix("spate-e2e-deploy-")
            .tempdir()?;
        let ports = choose_ports(pods)?;
        let image = image_env()?;
        let namespace = manifests.namespace()?;
        let mut envs = Vec::new();
        for ordinal in 0..pods {
            let data_dir = dir.path().join(format!("pod-{ordinal}/volume"));
            fs::create_dir_all(&data_dir)?;
            // The container's environment: the image's ENV, overridden by the pod's.
            let mut env = image.clone();
            env.extend(manifests.pod_env(ordinal, &namespace)?);
            let env: BTreeMap<String, String> = env
                .into_iter()
                .map(|(k, v)| {
                    let mapped = to_loopback(&v, ordinal, pods, &ports, &data_dir, &namespace);
                    (k, mapped)
                })
                .collect();
            envs.push(env);
        }
        Ok(LocalPods {
            dir,
            manifests,
            args,
            ports,
            envs,
            children: (0..pods).map(|_| None).collect(),
        })
    }

    fn pod_dir(&self, ordinal: usize) -> PathBuf {
        self.dir.path().join(format!("pod-{ordinal}"))
    }

    fn env_addr(&self, ordinal: usize, name: &str) -> String {
        self.envs[ordinal].get(name).cloned().unwrap_or_default()
    }
}

impl Pods for LocalPods {
    fn count(&self) -> usize {
        self.envs.len()
    }

    fn start(&mut self, ordinal: usize) -> Result<()> {
        let mut cmd = Command::new(spate_binary()?);
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.envs[ordinal])
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.pod_dir(ordinal));
        let out = self.pod_dir(ordinal).join("spate.stdout");
        let err = self.pod_dir(ordinal).join("spate.stderr");
        self.children[ordinal] = Some(process::spawn_logged(&mut cmd, &out, &err)?);
        Ok(())
    }

    fn stop(&mut self, ordinal: usize) -> Result<StopReport> {
        let Some(mut child) = self.children[ordinal].take() else {
            bail!("pod {ordinal} is not running");
        };
        let started = Instant::now();
        process::signal(&child, libc::SIGTERM);
        match process::wait_timeout(&mut child, Duration::from_millis(POD_STOP_TIMEOUT_MS))? {
            Some(status) => Ok(StopReport {
                exit_code: status.code(),
                took: started.elapsed(),
                wall: started.elapsed(),
            }),
            None => {
                // What the kubelet does when the grace period ends.
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "pod {ordinal} did not exit within {POD_STOP_TIMEOUT_MS} ms of SIGTERM\n{}",
                    self.logs()
                )
            }
        }
    }

    fn running(&mut self, ordinal: usize) -> bool {
        self.children[ordinal]
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn kafka_addr(&self, ordinal: usize) -> String {
        self.env_addr(ordinal, "SPATE_KAFKA_ADVERTISE")
    }

    fn admin_addr(&self, ordinal: usize) -> String {
        self.env_addr(ordinal, "SPATE_ADMIN_LISTEN")
    }

    fn advertised_host(&self, ordinal: usize) -> String {
        host(ordinal)
    }

    fn client_bootstrap(&self) -> String {
        (0..self.count())
            .map(|i| self.kafka_addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn client_command(&self, args: &[String]) -> Result<Command> {
        let mut cmd = Command::new(client_binary());
        cmd.args(args);
        Ok(cmd)
    }

    fn client_path(&self, host_path: &Path) -> String {
        host_path.to_string_lossy().into_owned()
    }

    fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    fn logs(&self) -> String {
        (0..self.count())
            .map(|i| {
                format!(
                    "--- pod {i} stderr ---\n{}",
                    process::tail(
                        &self.pod_dir(i).join("spate.stderr"),
                        process::LOG_TAIL_BYTES
                    )
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for LocalPods {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The rendered environment itself: every pod gets its ordinal as node id, its own stable
/// name as advertised address, the same voters by DNS name, and no reference left unexpanded.
#[test]
fn manifests_give_each_pod_its_identity() {
    let manifests = Manifests::render("overlays/three-node").unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(manifests.replicas().unwrap(), 3);
    let namespace = manifests.namespace().unwrap();
    let voters = "0@spate-0.spate:9093,1@spate-1.spate:9093,2@spate-2.spate:9093";
    for ordinal in 0..3 {
        let env = manifests
            .pod_env(ordinal, &namespace)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(env["SPATE_NODE_ID"], ordinal.to_string());
        assert_eq!(
            env["SPATE_KAFKA_ADVERTISE"],
            format!("spate-{ordinal}.spate.{namespace}.svc:9092")
        );
        assert_eq!(env["SPATE_CONTROLLER_VOTERS"], voters);
        assert_eq!(env["SPATE_DATA_DIR"], VOLUME_PATH);
        for (key, value) in &env {
            assert!(!value.contains("$("), "{key}={value} is not expanded");
        }
    }
    let single = Manifests::render("overlays/single-node").unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(single.replicas().unwrap(), 1);
    assert_eq!(
        single.pod_env(0, &namespace).unwrap()["SPATE_CONTROLLER_VOTERS"],
        "0@spate-0.spate:9093"
    );
}

#[test]
fn three_pods_from_the_manifests_survive_a_rolling_restart() {
    if !targets_spate("three_pods_from_the_manifests_survive_a_rolling_restart") {
        return;
    }
    let mut pods = LocalPods::new().unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "deploy: pod ports {:?}; pod 0 environment {:?}",
        pods.ports, pods.envs[0]
    );
    let _ = &pods.manifests;
    let report =
        rolling_restart_scenario(&mut pods).unwrap_or_else(|e| panic!("{e:#}\n{}", pods.logs()));
    println!("deploy (three processes):\n{}", report.render());
    for (ordinal, stop, _, _) in &report.restarts {
        assert_eq!(
            stop.exit_code,
            Some(0),
            "pod {ordinal} exit code after SIGTERM"
        );
        assert!(
            stop.took < Duration::from_millis(POD_STOP_EXPECTED_MS_MAX),
            "pod {ordinal} took {:?} to stop",
            stop.took
        );
    }
    assert!(
        report.verify_clean,
        "acknowledged records lost or wrong:\n{}\n{}",
        report.render(),
        pods.logs()
    );
    for (ordinal, _, _, isr) in &report.restarts {
        assert!(
            isr.is_ok(),
            "pod {ordinal}'s replicas did not rejoin the ISRs: {isr:?}"
        );
    }
}
