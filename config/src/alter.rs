//! AlterConfigs and IncrementalAlterConfigs on topic and broker resources, with Kafka's checks
//! and messages.
//!
//! Each function takes a resource's current dynamic configs and the request's entries and returns
//! the new dynamic configs, or the error Kafka would answer with. Nothing is stored here: the
//! broker writes the result to the metadata log.
//!
//! The messages were checked against a running Apache Kafka 4.3 broker. Spate differs on
//! purpose in three places: it refuses broker config names it does not know (Kafka stores
//! them; Spate knows every Kafka 4.3 broker config, so only typos and newer names are refused),
//! it checks a dynamic broker change against the related limits (`message.max.bytes` against
//! `socket.request.max.bytes`, …) before accepting it, and `listeners` and
//! `listener.security.protocol.map` are read-only because Spate binds its listeners once.

use std::collections::BTreeMap;

use crate::broker::{
    BrokerSettings, ConfigLayers, UpdateMode, broker_config_def, parse_broker_value,
};
use crate::topic::{TOPIC_CONFIG_DEFS, TopicConfig, topic_config_def};
use crate::value::{ConfigType, InvalidConfig, split_list};

/// An IncrementalAlterConfigs operation, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum AlterConfigOp {
    /// Set the value.
    Set = 0,
    /// Remove the dynamic value, reverting to the next source.
    Delete = 1,
    /// Add elements to a LIST value.
    Append = 2,
    /// Remove elements from a LIST value.
    Subtract = 3,
}

impl AlterConfigOp {
    /// The operation for a wire code, if it is one.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(AlterConfigOp::Set),
            1 => Some(AlterConfigOp::Delete),
            2 => Some(AlterConfigOp::Append),
            3 => Some(AlterConfigOp::Subtract),
            _ => None,
        }
    }

    /// The name Kafka prints for the operation.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AlterConfigOp::Set => "SET",
            AlterConfigOp::Delete => "DELETE",
            AlterConfigOp::Append => "APPEND",
            AlterConfigOp::Subtract => "SUBTRACT",
        }
    }
}

/// One entry of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigEntry {
    /// The config name.
    pub name: String,
    /// The operation.
    pub op: AlterConfigOp,
    /// The value; null is allowed only for DELETE.
    pub value: Option<String>,
}

impl AlterConfigEntry {
    /// An entry with a value.
    pub fn new(name: &str, op: AlterConfigOp, value: &str) -> Self {
        AlterConfigEntry {
            name: name.to_string(),
            op,
            value: Some(value.to_string()),
        }
    }
}

/// Why an alter request for one resource fails. The broker answers with the Kafka error code
/// of the variant and the `Display` text as the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterConfigError {
    /// Kafka answers INVALID_REQUEST (42).
    #[error("{0}")]
    InvalidRequest(String),
    /// Kafka answers INVALID_CONFIG (40).
    #[error(transparent)]
    InvalidConfig(#[from] InvalidConfig),
}

fn check_request_entries(entries: &[AlterConfigEntry]) -> Result<(), AlterConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    if !entries.iter().all(|entry| seen.insert(entry.name.as_str())) {
        return Err(AlterConfigError::InvalidRequest(
            "Error due to duplicate config keys".to_string(),
        ));
    }
    let nulls: Vec<&str> = entries
        .iter()
        .filter(|entry| entry.op != AlterConfigOp::Delete && entry.value.is_none())
        .map(|entry| entry.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(AlterConfigError::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    Ok(())
}

/// The elements of a LIST value, dropping empty ones (Kafka's `getParts`).
fn parts(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
}

/// Applies IncrementalAlterConfigs entries to a topic's dynamic configs, as Kafka's controller
/// does, and validates the result against the cluster-wide defaults in `layers`.
pub fn incremental_alter_topic(
    layers: &ConfigLayers,
    current: &BTreeMap<String, String>,
    entries: &[AlterConfigEntry],
) -> Result<BTreeMap<String, String>, AlterConfigError> {
    check_request_entries(entries)?;
    let mut updated = current.clone();
    for entry in entries {
        let value = entry.value.clone().unwrap_or_default();
        match entry.op {
            AlterConfigOp::Set => {
                updated.insert(entry.name.clone(), value);
            }
            AlterConfigOp::Delete => {
                updated.remove(&entry.name);
            }
            AlterConfigOp::Append | AlterConfigOp::Subtract => {
                let def =
                    topic_config_def(&entry.name).filter(|def| def.config_type == ConfigType::List);
                let Some(def) = def else {
                    return Err(InvalidConfig::Other(format!(
                        "Can't {} to key {} because its type is not LIST.",
                        entry.op.kafka_name(),
                        entry.name
                    ))
                    .into());
                };
                // An unset list starts from the topic config's default, as in Kafka.
                let mut list = parts(updated.get(&entry.name).map_or(def.default, String::as_str));
                for element in value.split(',') {
                    if entry.op == AlterConfigOp::Append {
                        if !list.iter().any(|existing| existing == element) {
                            list.push(element.to_string());
                        }
                    } else if let Some(index) = list.iter().position(|existing| existing == element)
                    {
                        list.remove(index);
                    }
                }
                updated.insert(entry.name.clone(), list.join(","));
            }
        }
    }
    TopicConfig::with_overrides(&layers.topic_defaults()?, &updated)?;
    Ok(updated)
}

/// Replaces a topic's dynamic configs with `configs` (the legacy AlterConfigs API), after the
/// same validation.
pub fn legacy_alter_topic(
    layers: &ConfigLayers,
    configs: &BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, String>, AlterConfigError> {
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(AlterConfigError::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    let updated: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    TopicConfig::with_overrides(&layers.topic_defaults()?, &updated)?;
    Ok(updated)
}

/// A set of names as Kafka 4.x prints it in broker alter errors: `[a, b]`.
fn java_set(names: &[&str]) -> String {
    format!("[{}]", names.join(", "))
}

/// Validates new dynamic configs for a broker resource as Kafka's `DynamicBrokerConfig.validate`
/// does. `per_broker` is true for resource `"<id>"` and false for the cluster default `""`.
fn validate_broker_dynamic(
    layers: &ConfigLayers,
    configs: &BTreeMap<String, String>,
    per_broker: bool,
) -> Result<(), AlterConfigError> {
    if let Some(unknown) = configs
        .keys()
        .find(|name| broker_config_def(name).is_none())
    {
        return Err(InvalidConfig::UnknownBrokerConfig(unknown.clone()).into());
    }
    let read_only: Vec<&str> = configs
        .keys()
        .filter(|name| {
            broker_config_def(name).is_some_and(|def| def.update_mode == UpdateMode::ReadOnly)
        })
        .map(String::as_str)
        .collect();
    if !read_only.is_empty() {
        return Err(AlterConfigError::InvalidRequest(format!(
            "Cannot update these configs dynamically: {}",
            java_set(&read_only)
        )));
    }
    for (name, value) in configs {
        // Kafka reports type and range problems of broker configs as INVALID_REQUEST.
        parse_broker_value(name, value)
            .map_err(|e| AlterConfigError::InvalidRequest(e.to_string()))?;
    }
    if !per_broker {
        let per_broker_only: Vec<&str> = configs
            .keys()
            .filter(|name| {
                broker_config_def(name).is_some_and(|def| def.update_mode == UpdateMode::PerBroker)
            })
            .map(String::as_str)
            .collect();
        if !per_broker_only.is_empty() {
            return Err(AlterConfigError::InvalidRequest(format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {}",
                java_set(&per_broker_only)
            )));
        }
    }
    // The new values must still fit together with everything else this broker runs with.
    let mut candidate = layers.clone();
    if per_broker {
        candidate.dynamic_broker = configs.clone();
    } else {
        candidate.dynamic_default = configs.clone();
    }
    BrokerSettings::from_layers(&candidate)
        .map_err(|e| AlterConfigError::InvalidRequest(e.to_string()))?;
    Ok(())
}

/// Applies IncrementalAlterConfigs entries to a broker resource's dynamic configs.
///
/// `layers` are the configs this broker runs with now; the entries change
/// `layers.dynamic_broker` when `per_broker` is true and `layers.dynamic_default` otherwise.
pub fn incremental_alter_broker(
    layers: &ConfigLayers,
    entries: &[AlterConfigEntry],
    per_broker: bool,
) -> Result<BTreeMap<String, String>, AlterConfigError> {
    check_request_entries(entries)?;
    let mut updated = if per_broker {
        layers.dynamic_broker.clone()
    } else {
        layers.dynamic_default.clone()
    };
    for entry in entries {
        let value = entry.value.clone().unwrap_or_default();
        match entry.op {
            AlterConfigOp::Set => {
                updated.insert(entry.name.clone(), value);
            }
            AlterConfigOp::Delete => {
                updated.remove(&entry.name);
            }
            AlterConfigOp::Append | AlterConfigOp::Subtract => {
                let def = broker_config_def(&entry.name).ok_or_else(|| {
                    InvalidConfig::Other(format!("Unknown config name: {}", entry.name))
                })?;
                if def.config_type != ConfigType::List {
                    let verb = if entry.op == AlterConfigOp::Append {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(InvalidConfig::Other(format!(
                        "Config value {verb} is not allowed for config key: {}",
                        entry.name
                    ))
                    .into());
                }
                let old = updated
                    .get(&entry.name)
                    .cloned()
                    .or_else(|| def.default.map(str::to_string))
                    .unwrap_or_default();
                let old: Vec<String> = if entry.op == AlterConfigOp::Append {
                    old.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                } else {
                    old.split(',').map(str::to_string).collect()
                };
                let new: Vec<String> = if entry.op == AlterConfigOp::Append {
                    let mut list = old.clone();
                    list.extend(
                        value
                            .split(',')
                            .filter(|v| !old.iter().any(|o| o == v))
                            .map(str::to_string),
                    );
                    list
                } else {
                    let mut list = old;
                    for element in value.split(',') {
                        if let Some(index) = list.iter().position(|existing| existing == element) {
                            list.remove(index);
                        }
                    }
                    list
                };
                updated.insert(entry.name.clone(), new.join(","));
            }
        }
    }
    validate_broker_dynamic(layers, &updated, per_broker)?;
    Ok(updated)
}

/// Replaces a broker resource's dynamic configs (the legacy AlterConfigs API).
pub fn legacy_alter_broker(
    layers: &ConfigLayers,
    configs: &BTreeMap<String, Option<String>>,
    per_broker: bool,
) -> Result<BTreeMap<String, String>, AlterConfigError> {
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err(AlterConfigError::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    let updated: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    validate_broker_dynamic(layers, &updated, per_broker)?;
    Ok(updated)
}

/// The names of every topic config, sorted (for tools that list what can be set).
pub fn topic_config_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = TOPIC_CONFIG_DEFS.iter().map(|def| def.name).collect();
    names.sort_unstable();
    names
}

/// Splits a LIST value the way Kafka's config parser does (re-exported for callers that build
/// list values from requests).
pub fn list_elements(value: &str) -> Vec<String> {
    split_list(value)
}

/// Which broker resource a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerResource {
    /// The cluster-wide default, resource name `""`.
    ClusterDefault,
    /// This broker, resource name `"<node id>"`.
    ThisBroker,
}

/// Checks a broker resource name in DescribeConfigs, with Kafka's INVALID_REQUEST messages.
pub fn describe_broker_resource(
    name: &str,
    node_id: i32,
) -> Result<BrokerResource, AlterConfigError> {
    if name.is_empty() {
        return Ok(BrokerResource::ClusterDefault);
    }
    let id: i32 = name.parse().map_err(|_| {
        AlterConfigError::InvalidRequest(format!("Broker id must be an integer, but it is: {name}"))
    })?;
    if id == node_id {
        Ok(BrokerResource::ThisBroker)
    } else {
        Err(AlterConfigError::InvalidRequest(format!(
            "Unexpected broker id, expected {node_id} or empty string, but received {name}"
        )))
    }
}

/// Checks a broker resource name in AlterConfigs and IncrementalAlterConfigs, with Kafka's
/// INVALID_REQUEST messages.
pub fn alter_broker_resource(name: &str, node_id: i32) -> Result<BrokerResource, AlterConfigError> {
    if name.is_empty() {
        return Ok(BrokerResource::ClusterDefault);
    }
    let id: i32 = name.parse().map_err(|_| {
        AlterConfigError::InvalidRequest(format!("Node id must be an integer, but it is: {name}"))
    })?;
    if id == node_id {
        Ok(BrokerResource::ThisBroker)
    } else {
        Err(AlterConfigError::InvalidRequest(format!(
            "Unexpected broker id, expected {node_id}, but received {name}"
        )))
    }
}

/// Validates the configs of a CreateTopics request as Kafka's controller does: a later entry
/// for the same name wins, a null value is refused, and the result must be a valid topic config
/// on top of the cluster-wide defaults. Returns the overrides to store.
pub fn create_topic_configs(
    layers: &ConfigLayers,
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, InvalidConfig> {
    let mut latest: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for (name, value) in configs {
        latest.insert(name.as_str(), value.as_deref());
    }
    let nulls: Vec<&str> = latest
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !nulls.is_empty() {
        return Err(InvalidConfig::Other(format!(
            "Null value not supported for topic configs: {}",
            nulls.join(",")
        )));
    }
    let overrides: BTreeMap<String, String> = latest
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect();
    TopicConfig::with_overrides(&layers.topic_defaults()?, &overrides)?;
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn topic(
        current: &[(&str, &str)],
        entries: &[AlterConfigEntry],
    ) -> Result<BTreeMap<String, String>, AlterConfigError> {
        incremental_alter_topic(&ConfigLayers::default(), &map(current), entries)
    }

    #[test]
    fn topic_set_delete_append_subtract() {
        let set = topic(
            &[],
            &[AlterConfigEntry::new(
                "retention.ms",
                AlterConfigOp::Set,
                "1000",
            )],
        )
        .expect("valid");
        assert_eq!(set, map(&[("retention.ms", "1000")]));
        let deleted = topic(
            &[("retention.ms", "1000")],
            &[AlterConfigEntry {
                name: "retention.ms".into(),
                op: AlterConfigOp::Delete,
                value: None,
            }],
        )
        .expect("valid");
        assert!(deleted.is_empty());
        // APPEND to an unset list starts from the default, `delete`.
        let appended = topic(
            &[],
            &[AlterConfigEntry::new(
                "cleanup.policy",
                AlterConfigOp::Append,
                "compact",
            )],
        )
        .expect("valid");
        assert_eq!(appended, map(&[("cleanup.policy", "delete,compact")]));
        let again = topic(
            &[("cleanup.policy", "delete,compact")],
            &[AlterConfigEntry::new(
                "cleanup.policy",
                AlterConfigOp::Append,
                "compact",
            )],
        )
        .expect("valid");
        assert_eq!(
            again,
            map(&[("cleanup.policy", "delete,compact")]),
            "APPEND skips elements already present"
        );
        let subtracted = topic(
            &[("cleanup.policy", "delete,compact")],
            &[AlterConfigEntry::new(
                "cleanup.policy",
                AlterConfigOp::Subtract,
                "delete",
            )],
        )
        .expect("valid");
        assert_eq!(subtracted, map(&[("cleanup.policy", "compact")]));
        let throttled = topic(
            &[("leader.replication.throttled.replicas", "0:1")],
            &[AlterConfigEntry::new(
                "leader.replication.throttled.replicas",
                AlterConfigOp::Append,
                "1:2,2:3",
            )],
        )
        .expect("valid");
        assert_eq!(
            throttled,
            map(&[("leader.replication.throttled.replicas", "0:1,1:2,2:3")])
        );
    }

    #[test]
    fn topic_errors_match_kafka() {
        let message = |result: Result<BTreeMap<String, String>, AlterConfigError>| match result {
            Ok(configs) => panic!("accepted: {configs:?}"),
            Err(e) => (
                matches!(e, AlterConfigError::InvalidRequest(_)),
                e.to_string(),
            ),
        };
        assert_eq!(
            message(topic(
                &[],
                &[AlterConfigEntry::new(
                    "retention.ms",
                    AlterConfigOp::Append,
                    "1"
                )]
            )),
            (
                false,
                "Can't APPEND to key retention.ms because its type is not LIST.".to_string()
            )
        );
        assert_eq!(
            message(topic(
                &[],
                &[AlterConfigEntry::new("foo", AlterConfigOp::Subtract, "1")]
            )),
            (
                false,
                "Can't SUBTRACT to key foo because its type is not LIST.".to_string()
            )
        );
        assert_eq!(
            message(topic(
                &[],
                &[AlterConfigEntry::new("foo", AlterConfigOp::Set, "1")]
            )),
            (false, "Unknown topic config name: foo".to_string())
        );
        assert_eq!(
            message(topic(
                &[],
                &[AlterConfigEntry::new(
                    "retention.ms",
                    AlterConfigOp::Set,
                    "abc"
                )]
            )),
            (
                false,
                "Invalid value abc for configuration retention.ms: Not a number of type LONG"
                    .to_string()
            )
        );
        assert_eq!(
            message(topic(
                &[],
                &[
                    AlterConfigEntry::new("retention.ms", AlterConfigOp::Set, "1"),
                    AlterConfigEntry::new("retention.ms", AlterConfigOp::Set, "2"),
                ]
            )),
            (true, "Error due to duplicate config keys".to_string())
        );
        assert_eq!(
            message(topic(
                &[],
                &[AlterConfigEntry {
                    name: "retention.ms".into(),
                    op: AlterConfigOp::Set,
                    value: None
                }]
            )),
            (
                true,
                "Null value not supported for : retention.ms".to_string()
            )
        );
        assert_eq!(
            message(topic(
                &[("min.compaction.lag.ms", "10")],
                &[AlterConfigEntry::new("max.compaction.lag.ms", AlterConfigOp::Set, "5")]
            )),
            (false, "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)".to_string())
        );
    }

    #[test]
    fn legacy_alter_replaces_everything() {
        let configs: BTreeMap<String, Option<String>> =
            [("segment.ms".to_string(), Some("1000".to_string()))]
                .into_iter()
                .collect();
        assert_eq!(
            legacy_alter_topic(&ConfigLayers::default(), &configs).expect("valid"),
            map(&[("segment.ms", "1000")])
        );
        let nulls: BTreeMap<String, Option<String>> =
            [("segment.ms".to_string(), None)].into_iter().collect();
        assert_eq!(
            legacy_alter_topic(&ConfigLayers::default(), &nulls),
            Err(AlterConfigError::InvalidRequest(
                "Null value not supported for : segment.ms".into()
            ))
        );
    }

    #[test]
    fn broker_alter_follows_kafka_rules() {
        let layers = ConfigLayers::default();
        let ok = incremental_alter_broker(
            &layers,
            &[AlterConfigEntry::new(
                "log.retention.ms",
                AlterConfigOp::Set,
                "1000",
            )],
            false,
        )
        .expect("cluster-wide dynamic");
        assert_eq!(ok, map(&[("log.retention.ms", "1000")]));
        assert_eq!(
            incremental_alter_broker(
                &layers,
                &[AlterConfigEntry::new(
                    "num.partitions",
                    AlterConfigOp::Set,
                    "3"
                )],
                true
            ),
            Err(AlterConfigError::InvalidRequest(
                "Cannot update these configs dynamically: [num.partitions]".into()
            ))
        );
        assert_eq!(
            incremental_alter_broker(
                &layers,
                &[AlterConfigEntry::new(
                    "listeners",
                    AlterConfigOp::Set,
                    "PLAINTEXT://:1"
                )],
                true
            ),
            Err(AlterConfigError::InvalidRequest(
                "Cannot update these configs dynamically: [listeners]".into()
            ))
        );
        assert_eq!(
            incremental_alter_broker(
                &layers,
                &[AlterConfigEntry::new(
                    "num.io.threads",
                    AlterConfigOp::Set,
                    "x"
                )],
                true
            ),
            Err(AlterConfigError::InvalidRequest(
                "Invalid value x for configuration num.io.threads: Not a number of type INT".into()
            ))
        );
        assert_eq!(
            incremental_alter_broker(
                &layers,
                &[AlterConfigEntry::new(
                    "num.io.threads",
                    AlterConfigOp::Append,
                    "1"
                )],
                true
            ),
            Err(AlterConfigError::InvalidConfig(InvalidConfig::Other(
                "Config value append is not allowed for config key: num.io.threads".into()
            )))
        );
        assert_eq!(
            incremental_alter_broker(
                &layers,
                &[AlterConfigEntry::new("foo.bar", AlterConfigOp::Set, "1")],
                true
            ),
            Err(AlterConfigError::InvalidConfig(
                InvalidConfig::UnknownBrokerConfig("foo.bar".into())
            ))
        );
        let appended = incremental_alter_broker(
            &layers,
            &[AlterConfigEntry::new(
                "log.cleanup.policy",
                AlterConfigOp::Append,
                "compact",
            )],
            false,
        )
        .expect("valid");
        assert_eq!(appended, map(&[("log.cleanup.policy", "delete,compact")]));
        assert_eq!(
            incremental_alter_broker(&layers, &[AlterConfigEntry::new("message.max.bytes", AlterConfigOp::Set, "200000000")], false),
            Err(AlterConfigError::InvalidRequest(
                "message.max.bytes (200000000) must not exceed socket.request.max.bytes (104857600): a batch that \
                 large could never arrive in one request"
                    .into()
            ))
        );
    }

    #[test]
    fn per_broker_only_configs_are_refused_at_cluster_level() {
        // sasl.enabled.mechanisms is per-broker in Kafka.
        assert_eq!(
            incremental_alter_broker(
                &ConfigLayers::default(),
                &[AlterConfigEntry::new("sasl.enabled.mechanisms", AlterConfigOp::Set, "PLAIN")],
                false
            ),
            Err(AlterConfigError::InvalidRequest(
                "Cannot update these configs at default cluster level, broker id must be specified: [sasl.enabled.mechanisms]"
                    .into()
            ))
        );
        assert!(
            incremental_alter_broker(
                &ConfigLayers::default(),
                &[AlterConfigEntry::new(
                    "sasl.enabled.mechanisms",
                    AlterConfigOp::Set,
                    "PLAIN"
                )],
                true
            )
            .is_ok()
        );
    }
    #[test]
    fn broker_resource_names_are_checked_like_kafka() {
        assert_eq!(
            describe_broker_resource("", 1),
            Ok(BrokerResource::ClusterDefault)
        );
        assert_eq!(
            describe_broker_resource("1", 1),
            Ok(BrokerResource::ThisBroker)
        );
        assert_eq!(
            describe_broker_resource("2", 1),
            Err(AlterConfigError::InvalidRequest(
                "Unexpected broker id, expected 1 or empty string, but received 2".into()
            ))
        );
        assert_eq!(
            describe_broker_resource("x", 1),
            Err(AlterConfigError::InvalidRequest(
                "Broker id must be an integer, but it is: x".into()
            ))
        );
        assert_eq!(
            alter_broker_resource("2", 1),
            Err(AlterConfigError::InvalidRequest(
                "Unexpected broker id, expected 1, but received 2".into()
            ))
        );
        assert_eq!(
            alter_broker_resource("x", 1),
            Err(AlterConfigError::InvalidRequest(
                "Node id must be an integer, but it is: x".into()
            ))
        );
    }

    #[test]
    fn create_topic_configs_refuse_nulls_and_keep_the_last_entry() {
        let layers = ConfigLayers::default();
        let configs = vec![
            ("retention.ms".to_string(), Some("1".to_string())),
            ("retention.ms".to_string(), Some("2".to_string())),
        ];
        assert_eq!(
            create_topic_configs(&layers, &configs),
            Ok(map(&[("retention.ms", "2")]))
        );
        let nulls = vec![
            ("retention.ms".to_string(), None),
            ("segment.ms".to_string(), None),
        ];
        assert_eq!(
            create_topic_configs(&layers, &nulls).map_err(|e| e.to_string()),
            Err("Null value not supported for topic configs: retention.ms,segment.ms".into())
        );
        let bad = vec![("cleanup.policy".to_string(), Some("forever".to_string()))];
        assert_eq!(
            create_topic_configs(&layers, &bad).map_err(|e| e.to_string()),
            Err("Invalid value forever for configuration cleanup.policy: String must be one of: compact, delete".into())
        );
    }
}
