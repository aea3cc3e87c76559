//! The broker's runtime settings: the subset of the node configuration the request path reads,
//! resolved once at startup into plain fields.

use spate_protocol::frame::SOCKET_REQUEST_MAX_BYTES_DEFAULT;

/// Settings the broker's request handlers consult.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `socket.request.max.bytes`: frames above it are refused before they are read.
    pub socket_request_max_bytes: usize,
    /// `max.connections`: accepted connections beyond it wait in the listen backlog.
    pub max_connections: usize,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `message.max.bytes`: the broker-wide default of `max.message.bytes`.
    pub message_max_bytes: i32,
    /// Cap on bytes a compressed batch may inflate to when the broker must look inside it.
    pub decompressed_batch_max_bytes: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            socket_request_max_bytes: SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            max_connections: 10_000,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            message_max_bytes: 1_048_588,
            decompressed_batch_max_bytes: 256 * 1024 * 1024,
        }
    }
}
