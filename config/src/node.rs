//! The node's own configuration: one TOML file, overridden by `SPATE_*` environment variables,
//! overridden by command-line flags.
//!
//! Every node key has the three spellings listed in [`NODE_KEYS`]. Broker settings use Kafka's
//! names, in the file's `[broker]` table or with `--set KEY=VALUE`. With no file, no variables
//! and no flags the defaults run a single node: id 0, the only controller voter, data in
//! `./data`, Kafka on 127.0.0.1:9092.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::address::{HostPort, Voter};
use crate::broker::{
    BrokerSettings, ConfigLayers, broker_config_def, node_identity_key, parse_broker_value,
};
use crate::topic::topic_config_def;
use crate::value::java_double_string;

/// The largest config file read, in bytes; a larger file is refused rather than read into memory.
pub const CONFIG_FILE_SIZE_MAX_BYTES: u64 = 1024 * 1024;
/// The longest cluster id accepted, in bytes.
pub const CLUSTER_ID_LENGTH_MAX_BYTES: usize = 64;
/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "SPATE_CONFIG";

/// A node key (everything except the `[broker]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKey {
    /// `node_id`.
    NodeId,
    /// `data_dir`.
    DataDir,
    /// `kafka.listen`.
    KafkaListen,
    /// `kafka.advertise`.
    KafkaAdvertise,
    /// `controller.listen`.
    ControllerListen,
    /// `controller.voters`.
    ControllerVoters,
    /// `cloudevents.listen`.
    CloudeventsListen,
    /// `admin.listen`.
    AdminListen,
    /// `cluster_id`.
    ClusterId,
    /// `rack`.
    Rack,
    /// `log.format`.
    LogFormat,
    /// `log.level`.
    LogLevel,
}

/// A node key's spellings, default and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeKeyDef {
    /// Which key.
    pub key: NodeKey,
    /// Its name in the TOML file (`section.name` for keys in a table).
    pub toml: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// Its flag of `spate serve`.
    pub flag: &'static str,
    /// The placeholder of its value in help and docs.
    pub value_name: &'static str,
    /// Its default, or `None` when it is unset by default.
    pub default: Option<&'static str>,
    /// What it does.
    pub documentation: &'static str,
}

/// Every node key, in the order the reference lists them.
pub static NODE_KEYS: &[NodeKeyDef] = &[
    NodeKeyDef {
        key: NodeKey::NodeId,
        toml: "node_id",
        env: "SPATE_NODE_ID",
        flag: "--node-id",
        value_name: "N",
        default: Some("0"),
        documentation: "This node's id, unique in the cluster; in a StatefulSet, the pod ordinal.",
    },
    NodeKeyDef {
        key: NodeKey::DataDir,
        toml: "data_dir",
        env: "SPATE_DATA_DIR",
        flag: "--data-dir",
        value_name: "DIR",
        default: Some("./data"),
        documentation: "Directory for partition logs and the metadata quorum's log (`__cluster_metadata`).",
    },
    NodeKeyDef {
        key: NodeKey::KafkaListen,
        toml: "kafka.listen",
        env: "SPATE_KAFKA_LISTEN",
        flag: "--kafka-listen",
        value_name: "HOST:PORT",
        default: Some("127.0.0.1:9092"),
        documentation: "Address the Kafka listener binds. Port 0 binds a free port.",
    },
    NodeKeyDef {
        key: NodeKey::KafkaAdvertise,
        toml: "kafka.advertise",
        env: "SPATE_KAFKA_ADVERTISE",
        flag: "--kafka-advertise",
        value_name: "HOST:PORT",
        default: None,
        documentation: "Kafka address given to clients; may be a DNS name. Defaults to the bound Kafka \
            address, and must be set when that is a wildcard such as 0.0.0.0.",
    },
    NodeKeyDef {
        key: NodeKey::ControllerListen,
        toml: "controller.listen",
        env: "SPATE_CONTROLLER_LISTEN",
        flag: "--controller-listen",
        value_name: "HOST:PORT",
        default: Some("127.0.0.1:9093"),
        documentation: "Address the controller quorum listener binds. Port 0 binds a free port.",
    },
    NodeKeyDef {
        key: NodeKey::ControllerVoters,
        toml: "controller.voters",
        env: "SPATE_CONTROLLER_VOTERS",
        flag: "--controller-voters",
        value_name: "ID@HOST:PORT,...",
        default: Some("0@127.0.0.1:9093"),
        documentation: "The controller quorum's voters. A node not listed joins as a learner: it \
            follows the metadata log and serves partitions but does not vote. In the file it may \
            also be an array of strings.",
    },
    NodeKeyDef {
        key: NodeKey::CloudeventsListen,
        toml: "cloudevents.listen",
        env: "SPATE_CLOUDEVENTS_LISTEN",
        flag: "--cloudevents-listen",
        value_name: "HOST:PORT",
        default: Some("127.0.0.1:8080"),
        documentation: "Address the CloudEvents HTTP ingress binds. Port 0 binds a free port.",
    },
    NodeKeyDef {
        key: NodeKey::AdminListen,
        toml: "admin.listen",
        env: "SPATE_ADMIN_LISTEN",
        flag: "--admin-listen",
        value_name: "HOST:PORT",
        default: Some("127.0.0.1:9644"),
        documentation: "Address the admin HTTP API (metrics, health, REST) binds. Port 0 binds a free port.",
    },
    NodeKeyDef {
        key: NodeKey::ClusterId,
        toml: "cluster_id",
        env: "SPATE_CLUSTER_ID",
        flag: "--cluster-id",
        value_name: "ID",
        default: None,
        documentation: "The cluster's id (letters, digits, `-` and `_`), as clients see it in Metadata \
            and DescribeCluster. Optional.",
    },
    NodeKeyDef {
        key: NodeKey::Rack,
        toml: "rack",
        env: "SPATE_RACK",
        flag: "--rack",
        value_name: "RACK",
        default: None,
        documentation: "This node's rack or zone, for rack-aware replica placement (Kafka's `broker.rack`).",
    },
    NodeKeyDef {
        key: NodeKey::LogFormat,
        toml: "log.format",
        env: "SPATE_LOG_FORMAT",
        flag: "--log-format",
        value_name: "human|json",
        default: Some("human"),
        documentation: "Log output: `human` for terminals, `json` for log collectors.",
    },
    NodeKeyDef {
        key: NodeKey::LogLevel,
        toml: "log.level",
        env: "SPATE_LOG_LEVEL",
        flag: "--log-level",
        value_name: "LEVEL",
        default: Some("info"),
        documentation: "Log filter: a level (trace, debug, info, warn, error, off) or comma-separated \
            `target=level` directives, e.g. `info,spate_storage=debug`.",
    },
];

fn key_def(key: NodeKey) -> &'static NodeKeyDef {
    // Every NodeKey has exactly one entry; the unit test `every_node_key_has_one_definition`
    // keeps it so.
    NODE_KEYS
        .iter()
        .find(|def| def.key == key)
        .unwrap_or(&NODE_KEYS[0])
}

/// The flags of `spate serve` that configure the node; the broker's CLI flattens this struct.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct NodeArgs {
    /// TOML config file [env: SPATE_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id [env: SPATE_NODE_ID] [default: 0].
    #[arg(long, value_name = "N")]
    pub node_id: Option<String>,
    /// Data directory [env: SPATE_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener bind address [env: SPATE_KAFKA_LISTEN] [default: 127.0.0.1:9092].
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_listen: Option<String>,
    /// Kafka address advertised to clients [env: SPATE_KAFKA_ADVERTISE] [default: the bound address].
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_advertise: Option<String>,
    /// Admin HTTP bind address [env: SPATE_ADMIN_LISTEN] [default: 127.0.0.1:9644].
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_listen: Option<String>,
    /// Controller quorum bind address [env: SPATE_CONTROLLER_LISTEN] [default: 127.0.0.1:9093].
    #[arg(long, value_name = "HOST:PORT")]
    pub controller_listen: Option<String>,
    /// Controller voters [env: SPATE_CONTROLLER_VOTERS] [default: 0@127.0.0.1:9093].
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    pub controller_voters: Option<String>,
    /// CloudEvents ingress bind address [env: SPATE_CLOUDEVENTS_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    pub cloudevents_listen: Option<String>,
    /// Cluster id [env: SPATE_CLUSTER_ID].
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// Rack or zone of this node [env: SPATE_RACK].
    #[arg(long, value_name = "RACK")]
    pub rack: Option<String>,
    /// Log format: human or json [env: SPATE_LOG_FORMAT] [default: human].
    #[arg(long, value_name = "human|json")]
    pub log_format: Option<String>,
    /// Log level or filter directives [env: SPATE_LOG_LEVEL] [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Set a broker config by its Kafka name, like the file's [broker] table (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl NodeArgs {
    fn flag_value(&self, key: NodeKey) -> Option<String> {
        match key {
            NodeKey::NodeId => self.node_id.clone(),
            NodeKey::DataDir => self
                .data_dir
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            NodeKey::KafkaListen => self.kafka_listen.clone(),
            NodeKey::KafkaAdvertise => self.kafka_advertise.clone(),
            NodeKey::ControllerListen => self.controller_listen.clone(),
            NodeKey::ControllerVoters => self.controller_voters.clone(),
            NodeKey::CloudeventsListen => self.cloudevents_listen.clone(),
            NodeKey::AdminListen => self.admin_listen.clone(),
            NodeKey::ClusterId => self.cluster_id.clone(),
            NodeKey::Rack => self.rack.clone(),
            NodeKey::LogFormat => self.log_format.clone(),
            NodeKey::LogLevel => self.log_level.clone(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line.
    Json,
}

/// Why the node's configuration cannot be used. Every message names the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range. `key` says where it came from: an
    /// environment variable, a flag, or `<file>: <toml key>`.
    #[error("{key}: {problem}")]
    Invalid {
        /// Where the value came from.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// Values that are valid alone but not together; the message names each key.
    #[error("{0}")]
    Conflict(String),
}

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A raw value and the label of where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    origin: String,
}

/// Values read from the config file.
#[derive(Debug, Default)]
struct FileValues {
    node: BTreeMap<NodeKey, Raw>,
    broker: BTreeMap<String, Raw>,
}

/// The node's configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// This node's id.
    pub node_id: i32,
    /// Where data lives.
    pub data_dir: PathBuf,
    /// The Kafka listener's bind address; port 0 until the broker replaces it with the bound one.
    pub kafka_listen: HostPort,
    /// The Kafka address given to clients, when it differs from the listen address.
    pub kafka_advertise: Option<HostPort>,
    /// The controller listener's bind address.
    pub controller_listen: HostPort,
    /// The controller quorum's voters.
    pub controller_voters: Vec<Voter>,
    /// The CloudEvents ingress bind address.
    pub cloudevents_listen: HostPort,
    /// The admin HTTP API bind address.
    pub admin_listen: HostPort,
    /// The cluster id, when configured.
    pub cluster_id: Option<String>,
    /// This node's rack, when configured.
    pub rack: Option<String>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// The log filter directives.
    pub log_level: String,
    /// The file the configuration was read from, if any.
    pub config_file: Option<PathBuf>,
    /// Broker configs set in the file's `[broker]` table or with `--set`, by Kafka name, as given.
    pub broker_overrides: BTreeMap<String, String>,
    /// The typed broker settings from the static configs (no dynamic configs yet).
    pub broker: BrokerSettings,
    /// Things that are allowed but probably not meant, for the broker to log at startup.
    pub warnings: Vec<String>,
}

/// Kafka's default replication factor of its internal topics, lowered to the voter count when a
/// cluster is smaller (see [`NodeConfig::static_broker_configs`]).
const INTERNAL_TOPIC_REPLICATION_CONFIGS: &[(&str, usize)] = &[
    ("offsets.topic.replication.factor", 3),
    ("transaction.state.log.replication.factor", 3),
    ("transaction.state.log.min.isr", 2),
];

impl NodeConfig {
    /// Loads the configuration from `args`, the process environment and the config file.
    pub fn load(args: &NodeArgs) -> Result<NodeConfig, ConfigError> {
        // A variable that is set but not UTF-8 is an error, not silently absent.
        for name in NODE_KEYS.iter().map(|def| def.env).chain([CONFIG_FILE_ENV]) {
            if std::env::var_os(name).is_some_and(|value| value.to_str().is_none()) {
                return Err(invalid(name, "the value is not valid UTF-8"));
            }
        }
        NodeConfig::load_with_env(args, &|name| std::env::var(name).ok())
    }

    /// Loads the configuration with environment variables read through `env`, so tests and
    /// embedders need not touch the process environment.
    pub fn load_with_env(
        args: &NodeArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let config_file = args
            .config
            .clone()
            .or_else(|| env(CONFIG_FILE_ENV).map(PathBuf::from));
        let file = match &config_file {
            Some(path) => read_file(path)?,
            None => FileValues::default(),
        };

        // Precedence: default < file < environment < flag.
        let mut values: BTreeMap<NodeKey, Raw> = file.node;
        for def in NODE_KEYS {
            if let Some(value) = env(def.env) {
                values.insert(
                    def.key,
                    Raw {
                        value,
                        origin: def.env.to_string(),
                    },
                );
            }
            if let Some(value) = args.flag_value(def.key) {
                values.insert(
                    def.key,
                    Raw {
                        value,
                        origin: def.flag.to_string(),
                    },
                );
            }
        }
        let raw = |key: NodeKey| -> Option<Raw> {
            values.get(&key).cloned().or_else(|| {
                let def = key_def(key);
                def.default.map(|value| Raw {
                    value: value.to_string(),
                    origin: format!("{} (default)", def.toml),
                })
            })
        };

        let node_id = parse_node_id(&raw(NodeKey::NodeId))?;
        let data_dir = match (&args.data_dir, raw(NodeKey::DataDir)) {
            (Some(path), _) if !path.as_os_str().is_empty() => path.clone(),
            (_, Some(raw)) if !raw.value.trim().is_empty() => PathBuf::from(raw.value),
            (_, Some(raw)) => {
                return Err(invalid(&raw.origin, "the data directory must not be empty"));
            }
            (_, None) => PathBuf::from("./data"),
        };
        let kafka_listen = parse_listen(&raw(NodeKey::KafkaListen))?;
        let kafka_advertise = raw(NodeKey::KafkaAdvertise)
            .map(|raw| parse_advertise(&raw))
            .transpose()?;
        let controller_listen = parse_listen(&raw(NodeKey::ControllerListen))?;
        let controller_voters = parse_voters(&raw(NodeKey::ControllerVoters))?;
        let cloudevents_listen = parse_listen(&raw(NodeKey::CloudeventsListen))?;
        let admin_listen = parse_listen(&raw(NodeKey::AdminListen))?;
        let cluster_id = raw(NodeKey::ClusterId)
            .map(|raw| parse_cluster_id(&raw))
            .transpose()?;
        let rack = raw(NodeKey::Rack)
            .map(|raw| {
                let rack = raw.value.trim().to_string();
                if rack.is_empty() {
                    Err(invalid(&raw.origin, "the rack must not be empty"))
                } else {
                    Ok(rack)
                }
            })
            .transpose()?;
        let log_format = parse_log_format(&raw(NodeKey::LogFormat))?;
        let log_level = parse_log_level(&raw(NodeKey::LogLevel))?;

        if kafka_advertise.is_none() && kafka_listen.is_wildcard() {
            return Err(ConfigError::Conflict(format!(
                "kafka.advertise (SPATE_KAFKA_ADVERTISE, --kafka-advertise) must be set: the Kafka listen \
                 address {kafka_listen} is a wildcard that clients cannot connect to"
            )));
        }
        check_distinct_listeners(&[
            ("kafka.listen", &kafka_listen),
            ("controller.listen", &controller_listen),
            ("cloudevents.listen", &cloudevents_listen),
            ("admin.listen", &admin_listen),
        ])?;

        // Broker settings: the file's [broker] table, then --set in order (the last one wins).
        let mut broker_raw = file.broker;
        for entry in &args.set {
            let origin = format!("--set {entry}");
            let (name, value) = entry.split_once('=').ok_or_else(|| {
                invalid(&origin, "expected KEY=VALUE, e.g. --set num.partitions=3")
            })?;
            broker_raw.insert(
                name.trim().to_string(),
                Raw {
                    value: value.to_string(),
                    origin,
                },
            );
        }
        let mut broker_overrides = BTreeMap::new();
        for (name, raw) in &broker_raw {
            check_broker_key(name, &raw.origin)?;
            parse_broker_value(name, &raw.value)
                .map_err(|e| invalid(&raw.origin, e.to_string()))?;
            broker_overrides.insert(name.clone(), raw.value.clone());
        }

        let mut config = NodeConfig {
            node_id,
            data_dir,
            kafka_listen,
            kafka_advertise,
            controller_listen,
            controller_voters,
            cloudevents_listen,
            admin_listen,
            cluster_id,
            rack,
            log_format,
            log_level,
            config_file,
            broker_overrides,
            broker: BrokerSettings::from_layers(&ConfigLayers::default())
                .map_err(|e| ConfigError::Conflict(e.to_string()))?,
            warnings: Vec::new(),
        };
        config.broker = BrokerSettings::from_layers(&config.config_layers())
            .map_err(|e| ConfigError::Conflict(format!("[broker] {e}")))?;
        config.warnings = config.compute_warnings();
        Ok(config)
    }

    /// Whether this node is one of the controller voters.
    pub fn is_voter(&self) -> bool {
        self.controller_voters
            .iter()
            .any(|voter| voter.id == self.node_id)
    }

    /// The Kafka address given to clients: the advertised address, else the listen address.
    /// When the listen port is 0 the broker first replaces `kafka_listen` with
    /// [`HostPort::with_bound_port`].
    pub fn advertised_kafka_address(&self) -> HostPort {
        self.kafka_advertise
            .clone()
            .unwrap_or_else(|| self.kafka_listen.clone())
    }

    /// The node's static broker configs by Kafka name: the `[broker]` settings, the Kafka names
    /// of the node keys (`node.id`, `listeners`, `controller.quorum.voters`, …) so that
    /// DescribeConfigs reports them, and, in a quorum with fewer voters than Kafka's internal
    /// topic replication defaults, those defaults lowered to the voter count unless set. (Kafka's
    /// own single-node sample configuration sets them to 1 in the same way.)
    pub fn static_broker_configs(&self) -> BTreeMap<String, String> {
        let mut configs = self.broker_overrides.clone();
        let data_dir = self.data_dir.to_string_lossy().into_owned();
        let voters = self
            .controller_voters
            .iter()
            .map(Voter::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let identity = [
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            (
                "process.roles",
                if self.is_voter() {
                    "broker,controller"
                } else {
                    "broker"
                }
                .to_string(),
            ),
            ("log.dirs", data_dir.clone()),
            ("log.dir", data_dir),
            (
                "metadata.log.dir",
                self.data_dir
                    .join("__cluster_metadata")
                    .to_string_lossy()
                    .into_owned(),
            ),
            (
                "listeners",
                format!(
                    "PLAINTEXT://{},CONTROLLER://{}",
                    self.kafka_listen, self.controller_listen
                ),
            ),
            (
                "advertised.listeners",
                format!("PLAINTEXT://{}", self.advertised_kafka_address()),
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
            ),
            ("inter.broker.listener.name", "PLAINTEXT".to_string()),
            ("controller.listener.names", "CONTROLLER".to_string()),
            ("controller.quorum.voters", voters),
        ];
        for (name, value) in identity {
            configs.insert(name.to_string(), value);
        }
        if let Some(rack) = &self.rack {
            configs.insert("broker.rack".to_string(), rack.clone());
        }
        let voter_count = self.controller_voters.len().max(1);
        for (name, kafka_default) in INTERNAL_TOPIC_REPLICATION_CONFIGS {
            if voter_count < *kafka_default && !self.broker_overrides.contains_key(*name) {
                configs.insert(name.to_string(), voter_count.to_string());
            }
        }
        configs
    }

    /// The config layers with this node's static configs and no dynamic ones yet.
    pub fn config_layers(&self) -> ConfigLayers {
        ConfigLayers::from_static(self.static_broker_configs())
    }

    fn compute_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let ids: Vec<String> = self
            .controller_voters
            .iter()
            .map(|v| v.id.to_string())
            .collect();
        match self.controller_voters.iter().find(|voter| voter.id == self.node_id) {
            None => warnings.push(format!(
                "controller.voters: node id {} is not among the voters ({}); it joins the quorum as a \
                 learner (a broker that does not vote)",
                self.node_id,
                ids.join(", ")
            )),
            Some(voter) => {
                if self.controller_listen.port != 0
                    && voter.address.port != self.controller_listen.port
                    && self.controller_voters.len() > 1
                {
                    warnings.push(format!(
                        "controller.voters lists this node ({}) at port {}, but controller.listen binds port {}",
                        self.node_id, voter.address.port, self.controller_listen.port
                    ));
                }
            }
        }
        if self.broker.topic_defaults.min_insync_replicas > self.broker.default_replication_factor {
            warnings.push(format!(
                "min.insync.replicas ({}) is larger than default.replication.factor ({}): produce with \
                 acks=all fails on topics created with the default",
                self.broker.topic_defaults.min_insync_replicas, self.broker.default_replication_factor
            ));
        }
        warnings
    }
}

fn check_broker_key(name: &str, origin: &str) -> Result<(), ConfigError> {
    if let Some(node_key) = node_identity_key(name) {
        return Err(invalid(
            origin,
            format!("{name} describes the node itself; set it with {node_key}"),
        ));
    }
    if broker_config_def(name).is_some() {
        return Ok(());
    }
    let hint = match topic_config_def(name).and_then(|def| def.synonyms.first()) {
        Some(synonym) => format!(
            "; {name} is a topic config, whose cluster-wide default is the broker config {}",
            synonym.name
        ),
        None => String::new(),
    };
    Err(invalid(
        origin,
        format!("unknown broker config {name}{hint}"),
    ))
}

fn parse_node_id(raw: &Option<Raw>) -> Result<i32, ConfigError> {
    let Some(raw) = raw else { return Ok(0) };
    let text = raw.value.trim();
    let id: i64 = text
        .parse()
        .map_err(|_| invalid(&raw.origin, format!("\"{}\" is not an integer", raw.value)))?;
    if id < 0 {
        return Err(invalid(
            &raw.origin,
            format!("{id} is negative; node ids are 0 or more"),
        ));
    }
    i32::try_from(id).map_err(|_| {
        invalid(
            &raw.origin,
            format!("{id} is larger than the largest node id, {}", i32::MAX),
        )
    })
}

fn parse_listen(raw: &Option<Raw>) -> Result<HostPort, ConfigError> {
    let Some(raw) = raw else {
        return Err(invalid("listen address", "missing"));
    };
    HostPort::parse(&raw.value).map_err(|e| invalid(&raw.origin, e.to_string()))
}

fn parse_advertise(raw: &Raw) -> Result<HostPort, ConfigError> {
    let address = HostPort::parse(&raw.value).map_err(|e| invalid(&raw.origin, e.to_string()))?;
    if address.port == 0 {
        return Err(invalid(
            &raw.origin,
            format!("{address}: port 0 cannot be advertised; clients need the real port"),
        ));
    }
    if address.is_wildcard() {
        return Err(invalid(
            &raw.origin,
            format!(
                "{address}: a wildcard address cannot be advertised; clients cannot connect to it"
            ),
        ));
    }
    Ok(address)
}

fn parse_voters(raw: &Option<Raw>) -> Result<Vec<Voter>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let voters = Voter::parse_list(&raw.value).map_err(|e| invalid(&raw.origin, e.to_string()))?;
    if voters.is_empty() {
        return Err(invalid(
            &raw.origin,
            "the list of voters is empty; a quorum needs at least one",
        ));
    }
    for (index, voter) in voters.iter().enumerate() {
        if voter.address.port == 0 {
            return Err(invalid(
                &raw.origin,
                format!("voter {voter}: port 0 cannot be reached by other nodes"),
            ));
        }
        if voter.address.is_wildcard() {
            return Err(invalid(
                &raw.origin,
                format!("voter {voter}: a wildcard address cannot be reached"),
            ));
        }
        if let Some(other) = voters[..index].iter().find(|other| other.id == voter.id) {
            return Err(invalid(
                &raw.origin,
                format!("node id {} is listed twice ({other} and {voter})", voter.id),
            ));
        }
        if let Some(other) = voters[..index]
            .iter()
            .find(|other| other.address == voter.address)
        {
            return Err(invalid(
                &raw.origin,
                format!(
                    "{other} and {voter} have the same address {}",
                    voter.address
                ),
            ));
        }
    }
    Ok(voters)
}

fn parse_cluster_id(raw: &Raw) -> Result<String, ConfigError> {
    let id = raw.value.trim();
    if id.is_empty() || id.len() > CLUSTER_ID_LENGTH_MAX_BYTES {
        return Err(invalid(
            &raw.origin,
            format!(
                "\"{}\" must be 1 to {CLUSTER_ID_LENGTH_MAX_BYTES} characters",
                raw.value
            ),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            &raw.origin,
            format!(
                "\"{}\" may hold only letters, digits, '-' and '_'",
                raw.value
            ),
        ));
    }
    Ok(id.to_string())
}

fn parse_log_format(raw: &Option<Raw>) -> Result<LogFormat, ConfigError> {
    let Some(raw) = raw else {
        return Ok(LogFormat::Human);
    };
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(
            &raw.origin,
            format!("\"{}\" is not a log format: use human or json", raw.value),
        )),
    }
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

fn parse_log_level(raw: &Option<Raw>) -> Result<String, ConfigError> {
    let Some(raw) = raw else {
        return Ok("info".to_string());
    };
    let text = raw.value.trim();
    if text.is_empty() {
        return Err(invalid(&raw.origin, "the log level must not be empty"));
    }
    for directive in text.split(',').map(str::trim) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => {
                return Err(invalid(
                    &raw.origin,
                    format!("\"{directive}\" has no target before '='"),
                ));
            }
            None => directive,
        };
        if !LOG_LEVELS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(level.trim()))
        {
            return Err(invalid(
                &raw.origin,
                format!(
                    "\"{level}\" is not a log level: use one of {}",
                    LOG_LEVELS.join(", ")
                ),
            ));
        }
    }
    Ok(text.to_string())
}

fn check_distinct_listeners(listeners: &[(&str, &HostPort)]) -> Result<(), ConfigError> {
    for (index, (name, address)) in listeners.iter().enumerate() {
        if address.port == 0 {
            continue;
        }
        for (other_name, other) in &listeners[..index] {
            if other.port == address.port
                && (other.host == address.host || other.is_wildcard() || address.is_wildcard())
            {
                return Err(ConfigError::Conflict(format!(
                    "{other_name} ({other}) and {name} ({address}) would bind the same port"
                )));
            }
        }
    }
    Ok(())
}

/// A TOML value as the text a config value is parsed from.
fn toml_text(value: &toml::Value, origin: &str) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(java_double_string(*number)),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        toml::Value::Array(items) => {
            let parts: Result<Vec<String>, ConfigError> = items
                .iter()
                .map(|item| match item {
                    toml::Value::Array(_) | toml::Value::Table(_) => Err(invalid(
                        origin,
                        "a list may hold only strings, numbers and booleans",
                    )),
                    other => toml_text(other, origin),
                })
                .collect();
            Ok(parts?.join(","))
        }
        toml::Value::Datetime(_) => Err(invalid(origin, "a date is not a valid value here")),
        toml::Value::Table(_) => Err(invalid(origin, "expected a value, found a table")),
    }
}

/// Flattens `[broker]`: unquoted dotted keys (`log.retention.hours = 24`) are nested tables in
/// TOML; they join back into Kafka's dotted names.
fn flatten_broker(
    table: &toml::Table,
    prefix: &str,
    path: &Path,
    out: &mut BTreeMap<String, Raw>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(nested) => flatten_broker(nested, &name, path, out)?,
            other => {
                let origin = format!("{}: [broker] {name}", path.display());
                let text = toml_text(other, &origin)?;
                out.insert(
                    name,
                    Raw {
                        value: text,
                        origin,
                    },
                );
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let read_error = |source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > CONFIG_FILE_SIZE_MAX_BYTES {
        return Err(ConfigError::FileSyntax {
            path: path.to_path_buf(),
            message: format!("the file is {size} bytes; the limit is {CONFIG_FILE_SIZE_MAX_BYTES}"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    parse_file_text(path, &text)
}

fn parse_file_text(path: &Path, text: &str) -> Result<FileValues, ConfigError> {
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigError::FileSyntax {
                path: path.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
    let mut values = FileValues::default();
    let unknown = |key: &str| {
        let known: Vec<&str> = NODE_KEYS.iter().map(|def| def.toml).collect();
        invalid(
            &format!("{}: {key}", path.display()),
            format!(
                "unknown key; the file accepts {} and a [broker] table",
                known.join(", ")
            ),
        )
    };
    for (key, value) in &table {
        if key == "broker" {
            match value {
                toml::Value::Table(broker) => flatten_broker(broker, "", path, &mut values.broker)?,
                _ => {
                    return Err(invalid(
                        &format!("{}: broker", path.display()),
                        "expected a table ([broker])",
                    ));
                }
            }
            continue;
        }
        let mut entries: Vec<(String, &toml::Value)> = Vec::new();
        match value {
            toml::Value::Table(section) => {
                for (inner, inner_value) in section {
                    entries.push((format!("{key}.{inner}"), inner_value));
                }
            }
            other => entries.push((key.clone(), other)),
        }
        for (name, value) in entries {
            let def = NODE_KEYS
                .iter()
                .find(|def| def.toml == name)
                .ok_or_else(|| unknown(&name))?;
            let origin = format!("{}: {name}", path.display());
            let text = toml_text(value, &origin)?;
            values.node.insert(
                def.key,
                Raw {
                    value: text,
                    origin,
                },
            );
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(args: &NodeArgs, env: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeConfig::load_with_env(args, &|name| env.get(name).cloned())
    }

    fn error(args: &NodeArgs, env: &[(&str, &str)]) -> String {
        match load(args, env) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_node_key_has_one_definition() {
        use NodeKey::*;
        for key in [
            NodeId,
            DataDir,
            KafkaListen,
            KafkaAdvertise,
            ControllerListen,
            ControllerVoters,
            CloudeventsListen,
            AdminListen,
            ClusterId,
            Rack,
            LogFormat,
            LogLevel,
        ] {
            assert_eq!(
                NODE_KEYS.iter().filter(|def| def.key == key).count(),
                1,
                "{key:?}"
            );
        }
    }

    #[test]
    fn defaults_run_a_single_node() {
        let config =
            NodeConfig::load_with_env(&NodeArgs::default(), &no_env).expect("defaults are valid");
        assert_eq!(config.node_id, 0);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.kafka_listen.to_string(), "127.0.0.1:9092");
        assert_eq!(
            config.advertised_kafka_address().to_string(),
            "127.0.0.1:9092"
        );
        assert_eq!(config.controller_listen.to_string(), "127.0.0.1:9093");
        assert_eq!(
            config.controller_voters,
            Voter::parse_list("0@127.0.0.1:9093").expect("valid")
        );
        assert_eq!(config.cloudevents_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9644");
        assert_eq!(config.log_format, LogFormat::Human);
        assert_eq!(config.log_level, "info");
        assert!(config.is_voter());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        // A single voter lowers the internal topics' replication so they can be created.
        assert_eq!(config.broker.offsets_topic_replication_factor, 1);
        assert_eq!(config.broker.transaction_state_log_replication_factor, 1);
        assert_eq!(config.broker.transaction_state_log_min_isr, 1);
        let statics = config.static_broker_configs();
        assert_eq!(statics["process.roles"], "broker,controller");
        assert_eq!(
            statics["listeners"],
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
        );
        assert_eq!(
            statics["advertised.listeners"],
            "PLAINTEXT://127.0.0.1:9092"
        );
    }

    #[test]
    fn precedence_is_default_then_file_then_env_then_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spate.toml");
        std::fs::write(
            &path,
            "node_id = 1\n[kafka]\nlisten = \"127.0.0.1:19092\"\n[broker]\n\"num.partitions\" = 2\n",
        )
        .expect("write");
        let mut args = NodeArgs {
            config: Some(path.clone()),
            ..NodeArgs::default()
        };
        let from_file = load(&args, &[]).expect("valid");
        assert_eq!(from_file.node_id, 1);
        assert_eq!(from_file.kafka_listen.port, 19092);
        assert_eq!(from_file.broker.num_partitions, 2);
        assert_eq!(from_file.config_file.as_deref(), Some(path.as_path()));

        let env = [
            ("SPATE_NODE_ID", "2"),
            ("SPATE_KAFKA_LISTEN", "127.0.0.1:29092"),
        ];
        let from_env = load(&args, &env).expect("valid");
        assert_eq!(from_env.node_id, 2);
        assert_eq!(from_env.kafka_listen.port, 29092);

        args.node_id = Some("3".into());
        args.set = vec!["num.partitions=4".into()];
        let from_flag = load(&args, &env).expect("valid");
        assert_eq!(from_flag.node_id, 3);
        assert_eq!(
            from_flag.kafka_listen.port, 29092,
            "env still wins over the file"
        );
        assert_eq!(
            from_flag.broker.num_partitions, 4,
            "--set wins over [broker]"
        );

        // SPATE_CONFIG names the file when --config is absent.
        let via_env = load(
            &NodeArgs::default(),
            &[("SPATE_CONFIG", path.to_str().expect("utf-8"))],
        )
        .expect("valid");
        assert_eq!(via_env.node_id, 1);
    }

    #[test]
    fn every_node_key_has_a_working_env_and_flag() {
        let values: &[(NodeKey, &str)] = &[
            (NodeKey::NodeId, "7"),
            (NodeKey::DataDir, "/var/lib/spate"),
            (NodeKey::KafkaListen, "0.0.0.0:9092"),
            (NodeKey::KafkaAdvertise, "spate-7.spate.default.svc:9092"),
            (NodeKey::ControllerListen, "0.0.0.0:9093"),
            (NodeKey::ControllerVoters, "7@spate-7.spate:9093"),
            (NodeKey::CloudeventsListen, "0.0.0.0:8080"),
            (NodeKey::AdminListen, "0.0.0.0:9644"),
            (NodeKey::ClusterId, "MkU3OEVBNTcwNTJENDM2Qk"),
            (NodeKey::Rack, "zone-a"),
            (NodeKey::LogFormat, "json"),
            (NodeKey::LogLevel, "info,spate_storage=debug"),
        ];
        let check = |config: &NodeConfig| {
            assert_eq!(config.node_id, 7);
            assert_eq!(config.data_dir, PathBuf::from("/var/lib/spate"));
            assert!(config.kafka_listen.is_wildcard());
            assert_eq!(
                config.advertised_kafka_address().to_string(),
                "spate-7.spate.default.svc:9092"
            );
            assert_eq!(
                config.controller_voters[0].to_string(),
                "7@spate-7.spate:9093"
            );
            assert_eq!(config.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
            assert_eq!(config.rack.as_deref(), Some("zone-a"));
            assert_eq!(config.log_format, LogFormat::Json);
            assert_eq!(config.log_level, "info,spate_storage=debug");
            assert_eq!(config.static_broker_configs()["broker.rack"], "zone-a");
        };
        let env: Vec<(&str, &str)> = values
            .iter()
            .map(|(key, value)| (key_def(*key).env, *value))
            .collect();
        check(&load(&NodeArgs::default(), &env).expect("env"));

        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            node: NodeArgs,
        }
        let mut argv = vec!["spate".to_string()];
        for (key, value) in values {
            argv.push(key_def(*key).flag.to_string());
            argv.push(value.to_string());
        }
        let cli = Cli::try_parse_from(&argv).expect("flags parse");
        check(&load(&cli.node, &[]).expect("flags"));
        let cli = Cli::try_parse_from([
            "spate",
            "--set",
            "num.partitions=3",
            "--set",
            "log.segment.bytes=1048576",
        ])
        .expect("repeatable --set");
        let config = load(&cli.node, &[]).expect("valid");
        assert_eq!(config.broker.num_partitions, 3);
        assert_eq!(config.broker.topic_defaults.segment_bytes, 1_048_576);
    }

    #[test]
    fn port_zero_is_accepted_for_every_listener() {
        let args = NodeArgs {
            kafka_listen: Some("127.0.0.1:0".into()),
            controller_listen: Some("127.0.0.1:0".into()),
            cloudevents_listen: Some("127.0.0.1:0".into()),
            admin_listen: Some("127.0.0.1:0".into()),
            ..NodeArgs::default()
        };
        let mut config = load(&args, &[]).expect("port 0 binds a free port");
        let bound: std::net::SocketAddr = "127.0.0.1:40123".parse().expect("valid");
        config.kafka_listen = config.kafka_listen.with_bound_port(bound);
        assert_eq!(
            config.advertised_kafka_address().to_string(),
            "127.0.0.1:40123"
        );
    }

    #[test]
    fn validation_messages_name_the_key_and_the_problem() {
        let flag = |f: fn(&mut NodeArgs, String), value: &str| {
            let mut args = NodeArgs::default();
            f(&mut args, value.to_string());
            error(&args, &[])
        };
        assert_eq!(
            error(&NodeArgs::default(), &[("SPATE_NODE_ID", "abc")]),
            "SPATE_NODE_ID: \"abc\" is not an integer"
        );
        assert_eq!(
            flag(|a, v| a.node_id = Some(v), "-1"),
            "--node-id: -1 is negative; node ids are 0 or more"
        );
        assert_eq!(
            flag(|a, v| a.node_id = Some(v), "3000000000"),
            "--node-id: 3000000000 is larger than the largest node id, 2147483647"
        );
        assert_eq!(
            error(&NodeArgs::default(), &[("SPATE_KAFKA_LISTEN", "localhost")]),
            "SPATE_KAFKA_LISTEN: \"localhost\" is not HOST:PORT (the port is missing)"
        );
        assert_eq!(
            flag(|a, v| a.kafka_advertise = Some(v), "example.com:0"),
            "--kafka-advertise: example.com:0: port 0 cannot be advertised; clients need the real port"
        );
        assert_eq!(
            flag(|a, v| a.kafka_advertise = Some(v), "0.0.0.0:9092"),
            "--kafka-advertise: 0.0.0.0:9092: a wildcard address cannot be advertised; clients cannot connect to it"
        );
        assert_eq!(
            flag(|a, v| a.kafka_listen = Some(v), "0.0.0.0:9092"),
            "kafka.advertise (SPATE_KAFKA_ADVERTISE, --kafka-advertise) must be set: the Kafka listen address \
             0.0.0.0:9092 is a wildcard that clients cannot connect to"
        );
        assert_eq!(
            flag(|a, v| a.controller_voters = Some(v), "0@h:1,0@g:1"),
            "--controller-voters: node id 0 is listed twice (0@h:1 and 0@g:1)"
        );
        assert_eq!(
            flag(|a, v| a.controller_voters = Some(v), "0@h:1,1@h:1"),
            "--controller-voters: 0@h:1 and 1@h:1 have the same address h:1"
        );
        assert_eq!(
            flag(|a, v| a.controller_voters = Some(v), "0@h:0"),
            "--controller-voters: voter 0@h:0: port 0 cannot be reached by other nodes"
        );
        assert_eq!(
            flag(|a, v| a.controller_voters = Some(v), ","),
            "--controller-voters: the list of voters is empty; a quorum needs at least one"
        );
        assert_eq!(
            flag(|a, v| a.controller_voters = Some(v), "h:1"),
            "--controller-voters: \"h:1\" is not ID@HOST:PORT (the node id is missing)"
        );
        assert_eq!(
            flag(|a, v| a.log_format = Some(v), "xml"),
            "--log-format: \"xml\" is not a log format: use human or json"
        );
        assert_eq!(
            flag(|a, v| a.log_level = Some(v), "inof"),
            "--log-level: \"inof\" is not a log level: use one of trace, debug, info, warn, error, off"
        );
        assert_eq!(
            flag(|a, v| a.cluster_id = Some(v), "a b"),
            "--cluster-id: \"a b\" may hold only letters, digits, '-' and '_'"
        );
        assert_eq!(
            flag(|a, v| a.rack = Some(v), " "),
            "--rack: the rack must not be empty"
        );
        assert_eq!(
            flag(|a, v| a.admin_listen = Some(v), "127.0.0.1:9092"),
            "kafka.listen (127.0.0.1:9092) and admin.listen (127.0.0.1:9092) would bind the same port"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "num.partitions"),
            "--set num.partitions: expected KEY=VALUE, e.g. --set num.partitions=3"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "num.partitions=abc"),
            "--set num.partitions=abc: Invalid value abc for configuration num.partitions: Not a number of type INT"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "foo.bar=1"),
            "--set foo.bar=1: unknown broker config foo.bar"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "retention.ms=1"),
            "--set retention.ms=1: unknown broker config retention.ms; retention.ms is a topic config, whose \
             cluster-wide default is the broker config log.retention.ms"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "node.id=4"),
            "--set node.id=4: node.id describes the node itself; set it with node_id (SPATE_NODE_ID, --node-id)"
        );
        assert_eq!(
            flag(|a, v| a.set = vec![v], "message.max.bytes=200000000"),
            "[broker] message.max.bytes (200000000) must not exceed socket.request.max.bytes (104857600): a batch \
             that large could never arrive in one request"
        );
    }

    #[test]
    fn a_learner_is_allowed_with_a_warning() {
        let args = NodeArgs {
            node_id: Some("3".into()),
            controller_voters: Some("0@127.0.0.1:9093,1@127.0.0.2:9093,2@127.0.0.3:9093".into()),
            ..NodeArgs::default()
        };
        let config = load(&args, &[]).expect("a non-voter joins as a learner");
        assert!(!config.is_voter());
        assert_eq!(config.static_broker_configs()["process.roles"], "broker");
        assert_eq!(
            config.warnings,
            [
                "controller.voters: node id 3 is not among the voters (0, 1, 2); it joins the quorum as a learner \
              (a broker that does not vote)"
            ]
        );
        // Three voters keep Kafka's internal topic defaults.
        assert_eq!(config.broker.offsets_topic_replication_factor, 3);
        assert_eq!(config.broker.transaction_state_log_min_isr, 2);
    }

    #[test]
    fn file_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |text: &str| {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, text).expect("write");
            let args = NodeArgs {
                config: Some(path.clone()),
                ..NodeArgs::default()
            };
            let message = error(&args, &[]);
            let prefix = format!("{}: ", path.display());
            message
                .strip_prefix(&prefix)
                .map(str::to_string)
                .unwrap_or(message)
        };
        assert_eq!(
            write("node_id = \"abc\""),
            "node_id: \"abc\" is not an integer"
        );
        assert_eq!(
            write("[kafka]\nlisen = \"x:1\""),
            "kafka.lisen: unknown key; the file accepts node_id, data_dir, kafka.listen, kafka.advertise, \
             controller.listen, controller.voters, cloudevents.listen, admin.listen, cluster_id, rack, \
             log.format, log.level and a [broker] table"
        );
        assert_eq!(
            write("[broker]\n\"num.partitions\" = \"x\""),
            "[broker] num.partitions: Invalid value x for configuration num.partitions: Not a number of type INT"
        );
        assert!(write("node_id = ").contains("is not valid TOML"));
        let missing = NodeArgs {
            config: Some(dir.path().join("missing.toml")),
            ..NodeArgs::default()
        };
        assert!(error(&missing, &[]).starts_with("cannot read config file"));
    }

    #[test]
    fn broker_table_accepts_quoted_and_dotted_keys_and_toml_types() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spate.toml");
        std::fs::write(
            &path,
            "[controller]\nvoters = [\"0@127.0.0.1:9093\"]\n\n[broker]\nlog.retention.hours = 24\n\"auto.create.topics.enable\" = false\n\
             \"log.cleaner.min.cleanable.ratio\" = 0.25\n\"log.cleanup.policy\" = [\"compact\", \"delete\"]\n",
        )
        .expect("write");
        let config = load(
            &NodeArgs {
                config: Some(path),
                ..NodeArgs::default()
            },
            &[],
        )
        .expect("valid");
        assert_eq!(config.broker.topic_defaults.retention_ms, 86_400_000);
        assert!(!config.broker.auto_create_topics_enable);
        assert_eq!(config.broker.topic_defaults.min_cleanable_dirty_ratio, 0.25);
        assert!(config.broker.topic_defaults.cleanup_policy.compact);
        assert_eq!(
            config.broker_overrides["log.cleanup.policy"],
            "compact,delete"
        );
    }
}
