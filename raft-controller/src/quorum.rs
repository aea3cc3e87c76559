//! The metadata quorum as a running service: a [`QuorumNode`] on its own thread, the TCP
//! [`Transport`] on the caller's tokio runtime, and the [`MetadataFrontend`] the broker uses.
//!
//! The node runs on a dedicated thread because its ready cycle fsyncs: a blocking write there
//! stalls no network task. The thread wakes for each input (a peer message, a submitted command)
//! and at every tick, drains what else arrived (so one fsync covers them all), runs the ready
//! cycle, and hands messages to the transport and replies to their waiters. Images are published
//! through a `watch` channel: readers never lock anything the quorum holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use spate_protocol::types::NodeId;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::controller::{ControllerError, ControllerSettings};
use crate::disk::{FileBackend, StoreError};
use crate::frontend::{
    BoxFuture, ControllerReply, ControllerRequest, MetadataFrontend, QuorumDescription,
};
use crate::image::MetadataImage;
use crate::node::{Command, CommandReply, QuorumConfig, QuorumError, QuorumNode};
use crate::records::Endpoint;
use crate::transport::{self, Inbound, Transport};

/// Inputs queued for the node's thread. Beyond this, peer messages are dropped (raft resends)
/// and submissions fail as overloaded rather than queue without bound.
pub const INBOX_CAPACITY_MESSAGES: usize = 8192;
/// Inputs handled per ready cycle; one cycle's fsync covers all of them.
pub const INPUTS_PER_CYCLE_MAX: usize = 1024;
/// Pause between attempts to register while the quorum has no leader.
const REGISTRATION_RETRY: Duration = Duration::from_millis(500);

/// Timing of the quorum, in milliseconds (ticks are derived from these).
#[derive(Debug, Clone)]
pub struct QuorumTiming {
    /// One raft tick.
    pub tick_ms: u64,
    /// `controller.quorum.election.timeout.ms`: how long followers wait for a leader before
    /// campaigning (randomized up to twice this).
    pub election_timeout_ms: u64,
    /// How often the leader heartbeats its followers.
    pub raft_heartbeat_ms: u64,
    /// How long a metadata change may wait for the quorum before failing as unavailable.
    pub request_timeout_ms: u64,
    /// How long a forwarded command waits before it is resent.
    pub forward_resend_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// Preferred-leader election period; `None` turns it off (`auto.leader.rebalance.enable`).
    pub leader_rebalance_interval_ms: Option<u64>,
    /// Applied entries between snapshots.
    pub snapshot_interval_entries: u64,
    /// `initial.broker.registration.timeout.ms`: how long a starting broker keeps trying to
    /// register (the voters of a new cluster start at about the same time, but not at once).
    pub initial_registration_timeout_ms: u64,
}

impl Default for QuorumTiming {
    /// Kafka's defaults where Kafka has the setting.
    fn default() -> Self {
        QuorumTiming {
            tick_ms: 100,
            election_timeout_ms: 1_000,
            raft_heartbeat_ms: 200,
            request_timeout_ms: 15_000,
            forward_resend_ms: 1_000,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            leader_rebalance_interval_ms: Some(300_000),
            snapshot_interval_entries: 2_048,
            initial_registration_timeout_ms: 60_000,
        }
    }
}

/// Everything needed to start a quorum member.
#[derive(Debug, Clone)]
pub struct QuorumOptions {
    /// This node.
    pub node_id: NodeId,
    /// The data directory; the log lives in its `__cluster_metadata/`.
    pub data_dir: PathBuf,
    /// The cluster id, checked on every quorum connection.
    pub cluster_id: String,
    /// The controller listener's bind address (port 0 binds a free port).
    pub listen: String,
    /// The voters and their controller addresses; empty means this node alone.
    pub voters: Vec<(NodeId, String)>,
    /// The host peers reach this node at, used when `listen` binds a wildcard address.
    pub advertised_host: Option<String>,
    /// Timing.
    pub timing: QuorumTiming,
    /// Cluster defaults for decisions.
    pub controller: ControllerSettings,
}

/// Why a quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The controller listener could not be bound.
    #[error("cannot bind the controller listener on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The member could not be created.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The node thread could not be started.
    #[error("cannot start the quorum thread: {0}")]
    Thread(std::io::Error),
}

/// A snapshot of the member's state, for status reporting and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader, if known.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Last applied index.
    pub applied_index: u64,
    /// Known commit index.
    pub commit_index: u64,
    /// Index of the newest snapshot.
    pub snapshot_index: u64,
    /// Until when (the member's clock, see [`RaftQuorum::now_ms`]) the controller is sure to
    /// count the local broker's session alive.
    pub session_lease_until_ms: Option<u64>,
}

type ReplySender = oneshot::Sender<Result<CommandReply, ControllerError>>;

enum Input {
    Peer(Inbound),
    Submit(Command, ReplySender),
    Stop,
}

/// The Raft metadata quorum of one node.
pub struct RaftQuorum {
    node_id: NodeId,
    inbox: SyncSender<Input>,
    images: Arc<watch::Sender<Arc<MetadataImage>>>,
    status: Arc<Mutex<QuorumStatus>>,
    fatal: Arc<Mutex<Option<String>>>,
    controller_addr: SocketAddr,
    /// The voters and their controller addresses, as configured.
    voters: Vec<(NodeId, String)>,
    shutdown: watch::Sender<bool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    registration_timeout: Duration,
    /// The member's clock: monotonic from `started`, counted from the wall clock then.
    started: Instant,
    wall_start_ms: u64,
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ticks(ms: u64, tick_ms: u64) -> usize {
    (ms / tick_ms.max(1)).max(1) as usize
}

impl RaftQuorum {
    /// Opens the log, binds the controller listener, and starts the member. Must be called on a
    /// tokio runtime (the transport runs there).
    pub async fn start(options: QuorumOptions) -> Result<Arc<RaftQuorum>, StartError> {
        let listener =
            TcpListener::bind(&options.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: options.listen.clone(),
                    source,
                })?;
        let controller_addr = listener.local_addr().map_err(|source| StartError::Bind {
            address: options.listen.clone(),
            source,
        })?;
        let voters: Vec<(NodeId, String)> = if options.voters.is_empty() {
            vec![(options.node_id, controller_addr.to_string())]
        } else {
            options.voters.clone()
        };
        let voter_ids: BTreeSet<NodeId> = voters.iter().map(|(id, _)| *id).collect();
        let advertised_address = if controller_addr.ip().is_unspecified() {
            let host = options
                .advertised_host
                .clone()
                .unwrap_or_else(|| "localhost".to_string());
            format!("{host}:{}", controller_addr.port())
        } else {
            controller_addr.to_string()
        };
        let timing = &options.timing;
        let config = QuorumConfig {
            node_id: options.node_id,
            voters: voter_ids.clone(),
            advertised_address,
            tick_ms: timing.tick_ms,
            election_tick: ticks(timing.election_timeout_ms, timing.tick_ms),
            heartbeat_tick: ticks(timing.raft_heartbeat_ms, timing.tick_ms),
            snapshot_interval_entries: timing.snapshot_interval_entries,
            request_timeout_ms: timing.request_timeout_ms,
            forward_resend_ms: timing.forward_resend_ms,
            broker_session_timeout_ms: timing.broker_session_timeout_ms,
            broker_heartbeat_interval_ms: timing.broker_heartbeat_interval_ms,
            leader_rebalance_interval_ms: timing.leader_rebalance_interval_ms,
            controller: options.controller.clone(),
            seeded_topic_ids: false,
        };
        let backend = FileBackend::open(&options.data_dir)?;
        let started = Instant::now();
        let wall_start_ms = wall_clock_ms();
        // The node's clock: monotonic, but counted from the wall clock at start, so the
        // timestamps DescribeQuorum reports read as wall-clock times.
        let now_ms = move || wall_start_ms + started.elapsed().as_millis() as u64;
        let seed = wall_start_ms
            ^ (u64::from(options.node_id.0 as u32) << 32)
            ^ u64::from(std::process::id());
        let node = QuorumNode::open(config, backend, seed, now_ms())?;
        let (images, _) = watch::channel(node.image().clone());
        let images = Arc::new(images);
        let (inbox, inputs) = mpsc::sync_channel(INBOX_CAPACITY_MESSAGES);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let peer_inbox = inbox.clone();
        let transport = Transport::start(
            listener,
            transport::hello(
                &options.cluster_id,
                options.node_id,
                &voter_ids.iter().copied().collect::<Vec<_>>(),
            ),
            Box::new(
                move |inbound| match peer_inbox.try_send(Input::Peer(inbound)) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => {
                        tracing::debug!("quorum inbox full; dropping a peer message");
                    }
                },
            ),
            tokio::runtime::Handle::current(),
            shutdown_rx,
        );
        let status = Arc::new(Mutex::new(QuorumStatus::default()));
        let fatal = Arc::new(Mutex::new(None));
        let driver = Driver {
            node,
            transport,
            voter_addresses: voters.iter().cloned().collect(),
            inputs,
            waiters: HashMap::new(),
            next_token: 0,
            images: images.clone(),
            status: status.clone(),
            fatal: fatal.clone(),
            tick: Duration::from_millis(timing.tick_ms),
        };
        let thread = std::thread::Builder::new()
            .name(format!("spate-quorum-{}", options.node_id))
            .spawn(move || driver.run(now_ms))
            .map_err(StartError::Thread)?;
        tracing::info!(node = %options.node_id, %controller_addr, voters = ?voter_ids, "metadata quorum started");
        Ok(Arc::new(RaftQuorum {
            node_id: options.node_id,
            inbox,
            images,
            status,
            fatal,
            controller_addr,
            voters,
            shutdown,
            thread: Mutex::new(Some(thread)),
            registration_timeout: Duration::from_millis(timing.initial_registration_timeout_ms),
            started,
            wall_start_ms,
        }))
    }

    /// The bound controller address.
    pub fn controller_addr(&self) -> SocketAddr {
        self.controller_addr
    }

    /// The member's state.
    pub fn status(&self) -> QuorumStatus {
        self.status.lock().clone()
    }

    /// The member's clock, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.wall_start_ms + self.started.elapsed().as_millis() as u64
    }

    /// Whether the local broker has gone a whole session without an acknowledged heartbeat:
    /// the controller may have fenced it and moved its leaderships elsewhere, and this node,
    /// out of contact, cannot know. False before the first acknowledgement.
    pub fn broker_session_lapsed(&self) -> bool {
        self.status
            .lock()
            .session_lease_until_ms
            .is_some_and(|until| self.now_ms() > until)
    }

    fn stopped_error(&self) -> ControllerError {
        ControllerError::Unavailable(
            self.fatal
                .lock()
                .clone()
                .unwrap_or_else(|| "the metadata quorum is stopped".into()),
        )
    }

    /// Submits a command; resolves with its reply once applied here.
    pub fn command(&self, command: Command) -> BoxFuture<Result<CommandReply, ControllerError>> {
        if self.fatal.lock().is_some() {
            let error = self.stopped_error();
            return Box::pin(async move { Err(error) });
        }
        let (tx, rx) = oneshot::channel();
        match self.inbox.try_send(Input::Submit(command, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Box::pin(async {
                    Err(ControllerError::Unavailable(
                        "the metadata quorum is overloaded".into(),
                    ))
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                let error = self.stopped_error();
                return Box::pin(async move { Err(error) });
            }
        }
        let fatal = self.fatal.clone();
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ControllerError::Unavailable(
                    fatal
                        .lock()
                        .clone()
                        .unwrap_or_else(|| "the metadata quorum stopped".into()),
                ))
            })
        })
    }

    /// Registers this node's broker and waits until the controller unfences it (its first
    /// heartbeat, sent by the quorum itself, does that). While the quorum has no leader yet (the
    /// other voters are still starting) it keeps trying, for at most
    /// `initial.broker.registration.timeout.ms`. Returns the broker epoch.
    pub async fn register_broker(
        &self,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    ) -> Result<i64, ControllerError> {
        let deadline = tokio::time::Instant::now() + self.registration_timeout;
        let timed_out = || {
            ControllerError::Unavailable(format!(
                "the metadata quorum did not register and unfence this broker within {:?}",
                self.registration_timeout
            ))
        };
        let mut images = self.images.subscribe();
        // One incarnation for every attempt: a retry of a registration that did commit is
        // answered with the same epoch instead of registering twice.
        let request = ControllerRequest::RegisterBroker {
            broker_id: self.node_id,
            incarnation_id: Uuid::new_v4(),
            endpoints,
            rack,
        };
        let reply = loop {
            match tokio::time::timeout_at(deadline, self.submit(request.clone())).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(reply)) => break reply,
                Ok(Err(ControllerError::Unavailable(reason))) if self.fatal.lock().is_none() => {
                    tracing::info!(%reason, "waiting for the metadata quorum to register this broker");
                    if tokio::time::timeout_at(deadline, tokio::time::sleep(REGISTRATION_RETRY))
                        .await
                        .is_err()
                    {
                        return Err(timed_out());
                    }
                }
                Ok(Err(error)) => return Err(error),
            }
        };
        let ControllerReply::BrokerRegistered { broker_epoch } = reply else {
            return Err(ControllerError::Unavailable(format!(
                "unexpected reply to a registration: {reply:?}"
            )));
        };
        let unfenced = async {
            loop {
                let done = {
                    let image = images.borrow_and_update();
                    image
                        .broker(self.node_id)
                        .is_some_and(|b| b.epoch == broker_epoch && !b.fenced)
                };
                if done {
                    return Ok(());
                }
                if images.changed().await.is_err() {
                    return Err(self.stopped_error());
                }
            }
        };
        match tokio::time::timeout_at(deadline, unfenced).await {
            Ok(result) => result.map(|()| broker_epoch),
            Err(_) => Err(timed_out()),
        }
    }

    /// Asks the controller to move this broker's leaderships away and fence it, as a broker
    /// does before a clean stop. Heartbeats stop, so the broker stays fenced.
    pub async fn controlled_shutdown(&self, broker_epoch: i64) -> Result<(), ControllerError> {
        let reply = self
            .submit(ControllerRequest::ControlledShutdown {
                broker_id: self.node_id,
                broker_epoch,
            })
            .await?;
        match reply {
            ControllerReply::BrokerFenced => Ok(()),
            ControllerReply::StaleBrokerEpoch => Err(ControllerError::InvalidRequest(
                "the broker epoch is stale".into(),
            )),
            other => Err(ControllerError::Unavailable(format!(
                "unexpected reply to a controlled shutdown: {other:?}"
            ))),
        }
    }

    /// Stops the member and waits for its thread. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inbox.try_send(Input::Stop);
        let _ = self.shutdown.send(true);
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for RaftQuorum {
    fn drop(&mut self) {
        let _ = self.inbox.try_send(Input::Stop);
        let _ = self.shutdown.send(true);
    }
}

impl MetadataFrontend for RaftQuorum {
    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    fn submit(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<Result<ControllerReply, ControllerError>> {
        let reply = self.command(Command::Request(request));
        Box::pin(async move {
            match reply.await? {
                CommandReply::Reply(reply) => Ok(reply),
                other => Err(ControllerError::Unavailable(format!(
                    "unexpected reply {other:?}"
                ))),
            }
        })
    }

    fn controller_id(&self) -> Option<NodeId> {
        self.status.lock().leader
    }

    fn broker_session_lapsed(&self) -> bool {
        RaftQuorum::broker_session_lapsed(self)
    }

    fn describe_quorum(&self) -> BoxFuture<Result<QuorumDescription, ControllerError>> {
        let reply = self.command(Command::DescribeQuorum);
        let voter_addresses = self.voters.clone();
        Box::pin(async move {
            match reply.await? {
                CommandReply::Quorum(description) => Ok(QuorumDescription {
                    voter_addresses,
                    ..description
                }),
                other => Err(ControllerError::Unavailable(format!(
                    "unexpected reply {other:?}"
                ))),
            }
        })
    }
}

/// The node's thread.
struct Driver {
    node: QuorumNode<FileBackend>,
    transport: Transport,
    voter_addresses: BTreeMap<NodeId, String>,
    inputs: Receiver<Input>,
    waiters: HashMap<u64, ReplySender>,
    next_token: u64,
    images: Arc<watch::Sender<Arc<MetadataImage>>>,
    status: Arc<Mutex<QuorumStatus>>,
    fatal: Arc<Mutex<Option<String>>>,
    tick: Duration,
}

impl Driver {
    fn run(mut self, now_ms: impl Fn() -> u64) {
        let tick_ms = self.tick.as_millis() as u64;
        let mut next_tick = now_ms() + tick_ms;
        loop {
            let wait = Duration::from_millis(next_tick.saturating_sub(now_ms()));
            let mut stop = false;
            match self.inputs.recv_timeout(wait) {
                Ok(input) => {
                    stop |= self.handle(input, now_ms());
                    for _ in 1..INPUTS_PER_CYCLE_MAX {
                        match self.inputs.try_recv() {
                            Ok(input) => stop |= self.handle(input, now_ms()),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if stop {
                break;
            }
            let now = now_ms();
            if now >= next_tick {
                self.node.tick(now);
                // After a stall (a slow fsync), skip the missed ticks instead of bursting them.
                next_tick = (next_tick + tick_ms).max(now + 1);
            }
            if let Err(error) = self.node.advance(now) {
                let message = format!("the metadata quorum stopped: {error}");
                tracing::error!(%error, "the metadata quorum stopped");
                *self.fatal.lock() = Some(message);
                break;
            }
            self.flush_outputs();
            if self.fatal.lock().is_some() {
                break;
            }
        }
        // Dropping the waiters fails their futures with the fatal reason (or "stopped").
        self.waiters.clear();
    }

    /// Returns true to stop.
    fn handle(&mut self, input: Input, now: u64) -> bool {
        match input {
            Input::Peer(Inbound::Message(from, message)) => {
                self.node.receive(from, message, now);
            }
            Input::Peer(Inbound::Refused { by, reason }) => {
                let message = format!("node {by} refused this node: {reason}");
                tracing::error!(%by, %reason, "a quorum peer refused this node; its configuration does not match the cluster's");
                *self.fatal.lock() = Some(message);
            }
            Input::Submit(command, reply) => {
                let token = self.next_token;
                self.next_token += 1;
                self.waiters.insert(token, reply);
                self.node.submit(token, command, now);
            }
            Input::Stop => return true,
        }
        false
    }

    fn flush_outputs(&mut self) {
        let outputs = self.node.take_outputs();
        for (to, message) in &outputs.messages {
            let address = self
                .voter_addresses
                .get(to)
                .or_else(|| self.node.learner_addresses().get(to))
                .map(String::as_str);
            self.transport.send(*to, address, message);
        }
        // Publish before replying: a caller whose request resolved must find its change in
        // `image()`.
        if !Arc::ptr_eq(&self.images.borrow(), self.node.image()) {
            self.images.send_replace(self.node.image().clone());
        }
        for (token, result) in outputs.replies {
            if let Some(waiter) = self.waiters.remove(&token) {
                let _ = waiter.send(result);
            }
        }
        let status = QuorumStatus {
            leader: self.node.leader(),
            term: self.node.term(),
            applied_index: self.node.applied_index(),
            commit_index: self.node.commit_index(),
            snapshot_index: self.node.snapshot_index(),
            session_lease_until_ms: self.node.broker_session_lease_until_ms(),
        };
        let mut shared = self.status.lock();
        if *shared != status {
            *shared = status;
        }
    }
}
