//! The replica manager: the set of partition replicas this node hosts, kept in line with the
//! metadata image (the *reconciler* of the controller vocabulary).
//!
//! On every new image it opens logs for partitions newly assigned here, adopts new leader epochs,
//! applies changed topic settings, and deletes the logs of partitions that are gone. At startup
//! it also removes partition directories the image no longer knows (a topic deleted while the
//! node was down).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use spate_controller::image::MetadataImage;
use spate_protocol::types::NodeId;
use spate_storage::{Clock, LogOpenOptions, PartitionLog, StorageError, TopicId, TopicPartition};
use uuid::Uuid;

use crate::replica::partition::Partition;
use crate::replica::settings::TopicSettings;

type PartitionMap = HashMap<Arc<str>, HashMap<i32, Arc<Partition>>>;

/// The partitions hosted by this node.
pub struct ReplicaManager {
    node_id: NodeId,
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    partitions: RwLock<PartitionMap>,
}

impl ReplicaManager {
    /// An empty manager for `data_dir`.
    pub fn new(node_id: NodeId, data_dir: PathBuf, clock: Arc<dyn Clock>) -> ReplicaManager {
        ReplicaManager {
            node_id,
            data_dir,
            clock,
            partitions: RwLock::new(HashMap::new()),
        }
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
            if let Err(error) = partition.log.delete() {
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
        let dir = self
            .data_dir
            .join(TopicPartition::new(topic, index).dir_name());
        let stored_id = TopicId(*topic_id.as_bytes());
        // A directory left by an earlier topic of the same name holds someone else's data.
        if dir.exists() && stale_topic_dir(&dir, stored_id) {
            tracing::info!(dir = %dir.display(), "removing partition data of a deleted topic");
            std::fs::remove_dir_all(&dir).map_err(|e| StorageError::Io {
                path: dir.clone(),
                source: e,
            })?;
        }
        let log = PartitionLog::open(
            &dir,
            settings.log.clone(),
            self.clock.clone(),
            LogOpenOptions::default(),
        )?;
        log.write_partition_metadata(stored_id)?;
        let log = Arc::new(log);
        let partition = Partition::new(Arc::from(topic), topic_id, index, log, epoch, settings);
        partition.become_leader(epoch)?;
        Ok(partition)
    }

    /// Removes partition directories of topics the image does not know (deleted while down).
    pub fn remove_strays(&self, image: &MetadataImage) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(tp) = TopicPartition::from_dir_name(name) else {
                continue;
            };
            let known = image
                .topic(&tp.topic)
                .is_some_and(|t| t.partitions.contains_key(&tp.partition.0));
            if !known && entry.path().join("partition.metadata").exists() {
                tracing::info!(dir = %entry.path().display(), "removing partition of a deleted topic");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Snapshots producer state and closes every log (clean shutdown).
    pub fn shutdown(&self) {
        for partition in self.all() {
            if let Err(error) = partition.snapshot_producer_state() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "producer snapshot failed");
            }
            if let Err(error) = partition.log.close() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "log close failed");
            }
        }
    }

    /// Runs retention and due flushes on every partition.
    pub fn maintain(&self) {
        for partition in self.all() {
            if let Err(error) = partition.log.apply_retention() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "retention failed");
            }
            if let Err(error) = partition.log.flush_if_due() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "flush failed");
            }
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn stale_topic_dir(dir: &Path, expected: TopicId) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("partition.metadata")) else {
        return false;
    };
    let stored = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| TopicId::from_base64(v.trim()));
    stored.is_some_and(|id| id != expected)
}
