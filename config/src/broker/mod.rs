//! Broker configs with Apache Kafka's names: the table, the layers a value comes from, the
//! cluster-wide topic defaults they imply, and the typed settings the broker runs with.
//!
//! A broker config's value comes from the first of these that sets it, as in Kafka:
//! the broker's own dynamic config (AlterConfigs on resource `"<id>"`), the cluster-wide dynamic
//! default (resource `""`), the node's static config (file, environment, flags), and finally the
//! table's default.

mod table;

use std::collections::BTreeMap;

pub use table::BROKER_CONFIG_DEFS;

use crate::describe::ConfigSource;
use crate::topic::{SynonymUnit, TOPIC_CONFIG_DEFS, TopicConfig, check_topic_config};
use crate::value::{ConfigType, ConfigValue, InvalidConfig, Validator, parse_value};

/// Whether and where a broker config can be changed at runtime (Kafka's "dynamic update mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only in the node's static config; a restart applies it.
    ReadOnly,
    /// Dynamically, per broker only (resource `"<id>"`).
    PerBroker,
    /// Dynamically, per broker or as the cluster-wide default (resource `""`).
    ClusterWide,
}

impl UpdateMode {
    /// The name Kafka's documentation uses.
    pub fn kafka_name(self) -> &'static str {
        match self {
            UpdateMode::ReadOnly => "read-only",
            UpdateMode::PerBroker => "per-broker",
            UpdateMode::ClusterWide => "cluster-wide",
        }
    }
}

/// One broker config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrokerConfigDef {
    /// The Kafka name, e.g. `num.partitions`.
    pub name: &'static str,
    /// Its type.
    pub config_type: ConfigType,
    /// Its default as Kafka prints it; `None` when Kafka's default is null or there is none.
    pub default: Option<&'static str>,
    /// The values it accepts.
    pub validator: Validator,
    /// Whether it can change at runtime, and where.
    pub update_mode: UpdateMode,
    /// Set only through AlterConfigs, never listed unless set (Kafka's replication throttle rates).
    pub dynamic_only: bool,
    /// Whether Spate acts on it; the others are accepted and reported for compatibility.
    pub used_by_spate: bool,
    /// What it does.
    pub documentation: &'static str,
}

impl BrokerConfigDef {
    /// Whether values of this config are hidden in DescribeConfigs.
    pub fn is_sensitive(&self) -> bool {
        self.config_type.is_sensitive()
    }
}

/// The definition of broker config `name`, if Spate knows it.
pub fn broker_config_def(name: &str) -> Option<&'static BrokerConfigDef> {
    BROKER_CONFIG_DEFS
        .binary_search_by(|def| def.name.cmp(name))
        .ok()
        .map(|index| &BROKER_CONFIG_DEFS[index])
}

/// Broker configs that describe the node itself. They come from the node's own keys
/// (`node_id`, `data_dir`, the listen addresses, the voters, the rack), so the `[broker]` table
/// and AlterConfigs cannot set them.
pub const NODE_IDENTITY_CONFIGS: &[(&str, &str)] = &[
    (
        "advertised.listeners",
        "kafka.advertise (SPATE_KAFKA_ADVERTISE, --kafka-advertise)",
    ),
    ("broker.id", "node_id (SPATE_NODE_ID, --node-id)"),
    ("broker.rack", "rack (SPATE_RACK, --rack)"),
    (
        "controller.listener.names",
        "controller.listen (SPATE_CONTROLLER_LISTEN, --controller-listen)",
    ),
    (
        "controller.quorum.bootstrap.servers",
        "controller.voters (SPATE_CONTROLLER_VOTERS, --controller-voters)",
    ),
    (
        "controller.quorum.voters",
        "controller.voters (SPATE_CONTROLLER_VOTERS, --controller-voters)",
    ),
    (
        "early.start.listeners",
        "controller.listen (SPATE_CONTROLLER_LISTEN, --controller-listen)",
    ),
    (
        "inter.broker.listener.name",
        "kafka.listen (SPATE_KAFKA_LISTEN, --kafka-listen)",
    ),
    (
        "listener.security.protocol.map",
        "kafka.listen (SPATE_KAFKA_LISTEN, --kafka-listen)",
    ),
    (
        "listeners",
        "kafka.listen and controller.listen (--kafka-listen, --controller-listen)",
    ),
    ("log.dir", "data_dir (SPATE_DATA_DIR, --data-dir)"),
    ("log.dirs", "data_dir (SPATE_DATA_DIR, --data-dir)"),
    ("metadata.log.dir", "data_dir (SPATE_DATA_DIR, --data-dir)"),
    ("node.id", "node_id (SPATE_NODE_ID, --node-id)"),
    (
        "process.roles",
        "controller.voters (SPATE_CONTROLLER_VOTERS, --controller-voters)",
    ),
];

/// The node key that sets broker config `name`, if it is one of the node's identity configs.
pub fn node_identity_key(name: &str) -> Option<&'static str> {
    NODE_IDENTITY_CONFIGS
        .iter()
        .find(|(config, _)| *config == name)
        .map(|(_, key)| *key)
}

/// The broker configs that share a value with `name`, in the order Kafka consults them
/// (Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`): the millisecond form first.
pub fn broker_config_synonyms(name: &str) -> Vec<&'static str> {
    const GROUPS: &[&[&str]] = &[
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ];
    if name == "log.flush.interval.ms" {
        return vec!["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    }
    for group in GROUPS {
        if group.contains(&name) {
            return group.to_vec();
        }
    }
    match broker_config_def(name) {
        Some(def) => vec![def.name],
        None => Vec::new(),
    }
}

/// Parses a raw broker config value, rejecting names Spate does not know.
pub fn parse_broker_value(name: &str, raw: &str) -> Result<ConfigValue, InvalidConfig> {
    let def = broker_config_def(name)
        .ok_or_else(|| InvalidConfig::UnknownBrokerConfig(name.to_string()))?;
    parse_value(def.name, raw, def.config_type, &def.validator)
}

/// The places a broker config value can come from, highest precedence first.
///
/// Maps hold raw values as they were set, keyed by Kafka name. The broker keeps the two dynamic
/// maps from the metadata log; the static map comes from [`crate::NodeConfig::static_broker_configs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigLayers {
    /// This broker's dynamic configs (AlterConfigs on resource `"<node id>"`).
    pub dynamic_broker: BTreeMap<String, String>,
    /// The cluster-wide dynamic defaults (AlterConfigs on resource `""`).
    pub dynamic_default: BTreeMap<String, String>,
    /// The node's static configs: file, environment and flags.
    pub static_broker: BTreeMap<String, String>,
}

impl ConfigLayers {
    /// Layers holding only the node's static configs.
    pub fn from_static(static_broker: BTreeMap<String, String>) -> Self {
        ConfigLayers {
            static_broker,
            ..ConfigLayers::default()
        }
    }

    /// Each layer with its source, highest precedence first (the default is not a map).
    pub(crate) fn sets(&self) -> [(&BTreeMap<String, String>, ConfigSource); 3] {
        [
            (&self.dynamic_broker, ConfigSource::DynamicBrokerConfig),
            (
                &self.dynamic_default,
                ConfigSource::DynamicDefaultBrokerConfig,
            ),
            (&self.static_broker, ConfigSource::StaticBrokerConfig),
        ]
    }

    /// The raw value of broker config `name` and where it comes from; `None` when nothing sets
    /// it and it has no default.
    pub fn lookup(&self, name: &str) -> Option<(String, ConfigSource)> {
        for (map, source) in self.sets() {
            if let Some(value) = map.get(name) {
                return Some((value.clone(), source));
            }
        }
        broker_config_def(name)
            .and_then(|def| def.default)
            .map(|default| (default.to_string(), ConfigSource::DefaultConfig))
    }

    /// The parsed value of broker config `name`, `None` when it is null.
    pub fn value(&self, name: &str) -> Result<Option<ConfigValue>, InvalidConfig> {
        match self.lookup(name) {
            Some((raw, _)) => parse_broker_value(name, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// The cluster-wide default of every topic config, parsed, in Kafka's definition order.
    ///
    /// Each topic config takes the first of its broker synonyms that has a value, converted to
    /// the topic config's unit (Kafka's `KafkaConfig.extractLogConfigMap`); one without a
    /// synonym value keeps Kafka's topic default.
    pub fn topic_default_values(&self) -> Result<Vec<(&'static str, ConfigValue)>, InvalidConfig> {
        let mut values = Vec::with_capacity(TOPIC_CONFIG_DEFS.len());
        for def in TOPIC_CONFIG_DEFS {
            let mut raw = None;
            for synonym in def.synonyms {
                if let Some(value) = self.value(synonym.name)? {
                    raw = Some(match (synonym.unit, value.as_i64()) {
                        (SynonymUnit::MinutesToMillis, Some(minutes)) => {
                            minutes.saturating_mul(60_000).to_string()
                        }
                        (SynonymUnit::HoursToMillis, Some(hours)) => {
                            hours.saturating_mul(3_600_000).to_string()
                        }
                        _ => value.to_kafka_string(),
                    });
                    break;
                }
            }
            // Kafka turns any negative broker retention time into "no limit".
            if def.name == "retention.ms"
                && raw
                    .as_deref()
                    .and_then(|text| text.parse::<i64>().ok())
                    .is_some_and(|ms| ms < 0)
            {
                raw = Some("-1".to_string());
            }
            let raw = raw.unwrap_or_else(|| def.default.to_string());
            values.push((
                def.name,
                parse_value(def.name, &raw, def.config_type, &def.validator)?,
            ));
        }
        Ok(values)
    }

    /// The typed cluster-wide topic defaults.
    pub fn topic_defaults(&self) -> Result<TopicConfig, InvalidConfig> {
        let mut config = TopicConfig::default();
        for (name, value) in self.topic_default_values()? {
            config.assign(name, &value);
        }
        check_topic_config(&config)?;
        Ok(config)
    }

    /// A topic's effective config: the cluster-wide defaults with its own overrides on top.
    pub fn topic_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, InvalidConfig> {
        TopicConfig::with_overrides(&self.topic_defaults()?, overrides)
    }
}

/// Conversion from a parsed value to a settings field.
trait FromConfigValue: Sized {
    fn from_config_value(value: &ConfigValue) -> Option<Self>;
}

impl FromConfigValue for i32 {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        value.as_i64().and_then(|v| i32::try_from(v).ok())
    }
}

impl FromConfigValue for i16 {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        value.as_i64().and_then(|v| i16::try_from(v).ok())
    }
}

impl FromConfigValue for i64 {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        value.as_i64()
    }
}

impl FromConfigValue for bool {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromConfigValue for f64 {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::Double(d) => Some(*d),
            _ => None,
        }
    }
}

impl FromConfigValue for String {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        Some(value.to_kafka_string())
    }
}

impl FromConfigValue for Vec<String> {
    fn from_config_value(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::List(items) => Some(items.clone()),
            _ => None,
        }
    }
}

fn setting<T: FromConfigValue>(layers: &ConfigLayers, name: &str) -> Result<T, InvalidConfig> {
    let value = layers.value(name)?;
    value
        .as_ref()
        .and_then(T::from_config_value)
        .ok_or_else(|| InvalidConfig::Other(format!("{name}: has no value of the expected type")))
}

macro_rules! broker_settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $name:literal, )*) => {
        /// The broker settings Spate acts on, typed, with Kafka's names (dots as underscores).
        ///
        /// Built from [`ConfigLayers`], so dynamic changes apply by building it again.
        #[derive(Debug, Clone, PartialEq)]
        pub struct BrokerSettings {
            $( $(#[$doc])* pub $field: $ty, )*
            /// The cluster-wide defaults of every topic config (from the `log.*` synonyms).
            pub topic_defaults: TopicConfig,
        }

        impl BrokerSettings {
            /// The Kafka names of the typed fields.
            pub const FIELD_NAMES: &'static [&'static str] = &[$($name),*];

            /// The settings the layers give, checked against each other.
            pub fn from_layers(layers: &ConfigLayers) -> Result<Self, InvalidConfig> {
                let settings = BrokerSettings {
                    $( $field: setting::<$ty>(layers, $name)?, )*
                    topic_defaults: layers.topic_defaults()?,
                };
                settings.check()?;
                Ok(settings)
            }
        }
    };
}

broker_settings! {
    /// `num.partitions`.
    num_partitions: i32 = "num.partitions",
    /// `default.replication.factor`.
    default_replication_factor: i32 = "default.replication.factor",
    /// `auto.create.topics.enable`.
    auto_create_topics_enable: bool = "auto.create.topics.enable",
    /// `delete.topic.enable`.
    delete_topic_enable: bool = "delete.topic.enable",
    /// `auto.leader.rebalance.enable`.
    auto_leader_rebalance_enable: bool = "auto.leader.rebalance.enable",
    /// `leader.imbalance.check.interval.seconds`.
    leader_imbalance_check_interval_seconds: i64 = "leader.imbalance.check.interval.seconds",
    /// `message.max.bytes`.
    message_max_bytes: i32 = "message.max.bytes",
    /// `socket.request.max.bytes`.
    socket_request_max_bytes: i32 = "socket.request.max.bytes",
    /// `socket.send.buffer.bytes`.
    socket_send_buffer_bytes: i32 = "socket.send.buffer.bytes",
    /// `socket.receive.buffer.bytes`.
    socket_receive_buffer_bytes: i32 = "socket.receive.buffer.bytes",
    /// `socket.listen.backlog.size`.
    socket_listen_backlog_size: i32 = "socket.listen.backlog.size",
    /// `max.connections`.
    max_connections: i32 = "max.connections",
    /// `max.connections.per.ip`.
    max_connections_per_ip: i32 = "max.connections.per.ip",
    /// `max.connections.per.ip.overrides`.
    max_connections_per_ip_overrides: String = "max.connections.per.ip.overrides",
    /// `connections.max.idle.ms`.
    connections_max_idle_ms: i64 = "connections.max.idle.ms",
    /// `queued.max.requests`.
    queued_max_requests: i32 = "queued.max.requests",
    /// `queued.max.request.bytes`.
    queued_max_request_bytes: i64 = "queued.max.request.bytes",
    /// `num.io.threads`.
    num_io_threads: i32 = "num.io.threads",
    /// `num.network.threads`.
    num_network_threads: i32 = "num.network.threads",
    /// `background.threads`.
    background_threads: i32 = "background.threads",
    /// `fetch.max.bytes`.
    fetch_max_bytes: i32 = "fetch.max.bytes",
    /// `max.incremental.fetch.session.cache.slots`.
    max_incremental_fetch_session_cache_slots: i32 = "max.incremental.fetch.session.cache.slots",
    /// `request.timeout.ms`.
    request_timeout_ms: i32 = "request.timeout.ms",
    /// `num.replica.fetchers`.
    num_replica_fetchers: i32 = "num.replica.fetchers",
    /// `replica.lag.time.max.ms`.
    replica_lag_time_max_ms: i64 = "replica.lag.time.max.ms",
    /// `replica.fetch.max.bytes`.
    replica_fetch_max_bytes: i32 = "replica.fetch.max.bytes",
    /// `replica.fetch.min.bytes`.
    replica_fetch_min_bytes: i32 = "replica.fetch.min.bytes",
    /// `replica.fetch.wait.max.ms`.
    replica_fetch_wait_max_ms: i32 = "replica.fetch.wait.max.ms",
    /// `replica.fetch.response.max.bytes`.
    replica_fetch_response_max_bytes: i32 = "replica.fetch.response.max.bytes",
    /// `replica.fetch.backoff.ms`.
    replica_fetch_backoff_ms: i32 = "replica.fetch.backoff.ms",
    /// `replica.socket.timeout.ms`.
    replica_socket_timeout_ms: i32 = "replica.socket.timeout.ms",
    /// `replica.high.watermark.checkpoint.interval.ms`.
    replica_high_watermark_checkpoint_interval_ms: i64 = "replica.high.watermark.checkpoint.interval.ms",
    /// `leader.replication.throttled.rate`.
    leader_replication_throttled_rate: i64 = "leader.replication.throttled.rate",
    /// `follower.replication.throttled.rate`.
    follower_replication_throttled_rate: i64 = "follower.replication.throttled.rate",
    /// `offsets.topic.num.partitions`.
    offsets_topic_num_partitions: i32 = "offsets.topic.num.partitions",
    /// `offsets.topic.replication.factor`.
    offsets_topic_replication_factor: i16 = "offsets.topic.replication.factor",
    /// `offsets.topic.segment.bytes`.
    offsets_topic_segment_bytes: i32 = "offsets.topic.segment.bytes",
    /// `offsets.topic.compression.codec`.
    offsets_topic_compression_codec: i32 = "offsets.topic.compression.codec",
    /// `offsets.retention.minutes`.
    offsets_retention_minutes: i32 = "offsets.retention.minutes",
    /// `offsets.retention.check.interval.ms`.
    offsets_retention_check_interval_ms: i64 = "offsets.retention.check.interval.ms",
    /// `offsets.commit.timeout.ms`.
    offsets_commit_timeout_ms: i32 = "offsets.commit.timeout.ms",
    /// `offsets.load.buffer.size`.
    offsets_load_buffer_size: i32 = "offsets.load.buffer.size",
    /// `offset.metadata.max.bytes`.
    offset_metadata_max_bytes: i32 = "offset.metadata.max.bytes",
    /// `group.initial.rebalance.delay.ms`.
    group_initial_rebalance_delay_ms: i32 = "group.initial.rebalance.delay.ms",
    /// `group.min.session.timeout.ms`.
    group_min_session_timeout_ms: i32 = "group.min.session.timeout.ms",
    /// `group.max.session.timeout.ms`.
    group_max_session_timeout_ms: i32 = "group.max.session.timeout.ms",
    /// `group.max.size`.
    group_max_size: i32 = "group.max.size",
    /// `group.coordinator.rebalance.protocols`.
    group_coordinator_rebalance_protocols: Vec<String> = "group.coordinator.rebalance.protocols",
    /// `group.consumer.session.timeout.ms`.
    group_consumer_session_timeout_ms: i32 = "group.consumer.session.timeout.ms",
    /// `group.consumer.heartbeat.interval.ms`.
    group_consumer_heartbeat_interval_ms: i32 = "group.consumer.heartbeat.interval.ms",
    /// `group.consumer.min.session.timeout.ms`.
    group_consumer_min_session_timeout_ms: i32 = "group.consumer.min.session.timeout.ms",
    /// `group.consumer.max.session.timeout.ms`.
    group_consumer_max_session_timeout_ms: i32 = "group.consumer.max.session.timeout.ms",
    /// `group.consumer.min.heartbeat.interval.ms`.
    group_consumer_min_heartbeat_interval_ms: i32 = "group.consumer.min.heartbeat.interval.ms",
    /// `group.consumer.max.heartbeat.interval.ms`.
    group_consumer_max_heartbeat_interval_ms: i32 = "group.consumer.max.heartbeat.interval.ms",
    /// `group.consumer.max.size`.
    group_consumer_max_size: i32 = "group.consumer.max.size",
    /// `group.consumer.assignors`.
    group_consumer_assignors: Vec<String> = "group.consumer.assignors",
    /// `group.consumer.migration.policy`.
    group_consumer_migration_policy: String = "group.consumer.migration.policy",
    /// `transaction.state.log.num.partitions`.
    transaction_state_log_num_partitions: i32 = "transaction.state.log.num.partitions",
    /// `transaction.state.log.replication.factor`.
    transaction_state_log_replication_factor: i16 = "transaction.state.log.replication.factor",
    /// `transaction.state.log.min.isr`.
    transaction_state_log_min_isr: i32 = "transaction.state.log.min.isr",
    /// `transaction.state.log.segment.bytes`.
    transaction_state_log_segment_bytes: i32 = "transaction.state.log.segment.bytes",
    /// `transaction.state.log.load.buffer.size`.
    transaction_state_log_load_buffer_size: i32 = "transaction.state.log.load.buffer.size",
    /// `transaction.max.timeout.ms`.
    transaction_max_timeout_ms: i32 = "transaction.max.timeout.ms",
    /// `transactional.id.expiration.ms`.
    transactional_id_expiration_ms: i32 = "transactional.id.expiration.ms",
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    transaction_abort_timed_out_transaction_cleanup_interval_ms: i32 =
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    transaction_remove_expired_transaction_cleanup_interval_ms: i32 =
        "transaction.remove.expired.transaction.cleanup.interval.ms",
    /// `transaction.partition.verification.enable`.
    transaction_partition_verification_enable: bool = "transaction.partition.verification.enable",
    /// `producer.id.expiration.ms`.
    producer_id_expiration_ms: i32 = "producer.id.expiration.ms",
    /// `broker.session.timeout.ms`.
    broker_session_timeout_ms: i32 = "broker.session.timeout.ms",
    /// `broker.heartbeat.interval.ms`.
    broker_heartbeat_interval_ms: i32 = "broker.heartbeat.interval.ms",
    /// `initial.broker.registration.timeout.ms`.
    initial_broker_registration_timeout_ms: i32 = "initial.broker.registration.timeout.ms",
    /// `controlled.shutdown.enable`.
    controlled_shutdown_enable: bool = "controlled.shutdown.enable",
    /// `controller.quorum.election.timeout.ms`.
    controller_quorum_election_timeout_ms: i32 = "controller.quorum.election.timeout.ms",
    /// `controller.quorum.fetch.timeout.ms`.
    controller_quorum_fetch_timeout_ms: i32 = "controller.quorum.fetch.timeout.ms",
    /// `controller.quorum.election.backoff.max.ms`.
    controller_quorum_election_backoff_max_ms: i32 = "controller.quorum.election.backoff.max.ms",
    /// `controller.quorum.request.timeout.ms`.
    controller_quorum_request_timeout_ms: i32 = "controller.quorum.request.timeout.ms",
    /// `controller.quorum.retry.backoff.ms`.
    controller_quorum_retry_backoff_ms: i32 = "controller.quorum.retry.backoff.ms",
    /// `controller.quorum.append.linger.ms`.
    controller_quorum_append_linger_ms: i32 = "controller.quorum.append.linger.ms",
    /// `metadata.log.segment.bytes`.
    metadata_log_segment_bytes: i32 = "metadata.log.segment.bytes",
    /// `metadata.log.segment.ms`.
    metadata_log_segment_ms: i64 = "metadata.log.segment.ms",
    /// `metadata.max.retention.bytes`.
    metadata_max_retention_bytes: i64 = "metadata.max.retention.bytes",
    /// `metadata.max.retention.ms`.
    metadata_max_retention_ms: i64 = "metadata.max.retention.ms",
    /// `metadata.log.max.record.bytes.between.snapshots`.
    metadata_log_max_record_bytes_between_snapshots: i64 = "metadata.log.max.record.bytes.between.snapshots",
    /// `metadata.log.max.snapshot.interval.ms`.
    metadata_log_max_snapshot_interval_ms: i64 = "metadata.log.max.snapshot.interval.ms",
    /// `log.retention.check.interval.ms`.
    log_retention_check_interval_ms: i64 = "log.retention.check.interval.ms",
    /// `log.cleaner.enable`.
    log_cleaner_enable: bool = "log.cleaner.enable",
    /// `log.cleaner.threads`.
    log_cleaner_threads: i32 = "log.cleaner.threads",
    /// `log.cleaner.backoff.ms`.
    log_cleaner_backoff_ms: i64 = "log.cleaner.backoff.ms",
    /// `log.cleaner.dedupe.buffer.size`.
    log_cleaner_dedupe_buffer_size: i64 = "log.cleaner.dedupe.buffer.size",
    /// `log.cleaner.io.buffer.size`.
    log_cleaner_io_buffer_size: i32 = "log.cleaner.io.buffer.size",
    /// `log.cleaner.io.buffer.load.factor`.
    log_cleaner_io_buffer_load_factor: f64 = "log.cleaner.io.buffer.load.factor",
    /// `log.cleaner.io.max.bytes.per.second`.
    log_cleaner_io_max_bytes_per_second: f64 = "log.cleaner.io.max.bytes.per.second",
    /// `log.flush.scheduler.interval.ms`.
    log_flush_scheduler_interval_ms: i64 = "log.flush.scheduler.interval.ms",
    /// `log.flush.offset.checkpoint.interval.ms`.
    log_flush_offset_checkpoint_interval_ms: i32 = "log.flush.offset.checkpoint.interval.ms",
    /// `log.flush.start.offset.checkpoint.interval.ms`.
    log_flush_start_offset_checkpoint_interval_ms: i32 = "log.flush.start.offset.checkpoint.interval.ms",
    /// `num.recovery.threads.per.data.dir`.
    num_recovery_threads_per_data_dir: i32 = "num.recovery.threads.per.data.dir",
}

impl BrokerSettings {
    /// Checks the limits that only make sense together. Each message names both keys.
    fn check(&self) -> Result<(), InvalidConfig> {
        let conflict = |message: String| Err(InvalidConfig::Other(message));
        if self.message_max_bytes > self.socket_request_max_bytes {
            return conflict(format!(
                "message.max.bytes ({}) must not exceed socket.request.max.bytes ({}): a batch that large \
                 could never arrive in one request",
                self.message_max_bytes, self.socket_request_max_bytes
            ));
        }
        if self.default_replication_factor < 1 {
            return conflict(format!(
                "default.replication.factor ({}) must be at least 1",
                self.default_replication_factor
            ));
        }
        if self.replica_fetch_wait_max_ms > self.replica_socket_timeout_ms {
            return conflict(format!(
                "replica.fetch.wait.max.ms ({}) must not exceed replica.socket.timeout.ms ({}), or follower \
                 fetches time out while they wait",
                self.replica_fetch_wait_max_ms, self.replica_socket_timeout_ms
            ));
        }
        if i64::from(self.replica_fetch_wait_max_ms) > self.replica_lag_time_max_ms {
            return conflict(format!(
                "replica.fetch.wait.max.ms ({}) must not exceed replica.lag.time.max.ms ({}), or followers \
                 drop out of the ISR on quiet topics",
                self.replica_fetch_wait_max_ms, self.replica_lag_time_max_ms
            ));
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return conflict(format!(
                "broker.heartbeat.interval.ms ({}) must be less than broker.session.timeout.ms ({}), or live \
                 brokers get fenced",
                self.broker_heartbeat_interval_ms, self.broker_session_timeout_ms
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return conflict(format!(
                "group.min.session.timeout.ms ({}) must not exceed group.max.session.timeout.ms ({})",
                self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
            ));
        }
        let within = |name: &str,
                      value: i32,
                      min_name: &str,
                      min: i32,
                      max_name: &str,
                      max: i32| {
            if value < min || value > max {
                Err(InvalidConfig::Other(format!(
                    "{name} ({value}) must lie between {min_name} ({min}) and {max_name} ({max})"
                )))
            } else {
                Ok(())
            }
        };
        within(
            "group.consumer.session.timeout.ms",
            self.group_consumer_session_timeout_ms,
            "group.consumer.min.session.timeout.ms",
            self.group_consumer_min_session_timeout_ms,
            "group.consumer.max.session.timeout.ms",
            self.group_consumer_max_session_timeout_ms,
        )?;
        within(
            "group.consumer.heartbeat.interval.ms",
            self.group_consumer_heartbeat_interval_ms,
            "group.consumer.min.heartbeat.interval.ms",
            self.group_consumer_min_heartbeat_interval_ms,
            "group.consumer.max.heartbeat.interval.ms",
            self.group_consumer_max_heartbeat_interval_ms,
        )?;
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return conflict(format!(
                "group.consumer.heartbeat.interval.ms ({}) must be less than group.consumer.session.timeout.ms ({})",
                self.group_consumer_heartbeat_interval_ms, self.group_consumer_session_timeout_ms
            ));
        }
        if self.transaction_state_log_min_isr
            > i32::from(self.transaction_state_log_replication_factor)
        {
            return conflict(format!(
                "transaction.state.log.min.isr ({}) must not exceed transaction.state.log.replication.factor \
                 ({}), or no transaction could ever commit",
                self.transaction_state_log_min_isr, self.transaction_state_log_replication_factor
            ));
        }
        if self.topic_defaults.max_message_bytes > self.socket_request_max_bytes {
            return conflict(format!(
                "message.max.bytes ({}) must not exceed socket.request.max.bytes ({})",
                self.topic_defaults.max_message_bytes, self.socket_request_max_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(pairs: &[(&str, &str)]) -> ConfigLayers {
        ConfigLayers::from_static(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn table_is_sorted_and_every_default_passes_its_validator() {
        for pair in BROKER_CONFIG_DEFS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in BROKER_CONFIG_DEFS {
            if let Some(default) = def.default {
                parse_value(def.name, default, def.config_type, &def.validator)
                    .unwrap_or_else(|e| panic!("default of {} is invalid: {e}", def.name));
            }
        }
    }

    #[test]
    fn every_topic_synonym_is_a_known_broker_config() {
        for def in TOPIC_CONFIG_DEFS {
            for synonym in def.synonyms {
                assert!(
                    broker_config_def(synonym.name).is_some(),
                    "{} of {}",
                    synonym.name,
                    def.name
                );
            }
        }
        for field in BrokerSettings::FIELD_NAMES {
            let def =
                broker_config_def(field).unwrap_or_else(|| panic!("{field} is not in the table"));
            assert!(
                def.used_by_spate,
                "{field} is typed but documented as unused"
            );
        }
    }

    #[test]
    fn kafka_defaults_give_valid_settings() {
        let settings =
            BrokerSettings::from_layers(&ConfigLayers::default()).expect("defaults are consistent");
        assert_eq!(settings.num_partitions, 1);
        assert_eq!(settings.socket_request_max_bytes, 104_857_600);
        assert_eq!(settings.offsets_topic_num_partitions, 50);
        assert_eq!(settings.offsets_topic_replication_factor, 3);
        assert_eq!(
            settings.group_coordinator_rebalance_protocols,
            ["classic", "consumer", "streams"]
        );
        assert_eq!(settings.topic_defaults, TopicConfig::default());
    }

    #[test]
    fn synonyms_are_consulted_in_kafka_order() {
        assert_eq!(
            broker_config_synonyms("log.retention.hours"),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
        assert_eq!(
            broker_config_synonyms("log.roll.ms"),
            ["log.roll.ms", "log.roll.hours"]
        );
        assert_eq!(
            broker_config_synonyms("log.flush.interval.ms"),
            ["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
        );
        assert_eq!(broker_config_synonyms("num.partitions"), ["num.partitions"]);
        assert!(broker_config_synonyms("no.such.config").is_empty());

        let hours = layers(&[("log.retention.hours", "24")])
            .topic_defaults()
            .expect("valid");
        assert_eq!(hours.retention_ms, 86_400_000);
        let minutes = layers(&[
            ("log.retention.hours", "24"),
            ("log.retention.minutes", "30"),
        ])
        .topic_defaults()
        .expect("valid");
        assert_eq!(minutes.retention_ms, 1_800_000, "minutes win over hours");
        let ms = layers(&[
            ("log.retention.minutes", "30"),
            ("log.retention.ms", "5000"),
        ])
        .topic_defaults()
        .expect("valid");
        assert_eq!(ms.retention_ms, 5000, "ms wins over minutes");
        let unlimited = layers(&[("log.retention.ms", "-7")])
            .topic_defaults()
            .expect("valid");
        assert_eq!(
            unlimited.retention_ms, -1,
            "negative broker retention means no limit"
        );
        let roll = layers(&[("log.roll.hours", "1")])
            .topic_defaults()
            .expect("valid");
        assert_eq!(roll.segment_ms, 3_600_000);
        let flush = layers(&[("log.flush.scheduler.interval.ms", "1000")])
            .topic_defaults()
            .expect("valid");
        assert_eq!(
            flush.flush_ms, 1000,
            "flush.ms falls back to the scheduler interval"
        );
    }

    #[test]
    fn dynamic_layers_take_precedence() {
        let mut layers = layers(&[("num.partitions", "3")]);
        layers
            .dynamic_default
            .insert("num.partitions".into(), "4".into());
        assert_eq!(
            layers.lookup("num.partitions"),
            Some(("4".into(), ConfigSource::DynamicDefaultBrokerConfig))
        );
        layers
            .dynamic_broker
            .insert("num.partitions".into(), "5".into());
        assert_eq!(
            BrokerSettings::from_layers(&layers)
                .expect("valid")
                .num_partitions,
            5
        );
        assert_eq!(ConfigLayers::default().lookup("log.retention.ms"), None);
    }

    #[test]
    fn related_limits_are_checked_against_each_other() {
        let error = |pairs: &[(&str, &str)]| match BrokerSettings::from_layers(&layers(pairs)) {
            Ok(_) => panic!("{pairs:?} accepted"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            error(&[("message.max.bytes", "200000000")]),
            "message.max.bytes (200000000) must not exceed socket.request.max.bytes (104857600): a batch that \
             large could never arrive in one request"
        );
        assert!(error(&[("replica.fetch.wait.max.ms", "40000")]).starts_with("replica.fetch.wait.max.ms (40000) must not exceed replica.socket.timeout.ms (30000)"));
        assert!(error(&[("broker.heartbeat.interval.ms", "9000")]).starts_with("broker.heartbeat.interval.ms (9000) must be less than broker.session.timeout.ms (9000)"));
        assert_eq!(
            error(&[
                ("group.min.session.timeout.ms", "10"),
                ("group.max.session.timeout.ms", "5")
            ]),
            "group.min.session.timeout.ms (10) must not exceed group.max.session.timeout.ms (5)"
        );
        assert!(error(&[("transaction.state.log.min.isr", "4")]).starts_with("transaction.state.log.min.isr (4) must not exceed transaction.state.log.replication.factor (3)"));
        assert_eq!(
            error(&[("group.consumer.session.timeout.ms", "1000")]),
            "group.consumer.session.timeout.ms (1000) must lie between group.consumer.min.session.timeout.ms \
             (45000) and group.consumer.max.session.timeout.ms (60000)"
        );
    }
}
