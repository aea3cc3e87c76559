//! The Spate broker: the Kafka API server and everything it wires together.
//!
//! Owns the network server, request dispatch and handlers, the replica manager that keeps local
//! partition logs in line with the metadata image, and the admin HTTP endpoints. Lower layers
//! (`spate-protocol`, `spate-storage`, `spate-config`, `spate-controller`) never call up into it.
//!
//! # Layout
//! - [`server`]: listeners, the bounded accept loop, startup and graceful shutdown.
//! - [`connection`]: one client connection, in-order pipelined responses.
//! - [`dispatch`]: header and version checks, body decoding, response encoding.
//! - [`response_frame`]: response frames that send record slices by reference (vectored writes).
//! - [`handlers`]: one module per Kafka API; each maps internal errors to Kafka error codes.
//! - [`settings`]: the runtime settings the request path reads.
//! - [`replica`]: local partitions: logs, producer state, high watermarks.
//! - [`fetch_session`]: incremental fetch sessions (KIP-227).
//! - [`group`]: the group coordinator (consumer groups, committed offsets).
//! - [`kafka_client`], [`groups_cli`]: `spate groups`, over the Kafka protocol.
//! - [`producer_ids`]: producer id blocks for InitProducerId.
//! - [`cloudevents`]: the CloudEvents ingress, trigger dispatcher and their management API,
//!   over the `spate-cloudevents` crate.
#![deny(missing_docs)]

pub mod admin;
pub mod cli;
pub mod cloudevents;
pub mod connection;
pub mod dispatch;
pub mod fetch_session;
pub mod group;
pub mod groups_cli;
pub mod handlers;
pub mod kafka_client;
pub mod metrics;
pub mod producer_ids;
pub mod replica;
pub mod response_frame;
pub mod server;
pub mod settings;
pub mod topic_configs;

use std::collections::BTreeMap;
use std::sync::Arc;

use spate_controller::frontend::MetadataFrontend;
use spate_protocol::types::NodeId;
use spate_storage::Clock;

use crate::fetch_session::FetchSessionCache;
use crate::replica::manager::ReplicaManager;
use crate::settings::BrokerSettings;

/// Shared state of a running broker; every connection holds an `Arc` of it.
pub struct Broker {
    /// This node's id.
    pub node_id: NodeId,
    /// The cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Runtime settings.
    pub settings: BrokerSettings,
    /// The metadata quorum: the image to read and the controller to ask.
    pub metadata: Arc<dyn MetadataFrontend>,
    /// This broker's registration epoch.
    pub broker_epoch: i64,
    /// Producer ids for InitProducerId.
    pub producer_ids: producer_ids::ProducerIdBlock,
    /// Broker configs set in the node's file, environment or flags, by Kafka name.
    pub static_configs: BTreeMap<String, String>,
    /// The clock every time-dependent decision reads.
    pub clock: Arc<dyn Clock>,
    /// The partitions hosted here.
    pub replicas: ReplicaManager,
    /// Incremental fetch sessions.
    pub fetch_sessions: FetchSessionCache,
    /// The metadata offset the hosted partitions were last reconciled with.
    pub reconciled_offset: tokio::sync::watch::Sender<i64>,
    /// The group coordinator: consumer groups and committed offsets.
    pub groups: Arc<group::GroupCoordinator>,
}

impl Broker {
    /// The node id reported as controller: the metadata quorum's leader, or this node while no
    /// leader is known (any node accepts metadata changes and forwards them to the leader).
    pub fn controller_id(&self) -> i32 {
        self.metadata
            .controller_id()
            .map_or(self.node_id.0, |id| id.0)
    }

    /// Whether this node's leadership of `partition` is in doubt: it went a whole broker session
    /// without an acknowledged heartbeat, and the partition's in-sync replicas name another
    /// broker that was alive when this node last heard. The controller has then likely fenced
    /// this node and elected that replica, which this node, out of contact, cannot learn.
    /// Kafka goes on serving as leader from its stale metadata until produce requests time
    /// out; Spate refuses produce with NOT_LEADER_OR_FOLLOWER and answers the leadership in
    /// Metadata as unavailable, so clients find the new leader within the session timeout
    /// (docs/architecture.md). A leader left alone in its ISR (the others stopped or fenced)
    /// has no one to be replaced by and goes on serving, as Kafka's does.
    pub fn leadership_in_doubt(
        &self,
        image: &spate_controller::image::MetadataImage,
        partition: &spate_controller::image::PartitionState,
    ) -> bool {
        partition.leader == Some(self.node_id)
            && self.metadata.broker_session_lapsed()
            && partition.isr.iter().any(|replica| {
                *replica != self.node_id && image.broker(*replica).is_some_and(|b| !b.fenced)
            })
    }

    /// Whether this node is out of contact with a cluster that has other live nodes: its broker
    /// session lapsed (see [`Broker::leadership_in_doubt`]) and its image, stale as it may be,
    /// names another unfenced broker a client could ask instead.
    pub fn out_of_contact(&self, image: &spate_controller::image::MetadataImage) -> bool {
        self.metadata.broker_session_lapsed() && image.live_brokers().any(|b| b.id != self.node_id)
    }
}

/// How long an admin request waits for this node to apply its own committed change before
/// answering anyway (the client then sees the change a moment later, as with Kafka).
const RECONCILE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Broker {
    /// Submits a metadata change and waits until this node has applied it to its partitions,
    /// so that a client that created a topic can produce to it at once.
    pub async fn submit(
        &self,
        request: spate_controller::frontend::ControllerRequest,
    ) -> Result<
        spate_controller::frontend::ControllerReply,
        spate_controller::controller::ControllerError,
    > {
        let reply = self.metadata.submit(request).await?;
        let committed = self.metadata.image().offset;
        let mut reconciled = self.reconciled_offset.subscribe();
        let _ =
            tokio::time::timeout(RECONCILE_WAIT, reconciled.wait_for(|o| *o >= committed)).await;
        Ok(reply)
    }
}
