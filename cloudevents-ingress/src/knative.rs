//! Knative `eventing.knative.dev/v1` `Broker` and `Trigger` manifests (YAML or JSON, several
//! documents per file), as `spate apply -f` reads them.
//!
//! Knative keeps a Kafka broker's partitions and replication factor in a ConfigMap that Spate
//! cannot read; the annotations `spate.io/partitions`, `spate.io/replication-factor` and
//! `spate.io/topic-config.<kafka config name>` stand in for it. A trigger's
//! `kafka.eventing.knative.dev/delivery.order` annotation selects ordered delivery, and
//! `spate.io/dead-letter-failure: drop` opts into Knative's drop-when-the-sink-fails behaviour.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::delivery::{DeliverySpec, Destination};
use crate::filter::{AttributesFilterSpec, FilterSpec};
use crate::model::{BrokerSpec, DeadLetterFailurePolicy, DeliveryOrder, TriggerSpec};

/// The API group and version accepted.
pub const API_VERSION: &str = "eventing.knative.dev/v1";
/// Knative Kafka's delivery order annotation.
pub const DELIVERY_ORDER_ANNOTATION: &str = "kafka.eventing.knative.dev/delivery.order";
/// Namespace of an object whose metadata names none, as kubectl does.
pub const NAMESPACE_DEFAULT: &str = "default";

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A broker.
    Broker(BrokerSpec),
    /// A trigger.
    Trigger(TriggerSpec),
}

/// Why a manifest was refused: which document and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {reason}")]
pub struct ManifestError {
    /// 1-based document number within the file.
    pub document: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: serde_norway::Value,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KnBrokerSpec {
    #[serde(default)]
    delivery: Option<DeliverySpec>,
    // `config` (a ConfigMap reference) is accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    config: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KnTriggerSpec {
    broker: String,
    #[serde(default)]
    filter: Option<AttributesFilterSpec>,
    #[serde(default)]
    filters: Vec<FilterSpec>,
    subscriber: Destination,
    #[serde(default)]
    delivery: Option<DeliverySpec>,
}

/// Parses every document of a manifest file. Empty documents are skipped.
pub fn parse_manifests(text: &str) -> Result<Vec<Resource>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let fail = |reason: String| ManifestError { document, reason };
        let value = serde_norway::Value::deserialize(doc).map_err(|e| fail(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let object: Object = serde_norway::from_value(value).map_err(|e| fail(e.to_string()))?;
        if object.api_version != API_VERSION {
            return Err(fail(format!(
                "apiVersion `{}` is not supported; expected {API_VERSION}",
                object.api_version
            )));
        }
        let namespace = object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| NAMESPACE_DEFAULT.to_owned());
        let annotations = &object.metadata.annotations;
        let spec_value = if object.spec.is_null() {
            serde_norway::Value::Mapping(Default::default())
        } else {
            object.spec
        };
        match object.kind.as_str() {
            "Broker" => {
                let spec: KnBrokerSpec =
                    serde_norway::from_value(spec_value).map_err(|e| fail(format!("spec: {e}")))?;
                let mut broker = BrokerSpec::new(&namespace, &object.metadata.name);
                broker.delivery = spec.delivery;
                if let Some(p) = annotations.get("spate.io/partitions") {
                    broker.partitions =
                        Some(p.parse().map_err(|_| {
                            fail(format!("spate.io/partitions `{p}` is not a number"))
                        })?);
                }
                if let Some(rf) = annotations.get("spate.io/replication-factor") {
                    broker.replication_factor = Some(rf.parse().map_err(|_| {
                        fail(format!(
                            "spate.io/replication-factor `{rf}` is not a number"
                        ))
                    })?);
                }
                for (k, v) in annotations {
                    if let Some(config) = k.strip_prefix("spate.io/topic-config.") {
                        broker.topic_configs.insert(config.to_owned(), v.clone());
                    }
                }
                broker.validate().map_err(|e| fail(e.to_string()))?;
                out.push(Resource::Broker(broker));
            }
            "Trigger" => {
                let spec: KnTriggerSpec =
                    serde_norway::from_value(spec_value).map_err(|e| fail(format!("spec: {e}")))?;
                let delivery_order = match annotations
                    .get(DELIVERY_ORDER_ANNOTATION)
                    .map(String::as_str)
                {
                    None | Some("unordered") => DeliveryOrder::Unordered,
                    Some("ordered") => DeliveryOrder::Ordered,
                    Some(other) => {
                        return Err(fail(format!(
                            "{DELIVERY_ORDER_ANNOTATION} must be `ordered` or `unordered`, not `{other}`"
                        )));
                    }
                };
                let dead_letter_failure = match annotations
                    .get("spate.io/dead-letter-failure")
                    .map(String::as_str)
                {
                    None | Some("retry") => DeadLetterFailurePolicy::Retry,
                    Some("drop") => DeadLetterFailurePolicy::Drop,
                    Some(other) => {
                        return Err(fail(format!(
                            "spate.io/dead-letter-failure must be `retry` or `drop`, not `{other}`"
                        )));
                    }
                };
                let trigger = TriggerSpec {
                    namespace,
                    name: object.metadata.name.clone(),
                    broker: spec.broker,
                    filter: spec.filter,
                    filters: spec.filters,
                    subscriber: spec.subscriber,
                    delivery: spec.delivery,
                    delivery_order,
                    dead_letter_failure,
                };
                trigger.compile(None).map_err(|e| fail(e.to_string()))?;
                out.push(Resource::Trigger(trigger));
            }
            other => {
                return Err(fail(format!(
                    "kind `{other}` is not supported; expected Broker or Trigger"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: orders
  namespace: shop
  annotations:
    eventing.knative.dev/broker.class: Kafka
    spate.io/partitions: "3"
spec:
  config:
    apiVersion: v1
    kind: ConfigMap
    name: kafka-broker-config
    namespace: knative-eventing
  delivery:
    retry: 5
    backoffPolicy: exponential
    backoffDelay: PT0.5S
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: audit
  namespace: shop
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  broker: orders
  filters:
    - any:
        - exact:
            type: com.example.order.created
        - cesql: "source LIKE 'https://%'"
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: auditor
  delivery:
    deadLetterSink:
      uri: http://dls.shop.svc.cluster.local/
"#;

    #[test]
    fn knative_broker_and_trigger_yaml() {
        let resources = parse_manifests(MANIFEST).unwrap();
        let [Resource::Broker(b), Resource::Trigger(t)] = &resources[..] else {
            panic!("{resources:?}");
        };
        assert_eq!(b.topic(), "knative-broker-shop-orders");
        assert_eq!(b.partitions, Some(3));
        assert_eq!(b.delivery.as_ref().unwrap().retry, Some(5));
        assert_eq!(t.delivery_order, DeliveryOrder::Ordered);
        let c = t.compile(Some(b)).unwrap();
        assert_eq!(c.subscriber, "http://auditor.shop.svc.cluster.local/");
        assert_eq!(c.delivery.retry, 5);
        assert_eq!(
            c.delivery.dead_letter_sink.as_deref(),
            Some("http://dls.shop.svc.cluster.local/")
        );
    }

    #[test]
    fn refusals_name_the_document() {
        let bad = MANIFEST.replace("ordered\n", "sideways\n");
        let err = parse_manifests(&bad).unwrap_err();
        assert_eq!(err.document, 2);
        let err =
            parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").unwrap_err();
        assert!(err.reason.contains("apiVersion"));
        let err = parse_manifests(&MANIFEST.replace(
            "cesql: \"source LIKE 'https://%'\"",
            "cesql: \"source LIKE\"",
        ))
        .unwrap_err();
        assert!(err.reason.contains("position"), "{err}");
    }
}
