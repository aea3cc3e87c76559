//! The replica manager: the set of partition replicas this node hosts, kept in line with the
//! metadata image (the *reconciler* of the controller vocabulary).
//!
//! On every new image it opens logs for partitions newly assigned here, adopts new leader epochs,
//! applies changed topic settings, and deletes the logs of partitions that are gone. At startup
//! it also removes partition directories the image no longer knows (a topic deleted while the
//! node was down).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use spate_controller::image::MetadataImage;
use spate_protocol::types::NodeId;
use spate_storage::{
    BackgroundHandle, Clock, LogConfig, LogManager, LogManagerConfig, StorageError, TopicId,
    TopicPartition,
};
use uuid::Uuid;

use crate::replica::partition::Partition;
use crate::replica::settings::TopicSettings;

type PartitionMap = HashMap<Arc<str>, HashMap<i32, Arc<Partition>>>;

/// The partitions hosted by this node.
pub struct ReplicaManager {
    node_id: NodeId,
    logs: Arc<LogManager>,
    partitions: RwLock<PartitionMap>,
    /// Retention, `flush.ms`, checkpoints and the cleaner, on the log manager's threads.
    background: Mutex<Option<BackgroundHandle>>,
}

impl ReplicaManager {
    /// Opens (and recovers) every partition log under `config.data_dir` with the settings
    /// `log_config` gives, and starts the log manager's background work. Partitions become
    /// hosted at the first [`ReplicaManager::reconcile`].
    pub fn open(
        node_id: NodeId,
        config: LogManagerConfig,
        clock: Arc<dyn Clock>,
        log_config: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    ) -> Result<ReplicaManager, StorageError> {
        let logs = Arc::new(LogManager::open(config, clock, log_config)?);
        let background = logs.start_background()?;
        Ok(ReplicaManager {
            node_id,
            logs,
            partitions: RwLock::new(HashMap::new()),
            background: Mutex::new(Some(background)),
        })
    }

    /// The local replica of `topic`-`partition`, if this node hosts it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(topic)?.get(&partition).cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .flat_map(|p| p.values().cloned())
            .collect()
    }

    /// Brings the hosted partitions in line with `image`. `settings_for` resolves a topic's
    /// effective settings. Failures to open one partition are logged and leave it unhosted (its
    /// clients get NOT_LEADER_OR_FOLLOWER), never the whole node down.
    pub fn reconcile(
        &self,
        image: &MetadataImage,
        settings_for: &dyn Fn(&str) -> Arc<TopicSettings>,
    ) {
        let mut wanted: HashMap<(String, i32), (Uuid, spate_protocol::types::LeaderEpoch)> =
            HashMap::new();
        for topic in image.topics() {
            for partition in topic.partitions.values() {
                if partition.replicas.contains(&self.node_id) {
                    wanted.insert(
                        (topic.name.clone(), partition.id.0),
                        (topic.id, partition.leader_epoch),
                    );
                }
            }
        }
        // Drop what is gone (or was recreated under the same name with a new id).
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let mut removed = Vec::new();
            for (topic, partitions) in map.iter_mut() {
                partitions.retain(|index, partition| {
                    let keep = wanted
                        .get(&(topic.to_string(), *index))
                        .is_some_and(|(id, _)| *id == partition.topic_id);
                    if !keep {
                        removed.push(partition.clone());
                    }
                    keep
                });
            }
            map.retain(|_, partitions| !partitions.is_empty());
            removed
        };
        for partition in removed {
            tracing::info!(topic = %partition.topic, partition = partition.index, "deleting partition");
            let tp = TopicPartition::new(partition.topic.to_string(), partition.index);
            if let Err(error) = self.logs.delete(&tp) {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "partition delete failed");
            }
        }
        // Open or update what is wanted.
        let mut settings_cache: HashMap<String, Arc<TopicSettings>> = HashMap::new();
        for ((topic, index), (topic_id, epoch)) in wanted {
            let settings = settings_cache
                .entry(topic.clone())
                .or_insert_with(|| settings_for(&topic))
                .clone();
            if let Some(existing) = self.get(&topic, index) {
                existing.update_settings(settings);
                if let Err(error) = existing.become_leader(epoch) {
                    tracing::warn!(%topic, partition = index, %error, "leader epoch not recorded");
                }
                continue;
            }
            match self.open_partition(&topic, index, topic_id, epoch, settings) {
                Ok(partition) => {
                    let topic_key: Arc<str> = Arc::from(topic.as_str());
                    self.partitions
                        .write()
                        .entry(topic_key)
                        .or_default()
                        .insert(index, Arc::new(partition));
                }
                Err(error) => {
                    tracing::error!(%topic, partition = index, %error, "cannot open partition");
                }
            }
        }
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        epoch: spate_protocol::types::LeaderEpoch,
        settings: Arc<TopicSettings>,
    ) -> Result<Partition, StorageError> {
        let tp = TopicPartition::new(topic, index);
        let stored_id = TopicId(*topic_id.as_bytes());
        // A log left by an earlier topic of the same name holds someone else's data.
        if let Some(existing) = self.logs.get(&tp)
            && existing
                .partition_metadata()?
                .is_some_and(|id| id != stored_id)
        {
            tracing::info!(%tp, "removing partition data of a deleted topic");
            self.logs.delete(&tp)?;
        }
        let log = self.logs.get_or_create(&tp, settings.log.clone())?;
        log.write_partition_metadata(stored_id)?;
        let partition = Partition::new(Arc::from(topic), topic_id, index, log, epoch, settings);
        partition.become_leader(epoch)?;
        Ok(partition)
    }

    /// Deletes the logs of partitions the image does not assign here (a topic deleted, or
    /// moved away, while the node was down).
    pub fn remove_strays(&self, image: &MetadataImage) {
        for tp in self.logs.partitions() {
            let assigned = image.topic(&tp.topic).is_some_and(|t| {
                t.partitions
                    .get(&tp.partition.0)
                    .is_some_and(|p| p.replicas.contains(&self.node_id))
            });
            if !assigned {
                tracing::info!(%tp, "removing the log of a partition no longer assigned here");
                if let Err(error) = self.logs.delete(&tp) {
                    tracing::warn!(%tp, %error, "stray partition delete failed");
                }
            }
        }
    }

    /// Snapshots producer state, stops background work and closes every log (clean shutdown).
    pub fn shutdown(&self) {
        for partition in self.all() {
            if let Err(error) = partition.snapshot_producer_state() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "producer snapshot failed");
            }
        }
        if let Some(background) = self.background.lock().take() {
            background.shutdown();
        }
        if let Err(error) = self.logs.close() {
            tracing::warn!(%error, "closing the logs failed");
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.logs.data_dir()
    }

    /// Every log's size in bytes.
    pub fn log_sizes(&self) -> std::collections::BTreeMap<TopicPartition, u64> {
        self.logs.sizes()
    }
}
