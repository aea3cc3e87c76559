//! Startup, the bounded accept loop, and graceful shutdown.
//!
//! Startup order: open the metadata quorum, bind every listener (port 0 allowed), register this
//! broker with its advertised address (the bound port when none is configured), start serving,
//! and only then write `<data_dir>/listeners.json` — the signal, for tools and tests, that the
//! node is ready.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_controller::controller::ControllerSettings;
use spate_controller::frontend::{ControllerReply, ControllerRequest, MetadataFrontend};
use spate_controller::local::LocalQuorum;
use spate_controller::records::Endpoint;
use spate_protocol::types::NodeId;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use spate_storage::{Clock, SystemClock};

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
    /// Expected cluster id; when set and the data dir holds another, startup is refused.
    pub cluster_id: Option<String>,
    /// Rack.
    pub rack: Option<String>,
    /// Broker settings.
    pub settings: BrokerSettings,
    /// Broker configs from the file, environment and flags, by Kafka name.
    pub static_configs: std::collections::BTreeMap<String, String>,
}

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
    /// The metadata log could not be opened.
    #[error(transparent)]
    Metadata(#[from] spate_controller::local::LocalQuorumError),
    /// The controller refused the registration.
    #[error("broker registration failed: {0}")]
    Registration(String),
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
    /// The shared broker state.
    pub broker: Arc<Broker>,
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
            let cluster_id = options.cluster_id.clone().unwrap_or_else(new_cluster_id);
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

/// A cluster id in Kafka's form: a random UUID in URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
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
    let quorum = LocalQuorum::open(
        &options.data_dir,
        ControllerSettings {
            default_partitions: options.settings.num_partitions,
            default_replication_factor: options.settings.default_replication_factor,
        },
    )?;
    let metadata: Arc<dyn MetadataFrontend> = Arc::new(quorum);

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

    let advertised = options
        .kafka_advertise
        .clone()
        .unwrap_or_else(|| kafka_addr.to_string());
    let (host, port) =
        split_host_port(&advertised).ok_or_else(|| StartError::Advertise(advertised.clone()))?;
    let registration = metadata
        .submit(ControllerRequest::RegisterBroker {
            broker_id: options.node_id,
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host,
                port: u32::from(port),
                security_protocol: 0,
            }],
            rack: options.rack.clone(),
        })
        .await
        .map_err(|e| StartError::Registration(e.to_string()))?;
    let ControllerReply::BrokerRegistered { broker_epoch } = registration else {
        return Err(StartError::Registration(format!(
            "unexpected controller reply {registration:?}"
        )));
    };

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let broker = Arc::new(Broker {
        node_id: options.node_id,
        cluster_id,
        settings: options.settings.clone(),
        metadata,
        broker_epoch,
        producer_ids: Default::default(),
        static_configs: options.static_configs.clone(),
        clock: clock.clone(),
        replicas: ReplicaManager::new(options.node_id, options.data_dir.clone(), clock),
        fetch_sessions: FetchSessionCache::new(),
    });
    let image = broker.metadata.image();
    broker.replicas.remove_strays(&image);
    broker.reconcile(&image);

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(reconcile_loop(broker.clone(), shutdown.clone()));
    tasks.spawn(maintenance_loop(broker.clone(), shutdown.clone()));
    tasks.spawn(accept_loop(
        broker.clone(),
        kafka_listener,
        shutdown.clone(),
    ));
    tasks.spawn(admin::serve(
        broker.clone(),
        admin_listener,
        shutdown.clone(),
    ));

    let listeners = format!(
        "{{\"kafka\":\"{kafka_addr}\",\"admin\":\"{admin_addr}\",\"advertised\":\"{advertised}\"}}\n"
    );
    let path = options.data_dir.join(LISTENERS_FILE_NAME);
    write_atomically(&path, listeners.as_bytes()).map_err(data_dir_error(&path))?;
    tracing::info!(node_id = %options.node_id, %kafka_addr, %admin_addr, %advertised, "spate is serving");
    Ok(RunningServer {
        kafka_addr,
        admin_addr,
        broker,
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

/// How often retention and time-based flushes run (Kafka's
/// `log.retention.check.interval.ms` is 5 minutes; a shorter period costs little here and keeps
/// `segment.ms`/`retention.ms` in tests and small deployments close to their settings).
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

async fn maintenance_loop(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.replicas.maintain()).await;
    }
}

impl Broker {
    /// Brings hosted partitions in line with `image`.
    pub fn reconcile(&self, image: &spate_controller::image::MetadataImage) {
        self.replicas
            .reconcile(image, &|topic| self.topic_settings(image, topic));
    }
}

impl RunningServer {
    /// Stops accepting, closes connections after their owed responses, waits for every task,
    /// then snapshots producer state and closes the logs.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.replicas.shutdown()).await;
        tracing::info!("spate stopped");
    }
}
