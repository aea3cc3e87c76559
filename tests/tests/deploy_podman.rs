//! The container image, run for real: three podman containers named spate-0, spate-1 and
//! spate-2 on one podman network, each given the environment the three-node overlay's
//! StatefulSet gives that pod and the pod's security settings (uid 10001, read-only root file
//! system, no capabilities, no privilege escalation), each reachable by its stable DNS names as
//! network aliases (`spate-N.spate.spate.svc`), each with its own volume. The Kafka client runs
//! in a fourth container on the same network, where those names resolve. Checked: the quorum,
//! the advertised names, an RF=3 topic, and a rolling restart with `podman stop` (SIGTERM, exit
//! 0) and `podman start` under an idempotent `acks=all` producer, with no acknowledged loss.
//!
//! Runs only when `SPATE_DEPLOY_PODMAN_IMAGE` names the image (deploy/test/podman-run builds it
//! and sets it), since building the image takes many minutes; otherwise it says so and passes.

mod deploy_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use deploy_support::{
    Manifests, POD_STOP_EXPECTED_MS_MAX, POD_STOP_TIMEOUT_MS, Pods, StopReport, client_binary,
    dns_names, rolling_restart_scenario,
};
use tempfile::TempDir;

/// The podman network the containers share.
const NETWORK: &str = "spate-deploy-test";
/// The image's uid (Dockerfile `SPATE_UID`, pod `runAsUser`).
const SPATE_UID: u32 = 10001;

fn podman(args: &[&str]) -> Result<String> {
    let output = Command::new("podman")
        .args(args)
        .output()
        .with_context(|| format!("cannot run podman {args:?}"))?;
    ensure!(
        output.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct PodmanPods {
    dir: TempDir,
    image: String,
    client_image: String,
    envs: Vec<BTreeMap<String, String>>,
    args: Vec<String>,
    namespace: String,
    /// Host ports on 127.0.0.1 published for each pod's Kafka (9092) and admin (9644) ports.
    published: Vec<(u16, u16)>,
}

fn container(ordinal: usize) -> String {
    format!("spate-{ordinal}")
}

fn volume(ordinal: usize) -> String {
    format!("spate-deploy-data-{ordinal}")
}

impl PodmanPods {
    fn new(image: String, client_image: String) -> Result<PodmanPods> {
        let manifests = Manifests::render("overlays/three-node")?;
        let count = manifests.replicas()?;
        let args = manifests.args()?;
        let namespace = manifests.namespace()?;
        let envs = (0..count)
            .map(|i| manifests.pod_env(i, &namespace))
            .collect::<Result<Vec<_>>>()?;
        let dir = tempfile::Builder::new()
            .prefix("spate-e2e-deploy-podman-")
            .tempdir()?;
        let published = (0..count)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<Result<Vec<_>>>()?;
        let pods = PodmanPods {
            dir,
            image,
            client_image,
            envs,
            args,
            namespace,
            published,
        };
        pods.clean();
        podman(&["network", "create", NETWORK])?;
        for ordinal in 0..count {
            podman(&["volume", "create", &volume(ordinal)])?;
        }
        Ok(pods)
    }

    /// Removes what an earlier, interrupted run may have left.
    fn clean(&self) {
        for ordinal in 0..self.envs.len() {
            let _ = podman(&["rm", "--force", "--time", "0", &container(ordinal)]);
            let _ = podman(&["volume", "rm", "--force", &volume(ordinal)]);
        }
        let _ = podman(&["rm", "--force", "--time", "0", "spate-deploy-producer"]);
        let _ = podman(&["network", "rm", "--force", NETWORK]);
    }

    fn created(&self, ordinal: usize) -> bool {
        podman(&["container", "exists", &container(ordinal)]).is_ok()
    }
}

impl Pods for PodmanPods {
    fn count(&self) -> usize {
        self.envs.len()
    }

    fn start(&mut self, ordinal: usize) -> Result<()> {
        if self.created(ordinal) {
            podman(&["start", &container(ordinal)])?;
            return Ok(());
        }
        let name = container(ordinal);
        let (kafka, admin) = self.published[ordinal];
        let user = format!("{SPATE_UID}:{SPATE_UID}");
        let mut args: Vec<String> = [
            "run",
            "--detach",
            "--name",
            &name,
            "--hostname",
            &name,
            "--network",
            NETWORK,
            "--user",
            &user,
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--volume",
            &format!("{}:/var/lib/spate", volume(ordinal)),
            "--publish",
            &format!("127.0.0.1:{kafka}:9092"),
            "--publish",
            &format!("127.0.0.1:{admin}:9644"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for alias in dns_names(ordinal, &self.namespace) {
            args.push("--network-alias".into());
            args.push(alias);
        }
        for (key, value) in &self.envs[ordinal] {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        // A log filter for debugging a run, over the manifests' own (e.g. "info,spate_controller=debug").
        if let Ok(level) = std::env::var("SPATE_DEPLOY_PODMAN_LOG_LEVEL") {
            args.push("--env".into());
            args.push(format!("SPATE_LOG_LEVEL={level}"));
        }
        args.push(self.image.clone());
        args.extend(self.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        podman(&args)?;
        Ok(())
    }

    fn stop(&mut self, ordinal: usize) -> Result<StopReport> {
        let started = Instant::now();
        let signalled = SystemTime::now();
        // podman stop sends the image's STOPSIGNAL (SIGTERM) and SIGKILL after the grace time.
        podman(&[
            "stop",
            "--time",
            &(POD_STOP_TIMEOUT_MS / 1000).to_string(),
            &container(ordinal),
        ])?;
        let wall = started.elapsed();
        let state = podman(&[
            "inspect",
            "--format",
            "{{.State.ExitCode}} {{.State.FinishedAt.UnixNano}}",
            &container(ordinal),
        ])?;
        let (code, finished) = state
            .split_once(' ')
            .with_context(|| format!("podman inspect said {state:?}"))?;
        // The process's own exit time, as conmon recorded it: podman stop's wall time also
        // counts tearing the container's network down, which is podman's, not Spate's.
        let finished_ns: u64 = finished.parse()?;
        let signalled_ns = signalled.duration_since(UNIX_EPOCH)?.as_nanos() as u64;
        Ok(StopReport {
            exit_code: code.parse().ok(),
            took: Duration::from_nanos(finished_ns.saturating_sub(signalled_ns)),
            wall,
        })
    }

    fn running(&mut self, ordinal: usize) -> bool {
        podman(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &container(ordinal),
        ])
        .is_ok_and(|s| s == "true")
    }

    fn kafka_addr(&self, ordinal: usize) -> String {
        format!("127.0.0.1:{}", self.published[ordinal].0)
    }

    fn admin_addr(&self, ordinal: usize) -> String {
        format!("127.0.0.1:{}", self.published[ordinal].1)
    }

    fn advertised_host(&self, ordinal: usize) -> String {
        format!("spate-{ordinal}.spate.{}.svc", self.namespace)
    }

    fn client_bootstrap(&self) -> String {
        (0..self.count())
            .map(|i| format!("{}:9092", self.advertised_host(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn client_command(&self, args: &[String]) -> Result<Command> {
        let mut cmd = Command::new("podman");
        cmd.args(["run", "--rm", "--network", NETWORK])
            .arg("--volume")
            .arg(format!(
                "{}:/usr/local/bin/deploy_client:ro",
                client_binary().display()
            ))
            .arg("--volume")
            .arg(format!("{}:/work", self.dir.path().display()))
            .arg(&self.client_image)
            .arg("/usr/local/bin/deploy_client")
            .args(args);
        Ok(cmd)
    }

    fn client_path(&self, host_path: &Path) -> String {
        let relative = host_path.strip_prefix(self.dir.path()).unwrap_or(host_path);
        PathBuf::from("/work")
            .join(relative)
            .to_string_lossy()
            .into_owned()
    }

    fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    fn logs(&self) -> String {
        (0..self.count())
            .map(|i| {
                let logs = Command::new("podman")
                    .args(["logs", "--tail", "40", &container(i)])
                    .output()
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default();
                format!("--- {} ---\n{logs}", container(i))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for PodmanPods {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if std::env::var_os("SPATE_DEPLOY_PODMAN_KEEP").is_none() {
            self.clean();
        }
    }
}

/// The image's metadata: the fixed non-root user, the data volume, the four ports, `spate
/// serve` as what runs, SIGTERM to stop it, and a health check.
fn check_image(image: &str) -> Result<()> {
    let field = |format: &str| podman(&["image", "inspect", "--format", format, image]);
    ensure!(field("{{.Config.User}}")? == format!("{SPATE_UID}:{SPATE_UID}"));
    ensure!(field("{{json .Config.Volumes}}")?.contains("/var/lib/spate"));
    let ports = field("{{json .Config.ExposedPorts}}")?;
    for port in ["9092/tcp", "9093/tcp", "8080/tcp", "9644/tcp"] {
        ensure!(ports.contains(port), "port {port} not exposed: {ports}");
    }
    ensure!(field("{{json .Config.Entrypoint}}")? == r#"["/usr/local/bin/spate"]"#);
    ensure!(field("{{json .Config.Cmd}}")? == r#"["serve"]"#);
    ensure!(field("{{.Config.StopSignal}}")? == "SIGTERM");
    let inspect: serde_json::Value = serde_json::from_str(&podman(&["image", "inspect", image])?)?;
    let health = inspect[0]["Healthcheck"]["Test"].to_string();
    ensure!(health.contains("/health/live"), "no health check: {health}");
    Ok(())
}

#[test]
fn three_containers_survive_a_rolling_restart() {
    let Some(image) = std::env::var_os("SPATE_DEPLOY_PODMAN_IMAGE") else {
        eprintln!(
            "three_containers_survive_a_rolling_restart: SPATE_DEPLOY_PODMAN_IMAGE is not set; \
             deploy/test/podman-run builds the image and runs this test"
        );
        return;
    };
    let image = image.to_string_lossy().into_owned();
    let client_image = std::env::var("SPATE_DEPLOY_PODMAN_CLIENT_IMAGE")
        .unwrap_or_else(|_| "localhost/spate-debian:bookworm".into());
    let result: Result<()> = (|| {
        check_image(&image)?;
        let mut pods = PodmanPods::new(image, client_image)?;
        let report = rolling_restart_scenario(&mut pods)
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", pods.logs()))?;
        println!("deploy (podman containers):\n{}", report.render());
        for (ordinal, stop, _, _) in &report.restarts {
            ensure!(
                stop.exit_code == Some(0),
                "spate-{ordinal} exit code after SIGTERM: {:?}",
                stop.exit_code
            );
            ensure!(
                stop.took < Duration::from_millis(POD_STOP_EXPECTED_MS_MAX),
                "spate-{ordinal} took {:?} to stop",
                stop.took
            );
        }
        // The image's own HEALTHCHECK (which podman runs, and Kubernetes ignores) passes.
        for ordinal in 0..pods.count() {
            podman(&["healthcheck", "run", &container(ordinal)])
                .with_context(|| format!("the HEALTHCHECK of {}", container(ordinal)))?;
        }
        if !report.verify_clean {
            bail!(
                "acknowledged records lost or wrong:\n{}\n{}",
                report.render(),
                pods.logs()
            );
        }
        for (ordinal, _, _, isr) in &report.restarts {
            if let Err(e) = isr {
                bail!("spate-{ordinal}'s replicas did not rejoin the ISRs: {e}");
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        panic!("{e:#}");
    }
}
