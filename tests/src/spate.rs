//! A real `spate serve` process on free loopback ports, with its own temporary data directory.
//!
//! The contract with the broker: `spate serve` takes `--node-id`, `--data-dir`, `--kafka-listen`,
//! `--kafka-advertise`, `--admin-listen`, `--controller-listen`, `--controller-voters`,
//! `--cloudevents-listen` and repeatable `--set KEY=VALUE`; port 0 is allowed for every listener;
//! once every listener is bound and the node is ready, it writes `<data dir>/listeners.json`
//! (`{"kafka": "127.0.0.1:40123", "admin": ..., "controller": ..., "cloudevents": ...}`)
//! atomically.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tempfile::TempDir;

use crate::kafka::free_port;
use crate::paths;
use crate::process::{self, LOG_TAIL_BYTES};

/// Default bound on the time from process start to `listeners.json`.
pub const SPATE_READY_TIMEOUT_MS: u64 = 30_000;
/// How long a clean shutdown (SIGTERM) may take before the node is killed.
pub const SPATE_STOP_TIMEOUT_MS: u64 = 30_000;
/// Pause between checks for `listeners.json`.
const READY_POLL_INTERVAL_MS: u64 = 50;

/// Settings for [`SpateNode::start`].
#[derive(Debug, Clone)]
pub struct SpateOptions {
    /// `--node-id`.
    pub node_id: u32,
    /// Broker configs with Kafka's names, each passed as `--set KEY=VALUE`.
    pub sets: Vec<(String, String)>,
    /// `--kafka-advertise`; by default the node advertises its bound Kafka address.
    pub kafka_advertise: Option<String>,
    /// More arguments after the harness's own.
    pub extra_args: Vec<String>,
    /// How long to wait for `listeners.json`.
    pub ready_timeout: Duration,
}

impl Default for SpateOptions {
    fn default() -> Self {
        SpateOptions {
            node_id: 0,
            sets: Vec::new(),
            kafka_advertise: None,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_millis(SPATE_READY_TIMEOUT_MS),
        }
    }
}

/// The bound addresses a node reports in `listeners.json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Listeners {
    /// Kafka protocol listener.
    pub kafka: String,
    /// Admin HTTP (metrics, health).
    pub admin: String,
    /// Controller quorum listener (absent while the node runs the single-node local quorum).
    #[serde(default)]
    pub controller: Option<String>,
    /// CloudEvents ingress (absent until the ingress is served).
    #[serde(default)]
    pub cloudevents: Option<String>,
}

/// The `spate` binary: `$SPATE_BIN` if set, else `spate` beside this test's build output.
pub fn spate_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SPATE_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.exists() {
            bail!("SPATE_BIN={} does not exist", bin.display());
        }
        return Ok(bin);
    }
    let bin = paths::cargo_profile_dir()?.join("spate");
    if !bin.exists() {
        bail!(
            "the spate binary is missing at {}: run `cargo build -p spate-broker` first \
             (or set SPATE_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `spate serve`. Killed on drop; its logs are printed if the test is panicking then.
pub struct SpateNode {
    dir: TempDir,
    options: SpateOptions,
    controller_port: u16,
    child: Option<Child>,
    listeners: Option<Listeners>,
    starts: u32,
}

impl SpateNode {
    /// Starts a node with a fresh data directory, returning once `listeners.json` appears.
    pub fn start(options: SpateOptions) -> Result<SpateNode> {
        let dir = tempfile::Builder::new()
            .prefix("spate-e2e-node-")
            .tempdir()
            .context("cannot create a temp dir for spate")?;
        fs::create_dir_all(dir.path().join("data")).context("cannot create the data dir")?;
        let mut node = SpateNode {
            dir,
            options,
            // The voter list must name the controller's real address, so it is chosen up front
            // rather than left to port 0.
            controller_port: free_port()?,
            child: None,
            listeners: None,
            starts: 0,
        };
        node.launch()?;
        Ok(node)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The addresses the running node reported.
    pub fn listeners(&self) -> Result<&Listeners> {
        self.listeners
            .as_ref()
            .context("the spate node is not running")
    }

    /// `host:port` of the Kafka listener.
    pub fn bootstrap(&self) -> String {
        self.listeners
            .as_ref()
            .map(|l| l.kafka.clone())
            .unwrap_or_default()
    }

    fn stdout(&self) -> PathBuf {
        self.dir.path().join("spate.stdout")
    }

    fn stderr(&self) -> PathBuf {
        self.dir.path().join("spate.stderr")
    }

    fn listeners_file(&self) -> PathBuf {
        self.data_dir().join("listeners.json")
    }

    fn launch(&mut self) -> Result<()> {
        let bin = spate_binary()?;
        // A restart must not read the previous run's file.
        match fs::remove_file(self.listeners_file()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("cannot remove a stale listeners.json"),
        }
        // The first start binds port 0 everywhere; a restart takes the same ports again so clients
        // holding the old bootstrap address reconnect.
        let port_of = |addr: Option<&String>| {
            addr.and_then(|a| a.rsplit_once(':'))
                .map(|(_, p)| p.to_owned())
                .unwrap_or_else(|| "0".to_owned())
        };
        let previous = self.listeners.take();
        let kafka = port_of(previous.as_ref().map(|l| &l.kafka));
        let admin = port_of(previous.as_ref().map(|l| &l.admin));
        let cloudevents = port_of(previous.as_ref().and_then(|l| l.cloudevents.as_ref()));
        let controller = format!("127.0.0.1:{}", self.controller_port);
        let node_id = self.options.node_id;

        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .args(["--node-id", &node_id.to_string()])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--kafka-listen", &format!("127.0.0.1:{kafka}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--controller-listen", &controller])
            .args(["--controller-voters", &format!("{node_id}@{controller}")])
            .args(["--cloudevents-listen", &format!("127.0.0.1:{cloudevents}")]);
        if let Some(advertise) = &self.options.kafka_advertise {
            cmd.args(["--kafka-advertise", advertise]);
        }
        for (key, value) in &self.options.sets {
            cmd.args(["--set", &format!("{key}={value}")]);
        }
        cmd.args(&self.options.extra_args)
            .current_dir(self.dir.path())
            .env("RUST_BACKTRACE", "1");
        // The node is configured by the flags above alone, not by a developer's SPATE_* shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPATE_") {
                cmd.env_remove(&name);
            }
        }
        self.starts += 1;
        let marker = format!("=== start {} ===\n", self.starts);
        for log in [self.stdout(), self.stderr()] {
            let mut text = fs::read_to_string(&log).unwrap_or_default();
            text.push_str(&marker);
            fs::write(&log, text).with_context(|| format!("cannot write {}", log.display()))?;
        }
        let child = process::spawn_logged(&mut cmd, &self.stdout(), &self.stderr())?;
        self.child = Some(child);
        match self.wait_ready() {
            Ok(listeners) => {
                self.listeners = Some(listeners);
                Ok(())
            }
            Err(e) => {
                self.kill9();
                bail!("{e:#}\n{}", self.logs())
            }
        }
    }

    fn wait_ready(&mut self) -> Result<Listeners> {
        let started = Instant::now();
        let file = self.listeners_file();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "spate exited with {status} before writing {}",
                    file.display()
                );
            }
            match fs::read_to_string(&file) {
                Ok(text) => {
                    return serde_json::from_str(&text).with_context(|| {
                        format!("{} is not the listeners JSON: {text}", file.display())
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
            }
            if started.elapsed() > self.options.ready_timeout {
                bail!(
                    "spate did not write {} within {:?}",
                    file.display(),
                    self.options.ready_timeout
                );
            }
            thread::sleep(Duration::from_millis(READY_POLL_INTERVAL_MS));
        }
    }

    /// Clean shutdown: SIGTERM, then wait (SIGKILL and an error if it overstays its timeout).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        process::signal(&child, libc::SIGTERM);
        let timeout = Duration::from_millis(SPATE_STOP_TIMEOUT_MS);
        if process::wait_timeout(&mut child, timeout)?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "spate did not stop within {timeout:?} of SIGTERM\n{}",
                self.logs()
            );
        }
        Ok(())
    }

    /// SIGKILL, as a crash or power loss of the process would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node cleanly if it is running and starts it again on the same data directory
    /// and the same ports.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// The end of the node's stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- spate stdout ({}) ---\n{}\n--- spate stderr ({}) ---\n{}",
            self.stdout().display(),
            process::tail(&self.stdout(), LOG_TAIL_BYTES),
            self.stderr().display(),
            process::tail(&self.stderr(), LOG_TAIL_BYTES),
        )
    }

    /// The node's working directory (logs; the data directory is inside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SpateNode {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill9();
    }
}
