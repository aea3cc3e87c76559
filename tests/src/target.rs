//! The broker a test runs against: Spate (the default) or, with `SPATE_E2E_TARGET=kafka`, a real
//! Apache Kafka, so every test body doubles as a differential check of the harness itself.

use std::fmt;

use anyhow::{Result, bail};

use crate::kafka::{KafkaNode, KafkaOptions};
use crate::spate::{SpateNode, SpateOptions};

/// The environment variable that picks the target: `spate` (default) or `kafka`.
pub const TARGET_ENV: &str = "SPATE_E2E_TARGET";

/// Which broker implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A `spate serve` process.
    Spate,
    /// Apache Kafka 4.3.1 from the Maven Central jars.
    Kafka,
}

impl TargetKind {
    /// The kind named by `SPATE_E2E_TARGET`; unknown values are an error, not a silent default.
    pub fn from_env() -> Result<TargetKind> {
        match std::env::var(TARGET_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(TargetKind::Spate),
            Ok(v) if v.is_empty() || v == "spate" => Ok(TargetKind::Spate),
            Ok(v) if v == "kafka" => Ok(TargetKind::Kafka),
            Ok(v) => bail!("{TARGET_ENV}={v}: expected `spate` or `kafka`"),
            Err(e) => bail!("{TARGET_ENV}: {e}"),
        }
    }

    /// Short lowercase name, used in result files.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Spate => "spate",
            TargetKind::Kafka => "kafka",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings that mean the same on both targets.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Broker configs with Kafka's names: `--set` for Spate, `server.properties` for Kafka.
    pub configs: Vec<(String, String)>,
}

/// A running broker of either kind.
pub enum Target {
    /// A `spate serve` process.
    Spate(SpateNode),
    /// An Apache Kafka process.
    Kafka(KafkaNode),
}

impl Target {
    /// Starts the broker that `SPATE_E2E_TARGET` names.
    pub fn start(options: TargetOptions) -> Result<Target> {
        Target::start_kind(TargetKind::from_env()?, options)
    }

    /// Starts a broker of the given kind.
    pub fn start_kind(kind: TargetKind, options: TargetOptions) -> Result<Target> {
        Ok(match kind {
            TargetKind::Spate => Target::Spate(SpateNode::start(SpateOptions {
                sets: options.configs,
                ..SpateOptions::default()
            })?),
            TargetKind::Kafka => Target::Kafka(KafkaNode::start(KafkaOptions {
                configs: options.configs,
            })?),
        })
    }

    /// Which kind this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Spate(_) => TargetKind::Spate,
            Target::Kafka(_) => TargetKind::Kafka,
        }
    }

    /// `host:port` for Kafka clients.
    pub fn bootstrap(&self) -> String {
        match self {
            Target::Spate(n) => n.bootstrap(),
            Target::Kafka(n) => n.bootstrap(),
        }
    }

    /// Clean stop and start on the same data and ports.
    pub fn restart(&mut self) -> Result<()> {
        match self {
            Target::Spate(n) => n.restart(),
            Target::Kafka(n) => n.restart(),
        }
    }

    /// The end of the broker's logs, for failure messages.
    pub fn logs(&self) -> String {
        match self {
            Target::Spate(n) => n.logs(),
            Target::Kafka(n) => n.logs(),
        }
    }
}
