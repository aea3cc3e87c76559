//! Controller decisions: turns requests into the records that carry them out.
//!
//! Every function here is pure: it reads the current image and returns records (or a refusal)
//! without touching anything. The quorum then commits the records and every node applies them, so
//! a decision is made once, on the controller, and is never re-derived elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::{
    BrokerFencingRecord, ConfigRecord, Endpoint, MetadataRecord, PartitionRecord,
    ProducerIdsRecord, Record, RegisterBrokerRecord, RemoveTopicRecord, TopicRecord,
};

/// Longest legal topic name, as Kafka (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Most partitions a single CreateTopics/CreatePartitions may ask for; protects the metadata log
/// from one request with an absurd count.
pub const PARTITIONS_PER_REQUEST_MAX: i32 = 100_000;
/// Producer ids handed to a broker per ProducerIds record, as Kafka's `PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

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

/// Registers (or re-registers) a broker. Single-node and controller-local brokers are unfenced
/// at once; a cluster controller unfences on the first heartbeat instead.
pub fn register_broker(
    image: &MetadataImage,
    broker_id: NodeId,
    incarnation_id: Uuid,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
    unfence: bool,
) -> Vec<MetadataRecord> {
    let broker_epoch = image.offset + 1;
    let mut records = vec![MetadataRecord::new(Record::RegisterBroker(
        RegisterBrokerRecord {
            broker_id: broker_id.0,
            incarnation_id: incarnation_id.as_bytes().to_vec(),
            broker_epoch,
            endpoints,
            rack,
            fenced: true,
        },
    ))];
    if unfence {
        records.push(MetadataRecord::new(Record::BrokerFencing(
            BrokerFencingRecord {
                broker_id: broker_id.0,
                broker_epoch,
                fenced: false,
            },
        )));
    }
    records
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

fn live_broker_ids(image: &MetadataImage) -> Vec<NodeId> {
    image.live_brokers().map(|b| b.id).collect()
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

/// Decides the records that create `topic`, or why it cannot be created.
pub fn create_topic(
    image: &MetadataImage,
    settings: &ControllerSettings,
    topic: &NewTopic,
    pending_names: &BTreeSet<String>,
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
    let topic_id = Uuid::new_v4();
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
