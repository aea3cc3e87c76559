//! Controller decisions: turns requests into the records that carry them out.
//!
//! Every function here is pure: it reads the current image and returns records (or a refusal)
//! without touching anything. The quorum then commits the records and every node applies them, so
//! a decision is made once, on the controller, and is never re-derived elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionState, TopicImage};
use crate::records::{
    BrokerFencingRecord, ConfigRecord, Endpoint, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, Record, RegisterBrokerRecord, RemoveTopicRecord,
    ReplicaList, ResourceRecord, TopicRecord,
};

/// Longest legal topic name, as Kafka (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Most partitions a single CreateTopics/CreatePartitions may ask for; protects the metadata log
/// from one request with an absurd count.
pub const PARTITIONS_PER_REQUEST_MAX: i32 = 100_000;
/// Producer ids handed to a broker per ProducerIds record, as Kafka's `PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Longest kind or name of an extension resource, in bytes.
pub const RESOURCE_NAME_LENGTH_MAX: usize = 512;
/// Largest value of an extension resource, in bytes: it lives in every image and snapshot.
pub const RESOURCE_VALUE_BYTES_MAX: usize = 256 * 1024;

/// Why the controller refused a request, mapped to a Kafka error code by the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// INVALID_TOPIC_EXCEPTION.
    #[error("{0}")]
    InvalidTopic(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    /// UNKNOWN_TOPIC_ID.
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// NOT_CONTROLLER / the quorum could not commit: retriable.
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
}

/// Cluster defaults the controller applies when a request leaves a value unset.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// `num.partitions`.
    pub default_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
}

/// One topic in a CreateTopics request, already converted from the wire.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count, `None` for `num.partitions`.
    pub partitions: Option<i32>,
    /// Replication factor, `None` for `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Explicit replica assignment by partition, replacing the two counts.
    pub assignments: BTreeMap<i32, Vec<NodeId>>,
    /// Topic configs, already validated by the broker.
    pub configs: Vec<(String, String)>,
}

/// What creating a topic produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// The new topic id.
    pub topic_id: Uuid,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
}

/// Checks a topic name the way Kafka's `Topic.validate` does.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_LENGTH_MAX} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Kafka treats `.` and `_` as the same character when checking for colliding metric names.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// Registers (or re-registers) a broker. The registration starts fenced: the broker is unfenced
/// by its first heartbeat once it has caught up with the metadata log (as KRaft does), so a
/// broker never leads anything before it knows the cluster.
///
/// A broker that registers again with a new incarnation restarted: whatever it led is led
/// elsewhere now (its unflushed log tail may be gone), exactly as if it had been fenced.
pub fn register_broker(
    image: &MetadataImage,
    broker_id: NodeId,
    incarnation_id: Uuid,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
) -> Vec<MetadataRecord> {
    let broker_epoch = image.offset + 1;
    let mut records = Vec::new();
    if let Some(previous) = image.broker(broker_id)
        && !previous.fenced
    {
        records.extend(move_away_from(image, broker_id));
    }
    records.push(MetadataRecord::new(Record::RegisterBroker(
        RegisterBrokerRecord {
            broker_id: broker_id.0,
            incarnation_id: incarnation_id.as_bytes().to_vec(),
            broker_epoch,
            endpoints,
            rack,
            fenced: true,
        },
    )));
    records
}

/// Every topic in name order, so that decisions list their records deterministically.
fn topics_by_name(image: &MetadataImage) -> Vec<&std::sync::Arc<TopicImage>> {
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

fn is_live(image: &MetadataImage, id: NodeId) -> bool {
    image.broker(id).is_some_and(|b| !b.fenced)
}

fn partition_change(
    topic: &TopicImage,
    partition: &PartitionState,
    leader: Option<Option<NodeId>>,
    isr: Option<Vec<NodeId>>,
) -> MetadataRecord {
    MetadataRecord::new(Record::PartitionChange(PartitionChangeRecord {
        topic_id: topic.id.as_bytes().to_vec(),
        partition_id: partition.id.0,
        leader: leader.map(|l| l.map_or(-1, |id| id.0)),
        isr: isr.map(|ids| ReplicaList {
            ids: ids.iter().map(|id| id.0).collect(),
        }),
        replicas: None,
    }))
}

/// Whether `topic` allows an out-of-sync replica to lead (`unclean.leader.election.enable`: the
/// topic's own config, else the cluster-wide dynamic default; Kafka's default is false). Static
/// broker configs are not in the image, so they cannot take part in a decision every voter
/// must make alike.
pub fn unclean_election_allowed(image: &MetadataImage, topic: &str) -> bool {
    const NAME: &str = "unclean.leader.election.enable";
    let set = |resource_type: i32, name: &str| {
        image.configs(resource_type, name).and_then(|configs| {
            configs
                .get(NAME)
                .map(|v| v.trim().eq_ignore_ascii_case("true"))
        })
    };
    set(crate::records::CONFIG_RESOURCE_TOPIC, topic)
        .or_else(|| set(crate::records::CONFIG_RESOURCE_BROKER, ""))
        .unwrap_or(false)
}

/// An unclean leader for a leaderless partition: the first live replica (in preferred order)
/// other than `excluded`, which then forms the ISR alone (Kafka's unclean election). Records
/// past the old high watermark that it lacks are lost; that is what the topic opted into.
fn unclean_candidate(
    image: &MetadataImage,
    partition: &PartitionState,
    excluded: Option<NodeId>,
) -> Option<NodeId> {
    partition
        .replicas
        .iter()
        .copied()
        .find(|id| Some(*id) != excluded && is_live(image, *id))
}

/// The partition changes that take `broker` out of service: every partition it leads gets the
/// first live in-sync replica (in preferred order) as leader, or none; it leaves every ISR it is
/// in, except as the last member (so that it can lead again when it returns: no unclean
/// election, unless the topic enables `unclean.leader.election.enable`).
fn move_away_from(image: &MetadataImage, broker: NodeId) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in topics_by_name(image) {
        for partition in topic.partitions.values() {
            let in_isr = partition.isr.contains(&broker);
            let shrunk_isr: Vec<NodeId> = partition
                .isr
                .iter()
                .copied()
                .filter(|id| *id != broker)
                .collect();
            if partition.leader == Some(broker) {
                let successor = partition
                    .replicas
                    .iter()
                    .copied()
                    .find(|id| *id != broker && shrunk_isr.contains(id) && is_live(image, *id));
                if successor.is_none()
                    && unclean_election_allowed(image, &topic.name)
                    && let Some(unclean) = unclean_candidate(image, partition, Some(broker))
                {
                    records.push(partition_change(
                        topic,
                        partition,
                        Some(Some(unclean)),
                        Some(vec![unclean]),
                    ));
                    continue;
                }
                let isr = (!shrunk_isr.is_empty() && in_isr).then_some(shrunk_isr);
                records.push(partition_change(topic, partition, Some(successor), isr));
            } else if in_isr && !shrunk_isr.is_empty() {
                records.push(partition_change(topic, partition, None, Some(shrunk_isr)));
            }
        }
    }
    records
}

/// Fences a broker whose session expired, or that asked for a controlled shutdown: its
/// leaderships move to other in-sync replicas and it leaves the ISRs. Nothing when the epoch is
/// stale or the broker is fenced already.
pub fn fence_broker(
    image: &MetadataImage,
    broker_id: NodeId,
    broker_epoch: i64,
) -> Vec<MetadataRecord> {
    let Some(broker) = image.broker(broker_id) else {
        return Vec::new();
    };
    if broker.epoch != broker_epoch || broker.fenced {
        return Vec::new();
    }
    let mut records = move_away_from(image, broker_id);
    records.push(MetadataRecord::new(Record::BrokerFencing(
        BrokerFencingRecord {
            broker_id: broker_id.0,
            broker_epoch,
            fenced: true,
        },
    )));
    records
}

/// Unfences a broker, and gives it the leadership of every leaderless partition whose ISR it is
/// in (it was the last in-sync replica when that partition went offline).
pub fn unfence_broker(
    image: &MetadataImage,
    broker_id: NodeId,
    broker_epoch: i64,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::new(Record::BrokerFencing(
        BrokerFencingRecord {
            broker_id: broker_id.0,
            broker_epoch,
            fenced: false,
        },
    ))];
    for topic in topics_by_name(image) {
        for partition in topic.partitions.values() {
            if partition.leader.is_none() && partition.isr.contains(&broker_id) {
                records.push(partition_change(
                    topic,
                    partition,
                    Some(Some(broker_id)),
                    None,
                ));
            } else if partition.leader.is_none()
                && partition.replicas.contains(&broker_id)
                && !partition.isr.iter().any(|id| is_live(image, *id))
                && unclean_election_allowed(image, &topic.name)
            {
                // No in-sync replica is live and the topic prefers availability.
                records.push(partition_change(
                    topic,
                    partition,
                    Some(Some(broker_id)),
                    Some(vec![broker_id]),
                ));
            }
        }
    }
    records
}

/// What a broker's heartbeat decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The broker's epoch is not its current registration: it must register again.
    StaleBrokerEpoch,
    /// The broker stays or becomes this.
    Fenced(bool),
}

/// Decides a broker heartbeat: a fenced broker that has applied the metadata log up to its own
/// registration is unfenced (KRaft's rule: it knows the cluster, so it may lead).
pub fn broker_heartbeat(
    image: &MetadataImage,
    broker_id: NodeId,
    broker_epoch: i64,
    metadata_offset: i64,
) -> (HeartbeatOutcome, Vec<MetadataRecord>) {
    let Some(broker) = image.broker(broker_id) else {
        return (HeartbeatOutcome::StaleBrokerEpoch, Vec::new());
    };
    if broker.epoch != broker_epoch {
        return (HeartbeatOutcome::StaleBrokerEpoch, Vec::new());
    }
    if broker.fenced && metadata_offset >= broker_epoch {
        return (
            HeartbeatOutcome::Fenced(false),
            unfence_broker(image, broker_id, broker_epoch),
        );
    }
    (HeartbeatOutcome::Fenced(broker.fenced), Vec::new())
}

/// Why an AlterPartition change was refused (each maps to Kafka's error of the same name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    /// STALE_BROKER_EPOCH: the requesting broker re-registered since.
    #[error("the broker epoch is stale")]
    StaleBrokerEpoch,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// NOT_LEADER_OR_FOLLOWER: the requester does not lead the partition.
    #[error("the requesting broker is not the partition leader")]
    NotLeaderOrFollower,
    /// FENCED_LEADER_EPOCH: the request names an older leader epoch.
    #[error("leader epoch {requested} is not the current {current}")]
    FencedLeaderEpoch {
        /// What the request said.
        requested: i32,
        /// The image's leader epoch.
        current: i32,
    },
    /// INVALID_UPDATE_VERSION: the request was based on an older partition epoch.
    #[error("partition epoch {requested} is not the current {current}")]
    InvalidUpdateVersion {
        /// What the request said.
        requested: i32,
        /// The image's partition epoch.
        current: i32,
    },
    /// INELIGIBLE_REPLICA: a replica added to the ISR is fenced or unregistered.
    #[error("replica {0} is not eligible to join the ISR")]
    IneligibleReplica(NodeId),
    /// INVALID_REQUEST: the new ISR is malformed.
    #[error("{0}")]
    InvalidRequest(String),
}

/// An ISR change a partition leader proposes (KIP-497's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    /// The requesting broker, which must lead the partition.
    pub broker_id: NodeId,
    /// Its registration epoch.
    pub broker_epoch: i64,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// The leader epoch the leader is in.
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub new_isr: Vec<NodeId>,
}

/// A partition's state after an accepted AlterPartition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlteredPartition {
    /// Leader.
    pub leader: Option<NodeId>,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch after the change.
    pub partition_epoch: i32,
    /// ISR after the change.
    pub isr: Vec<NodeId>,
}

/// Decides an AlterPartition. The leader and partition epochs fence proposals made against an
/// older state: only the current leader, in its current epoch, changes the ISR it last saw.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartition,
) -> Result<(AlteredPartition, Vec<MetadataRecord>), AlterPartitionError> {
    let broker = image
        .broker(request.broker_id)
        .ok_or(AlterPartitionError::StaleBrokerEpoch)?;
    if broker.epoch != request.broker_epoch {
        return Err(AlterPartitionError::StaleBrokerEpoch);
    }
    let topic = image
        .topic_by_id(&request.topic_id)
        .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
    let partition = topic
        .partitions
        .get(&request.partition)
        .ok_or(AlterPartitionError::UnknownTopicOrPartition)?;
    if partition.leader != Some(request.broker_id) {
        return Err(AlterPartitionError::NotLeaderOrFollower);
    }
    if request.leader_epoch != partition.leader_epoch.0 {
        return Err(AlterPartitionError::FencedLeaderEpoch {
            requested: request.leader_epoch,
            current: partition.leader_epoch.0,
        });
    }
    if request.partition_epoch != partition.partition_epoch {
        return Err(AlterPartitionError::InvalidUpdateVersion {
            requested: request.partition_epoch,
            current: partition.partition_epoch,
        });
    }
    let distinct: BTreeSet<_> = request.new_isr.iter().collect();
    if distinct.len() != request.new_isr.len() {
        return Err(AlterPartitionError::InvalidRequest(
            "the proposed ISR lists a replica twice".into(),
        ));
    }
    if !request.new_isr.contains(&request.broker_id) {
        return Err(AlterPartitionError::InvalidRequest(
            "the proposed ISR does not include the leader".into(),
        ));
    }
    if let Some(outsider) = request
        .new_isr
        .iter()
        .find(|id| !partition.replicas.contains(id))
    {
        return Err(AlterPartitionError::InvalidRequest(format!(
            "broker {outsider} in the proposed ISR is not a replica"
        )));
    }
    if let Some(ineligible) = request
        .new_isr
        .iter()
        .find(|id| !partition.isr.contains(id) && !is_live(image, **id))
    {
        return Err(AlterPartitionError::IneligibleReplica(*ineligible));
    }
    if request.new_isr == partition.isr {
        return Ok((
            AlteredPartition {
                leader: partition.leader,
                leader_epoch: partition.leader_epoch.0,
                partition_epoch: partition.partition_epoch,
                isr: partition.isr.clone(),
            },
            Vec::new(),
        ));
    }
    let record = partition_change(topic, partition, None, Some(request.new_isr.clone()));
    Ok((
        AlteredPartition {
            leader: partition.leader,
            leader_epoch: partition.leader_epoch.0,
            partition_epoch: partition.partition_epoch + 1,
            isr: request.new_isr.clone(),
        },
        vec![record],
    ))
}

/// Why a preferred-leader election did not happen for a partition (Kafka's ElectLeaders codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// ELECTION_NOT_NEEDED: the preferred replica leads already.
    #[error("the preferred replica already leads")]
    ElectionNotNeeded,
    /// PREFERRED_LEADER_NOT_AVAILABLE: it is fenced or out of the ISR.
    #[error("the preferred replica is not available")]
    PreferredLeaderNotAvailable,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: an unclean election found no live replica.
    #[error("no live replica can lead")]
    EligibleLeadersNotAvailable,
}

/// One partition's preferred-leader election result, by (topic id, partition index).
pub type ElectionResult = ((Uuid, i32), Result<(), ElectionError>);

/// Preferred-leader election: moves each partition's leadership to its first replica when that
/// replica is live and in sync. `partitions` limits it to some partitions (`None`: all).
pub fn elect_preferred_leaders(
    image: &MetadataImage,
    partitions: Option<&[(Uuid, i32)]>,
) -> (Vec<ElectionResult>, Vec<MetadataRecord>) {
    let mut results = Vec::new();
    let mut records = Vec::new();
    let elect = |topic: &TopicImage, partition: &PartitionState| {
        let Some(&preferred) = partition.replicas.first() else {
            return (Err(ElectionError::PreferredLeaderNotAvailable), None);
        };
        if partition.leader == Some(preferred) {
            (Err(ElectionError::ElectionNotNeeded), None)
        } else if partition.isr.contains(&preferred) && is_live(image, preferred) {
            let record = partition_change(topic, partition, Some(Some(preferred)), None);
            (Ok(()), Some(record))
        } else {
            (Err(ElectionError::PreferredLeaderNotAvailable), None)
        }
    };
    let mut considered = Vec::new();
    match partitions {
        Some(wanted) => {
            for (topic_id, index) in wanted {
                match image
                    .topic_by_id(topic_id)
                    .and_then(|t| t.partitions.get(index).map(|p| (t, p)))
                {
                    Some(found) => considered.push(found),
                    None => results.push((
                        (*topic_id, *index),
                        Err(ElectionError::UnknownTopicOrPartition),
                    )),
                }
            }
        }
        None => {
            for topic in topics_by_name(image) {
                for partition in topic.partitions.values() {
                    considered.push((topic, partition));
                }
            }
        }
    }
    for (topic, partition) in considered {
        let (result, record) = elect(topic, partition);
        results.push(((topic.id, partition.id.0), result));
        records.extend(record);
    }
    (results, records)
}

/// Unclean election (ElectLeaders with election type UNCLEAN): each leaderless partition gets a
/// live in-sync replica if one exists, else the first live replica, which then forms the ISR
/// alone, whatever the topic's `unclean.leader.election.enable` (the operator asked for it, as
/// Kafka's `kafka-leader-election --election-type UNCLEAN`). A partition with a leader needs no
/// election. `partitions` limits it to some partitions (`None`: all).
pub fn elect_unclean_leaders(
    image: &MetadataImage,
    partitions: Option<&[(Uuid, i32)]>,
) -> (Vec<ElectionResult>, Vec<MetadataRecord>) {
    let mut results = Vec::new();
    let mut records = Vec::new();
    let mut considered = Vec::new();
    match partitions {
        Some(wanted) => {
            for (topic_id, index) in wanted {
                match image
                    .topic_by_id(topic_id)
                    .and_then(|t| t.partitions.get(index).map(|p| (t, p)))
                {
                    Some(found) => considered.push(found),
                    None => results.push((
                        (*topic_id, *index),
                        Err(ElectionError::UnknownTopicOrPartition),
                    )),
                }
            }
        }
        None => {
            for topic in topics_by_name(image) {
                for partition in topic.partitions.values() {
                    considered.push((topic, partition));
                }
            }
        }
    }
    for (topic, partition) in considered {
        let key = (topic.id, partition.id.0);
        if partition.leader.is_some() {
            results.push((key, Err(ElectionError::ElectionNotNeeded)));
            continue;
        }
        let clean = partition
            .replicas
            .iter()
            .copied()
            .find(|id| partition.isr.contains(id) && is_live(image, *id));
        match clean {
            Some(leader) => {
                records.push(partition_change(topic, partition, Some(Some(leader)), None));
                results.push((key, Ok(())));
            }
            None => match unclean_candidate(image, partition, None) {
                Some(leader) => {
                    records.push(partition_change(
                        topic,
                        partition,
                        Some(Some(leader)),
                        Some(vec![leader]),
                    ));
                    results.push((key, Ok(())));
                }
                None => results.push((key, Err(ElectionError::EligibleLeadersNotAvailable))),
            },
        }
    }
    (results, records)
}

/// Places `partitions` partitions with `replication_factor` replicas each over `brokers`,
/// starting at `first_partition`. Replicas of one partition are distinct; preferred leaders
/// rotate over the brokers so leadership spreads evenly.
pub fn place_replicas(
    brokers: &[NodeId],
    first_partition: i32,
    partitions: i32,
    replication_factor: i16,
    seed: usize,
) -> BTreeMap<i32, Vec<NodeId>> {
    let count = brokers.len();
    let mut placement = BTreeMap::new();
    for p in first_partition..first_partition + partitions {
        let start = (seed + p as usize) % count;
        let replicas = (0..replication_factor as usize)
            .map(|i| brokers[(start + i) % count])
            .collect();
        placement.insert(p, replicas);
    }
    placement
}

/// Live brokers in placement order: racks take turns (rack a's first broker, rack b's first, …,
/// then each rack's second), so that consecutive brokers, and hence the replicas of one
/// partition, sit in different racks whenever there are enough racks. Brokers without a rack
/// count as one more rack.
fn live_broker_ids(image: &MetadataImage) -> Vec<NodeId> {
    let mut racks: BTreeMap<Option<&str>, Vec<NodeId>> = BTreeMap::new();
    for broker in image.live_brokers() {
        racks
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker.id);
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    let mut ordered = Vec::new();
    for depth in 0..deepest {
        for brokers in racks.values() {
            if let Some(id) = brokers.get(depth) {
                ordered.push(*id);
            }
        }
    }
    ordered
}

fn check_assignment(
    image: &MetadataImage,
    partition: i32,
    replicas: &[NodeId],
) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "The manual partition assignment includes an empty replica list for partition {partition}."
        )));
    }
    let distinct: BTreeSet<_> = replicas.iter().collect();
    if distinct.len() != replicas.len() {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "The manual partition assignment includes the broker {} more than once for partition {partition}.",
            replicas[0]
        )));
    }
    for id in replicas {
        if image.broker(*id).is_none() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}

fn partition_records(
    topic_id: Uuid,
    placement: &BTreeMap<i32, Vec<NodeId>>,
) -> Vec<MetadataRecord> {
    placement
        .iter()
        .map(|(partition, replicas)| {
            let ids: Vec<i32> = replicas.iter().map(|r| r.0).collect();
            MetadataRecord::new(Record::Partition(PartitionRecord {
                topic_id: topic_id.as_bytes().to_vec(),
                partition_id: *partition,
                leader: ids[0],
                isr: ids.clone(),
                replicas: ids,
                leader_epoch: 0,
                partition_epoch: 0,
            }))
        })
        .collect()
}

/// Decides the records that create `topic` with id `topic_id`, or why it cannot be created.
pub fn create_topic(
    image: &MetadataImage,
    settings: &ControllerSettings,
    topic: &NewTopic,
    pending_names: &BTreeSet<String>,
    topic_id: Uuid,
) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
    validate_topic_name(&topic.name)?;
    if image.topic(&topic.name).is_some() || pending_names.contains(&topic.name) {
        return Err(ControllerError::TopicAlreadyExists(topic.name.clone()));
    }
    let key = collision_key(&topic.name);
    if let Some(existing) = image
        .topics()
        .map(|t| t.name.as_str())
        .chain(pending_names.iter().map(String::as_str))
        .find(|existing| collision_key(existing) == key)
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic '{}' collides with existing topic: {existing}",
            topic.name
        )));
    }
    let brokers = live_broker_ids(image);
    let placement = if topic.assignments.is_empty() {
        let partitions = topic.partitions.unwrap_or(settings.default_partitions);
        let replication_factor = topic
            .replication_factor
            .unwrap_or(settings.default_replication_factor);
        if partitions <= 0 || partitions > PARTITIONS_PER_REQUEST_MAX {
            return Err(ControllerError::InvalidPartitions(
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        if replication_factor <= 0 {
            return Err(ControllerError::InvalidReplicationFactor(
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        if replication_factor as usize > brokers.len() {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            )));
        }
        let seed = topic.name.bytes().map(usize::from).sum::<usize>();
        place_replicas(&brokers, 0, partitions, replication_factor, seed)
    } else {
        if topic.partitions.is_some_and(|p| p != -1)
            || topic.replication_factor.is_some_and(|r| r != -1)
        {
            return Err(ControllerError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        for (index, (partition, replicas)) in topic.assignments.iter().enumerate() {
            if *partition != index as i32 {
                return Err(ControllerError::InvalidReplicaAssignment(
                    "partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            check_assignment(image, *partition, replicas)?;
        }
        let first_len = topic.assignments.values().next().map_or(0, Vec::len);
        if topic.assignments.values().any(|r| r.len() != first_len) {
            return Err(ControllerError::InvalidReplicaAssignment(
                "All partitions should have the same number of replicas".into(),
            ));
        }
        topic.assignments.clone()
    };
    let mut records = vec![MetadataRecord::new(Record::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id: topic_id.as_bytes().to_vec(),
    }))];
    for (name, value) in &topic.configs {
        records.push(MetadataRecord::new(Record::Config(ConfigRecord {
            resource_type: crate::records::CONFIG_RESOURCE_TOPIC,
            resource_name: topic.name.clone(),
            name: name.clone(),
            value: Some(value.clone()),
        })));
    }
    records.extend(partition_records(topic_id, &placement));
    let replication_factor = placement.values().next().map_or(0, Vec::len) as i16;
    Ok((
        CreatedTopic {
            topic_id,
            partitions: placement.len() as i32,
            replication_factor,
        },
        records,
    ))
}

/// Decides the record that deletes a topic.
pub fn delete_topic(
    image: &MetadataImage,
    topic_id: Uuid,
) -> Result<MetadataRecord, ControllerError> {
    if image.topic_by_id(&topic_id).is_none() {
        return Err(ControllerError::UnknownTopicId);
    }
    Ok(MetadataRecord::new(Record::RemoveTopic(
        RemoveTopicRecord {
            topic_id: topic_id.as_bytes().to_vec(),
        },
    )))
}

/// Decides the records that grow a topic to `new_total` partitions.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    new_total: i32,
    assignments: Option<Vec<Vec<NodeId>>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topic(name).ok_or(ControllerError::UnknownTopic)?;
    let current = topic.partitions.len() as i32;
    if new_total < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {new_total}."
        )));
    }
    if new_total == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    if new_total - current > PARTITIONS_PER_REQUEST_MAX {
        return Err(ControllerError::InvalidPartitions(format!(
            "Cannot add more than {PARTITIONS_PER_REQUEST_MAX} partitions at once."
        )));
    }
    let replication_factor = topic
        .partitions
        .values()
        .next()
        .map_or(1, |p| p.replicas.len()) as i16;
    let placement = match assignments {
        Some(assignments) => {
            if assignments.len() as i32 != new_total - current {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                    new_total - current,
                    assignments.len()
                )));
            }
            let mut placement = BTreeMap::new();
            for (i, replicas) in assignments.into_iter().enumerate() {
                let partition = current + i as i32;
                check_assignment(image, partition, &replicas)?;
                if replicas.len() != replication_factor as usize {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {replication_factor} replica(s).",
                        replicas.len()
                    )));
                }
                placement.insert(partition, replicas);
            }
            placement
        }
        None => {
            let brokers = live_broker_ids(image);
            if replication_factor as usize > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                    brokers.len()
                )));
            }
            let seed = name.bytes().map(usize::from).sum::<usize>();
            place_replicas(
                &brokers,
                current,
                new_total - current,
                replication_factor,
                seed,
            )
        }
    };
    Ok(partition_records(topic.id, &placement))
}

/// Checks one extension resource change: a kind and a name, both short, and a bounded value.
pub fn check_resource(change: &ResourceRecord) -> Result<(), ControllerError> {
    if change.kind.is_empty() || change.kind.len() > RESOURCE_NAME_LENGTH_MAX {
        return Err(ControllerError::InvalidRequest(format!(
            "resource kind must be 1 to {RESOURCE_NAME_LENGTH_MAX} bytes"
        )));
    }
    if change.name.is_empty() || change.name.len() > RESOURCE_NAME_LENGTH_MAX {
        return Err(ControllerError::InvalidRequest(format!(
            "resource name must be 1 to {RESOURCE_NAME_LENGTH_MAX} bytes"
        )));
    }
    if change
        .value
        .as_ref()
        .is_some_and(|v| v.len() > RESOURCE_VALUE_BYTES_MAX)
    {
        return Err(ControllerError::InvalidRequest(format!(
            "{} {}: value over {RESOURCE_VALUE_BYTES_MAX} bytes",
            change.kind, change.name
        )));
    }
    Ok(())
}

/// Decides the records for a set of dynamic config changes on one resource (`None` removes).
pub fn alter_configs(
    resource_type: i32,
    resource_name: &str,
    changes: &[(String, Option<String>)],
) -> Vec<MetadataRecord> {
    changes
        .iter()
        .map(|(name, value)| {
            MetadataRecord::new(Record::Config(ConfigRecord {
                resource_type,
                resource_name: resource_name.to_string(),
                name: name.clone(),
                value: value.clone(),
            }))
        })
        .collect()
}

/// Decides the record that hands a block of producer ids to a broker; returns the block's first
/// id with it.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: NodeId,
    broker_epoch: i64,
) -> (i64, MetadataRecord) {
    let first = image.next_producer_id();
    let record = MetadataRecord::new(Record::ProducerIds(ProducerIdsRecord {
        broker_id: broker_id.0,
        broker_epoch,
        next_producer_id: first + PRODUCER_ID_BLOCK_SIZE,
    }));
    (first, record)
}
