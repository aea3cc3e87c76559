//! Metadata records: the entries of the metadata log. Applying them in order yields the
//! [`MetadataImage`](crate::image::MetadataImage).
//!
//! Every record is a prost message inside the [`MetadataRecord`] envelope, which carries a format
//! version. Oneof tags are explicit and never reused: a removed record type keeps its tag retired.
//! Topic ids travel as 16 raw bytes.

use prost::Message;
use uuid::Uuid;

/// The record format version written by this build.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// Resource type code of a topic in [`ConfigRecord`] (Kafka's `ConfigResource.Type.TOPIC`).
pub const CONFIG_RESOURCE_TOPIC: i32 = 2;
/// Resource type code of a broker in [`ConfigRecord`] (Kafka's `ConfigResource.Type.BROKER`).
pub const CONFIG_RESOURCE_BROKER: i32 = 4;

/// The envelope of every metadata log entry.
#[derive(Clone, PartialEq, Message)]
pub struct MetadataRecord {
    /// Format version of the record ([`RECORD_FORMAT_VERSION`] when written by this build).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The record itself.
    #[prost(oneof = "Record", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
    pub record: Option<Record>,
}

/// Every kind of metadata record.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Record {
    /// A broker announced itself.
    #[prost(message, tag = "10")]
    RegisterBroker(RegisterBrokerRecord),
    /// A broker was removed from the cluster.
    #[prost(message, tag = "11")]
    UnregisterBroker(UnregisterBrokerRecord),
    /// A broker was fenced or unfenced.
    #[prost(message, tag = "12")]
    BrokerFencing(BrokerFencingRecord),
    /// A topic was created.
    #[prost(message, tag = "13")]
    Topic(TopicRecord),
    /// A partition was created.
    #[prost(message, tag = "14")]
    Partition(PartitionRecord),
    /// A partition's leader, ISR or replicas changed.
    #[prost(message, tag = "15")]
    PartitionChange(PartitionChangeRecord),
    /// A config was set or removed.
    #[prost(message, tag = "16")]
    Config(ConfigRecord),
    /// A topic and all its partitions were deleted.
    #[prost(message, tag = "17")]
    RemoveTopic(RemoveTopicRecord),
    /// A block of producer ids was handed out.
    #[prost(message, tag = "18")]
    ProducerIds(ProducerIdsRecord),
    /// A named resource of a broker extension was set or removed.
    #[prost(message, tag = "19")]
    Resource(ResourceRecord),
}

/// A listener a broker advertises.
#[derive(Clone, PartialEq, Message)]
pub struct Endpoint {
    /// Listener name, e.g. `PLAINTEXT`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Advertised host.
    #[prost(string, tag = "2")]
    pub host: String,
    /// Advertised port.
    #[prost(uint32, tag = "3")]
    pub port: u32,
    /// Kafka security protocol id (0 = PLAINTEXT).
    #[prost(int32, tag = "4")]
    pub security_protocol: i32,
}

/// A broker registered (or re-registered after a restart, with a new incarnation).
#[derive(Clone, PartialEq, Message)]
pub struct RegisterBrokerRecord {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// Random id of this process run; a new one means the broker restarted.
    #[prost(bytes = "vec", tag = "2")]
    pub incarnation_id: Vec<u8>,
    /// Broker epoch: the metadata offset at which this registration was accepted.
    #[prost(int64, tag = "3")]
    pub broker_epoch: i64,
    /// Advertised listeners.
    #[prost(message, repeated, tag = "4")]
    pub endpoints: Vec<Endpoint>,
    /// Rack, if configured.
    #[prost(string, optional, tag = "5")]
    pub rack: Option<String>,
    /// Whether the broker starts fenced.
    #[prost(bool, tag = "6")]
    pub fenced: bool,
}

/// A broker left the cluster for good.
#[derive(Clone, PartialEq, Message)]
pub struct UnregisterBrokerRecord {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// The epoch of the registration being removed.
    #[prost(int64, tag = "2")]
    pub broker_epoch: i64,
}

/// A broker's fencing state changed.
#[derive(Clone, PartialEq, Message)]
pub struct BrokerFencingRecord {
    /// Node id.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// The registration epoch this applies to.
    #[prost(int64, tag = "2")]
    pub broker_epoch: i64,
    /// True to fence, false to unfence.
    #[prost(bool, tag = "3")]
    pub fenced: bool,
}

/// A topic exists with this name and id.
#[derive(Clone, PartialEq, Message)]
pub struct TopicRecord {
    /// Topic name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub topic_id: Vec<u8>,
}

/// A partition exists with this assignment and state.
#[derive(Clone, PartialEq, Message)]
pub struct PartitionRecord {
    /// Owning topic id.
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    /// Partition index.
    #[prost(int32, tag = "2")]
    pub partition_id: i32,
    /// Replica node ids, preferred leader first.
    #[prost(int32, repeated, tag = "3")]
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    #[prost(int32, repeated, tag = "4")]
    pub isr: Vec<i32>,
    /// Leader node id, -1 when offline.
    #[prost(int32, tag = "5")]
    pub leader: i32,
    /// Leader epoch.
    #[prost(int32, tag = "6")]
    pub leader_epoch: i32,
    /// Partition epoch, bumped on every change.
    #[prost(int32, tag = "7")]
    pub partition_epoch: i32,
}

/// A change to an existing partition; absent fields are unchanged. The leader epoch is bumped
/// when `leader` is set; the partition epoch on every change.
#[derive(Clone, PartialEq, Message)]
pub struct PartitionChangeRecord {
    /// Owning topic id.
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    /// Partition index.
    #[prost(int32, tag = "2")]
    pub partition_id: i32,
    /// New leader, if it changed.
    #[prost(int32, optional, tag = "3")]
    pub leader: Option<i32>,
    /// New ISR, if it changed.
    #[prost(message, optional, tag = "4")]
    pub isr: Option<ReplicaList>,
    /// New replica set, if it changed.
    #[prost(message, optional, tag = "5")]
    pub replicas: Option<ReplicaList>,
}

/// A list of node ids (wrapped so that "absent" and "empty" differ).
#[derive(Clone, PartialEq, Message)]
pub struct ReplicaList {
    /// Node ids.
    #[prost(int32, repeated, tag = "1")]
    pub ids: Vec<i32>,
}

/// A dynamic config value was set (`value` present) or removed (`value` absent).
#[derive(Clone, PartialEq, Message)]
pub struct ConfigRecord {
    /// [`CONFIG_RESOURCE_TOPIC`] or [`CONFIG_RESOURCE_BROKER`].
    #[prost(int32, tag = "1")]
    pub resource_type: i32,
    /// Topic name, broker id as a string, or `""` for the cluster-wide broker default.
    #[prost(string, tag = "2")]
    pub resource_name: String,
    /// Config name (Kafka's name).
    #[prost(string, tag = "3")]
    pub name: String,
    /// New value, absent to remove the dynamic value.
    #[prost(string, optional, tag = "4")]
    pub value: Option<String>,
}

/// A topic was deleted.
#[derive(Clone, PartialEq, Message)]
pub struct RemoveTopicRecord {
    /// Topic id, 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
}

/// The producer ids below `next_producer_id` are handed out.
#[derive(Clone, PartialEq, Message)]
pub struct ProducerIdsRecord {
    /// The broker that received the block.
    #[prost(int32, tag = "1")]
    pub broker_id: i32,
    /// That broker's epoch.
    #[prost(int64, tag = "2")]
    pub broker_epoch: i64,
    /// First producer id not yet handed out.
    #[prost(int64, tag = "3")]
    pub next_producer_id: i64,
}

/// A named resource kept for an extension of the broker (the CloudEvents brokers and triggers),
/// opaque to the controller: set (`value` present) or removed (`value` absent). Its kind and name
/// identify it; setting it again replaces the value.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceRecord {
    /// What it is, e.g. `cloudevents.broker`.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// Its name within the kind.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The value, absent to remove it.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub value: Option<Vec<u8>>,
}

/// The payload of one raft log entry: the records of one controller decision batch, applied
/// atomically at the entry's index (the metadata offset they all share).
#[derive(Clone, PartialEq, Message)]
pub struct MetadataBatch {
    /// The records, in order.
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<MetadataRecord>,
}

impl MetadataRecord {
    /// Wraps a record in an envelope of the current format version.
    pub fn new(record: Record) -> MetadataRecord {
        MetadataRecord {
            version: RECORD_FORMAT_VERSION,
            record: Some(record),
        }
    }
}

/// Converts a stored 16-byte topic id.
pub fn topic_id_from_bytes(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}
