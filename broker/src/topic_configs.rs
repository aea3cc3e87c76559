//! Topic configuration as the request path sees it.

use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;

use crate::Broker;

impl Broker {
    /// Validates topic configs given in a request, returning Kafka's message on failure.
    pub fn validate_topic_configs(&self, _configs: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }

    /// The config listing CreateTopics v5+ returns for a newly created topic.
    pub fn created_topic_configs(
        &self,
        _configs: &[(String, String)],
    ) -> Vec<CreatableTopicConfigs> {
        Vec::new()
    }
}
