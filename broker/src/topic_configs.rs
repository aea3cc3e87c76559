//! Topic and broker configuration as the request path sees it: the layers a value comes from
//! (dynamic per-broker, dynamic cluster default, static, Kafka default), topic overrides from the
//! metadata image, and the conversion into the settings partitions use.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use kafka_protocol::protocol::StrBytes;
use spate_config::ConfigLayers;
use spate_config::describe::describe_topic_configs;
use spate_controller::image::MetadataImage;
use spate_controller::records::{CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC};

use spate_protocol::types::NodeId;

use crate::Broker;
use crate::replica::settings::TopicSettings;

impl Broker {
    /// The config layers for this broker in `image`.
    pub fn config_layers(&self, image: &MetadataImage) -> ConfigLayers {
        config_layers(self.node_id, &self.static_configs, image)
    }

    /// A topic's dynamic overrides in `image`.
    pub fn topic_overrides(image: &MetadataImage, topic: &str) -> BTreeMap<String, String> {
        image
            .configs(CONFIG_RESOURCE_TOPIC, topic)
            .map(|c| (**c).clone())
            .unwrap_or_default()
    }

    /// A topic's effective settings in `image`.
    pub fn topic_settings(&self, image: &MetadataImage, topic: &str) -> Arc<TopicSettings> {
        topic_settings(&self.config_layers(image), image, topic)
    }

    /// Validates topic configs given in a request, returning Kafka's message on failure.
    pub fn validate_topic_configs(&self, configs: &[(String, String)]) -> Result<(), String> {
        let map: BTreeMap<String, String> = configs.iter().cloned().collect();
        spate_config::topic::validate_topic_configs(&map).map_err(|e| e.to_string())?;
        let layers = self.config_layers(&self.metadata.image());
        layers
            .topic_config(&map)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The config listing CreateTopics v5+ returns for a newly created topic.
    pub fn created_topic_configs(
        &self,
        configs: &[(String, String)],
    ) -> Vec<CreatableTopicConfigs> {
        let layers = self.config_layers(&self.metadata.image());
        let map: BTreeMap<String, String> = configs.iter().cloned().collect();
        describe_topic_configs(&layers, &map)
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_string(c.name))
                    .with_value(c.value.map(StrBytes::from_string))
                    .with_read_only(c.read_only)
                    .with_config_source(c.source.code())
                    .with_is_sensitive(c.sensitive)
            })
            .collect()
    }
}

/// The config layers of broker `node_id` in `image`: its dynamic configs, the cluster-wide
/// dynamic defaults, then its static configs.
pub fn config_layers(
    node_id: NodeId,
    static_configs: &BTreeMap<String, String>,
    image: &MetadataImage,
) -> ConfigLayers {
    let dynamic = |name: &str| {
        image
            .configs(CONFIG_RESOURCE_BROKER, name)
            .map(|c| (**c).clone())
            .unwrap_or_default()
    };
    ConfigLayers {
        dynamic_broker: dynamic(&node_id.0.to_string()),
        dynamic_default: dynamic(""),
        static_broker: static_configs.clone(),
    }
}

/// A topic's effective settings under `layers` in `image`.
pub fn topic_settings(
    layers: &ConfigLayers,
    image: &MetadataImage,
    topic: &str,
) -> Arc<TopicSettings> {
    match layers.topic_config(&Broker::topic_overrides(image, topic)) {
        Ok(config) => Arc::new(TopicSettings::from_config(&config)),
        Err(error) => {
            // Values are validated before they are committed, so this is a stored value an
            // older validator accepted; fall back to defaults rather than refusing service.
            tracing::warn!(%topic, %error, "invalid topic config; using defaults");
            Arc::new(TopicSettings::default())
        }
    }
}
