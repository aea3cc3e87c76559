//! The metadata image: the cluster as the applied records describe it.
//!
//! An image is immutable once published. The state machine keeps a working copy, applies records
//! to it (copy-on-write through `Arc::make_mut`, so only the maps a record touches are copied),
//! and publishes a fresh `Arc<MetadataImage>` after each committed batch. Request handlers hold
//! whichever image was current when they started, without locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use spate_protocol::types::{LeaderEpoch, NodeId, PartitionId};
use uuid::Uuid;

use crate::records::{
    BrokerFencingRecord, ConfigRecord, Endpoint, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, Record, RegisterBrokerRecord, RemoveTopicRecord,
    ResourceRecord, TopicRecord, UnregisterBrokerRecord, topic_id_from_bytes,
};

/// A record that cannot be applied to the current image. Applying is deterministic, so every
/// node rejects the same records; the state machine logs and skips them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The envelope carried no record.
    #[error("metadata record at offset {offset} is empty")]
    Empty {
        /// Log offset of the record.
        offset: i64,
    },
    /// A topic id was not 16 bytes.
    #[error("metadata record at offset {offset} has a malformed topic id")]
    BadTopicId {
        /// Log offset of the record.
        offset: i64,
    },
    /// The record names a topic the image does not have.
    #[error("metadata record at offset {offset} names unknown topic id {topic_id}")]
    UnknownTopic {
        /// Log offset of the record.
        offset: i64,
        /// The topic id.
        topic_id: Uuid,
    },
    /// The record names a partition the image does not have.
    #[error("metadata record at offset {offset} names unknown partition {topic_id}:{partition}")]
    UnknownPartition {
        /// Log offset of the record.
        offset: i64,
        /// The topic id.
        topic_id: Uuid,
        /// The partition index.
        partition: i32,
    },
    /// A topic name already belongs to another topic id.
    #[error("metadata record at offset {offset} reuses topic name {name}")]
    DuplicateTopicName {
        /// Log offset of the record.
        offset: i64,
        /// The name.
        name: String,
    },
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRegistration {
    /// Node id.
    pub id: NodeId,
    /// Process incarnation.
    pub incarnation_id: Uuid,
    /// Registration epoch.
    pub epoch: i64,
    /// Advertised listeners.
    pub endpoints: Vec<Endpoint>,
    /// Rack.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are not offered to clients.
    pub fenced: bool,
}

/// One partition's replica assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Partition index.
    pub id: PartitionId,
    /// Replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
    /// Leader, `None` when offline.
    pub leader: Option<NodeId>,
    /// Leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// Partition epoch.
    pub partition_epoch: i32,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionState>,
}

/// Dynamic config values of one resource, by config name.
pub type ConfigMap = BTreeMap<String, String>;

/// The whole cluster metadata at one log offset.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    /// Offset of the last applied record, -1 before any.
    pub offset: i64,
    brokers: Arc<BTreeMap<NodeId, BrokerRegistration>>,
    topics: Arc<HashMap<Uuid, Arc<TopicImage>>>,
    topic_ids: Arc<HashMap<String, Uuid>>,
    configs: Arc<HashMap<(i32, String), Arc<ConfigMap>>>,
    resources: Arc<ResourceMap>,
    next_producer_id: i64,
}

/// Extension resources by (kind, name): the values of [`ResourceRecord`]s.
pub type ResourceMap = BTreeMap<(String, String), Vec<u8>>;

impl MetadataImage {
    /// The image before any record.
    pub fn empty() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..MetadataImage::default()
        }
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> &BTreeMap<NodeId, BrokerRegistration> {
        &self.brokers
    }

    /// Registered, unfenced brokers.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// A broker by id.
    pub fn broker(&self, id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Every topic, in no particular order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(id)
    }

    /// Dynamic configs of a resource (empty when none were set).
    pub fn configs(&self, resource_type: i32, resource_name: &str) -> Option<&Arc<ConfigMap>> {
        self.configs
            .get(&(resource_type, resource_name.to_string()))
    }

    /// First producer id not yet handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Every extension resource. The map is shared between images until one changes it, so
    /// `Arc::ptr_eq` tells a watcher whether anything changed.
    pub fn resources(&self) -> &Arc<ResourceMap> {
        &self.resources
    }

    /// The resources of one kind, by name.
    pub fn resources_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.resources
            .iter()
            .filter(move |((k, _), _)| k == kind)
            .map(|((_, name), value)| (name.as_str(), value.as_slice()))
    }

    /// Records that rebuild this image when applied to an empty one, in a fixed order: the
    /// content of a metadata snapshot. Two images describe the same cluster exactly when their
    /// records are equal.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for broker in self.brokers.values() {
            records.push(MetadataRecord::new(Record::RegisterBroker(
                RegisterBrokerRecord {
                    broker_id: broker.id.0,
                    incarnation_id: broker.incarnation_id.as_bytes().to_vec(),
                    broker_epoch: broker.epoch,
                    endpoints: broker.endpoints.clone(),
                    rack: broker.rack.clone(),
                    fenced: broker.fenced,
                },
            )));
        }
        let mut topics: Vec<_> = self.topics.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for topic in topics {
            records.push(MetadataRecord::new(Record::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id.as_bytes().to_vec(),
            })));
            for partition in topic.partitions.values() {
                records.push(MetadataRecord::new(Record::Partition(PartitionRecord {
                    topic_id: topic.id.as_bytes().to_vec(),
                    partition_id: partition.id.0,
                    replicas: partition.replicas.iter().map(|id| id.0).collect(),
                    isr: partition.isr.iter().map(|id| id.0).collect(),
                    leader: partition.leader.map_or(-1, |id| id.0),
                    leader_epoch: partition.leader_epoch.0,
                    partition_epoch: partition.partition_epoch,
                })));
            }
        }
        let mut configs: Vec<_> = self.configs.iter().collect();
        configs.sort_by(|a, b| a.0.cmp(b.0));
        for ((resource_type, resource_name), values) in configs {
            for (name, value) in values.iter() {
                records.push(MetadataRecord::new(Record::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                })));
            }
        }
        for ((kind, name), value) in self.resources.iter() {
            records.push(MetadataRecord::new(Record::Resource(ResourceRecord {
                kind: kind.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            })));
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::new(Record::ProducerIds(
                ProducerIdsRecord {
                    broker_id: -1,
                    broker_epoch: -1,
                    next_producer_id: self.next_producer_id,
                },
            )));
        }
        records
    }

    /// Applies one record at `offset`.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.offset = offset;
        match &record.record {
            None => Err(ApplyError::Empty { offset }),
            Some(Record::RegisterBroker(r)) => {
                self.register_broker(r);
                Ok(())
            }
            Some(Record::UnregisterBroker(r)) => {
                self.unregister_broker(r);
                Ok(())
            }
            Some(Record::BrokerFencing(r)) => {
                self.fence_broker(r);
                Ok(())
            }
            Some(Record::Topic(r)) => self.add_topic(offset, r),
            Some(Record::Partition(r)) => self.add_partition(offset, r),
            Some(Record::PartitionChange(r)) => self.change_partition(offset, r),
            Some(Record::Config(r)) => {
                self.set_config(r);
                Ok(())
            }
            Some(Record::RemoveTopic(r)) => self.remove_topic(offset, r),
            Some(Record::ProducerIds(r)) => {
                self.allocate_producer_ids(r);
                Ok(())
            }
            Some(Record::Resource(r)) => {
                let resources = Arc::make_mut(&mut self.resources);
                let key = (r.kind.clone(), r.name.clone());
                match &r.value {
                    Some(value) => resources.insert(key, value.clone()),
                    None => resources.remove(&key),
                };
                Ok(())
            }
        }
    }

    fn register_broker(&mut self, r: &RegisterBrokerRecord) {
        let id = NodeId(r.broker_id);
        let registration = BrokerRegistration {
            id,
            incarnation_id: Uuid::from_slice(&r.incarnation_id).unwrap_or_default(),
            epoch: r.broker_epoch,
            endpoints: r.endpoints.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
        };
        Arc::make_mut(&mut self.brokers).insert(id, registration);
    }

    fn unregister_broker(&mut self, r: &UnregisterBrokerRecord) {
        let brokers = Arc::make_mut(&mut self.brokers);
        let id = NodeId(r.broker_id);
        if brokers.get(&id).is_some_and(|b| b.epoch == r.broker_epoch) {
            brokers.remove(&id);
        }
    }

    fn fence_broker(&mut self, r: &BrokerFencingRecord) {
        let brokers = Arc::make_mut(&mut self.brokers);
        if let Some(broker) = brokers.get_mut(&NodeId(r.broker_id))
            && broker.epoch == r.broker_epoch
        {
            broker.fenced = r.fenced;
        }
    }

    fn topic_id(offset: i64, bytes: &[u8]) -> Result<Uuid, ApplyError> {
        topic_id_from_bytes(bytes).ok_or(ApplyError::BadTopicId { offset })
    }

    fn add_topic(&mut self, offset: i64, r: &TopicRecord) -> Result<(), ApplyError> {
        let id = Self::topic_id(offset, &r.topic_id)?;
        if self
            .topic_ids
            .get(&r.name)
            .is_some_and(|existing| *existing != id)
        {
            return Err(ApplyError::DuplicateTopicName {
                offset,
                name: r.name.clone(),
            });
        }
        Arc::make_mut(&mut self.topic_ids).insert(r.name.clone(), id);
        Arc::make_mut(&mut self.topics).insert(
            id,
            Arc::new(TopicImage {
                name: r.name.clone(),
                id,
                partitions: BTreeMap::new(),
            }),
        );
        Ok(())
    }

    fn topic_mut(&mut self, offset: i64, topic_id: Uuid) -> Result<&mut TopicImage, ApplyError> {
        Arc::make_mut(&mut self.topics)
            .get_mut(&topic_id)
            .map(Arc::make_mut)
            .ok_or(ApplyError::UnknownTopic { offset, topic_id })
    }

    fn add_partition(&mut self, offset: i64, r: &PartitionRecord) -> Result<(), ApplyError> {
        let topic_id = Self::topic_id(offset, &r.topic_id)?;
        let topic = self.topic_mut(offset, topic_id)?;
        topic.partitions.insert(
            r.partition_id,
            PartitionState {
                id: PartitionId(r.partition_id),
                replicas: r.replicas.iter().copied().map(NodeId).collect(),
                isr: r.isr.iter().copied().map(NodeId).collect(),
                leader: (r.leader >= 0).then_some(NodeId(r.leader)),
                leader_epoch: LeaderEpoch(r.leader_epoch),
                partition_epoch: r.partition_epoch,
            },
        );
        Ok(())
    }

    fn change_partition(
        &mut self,
        offset: i64,
        r: &PartitionChangeRecord,
    ) -> Result<(), ApplyError> {
        let topic_id = Self::topic_id(offset, &r.topic_id)?;
        let topic = self.topic_mut(offset, topic_id)?;
        let partition =
            topic
                .partitions
                .get_mut(&r.partition_id)
                .ok_or(ApplyError::UnknownPartition {
                    offset,
                    topic_id,
                    partition: r.partition_id,
                })?;
        if let Some(leader) = r.leader {
            partition.leader = (leader >= 0).then_some(NodeId(leader));
            partition.leader_epoch = LeaderEpoch(partition.leader_epoch.0 + 1);
        }
        if let Some(isr) = &r.isr {
            partition.isr = isr.ids.iter().copied().map(NodeId).collect();
        }
        if let Some(replicas) = &r.replicas {
            partition.replicas = replicas.ids.iter().copied().map(NodeId).collect();
        }
        partition.partition_epoch += 1;
        Ok(())
    }

    fn set_config(&mut self, r: &ConfigRecord) {
        let configs = Arc::make_mut(&mut self.configs);
        let key = (r.resource_type, r.resource_name.clone());
        let map = Arc::make_mut(configs.entry(key.clone()).or_default());
        match &r.value {
            Some(value) => {
                map.insert(r.name.clone(), value.clone());
            }
            None => {
                map.remove(&r.name);
            }
        }
        if map.is_empty() {
            configs.remove(&key);
        }
    }

    fn remove_topic(&mut self, offset: i64, r: &RemoveTopicRecord) -> Result<(), ApplyError> {
        let topic_id = Self::topic_id(offset, &r.topic_id)?;
        let removed = Arc::make_mut(&mut self.topics)
            .remove(&topic_id)
            .ok_or(ApplyError::UnknownTopic { offset, topic_id })?;
        Arc::make_mut(&mut self.topic_ids).remove(&removed.name);
        Arc::make_mut(&mut self.configs)
            .remove(&(crate::records::CONFIG_RESOURCE_TOPIC, removed.name.clone()));
        Ok(())
    }

    fn allocate_producer_ids(&mut self, r: &ProducerIdsRecord) {
        self.next_producer_id = self.next_producer_id.max(r.next_producer_id);
    }
}
