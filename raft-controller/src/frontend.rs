//! The frontend: how the broker proposes metadata changes and reads the image.
//!
//! The broker never builds records itself. It sends a [`ControllerRequest`] through a
//! [`MetadataFrontend`]; the controller decides the records against the newest image, the quorum
//! commits them, every node applies them, and the reply comes back once they are applied locally.
//! [`crate::quorum::RaftQuorum`] implements it, in single-node mode (one voter) as in a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use spate_protocol::types::NodeId;
use tokio::sync::watch;
use uuid::Uuid;

use crate::controller::{
    self, AlterPartition, AlterPartitionError, AlteredPartition, ControllerError,
    ControllerSettings, CreatedTopic, ElectionResult, HeartbeatOutcome, NewTopic,
};
use crate::image::MetadataImage;
use crate::records::{Endpoint, MetadataRecord, Record, ResourceRecord};

/// A metadata change the broker asks the controller for.
#[derive(Debug, Clone)]
pub enum ControllerRequest {
    /// Register this broker.
    RegisterBroker {
        /// Node id.
        broker_id: NodeId,
        /// This process run's id.
        incarnation_id: Uuid,
        /// Advertised listeners.
        endpoints: Vec<Endpoint>,
        /// Rack.
        rack: Option<String>,
    },
    /// Create topics; each succeeds or fails on its own.
    CreateTopics {
        /// The topics.
        topics: Vec<NewTopic>,
        /// Decide and report, but commit nothing.
        validate_only: bool,
    },
    /// Delete topics by id.
    DeleteTopics {
        /// Topic ids.
        topic_ids: Vec<Uuid>,
    },
    /// Add partitions to a topic.
    CreatePartitions {
        /// Topic name.
        topic: String,
        /// New partition count.
        new_total: i32,
        /// Explicit assignments of the new partitions.
        assignments: Option<Vec<Vec<NodeId>>>,
        /// Decide and report, but commit nothing.
        validate_only: bool,
    },
    /// Set or remove dynamic configs of one resource.
    AlterConfigs {
        /// Resource type code.
        resource_type: i32,
        /// Resource name.
        resource_name: String,
        /// Changes: `None` removes the dynamic value.
        changes: Vec<(String, Option<String>)>,
    },
    /// Hand a block of producer ids to a broker.
    AllocateProducerIds {
        /// Node id.
        broker_id: NodeId,
        /// Its registration epoch.
        broker_epoch: i64,
    },
    /// A registered broker is alive (sent every `broker.heartbeat.interval.ms`); the first one
    /// after registration unfences it.
    BrokerHeartbeat {
        /// Node id.
        broker_id: NodeId,
        /// Its registration epoch.
        broker_epoch: i64,
        /// The metadata offset the broker has applied.
        metadata_offset: i64,
    },
    /// The broker is shutting down cleanly: move its leaderships away and fence it.
    ControlledShutdown {
        /// Node id.
        broker_id: NodeId,
        /// Its registration epoch.
        broker_epoch: i64,
    },
    /// The controller fences a broker whose session expired (issued by the controller itself).
    FenceBroker {
        /// Node id.
        broker_id: NodeId,
        /// The registration epoch whose session expired.
        broker_epoch: i64,
    },
    /// A partition leader proposes a new ISR.
    AlterPartition(AlterPartition),
    /// Preferred-leader election for some partitions (`None`: every partition).
    ElectPreferredLeaders {
        /// (topic id, partition index) pairs.
        partitions: Option<Vec<(Uuid, i32)>>,
    },
    /// Unclean election of leaderless partitions (`None`: every partition).
    ElectUncleanLeaders {
        /// (topic id, partition index) pairs.
        partitions: Option<Vec<(Uuid, i32)>>,
    },
    /// Set or remove extension resources (the CloudEvents brokers and triggers), all at once.
    PutResources {
        /// The changes, in order.
        changes: Vec<ResourceRecord>,
    },
}

/// What a request produced, in request order.
#[derive(Debug, Clone)]
pub enum ControllerReply {
    /// The broker's registration epoch.
    BrokerRegistered {
        /// Registration epoch.
        broker_epoch: i64,
    },
    /// One result per requested topic.
    TopicsCreated(Vec<Result<CreatedTopic, ControllerError>>),
    /// One result per requested topic id.
    TopicsDeleted(Vec<Result<(), ControllerError>>),
    /// Partitions were (or would be) added.
    PartitionsCreated,
    /// Configs were changed.
    ConfigsAltered,
    /// First id of the block (the block is `PRODUCER_ID_BLOCK_SIZE` long).
    ProducerIdsAllocated {
        /// First producer id of the block.
        first_producer_id: i64,
    },
    /// The broker's fencing state after a heartbeat.
    BrokerHeartbeat {
        /// Whether it is fenced.
        fenced: bool,
    },
    /// The broker's epoch is not its current registration.
    StaleBrokerEpoch,
    /// The broker is fenced and leads nothing.
    BrokerFenced,
    /// The outcome of an AlterPartition.
    PartitionAltered(Result<AlteredPartition, AlterPartitionError>),
    /// One result per partition considered.
    LeadersElected(Vec<ElectionResult>),
    /// Extension resources were set or removed.
    ResourcesChanged,
}

/// One member of the metadata quorum as the leader sees it (DescribeQuorum's `ReplicaState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Node id.
    pub node_id: NodeId,
    /// The last log offset known to be on this replica (the log end offset minus one, in
    /// Kafka's terms the end offset is this plus one).
    pub log_end_offset: i64,
    /// When the leader last heard from it, ms since the epoch; -1 if never.
    pub last_fetch_timestamp_ms: i64,
    /// When it was last fully caught up, ms since the epoch; -1 if never.
    pub last_caught_up_timestamp_ms: i64,
}

/// The state of the metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader.
    pub leader_id: NodeId,
    /// The leader's term (Kafka's quorum epoch).
    pub leader_epoch: i64,
    /// The commit index (Kafka's high watermark).
    pub high_watermark: i64,
    /// The voters.
    pub voters: Vec<QuorumReplica>,
    /// Learners (Kafka's observers).
    pub observers: Vec<QuorumReplica>,
    /// The voters' controller addresses (`host:port`) as the answering node's configuration
    /// lists them; filled in by the node that answers the caller, not carried between nodes.
    pub voter_addresses: Vec<(NodeId, String)>,
}

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How the broker reads and changes cluster metadata.
pub trait MetadataFrontend: Send + Sync + 'static {
    /// The newest applied image.
    fn image(&self) -> Arc<MetadataImage>;
    /// A receiver that sees every newly published image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Submits a request; resolves once its records are committed and applied here.
    fn submit(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<Result<ControllerReply, ControllerError>>;
    /// The node the quorum currently follows as leader, if known.
    fn controller_id(&self) -> Option<NodeId> {
        None
    }
    /// Whether this node's broker went a whole session without an acknowledged heartbeat, so
    /// the controller may have fenced it without this node knowing.
    fn broker_session_lapsed(&self) -> bool {
        false
    }
    /// The quorum's state as its leader sees it.
    fn describe_quorum(&self) -> BoxFuture<Result<QuorumDescription, ControllerError>> {
        Box::pin(async {
            Err(ControllerError::Unavailable(
                "this metadata frontend has no quorum to describe".into(),
            ))
        })
    }
}

/// Decides the records for `request` against `image`, the image of every entry before the one
/// that will carry them. The decision logic exists once, here. `new_topic_id` makes the ids of
/// new topics (random in production, seeded in the simulation).
pub fn decide(
    image: &MetadataImage,
    settings: &ControllerSettings,
    request: &ControllerRequest,
    new_topic_id: &mut dyn FnMut() -> Uuid,
) -> Result<(ControllerReply, Vec<MetadataRecord>), ControllerError> {
    match request {
        ControllerRequest::RegisterBroker {
            broker_id,
            incarnation_id,
            endpoints,
            rack,
        } => {
            // A retried registration (same process, same listeners) is answered again, not
            // registered twice: the broker keeps its epoch.
            if let Some(existing) = image.broker(*broker_id)
                && existing.incarnation_id == *incarnation_id
                && existing.endpoints == *endpoints
                && existing.rack == *rack
            {
                return Ok((
                    ControllerReply::BrokerRegistered {
                        broker_epoch: existing.epoch,
                    },
                    Vec::new(),
                ));
            }
            let records = controller::register_broker(
                image,
                *broker_id,
                *incarnation_id,
                endpoints.clone(),
                rack.clone(),
            );
            Ok((
                ControllerReply::BrokerRegistered {
                    broker_epoch: image.offset + 1,
                },
                records,
            ))
        }
        ControllerRequest::CreateTopics {
            topics,
            validate_only,
        } => {
            let mut pending = BTreeSet::new();
            let mut results = Vec::with_capacity(topics.len());
            let mut records = Vec::new();
            for topic in topics {
                match controller::create_topic(image, settings, topic, &pending, new_topic_id()) {
                    Ok((created, topic_records)) => {
                        pending.insert(topic.name.clone());
                        if !validate_only {
                            records.extend(topic_records);
                        }
                        results.push(Ok(created));
                    }
                    Err(error) => results.push(Err(error)),
                }
            }
            Ok((ControllerReply::TopicsCreated(results), records))
        }
        ControllerRequest::DeleteTopics { topic_ids } => {
            let mut results = Vec::with_capacity(topic_ids.len());
            let mut records = Vec::new();
            let mut seen = BTreeMap::new();
            for id in topic_ids {
                if seen.insert(*id, ()).is_some() {
                    results.push(Ok(()));
                    continue;
                }
                match controller::delete_topic(image, *id) {
                    Ok(record) => {
                        records.push(record);
                        results.push(Ok(()));
                    }
                    Err(error) => results.push(Err(error)),
                }
            }
            Ok((ControllerReply::TopicsDeleted(results), records))
        }
        ControllerRequest::CreatePartitions {
            topic,
            new_total,
            assignments,
            validate_only,
        } => {
            let records =
                controller::create_partitions(image, topic, *new_total, assignments.clone())?;
            let records = if *validate_only { Vec::new() } else { records };
            Ok((ControllerReply::PartitionsCreated, records))
        }
        ControllerRequest::AlterConfigs {
            resource_type,
            resource_name,
            changes,
        } => Ok((
            ControllerReply::ConfigsAltered,
            controller::alter_configs(*resource_type, resource_name, changes),
        )),
        ControllerRequest::PutResources { changes } => {
            for change in changes {
                controller::check_resource(change)?;
            }
            let records = changes
                .iter()
                .map(|c| MetadataRecord::new(Record::Resource(c.clone())))
                .collect();
            Ok((ControllerReply::ResourcesChanged, records))
        }
        ControllerRequest::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => {
            let (first_producer_id, record) =
                controller::allocate_producer_ids(image, *broker_id, *broker_epoch);
            Ok((
                ControllerReply::ProducerIdsAllocated { first_producer_id },
                vec![record],
            ))
        }
        ControllerRequest::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
        } => {
            let (outcome, records) =
                controller::broker_heartbeat(image, *broker_id, *broker_epoch, *metadata_offset);
            let reply = match outcome {
                HeartbeatOutcome::StaleBrokerEpoch => ControllerReply::StaleBrokerEpoch,
                HeartbeatOutcome::Fenced(fenced) => ControllerReply::BrokerHeartbeat { fenced },
            };
            Ok((reply, records))
        }
        ControllerRequest::ControlledShutdown {
            broker_id,
            broker_epoch,
        }
        | ControllerRequest::FenceBroker {
            broker_id,
            broker_epoch,
        } => {
            if image
                .broker(*broker_id)
                .is_none_or(|b| b.epoch != *broker_epoch)
            {
                return Ok((ControllerReply::StaleBrokerEpoch, Vec::new()));
            }
            Ok((
                ControllerReply::BrokerFenced,
                controller::fence_broker(image, *broker_id, *broker_epoch),
            ))
        }
        ControllerRequest::AlterPartition(request) => {
            match controller::alter_partition(image, request) {
                Ok((altered, records)) => {
                    Ok((ControllerReply::PartitionAltered(Ok(altered)), records))
                }
                Err(error) => Ok((ControllerReply::PartitionAltered(Err(error)), Vec::new())),
            }
        }
        ControllerRequest::ElectPreferredLeaders { partitions } => {
            let (results, records) =
                controller::elect_preferred_leaders(image, partitions.as_deref());
            Ok((ControllerReply::LeadersElected(results), records))
        }
        ControllerRequest::ElectUncleanLeaders { partitions } => {
            let (results, records) =
                controller::elect_unclean_leaders(image, partitions.as_deref());
            Ok((ControllerReply::LeadersElected(results), records))
        }
    }
}
