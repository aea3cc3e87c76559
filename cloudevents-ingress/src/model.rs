//! Brokers and triggers: what the admin API stores and the dispatcher runs.
//!
//! A broker is a Kafka topic `knative-broker-<namespace>-<name>`; a trigger is a consumer group
//! `knative-trigger-<namespace>-<name>` on it, with a filter, a subscriber and a delivery spec.
//! The JSON shape (camelCase) is the admin REST API's; [`crate::knative`] reads Knative YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::delivery::{DeliveryError, DeliveryPolicy, DeliverySpec, Destination};
use crate::filter::{self, AttributesFilterSpec, Filter, FilterError, FilterSpec};
use crate::log::TopicSpec;

/// Partitions of a broker's topic when the broker does not say (Knative's
/// `default.topic.partitions`).
pub const BROKER_PARTITIONS_DEFAULT: i32 = 10;
/// Most partitions a broker may ask for.
pub const BROKER_PARTITIONS_MAX: i32 = 1_000;
/// Longest namespace or name (a Kubernetes DNS-1123 label).
pub const NAME_LENGTH_MAX_CHARS: usize = 63;
/// Prefix of a broker's topic name.
pub const BROKER_TOPIC_PREFIX: &str = "knative-broker-";
/// Prefix of a trigger's consumer group id.
pub const TRIGGER_GROUP_PREFIX: &str = "knative-trigger-";

/// A broker, as created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerSpec {
    /// Namespace (a DNS-1123 label).
    pub namespace: String,
    /// Name (a DNS-1123 label).
    pub name: String,
    /// Topic partitions; [`BROKER_PARTITIONS_DEFAULT`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    /// Topic configs with Kafka's names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_configs: BTreeMap<String, String>,
    /// Default delivery for the broker's triggers, merged field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Whether a trigger dispatches one event at a time per partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOrder {
    /// Up to a bounded number in flight per partition (Knative's default).
    #[default]
    Unordered,
    /// One at a time per partition, retries included.
    Ordered,
}

/// What happens when even the dead-letter sink refuses an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterFailurePolicy {
    /// Keep the offset and retry with capped backoff, loudly (Spate's default: no loss).
    #[default]
    Retry,
    /// Drop the event and move on (what Knative does).
    Drop,
}

/// A trigger, as created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerSpec {
    /// Namespace; the broker is in the same one.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The broker's name.
    pub broker: String,
    /// Knative `filter` (attributes exact match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AttributesFilterSpec>,
    /// SubscriptionsAPI `filters`; overrides `filter` when non-empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterSpec>,
    /// Where events go.
    pub subscriber: Destination,
    /// Delivery; unset fields come from the broker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// Ordered or unordered dispatch.
    #[serde(default)]
    pub delivery_order: DeliveryOrder,
    /// What to do when the dead-letter sink fails too.
    #[serde(default)]
    pub dead_letter_failure: DeadLetterFailurePolicy,
}

/// Why a broker or trigger was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A field with a bad value.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A filter that does not compile.
    #[error("filter {0}")]
    Filter(#[from] FilterError),
    /// A delivery spec that does not resolve.
    #[error("delivery {0}")]
    Delivery(#[from] DeliveryError),
}

fn invalid(field: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Checks a Kubernetes DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn check_name(field: &str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_LENGTH_MAX_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "`{name}` must be a DNS-1123 label: lower-case letters, digits and '-', at most {NAME_LENGTH_MAX_CHARS}"
            ),
        ))
    }
}

/// The topic of a broker.
pub fn broker_topic(namespace: &str, name: &str) -> String {
    format!("{BROKER_TOPIC_PREFIX}{namespace}-{name}")
}

/// The consumer group of a trigger.
pub fn trigger_group(namespace: &str, name: &str) -> String {
    format!("{TRIGGER_GROUP_PREFIX}{namespace}-{name}")
}

impl BrokerSpec {
    /// A broker with defaults.
    pub fn new(namespace: &str, name: &str) -> Self {
        BrokerSpec {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            partitions: None,
            replication_factor: None,
            topic_configs: BTreeMap::new(),
            delivery: None,
        }
    }

    /// Checks names, partition count and delivery.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_name("namespace", &self.namespace)?;
        check_name("name", &self.name)?;
        if let Some(p) = self.partitions
            && !(1..=BROKER_PARTITIONS_MAX).contains(&p)
        {
            return Err(invalid(
                "partitions",
                format!("must be 1 to {BROKER_PARTITIONS_MAX}"),
            ));
        }
        if let Some(rf) = self.replication_factor
            && rf < 1
        {
            return Err(invalid("replicationFactor", "must be at least 1"));
        }
        if let Some(d) = &self.delivery {
            d.resolve(&self.namespace)?;
        }
        Ok(())
    }

    /// The topic name.
    pub fn topic(&self) -> String {
        broker_topic(&self.namespace, &self.name)
    }

    /// The topic to create; replication factor -1 asks for the cluster default.
    pub fn topic_spec(&self) -> TopicSpec {
        TopicSpec {
            name: self.topic(),
            partitions: self.partitions.unwrap_or(BROKER_PARTITIONS_DEFAULT),
            replication_factor: self.replication_factor.unwrap_or(-1),
            configs: self.topic_configs.clone(),
        }
    }
}

impl TriggerSpec {
    /// A trigger with no filter and default delivery.
    pub fn new(namespace: &str, name: &str, broker: &str, subscriber: &str) -> Self {
        TriggerSpec {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            broker: broker.to_owned(),
            filter: None,
            filters: Vec::new(),
            subscriber: Destination::uri(subscriber),
            delivery: None,
            delivery_order: DeliveryOrder::default(),
            dead_letter_failure: DeadLetterFailurePolicy::default(),
        }
    }

    /// The consumer group id.
    pub fn group(&self) -> String {
        trigger_group(&self.namespace, &self.name)
    }

    /// Checks the trigger and compiles its filter, subscriber and delivery, with the broker's
    /// delivery (when known) as the default.
    pub fn compile(&self, broker: Option<&BrokerSpec>) -> Result<CompiledTrigger, ModelError> {
        check_name("namespace", &self.namespace)?;
        check_name("name", &self.name)?;
        check_name("broker", &self.broker)?;
        let filter = filter::compile(self.filter.as_ref(), &self.filters)?;
        let subscriber = self.subscriber.resolve(&self.namespace, "subscriber")?;
        let delivery = self
            .delivery
            .clone()
            .unwrap_or_default()
            .merged_over(broker.and_then(|b| b.delivery.as_ref()))
            .resolve(&self.namespace)?;
        Ok(CompiledTrigger {
            spec: self.clone(),
            filter,
            subscriber,
            delivery,
        })
    }
}

/// A trigger ready to dispatch.
#[derive(Debug, Clone)]
pub struct CompiledTrigger {
    /// The spec it came from.
    pub spec: TriggerSpec,
    /// The compiled filter.
    pub filter: Filter,
    /// Resolved subscriber URL.
    pub subscriber: String,
    /// Resolved delivery, broker defaults merged in.
    pub delivery: DeliveryPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_topics() {
        let b = BrokerSpec::new("default", "orders");
        assert_eq!(b.topic(), "knative-broker-default-orders");
        assert_eq!(b.topic_spec().partitions, BROKER_PARTITIONS_DEFAULT);
        assert!(b.validate().is_ok());
        assert!(BrokerSpec::new("Default", "orders").validate().is_err());
        assert!(BrokerSpec::new("default", "-x").validate().is_err());
        let t = TriggerSpec::new("default", "audit", "orders", "http://127.0.0.1:1/");
        assert_eq!(t.group(), "knative-trigger-default-audit");
    }

    #[test]
    fn rest_json_shape() {
        let t: TriggerSpec = serde_json::from_str(
            r#"{"namespace":"ns","name":"t","broker":"b","subscriber":{"uri":"http://127.0.0.1:9/"},
                "filters":[{"prefix":{"type":"com."}}],"deliveryOrder":"ordered",
                "delivery":{"retry":3,"backoffPolicy":"linear","backoffDelay":"PT0.1S"}}"#,
        )
        .unwrap();
        let c = t.compile(None).unwrap();
        assert_eq!(c.delivery.retry, 3);
        assert_eq!(t.delivery_order, DeliveryOrder::Ordered);
        assert!(serde_json::from_str::<TriggerSpec>(r#"{"namespace":"ns","name":"t","broker":"b","subscriber":{"uri":"http://x/"},"bogus":1}"#).is_err());
    }

    #[test]
    fn bad_filters_refuse_the_trigger() {
        let mut t = TriggerSpec::new("ns", "t", "b", "http://127.0.0.1:9/");
        t.filters = vec![FilterSpec {
            cesql: Some("type = ".into()),
            ..FilterSpec::default()
        }];
        let err = t.compile(None).unwrap_err();
        assert!(err.to_string().contains("position"), "{err}");
    }
}
