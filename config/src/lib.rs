//! Node configuration (file, environment, flags) and topic and broker configuration with
//! Apache Kafka's names, types, defaults, validation messages and DescribeConfigs semantics.
//!
//! Knows nothing of the crates that use it: no Spate crate is a dependency, and the types here
//! are plain data the broker converts at its edge.
//!
//! # Layout
//! - [`value`]: config types, parsing and validators with Kafka's `ConfigDef` rules and messages.
//! - [`topic`]: the topic config table (Kafka 4.x) and the typed [`TopicConfig`].
//! - [`broker`]: the broker config table, the [`ConfigLayers`] a value comes from, and the typed
//!   [`BrokerSettings`].
//! - [`describe`]: DescribeConfigs answers with values, sources and synonyms.
//! - [`alter`]: AlterConfigs and IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT).
//! - [`address`]: `host:port` and `id@host:port` parsing.
//! - [`node`]: [`NodeConfig`] from a TOML file, `SPATE_*` variables and [`NodeArgs`] flags.
//! - [`reference`]: the generated configuration reference (`docs/configuration.md`).
#![deny(missing_docs)]

pub mod address;
pub mod alter;
pub mod broker;
pub mod describe;
pub mod node;
pub mod reference;
pub mod topic;
pub mod value;

pub use address::{HostPort, Voter};
pub use alter::{AlterConfigEntry, AlterConfigError, AlterConfigOp};
pub use broker::{BrokerConfigDef, BrokerSettings, ConfigLayers, UpdateMode};
pub use describe::{ConfigSource, ConfigSynonym, DescribedConfig};
pub use node::{ConfigError, LogFormat, NodeArgs, NodeConfig};
pub use topic::{TopicConfig, TopicConfigDef};
pub use value::{ConfigType, ConfigValue, InvalidConfig, Validator};
