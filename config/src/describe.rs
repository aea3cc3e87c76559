//! DescribeConfigs answers: every config of a topic or broker with its value, source, synonyms,
//! type and documentation, computed the way Apache Kafka's `ConfigHelper` computes them.
//!
//! Kafka lists a config's synonyms by source first (dynamic broker, dynamic default, static,
//! default) and, within a source, in synonym order; then it drops every synonym before the first
//! one whose name is the config being described. That last step has a visible consequence this
//! module keeps: when only `log.retention.hours` has a value, a topic's `retention.ms` lists no
//! synonyms and reports DEFAULT_CONFIG, because its primary synonym `log.retention.ms` has none.

use std::collections::BTreeMap;

use crate::broker::{
    BROKER_CONFIG_DEFS, ConfigLayers, UpdateMode, broker_config_def, broker_config_synonyms,
};
use crate::topic::{TOPIC_CONFIG_DEFS, parse_topic_overrides};
use crate::value::{ConfigType, InvalidConfig};

/// Where a config value comes from, numbered as DescribeConfigs v1+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ConfigSource {
    /// Unknown.
    Unknown = 0,
    /// A topic's own dynamic config.
    TopicConfig = 1,
    /// This broker's dynamic config.
    DynamicBrokerConfig = 2,
    /// The cluster-wide dynamic broker default.
    DynamicDefaultBrokerConfig = 3,
    /// The node's static config (file, environment, flags).
    StaticBrokerConfig = 4,
    /// The built-in default.
    DefaultConfig = 5,
    /// A dynamic broker logger level.
    DynamicBrokerLoggerConfig = 6,
    /// A client metrics subscription.
    ClientMetricsConfig = 7,
    /// A group's dynamic config.
    GroupConfig = 8,
}

impl ConfigSource {
    /// The DescribeConfigs `config_source` code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// One synonym of a described config, with its own value and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The synonym's name.
    pub name: String,
    /// Its value; `None` for sensitive configs.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
}

/// One config entry of a DescribeConfigs result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    /// The config name.
    pub name: String,
    /// Its effective value; `None` when it is null or sensitive.
    pub value: Option<String>,
    /// Where the effective value comes from.
    pub source: ConfigSource,
    /// Whether AlterConfigs may change it.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub sensitive: bool,
    /// Its type (DescribeConfigs v3+).
    pub config_type: ConfigType,
    /// What it does (DescribeConfigs v3+, when asked for).
    pub documentation: &'static str,
    /// The values it could take from elsewhere, highest precedence first (DescribeConfigs v1+,
    /// when asked for). The broker drops them when the request does not include synonyms.
    pub synonyms: Vec<ConfigSynonym>,
}

/// Kafka's `ConfigHelper.configSynonyms`: the synonyms of `name` among `all_names` that have a
/// value somewhere, by source then synonym order, starting at `name` itself.
fn config_synonyms(
    layers: &ConfigLayers,
    name: &str,
    all_names: &[&str],
    sensitive: bool,
) -> Vec<ConfigSynonym> {
    let mut synonyms = Vec::new();
    for (map, source) in layers.sets() {
        for synonym in all_names {
            if let Some(value) = map.get(*synonym) {
                synonyms.push(ConfigSynonym {
                    name: synonym.to_string(),
                    value: if sensitive { None } else { Some(value.clone()) },
                    source,
                });
            }
        }
    }
    for synonym in all_names {
        if let Some(default) = broker_config_def(synonym).and_then(|def| def.default) {
            synonyms.push(ConfigSynonym {
                name: synonym.to_string(),
                value: if sensitive {
                    None
                } else {
                    Some(default.to_string())
                },
                source: ConfigSource::DefaultConfig,
            });
        }
    }
    match synonyms.iter().position(|synonym| synonym.name == name) {
        Some(start) => synonyms.split_off(start),
        None => Vec::new(),
    }
}

/// Every config of a topic, sorted by name: the effective value (its override, else the
/// cluster-wide default from the broker layers, else Kafka's default) with source and synonyms.
pub fn describe_topic_configs(
    layers: &ConfigLayers,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<DescribedConfig>, InvalidConfig> {
    let defaults = layers.topic_default_values()?;
    let parsed_overrides = parse_topic_overrides(overrides)?;
    let mut described = Vec::with_capacity(TOPIC_CONFIG_DEFS.len());
    for def in TOPIC_CONFIG_DEFS {
        let sensitive = def.config_type.is_sensitive();
        let override_value = parsed_overrides
            .iter()
            .find(|(name, _)| *name == def.name)
            .map(|(_, v)| v);
        let effective = override_value
            .or_else(|| {
                defaults
                    .iter()
                    .find(|(name, _)| *name == def.name)
                    .map(|(_, v)| v)
            })
            .map(|value| value.to_kafka_string());
        let value = if sensitive { None } else { effective };
        let mut synonyms = match def.synonyms.first() {
            Some(primary) => config_synonyms(
                layers,
                primary.name,
                &broker_config_synonyms(primary.name),
                sensitive,
            ),
            None => Vec::new(),
        };
        if override_value.is_some() {
            synonyms.insert(
                0,
                ConfigSynonym {
                    name: def.name.to_string(),
                    value: value.clone(),
                    source: ConfigSource::TopicConfig,
                },
            );
        }
        described.push(DescribedConfig {
            name: def.name.to_string(),
            value,
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            read_only: false,
            sensitive,
            config_type: def.config_type,
            documentation: def.documentation,
            synonyms,
        });
    }
    described.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(described)
}

/// Every config of this broker (DescribeConfigs on resource `"<node id>"`), sorted by name.
///
/// Values are the effective ones, written back the way Kafka writes parsed values (so a static
/// `log.cleanup.policy = "compact, delete"` reads `compact,delete`); a value that does not
/// parse, which AlterConfigs never lets in, is shown as it was set.
pub fn describe_broker_configs(layers: &ConfigLayers) -> Vec<DescribedConfig> {
    let mut described = Vec::with_capacity(BROKER_CONFIG_DEFS.len());
    for def in BROKER_CONFIG_DEFS {
        let set_somewhere = layers
            .sets()
            .iter()
            .any(|(map, _)| map.contains_key(def.name));
        if def.dynamic_only && !set_somewhere {
            continue;
        }
        let sensitive = def.is_sensitive();
        let value = if sensitive {
            None
        } else {
            layers
                .lookup(def.name)
                .map(|(raw, _)| match layers.value(def.name) {
                    Ok(Some(parsed)) => parsed.to_kafka_string(),
                    _ => raw,
                })
        };
        let synonyms = config_synonyms(
            layers,
            def.name,
            &broker_config_synonyms(def.name),
            sensitive,
        );
        described.push(DescribedConfig {
            name: def.name.to_string(),
            value,
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            read_only: def.update_mode == UpdateMode::ReadOnly,
            sensitive,
            config_type: def.config_type,
            documentation: def.documentation,
            synonyms,
        });
    }
    described
}

/// The cluster-wide dynamic defaults (DescribeConfigs on broker resource `""`): only the configs
/// set there, with only their DYNAMIC_DEFAULT_BROKER_CONFIG synonyms, as Kafka answers.
pub fn describe_cluster_default_configs(layers: &ConfigLayers) -> Vec<DescribedConfig> {
    let mut described = Vec::with_capacity(layers.dynamic_default.len());
    for (name, raw) in &layers.dynamic_default {
        let def = broker_config_def(name);
        let config_type = def.map_or(ConfigType::Unknown, |d| d.config_type);
        let sensitive = config_type.is_sensitive();
        let synonyms: Vec<ConfigSynonym> =
            config_synonyms(layers, name, &broker_config_synonyms(name), sensitive)
                .into_iter()
                .filter(|synonym| synonym.source == ConfigSource::DynamicDefaultBrokerConfig)
                .collect();
        described.push(DescribedConfig {
            name: name.clone(),
            value: if sensitive { None } else { Some(raw.clone()) },
            source: synonyms
                .first()
                .map_or(ConfigSource::DefaultConfig, |s| s.source),
            read_only: def.is_none_or(|d| d.update_mode == UpdateMode::ReadOnly),
            sensitive,
            config_type,
            documentation: def.map_or("", |d| d.documentation),
            synonyms,
        });
    }
    described
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

    fn find<'a>(configs: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
        configs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} not described"))
    }

    fn synonym(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
        ConfigSynonym {
            name: name.into(),
            value: Some(value.into()),
            source,
        }
    }

    #[test]
    fn topic_defaults_report_default_config_like_kafka() {
        let configs =
            describe_topic_configs(&ConfigLayers::default(), &BTreeMap::new()).expect("valid");
        assert_eq!(configs.len(), TOPIC_CONFIG_DEFS.len());
        let segment = find(&configs, "segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1073741824"));
        assert_eq!(segment.source, ConfigSource::DefaultConfig);
        assert_eq!(
            segment.synonyms,
            [synonym(
                "log.segment.bytes",
                "1073741824",
                ConfigSource::DefaultConfig
            )]
        );
        assert_eq!(segment.config_type, ConfigType::Int);
        assert!(!segment.read_only);
        // log.retention.ms has no default, so Kafka drops log.retention.hours from the list.
        let retention = find(&configs, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!(retention.source, ConfigSource::DefaultConfig);
        assert!(retention.synonyms.is_empty());
        let remote = find(&configs, "remote.storage.enable");
        assert!(remote.synonyms.is_empty());
        assert_eq!(remote.source, ConfigSource::DefaultConfig);
    }

    #[test]
    fn topic_override_comes_first_then_broker_layers() {
        let mut layers = ConfigLayers::from_static(map(&[
            ("log.retention.ms", "1000"),
            ("log.cleanup.policy", "compact"),
        ]));
        layers
            .dynamic_default
            .insert("log.retention.ms".into(), "2000".into());
        let configs = describe_topic_configs(
            &layers,
            &map(&[
                ("retention.ms", "3000"),
                ("cleanup.policy", "delete, compact"),
            ]),
        )
        .expect("valid");
        let retention = find(&configs, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("3000"));
        assert_eq!(retention.source, ConfigSource::TopicConfig);
        assert_eq!(
            retention.synonyms,
            [
                synonym("retention.ms", "3000", ConfigSource::TopicConfig),
                synonym(
                    "log.retention.ms",
                    "2000",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                synonym("log.retention.ms", "1000", ConfigSource::StaticBrokerConfig),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
        let policy = find(&configs, "cleanup.policy");
        assert_eq!(
            policy.value.as_deref(),
            Some("delete,compact"),
            "the list is written back as Kafka writes it"
        );
        assert_eq!(
            policy.synonyms[1],
            synonym(
                "log.cleanup.policy",
                "compact",
                ConfigSource::StaticBrokerConfig
            )
        );
        // Without an override the static broker value is the effective one.
        let segment_ms = find(&configs, "max.message.bytes");
        assert_eq!(segment_ms.source, ConfigSource::DefaultConfig);
    }

    #[test]
    fn topic_value_from_a_secondary_synonym_keeps_kafkas_source() {
        let layers = ConfigLayers::from_static(map(&[("log.retention.hours", "24")]));
        let configs = describe_topic_configs(&layers, &BTreeMap::new()).expect("valid");
        let retention = find(&configs, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("86400000"));
        assert_eq!(retention.source, ConfigSource::DefaultConfig);
        assert!(retention.synonyms.is_empty());
    }

    #[test]
    fn broker_configs_carry_sources_and_synonyms() {
        let mut layers = ConfigLayers::from_static(map(&[
            ("num.partitions", "3"),
            ("log.retention.hours", "24"),
        ]));
        layers
            .dynamic_broker
            .insert("log.retention.minutes".into(), "30".into());
        let configs = describe_broker_configs(&layers);
        let partitions = find(&configs, "num.partitions");
        assert_eq!(partitions.value.as_deref(), Some("3"));
        assert_eq!(partitions.source, ConfigSource::StaticBrokerConfig);
        assert!(partitions.read_only);
        assert_eq!(
            partitions.synonyms,
            [
                synonym("num.partitions", "3", ConfigSource::StaticBrokerConfig),
                synonym("num.partitions", "1", ConfigSource::DefaultConfig),
            ]
        );
        let hours = find(&configs, "log.retention.hours");
        assert_eq!(
            hours.synonyms,
            [
                synonym(
                    "log.retention.hours",
                    "24",
                    ConfigSource::StaticBrokerConfig
                ),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
        let minutes = find(&configs, "log.retention.minutes");
        assert_eq!(minutes.source, ConfigSource::DynamicBrokerConfig);
        assert_eq!(
            minutes.synonyms,
            [
                synonym(
                    "log.retention.minutes",
                    "30",
                    ConfigSource::DynamicBrokerConfig
                ),
                synonym(
                    "log.retention.hours",
                    "24",
                    ConfigSource::StaticBrokerConfig
                ),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
        let ms = find(&configs, "log.retention.ms");
        assert_eq!(ms.value, None, "null in Kafka too");
        assert_eq!(ms.source, ConfigSource::DefaultConfig);
        assert!(!ms.read_only, "log.retention.ms is cluster-wide dynamic");
        let password = find(&configs, "ssl.keystore.password");
        assert!(password.sensitive);
        assert_eq!(password.value, None);
        assert_eq!(password.config_type, ConfigType::Password);
        assert!(
            configs
                .iter()
                .all(|c| c.name != "leader.replication.throttled.rate"),
            "dynamic-only, unset"
        );
    }

    #[test]
    fn cluster_default_resource_lists_only_dynamic_defaults() {
        let mut layers = ConfigLayers::from_static(map(&[("log.retention.ms", "5")]));
        layers
            .dynamic_default
            .insert("log.retention.ms".into(), "10".into());
        layers
            .dynamic_broker
            .insert("log.retention.ms".into(), "20".into());
        let configs = describe_cluster_default_configs(&layers);
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].value.as_deref(), Some("10"));
        assert_eq!(configs[0].source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(
            configs[0].synonyms,
            [synonym(
                "log.retention.ms",
                "10",
                ConfigSource::DynamicDefaultBrokerConfig
            )]
        );
    }
    /// What an Apache Kafka 4.3 broker answered (DescribeConfigs v4 with synonyms) with
    /// `log.retention.hours=24` and `log.cleanup.policy=compact, delete` in its static config and
    /// `log.retention.ms=2000` set on the cluster default resource.
    #[test]
    fn matches_a_running_kafka_4_3_broker() {
        let mut layers = ConfigLayers::from_static(map(&[
            ("log.retention.hours", "24"),
            ("log.cleanup.policy", "compact, delete"),
        ]));
        let before =
            describe_topic_configs(&layers, &map(&[("retention.ms", "3000")])).expect("valid");
        assert_eq!(
            find(&before, "retention.ms").synonyms,
            [synonym("retention.ms", "3000", ConfigSource::TopicConfig)]
        );
        layers
            .dynamic_default
            .insert("log.retention.ms".into(), "2000".into());
        let topic = describe_topic_configs(&layers, &BTreeMap::new()).expect("valid");
        let retention = find(&topic, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("2000"));
        assert_eq!(retention.source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(
            retention.synonyms,
            [
                synonym(
                    "log.retention.ms",
                    "2000",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                synonym(
                    "log.retention.hours",
                    "24",
                    ConfigSource::StaticBrokerConfig
                ),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
        let policy = find(&topic, "cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("compact,delete"));
        assert_eq!(policy.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(
            policy.synonyms,
            [
                synonym(
                    "log.cleanup.policy",
                    "compact, delete",
                    ConfigSource::StaticBrokerConfig
                ),
                synonym("log.cleanup.policy", "delete", ConfigSource::DefaultConfig),
            ]
        );
        let broker = describe_broker_configs(&layers);
        assert_eq!(
            broker.len(),
            340,
            "every non-internal Kafka 4.3 broker config"
        );
        let ms = find(&broker, "log.retention.ms");
        assert_eq!(ms.source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(ms.synonyms, retention.synonyms);
        assert_eq!(
            find(&broker, "log.cleanup.policy").value.as_deref(),
            Some("compact,delete")
        );
        let defaults = describe_cluster_default_configs(&layers);
        assert_eq!(defaults.len(), 1);
        assert_eq!(
            defaults[0].synonyms,
            [synonym(
                "log.retention.ms",
                "2000",
                ConfigSource::DynamicDefaultBrokerConfig
            )]
        );
    }
}
