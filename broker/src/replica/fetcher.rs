//! Replica fetchers: the follower side of replication (Kafka's `ReplicaFetcherThread` over
//! `AbstractFetcherThread`).
//!
//! One task per leader broker fetches every partition this node follows from it, over one
//! connection with the Kafka protocol (Fetch with this node's replica id and broker epoch, as
//! Kafka's followers send it). A response's records are appended with the leader's offsets and
//! epochs; its high watermark and log start offset are adopted; a diverging epoch (KIP-595,
//! Fetch v12+) truncates the local tail first; an out-of-range offset is resolved with the
//! leader's log end (ListOffsets as a replica) or log start. Partition errors back off that
//! partition alone; a broken connection backs off the whole fetcher.
//!
//! The replica manager adds and removes partitions as leadership changes. A response for a
//! partition that moved on meanwhile is dropped: every follower operation is checked against the
//! partition's current leader epoch under its append lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use spate_controller::frontend::MetadataFrontend;
use spate_protocol::error::ErrorCode;
use spate_protocol::types::{LeaderEpoch, NodeId, Offset};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::kafka_client::{ClientError, KafkaConnection};
use crate::replica::partition::Partition;
use crate::replica::partition::replicated::FollowerError;
use crate::replica::replication::divergence_truncation_offset;
use crate::replica::settings::ReplicationSettings;

/// Fetch versions a follower speaks: v12 brings the diverging epoch and the last fetched epoch
/// (KIP-595), which make truncation part of fetching; v18 is the newest Spate serves.
const FETCH_VERSIONS: (i16, i16) = (12, 18);
/// ListOffsets versions a follower speaks to learn the leader's log end offset.
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 10);
/// Kafka's sessionless fetch epoch: every fetch names all its partitions.
const SESSIONLESS_EPOCH: i32 = -1;
/// ListOffsets "latest": for a replica, the leader's log end offset.
const LATEST_TIMESTAMP: i64 = -1;
/// How long an idle fetcher sleeps before looking again when nothing wakes it.
const IDLE_RECHECK_MS: u64 = 1_000;

/// What a fetcher knows about a partition it fetches.
struct Target {
    partition: Arc<Partition>,
    /// The leader epoch the partition follows in; responses for another are dropped.
    epoch: LeaderEpoch,
    /// No fetching before this (after an error for this partition).
    backoff_until: Option<Instant>,
}

/// One fetcher task's state: the partitions it fetches from one leader.
struct Fetcher {
    leader: NodeId,
    targets: Mutex<BTreeMap<(Arc<str>, i32), Target>>,
    wake: Notify,
}

/// What every fetcher task shares.
struct FetchContext {
    node_id: NodeId,
    broker_epoch: i64,
    settings: ReplicationSettings,
    metadata: Arc<dyn MetadataFrontend>,
    shutdown: CancellationToken,
}

/// The replica fetchers of this node, one per leader it follows.
pub struct ReplicaFetchers {
    context: Arc<FetchContext>,
    runtime: tokio::runtime::Handle,
    fetchers: Mutex<HashMap<NodeId, Arc<Fetcher>>>,
}

impl ReplicaFetchers {
    /// Fetchers for node `node_id` (registered at `broker_epoch`) that spawn on `runtime` and
    /// stop at `shutdown`.
    pub fn new(
        node_id: NodeId,
        broker_epoch: i64,
        settings: ReplicationSettings,
        metadata: Arc<dyn MetadataFrontend>,
        runtime: tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> ReplicaFetchers {
        ReplicaFetchers {
            context: Arc::new(FetchContext {
                node_id,
                broker_epoch,
                settings,
                metadata,
                shutdown,
            }),
            runtime,
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Starts fetching `partition` from `leader` in `epoch` (replacing any earlier fetch of it).
    pub fn add(&self, leader: NodeId, partition: Arc<Partition>, epoch: LeaderEpoch) {
        self.remove(&partition.topic, partition.index);
        let fetcher = {
            let mut fetchers = self.fetchers.lock();
            fetchers
                .entry(leader)
                .or_insert_with(|| {
                    let fetcher = Arc::new(Fetcher {
                        leader,
                        targets: Mutex::new(BTreeMap::new()),
                        wake: Notify::new(),
                    });
                    self.runtime
                        .spawn(run(fetcher.clone(), self.context.clone()));
                    fetcher
                })
                .clone()
        };
        fetcher.targets.lock().insert(
            (partition.topic.clone(), partition.index),
            Target {
                partition,
                epoch,
                backoff_until: None,
            },
        );
        fetcher.wake.notify_one();
    }

    /// Stops fetching a partition (it leads now, follows another leader, or is gone).
    pub fn remove(&self, topic: &str, index: i32) {
        let key = (Arc::<str>::from(topic), index);
        for fetcher in self.fetchers.lock().values() {
            if fetcher.targets.lock().remove(&key).is_some() {
                metrics::gauge!(
                    "spate_replica_fetcher_lag_records",
                    "topic" => topic.to_string(),
                    "partition" => index.to_string()
                )
                .set(0.0);
            }
        }
    }

    /// How many partitions are being fetched, over all leaders.
    pub fn partition_count(&self) -> usize {
        self.fetchers
            .lock()
            .values()
            .map(|f| f.targets.lock().len())
            .sum()
    }
}

/// Why one round of fetching failed as a whole.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    /// The leader's address is not in the image.
    #[error("no address is known for leader {0}")]
    NoAddress(NodeId),
    /// The request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No answer within `replica.socket.timeout.ms`.
    #[error("no answer within {0} ms")]
    Timeout(u64),
}

/// The fetcher task: fetch, apply, repeat, until shutdown.
async fn run(fetcher: Arc<Fetcher>, context: Arc<FetchContext>) {
    let backoff = Duration::from_millis(context.settings.fetch_backoff_ms);
    let mut connection: Option<KafkaConnection> = None;
    let mut failing = false;
    loop {
        if context.shutdown.is_cancelled() {
            return;
        }
        let wanted = ready_targets(&fetcher);
        if wanted.is_empty() {
            let next = next_backoff_end(&fetcher)
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(IDLE_RECHECK_MS));
            tokio::select! {
                _ = context.shutdown.cancelled() => return,
                _ = fetcher.wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
            continue;
        }
        let round = fetch_round(&fetcher, &context, &mut connection, &wanted);
        let outcome = tokio::select! {
            _ = context.shutdown.cancelled() => return,
            outcome = round => outcome,
        };
        match outcome {
            Ok(()) => {
                if failing {
                    tracing::info!(leader = fetcher.leader.0, "replica fetching resumed");
                    failing = false;
                }
            }
            Err(error) => {
                connection = None;
                if !failing {
                    tracing::warn!(leader = fetcher.leader.0, %error, "replica fetch failed; retrying");
                    failing = true;
                } else {
                    tracing::debug!(leader = fetcher.leader.0, %error, "replica fetch failed again");
                }
                tokio::select! {
                    _ = context.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// A partition to fetch in this round, with what the request says about it.
#[derive(Clone)]
struct Wanted {
    key: (Arc<str>, i32),
    partition: Arc<Partition>,
    epoch: LeaderEpoch,
    fetch_offset: Offset,
    last_fetched_epoch: i32,
}

fn ready_targets(fetcher: &Fetcher) -> Vec<Wanted> {
    let now = Instant::now();
    fetcher
        .targets
        .lock()
        .iter()
        .filter(|(_, t)| t.backoff_until.is_none_or(|until| until <= now))
        .map(|(key, t)| {
            let (fetch_offset, last_fetched_epoch) = t.partition.follower_fetch_position();
            Wanted {
                key: key.clone(),
                partition: t.partition.clone(),
                epoch: t.epoch,
                fetch_offset,
                last_fetched_epoch,
            }
        })
        .collect()
}

fn next_backoff_end(fetcher: &Fetcher) -> Option<Instant> {
    fetcher
        .targets
        .lock()
        .values()
        .filter_map(|t| t.backoff_until)
        .min()
}

/// Whether the partition is still fetched from this fetcher in the same epoch.
fn still_wanted(fetcher: &Fetcher, wanted: &Wanted) -> bool {
    fetcher
        .targets
        .lock()
        .get(&wanted.key)
        .is_some_and(|t| t.epoch == wanted.epoch && Arc::ptr_eq(&t.partition, &wanted.partition))
}

fn back_off(fetcher: &Fetcher, wanted: &Wanted, backoff: Duration) {
    if let Some(target) = fetcher.targets.lock().get_mut(&wanted.key)
        && target.epoch == wanted.epoch
    {
        target.backoff_until = Some(Instant::now() + backoff);
    }
}

fn leader_address(context: &FetchContext, leader: NodeId) -> Option<String> {
    let image = context.metadata.image();
    let broker = image.broker(leader)?;
    let endpoint = broker
        .endpoints
        .iter()
        .find(|e| e.name == "PLAINTEXT")
        .or_else(|| broker.endpoints.first())?;
    Some(format!("{}:{}", endpoint.host, endpoint.port))
}

async fn connection<'a>(
    fetcher: &Fetcher,
    context: &FetchContext,
    slot: &'a mut Option<KafkaConnection>,
) -> Result<&'a mut KafkaConnection, RoundError> {
    if slot.is_none() {
        let address =
            leader_address(context, fetcher.leader).ok_or(RoundError::NoAddress(fetcher.leader))?;
        let timeout_ms = context.settings.socket_timeout_ms;
        let connected = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            KafkaConnection::connect(&address),
        )
        .await
        .map_err(|_| RoundError::Timeout(timeout_ms))??;
        *slot = Some(connected);
    }
    slot.as_mut().ok_or(RoundError::NoAddress(fetcher.leader))
}

/// One Fetch to the leader for `wanted`, and its response applied.
async fn fetch_round(
    fetcher: &Fetcher,
    context: &FetchContext,
    slot: &mut Option<KafkaConnection>,
    wanted: &[Wanted],
) -> Result<(), RoundError> {
    let settings = &context.settings;
    let image = context.metadata.image();
    let conn = connection(fetcher, context, slot).await?;
    let version = conn.version(ApiKey::Fetch, FETCH_VERSIONS)?;
    let uses_topic_ids = version >= 13;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut by_topic: HashMap<(Uuid, String, i32), &Wanted> = HashMap::new();
    for w in wanted {
        let topic_id = image
            .topic(&w.key.0)
            .map(|t| t.id)
            .unwrap_or(w.partition.topic_id);
        let partition = FetchPartition::default()
            .with_partition(w.key.1)
            .with_current_leader_epoch(w.epoch.0)
            .with_fetch_offset(w.fetch_offset.0)
            .with_last_fetched_epoch(w.last_fetched_epoch)
            .with_log_start_offset(w.partition.log.log_start_offset().0)
            .with_partition_max_bytes(settings.fetch_max_bytes);
        let same = topics.last().is_some_and(|t| {
            if uses_topic_ids {
                t.topic_id == topic_id
            } else {
                t.topic.0.as_str() == &*w.key.0
            }
        });
        if same && let Some(last) = topics.last_mut() {
            last.partitions.push(partition);
        } else {
            topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(w.key.0.to_string())))
                    .with_topic_id(if uses_topic_ids {
                        topic_id
                    } else {
                        Uuid::nil()
                    })
                    .with_partitions(vec![partition]),
            );
        }
        let key_id = if uses_topic_ids {
            topic_id
        } else {
            Uuid::nil()
        };
        let key_name = if uses_topic_ids {
            String::new()
        } else {
            w.key.0.to_string()
        };
        by_topic.insert((key_id, key_name, w.key.1), w);
    }
    let mut request = FetchRequest::default()
        .with_max_wait_ms(settings.fetch_wait_max_ms)
        .with_min_bytes(settings.fetch_min_bytes)
        .with_max_bytes(settings.fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(SESSIONLESS_EPOCH)
        .with_topics(topics);
    if version >= 15 {
        request = request.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(context.node_id.0))
                .with_replica_epoch(context.broker_epoch),
        );
    } else {
        request = request.with_replica_id(BrokerId(context.node_id.0));
    }
    let timeout_ms = settings.socket_timeout_ms + settings.fetch_wait_max_ms.max(0) as u64;
    let response: FetchResponse = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        conn.send(ApiKey::Fetch, version, &request),
    )
    .await
    .map_err(|_| RoundError::Timeout(timeout_ms))??;
    if response.error_code != 0 {
        return Err(RoundError::Client(ClientError::Protocol {
            address: conn.address().to_string(),
            what: format!("fetch failed with error code {}", response.error_code),
        }));
    }
    let backoff = Duration::from_millis(settings.fetch_backoff_ms);
    for topic in response.responses {
        for data in topic.partitions {
            let key = if uses_topic_ids {
                (topic.topic_id, String::new(), data.partition_index)
            } else {
                (
                    Uuid::nil(),
                    topic.topic.0.as_str().to_string(),
                    data.partition_index,
                )
            };
            let Some(w) = by_topic.get(&key) else {
                continue;
            };
            if !still_wanted(fetcher, w) {
                continue;
            }
            match apply(fetcher, context, slot, w, data).await {
                Ok(()) => {}
                Err(Applied::BackOff(reason)) => {
                    tracing::debug!(topic = %w.key.0, partition = w.key.1, %reason, "partition fetch backs off");
                    back_off(fetcher, w, backoff);
                }
                Err(Applied::Fenced) => {}
            }
        }
    }
    Ok(())
}

/// Why one partition's response was not applied.
enum Applied {
    /// Retry the partition after the backoff.
    BackOff(String),
    /// The partition moved on (new epoch or role); the response is moot.
    Fenced,
}

impl From<FollowerError> for Applied {
    fn from(error: FollowerError) -> Self {
        match error {
            FollowerError::Fenced { .. } => Applied::Fenced,
            other => Applied::BackOff(other.to_string()),
        }
    }
}

/// Applies one partition's part of a fetch response.
async fn apply(
    fetcher: &Fetcher,
    context: &FetchContext,
    slot: &mut Option<KafkaConnection>,
    w: &Wanted,
    data: PartitionData,
) -> Result<(), Applied> {
    let partition = &w.partition;
    match ErrorCode::try_from_code(data.error_code) {
        None => {}
        Some(ErrorCode::OffsetOutOfRange) => {
            return resolve_out_of_range(fetcher, context, slot, w, data.log_start_offset).await;
        }
        Some(other) => return Err(Applied::BackOff(format!("{other:?}"))),
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        let (local_epoch, local_end) = partition
            .log
            .end_offset_for_epoch(LeaderEpoch(diverging.epoch));
        let log_end = partition.log.log_end_offset().0;
        let target = divergence_truncation_offset(
            diverging.epoch,
            diverging.end_offset,
            (local_epoch.0, local_end.0),
            log_end,
        );
        tracing::info!(
            topic = %w.key.0,
            partition = w.key.1,
            leader_epoch = diverging.epoch,
            leader_end_offset = diverging.end_offset,
            log_end_offset = log_end,
            truncate_to = target,
            "log diverged from the leader"
        );
        partition.truncate_as_follower(w.epoch, Offset(target))?;
        return Ok(());
    }
    let records = data.records.unwrap_or_default();
    let log_end = if records.is_empty() {
        partition.log.log_end_offset()
    } else {
        partition.append_as_follower(w.epoch, records)?
    };
    partition.update_follower_offsets(w.epoch, data.high_watermark, data.log_start_offset)?;
    let lag = (data.high_watermark - log_end.0).max(0);
    metrics::gauge!(
        "spate_replica_fetcher_lag_records",
        "topic" => w.key.0.to_string(),
        "partition" => w.key.1.to_string()
    )
    .set(lag as f64);
    Ok(())
}

/// OFFSET_OUT_OF_RANGE (Kafka's `fetchOffsetAndTruncate`): past the leader's log end, cut back
/// to it; before the leader's log start, start over there; otherwise retry.
async fn resolve_out_of_range(
    fetcher: &Fetcher,
    context: &FetchContext,
    slot: &mut Option<KafkaConnection>,
    w: &Wanted,
    leader_log_start: i64,
) -> Result<(), Applied> {
    let partition = &w.partition;
    let log_end = partition.log.log_end_offset().0;
    let leader_end = leader_log_end(fetcher, context, slot, w)
        .await
        .map_err(|e| Applied::BackOff(e.to_string()))?;
    if leader_end < log_end {
        tracing::warn!(topic = %w.key.0, partition = w.key.1, log_end_offset = log_end, leader_end, "ahead of the leader's log end; truncating");
        partition.truncate_as_follower(w.epoch, Offset(leader_end))?;
        return Ok(());
    }
    if leader_log_start > log_end {
        tracing::warn!(topic = %w.key.0, partition = w.key.1, log_end_offset = log_end, leader_log_start, "behind the leader's log start; starting over there");
        partition.truncate_fully_as_follower(w.epoch, Offset(leader_log_start))?;
        return Ok(());
    }
    Err(Applied::BackOff(format!(
        "offset {log_end} out of range at the leader (log end {leader_end}, start {leader_log_start})"
    )))
}

/// The leader's log end offset: ListOffsets "latest" sent as a replica, which Kafka answers with
/// the log end rather than the high watermark.
async fn leader_log_end(
    fetcher: &Fetcher,
    context: &FetchContext,
    slot: &mut Option<KafkaConnection>,
    w: &Wanted,
) -> Result<i64, RoundError> {
    let conn = connection(fetcher, context, slot).await?;
    let version = conn.version(ApiKey::ListOffsets, LIST_OFFSETS_VERSIONS)?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(context.node_id.0))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(w.key.0.to_string())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(w.key.1)
                        .with_current_leader_epoch(w.epoch.0)
                        .with_timestamp(LATEST_TIMESTAMP),
                ]),
        ]);
    let timeout_ms = context.settings.socket_timeout_ms;
    let response: ListOffsetsResponse = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        conn.send(ApiKey::ListOffsets, version, &request),
    )
    .await
    .map_err(|_| RoundError::Timeout(timeout_ms))??;
    let found = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == w.key.1);
    match found {
        Some(p) if p.error_code == 0 => Ok(p.offset),
        Some(p) => Err(RoundError::Client(ClientError::Protocol {
            address: conn.address().to_string(),
            what: format!("ListOffsets failed with error code {}", p.error_code),
        })),
        None => Err(RoundError::Client(ClientError::Protocol {
            address: conn.address().to_string(),
            what: "ListOffsets answered without the partition".into(),
        })),
    }
}
