//! The group coordinator: consumer groups and their committed offsets.
//!
//! A group belongs to one partition of `__consumer_offsets` (Kafka's
//! `abs(groupId.hashCode) % offsets.topic.num.partitions`), and the leader of that partition is
//! its coordinator. Every change to a group or its offsets is a record appended to that
//! partition (see [`records`]); the in-memory state is what those records say. When this node
//! becomes leader of an offsets partition it reads the partition from the start and rebuilds
//! the groups (a *shard*); when it stops leading, the shard is dropped.
//!
//! Each group sits behind its own async mutex, held across the append of its records, so a
//! group's operations are applied and stored in one order. Each group has a timer task that
//! sleeps until the group's earliest deadline (session, rebalance, initial delay, pending sync)
//! and hands the expired ones back to the group.
//!
//! A live group migrates between the two protocols (KIP-848, `group.consumer.migration.policy`):
//! a joining ConsumerGroupHeartbeat converts a classic group of `consumer` members into a
//! consumer group whose old members keep speaking the classic protocol, served by the
//! consumer group's server-side assignment; when the last consumer-protocol member leaves, the
//! group turns back into a classic group that rebalances. Either conversion rewrites the
//! group's records in its new form.
//!
//! # Layout
//! - [`records`]: the `__consumer_offsets` key/value schemas.
//! - [`classic`]: JoinGroup/SyncGroup/Heartbeat/LeaveGroup state machine.
//! - [`consumer`]: the KIP-848 ConsumerGroupHeartbeat state machine.
//! - [`assignor`]: the server-side `uniform` and `range` assignors.
//! - [`consumer_protocol`]: classic consumers' embedded subscriptions and assignments.
//! - [`error`]: [`GroupError`], mapped to Kafka codes by the handlers.
//! - [`lag`]: committed offsets and lag over admin HTTP and as Prometheus gauges.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod consumer_protocol;
pub mod error;
pub mod lag;
pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use spate_controller::image::MetadataImage;
use spate_protocol::records::builder::RecordBatchBuilder;
use spate_protocol::records::{Compression, RecordBatch};
use spate_protocol::types::{LeaderEpoch, NodeId, Offset};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::group::assignor::Assignor;
use crate::group::classic::{
    ClassicEffects, ClassicGroup, ClassicSettings, ClassicState, JoinRequest, JoinResult,
    SyncAction, SyncRequest, SyncResult,
};
use crate::group::consumer::{
    ClassicJoinOutcome, ConsumerGroup, ConsumerGroupState, ConsumerHeartbeat,
    ConsumerHeartbeatResult, ConsumerSettings, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH, TopicInfo, TopicResolver,
};
pub use crate::group::error::{AppendFailure, GroupError};
use crate::group::records::{CoordinatorRecord, GroupMetadataValue, OffsetCommitValue, RecordKey};
use crate::replica::partition::replicated::CommitError;
use crate::replica::partition::{Partition, ProduceError};

/// The internal topic holding groups and offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Bytes read per step while loading an offsets partition (Kafka's `offsets.load.buffer.size`
/// default); one read always returns at least one whole batch.
const LOAD_READ_BYTES: usize = 5 * 1024 * 1024;

/// Cap on a batch's inflated size while loading (the offsets topic is written uncompressed by
/// this broker, but a copied Kafka log may hold compressed batches).
const LOAD_INFLATED_BATCH_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Longest group id, member id or instance id stored, in bytes: the records' int16 length
/// prefixes cannot hold more, and Kafka's request schemas cap them the same way.
pub const GROUP_STRING_MAX_BYTES: usize = i16::MAX as usize;

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode` over
/// UTF-16 code units, so a group lands on the same partition as on Apache Kafka.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// The coordinator's settings, resolved from the broker configs on every metadata change.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_segment_bytes: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.commit.timeout.ms`: how long a commit waits for the offsets partition's
    /// in-sync replicas.
    pub offsets_commit_timeout_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// Classic protocol settings.
    pub classic: ClassicSettings,
    /// KIP-848 settings.
    pub consumer: ConsumerSettings,
    /// `group.coordinator.rebalance.protocols` includes `consumer`.
    pub consumer_protocol_enabled: bool,
    /// `group.consumer.migration.policy`.
    pub migration_policy: MigrationPolicy,
}

/// `group.consumer.migration.policy` (KIP-848): whether a live group converts between the
/// classic and the consumer protocol when its members switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both ways (Kafka's default).
    Bidirectional,
    /// Classic to consumer only.
    Upgrade,
    /// Consumer to classic only.
    Downgrade,
    /// Neither: a group with members keeps its protocol.
    Disabled,
}

impl MigrationPolicy {
    /// Kafka's case-insensitive names; anything else is `disabled`, as Kafka's `parse` of an
    /// unknown name (the config validator refuses those before they get here).
    pub fn parse(name: &str) -> MigrationPolicy {
        match name.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => MigrationPolicy::Bidirectional,
            "upgrade" => MigrationPolicy::Upgrade,
            "downgrade" => MigrationPolicy::Downgrade,
            _ => MigrationPolicy::Disabled,
        }
    }

    /// A ConsumerGroupHeartbeat may convert a classic group with members.
    pub fn upgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    /// A consumer group left with only classic members converts back.
    pub fn downgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

impl CoordinatorSettings {
    /// Resolves the settings from typed broker settings.
    pub fn from_broker(settings: &spate_config::BrokerSettings) -> CoordinatorSettings {
        let assignors: Vec<Assignor> = settings
            .group_consumer_assignors
            .iter()
            .filter_map(|name| Assignor::from_name(name.trim()))
            .collect();
        CoordinatorSettings {
            offsets_partitions: settings.offsets_topic_num_partitions.max(1),
            offsets_replication_factor: settings.offsets_topic_replication_factor.max(1),
            offsets_segment_bytes: settings.offsets_topic_segment_bytes,
            offsets_retention_ms: i64::from(settings.offsets_retention_minutes) * 60_000,
            offsets_retention_check_interval_ms: settings.offsets_retention_check_interval_ms.max(1)
                as u64,
            offset_metadata_max_bytes: settings.offset_metadata_max_bytes.max(0) as usize,
            offsets_commit_timeout_ms: settings.offsets_commit_timeout_ms.max(1) as u64,
            min_session_timeout_ms: settings.group_min_session_timeout_ms,
            max_session_timeout_ms: settings.group_max_session_timeout_ms,
            classic: ClassicSettings {
                initial_rebalance_delay_ms: settings.group_initial_rebalance_delay_ms.max(0) as u64,
                max_size: settings.group_max_size.max(1) as usize,
            },
            consumer: ConsumerSettings {
                session_timeout_ms: settings.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: settings.group_consumer_heartbeat_interval_ms,
                max_size: settings.group_consumer_max_size.max(1) as usize,
                assignors: if assignors.is_empty() {
                    vec![Assignor::Uniform, Assignor::Range]
                } else {
                    assignors
                },
            },
            consumer_protocol_enabled: settings
                .group_coordinator_rebalance_protocols
                .iter()
                .any(|p| p.trim() == "consumer"),
            migration_policy: MigrationPolicy::parse(&settings.group_consumer_migration_policy),
        }
    }

    /// Kafka's defaults.
    pub fn defaults() -> CoordinatorSettings {
        let layers = spate_config::ConfigLayers::default();
        match spate_config::BrokerSettings::from_layers(&layers) {
            Ok(settings) => CoordinatorSettings::from_broker(&settings),
            Err(error) => {
                // The defaults are Kafka's own and validated by the config crate's tests.
                tracing::error!(%error, "default broker settings do not resolve");
                CoordinatorSettings {
                    offsets_partitions: 50,
                    offsets_replication_factor: 3,
                    offsets_segment_bytes: 104_857_600,
                    offsets_retention_ms: 10_080 * 60_000,
                    offsets_retention_check_interval_ms: 600_000,
                    offset_metadata_max_bytes: 4096,
                    offsets_commit_timeout_ms: 5_000,
                    min_session_timeout_ms: 6_000,
                    max_session_timeout_ms: 1_800_000,
                    classic: ClassicSettings {
                        initial_rebalance_delay_ms: 3_000,
                        max_size: i32::MAX as usize,
                    },
                    consumer: ConsumerSettings {
                        session_timeout_ms: 45_000,
                        heartbeat_interval_ms: 5_000,
                        max_size: i32::MAX as usize,
                        assignors: vec![Assignor::Uniform, Assignor::Range],
                    },
                    consumer_protocol_enabled: true,
                    migration_policy: MigrationPolicy::Bidirectional,
                }
            }
        }
    }
}

impl crate::Broker {
    /// The coordinator settings the broker configs in `image` give.
    pub fn coordinator_settings(&self, image: &MetadataImage) -> CoordinatorSettings {
        match spate_config::BrokerSettings::from_layers(&self.config_layers(image)) {
            Ok(settings) => CoordinatorSettings::from_broker(&settings),
            Err(error) => {
                tracing::warn!(%error, "invalid broker configs; group coordinator keeps its settings");
                (*self.groups.settings()).clone()
            }
        }
    }
}

/// Which protocol a group speaks.
#[derive(Debug)]
pub enum GroupKind {
    /// JoinGroup/SyncGroup, or only offset commits (no protocol type).
    Classic(ClassicGroup),
    /// KIP-848.
    Consumer(ConsumerGroup),
}

/// A group and its committed offsets.
#[derive(Debug)]
pub struct GroupState {
    /// Group id.
    pub group_id: String,
    /// The protocol state.
    pub kind: GroupKind,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetCommitValue>,
    /// Removed from its shard; a request holding the handle must look the group up again.
    deleted: bool,
}

impl GroupState {
    fn new_classic(group_id: &str, now_ms: i64) -> GroupState {
        GroupState {
            group_id: group_id.to_string(),
            kind: GroupKind::Classic(ClassicGroup::new(group_id, now_ms)),
            offsets: BTreeMap::new(),
            deleted: false,
        }
    }

    /// The state name as DescribeGroups and ListGroups report it.
    pub fn state_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(g) => g.state().name(),
            GroupKind::Consumer(g) => g.state().name(),
        }
    }

    /// The protocol type ListGroups reports (`consumer` for KIP-848 groups).
    pub fn protocol_type(&self) -> String {
        match &self.kind {
            GroupKind::Classic(g) => g.protocol_type.clone().unwrap_or_default(),
            GroupKind::Consumer(_) => "consumer".into(),
        }
    }

    /// `classic` or `consumer` (ListGroups v5).
    pub fn group_type(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(_) => "classic",
            GroupKind::Consumer(_) => "consumer",
        }
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(g) => g.is_empty(),
            GroupKind::Consumer(g) => g.members.is_empty(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.deleted {
            return None;
        }
        match &self.kind {
            GroupKind::Classic(g) => g.next_deadline(),
            GroupKind::Consumer(g) => g.next_deadline(),
        }
    }
}

/// A group behind its lock, with the wake-up of its timer task.
pub struct GroupHandle {
    /// Group id.
    pub group_id: String,
    /// The state; an `Arc` so a request can hold the lock as an owned guard.
    pub state: Arc<tokio::sync::Mutex<GroupState>>,
    wake: Notify,
}

/// Coordinator records appended to an offsets partition, not yet known to be committed.
struct Appended {
    partition: Arc<Partition>,
    last_offset: Offset,
    leader_epoch: LeaderEpoch,
}

impl Appended {
    /// Waits until the high watermark passes the records.
    async fn wait_committed(&self, timeout: Duration) -> Result<(), AppendFailure> {
        self.partition
            .wait_for_commit(self.last_offset, self.leader_epoch, timeout)
            .await
            .map_err(|error| match error {
                CommitError::NotLeader => AppendFailure::NotLeader,
                other => AppendFailure::NotReplicated(other.to_string()),
            })
    }
}

/// The groups of one offsets partition this node leads.
pub struct Shard {
    /// Partition index of `__consumer_offsets`.
    pub index: i32,
    partition: Arc<Partition>,
    leader_epoch: LeaderEpoch,
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
    cancel: CancellationToken,
}

impl Shard {
    fn handles(&self) -> Vec<Arc<GroupHandle>> {
        self.groups.lock().values().cloned().collect()
    }
}

enum ShardSlot {
    Loading,
    Loaded(Arc<Shard>),
}

/// A committed offset to write.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// Per-partition outcome of an OffsetCommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionCommit {
    /// Stored.
    Committed,
    /// OFFSET_METADATA_TOO_LARGE.
    MetadataTooLarge,
}

/// Identity of the committer.
#[derive(Debug, Clone)]
pub struct CommitIdentity {
    /// Member id ("" for simple commits).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Generation (classic) or member epoch (KIP-848); -1 for simple commits.
    pub generation_or_epoch: i32,
    /// The OffsetCommit version.
    pub api_version: i16,
    /// Explicit retention (OffsetCommit v2-v4), ms.
    pub retention_ms: Option<i64>,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the selected protocol (empty unless Stable).
    pub metadata: Bytes,
    /// Assignment (empty unless Stable).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct DescribedGroup {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable only).
    pub protocol: String,
    /// Members.
    pub members: Vec<DescribedMember>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type.
    pub protocol_type: String,
    /// State name.
    pub state: String,
    /// `classic` or `consumer`.
    pub group_type: String,
}

/// One partition's committed offset and lag, for the admin API and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub committed_offset: i64,
    /// Log end offset (high watermark), -1 when this node does not host the partition.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset`, never below 0; -1 when unknown.
    pub lag: i64,
    /// The member consuming the partition, if known.
    pub member_id: Option<String>,
}

/// A group's lag summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: String,
    /// `classic` or `consumer`.
    pub group_type: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Number of members.
    pub members: usize,
    /// Sum of the known partition lags.
    pub total_lag: i64,
    /// Per partition.
    pub partitions: Vec<PartitionLag>,
}

/// The group coordinator of this node.
pub struct GroupCoordinator {
    node_id: NodeId,
    shards: RwLock<HashMap<i32, ShardSlot>>,
    settings: RwLock<Arc<CoordinatorSettings>>,
    clock: Arc<dyn spate_storage::Clock>,
    shutdown: CancellationToken,
}

impl GroupCoordinator {
    /// A coordinator with no shards.
    pub fn new(
        node_id: NodeId,
        settings: CoordinatorSettings,
        clock: Arc<dyn spate_storage::Clock>,
    ) -> Arc<GroupCoordinator> {
        Arc::new(GroupCoordinator {
            node_id,
            shards: RwLock::new(HashMap::new()),
            settings: RwLock::new(Arc::new(settings)),
            clock,
            shutdown: CancellationToken::new(),
        })
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<CoordinatorSettings> {
        self.settings.read().clone()
    }

    /// Replaces the settings (dynamic broker config changes).
    pub fn update_settings(&self, settings: CoordinatorSettings) {
        *self.settings.write() = Arc::new(settings);
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The offsets partition of `group_id` in `image`: by the existing topic's partition count,
    /// else by `offsets.topic.num.partitions`.
    pub fn partition_for_group(&self, image: &MetadataImage, group_id: &str) -> i32 {
        let partitions = image
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0)
            .unwrap_or_else(|| self.settings().offsets_partitions);
        partition_for(group_id, partitions)
    }

    /// Loads the shards of offsets partitions this node now leads and drops those it no longer
    /// leads. Called after every metadata change, once the replicas are reconciled.
    pub fn reconcile(
        self: &Arc<Self>,
        image: &MetadataImage,
        replicas: &crate::replica::manager::ReplicaManager,
    ) {
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            self.unload_all();
            return;
        };
        let mut wanted: HashMap<i32, LeaderEpoch> = HashMap::new();
        for partition in topic.partitions.values() {
            if partition.leader == Some(self.node_id) {
                wanted.insert(partition.id.0, partition.leader_epoch);
            }
        }
        // Unload shards no longer led here (or led under a new epoch: reload them).
        let stale: Vec<Arc<Shard>> = {
            let mut shards = self.shards.write();
            let mut stale = Vec::new();
            shards.retain(|index, slot| {
                let keep = match slot {
                    ShardSlot::Loading => true,
                    ShardSlot::Loaded(shard) => {
                        wanted.get(index) == Some(&shard.leader_epoch)
                            && replicas
                                .get(OFFSETS_TOPIC, *index)
                                .is_some_and(|p| Arc::ptr_eq(&p, &shard.partition))
                    }
                };
                if !keep && let ShardSlot::Loaded(shard) = slot {
                    stale.push(shard.clone());
                }
                keep
            });
            stale
        };
        for shard in stale {
            self.unload(&shard);
        }
        for (index, epoch) in wanted {
            if self.shards.read().contains_key(&index) {
                continue;
            }
            let Some(partition) = replicas.get(OFFSETS_TOPIC, index) else {
                continue;
            };
            self.shards.write().insert(index, ShardSlot::Loading);
            let shard = self.load(index, partition, epoch);
            self.shards.write().insert(index, ShardSlot::Loaded(shard));
        }
    }

    fn unload_all(&self) {
        let shards: Vec<Arc<Shard>> = self
            .shards
            .write()
            .drain()
            .filter_map(|(_, slot)| match slot {
                ShardSlot::Loaded(shard) => Some(shard),
                ShardSlot::Loading => None,
            })
            .collect();
        for shard in shards {
            self.unload(&shard);
        }
    }

    fn unload(&self, shard: &Arc<Shard>) {
        tracing::info!(
            partition = shard.index,
            "unloading groups of offsets partition"
        );
        shard.cancel.cancel();
        for handle in shard.handles() {
            // Parked joins and syncs learn to look for the new coordinator.
            if let Ok(mut state) = handle.state.try_lock() {
                state.deleted = true;
                if let GroupKind::Classic(g) = &mut state.kind {
                    g.fail_all_parked(GroupError::NotCoordinator);
                }
            }
        }
        shard.groups.lock().clear();
    }

    /// Stops every shard's timers (shutdown).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        self.unload_all();
    }

    /// Reads an offsets partition from its start and rebuilds its groups.
    fn load(
        self: &Arc<Self>,
        index: i32,
        partition: Arc<Partition>,
        epoch: LeaderEpoch,
    ) -> Arc<Shard> {
        let started = std::time::Instant::now();
        let settings = self.settings();
        let now = Instant::now();
        let mut loaded: HashMap<String, LoadingGroup> = HashMap::new();
        let mut records_read = 0usize;
        let mut next = partition.log.log_start_offset().0;
        // To the log end, not the high watermark, as Kafka's loader reads: a new leader's high
        // watermark may still trail records the old leader had acknowledged, and it never
        // truncates its own log while it leads.
        let end = partition.log.log_end_offset();
        'read: while next < end.0 {
            let read = match partition.log.read(Offset(next), LOAD_READ_BYTES, end, true) {
                Ok(read) => read,
                Err(error) => {
                    tracing::error!(partition = index, offset = next, %error, "offsets partition read failed; groups after it are not loaded");
                    break;
                }
            };
            let mut bytes = read.records;
            if bytes.is_empty() {
                break;
            }
            while !bytes.is_empty() {
                let batch = match RecordBatch::split_first(&mut bytes) {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::error!(partition = index, offset = next, %error, "bad batch in offsets partition");
                        break 'read;
                    }
                };
                next = batch.next_offset().0;
                if batch.is_control() {
                    continue;
                }
                let records = match batch.records(LOAD_INFLATED_BATCH_MAX_BYTES) {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::error!(partition = index, offset = batch.base_offset().0, %error, "unreadable batch in offsets partition; skipped");
                        continue;
                    }
                };
                for record in records {
                    let record = match record {
                        Ok(record) => record,
                        Err(error) => {
                            tracing::error!(partition = index, %error, "unreadable record in offsets partition; rest of batch skipped");
                            break;
                        }
                    };
                    records_read += 1;
                    let Some(key) = record.key.as_ref() else {
                        continue;
                    };
                    let key = match RecordKey::decode(key) {
                        Ok(key) => key,
                        Err(error) => {
                            tracing::warn!(partition = index, %error, "unreadable offsets record key skipped");
                            continue;
                        }
                    };
                    let Some(group) = key.group().map(str::to_string) else {
                        continue;
                    };
                    let entry = loaded.entry(group.clone()).or_default();
                    if let Err(error) = entry.replay(&group, &key, record.value.as_deref()) {
                        tracing::warn!(partition = index, %group, %error, "unreadable offsets record value skipped");
                    }
                }
            }
        }
        let shard = Arc::new(Shard {
            index,
            partition,
            leader_epoch: epoch,
            groups: Mutex::new(HashMap::new()),
            cancel: self.shutdown.child_token(),
        });
        let mut groups = 0usize;
        for (group_id, loading) in loaded {
            let Some(state) = loading.finish(&group_id, &settings, now, self.now_ms()) else {
                continue;
            };
            groups += 1;
            self.install(&shard, state);
        }
        tracing::info!(
            partition = index,
            groups,
            records = records_read,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded offsets partition"
        );
        shard
    }

    fn install(self: &Arc<Self>, shard: &Arc<Shard>, state: GroupState) -> Arc<GroupHandle> {
        let handle = Arc::new(GroupHandle {
            group_id: state.group_id.clone(),
            state: Arc::new(tokio::sync::Mutex::new(state)),
            wake: Notify::new(),
        });
        shard
            .groups
            .lock()
            .insert(handle.group_id.clone(), handle.clone());
        self.spawn_timer(shard.clone(), handle.clone());
        handle
    }

    fn spawn_timer(self: &Arc<Self>, shard: Arc<Shard>, handle: Arc<GroupHandle>) {
        let coordinator = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("group timers need a tokio runtime");
            return;
        };
        runtime.spawn(async move {
            loop {
                let (next, deleted) = {
                    let state = handle.state.lock().await;
                    (state.next_deadline(), state.deleted)
                };
                if deleted {
                    return;
                }
                let sleep = async {
                    match next {
                        Some(deadline) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = shard.cancel.cancelled() => return,
                    _ = handle.wake.notified() => continue,
                    _ = sleep => {}
                }
                coordinator.run_timers(&shard, &handle).await;
            }
        });
    }

    async fn run_timers(&self, shard: &Arc<Shard>, handle: &Arc<GroupHandle>) {
        let settings = self.settings();
        let mut state = handle.state.lock().await;
        if state.deleted {
            return;
        }
        let now = Instant::now();
        let now_ms = self.now_ms();
        let mut records = Vec::new();
        let expired = match &mut state.kind {
            GroupKind::Classic(group) => {
                group.on_timer(now, now_ms, &settings.classic);
                if group.take_store_request() {
                    records.push(group_metadata_record(group, None));
                }
                Vec::new()
            }
            GroupKind::Consumer(group) => group.expired_members(now),
        };
        for id in expired {
            tracing::info!(group = %handle.group_id, member = %id, "consumer group member fenced: session, rebalance, join or sync timeout");
            if downgrade_if_last_consumer_member(
                &mut state,
                &id,
                &settings,
                now,
                now_ms,
                &mut records,
            ) {
                break;
            }
            if let GroupKind::Consumer(group) = &mut state.kind {
                group.fence_member(&id, now_ms, &mut records);
            }
        }
        if !records.is_empty()
            && let Err(error) = self.append(shard, &records)
        {
            tracing::warn!(group = %handle.group_id, %error, "group records not stored after a timer");
        }
    }

    /// Appends records to the shard's partition as its leader. On a replicated offsets topic
    /// they are only committed once the in-sync replicas have them: what
    /// [`Appended::wait_committed`] awaits.
    fn append(
        &self,
        shard: &Shard,
        records: &[CoordinatorRecord],
    ) -> Result<Option<Appended>, AppendFailure> {
        if records.is_empty() {
            return Ok(None);
        }
        if shard.cancel.is_cancelled() {
            return Err(AppendFailure::NotLeader);
        }
        let now_ms = self.now_ms();
        let mut builder = RecordBatchBuilder::new(Compression::None);
        for record in records {
            builder
                .append(
                    now_ms,
                    Some(record.key.encode()),
                    record.value.clone(),
                    Vec::new(),
                )
                .map_err(|e| AppendFailure::Storage(e.to_string()))?;
        }
        let bytes = builder
            .build()
            .map_err(|e| AppendFailure::Storage(e.to_string()))?;
        let batch = RecordBatch::new(bytes).map_err(|e| AppendFailure::Storage(e.to_string()))?;
        shard
            .partition
            .append_internal(batch)
            .map(|outcome| {
                Some(Appended {
                    partition: shard.partition.clone(),
                    last_offset: outcome.last_offset,
                    leader_epoch: outcome.leader_epoch,
                })
            })
            .map_err(|error| match error {
                ProduceError::NotLeader => AppendFailure::NotLeader,
                ProduceError::TooLarge {
                    size_bytes,
                    max_bytes,
                } => AppendFailure::TooLarge {
                    size_bytes,
                    max_bytes: i64::from(max_bytes),
                },
                other => AppendFailure::Storage(other.to_string()),
            })
    }

    /// The loaded shard of `group_id`'s offsets partition.
    fn shard_for(&self, image: &MetadataImage, group_id: &str) -> Result<Arc<Shard>, GroupError> {
        let index = self.partition_for_group(image, group_id);
        match self.shards.read().get(&index) {
            Some(ShardSlot::Loaded(shard)) => Ok(shard.clone()),
            Some(ShardSlot::Loading) => Err(GroupError::LoadInProgress),
            None => {
                let leads = image
                    .topic(OFFSETS_TOPIC)
                    .and_then(|t| t.partitions.get(&index))
                    .is_some_and(|p| p.leader == Some(self.node_id));
                // Led here per the image but not opened yet: the reconciler is on its way.
                if leads {
                    Err(GroupError::LoadInProgress)
                } else {
                    Err(GroupError::NotCoordinator)
                }
            }
        }
    }

    /// Locks `group_id`, creating an empty classic group when `create` and it does not exist.
    /// `Ok(None)`: no such group.
    async fn lock_group(
        self: &Arc<Self>,
        shard: &Arc<Shard>,
        group_id: &str,
        create: bool,
    ) -> Option<(Arc<GroupHandle>, tokio::sync::OwnedMutexGuard<GroupState>)> {
        loop {
            let existing = shard.groups.lock().get(group_id).cloned();
            let handle = match existing {
                Some(handle) => handle,
                None if create => {
                    let state = GroupState::new_classic(group_id, self.now_ms());
                    // Two creators may race: the map keeps the first.
                    let groups = shard.groups.lock();
                    if let Some(raced) = groups.get(group_id) {
                        raced.clone()
                    } else {
                        drop(groups);
                        self.install(shard, state)
                    }
                }
                None => return None,
            };
            let guard = lock_owned(&handle).await;
            if !guard.deleted {
                return Some((handle, guard));
            }
            // Deleted while we waited: look again.
            if shard.cancel.is_cancelled() {
                return None;
            }
        }
    }

    fn remove_group(&self, shard: &Shard, state: &mut GroupState) {
        state.deleted = true;
        shard.groups.lock().remove(&state.group_id);
    }

    fn check_group_id(group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if group_id.len() > GROUP_STRING_MAX_BYTES {
            return Err(GroupError::InvalidRequest(format!(
                "group id of {} bytes exceeds {GROUP_STRING_MAX_BYTES}",
                group_id.len()
            )));
        }
        Ok(())
    }

    // ---- Classic protocol ----

    /// JoinGroup. The answer arrives through the receiver.
    pub async fn join_group(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        request: JoinRequest,
    ) -> Result<oneshot::Receiver<JoinResult>, GroupError> {
        Self::check_group_id(group_id)?;
        let settings = self.settings();
        if request.session_timeout_ms < settings.min_session_timeout_ms
            || request.session_timeout_ms > settings.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout {
                timeout_ms: request.session_timeout_ms,
                min_ms: settings.min_session_timeout_ms,
                max_ms: settings.max_session_timeout_ms,
            });
        }
        if request.member_id.len() > GROUP_STRING_MAX_BYTES
            || request
                .group_instance_id
                .as_ref()
                .is_some_and(|i| i.is_empty() || i.len() > GROUP_STRING_MAX_BYTES)
        {
            return Err(GroupError::InvalidRequest(
                "member id or group instance id is empty or too long".into(),
            ));
        }
        let shard = self.shard_for(image, group_id)?;
        let create = request.member_id.is_empty();
        let Some((handle, mut state)) = self.lock_group(&shard, group_id, create).await else {
            return Err(GroupError::UnknownMemberId(request.member_id));
        };
        let now_ms = self.now_ms();
        let mut records = Vec::new();
        if let GroupKind::Consumer(consumer) = &mut state.kind
            && !consumer.members.is_empty()
        {
            // A classic member of a live consumer group is served by the consumer group
            // (Kafka's `classicGroupJoinToConsumerGroup`); Kafka does so whatever the
            // migration policy, which only governs converting the group.
            let member_id = request.member_id.clone();
            let outcome = consumer.classic_join(
                request,
                &ImageTopics(image),
                &settings.consumer,
                Instant::now(),
                now_ms,
                &mut records,
            );
            let mut result = match outcome {
                Ok(ClassicJoinOutcome::Joined {
                    member_id,
                    generation_id,
                    protocol_name,
                }) => JoinResult {
                    error: None,
                    member_id,
                    generation_id,
                    protocol_type: Some(consumer_protocol::PROTOCOL_TYPE.to_string()),
                    protocol_name: Some(protocol_name),
                    leader: String::new(),
                    skip_assignment: false,
                    members: Vec::new(),
                },
                Ok(ClassicJoinOutcome::MemberIdRequired(new_id)) => {
                    JoinResult::failed(&new_id, GroupError::MemberIdRequired)
                }
                Err(error) => JoinResult::failed(&member_id, error),
            };
            if let Err(error) = self.append(&shard, &records) {
                tracing::warn!(group = group_id, %error, "consumer group records not stored after a classic JoinGroup");
                result = JoinResult::failed(&member_id, GroupError::Append(error));
            }
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(result);
            handle.wake.notify_one();
            return Ok(rx);
        }
        if let GroupKind::Consumer(consumer) = &state.kind {
            // An empty consumer group becomes a classic group, keeping its offsets.
            consumer.tombstones(&mut records);
            state.kind = GroupKind::Classic(ClassicGroup::new(group_id, now_ms));
        }
        let GroupKind::Classic(group) = &mut state.kind else {
            return Err(GroupError::CoordinatorNotAvailable);
        };
        let mut effects = ClassicEffects::default();
        let receiver = group.join(
            request,
            Instant::now(),
            now_ms,
            &settings.classic,
            &mut effects,
        );
        if group.take_store_request() {
            records.push(group_metadata_record(group, None));
        }
        let stored = self.append(&shard, &records).map(|_| ());
        if let Some((tx, result)) = effects.join_after_store {
            let result = match &stored {
                Ok(()) => result,
                Err(error) => JoinResult::failed("", GroupError::Append(error.clone())),
            };
            let _ = tx.send(result);
        }
        if let Err(error) = stored {
            tracing::warn!(group = group_id, %error, "group metadata not stored after JoinGroup");
        }
        handle.wake.notify_one();
        Ok(receiver)
    }

    /// SyncGroup. The answer arrives through the receiver.
    pub async fn sync_group(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        request: SyncRequest,
    ) -> Result<oneshot::Receiver<SyncResult>, GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let Some((handle, mut state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::UnknownMemberId(request.member_id));
        };
        let settings = self.settings();
        let group = match &mut state.kind {
            GroupKind::Classic(group) => group,
            GroupKind::Consumer(consumer) => {
                // Kafka's `classicGroupSyncToConsumerGroup`: the answer is the member's
                // server-side assignment in the ConsumerProtocol format.
                let result = consumer
                    .classic_sync(
                        &request.member_id,
                        request.group_instance_id.as_deref(),
                        request.generation_id,
                        request.protocol_type.as_deref(),
                        request.protocol_name.as_deref(),
                        &settings.consumer,
                        Instant::now(),
                    )
                    .map(|answer| SyncResult {
                        error: None,
                        protocol_type: request.protocol_type.clone(),
                        protocol_name: request.protocol_name.clone(),
                        assignment: consumer_protocol::encode_assignment(
                            answer.version,
                            &by_topic_name(image, &answer.assignment),
                        ),
                    })
                    .unwrap_or_else(SyncResult::failed);
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(result);
                handle.wake.notify_one();
                return Ok(rx);
            }
        };
        let receiver = match group.sync(request, Instant::now()) {
            SyncAction::Wait(receiver) => receiver,
            SyncAction::Store {
                receiver,
                generation_id,
                assignments,
            } => {
                let record = group_metadata_record(group, Some(&assignments));
                let stored = self
                    .append(&shard, std::slice::from_ref(&record))
                    .map(|_| ())
                    .map_err(GroupError::Append);
                group.finish_leader_sync(
                    generation_id,
                    assignments,
                    stored,
                    Instant::now(),
                    self.now_ms(),
                    &settings.classic,
                );
                receiver
            }
        };
        handle.wake.notify_one();
        Ok(receiver)
    }

    /// Heartbeat.
    pub async fn heartbeat(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let Some((handle, mut state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::UnknownMemberId(member_id.to_string()));
        };
        let settings = self.settings();
        let result = match &mut state.kind {
            GroupKind::Classic(group) => {
                group.heartbeat(member_id, instance_id, generation_id, Instant::now())
            }
            GroupKind::Consumer(group) => group.classic_heartbeat(
                member_id,
                instance_id,
                generation_id,
                &settings.consumer,
                Instant::now(),
            ),
        };
        handle.wake.notify_one();
        result
    }

    /// LeaveGroup: one result per leaving member.
    pub async fn leave_group(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let Some((handle, mut state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::UnknownMemberId(
                leaving.first().map(|(m, _)| m.clone()).unwrap_or_default(),
            ));
        };
        let settings = self.settings();
        let group = match &mut state.kind {
            GroupKind::Classic(group) => group,
            GroupKind::Consumer(group) => {
                let mut records = Vec::new();
                let results = group.classic_leave(leaving, self.now_ms(), &mut records);
                self.append(&shard, &records)?;
                handle.wake.notify_one();
                return Ok(results);
            }
        };
        if group.state() == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let results = group.leave(leaving, Instant::now(), self.now_ms(), &settings.classic);
        if group.take_store_request() {
            let record = group_metadata_record(group, None);
            if let Err(error) = self.append(&shard, &[record]) {
                tracing::warn!(group = group_id, %error, "group metadata not stored after LeaveGroup");
            }
        }
        handle.wake.notify_one();
        Ok(results)
    }

    // ---- KIP-848 ----

    /// ConsumerGroupHeartbeat (after the request-level validation).
    pub async fn consumer_heartbeat(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        request: ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatResult, GroupError> {
        Self::check_group_id(group_id)?;
        let settings = self.settings();
        let shard = self.shard_for(image, group_id)?;
        let joining = request.member_epoch == 0;
        let Some((handle, mut state)) = self.lock_group(&shard, group_id, joining).await else {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        };
        let now = Instant::now();
        let now_ms = self.now_ms();
        let mut records = Vec::new();
        let resolve = ImageTopics(image);
        // A live classic group that may upgrade becomes a consumer group only if the joining
        // member's heartbeat succeeds; until then the conversion is held aside.
        let mut upgraded: Option<ConsumerGroup> = None;
        if let GroupKind::Classic(classic) = &state.kind {
            if !classic.is_empty() {
                if !joining {
                    return Err(GroupError::GroupIdNotFound(format!(
                        "{group_id} is a classic group with members"
                    )));
                }
                validate_online_upgrade(classic, &settings)?;
                records.push(CoordinatorRecord::tombstone(RecordKey::GroupMetadata {
                    group: group_id.to_string(),
                }));
                upgraded = Some(ConsumerGroup::from_classic(
                    classic,
                    &resolve,
                    &settings.consumer,
                    now,
                    now_ms,
                    &mut records,
                )?);
            } else {
                if !joining {
                    return Err(GroupError::UnknownMemberId(request.member_id));
                }
                // An empty classic group (or one that only has offsets) becomes a consumer
                // group.
                if classic.protocol_type.is_some() || classic.generation_id > 0 {
                    records.push(CoordinatorRecord::tombstone(RecordKey::GroupMetadata {
                        group: group_id.to_string(),
                    }));
                }
                state.kind = GroupKind::Consumer(ConsumerGroup::new(group_id, now_ms));
            }
        }
        let leaving = matches!(
            request.member_epoch,
            LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH
        );
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            && let GroupKind::Consumer(group) = &state.kind
        {
            // The last member on the consumer protocol leaving a group of classic members
            // converts it back (Kafka's `consumerGroupFenceMember`).
            let id = group.leaving_member_id(&request.member_id, request.instance_id.as_deref())?;
            if downgrade_if_last_consumer_member(
                &mut state,
                &id,
                &settings,
                now,
                now_ms,
                &mut records,
            ) {
                self.append(&shard, &records)?;
                handle.wake.notify_one();
                return Ok(ConsumerHeartbeatResult {
                    member_id: id,
                    member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                });
            }
        }
        let group = match (&mut upgraded, &mut state.kind) {
            (Some(group), _) => group,
            (None, GroupKind::Consumer(group)) => group,
            (None, GroupKind::Classic(_)) => return Err(GroupError::CoordinatorNotAvailable),
        };
        let result = if leaving {
            group.leave(
                &request.member_id,
                request.instance_id.as_deref(),
                request.member_epoch,
                now_ms,
                &mut records,
            )
        } else {
            group.heartbeat(
                request,
                &resolve,
                &settings.consumer,
                now,
                now_ms,
                &mut records,
            )
        };
        if let Some(group) = upgraded {
            // A refused join leaves the classic group as it was.
            result.as_ref().map_err(Clone::clone)?;
            if let GroupKind::Classic(classic) = &mut state.kind {
                // Members parked in a rebalance learn that another one started.
                classic.fail_all_parked(GroupError::RebalanceInProgress);
            }
            tracing::info!(
                group = group_id,
                members = group.members.len(),
                "classic group upgraded to a consumer group"
            );
            state.kind = GroupKind::Consumer(group);
        }
        self.append(&shard, &records)?;
        handle.wake.notify_one();
        result
    }

    // ---- Offsets ----

    /// OffsetCommit for one group. The outer error applies to every partition.
    pub async fn commit_offsets(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        identity: &CommitIdentity,
        entries: &[OffsetCommitEntry],
    ) -> Result<Vec<PartitionCommit>, GroupError> {
        Self::check_group_id(group_id)?;
        let settings = self.settings();
        let shard = self.shard_for(image, group_id)?;
        let simple = identity.generation_or_epoch < 0;
        let Some((_handle, mut state)) = self.lock_group(&shard, group_id, simple).await else {
            return Err(if identity.api_version >= 9 {
                GroupError::GroupIdNotFound(group_id.to_string())
            } else {
                GroupError::IllegalGeneration {
                    received: identity.generation_or_epoch,
                    current: -1,
                }
            });
        };
        match &state.kind {
            GroupKind::Classic(group) => group.validate_offset_commit(
                &identity.member_id,
                identity.instance_id.as_deref(),
                identity.generation_or_epoch,
            )?,
            GroupKind::Consumer(group) => group.validate_offset_commit(
                &identity.member_id,
                identity.generation_or_epoch,
                identity.api_version,
            )?,
        }
        let now_ms = self.now_ms();
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut values = Vec::new();
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            if metadata.len() > settings.offset_metadata_max_bytes {
                outcomes.push(PartitionCommit::MetadataTooLarge);
                continue;
            }
            let value = OffsetCommitValue {
                offset: entry.offset,
                leader_epoch: entry.leader_epoch,
                metadata,
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms: identity.retention_ms.map(|r| now_ms.saturating_add(r)),
            };
            records.push(CoordinatorRecord::new(
                RecordKey::OffsetCommit {
                    group: group_id.to_string(),
                    topic: entry.topic.clone(),
                    partition: entry.partition,
                },
                value.encode(),
            ));
            values.push(((entry.topic.clone(), entry.partition), value));
            outcomes.push(PartitionCommit::Committed);
        }
        let appended = self.append(&shard, &records)?;
        state.offsets.extend(values);
        drop(state);
        // Kafka answers a commit once the offsets partition's ISR has it (acks=all), so that a
        // new coordinator after a failover knows every offset it confirmed.
        if let Some(appended) = appended {
            appended
                .wait_committed(Duration::from_millis(settings.offsets_commit_timeout_ms))
                .await?;
        }
        Ok(outcomes)
    }

    /// OffsetFetch for one group: `None` partitions means every committed one. A partition with
    /// no commit comes back as `None`.
    pub async fn fetch_offsets(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        member: Option<(&str, i32)>,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, i32, Option<OffsetCommitValue>)>, GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let locked = self.lock_group(&shard, group_id, false).await;
        let offsets: BTreeMap<(String, i32), OffsetCommitValue> = match &locked {
            None => BTreeMap::new(),
            Some((_, state)) => {
                if let GroupKind::Consumer(group) = &state.kind
                    && let Some((member_id, epoch)) = member
                {
                    group.validate_offset_fetch(Some(member_id), epoch)?;
                }
                state.offsets.clone()
            }
        };
        Ok(match partitions {
            None => offsets
                .into_iter()
                .map(|((t, p), v)| (t, p, Some(v)))
                .collect(),
            Some(wanted) => wanted
                .into_iter()
                .flat_map(|(topic, ps)| {
                    let offsets = &offsets;
                    ps.into_iter().map(move |p| {
                        let value = offsets.get(&(topic.clone(), p)).cloned();
                        (topic.clone(), p, value)
                    })
                })
                .collect(),
        })
    }

    /// OffsetDelete: one result per partition.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let Some((_handle, mut state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        };
        let subscribed = match &state.kind {
            GroupKind::Classic(g) => match g.state() {
                ClassicState::Dead => {
                    return Err(GroupError::GroupIdNotFound(group_id.to_string()));
                }
                ClassicState::Empty => BTreeSet::new(),
                _ if g.protocol_type.as_deref() != Some("consumer") => {
                    return Err(GroupError::NonEmptyGroup);
                }
                _ => g.subscribed_topics().unwrap_or_default(),
            },
            GroupKind::Consumer(g) => g.subscribed_topics(),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if state.offsets.contains_key(&(topic.clone(), *partition)) {
                records.push(CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                }));
                removed.push((topic.clone(), *partition));
            }
            results.push(Ok(()));
        }
        self.append(&shard, &records)?;
        for key in removed {
            state.offsets.remove(&key);
        }
        Ok(results)
    }

    // ---- Admin ----

    /// DescribeGroups for one group; `Err(GroupIdNotFound)` when it does not exist.
    pub async fn describe_group(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
    ) -> Result<DescribedGroup, GroupError> {
        let shard = self.shard_for(image, group_id)?;
        let Some((_handle, state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        };
        let GroupKind::Classic(group) = &state.kind else {
            return Err(GroupError::GroupIdNotFound(format!(
                "{group_id} is not a classic group"
            )));
        };
        let stable = group.state() == ClassicState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol).cloned().unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        Ok(DescribedGroup {
            group_id: group_id.to_string(),
            state: group.state().name().to_string(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        })
    }

    /// A consumer group for ConsumerGroupDescribe, with topic names resolved in `image`.
    pub async fn describe_consumer_group<T>(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
        describe: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Result<T, GroupError> {
        let shard = self.shard_for(image, group_id)?;
        let Some((_handle, state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        };
        match &state.kind {
            GroupKind::Consumer(group) => Ok(describe(group)),
            GroupKind::Classic(_) => Err(GroupError::GroupIdNotFound(format!(
                "{group_id} is not a consumer group"
            ))),
        }
    }

    /// Every group this node coordinates.
    pub async fn list_groups(&self) -> Vec<ListedGroup> {
        let mut listed = Vec::new();
        for handle in self.all_handles() {
            let state = handle.state.lock().await;
            if state.deleted {
                continue;
            }
            listed.push(ListedGroup {
                group_id: state.group_id.clone(),
                protocol_type: state.protocol_type(),
                state: state.state_name().to_string(),
                group_type: state.group_type().to_string(),
            });
        }
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    fn all_handles(&self) -> Vec<Arc<GroupHandle>> {
        self.loaded_shards()
            .iter()
            .flat_map(|s| s.handles())
            .collect()
    }

    fn loaded_shards(&self) -> Vec<Arc<Shard>> {
        self.shards
            .read()
            .values()
            .filter_map(|slot| match slot {
                ShardSlot::Loaded(shard) => Some(shard.clone()),
                ShardSlot::Loading => None,
            })
            .collect()
    }

    /// DeleteGroups for one group.
    pub async fn delete_group(
        self: &Arc<Self>,
        image: &MetadataImage,
        group_id: &str,
    ) -> Result<(), GroupError> {
        Self::check_group_id(group_id)?;
        let shard = self.shard_for(image, group_id)?;
        let Some((_handle, mut state)) = self.lock_group(&shard, group_id, false).await else {
            return Err(GroupError::GroupIdNotFound(group_id.to_string()));
        };
        match &state.kind {
            GroupKind::Classic(g) if g.state() == ClassicState::Dead => {
                return Err(GroupError::GroupIdNotFound(group_id.to_string()));
            }
            GroupKind::Classic(g) if g.state() != ClassicState::Empty => {
                return Err(GroupError::NonEmptyGroup);
            }
            GroupKind::Consumer(g) if g.state() != ConsumerGroupState::Empty => {
                return Err(GroupError::NonEmptyGroup);
            }
            _ => {}
        }
        let records = group_tombstones(&state);
        self.append(&shard, &records)?;
        if let GroupKind::Classic(g) = &mut state.kind {
            g.mark_dead(self.now_ms());
        }
        self.remove_group(&shard, &mut state);
        Ok(())
    }

    /// Expires committed offsets past `offsets.retention.minutes` (Kafka's rules: an empty
    /// group's offsets count from when it became empty, a simple group's from their commit,
    /// a Stable consumer group's only for topics it no longer consumes), then deletes groups
    /// left with neither members nor offsets.
    pub async fn expire_offsets(self: &Arc<Self>) {
        let settings = self.settings();
        let now_ms = self.now_ms();
        for shard in self.loaded_shards() {
            for handle in shard.handles() {
                let mut state = handle.state.lock().await;
                if state.deleted {
                    continue;
                }
                let base: Option<(Option<i64>, BTreeSet<String>)> = match &state.kind {
                    GroupKind::Classic(g) => match (g.protocol_type.as_ref(), g.state()) {
                        (None, _) => Some((None, BTreeSet::new())),
                        (Some(_), ClassicState::Empty) => {
                            Some((Some(g.state_timestamp_ms), BTreeSet::new()))
                        }
                        (Some(_), ClassicState::Stable) => {
                            g.subscribed_topics().map(|topics| (None, topics))
                        }
                        _ => None,
                    },
                    GroupKind::Consumer(g) => Some((None, g.subscribed_topics())),
                };
                let Some((state_base_ms, subscribed)) = base else {
                    continue;
                };
                let expired: Vec<(String, i32)> = state
                    .offsets
                    .iter()
                    .filter(|((topic, _), _)| !subscribed.contains(topic))
                    .filter(|(_, v)| match v.expire_timestamp_ms {
                        Some(expire) => now_ms >= expire,
                        None => {
                            let since = state_base_ms
                                .filter(|t| *t >= 0)
                                .unwrap_or(v.commit_timestamp_ms);
                            now_ms.saturating_sub(since) >= settings.offsets_retention_ms
                        }
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let mut records: Vec<CoordinatorRecord> = expired
                    .iter()
                    .map(|(topic, partition)| {
                        CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                            group: state.group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        })
                    })
                    .collect();
                let delete_group = state.is_empty() && state.offsets.len() == expired.len();
                if delete_group {
                    records = group_tombstones(&state);
                }
                if records.is_empty() {
                    continue;
                }
                if let Err(error) = self.append(&shard, &records) {
                    tracing::warn!(group = %state.group_id, %error, "offset expiry not stored");
                    continue;
                }
                for key in &expired {
                    state.offsets.remove(key);
                }
                if !expired.is_empty() {
                    tracing::info!(group = %state.group_id, expired = expired.len(), "expired committed offsets");
                }
                if delete_group {
                    tracing::info!(group = %state.group_id, "deleted empty group without offsets");
                    self.remove_group(&shard, &mut state);
                }
            }
        }
    }

    /// Runs offset expiry every `offsets.retention.check.interval.ms` until shutdown.
    pub async fn run_expiry(self: Arc<Self>) {
        loop {
            let interval =
                Duration::from_millis(self.settings().offsets_retention_check_interval_ms);
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            self.expire_offsets().await;
        }
    }

    /// Committed offsets, log end offsets and lag of every group coordinated here (or of one).
    pub async fn lag(
        &self,
        replicas: &crate::replica::manager::ReplicaManager,
        only: Option<&str>,
    ) -> Vec<GroupLag> {
        let mut out = Vec::new();
        for handle in self.all_handles() {
            if only.is_some_and(|g| g != handle.group_id) {
                continue;
            }
            let state = handle.state.lock().await;
            if state.deleted {
                continue;
            }
            let owners = partition_owners(&state);
            let mut partitions = Vec::with_capacity(state.offsets.len());
            let mut total_lag = 0i64;
            for ((topic, partition), value) in &state.offsets {
                let end = replicas
                    .get(topic, *partition)
                    .map_or(-1, |p| p.high_watermark());
                let lag = if end >= 0 && value.offset >= 0 {
                    (end - value.offset).max(0)
                } else {
                    -1
                };
                if lag > 0 {
                    total_lag += lag;
                }
                partitions.push(PartitionLag {
                    topic: topic.clone(),
                    partition: *partition,
                    committed_offset: value.offset,
                    log_end_offset: end,
                    lag,
                    member_id: owners.get(&(topic.clone(), *partition)).cloned(),
                });
            }
            out.push(GroupLag {
                group_id: state.group_id.clone(),
                state: state.state_name().to_string(),
                group_type: state.group_type().to_string(),
                protocol_type: state.protocol_type(),
                members: match &state.kind {
                    GroupKind::Classic(g) => g.members.len(),
                    GroupKind::Consumer(g) => g.members.len(),
                },
                total_lag,
                partitions,
            });
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Whether `group_id` is coordinated here and exists.
    pub async fn exists(self: &Arc<Self>, image: &MetadataImage, group_id: &str) -> bool {
        match self.shard_for(image, group_id) {
            Ok(shard) => self.lock_group(&shard, group_id, false).await.is_some(),
            Err(_) => false,
        }
    }
}

async fn lock_owned(handle: &Arc<GroupHandle>) -> tokio::sync::OwnedMutexGuard<GroupState> {
    handle.state.clone().lock_owned().await
}

/// Topics of a metadata image, as the consumer protocol resolves subscriptions.
struct ImageTopics<'a>(&'a MetadataImage);

impl TopicResolver for ImageTopics<'_> {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.0.topic(name).map(|t| TopicInfo {
            id: t.id,
            partitions: t.partitions.len() as i32,
        })
    }

    fn names(&self) -> Vec<String> {
        self.0
            .topics()
            .filter(|t| !crate::handlers::metadata::is_internal_topic(&t.name))
            .map(|t| t.name.clone())
            .collect()
    }
}

fn partition_owners(state: &GroupState) -> HashMap<(String, i32), String> {
    let mut owners = HashMap::new();
    match &state.kind {
        GroupKind::Classic(g) => {
            for member in g.members.values() {
                if let Some(parts) = consumer_protocol::assignment_partitions(&member.assignment) {
                    for tp in parts {
                        owners.insert(tp, member.member_id.clone());
                    }
                }
            }
        }
        GroupKind::Consumer(g) => {
            let names: HashMap<uuid::Uuid, &String> = g
                .resolved_topics()
                .iter()
                .map(|(name, info)| (info.id, name))
                .collect();
            for member in g.members.values() {
                for (topic, partitions) in &member.assigned {
                    if let Some(name) = names.get(topic) {
                        for p in partitions {
                            owners.insert(((*name).clone(), *p), member.member_id.clone());
                        }
                    }
                }
            }
        }
    }
    owners
}

/// Kafka's `validateOnlineUpgrade`: a ConsumerGroupHeartbeat may convert a classic group
/// with members when the policy allows upgrades, every member uses the `consumer` protocol
/// type, and the group fits `group.consumer.max.size`. Kafka converts a group in any state
/// (members waiting in a rebalance are told REBALANCE_IN_PROGRESS); so does this.
fn validate_online_upgrade(
    classic: &ClassicGroup,
    settings: &CoordinatorSettings,
) -> Result<(), GroupError> {
    let refuse = |why: &str| {
        tracing::info!(group = %classic.group_id, "classic group not upgraded to a consumer group: {why}");
        Err(GroupError::GroupIdNotFound(format!(
            "group {} is not a consumer group ({why})",
            classic.group_id
        )))
    };
    if !settings.migration_policy.upgrade_enabled() {
        return refuse("online upgrade is disabled by group.consumer.migration.policy");
    }
    if classic.protocol_type.as_deref() != Some(consumer_protocol::PROTOCOL_TYPE) {
        return refuse("the group does not use the consumer embedded protocol");
    }
    if classic.members.len() > settings.consumer.max_size {
        return refuse("the group is larger than group.consumer.max.size");
    }
    Ok(())
}

/// Kafka's `validateOnlineDowngradeWithFencedMember` and `convertToClassicGroup`: when
/// `leaving` is the last member on the consumer protocol and only classic members remain,
/// the policy allows downgrades and they fit `group.max.size`, the group becomes a classic
/// group in PreparingRebalance so the remaining members rejoin; the consumer group records
/// are deleted and the classic group stored. Returns whether it converted.
fn downgrade_if_last_consumer_member(
    state: &mut GroupState,
    leaving: &str,
    settings: &CoordinatorSettings,
    now: Instant,
    now_ms: i64,
    records: &mut Vec<CoordinatorRecord>,
) -> bool {
    let GroupKind::Consumer(group) = &state.kind else {
        return false;
    };
    if !group.is_last_consumer_protocol_member(leaving)
        || !settings.migration_policy.downgrade_enabled()
        || group.members.len().saturating_sub(1) > settings.classic.max_size
    {
        return false;
    }
    group.tombstones(records);
    let members = group.classic_members_without(leaving);
    let mut classic =
        ClassicGroup::from_converted(&group.group_id, group.group_epoch, members, now, now_ms);
    records.push(group_metadata_record(&classic, None));
    classic.rebalance_after_conversion(now, now_ms, &settings.classic);
    tracing::info!(group = %state.group_id, member = leaving, "consumer group downgraded to a classic group: its last consumer protocol member left");
    state.kind = GroupKind::Classic(classic);
    true
}

/// An assignment by topic id as the classic protocol names it: by topic name, partitions in
/// order; topics no longer in `image` are left out.
fn by_topic_name(
    image: &MetadataImage,
    assignment: &assignor::Assignment,
) -> Vec<(String, Vec<i32>)> {
    assignment
        .iter()
        .filter_map(|(id, partitions)| {
            image
                .topic_by_id(id)
                .map(|t| (t.name.clone(), partitions.iter().copied().collect()))
        })
        .collect()
}

fn group_metadata_record(
    group: &ClassicGroup,
    assignments: Option<&BTreeMap<String, Bytes>>,
) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::GroupMetadata {
            group: group.group_id.clone(),
        },
        group.to_record(assignments).encode(),
    )
}

/// Tombstones deleting a group and all its offsets.
fn group_tombstones(state: &GroupState) -> Vec<CoordinatorRecord> {
    let mut records: Vec<CoordinatorRecord> = state
        .offsets
        .keys()
        .map(|(topic, partition)| {
            CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                group: state.group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
            })
        })
        .collect();
    match &state.kind {
        GroupKind::Classic(_) => {
            records.push(CoordinatorRecord::tombstone(RecordKey::GroupMetadata {
                group: state.group_id.clone(),
            }))
        }
        GroupKind::Consumer(g) => g.tombstones(&mut records),
    }
    records
}

/// A group being rebuilt from the log.
#[derive(Default)]
struct LoadingGroup {
    classic: Option<GroupMetadataValue>,
    consumer: Option<ConsumerGroup>,
    offsets: BTreeMap<(String, i32), OffsetCommitValue>,
}

impl LoadingGroup {
    fn replay(
        &mut self,
        group_id: &str,
        key: &RecordKey,
        value: Option<&[u8]>,
    ) -> Result<(), records::RecordCodecError> {
        match key {
            RecordKey::OffsetCommit {
                topic, partition, ..
            } => match value {
                Some(v) => {
                    self.offsets
                        .insert((topic.clone(), *partition), OffsetCommitValue::decode(v)?);
                }
                None => {
                    self.offsets.remove(&(topic.clone(), *partition));
                }
            },
            RecordKey::GroupMetadata { .. } => match value {
                Some(v) => {
                    self.classic = Some(GroupMetadataValue::decode(v)?);
                    self.consumer = None;
                }
                None => self.classic = None,
            },
            RecordKey::ConsumerGroupMetadata { .. } if value.is_none() => {
                self.consumer = None;
            }
            RecordKey::ConsumerGroupPartitionMetadata { .. } | RecordKey::Other { .. } => {}
            _ => {
                if value.is_some() && matches!(key, RecordKey::ConsumerGroupMetadata { .. }) {
                    self.classic = None;
                }
                let group = self
                    .consumer
                    .get_or_insert_with(|| ConsumerGroup::new(group_id, -1));
                group.replay(key, value)?;
            }
        }
        Ok(())
    }

    fn finish(
        self,
        group_id: &str,
        settings: &CoordinatorSettings,
        now: Instant,
        now_ms: i64,
    ) -> Option<GroupState> {
        let kind = if let Some(mut consumer) = self.consumer {
            consumer.after_load(&settings.consumer, now);
            GroupKind::Consumer(consumer)
        } else if let Some(value) = &self.classic {
            GroupKind::Classic(ClassicGroup::from_record(group_id, value, now))
        } else if !self.offsets.is_empty() {
            GroupKind::Classic(ClassicGroup::new(group_id, now_ms))
        } else {
            return None;
        };
        Some(GroupState {
            group_id: group_id.to_string(),
            kind,
            offsets: self.offsets,
            deleted: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Utils.abs(groupId.hashCode()) % 50` as Apache Kafka computes it; the expected values
    /// come from Java's `String.hashCode` ("test-group".hashCode() == 627841412).
    #[test]
    fn partition_for_matches_java_string_hash_code() {
        assert_eq!(partition_for("", 50), 0);
        // "a".hashCode() == 97.
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("test-group", 50), 627_841_412 % 50);
        // Characters outside the BMP hash as two UTF-16 surrogates, as in Java.
        let h = |s: &str| {
            s.encode_utf16()
                .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
        };
        assert_eq!(h("😀"), 0xD83D * 31 + 0xDE00);
        assert_eq!(partition_for("😀", 50), (0xD83D * 31 + 0xDE00) % 50);
    }

    use spate_storage::{LogOpenOptions, ManualClock, PartitionLog};

    use crate::replica::settings::TopicSettings;

    /// A coordinator with one loaded shard over a real log in `dir`, on a manual clock.
    fn coordinator_with_shard(
        dir: &std::path::Path,
        clock: Arc<ManualClock>,
        settings: CoordinatorSettings,
    ) -> (Arc<GroupCoordinator>, Arc<Partition>) {
        let log = PartitionLog::open(
            dir,
            TopicSettings::default().log,
            clock.clone(),
            LogOpenOptions::default(),
        )
        .expect("log opens");
        let partition = Arc::new(Partition::new(
            Arc::from(OFFSETS_TOPIC),
            uuid::Uuid::nil(),
            0,
            Arc::new(log),
            LeaderEpoch(0),
            Arc::new(TopicSettings::default()),
        ));
        let coordinator = GroupCoordinator::new(NodeId(0), settings, clock);
        (coordinator, partition)
    }

    fn install_all_shards(coordinator: &Arc<GroupCoordinator>, partition: &Arc<Partition>) {
        // One log stands in for every offsets partition, so any group id lands on it.
        for index in 0..coordinator.settings().offsets_partitions {
            let shard = coordinator.load(index, partition.clone(), LeaderEpoch(0));
            coordinator
                .shards
                .write()
                .insert(index, ShardSlot::Loaded(shard));
        }
    }

    fn settings_with_one_partition() -> CoordinatorSettings {
        let mut settings = CoordinatorSettings::defaults();
        settings.offsets_partitions = 1;
        settings
    }

    fn simple_commit() -> CommitIdentity {
        CommitIdentity {
            member_id: String::new(),
            instance_id: None,
            generation_or_epoch: -1,
            api_version: 9,
            retention_ms: None,
        }
    }

    fn entry(topic: &str, partition: i32, offset: i64) -> OffsetCommitEntry {
        OffsetCommitEntry {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
        }
    }

    /// Committed offsets are records in the offsets log: a coordinator that loads the log
    /// again (a restart, a new leader) finds them, and tombstones (DeleteGroups) remove them.
    #[tokio::test]
    async fn offsets_and_deletions_survive_a_reload_from_the_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let image = MetadataImage::empty();
        let (coordinator, partition) =
            coordinator_with_shard(dir.path(), clock.clone(), settings_with_one_partition());
        install_all_shards(&coordinator, &partition);
        let outcome = coordinator
            .commit_offsets(
                &image,
                "g1",
                &simple_commit(),
                &[entry("t", 0, 5), entry("t", 1, 7)],
            )
            .await
            .expect("commits");
        assert_eq!(outcome, vec![PartitionCommit::Committed; 2]);
        coordinator
            .commit_offsets(&image, "g2", &simple_commit(), &[entry("t", 0, 9)])
            .await
            .expect("commits");
        coordinator
            .delete_group(&image, "g2")
            .await
            .expect("deletes");

        let (reloaded, _) =
            coordinator_with_shard(dir.path(), clock.clone(), settings_with_one_partition());
        install_all_shards(&reloaded, &partition);
        let fetched = reloaded
            .fetch_offsets(&image, "g1", None, None)
            .await
            .expect("fetches");
        let offsets: Vec<(String, i32, i64)> = fetched
            .into_iter()
            .map(|(t, p, v)| (t, p, v.map_or(-1, |v| v.offset)))
            .collect();
        assert_eq!(offsets, vec![("t".into(), 0, 5), ("t".into(), 1, 7)]);
        assert!(
            !reloaded.exists(&image, "g2").await,
            "deleted group came back"
        );
    }

    /// `offsets.retention.minutes`: a simple group's offsets expire by their commit time; the
    /// group goes with its last offset, and stays gone after a reload.
    #[tokio::test]
    async fn offsets_of_an_empty_group_expire_after_the_retention() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let image = MetadataImage::empty();
        let mut settings = settings_with_one_partition();
        settings.offsets_retention_ms = 60_000;
        let (coordinator, partition) =
            coordinator_with_shard(dir.path(), clock.clone(), settings.clone());
        install_all_shards(&coordinator, &partition);
        coordinator
            .commit_offsets(&image, "old", &simple_commit(), &[entry("t", 0, 1)])
            .await
            .expect("commits");
        clock.advance(30_000);
        coordinator
            .commit_offsets(&image, "young", &simple_commit(), &[entry("t", 0, 2)])
            .await
            .expect("commits");
        clock.advance(30_000);
        coordinator.expire_offsets().await;
        assert!(
            !coordinator.exists(&image, "old").await,
            "old group should expire"
        );
        assert!(
            coordinator.exists(&image, "young").await,
            "young group kept"
        );

        let (reloaded, _) = coordinator_with_shard(dir.path(), clock.clone(), settings);
        install_all_shards(&reloaded, &partition);
        assert!(!reloaded.exists(&image, "old").await);
        let young = reloaded
            .fetch_offsets(&image, "young", None, Some(vec![("t".into(), vec![0])]))
            .await
            .expect("fetches");
        assert_eq!(young[0].2.as_ref().map(|v| v.offset), Some(2));
    }
}
