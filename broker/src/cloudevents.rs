//! The broker side of CloudEvents: [`BrokerLog`] implements `spate_cloudevents`'s narrow
//! `EventLog` trait over the local partitions, the metadata image and the group coordinator,
//! forwarding appends and offset commits to the node that leads the partition or coordinates
//! the group when that is another (`forward`), and [`start`] runs the ingress listener, the
//! trigger dispatcher and the management API.
//!
//! Brokers and triggers are metadata records ([`resources`]), so every node sees them and they
//! survive restarts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spate_cloudevents::admin::Control;
use spate_cloudevents::clock::TokioClock;
use spate_cloudevents::dispatcher::Dispatcher;
use spate_cloudevents::ingress::{Ingress, IngressConfig};
use spate_cloudevents::log::{EventLog, LogError, Record, RecordHeader, StoredRecord, TopicSpec};
use spate_cloudevents::registry::Registry;
use spate_cloudevents::store::FileStore;
use spate_controller::controller::{ControllerError, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_controller::image::MetadataImage;
use spate_protocol::records::{Compression, Header, RecordBatch, RecordBatchBuilder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::forward::{Peer, PeerPool};
use self::lanes::Lanes;
use crate::Broker;
use crate::group::{CommitIdentity, GroupError, OFFSETS_TOPIC, OffsetCommitEntry};
use crate::replica::partition::{Isolation, Partition, ProduceError, ReadError};

mod forward;
mod lanes;
pub mod resources;

/// Bytes read from a partition per dispatcher read; bounds memory per trigger worker.
pub const READ_MAX_BYTES: usize = 1024 * 1024;
/// How long an `acks=all` append waits for the high watermark to pass it.
pub const ACKS_ALL_TIMEOUT_MS: u64 = 30_000;
/// Directory under the data dir where an earlier version kept the brokers and triggers (imported
/// into the metadata at start).
pub const STORE_DIR_NAME: &str = "cloudevents";

/// The broker as CloudEvents sees it. Appends, offset commits and offset fetches work on any
/// node: what another node leads or coordinates is forwarded to it. Reads stay local, since the
/// dispatcher reads only the partitions this node leads.
pub struct BrokerLog {
    broker: Arc<Broker>,
    /// Connections to the other nodes, for forwarded appends and offset commits and fetches.
    peers: PeerPool,
    /// Appends queued per local partition, written in shared batches.
    lanes: Lanes,
}

/// Where an append to a partition goes.
enum AppendRoute {
    /// This node leads the partition and hosts it.
    Local(Arc<Partition>),
    /// Another node leads it.
    Forward(Peer),
}

/// Where a group's offsets are committed and fetched: the leader of its `__consumer_offsets`
/// partition.
enum GroupRoute {
    /// This node, as of this image.
    Local(Arc<MetadataImage>),
    /// Another node.
    Forward(Peer),
}

impl BrokerLog {
    /// Wraps a running broker.
    pub fn new(broker: Arc<Broker>) -> Self {
        BrokerLog {
            broker,
            peers: PeerPool::new(),
            lanes: Lanes::default(),
        }
    }

    /// The partition's leader as the image has it: this node (with its local replica) or
    /// another. No leader, a leader this node does not host yet, or a fenced one are all "not
    /// the leader": transient, the controller is moving leadership or this node is catching up.
    fn append_route(&self, topic: &str, index: i32) -> Result<AppendRoute, LogError> {
        let image = self.broker.metadata.image();
        let Some(state) = image.topic(topic).and_then(|t| t.partitions.get(&index)) else {
            return Err(LogError::UnknownTopic {
                topic: format!("{topic}-{index}"),
            });
        };
        let route = match state.leader {
            Some(leader) if leader == self.broker.node_id => self
                .broker
                .replicas
                .get(topic, index)
                .map(AppendRoute::Local),
            Some(leader) => Peer::in_image(&image, leader).map(AppendRoute::Forward),
            None => None,
        };
        route.ok_or_else(|| LogError::NotLeader {
            topic: topic.to_owned(),
            partition: index,
        })
    }

    /// The coordinator of `group`, found as FindCoordinator finds it.
    async fn group_route(&self, group: &str) -> Result<GroupRoute, LogError> {
        self.ensure_offsets_topic(group).await?;
        let image = self.broker.metadata.image();
        let index = self.broker.groups.partition_for_group(&image, group);
        let leader = image
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(&index))
            .and_then(|p| p.leader);
        match leader {
            Some(leader) if leader == self.broker.node_id => Some(GroupRoute::Local(image)),
            Some(leader) => Peer::in_image(&image, leader).map(GroupRoute::Forward),
            None => None,
        }
        .ok_or_else(|| LogError::CoordinatorNotAvailable {
            group: group.to_owned(),
        })
    }

    /// How long a coordinator may wait for its replicas on an offset commit.
    fn offsets_commit_timeout_ms(&self) -> u64 {
        self.broker.groups.settings().offsets_commit_timeout_ms
    }

    /// A partition this node hosts, for reads.
    fn partition(&self, topic: &str, index: i32) -> Result<Arc<Partition>, LogError> {
        if let Some(p) = self.broker.replicas.get(topic, index) {
            return Ok(p);
        }
        let known = self
            .broker
            .metadata
            .image()
            .topic(topic)
            .is_some_and(|t| t.partitions.contains_key(&index));
        Err(if known {
            LogError::NotLeader {
                topic: topic.to_owned(),
                partition: index,
            }
        } else {
            LogError::UnknownTopic {
                topic: format!("{topic}-{index}"),
            }
        })
    }

    /// Creates `__consumer_offsets` on first use, as FindCoordinator does for Kafka clients.
    async fn ensure_offsets_topic(&self, group: &str) -> Result<(), LogError> {
        if self.broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        crate::handlers::groups::create_offsets_topic(&self.broker)
            .await
            .map_err(|why| {
                tracing::warn!(%why, "cannot create {OFFSETS_TOPIC}");
                LogError::CoordinatorNotAvailable {
                    group: group.to_owned(),
                }
            })
    }
}

/// Appends one batch to a partition this node leads, after the `acks=all` ISR check; returns the
/// offset of its first record. [`wait_committed`] then waits for the high watermark.
fn append_now(
    broker: &Broker,
    topic: &str,
    partition: i32,
    p: &Partition,
    batch: Bytes,
) -> Result<i64, LogError> {
    // acks=all refuses up front when the ISR is below min.insync.replicas, as Kafka does.
    let isr = broker
        .metadata
        .image()
        .topic(topic)
        .and_then(|t| t.partitions.get(&partition).map(|p| p.isr.len()))
        .unwrap_or(0);
    if (isr as i64) < i64::from(p.settings().min_insync_replicas) {
        return Err(LogError::NotEnoughReplicas {
            topic: topic.to_owned(),
            partition,
        });
    }
    let outcome = p
        .append_from_client(
            batch,
            now_ms(),
            broker.settings.decompressed_batch_max_bytes,
        )
        .map_err(|e| map_produce_error(topic, partition, e))?;
    Ok(outcome.base_offset.0)
}

/// Waits until the high watermark has passed `last` (`acks=all`), for at most
/// [`ACKS_ALL_TIMEOUT_MS`].
async fn wait_committed(p: &Partition, last: i64) -> Result<(), LogError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ACKS_ALL_TIMEOUT_MS);
    loop {
        let arrived = p.data_arrived.notified();
        if p.high_watermark() > last {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return Err(LogError::Timeout);
        }
    }
}

/// The records as one uncompressed record batch, as a producer would send them.
fn record_batch(records: Vec<Record>) -> Result<Bytes, LogError> {
    let mut builder = RecordBatchBuilder::new(Compression::None);
    for r in records {
        let headers = r
            .headers
            .into_iter()
            .map(|h| Header {
                key: Bytes::from(h.key),
                value: h.value,
            })
            .collect();
        builder
            .append(r.timestamp_ms, r.key, r.value, headers)
            .map_err(|e| LogError::Other(e.to_string()))?;
    }
    builder.build().map_err(|e| LogError::Other(e.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn map_produce_error(topic: &str, partition: i32, e: ProduceError) -> LogError {
    match e {
        ProduceError::NotLeader => LogError::NotLeader {
            topic: topic.to_owned(),
            partition,
        },
        ProduceError::TooLarge {
            size_bytes,
            max_bytes,
        } => LogError::TooLarge {
            size_bytes,
            max_bytes: max_bytes.max(0) as usize,
        },
        other => LogError::Other(other.to_string()),
    }
}

fn map_group_error(group: &str, e: GroupError) -> LogError {
    match e {
        GroupError::NotCoordinator
        | GroupError::LoadInProgress
        | GroupError::CoordinatorNotAvailable => LogError::CoordinatorNotAvailable {
            group: group.to_owned(),
        },
        other => LogError::Other(other.to_string()),
    }
}

fn map_controller_error(e: ControllerError) -> LogError {
    match e {
        ControllerError::Unavailable(text) => {
            LogError::Other(format!("controller unavailable: {text}"))
        }
        other => LogError::Other(other.to_string()),
    }
}

impl EventLog for BrokerLog {
    async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<i64, LogError> {
        match self.append_route(topic, partition)? {
            AppendRoute::Local(p) => {
                self.lanes
                    .append(&self.broker, topic, partition, p, records)
                    .await
            }
            // The leader checks the ISR, appends and waits for its high watermark, as for any
            // producer with acks=all.
            AppendRoute::Forward(leader) => {
                let batch = record_batch(records)?;
                let max_message_bytes = || {
                    let image = self.broker.metadata.image();
                    let settings = self.broker.topic_settings(&image, topic);
                    settings.max_message_bytes.max(0) as usize
                };
                self.peers
                    .produce(
                        &leader,
                        topic,
                        partition,
                        batch,
                        ACKS_ALL_TIMEOUT_MS,
                        max_message_bytes,
                    )
                    .await
            }
        }
    }

    fn partition_count(&self, topic: &str) -> Result<i32, LogError> {
        self.broker
            .metadata
            .image()
            .topic(topic)
            .map(|t| t.partitions.len() as i32)
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.to_owned(),
            })
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let p = self.partition(topic, partition)?;
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let arrived = p.data_arrived.notified();
            let read = p
                .read(offset, READ_MAX_BYTES, Isolation::ReadCommitted, true)
                .map_err(|e| match e {
                    ReadError::OutOfRange { requested } => LogError::OffsetOutOfRange {
                        offset: requested,
                        log_start_offset: p.log.log_start_offset().0,
                    },
                    other => LogError::Other(other.to_string()),
                })?;
            let mut out = Vec::new();
            let mut bytes = read.records;
            while !bytes.is_empty() && out.len() < max_records {
                let batch = RecordBatch::split_first(&mut bytes)
                    .map_err(|e| LogError::Other(e.to_string()))?;
                if batch.is_control() {
                    continue;
                }
                let base = batch.base_offset();
                let iter = batch
                    .records(self.broker.settings.decompressed_batch_max_bytes)
                    .map_err(|e| LogError::Other(e.to_string()))?;
                for r in iter {
                    let r = r.map_err(|e| LogError::Other(e.to_string()))?;
                    let record_offset = r.offset(base).0;
                    if record_offset < offset {
                        continue;
                    }
                    out.push(StoredRecord {
                        offset: record_offset,
                        record: Record {
                            timestamp_ms: r.timestamp_in(&batch),
                            key: r.key,
                            value: r.value,
                            headers: r
                                .headers
                                .into_iter()
                                .map(|h| RecordHeader {
                                    key: String::from_utf8_lossy(&h.key).into_owned(),
                                    value: h.value,
                                })
                                .collect(),
                        },
                    });
                    if out.len() >= max_records {
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        Ok(self.partition(topic, partition)?.last_stable_offset())
    }

    async fn start_offset(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        Ok(self.partition(topic, partition)?.log.log_start_offset().0)
    }

    async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), LogError> {
        let image = match self.group_route(group).await? {
            GroupRoute::Local(image) => image,
            GroupRoute::Forward(coordinator) => {
                let timeout_ms = self.offsets_commit_timeout_ms();
                return self
                    .peers
                    .commit_offset(&coordinator, group, topic, partition, offset, timeout_ms)
                    .await;
            }
        };
        let identity = CommitIdentity {
            member_id: String::new(),
            instance_id: None,
            generation_or_epoch: -1,
            api_version: 8,
            retention_ms: None,
        };
        let entry = OffsetCommitEntry {
            topic: topic.to_owned(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        };
        self.broker
            .groups
            .commit_offsets(&image, group, &identity, &[entry])
            .await
            .map(|_| ())
            .map_err(|e| map_group_error(group, e))
    }

    async fn fetch_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, LogError> {
        let image = match self.group_route(group).await? {
            GroupRoute::Local(image) => image,
            GroupRoute::Forward(coordinator) => {
                let timeout_ms = self.offsets_commit_timeout_ms();
                return self
                    .peers
                    .fetch_offset(&coordinator, group, topic, partition, timeout_ms)
                    .await;
            }
        };
        let fetched = self
            .broker
            .groups
            .fetch_offsets(
                &image,
                group,
                None,
                Some(vec![(topic.to_owned(), vec![partition])]),
            )
            .await
            .map_err(|e| map_group_error(group, e))?;
        Ok(fetched
            .into_iter()
            .find(|(t, p, _)| t == topic && *p == partition)
            .and_then(|(_, _, v)| v.map(|v| v.offset)))
    }

    fn led_partitions(&self, topic: &str) -> Vec<i32> {
        let image = self.broker.metadata.image();
        image
            .topic(topic)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == Some(self.broker.node_id))
                    .map(|(i, _)| *i)
                    .filter(|i| self.broker.replicas.get(topic, *i).is_some())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        if self.broker.metadata.image().topic(&spec.name).is_some() {
            return Ok(());
        }
        let configs: Vec<(String, String)> = spec.configs.clone().into_iter().collect();
        self.broker
            .validate_topic_configs(&configs)
            .map_err(LogError::Other)?;
        let request = ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: spec.name.clone(),
                partitions: Some(spec.partitions),
                replication_factor: (spec.replication_factor > 0)
                    .then_some(spec.replication_factor),
                assignments: BTreeMap::new(),
                configs,
            }],
            validate_only: false,
        };
        match self
            .broker
            .submit(request)
            .await
            .map_err(map_controller_error)?
        {
            ControllerReply::TopicsCreated(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err(ControllerError::TopicAlreadyExists(_))) => Ok(()),
                Some(Err(e)) => Err(map_controller_error(e)),
                None => Err(LogError::Other("no result for the topic".into())),
            },
            _ => Err(LogError::Other("unexpected controller reply".into())),
        }
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let Some(id) = self.broker.metadata.image().topic(topic).map(|t| t.id) else {
            return Ok(());
        };
        match self
            .broker
            .submit(ControllerRequest::DeleteTopics {
                topic_ids: vec![id],
            })
            .await
            .map_err(map_controller_error)?
        {
            ControllerReply::TopicsDeleted(results) => match results.into_iter().next() {
                Some(Err(e)) => Err(map_controller_error(e)),
                _ => Ok(()),
            },
            _ => Err(LogError::Other("unexpected controller reply".into())),
        }
    }
}

/// The CloudEvents parts of a running node.
pub struct CloudEvents {
    /// The bound ingress address.
    pub ingress_addr: SocketAddr,
    /// Management operations, for the admin API.
    pub control: Arc<Control<BrokerLog, TokioClock>>,
}

/// Follows the brokers and triggers in the metadata, then serves the ingress on `listener` and
/// runs the dispatcher until `shutdown`.
pub async fn start(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> std::io::Result<CloudEvents> {
    let ingress_addr = listener.local_addr()?;
    let log = Arc::new(BrokerLog::new(broker.clone()));
    let registry = Arc::new(Registry::new());
    let dispatcher = Dispatcher::new(log.clone(), registry.clone(), Arc::new(TokioClock));
    let sync = resources::RegistrySync::new(registry.clone());
    sync.sync(&broker.metadata.image());
    tasks.spawn(sync.clone().run(broker.metadata.clone(), shutdown.clone()));
    tasks.spawn(resources::import_file_store(
        FileStore::new(broker.replicas.data_dir().join(STORE_DIR_NAME)),
        broker.metadata.clone(),
        shutdown.clone(),
    ));
    let store = resources::MetadataStore::new(broker.metadata.clone(), sync);
    let control = Control::new(
        log.clone(),
        registry.clone(),
        dispatcher.clone(),
        Some(Arc::new(store)),
    );
    let ingress = Ingress::new(log, registry, IngressConfig::default());
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) =
            spate_cloudevents::ingress::serve(
                listener,
                ingress,
                async move { stop.cancelled().await },
            )
            .await
        {
            tracing::warn!(%error, "CloudEvents ingress stopped");
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        stop.cancelled().await;
        let _ = stop_tx.send(true);
    });
    tasks.spawn(dispatcher.run(stop_rx));
    Ok(CloudEvents {
        ingress_addr,
        control,
    })
}

/// `spate broker ...`, `spate trigger ...` and `spate apply -f`: clients of the admin API.
pub mod cli {
    use std::process::ExitCode;

    use axum::http::Method;
    use clap::{Args, Subcommand};
    use serde_json::{Value, json};
    use spate_cloudevents::admin::call;

    /// Where the admin API listens.
    #[derive(Debug, Args)]
    pub struct AdminTarget {
        /// Admin address of any node (host:port).
        #[arg(
            long,
            env = "SPATE_ADMIN_ADDR",
            default_value = "127.0.0.1:9644",
            global = true
        )]
        pub admin: String,
        /// Namespace of the broker or trigger.
        #[arg(short = 'n', long, default_value = "default", global = true)]
        pub namespace: String,
    }

    /// `spate broker`.
    #[derive(Debug, Args)]
    pub struct BrokerArgs {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: BrokerCommand,
    }

    // Parsed once per process: the variants' size difference costs nothing.
    #[allow(clippy::large_enum_variant)]
    #[derive(Debug, Subcommand)]
    enum BrokerCommand {
        /// Create a broker (a topic `knative-broker-<namespace>-<name>`).
        Create {
            /// Broker name.
            name: String,
            /// Topic partitions.
            #[arg(long)]
            partitions: Option<i32>,
            /// Replication factor.
            #[arg(long)]
            replication_factor: Option<i16>,
            /// Topic config, `name=value` (repeatable).
            #[arg(long = "config")]
            configs: Vec<String>,
            #[command(flatten)]
            delivery: DeliveryArgs,
        },
        /// Show one broker with its status.
        Get {
            /// Broker name.
            name: String,
        },
        /// List brokers.
        List,
        /// Delete a broker and its topic.
        Delete {
            /// Broker name.
            name: String,
        },
    }

    /// Delivery options shared by brokers (defaults) and triggers.
    #[derive(Debug, Args)]
    struct DeliveryArgs {
        /// Retries after the first attempt.
        #[arg(long)]
        retry: Option<u32>,
        /// `linear` or `exponential`.
        #[arg(long)]
        backoff_policy: Option<String>,
        /// ISO-8601 duration, e.g. PT0.5S.
        #[arg(long)]
        backoff_delay: Option<String>,
        /// ISO-8601 per-attempt timeout.
        #[arg(long)]
        timeout: Option<String>,
        /// Dead-letter sink URL.
        #[arg(long)]
        dead_letter_sink: Option<String>,
    }

    impl DeliveryArgs {
        fn to_json(&self) -> Option<Value> {
            let mut d = serde_json::Map::new();
            if let Some(r) = self.retry {
                d.insert("retry".into(), json!(r));
            }
            if let Some(p) = &self.backoff_policy {
                d.insert("backoffPolicy".into(), json!(p));
            }
            if let Some(p) = &self.backoff_delay {
                d.insert("backoffDelay".into(), json!(p));
            }
            if let Some(p) = &self.timeout {
                d.insert("timeout".into(), json!(p));
            }
            if let Some(p) = &self.dead_letter_sink {
                d.insert("deadLetterSink".into(), json!({ "uri": p }));
            }
            (!d.is_empty()).then_some(Value::Object(d))
        }
    }

    /// `spate trigger`.
    #[derive(Debug, Args)]
    pub struct TriggerArgs {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: TriggerCommand,
    }

    // Parsed once per process: the variants' size difference costs nothing.
    #[allow(clippy::large_enum_variant)]
    #[derive(Debug, Subcommand)]
    enum TriggerCommand {
        /// Create a trigger (a consumer group `knative-trigger-<namespace>-<name>`).
        Create {
            /// Trigger name.
            name: String,
            /// The broker it subscribes to.
            #[arg(long)]
            broker: String,
            /// Subscriber URL.
            #[arg(long)]
            subscriber: String,
            /// Exact attribute match, `attribute=value` (repeatable; Knative `filter`).
            #[arg(long = "filter")]
            filters: Vec<String>,
            /// A CESQL expression (SubscriptionsAPI `cesql` filter; overrides --filter).
            #[arg(long)]
            cesql: Option<String>,
            /// Deliver one event at a time per partition.
            #[arg(long)]
            ordered: bool,
            #[command(flatten)]
            delivery: DeliveryArgs,
        },
        /// Show one trigger with its status (readiness, lag, delivery counts).
        Get {
            /// Trigger name.
            name: String,
        },
        /// List triggers.
        List,
        /// Delete a trigger.
        Delete {
            /// Trigger name.
            name: String,
        },
    }

    /// `spate apply`.
    #[derive(Debug, Args)]
    pub struct ApplyArgs {
        /// A YAML file of Knative `eventing.knative.dev/v1` Broker and Trigger objects.
        #[arg(short = 'f', long = "filename")]
        file: std::path::PathBuf,
        /// Admin address of any node (host:port).
        #[arg(long, env = "SPATE_ADMIN_ADDR", default_value = "127.0.0.1:9644")]
        admin: String,
    }

    fn runtime<F: std::future::Future<Output = Result<(), String>>>(
        f: impl FnOnce() -> F,
    ) -> ExitCode {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("spate: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match rt.block_on(f()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("spate: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn send(
        admin: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let payload = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (status, text) = call(admin, method, path, payload).await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let message = value["error"].as_str().map(str::to_owned).unwrap_or(text);
            return Err(format!("{status}: {message}"));
        }
        Ok(value)
    }

    fn pretty(v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }

    /// Runs `spate broker`.
    pub fn broker(args: BrokerArgs) -> ExitCode {
        runtime(|| async move {
            let t = &args.target;
            match args.command {
                BrokerCommand::Create {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                    delivery,
                } => {
                    let mut topic_configs = serde_json::Map::new();
                    for c in configs {
                        let (k, v) = c
                            .split_once('=')
                            .ok_or_else(|| format!("--config {c}: expected name=value"))?;
                        topic_configs.insert(k.to_owned(), json!(v));
                    }
                    let mut spec = json!({ "namespace": t.namespace, "name": name, "topicConfigs": topic_configs });
                    if let Some(p) = partitions {
                        spec["partitions"] = json!(p);
                    }
                    if let Some(rf) = replication_factor {
                        spec["replicationFactor"] = json!(rf);
                    }
                    if let Some(d) = delivery.to_json() {
                        spec["delivery"] = d;
                    }
                    pretty(&send(&t.admin, Method::POST, "/v1/brokers", Some(spec)).await?);
                }
                BrokerCommand::Get { name } => {
                    pretty(
                        &send(
                            &t.admin,
                            Method::GET,
                            &format!("/v1/brokers/{}/{name}", t.namespace),
                            None,
                        )
                        .await?,
                    );
                }
                BrokerCommand::List => {
                    let list = send(&t.admin, Method::GET, "/v1/brokers", None).await?;
                    println!(
                        "{:<20} {:<24} {:<6} {:<10} TOPIC",
                        "NAMESPACE", "NAME", "READY", "PARTITIONS"
                    );
                    for b in list.as_array().into_iter().flatten() {
                        println!(
                            "{:<20} {:<24} {:<6} {:<10} {}",
                            b["namespace"].as_str().unwrap_or(""),
                            b["name"].as_str().unwrap_or(""),
                            b["status"]["ready"],
                            b["status"]["partitions"],
                            b["status"]["topic"].as_str().unwrap_or("")
                        );
                    }
                }
                BrokerCommand::Delete { name } => {
                    send(
                        &t.admin,
                        Method::DELETE,
                        &format!("/v1/brokers/{}/{name}", t.namespace),
                        None,
                    )
                    .await?;
                    println!("broker {}/{name} deleted", t.namespace);
                }
            }
            Ok(())
        })
    }

    /// Runs `spate trigger`.
    pub fn trigger(args: TriggerArgs) -> ExitCode {
        runtime(|| async move {
            let t = &args.target;
            match args.command {
                TriggerCommand::Create {
                    name,
                    broker,
                    subscriber,
                    filters,
                    cesql,
                    ordered,
                    delivery,
                } => {
                    let mut attributes = serde_json::Map::new();
                    for f in filters {
                        let (k, v) = f
                            .split_once('=')
                            .ok_or_else(|| format!("--filter {f}: expected attribute=value"))?;
                        attributes.insert(k.to_owned(), json!(v));
                    }
                    let mut spec = json!({
                        "namespace": t.namespace,
                        "name": name,
                        "broker": broker,
                        "subscriber": { "uri": subscriber },
                        "deliveryOrder": if ordered { "ordered" } else { "unordered" },
                    });
                    if !attributes.is_empty() {
                        spec["filter"] = json!({ "attributes": attributes });
                    }
                    if let Some(expr) = cesql {
                        spec["filters"] = json!([{ "cesql": expr }]);
                    }
                    if let Some(d) = delivery.to_json() {
                        spec["delivery"] = d;
                    }
                    pretty(&send(&t.admin, Method::POST, "/v1/triggers", Some(spec)).await?);
                }
                TriggerCommand::Get { name } => {
                    pretty(
                        &send(
                            &t.admin,
                            Method::GET,
                            &format!("/v1/triggers/{}/{name}", t.namespace),
                            None,
                        )
                        .await?,
                    );
                }
                TriggerCommand::List => {
                    let list = send(&t.admin, Method::GET, "/v1/triggers", None).await?;
                    println!(
                        "{:<20} {:<24} {:<20} {:<6} {:>8} {:>10} {:>8}",
                        "NAMESPACE", "NAME", "BROKER", "READY", "LAG", "DELIVERED", "FAILED"
                    );
                    for tr in list.as_array().into_iter().flatten() {
                        let s = &tr["status"];
                        let failed = s["deadLettered"].as_u64().unwrap_or(0)
                            + s["dropped"].as_u64().unwrap_or(0);
                        println!(
                            "{:<20} {:<24} {:<20} {:<6} {:>8} {:>10} {:>8}",
                            tr["namespace"].as_str().unwrap_or(""),
                            tr["name"].as_str().unwrap_or(""),
                            tr["broker"].as_str().unwrap_or(""),
                            s["ready"],
                            s["lagRecords"],
                            s["delivered"],
                            failed
                        );
                    }
                }
                TriggerCommand::Delete { name } => {
                    send(
                        &t.admin,
                        Method::DELETE,
                        &format!("/v1/triggers/{}/{name}", t.namespace),
                        None,
                    )
                    .await?;
                    println!("trigger {}/{name} deleted", t.namespace);
                }
            }
            Ok(())
        })
    }

    /// Runs `spate apply -f FILE`.
    pub fn apply(args: ApplyArgs) -> ExitCode {
        runtime(|| async move {
            let text =
                std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
            let (status, body) = call(
                &args.admin,
                Method::POST,
                "/v1/apply",
                Some(("application/yaml", text)),
            )
            .await?;
            let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status >= 400 {
                return Err(format!(
                    "{}: {}",
                    args.file.display(),
                    value["error"].as_str().unwrap_or(&body)
                ));
            }
            for a in value.as_array().into_iter().flatten() {
                println!(
                    "{}.eventing.knative.dev/{} {} (namespace {})",
                    a["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                    a["name"].as_str().unwrap_or(""),
                    a["action"].as_str().unwrap_or(""),
                    a["namespace"].as_str().unwrap_or("")
                );
            }
            Ok(())
        })
    }
}
