//! The replica manager: the set of partition replicas this node hosts, kept in line with the
//! metadata image (the *reconciler* of the controller vocabulary).
//!
//! On every new image it opens logs for partitions newly assigned here, makes each replica the
//! leader or a follower as the image says (starting and stopping replica fetchers), applies
//! changed topic settings, and deletes the logs of partitions that are gone. At startup it also
//! removes partition directories the image no longer knows (a topic deleted while the node was
//! down), and restores each partition's high watermark from the `replication-offset-checkpoint`
//! it writes periodically and at shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use spate_controller::frontend::MetadataFrontend;
use spate_controller::image::MetadataImage;
use spate_protocol::types::{NodeId, Offset};
use spate_storage::{
    BackgroundHandle, Clock, LogConfig, LogManager, LogManagerConfig, OffsetCheckpointFile,
    StorageError, TopicId, TopicPartition,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::replica::fetcher::ReplicaFetchers;
use crate::replica::partition::Partition;
use crate::replica::partition::replicated::{IsrProposal, LeaderAndIsr};
use crate::replica::settings::{ReplicationSettings, TopicSettings};

/// Kafka's file of per-partition high watermarks in each data directory.
pub const HIGH_WATERMARK_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

type PartitionMap = HashMap<Arc<str>, HashMap<i32, Arc<Partition>>>;

/// The partitions hosted by this node.
pub struct ReplicaManager {
    node_id: NodeId,
    logs: Arc<LogManager>,
    partitions: RwLock<PartitionMap>,
    /// Retention, `flush.ms`, checkpoints and the cleaner, on the log manager's threads.
    background: Mutex<Option<BackgroundHandle>>,
    /// High watermarks read from the checkpoint at startup, for partitions not opened yet.
    restored_high_watermarks: Mutex<BTreeMap<TopicPartition, Offset>>,
    /// The high-watermark checkpoint file.
    high_watermark_checkpoint: OffsetCheckpointFile,
    /// Replication settings; Kafka's defaults until [`ReplicaManager::start_replication`].
    replication: RwLock<ReplicationSettings>,
    /// Fetchers for the partitions this node follows; absent until replication starts.
    fetchers: OnceLock<ReplicaFetchers>,
    /// Where leaders send ISR changes; the replication task takes the receiving end.
    isr_sender: mpsc::UnboundedSender<IsrProposal>,
    isr_receiver: Mutex<Option<mpsc::UnboundedReceiver<IsrProposal>>>,
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
        let high_watermark_checkpoint =
            OffsetCheckpointFile::new(logs.data_dir().join(HIGH_WATERMARK_CHECKPOINT_FILE));
        let restored = high_watermark_checkpoint.read().unwrap_or_else(|error| {
            // Losing the high watermarks costs re-replication time, never data: every partition
            // starts at 0 and learns the real value from its leader or its ISR.
            tracing::warn!(%error, "high-watermark checkpoint unreadable; starting from 0");
            BTreeMap::new()
        });
        let background = logs.start_background()?;
        let (isr_sender, isr_receiver) = mpsc::unbounded_channel();
        Ok(ReplicaManager {
            node_id,
            logs,
            partitions: RwLock::new(HashMap::new()),
            background: Mutex::new(Some(background)),
            restored_high_watermarks: Mutex::new(restored),
            high_watermark_checkpoint,
            replication: RwLock::new(ReplicationSettings::default()),
            fetchers: OnceLock::new(),
            isr_sender,
            isr_receiver: Mutex::new(Some(isr_receiver)),
        })
    }

    /// Starts replication: replica fetchers for the partitions this node follows, with this
    /// node's broker epoch (once; later calls change nothing). Call before the first
    /// [`ReplicaManager::reconcile`] and from inside the async runtime.
    pub fn start_replication(
        &self,
        broker_epoch: i64,
        settings: ReplicationSettings,
        metadata: Arc<dyn MetadataFrontend>,
        shutdown: CancellationToken,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("replication needs a tokio runtime; followers will not fetch");
            return;
        };
        *self.replication.write() = settings.clone();
        for partition in self.all() {
            partition.set_replica_lag_time_max_ms(settings.lag_time_max_ms);
        }
        let _ = self.fetchers.set(ReplicaFetchers::new(
            self.node_id,
            broker_epoch,
            settings,
            metadata,
            runtime,
            shutdown,
        ));
    }

    /// The replication settings in force.
    pub fn replication_settings(&self) -> ReplicationSettings {
        self.replication.read().clone()
    }

    /// The receiving end of the leaders' ISR changes (once: the replication task owns it).
    pub fn take_isr_proposals(&self) -> Option<mpsc::UnboundedReceiver<IsrProposal>> {
        self.isr_receiver.lock().take()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Partitions being fetched from leaders.
    pub fn fetched_partition_count(&self) -> usize {
        self.fetchers
            .get()
            .map_or(0, ReplicaFetchers::partition_count)
    }

    /// Writes every hosted partition's high watermark to the checkpoint (Kafka's
    /// `replication-offset-checkpoint`), so a restarted replica does not treat its whole log as
    /// committed.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), StorageError> {
        let mut entries = self.restored_high_watermarks.lock().clone();
        for partition in self.all() {
            entries.insert(
                TopicPartition::new(partition.topic.to_string(), partition.index),
                Offset(partition.high_watermark()),
            );
        }
        let hosted: BTreeSet<TopicPartition> = self.logs.partitions().into_iter().collect();
        entries.retain(|tp, _| hosted.contains(tp));
        self.high_watermark_checkpoint.write(&entries)
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
        let mut wanted: HashMap<(String, i32), (Uuid, LeaderAndIsr)> = HashMap::new();
        for topic in image.topics() {
            for partition in topic.partitions.values() {
                if partition.replicas.contains(&self.node_id) {
                    wanted.insert(
                        (topic.name.clone(), partition.id.0),
                        (
                            topic.id,
                            LeaderAndIsr {
                                leader: partition.leader,
                                leader_epoch: partition.leader_epoch,
                                partition_epoch: partition.partition_epoch,
                                replicas: partition.replicas.clone(),
                                isr: partition.isr.clone(),
                            },
                        ),
                    );
                }
            }
        }
        // Only registered, unfenced brokers may join an ISR (the controller refuses others).
        let eligible: BTreeSet<NodeId> = image.live_brokers().map(|b| b.id).collect();
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
            if let Some(fetchers) = self.fetchers.get() {
                fetchers.remove(&partition.topic, partition.index);
            }
            tracing::info!(topic = %partition.topic, partition = partition.index, "deleting partition");
            let tp = TopicPartition::new(partition.topic.to_string(), partition.index);
            if let Err(error) = self.logs.delete(&tp) {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "partition delete failed");
            }
        }
        // Open or update what is wanted.
        let mut settings_cache: HashMap<String, Arc<TopicSettings>> = HashMap::new();
        for ((topic, index), (topic_id, state)) in wanted {
            let settings = settings_cache
                .entry(topic.clone())
                .or_insert_with(|| settings_for(&topic))
                .clone();
            if let Some(existing) = self.get(&topic, index) {
                existing.update_settings(settings);
                self.apply_role(&existing, &state, &eligible);
                continue;
            }
            match self.open_partition(&topic, index, topic_id, settings) {
                Ok(partition) => {
                    let partition = Arc::new(partition);
                    self.apply_role(&partition, &state, &eligible);
                    let topic_key: Arc<str> = Arc::from(topic.as_str());
                    self.partitions
                        .write()
                        .entry(topic_key)
                        .or_default()
                        .insert(index, partition);
                }
                Err(error) => {
                    tracing::error!(%topic, partition = index, %error, "cannot open partition");
                }
            }
        }
    }

    /// Makes `partition` the leader or a follower as `state` says, moving its fetching along.
    fn apply_role(
        &self,
        partition: &Arc<Partition>,
        state: &LeaderAndIsr,
        eligible: &BTreeSet<NodeId>,
    ) {
        if state.leader == Some(self.node_id) {
            if let Some(fetchers) = self.fetchers.get() {
                fetchers.remove(&partition.topic, partition.index);
            }
            if let Err(error) = partition.make_leader(self.node_id, state, eligible) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "cannot record the new leader epoch");
            }
            return;
        }
        if !partition.make_follower(state) {
            return;
        }
        let Some(fetchers) = self.fetchers.get() else {
            return;
        };
        match state.leader {
            Some(leader) => fetchers.add(leader, partition.clone(), state.leader_epoch),
            None => fetchers.remove(&partition.topic, partition.index),
        }
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
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
        // Opened at an unknown epoch, so the role the image gives is applied in full.
        let partition = Partition::new(
            Arc::from(topic),
            topic_id,
            index,
            log,
            spate_protocol::types::LeaderEpoch::UNKNOWN,
            settings,
        );
        let restored = self.restored_high_watermarks.lock().remove(&tp);
        partition.restore_high_watermark(restored.unwrap_or(Offset(0)));
        partition.set_replica_lag_time_max_ms(self.replication.read().lag_time_max_ms);
        partition.set_isr_proposals(self.isr_sender.clone());
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

    /// Snapshots producer state, writes the high watermarks, stops background work and closes
    /// every log (clean shutdown).
    pub fn shutdown(&self) {
        if let Err(error) = self.checkpoint_high_watermarks() {
            tracing::warn!(%error, "high-watermark checkpoint failed");
        }
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
