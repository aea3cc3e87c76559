//! Startup, the bounded accept loop, and graceful shutdown.
//!
//! Startup order: start the metadata quorum (its controller listener first), bind every
//! listener (port 0 allowed), register this broker with its advertised address (the bound port
//! when none is configured) and wait until the controller unfences it, start serving, and only
//! then write `<data_dir>/listeners.json` — the signal, for tools and tests, that the node is
//! ready. Shutdown runs the other way: a controlled shutdown moves this broker's leaderships
//! away first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_controller::controller::ControllerSettings;
use spate_controller::frontend::MetadataFrontend;
use spate_controller::quorum::{QuorumOptions, QuorumTiming, RaftQuorum};
use spate_controller::records::Endpoint;
use spate_protocol::types::NodeId;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use spate_storage::{Clock, LogManagerConfig, SystemClock, TopicPartition};

use crate::fetch_session::FetchSessionCache;
use crate::replica::manager::ReplicaManager;
use crate::settings::BrokerSettings;
use crate::{Broker, admin, connection};

/// Name of the file announcing the bound listeners once the node is ready.
pub const LISTENERS_FILE_NAME: &str = "listeners.json";
/// Kafka's file holding the node's identity in each data dir.
const META_PROPERTIES_FILE_NAME: &str = "meta.properties";

/// Everything needed to start a node.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Node id.
    pub node_id: NodeId,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Kafka listener bind address.
    pub kafka_listen: String,
    /// Advertised Kafka address; the bound address when `None`.
    pub kafka_advertise: Option<String>,
    /// Admin HTTP bind address.
    pub admin_listen: String,
    /// CloudEvents ingress bind address.
    pub cloudevents_listen: String,
    /// Expected cluster id; when set and the data dir holds another, startup is refused.
    pub cluster_id: Option<String>,
    /// Rack.
    pub rack: Option<String>,
    /// Broker settings.
    pub settings: BrokerSettings,
    /// Broker configs from the file, environment and flags, by Kafka name.
    pub static_configs: std::collections::BTreeMap<String, String>,
    /// How this node takes part in the metadata quorum.
    pub quorum: QuorumSettings,
}

/// How a node takes part in the metadata quorum.
#[derive(Debug, Clone)]
pub struct QuorumSettings {
    /// Controller listener bind address (port 0 binds a free port).
    pub listen: String,
    /// `controller.quorum.voters` as (id, address); empty means this node is the only voter.
    pub voters: Vec<(NodeId, String)>,
    /// Quorum timing (election timeout, broker session, …).
    pub timing: QuorumTiming,
}

impl Default for QuorumSettings {
    /// A single-node quorum on a free loopback port.
    fn default() -> Self {
        QuorumSettings {
            listen: "127.0.0.1:0".into(),
            voters: Vec::new(),
            timing: QuorumTiming::default(),
        }
    }
}

/// How long a clean shutdown waits for the controller to move this broker's leaderships away.
const CONTROLLED_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind {what} listener on {address}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    DataDir {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The data directory belongs to another cluster or node.
    #[error("{0}")]
    Identity(String),
    /// The metadata quorum could not start.
    #[error(transparent)]
    Metadata(#[from] spate_controller::quorum::StartError),
    /// The controller refused the registration.
    #[error("broker registration failed: {0}")]
    Registration(String),
    /// The partition logs could not be opened.
    #[error("cannot open the partition logs: {0}")]
    Logs(String),
    /// An address could not be parsed.
    #[error("invalid advertised address {0:?}: expected host:port")]
    Advertise(String),
}

/// A running node.
pub struct RunningServer {
    /// The bound Kafka address.
    pub kafka_addr: SocketAddr,
    /// The bound admin address.
    pub admin_addr: SocketAddr,
    /// The bound CloudEvents ingress address.
    pub cloudevents_addr: SocketAddr,
    /// The bound controller (quorum) address.
    pub controller_addr: SocketAddr,
    /// The shared broker state.
    pub broker: Arc<Broker>,
    quorum: Arc<RaftQuorum>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

fn data_dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads or creates `meta.properties`, returning the cluster id.
fn load_identity(options: &ServeOptions) -> Result<String, StartError> {
    let path = options.data_dir.join(META_PROPERTIES_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            };
            let stored_cluster = value("cluster.id").ok_or_else(|| {
                StartError::Identity(format!("{} has no cluster.id", path.display()))
            })?;
            if let Some(expected) = &options.cluster_id
                && *expected != stored_cluster
            {
                return Err(StartError::Identity(format!(
                    "{} belongs to cluster {stored_cluster}, but this node is configured for cluster {expected}",
                    path.display()
                )));
            }
            if let Some(stored_node) = value("node.id")
                && stored_node != options.node_id.0.to_string()
            {
                return Err(StartError::Identity(format!(
                    "{} belongs to node {stored_node}, but this node is configured as node {}",
                    path.display(),
                    options.node_id
                )));
            }
            Ok(stored_cluster)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = options
                .cluster_id
                .clone()
                .unwrap_or_else(|| default_cluster_id(options));
            let text = format!(
                "#\n#Written by spate\nnode.id={}\ncluster.id={cluster_id}\nversion=1\n",
                options.node_id
            );
            write_atomically(&path, text.as_bytes()).map_err(data_dir_error(&path))?;
            Ok(cluster_id)
        }
        Err(error) => Err(data_dir_error(&path)(error)),
    }
}

/// The cluster id a node adopts when none is configured. A single node makes up a random one.
/// Members of a cluster must agree without talking first (three StatefulSet pods start at once,
/// from configs that differ only in the node id), so theirs is derived from the voter list they
/// share.
fn default_cluster_id(options: &ServeOptions) -> String {
    let voters = &options.quorum.voters;
    let alone = voters.is_empty() || (voters.len() == 1 && voters[0].0 == options.node_id);
    if alone {
        return cluster_id_text(Uuid::new_v4().into_bytes());
    }
    let mut canonical: Vec<String> = voters.iter().map(|(id, a)| format!("{id}@{a}")).collect();
    canonical.sort();
    // FNV-1a, twice with different offsets: stable across builds and platforms, unlike std's
    // hasher, and 128 bits like a UUID.
    let fnv = |offset: u64| {
        canonical.join(",").bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let high = fnv(0xcbf2_9ce4_8422_2325);
    let low = fnv(0x6c62_272e_07bb_0142);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    cluster_id_text(bytes)
}

/// A cluster id in Kafka's form: a UUID's 16 bytes in URL-safe base64 without padding.
fn cluster_id_text(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_be_bytes(bytes);
    // 128 bits → 22 six-bit digits (the last carries 2 bits, padded as base64 does).
    bits <<= 4;
    let mut out = String::with_capacity(22);
    for i in (0..22).rev() {
        let digit = ((bits >> (i * 6)) & 0x3f) as usize;
        out.push(ALPHABET[digit] as char);
    }
    out
}

/// Writes a file through a temp file, fsync and rename, so readers never see half of it.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Starts a node and returns once it is serving.
pub async fn start(options: ServeOptions) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&options.data_dir).map_err(data_dir_error(&options.data_dir))?;
    let cluster_id = load_identity(&options)?;
    let advertised_host = options
        .kafka_advertise
        .as_deref()
        .and_then(split_host_port)
        .map(|(host, _)| host);
    let quorum = RaftQuorum::start(QuorumOptions {
        node_id: options.node_id,
        data_dir: options.data_dir.clone(),
        cluster_id: cluster_id.clone(),
        listen: options.quorum.listen.clone(),
        voters: options.quorum.voters.clone(),
        advertised_host,
        timing: options.quorum.timing.clone(),
        controller: ControllerSettings {
            default_partitions: options.settings.num_partitions,
            default_replication_factor: options.settings.default_replication_factor,
        },
    })
    .await?;
    let controller_addr = quorum.controller_addr();
    let metadata: Arc<dyn MetadataFrontend> = quorum.clone();

    let kafka_listener = TcpListener::bind(&options.kafka_listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "kafka",
            address: options.kafka_listen.clone(),
            source,
        })?;
    let kafka_addr = kafka_listener
        .local_addr()
        .map_err(data_dir_error(&options.data_dir))?;
    let admin_listener = TcpListener::bind(&options.admin_listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "admin",
            address: options.admin_listen.clone(),
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(data_dir_error(&options.data_dir))?;
    let cloudevents_listener = TcpListener::bind(&options.cloudevents_listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "cloudevents",
            address: options.cloudevents_listen.clone(),
            source,
        })?;

    let advertised = options
        .kafka_advertise
        .clone()
        .unwrap_or_else(|| kafka_addr.to_string());
    let (host, port) =
        split_host_port(&advertised).ok_or_else(|| StartError::Advertise(advertised.clone()))?;
    let broker_epoch = quorum
        .register_broker(
            vec![Endpoint {
                name: "PLAINTEXT".into(),
                host,
                port: u32::from(port),
                security_protocol: 0,
            }],
            options.rack.clone(),
        )
        .await
        .map_err(|e| StartError::Registration(e.to_string()))?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let replicas = open_logs(&options, clock.clone(), &metadata.image())?;
    let broker = Arc::new(Broker {
        node_id: options.node_id,
        cluster_id,
        settings: options.settings.clone(),
        metadata,
        broker_epoch,
        producer_ids: Default::default(),
        static_configs: options.static_configs.clone(),
        clock: clock.clone(),
        replicas,
        fetch_sessions: FetchSessionCache::new(),
        reconciled_offset: tokio::sync::watch::Sender::new(-1),
        groups: crate::group::GroupCoordinator::new(
            options.node_id,
            crate::group::CoordinatorSettings::defaults(),
            clock,
        ),
    });
    let image = broker.metadata.image();
    broker.replicas.remove_strays(&image);
    let shutdown = CancellationToken::new();
    broker.replicas.start_replication(
        broker.broker_epoch,
        crate::replica::settings::ReplicationSettings::from_layers(&broker.config_layers(&image)),
        broker.metadata.clone(),
        shutdown.clone(),
    );
    broker.reconcile(&image);

    let mut tasks = JoinSet::new();
    tasks.spawn(crate::replica::tasks::run(broker.clone(), shutdown.clone()));
    tasks.spawn(reconcile_loop(broker.clone(), shutdown.clone()));
    tasks.spawn(broker.groups.clone().run_expiry());
    tasks.spawn(accept_loop(
        broker.clone(),
        kafka_listener,
        shutdown.clone(),
    ));
    let cloudevents = crate::cloudevents::start(
        broker.clone(),
        cloudevents_listener,
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(data_dir_error(&options.data_dir))?;
    let cloudevents_addr = cloudevents.ingress_addr;
    tasks.spawn(admin::serve(
        broker.clone(),
        admin_listener,
        shutdown.clone(),
        spate_cloudevents::admin::router(cloudevents.control),
    ));

    let listeners = format!(
        "{{\"kafka\":\"{kafka_addr}\",\"admin\":\"{admin_addr}\",\"cloudevents\":\"{cloudevents_addr}\",\"controller\":\"{controller_addr}\",\"advertised\":\"{advertised}\"}}\n"
    );
    let path = options.data_dir.join(LISTENERS_FILE_NAME);
    write_atomically(&path, listeners.as_bytes()).map_err(data_dir_error(&path))?;
    tracing::info!(node_id = %options.node_id, %kafka_addr, %admin_addr, %advertised, "spate is serving");
    Ok(RunningServer {
        kafka_addr,
        admin_addr,
        cloudevents_addr,
        controller_addr,
        broker,
        quorum,
        shutdown,
        tasks,
    })
}

async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(broker.settings.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // Take a connection slot before accepting: beyond `max.connections`, clients wait in the
        // listen backlog instead of being accepted and starved.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection::serve(broker, stream, peer, shutdown).await;
                    drop(permit);
                });
            }
            Err(error) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Applies every newly published metadata image to the hosted partitions.
async fn reconcile_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut images = broker.metadata.subscribe();
    // A new receiver takes the image published so far as seen; one published after the
    // startup's own reconcile but before this subscription would otherwise wait for the next
    // metadata change, leaving the node unready until then. Reconciling is idempotent.
    images.mark_changed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let image = images.borrow_and_update().clone();
        let broker = broker.clone();
        // Opening logs is blocking file work.
        let _ = tokio::task::spawn_blocking(move || broker.reconcile(&image)).await;
    }
}

/// Opens every partition log in the data directory (recovering after an unclean stop) with its
/// topic's settings from the image, and starts retention, flushes, checkpoints and the cleaner.
fn open_logs(
    options: &ServeOptions,
    clock: Arc<dyn Clock>,
    image: &spate_controller::image::MetadataImage,
) -> Result<ReplicaManager, StartError> {
    let layers =
        crate::topic_configs::config_layers(options.node_id, &options.static_configs, image);
    let setting = |name: &str, default: u64| {
        layers
            .value(name)
            .ok()
            .flatten()
            .and_then(|v| v.as_i64())
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(default)
    };
    let mut config = LogManagerConfig::new(&options.data_dir);
    config.retention_check_interval_ms = setting(
        "log.retention.check.interval.ms",
        config.retention_check_interval_ms,
    );
    config.flush_check_interval_ms = setting(
        "log.flush.scheduler.interval.ms",
        config.flush_check_interval_ms,
    );
    config.checkpoint_interval_ms = setting(
        "log.flush.offset.checkpoint.interval.ms",
        config.checkpoint_interval_ms,
    );
    config.cleaner_backoff_ms = setting("log.cleaner.backoff.ms", config.cleaner_backoff_ms);
    config.recovery_threads = setting(
        "num.recovery.threads.per.data.dir",
        config.recovery_threads as u64,
    )
    .max(1) as usize;
    config.cleaner_enabled = !matches!(
        layers.lookup("log.cleaner.enable").map(|(v, _)| v),
        Some(v) if v == "false"
    );
    let log_config = |tp: &TopicPartition| {
        crate::topic_configs::topic_settings(&layers, image, &tp.topic)
            .log
            .clone()
    };
    ReplicaManager::open(options.node_id, config, clock, &log_config)
        .map_err(|e| StartError::Logs(e.to_string()))
}

impl Broker {
    /// Brings hosted partitions in line with `image`.
    pub fn reconcile(&self, image: &spate_controller::image::MetadataImage) {
        self.replicas
            .reconcile(image, &|topic| self.topic_settings(image, topic));
        self.groups
            .update_settings(self.coordinator_settings(image));
        self.groups.reconcile(image, &self.replicas);
        self.reconciled_offset.send_if_modified(|offset| {
            let advanced = image.offset > *offset;
            *offset = (*offset).max(image.offset);
            advanced
        });
    }
}

impl RunningServer {
    /// Stops accepting, closes connections after their owed responses, waits for every task,
    /// then snapshots producer state and closes the logs.
    pub async fn shutdown(mut self) {
        // Leadership moves first, while this broker still serves (Kafka's controlled shutdown).
        let moved = tokio::time::timeout(
            CONTROLLED_SHUTDOWN_TIMEOUT,
            self.quorum.controlled_shutdown(self.broker.broker_epoch),
        )
        .await;
        match moved {
            Ok(Ok(())) => tracing::info!("controlled shutdown: leaderships moved, broker fenced"),
            Ok(Err(error)) => tracing::warn!(%error, "controlled shutdown failed; stopping anyway"),
            Err(_) => tracing::warn!("controlled shutdown timed out; stopping anyway"),
        }
        self.shutdown.cancel();
        self.broker.groups.shutdown();
        while self.tasks.join_next().await.is_some() {}
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.replicas.shutdown()).await;
        self.quorum.shutdown().await;
        tracing::info!("spate stopped");
    }
}
