//! One member of the metadata quorum as a deterministic state machine: no threads, no sockets,
//! no clock of its own.
//!
//! A [`QuorumNode`] is driven by its caller: [`QuorumNode::tick`] every `tick_ms`,
//! [`QuorumNode::receive`] for every message from a peer, [`QuorumNode::submit`] for local
//! commands, then [`QuorumNode::advance`], which runs raft-rs's `Ready` cycle in the documented
//! order (send, install snapshot, apply committed, persist, send persisted, advance). What it
//! produces — messages for peers and replies to local commands — is taken with
//! [`QuorumNode::take_outputs`]. Time is whatever the caller says it is, and the only randomness
//! (election timeouts) comes from a seeded generator, so the same inputs give the same run: the
//! real runtime ([`crate::quorum`]) and the simulation drive the same code.
//!
//! Vocabulary: the *frontend* proposes (a command, decided by [`crate::frontend::decide`] on the
//! leader), the *state machine* applies committed entries to the image, and the image is
//! published to readers.
//!
//! The leader decides a batch of commands only when it has applied its whole log, so every
//! decision is made against exactly the entries before the one that carries it; nothing is
//! decided twice and nothing is decided against a stale view. One batch is in flight at a time.
//! Commands submitted on a follower are forwarded to the leader, which answers once the batch
//! committed; the follower replies when it has applied that far itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use prost::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
use raft::{RawNode, StateRole, Storage};
use spate_protocol::types::NodeId;
use uuid::Uuid;

use crate::controller::{ControllerError, ControllerSettings};
use crate::disk::StoreError;
use crate::frontend::{
    ControllerReply, ControllerRequest, QuorumDescription, QuorumReplica, decide,
};
use crate::image::MetadataImage;
use crate::records::MetadataBatch;
use crate::snapshot::{self, SnapshotDataError};
use crate::store::{LogBackend, MetadataStorage};

/// Most commands decided into one log entry. Batching is what makes many concurrent requests
/// cheap (one fsync and one round trip for all); the cap keeps one entry's size reasonable.
pub const BATCH_COMMANDS_MAX: usize = 256;
/// Most records in one log entry (a CreateTopics with many partitions may exceed it alone, which
/// is allowed: the cap only stops further commands joining the batch).
pub const BATCH_RECORDS_MAX: usize = 10_000;
/// Largest raft append message, in bytes (raft-rs's `max_size_per_msg`).
pub const RAFT_MESSAGE_SIZE_BYTES_MAX: u64 = 1024 * 1024;
/// Most append messages in flight to one follower (raft-rs's `max_inflight_msgs`).
pub const RAFT_INFLIGHT_MESSAGES_MAX: usize = 256;
/// Forwarded commands whose outcome the leader remembers, so that a resent command is answered
/// again instead of executed twice. A resend comes within seconds, so a few thousand is plenty.
pub const FORWARD_OUTCOMES_REMEMBERED_MAX: usize = 4096;

/// How a quorum member behaves. Times are in the caller's clock, in milliseconds.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node.
    pub node_id: NodeId,
    /// The voters (`controller.quorum.voters`), identical on every member. A node not among them
    /// is a learner: it asks the leader to add it, then follows the log without voting.
    pub voters: BTreeSet<NodeId>,
    /// This node's controller address as peers reach it, sent when joining as a learner.
    pub advertised_address: String,
    /// Length of one tick. raft-rs counts time in ticks.
    pub tick_ms: u64,
    /// Ticks without hearing from a leader before a follower campaigns; the actual timeout is
    /// drawn from `[election_tick, 2 * election_tick)` after every reset, so that candidates
    /// rarely collide (Raft §5.2).
    pub election_tick: usize,
    /// Ticks between the leader's heartbeats; well below `election_tick` so followers never
    /// time out on a healthy leader.
    pub heartbeat_tick: usize,
    /// Applied entries between snapshots. A snapshot bounds the log kept on disk and in memory
    /// and what a restarted member replays; members that fall further behind get the snapshot.
    pub snapshot_interval_entries: u64,
    /// How long a command (local or forwarded) may wait for the quorum before it fails as
    /// unavailable.
    pub request_timeout_ms: u64,
    /// How long a forwarded command waits for an answer before it is sent again (to the leader
    /// of the moment). The leader deduplicates, so a resend never executes twice.
    pub forward_resend_ms: u64,
    /// `broker.session.timeout.ms`: the leader fences a broker it has not heard from for this
    /// long.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often this node's broker sends its heartbeat.
    pub broker_heartbeat_interval_ms: u64,
    /// How often the leader runs preferred-leader election (`auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds`); `None` disables it.
    pub leader_rebalance_interval_ms: Option<u64>,
    /// Cluster defaults for decisions.
    pub controller: ControllerSettings,
    /// Draw new topic ids from the node's seeded generator instead of the operating system's,
    /// so that a simulated run is repeatable byte for byte. Off in production, where topic ids
    /// must not collide across clusters.
    pub seeded_topic_ids: bool,
}

impl QuorumConfig {
    fn validate(&self) -> Result<(), QuorumError> {
        if self.voters.is_empty() {
            return Err(QuorumError::Config("the quorum has no voters".into()));
        }
        if self.tick_ms == 0 || self.heartbeat_tick == 0 {
            return Err(QuorumError::Config(
                "tick and heartbeat intervals must be positive".into(),
            ));
        }
        if self.heartbeat_tick >= self.election_tick {
            return Err(QuorumError::Config(format!(
                "the heartbeat interval ({} ticks) must be shorter than the election timeout ({} ticks)",
                self.heartbeat_tick, self.election_tick
            )));
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(QuorumError::Config(format!(
                "broker.heartbeat.interval.ms ({}) must be less than broker.session.timeout.ms ({})",
                self.broker_heartbeat_interval_ms, self.broker_session_timeout_ms
            )));
        }
        if self.snapshot_interval_entries == 0 {
            return Err(QuorumError::Config(
                "the snapshot interval must be at least one entry".into(),
            ));
        }
        Ok(())
    }
}

/// Errors that stop a quorum member. Storage failures are fatal: a member that cannot make its
/// log durable must not acknowledge anything.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The durable log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A snapshot's data could not be read.
    #[error(transparent)]
    Snapshot(#[from] SnapshotDataError),
    /// The configuration is unusable.
    #[error("invalid quorum configuration: {0}")]
    Config(String),
}

/// What a node can be asked to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// A metadata change, decided by the controller on the leader.
    Request(ControllerRequest),
    /// A node asks to follow the log as a learner.
    Join {
        /// The node.
        node_id: NodeId,
        /// Its controller address.
        address: String,
    },
    /// The quorum's state, as the leader sees it.
    DescribeQuorum,
}

/// The answer to a [`Command`].
#[derive(Debug, Clone)]
pub enum CommandReply {
    /// The controller's reply.
    Reply(ControllerReply),
    /// The node is a member (learner or voter).
    Joined,
    /// The quorum's state.
    Quorum(QuorumDescription),
}

/// The outcome of a forwarded command, sent back by the node it was forwarded to.
#[derive(Debug, Clone)]
pub enum ForwardOutcome {
    /// Decided (and, if it changed anything, committed at or before `applied_index`).
    Done {
        /// The forwarder replies once it has applied this far.
        applied_index: u64,
        /// The result.
        result: Result<CommandReply, ControllerError>,
    },
    /// The receiver does not lead; try `leader` if known.
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
    },
}

/// A message between quorum members.
#[derive(Debug, Clone)]
pub enum PeerMessage {
    /// A raft message.
    Raft(Box<Message>),
    /// A command forwarded to the leader.
    Forward {
        /// The forwarder's id for it, unique per forwarder run.
        request_id: u64,
        /// The command.
        command: Command,
    },
    /// The answer to a forwarded command.
    ForwardReply {
        /// The forwarder's id.
        request_id: u64,
        /// The outcome.
        outcome: ForwardOutcome,
    },
}

/// What a node produced since the last [`QuorumNode::take_outputs`].
#[derive(Debug, Default)]
pub struct Outputs {
    /// Messages to send, by destination.
    pub messages: Vec<(NodeId, PeerMessage)>,
    /// Replies to [`QuorumNode::submit`] calls, by the caller's token.
    pub replies: Vec<(u64, Result<CommandReply, ControllerError>)>,
}

/// Raft ids are node ids plus one: raft-rs reserves 0 as "nobody", and node 0 is the default.
pub fn raft_id(node: NodeId) -> u64 {
    u64::from(node.0 as u32) + 1
}

/// The node id of a raft id (see [`raft_id`]).
pub fn node_id(raft_id: u64) -> NodeId {
    NodeId(raft_id.saturating_sub(1) as i32)
}

/// A small deterministic generator (SplitMix64): the only randomness in a node.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Work the node does for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Internal {
    Heartbeat,
    Fence(NodeId),
    Rebalance,
    Join,
}

/// Who waits for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Local(u64),
    Remote { from: NodeId, request_id: u64 },
    Internal(Internal),
}

#[derive(Debug, Clone)]
struct Pending {
    origin: Origin,
    command: Command,
    deadline_ms: u64,
}

/// The batch the leader proposed and waits to see applied.
#[derive(Debug)]
struct InFlight {
    index: u64,
    term: u64,
    waiters: Vec<(Pending, Result<CommandReply, ControllerError>)>,
}

/// A command forwarded to the leader.
#[derive(Debug)]
struct Forwarded {
    pending: Pending,
    sent_to: Option<NodeId>,
    last_sent_ms: u64,
    /// The leader's answer, waiting until this node has applied that far.
    answered: Option<(u64, Result<CommandReply, ControllerError>)>,
}

/// This node's own broker, once it registered: its heartbeats are sent from here.
#[derive(Debug)]
struct LocalBroker {
    incarnation: Uuid,
    epoch: Option<i64>,
    next_heartbeat_ms: u64,
    heartbeat_pending: bool,
    stopped: bool,
    /// When the heartbeat in flight (or the last one) was sent.
    heartbeat_sent_ms: u64,
    /// Until when the controller is sure to count this broker's session alive: the send time
    /// of the last acknowledged heartbeat plus the session timeout (the controller counts from
    /// the later receipt). `None` before the first acknowledgement.
    session_lease_until_ms: Option<u64>,
}

/// What the leader knows of a peer's replication, for DescribeQuorum.
#[derive(Debug, Clone, Copy, Default)]
struct PeerSeen {
    last_fetch_ms: Option<u64>,
    last_caught_up_ms: Option<u64>,
}

/// One quorum member. See the module documentation.
pub struct QuorumNode<B: LogBackend> {
    config: QuorumConfig,
    raw: RawNode<MetadataStorage<B>>,
    image: Arc<MetadataImage>,
    applied: u64,
    learners: BTreeMap<NodeId, String>,
    rng: SplitMix64,
    now_ms: u64,
    /// (term, role, leader, vote) after the last raft call, to notice elections.
    last_raft_state: (u64, StateRole, u64, u64),
    last_election_elapsed: usize,
    leader_since_ms: u64,
    queue: VecDeque<Pending>,
    in_flight: Option<InFlight>,
    forwards: BTreeMap<u64, Forwarded>,
    next_request_id: u64,
    forward_rotation: usize,
    leader_hint: Option<NodeId>,
    remote_active: BTreeSet<(NodeId, u64)>,
    remote_outcomes: BTreeMap<(NodeId, u64), ForwardOutcome>,
    remote_outcome_order: VecDeque<(NodeId, u64)>,
    sessions: BTreeMap<NodeId, u64>,
    fencing: BTreeSet<NodeId>,
    rebalance_pending: bool,
    next_rebalance_ms: u64,
    local_broker: Option<LocalBroker>,
    join_pending: bool,
    /// A membership change was applied: the next snapshot must show it before any is sent.
    snapshot_wanted: bool,
    /// Followers a snapshot was sent to in this ready cycle.
    snapshots_sent: Vec<u64>,
    peers_seen: BTreeMap<NodeId, PeerSeen>,
    /// When a message from another member last arrived (any kind: raft traffic, forwards).
    last_peer_contact_ms: Option<u64>,
    outputs: Outputs,
}

/// A `slog` drain that hands raft-rs's log lines to `tracing`. raft-rs logs every election at
/// info; those are debug here because this module logs role changes itself.
struct TracingDrain;

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        let mut text = KvText(record.msg().to_string());
        let _ = record.kv().serialize(record, &mut text);
        let _ = values.serialize(record, &mut text);
        let text = text.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "spate_controller::raft", "{text}")
            }
            slog::Level::Warning => tracing::warn!(target: "spate_controller::raft", "{text}"),
            slog::Level::Info | slog::Level::Debug => {
                tracing::debug!(target: "spate_controller::raft", "{text}")
            }
            slog::Level::Trace => tracing::trace!(target: "spate_controller::raft", "{text}"),
        }
        Ok(())
    }
}

/// The logger raft-rs writes to.
pub fn raft_logger(node: NodeId) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("node" => node.0))
}

fn unavailable(what: &str) -> ControllerError {
    ControllerError::Unavailable(what.to_string())
}

impl<B: LogBackend> QuorumNode<B> {
    /// Recovers a member from `backend` and starts it at time `now_ms`. `seed` feeds the
    /// election-timeout generator and the forward ids.
    pub fn open(
        config: QuorumConfig,
        backend: B,
        seed: u64,
        now_ms: u64,
    ) -> Result<QuorumNode<B>, QuorumError> {
        config.validate()?;
        let bootstrap = ConfState {
            voters: config.voters.iter().map(|v| raft_id(*v)).collect(),
            ..ConfState::default()
        };
        let storage = MetadataStorage::open(backend, bootstrap)?;
        let snapshot = storage.latest_snapshot();
        let applied = storage.snapshot_index();
        let (image, learners) = if applied > 0 {
            snapshot::decode(&snapshot.data)?
        } else {
            (MetadataImage::empty(), BTreeMap::new())
        };
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: RAFT_MESSAGE_SIZE_BYTES_MAX,
            max_inflight_msgs: RAFT_INFLIGHT_MESSAGES_MAX,
            // A leader that cannot hear a majority steps down, and a node that still hears a
            // leader ignores disruptive votes (Raft §6 and §9.6: pre-vote).
            check_quorum: true,
            pre_vote: true,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(&raft_config, storage, &raft_logger(config.node_id))?;
        let mut rng = SplitMix64(seed ^ 0x5eed_0f5a_a7e0_0001);
        let next_request_id = rng.next() >> 16;
        let mut node = QuorumNode {
            raw,
            image: Arc::new(image),
            applied,
            learners,
            rng,
            now_ms,
            last_raft_state: (0, StateRole::Follower, 0, 0),
            last_election_elapsed: 0,
            leader_since_ms: now_ms,
            queue: VecDeque::new(),
            in_flight: None,
            forwards: BTreeMap::new(),
            next_request_id,
            forward_rotation: 0,
            leader_hint: None,
            remote_active: BTreeSet::new(),
            remote_outcomes: BTreeMap::new(),
            remote_outcome_order: VecDeque::new(),
            sessions: BTreeMap::new(),
            fencing: BTreeSet::new(),
            rebalance_pending: false,
            next_rebalance_ms: now_ms,
            local_broker: None,
            join_pending: false,
            snapshot_wanted: false,
            snapshots_sent: Vec::new(),
            peers_seen: BTreeMap::new(),
            last_peer_contact_ms: None,
            outputs: Outputs::default(),
            config,
        };
        node.draw_election_timeout();
        node.observe_raft();
        if node.config.voters.len() == 1 && node.config.voters.contains(&node.config.node_id) {
            // A lone voter need not wait out an election timeout to lead.
            node.raw.campaign()?;
            node.observe_raft();
        }
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// Whether this node is a voter.
    pub fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.node_id)
    }

    /// The newest applied image.
    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    /// Index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Index of the last entry in the log (applied or not).
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The commit index this node knows of.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            raft::INVALID_ID => None,
            id => Some(node_id(id)),
        }
    }

    /// The learners' controller addresses, as recorded in the log.
    pub fn learner_addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.learners
    }

    /// Until when (this node's clock) the local broker's session is beyond doubt; `None` before
    /// its first acknowledged heartbeat. That is until a session timeout after the last
    /// acknowledged heartbeat, or after the last message from another member, whichever is
    /// later: while other members are heard from (votes during a controller election, say), no
    /// controller fences this broker behind its back, since a new controller starts every
    /// session afresh; only a node heard from by no one for a whole session may have been
    /// fenced and replaced without knowing.
    pub fn broker_session_lease_until_ms(&self) -> Option<u64> {
        let acknowledged = self.local_broker.as_ref()?.session_lease_until_ms?;
        let heard = self
            .last_peer_contact_ms
            .map_or(0, |t| t + self.config.broker_session_timeout_ms);
        Some(acknowledged.max(heard))
    }

    /// Index of the newest snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_index()
    }

    /// The term and data of the entry at `index`, while the log holds it.
    pub fn entry_at(&self, index: u64) -> Option<(u64, Vec<u8>)> {
        self.raw
            .store()
            .entry(index)
            .map(|e| (e.term, e.data.clone()))
    }

    /// A one-line summary of the node's internal queues, for diagnostics.
    pub fn diagnostics(&self) -> String {
        format!(
            "role {:?} term {} leader {:?} applied {} last {} commit {} snapshot {} queued {} in_flight {:?} forwards {} local_broker {:?} join_pending {}",
            self.raw.raft.state,
            self.term(),
            self.leader(),
            self.applied,
            self.last_index(),
            self.commit_index(),
            self.snapshot_index(),
            self.queue.len(),
            self.in_flight
                .as_ref()
                .map(|f| (f.index, f.term, f.waiters.len())),
            self.forwards.len(),
            self.local_broker
                .as_ref()
                .map(|b| (b.epoch, b.heartbeat_pending, b.stopped)),
            self.join_pending,
        )
    }

    /// Takes what the node produced.
    pub fn take_outputs(&mut self) -> Outputs {
        std::mem::take(&mut self.outputs)
    }

    /// Whether any forwarded or queued commands still wait.
    pub fn has_pending_commands(&self) -> bool {
        !self.queue.is_empty() || !self.forwards.is_empty() || self.in_flight.is_some()
    }

    /// Advances time by one tick.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.raw.tick();
        self.observe_raft();
        self.expire();
        if self.is_leader() {
            self.check_sessions();
            self.maybe_rebalance();
        }
        self.resend_forwards();
        if !self.is_voter() && !self.is_member() && !self.join_pending {
            self.join_pending = true;
            self.enqueue(Pending {
                origin: Origin::Internal(Internal::Join),
                command: Command::Join {
                    node_id: self.config.node_id,
                    address: self.config.advertised_address.clone(),
                },
                deadline_ms: self.now_ms + self.config.request_timeout_ms,
            });
        }
    }

    /// Whether the applied membership includes this node.
    fn is_member(&self) -> bool {
        let id = raft_id(self.config.node_id);
        let conf = self.raw.raft.prs().conf();
        conf.voters().contains(id) || conf.learners().contains(&id)
    }

    /// Handles a message from `from`.
    pub fn receive(&mut self, from: NodeId, message: PeerMessage, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if from != self.config.node_id {
            self.last_peer_contact_ms = Some(self.now_ms);
        }
        match message {
            PeerMessage::Raft(message) => self.receive_raft(from, *message),
            PeerMessage::Forward {
                request_id,
                command,
            } => self.receive_forward(from, request_id, command),
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            } => self.receive_forward_reply(request_id, outcome),
        }
    }

    fn receive_raft(&mut self, from: NodeId, message: Message) {
        if message.from != raft_id(from) || message.to != raft_id(self.config.node_id) {
            tracing::debug!(%from, raft_from = message.from, raft_to = message.to, "dropping a misaddressed raft message");
            return;
        }
        // Proposals travel as forwarded commands, never as raw raft proposals: a peer cannot
        // append to the leader's log directly.
        let kind = message.msg_type();
        if matches!(
            kind,
            MessageType::MsgPropose | MessageType::MsgReadIndex | MessageType::MsgHup
        ) || raft::raw_node::is_local_msg(kind)
        {
            tracing::debug!(%from, ?kind, "dropping a raft message peers may not send");
            return;
        }
        let response = matches!(
            kind,
            MessageType::MsgAppendResponse | MessageType::MsgHeartbeatResponse
        );
        if let Err(error) = self.raw.step(message) {
            tracing::debug!(%from, %error, "raft did not take a message");
        }
        self.observe_raft();
        if response && self.is_leader() {
            let last = self.last_index();
            let matched = self
                .raw
                .raft
                .prs()
                .get(raft_id(from))
                .map_or(0, |p| p.matched);
            let seen = self.peers_seen.entry(from).or_default();
            seen.last_fetch_ms = Some(self.now_ms);
            if matched >= last {
                seen.last_caught_up_ms = Some(self.now_ms);
            }
        }
    }

    /// Submits a local command; its reply comes out of [`QuorumNode::take_outputs`] with `token`.
    pub fn submit(&mut self, token: u64, command: Command, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Command::Request(ControllerRequest::RegisterBroker {
            broker_id,
            incarnation_id,
            ..
        }) = &command
            && *broker_id == self.config.node_id
        {
            self.local_broker = Some(LocalBroker {
                incarnation: *incarnation_id,
                epoch: None,
                next_heartbeat_ms: self.now_ms,
                heartbeat_pending: false,
                stopped: false,
                heartbeat_sent_ms: self.now_ms,
                session_lease_until_ms: None,
            });
        }
        if let Command::Request(ControllerRequest::ControlledShutdown { broker_id, .. }) = &command
            && *broker_id == self.config.node_id
            && let Some(local) = &mut self.local_broker
        {
            // Heartbeats after a controlled shutdown would unfence the broker again.
            local.stopped = true;
        }
        let deadline_ms = self.now_ms + self.config.request_timeout_ms;
        self.enqueue(Pending {
            origin: Origin::Local(token),
            command,
            deadline_ms,
        });
    }

    fn enqueue(&mut self, pending: Pending) {
        if self.is_leader()
            && let Command::Request(
                ControllerRequest::BrokerHeartbeat { broker_id, .. }
                | ControllerRequest::RegisterBroker { broker_id, .. },
            ) = &pending.command
        {
            self.sessions.insert(*broker_id, self.now_ms);
        }
        self.queue.push_back(pending);
    }

    /// Runs the ready cycle until nothing is left to do. Returns an error only when the durable
    /// log failed; the node must then stop.
    pub fn advance(&mut self, now_ms: u64) -> Result<(), QuorumError> {
        self.now_ms = self.now_ms.max(now_ms);
        loop {
            self.local_heartbeat();
            self.dispatch_queue()?;
            if !self.raw.has_ready() {
                break;
            }
            self.handle_ready()?;
        }
        Ok(())
    }

    /// One pass of raft-rs's `Ready` protocol, in the documented order.
    fn handle_ready(&mut self) -> Result<(), QuorumError> {
        let mut ready = self.raw.ready();
        // 1. A leader may send before persisting (Raft §10.2.1: its own write and the
        //    followers' proceed in parallel; it counts itself only once persisted).
        if !ready.messages().is_empty() {
            self.send_raft(ready.take_messages());
        }
        // 2. A snapshot from the leader replaces the log and the image.
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.raw.mut_store().install_received(snapshot.clone())?;
            self.restore_snapshot(&snapshot)?;
        }
        // 3. Committed entries are durable already: apply them.
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        // 4 and 5. Persist new entries and the hard state, one write and one fsync.
        self.raw.mut_store().persist(ready.entries(), ready.hs())?;
        // 6. Messages that acknowledge what was just persisted.
        if !ready.persisted_messages().is_empty() {
            self.send_raft(ready.take_persisted_messages());
        }
        // 7. Advance, then handle what became possible.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().note_commit(commit);
        }
        self.send_raft(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        // The transport does not confirm delivery. Reporting a sent snapshot as finished puts
        // the follower back into probing: if the snapshot never arrived, the follower's reply to
        // the next append says so and the leader sends a snapshot again, instead of waiting for
        // a report forever.
        for to in std::mem::take(&mut self.snapshots_sent) {
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
        self.observe_raft();
        self.maybe_snapshot()?;
        Ok(())
    }

    fn send_raft(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = node_id(message.to);
            if message.msg_type() == MessageType::MsgSnapshot {
                self.snapshots_sent.push(message.to);
            }
            self.outputs
                .messages
                .push((to, PeerMessage::Raft(Box::new(message))));
        }
    }

    /// Rebuilds the image from a snapshot the leader sent.
    fn restore_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), QuorumError> {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let (image, learners) = snapshot::decode(&snapshot.data)?;
        tracing::info!(
            node = %self.config.node_id,
            index,
            "installed a metadata snapshot from the leader"
        );
        self.image = Arc::new(image);
        self.learners = learners;
        self.applied = index;
        if let Some(in_flight) = self.in_flight.take_if(|f| f.index <= index) {
            // Whether the batch made it is unknown from here: its waiters must retry.
            for (pending, _) in in_flight.waiters {
                self.deliver(
                    pending.origin,
                    Err(unavailable(
                        "the outcome is unknown: leadership moved while it was in flight",
                    )),
                    index,
                );
            }
        }
        self.after_apply();
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), QuorumError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut image = Arc::clone(&self.image);
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            let index = entry.index;
            match entry.entry_type() {
                EntryType::EntryNormal => {
                    if !entry.data.is_empty() {
                        let target = Arc::make_mut(&mut image);
                        match MetadataBatch::decode(entry.data.as_slice()) {
                            Ok(batch) => {
                                for record in &batch.records {
                                    if let Err(error) = target.apply(index as i64, record) {
                                        // Deterministic: every member skips the same record.
                                        tracing::warn!(%error, "skipping a metadata record that does not apply");
                                    }
                                }
                            }
                            Err(error) => {
                                tracing::error!(index, %error, "skipping a metadata log entry that does not decode");
                            }
                        }
                    }
                }
                EntryType::EntryConfChange => match ConfChange::decode(entry.data.as_slice()) {
                    Ok(change) => self.apply_conf_change(index, &change),
                    Err(error) => {
                        tracing::error!(index, %error, "skipping a membership change that does not decode")
                    }
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::decode(entry.data.as_slice()) {
                    Ok(change) => {
                        if let Err(error) = self.raw.apply_conf_change(&change) {
                            tracing::error!(index, %error, "membership change refused");
                        }
                    }
                    Err(error) => {
                        tracing::error!(index, %error, "skipping a membership change that does not decode")
                    }
                },
            }
            Arc::make_mut(&mut image).offset = index as i64;
            self.applied = index;
            if let Some(in_flight) = self.in_flight.take_if(|f| f.index <= index) {
                self.resolve_in_flight(in_flight, index, entry.term);
            }
        }
        self.image = image;
        self.after_apply();
        Ok(())
    }

    fn apply_conf_change(&mut self, index: u64, change: &ConfChange) {
        match self.raw.apply_conf_change(change) {
            Ok(_) => {
                // A learner only accepts a snapshot whose membership includes it (raft-rs's
                // `restore`), so the snapshot a leader may send must be taken after the change.
                self.snapshot_wanted = true;
                if change.change_type() == ConfChangeType::AddLearnerNode {
                    let node = node_id(change.node_id);
                    let address = String::from_utf8_lossy(&change.context).into_owned();
                    tracing::info!(%node, %address, index, "a learner joined the metadata quorum");
                    self.learners.insert(node, address);
                }
            }
            Err(error) => tracing::error!(index, %error, "membership change refused"),
        }
    }

    fn resolve_in_flight(&mut self, in_flight: InFlight, index: u64, term: u64) {
        if in_flight.index == index && in_flight.term == term {
            for (pending, result) in in_flight.waiters {
                self.deliver(pending.origin, result, index);
            }
        } else {
            // Another leader's entry took the place: nothing of the batch was applied, so its
            // commands are decided again (here or, forwarded, on the new leader).
            for (pending, _) in in_flight.waiters.into_iter().rev() {
                self.queue.push_front(pending);
            }
        }
    }

    /// Bookkeeping after the image moved: this broker's epoch, forwarded answers now applied.
    fn after_apply(&mut self) {
        // Follow this broker's registration in the image: its epoch is what heartbeats carry.
        if let Some(local) = &mut self.local_broker
            && let Some(broker) = self.image.broker(self.config.node_id)
            && broker.incarnation_id == local.incarnation
            && local.epoch != Some(broker.epoch)
        {
            local.epoch = Some(broker.epoch);
            local.next_heartbeat_ms = self.now_ms;
        }
        let applied = self.applied;
        let ready: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.answered.as_ref().is_some_and(|(at, _)| *at <= applied))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some(forwarded) = self.forwards.remove(&id)
                && let Some((at, result)) = forwarded.answered
            {
                self.deliver(forwarded.pending.origin, result, at);
            }
        }
    }

    /// Hands a result to whoever waits for it.
    fn deliver(
        &mut self,
        origin: Origin,
        result: Result<CommandReply, ControllerError>,
        applied_index: u64,
    ) {
        match origin {
            Origin::Local(token) => self.outputs.replies.push((token, result)),
            Origin::Remote { from, request_id } => {
                let outcome = ForwardOutcome::Done {
                    applied_index,
                    result,
                };
                self.remote_active.remove(&(from, request_id));
                self.remember_outcome(from, request_id, outcome.clone());
                self.outputs.messages.push((
                    from,
                    PeerMessage::ForwardReply {
                        request_id,
                        outcome,
                    },
                ));
            }
            Origin::Internal(kind) => self.internal_done(kind, result),
        }
    }

    fn remember_outcome(&mut self, from: NodeId, request_id: u64, outcome: ForwardOutcome) {
        let key = (from, request_id);
        if self.remote_outcomes.insert(key, outcome).is_none() {
            self.remote_outcome_order.push_back(key);
        }
        while self.remote_outcome_order.len() > FORWARD_OUTCOMES_REMEMBERED_MAX {
            if let Some(old) = self.remote_outcome_order.pop_front() {
                self.remote_outcomes.remove(&old);
            }
        }
    }

    fn internal_done(&mut self, kind: Internal, result: Result<CommandReply, ControllerError>) {
        match kind {
            Internal::Heartbeat => {
                let session_timeout_ms = self.config.broker_session_timeout_ms;
                // A leader answers its own broker's heartbeat without the other voters; the
                // answer counts only from when a majority last answered it, or a leader cut
                // off from the rest would go on renewing its own lease.
                let quorum_contact_ms = self.is_leader().then(|| self.quorum_contact_ms());
                if let Some(local) = &mut self.local_broker {
                    local.heartbeat_pending = false;
                    match &result {
                        Ok(CommandReply::Reply(ControllerReply::BrokerHeartbeat {
                            fenced: false,
                        })) => {
                            let since = quorum_contact_ms.map_or(local.heartbeat_sent_ms, |c| {
                                c.min(local.heartbeat_sent_ms)
                            });
                            local.session_lease_until_ms = Some(since + session_timeout_ms);
                        }
                        Ok(CommandReply::Reply(ControllerReply::BrokerHeartbeat {
                            fenced: true,
                        })) => {
                            // Not caught up yet: ask again soon rather than a full interval later.
                            local.next_heartbeat_ms = self.now_ms + 2 * self.config.tick_ms;
                        }
                        Ok(CommandReply::Reply(ControllerReply::StaleBrokerEpoch)) => {
                            tracing::warn!(
                                node = %self.config.node_id,
                                "the controller says this broker's registration is stale"
                            );
                        }
                        Err(error) => {
                            tracing::debug!(%error, "broker heartbeat failed");
                            local.next_heartbeat_ms = self.now_ms + self.config.tick_ms;
                        }
                        Ok(_) => {}
                    }
                }
            }
            Internal::Fence(broker) => {
                self.fencing.remove(&broker);
                if let Ok(CommandReply::Reply(ControllerReply::BrokerFenced)) = result {
                    tracing::info!(%broker, "fenced a broker whose session expired");
                }
            }
            Internal::Rebalance => self.rebalance_pending = false,
            Internal::Join => {
                self.join_pending = false;
                if let Err(error) = result {
                    tracing::debug!(%error, "joining the metadata quorum failed; retrying");
                }
            }
        }
    }

    /// For a leader: the latest time by which a majority of the voters (itself included) had
    /// answered it.
    fn quorum_contact_ms(&self) -> u64 {
        let me = raft_id(self.config.node_id);
        let mut heard: Vec<u64> = self
            .raw
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .iter()
            .map(|id| {
                if id == me {
                    self.now_ms
                } else {
                    self.peers_seen
                        .get(&node_id(id))
                        .and_then(|seen| seen.last_fetch_ms)
                        .unwrap_or(0)
                }
            })
            .collect();
        heard.sort_unstable_by(|a, b| b.cmp(a));
        let majority = heard.len() / 2 + 1;
        heard.get(majority - 1).copied().unwrap_or(0)
    }

    /// Sends this node's broker heartbeat when it is due.
    fn local_heartbeat(&mut self) {
        let now = self.now_ms;
        let interval = self.config.broker_heartbeat_interval_ms;
        let applied = self.applied as i64;
        let broker_id = self.config.node_id;
        let Some(local) = &mut self.local_broker else {
            return;
        };
        let Some(epoch) = local.epoch else { return };
        if local.stopped || local.heartbeat_pending || now < local.next_heartbeat_ms {
            return;
        }
        local.heartbeat_pending = true;
        local.heartbeat_sent_ms = now;
        local.next_heartbeat_ms = now + interval;
        let deadline_ms = now + self.config.request_timeout_ms;
        self.enqueue(Pending {
            origin: Origin::Internal(Internal::Heartbeat),
            command: Command::Request(ControllerRequest::BrokerHeartbeat {
                broker_id,
                broker_epoch: epoch,
                metadata_offset: applied,
            }),
            deadline_ms,
        });
    }

    /// Whether the leader may decide now: its whole log is applied (so the image is the state
    /// just before the next entry) and nothing of its own is in flight.
    fn can_decide(&self) -> bool {
        self.is_leader() && self.in_flight.is_none() && self.applied == self.last_index()
    }

    fn dispatch_queue(&mut self) -> Result<(), QuorumError> {
        if !self.is_leader() {
            while let Some(pending) = self.queue.pop_front() {
                match pending.origin {
                    Origin::Remote { from, request_id } => {
                        self.remote_active.remove(&(from, request_id));
                        let leader = self.leader();
                        self.outputs.messages.push((
                            from,
                            PeerMessage::ForwardReply {
                                request_id,
                                outcome: ForwardOutcome::NotLeader { leader },
                            },
                        ));
                    }
                    // A leader's own decisions (fencing a broker whose session it saw expire,
                    // rebalancing) are only valid from the leader that made them: a deposed
                    // leader (one resumed after a pause, say, that finds every session expired)
                    // must not have the new leader carry them out.
                    Origin::Internal(kind @ (Internal::Fence(_) | Internal::Rebalance)) => {
                        self.internal_done(
                            kind,
                            Err(ControllerError::Unavailable(
                                "no longer the metadata quorum leader".into(),
                            )),
                        );
                    }
                    Origin::Local(_) | Origin::Internal(_) => self.start_forward(pending),
                }
            }
            return Ok(());
        }
        // Reads need no decision.
        let mut index = 0;
        while index < self.queue.len() {
            if matches!(self.queue[index].command, Command::DescribeQuorum) {
                if let Some(pending) = self.queue.remove(index) {
                    let description = self.describe();
                    let applied = self.applied;
                    self.deliver(
                        pending.origin,
                        Ok(CommandReply::Quorum(description)),
                        applied,
                    );
                }
            } else {
                index += 1;
            }
        }
        if self.queue.is_empty() || !self.can_decide() {
            return Ok(());
        }
        self.decide_batch()
    }

    /// Decides queued commands into one entry and proposes it.
    fn decide_batch(&mut self) -> Result<(), QuorumError> {
        let base = self.applied;
        let mut working = (*self.image).clone();
        let mut records = Vec::new();
        let mut waiters = Vec::new();
        while let Some(front) = self.queue.front() {
            if waiters.len() >= BATCH_COMMANDS_MAX || records.len() >= BATCH_RECORDS_MAX {
                break;
            }
            if let Command::Join { node_id, address } = &front.command {
                if !waiters.is_empty() {
                    break; // membership changes travel alone
                }
                let (node, address) = (*node_id, address.clone());
                let Some(pending) = self.queue.pop_front() else {
                    break;
                };
                return self.propose_join(pending, node, address);
            }
            let Some(pending) = self.queue.pop_front() else {
                break;
            };
            let Command::Request(request) = &pending.command else {
                continue;
            };
            let seeded = self.config.seeded_topic_ids;
            let rng = &mut self.rng;
            let mut new_topic_id = || {
                if seeded {
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&rng.next().to_be_bytes());
                    bytes[8..].copy_from_slice(&rng.next().to_be_bytes());
                    uuid::Builder::from_random_bytes(bytes).into_uuid()
                } else {
                    Uuid::new_v4()
                }
            };
            let result = match decide(
                &working,
                &self.config.controller,
                request,
                &mut new_topic_id,
            ) {
                Ok((reply, decided)) => {
                    for record in &decided {
                        if let Err(error) = working.apply(base as i64 + 1, record) {
                            tracing::error!(%error, "the controller decided a record it cannot apply");
                        }
                    }
                    // Later decisions in the batch see these records but the same offset: they
                    // all share the entry at `base + 1`.
                    working.offset = base as i64;
                    records.extend(decided);
                    Ok(CommandReply::Reply(reply))
                }
                Err(error) => Err(error),
            };
            waiters.push((pending, result));
        }
        if records.is_empty() {
            // Nothing to commit: every answer follows from the applied image.
            for (pending, result) in waiters {
                self.deliver(pending.origin, result, base);
            }
            return Ok(());
        }
        let data = MetadataBatch { records }.encode_to_vec();
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                self.observe_raft();
                let index = self.last_index();
                debug_assert_eq!(
                    index,
                    base + 1,
                    "the batch is the entry after the applied log"
                );
                self.in_flight = Some(InFlight {
                    index,
                    term: self.term(),
                    waiters,
                });
            }
            Err(error) => {
                tracing::debug!(%error, "raft dropped a proposal; deciding again later");
                for (pending, _) in waiters.into_iter().rev() {
                    self.queue.push_front(pending);
                }
            }
        }
        Ok(())
    }

    fn propose_join(
        &mut self,
        pending: Pending,
        node: NodeId,
        address: String,
    ) -> Result<(), QuorumError> {
        let known = self.config.voters.contains(&node)
            || self.learners.get(&node).is_some_and(|a| *a == address);
        if known {
            let applied = self.applied;
            self.deliver(pending.origin, Ok(CommandReply::Joined), applied);
            return Ok(());
        }
        let change = ConfChange {
            change_type: ConfChangeType::AddLearnerNode as i32,
            node_id: raft_id(node),
            context: address.into_bytes(),
            ..ConfChange::default()
        };
        match self.raw.propose_conf_change(Vec::new(), change) {
            Ok(()) => {
                self.observe_raft();
                self.in_flight = Some(InFlight {
                    index: self.last_index(),
                    term: self.term(),
                    waiters: vec![(pending, Ok(CommandReply::Joined))],
                });
            }
            Err(error) => {
                tracing::debug!(%error, "raft dropped a membership change; trying again later");
                self.queue.push_front(pending);
            }
        }
        Ok(())
    }

    /// The quorum's state as this (leading) node sees it.
    fn describe(&self) -> QuorumDescription {
        let prs = self.raw.raft.prs();
        let last = self.last_index() as i64;
        let me = self.config.node_id;
        let replica = |id: u64| {
            let node = node_id(id);
            if node == me {
                return QuorumReplica {
                    node_id: node,
                    log_end_offset: last,
                    last_fetch_timestamp_ms: self.now_ms as i64,
                    last_caught_up_timestamp_ms: self.now_ms as i64,
                };
            }
            let seen = self.peers_seen.get(&node).copied().unwrap_or_default();
            QuorumReplica {
                node_id: node,
                log_end_offset: prs.get(id).map_or(0, |p| p.matched as i64),
                last_fetch_timestamp_ms: seen.last_fetch_ms.map_or(-1, |t| t as i64),
                last_caught_up_timestamp_ms: seen.last_caught_up_ms.map_or(-1, |t| t as i64),
            }
        };
        let conf = prs.conf();
        let mut voters: Vec<u64> = conf.voters().ids().iter().collect();
        voters.sort_unstable();
        let mut learners: Vec<u64> = conf.learners().iter().copied().collect();
        learners.sort_unstable();
        QuorumDescription {
            leader_id: me,
            leader_epoch: self.term() as i64,
            high_watermark: self.commit_index() as i64,
            voters: voters.into_iter().map(replica).collect(),
            observers: learners.into_iter().map(replica).collect(),
            voter_addresses: Vec::new(),
        }
    }

    fn forward_target(&mut self) -> Option<NodeId> {
        if let Some(leader) = self.leader().or(self.leader_hint)
            && leader != self.config.node_id
        {
            return Some(leader);
        }
        // No leader known: ask the voters in turn; whoever is not the leader names it.
        let others: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.config.node_id)
            .collect();
        if others.is_empty() {
            return None;
        }
        self.forward_rotation = self.forward_rotation.wrapping_add(1);
        Some(others[self.forward_rotation % others.len()])
    }

    fn start_forward(&mut self, pending: Pending) {
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.forwards.insert(
            request_id,
            Forwarded {
                pending,
                sent_to: None,
                last_sent_ms: 0,
                answered: None,
            },
        );
        self.send_forward(request_id);
    }

    fn send_forward(&mut self, request_id: u64) {
        let target = self.forward_target();
        let now = self.now_ms;
        let Some(forwarded) = self.forwards.get_mut(&request_id) else {
            return;
        };
        forwarded.sent_to = target;
        forwarded.last_sent_ms = now;
        if let Some(target) = target {
            let command = forwarded.pending.command.clone();
            self.outputs.messages.push((
                target,
                PeerMessage::Forward {
                    request_id,
                    command,
                },
            ));
        }
    }

    fn resend_forwards(&mut self) {
        if self.is_leader() {
            // Commands forwarded while another node led come home to be decided here.
            let ids: Vec<u64> = self
                .forwards
                .iter()
                .filter(|(_, f)| f.answered.is_none())
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(forwarded) = self.forwards.remove(&id) {
                    self.queue.push_back(forwarded.pending);
                }
            }
            return;
        }
        let leader = self.leader();
        let due: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| {
                f.answered.is_none()
                    && ((leader.is_some() && f.sent_to != leader)
                        || self.now_ms >= f.last_sent_ms + self.config.forward_resend_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.send_forward(id);
        }
    }

    fn receive_forward(&mut self, from: NodeId, request_id: u64, command: Command) {
        let key = (from, request_id);
        if let Some(outcome) = self.remote_outcomes.get(&key) {
            let outcome = outcome.clone();
            self.outputs.messages.push((
                from,
                PeerMessage::ForwardReply {
                    request_id,
                    outcome,
                },
            ));
            return;
        }
        if self.remote_active.contains(&key) {
            return; // a resend of a command still being decided
        }
        if !self.is_leader() {
            let leader = self.leader();
            self.outputs.messages.push((
                from,
                PeerMessage::ForwardReply {
                    request_id,
                    outcome: ForwardOutcome::NotLeader { leader },
                },
            ));
            return;
        }
        self.remote_active.insert(key);
        let deadline_ms = self.now_ms + self.config.request_timeout_ms;
        self.enqueue(Pending {
            origin: Origin::Remote { from, request_id },
            command,
            deadline_ms,
        });
    }

    fn receive_forward_reply(&mut self, request_id: u64, outcome: ForwardOutcome) {
        match outcome {
            ForwardOutcome::Done {
                applied_index,
                result,
            } => {
                if let Some(forwarded) = self.forwards.get_mut(&request_id)
                    && forwarded.answered.is_none()
                {
                    forwarded.answered = Some((applied_index, result));
                    self.after_apply();
                }
            }
            ForwardOutcome::NotLeader { leader } => {
                self.leader_hint = leader.filter(|l| *l != self.config.node_id);
                // Resend at once only towards a leader the receiver named; without one, the
                // resend timer paces the search (a leaderless cluster must not be flooded).
                let redirect = self.forwards.get(&request_id).is_some_and(|f| {
                    f.answered.is_none()
                        && self.leader_hint.is_some()
                        && f.sent_to != self.leader_hint
                });
                if redirect {
                    self.send_forward(request_id);
                }
            }
        }
    }

    /// Fails commands that waited longer than the request timeout.
    fn expire(&mut self) {
        let now = self.now_ms;
        let mut expired = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for pending in self.queue.drain(..) {
            if pending.deadline_ms <= now {
                expired.push(pending.origin);
            } else {
                kept.push_back(pending);
            }
        }
        self.queue = kept;
        let late: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.pending.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(forwarded) = self.forwards.remove(&id) {
                expired.push(forwarded.pending.origin);
            }
        }
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.waiters.retain(|(pending, _)| {
                if pending.deadline_ms <= now {
                    expired.push(pending.origin);
                    false
                } else {
                    true
                }
            });
        }
        let applied = self.applied;
        for origin in expired {
            match origin {
                // The forwarder has its own deadline and gives up by itself.
                Origin::Remote { from, request_id } => {
                    self.remote_active.remove(&(from, request_id));
                }
                origin => self.deliver(
                    origin,
                    Err(unavailable(
                        "timed out waiting for the metadata quorum (no leader, or no majority)",
                    )),
                    applied,
                ),
            }
        }
    }

    /// Fences brokers whose sessions expired.
    fn check_sessions(&mut self) {
        let now = self.now_ms;
        let timeout = self.config.broker_session_timeout_ms;
        let expired: Vec<(NodeId, i64)> = self
            .image
            .live_brokers()
            .filter(|b| {
                let last = self
                    .sessions
                    .get(&b.id)
                    .copied()
                    .unwrap_or(self.leader_since_ms)
                    .max(self.leader_since_ms);
                now.saturating_sub(last) > timeout && !self.fencing.contains(&b.id)
            })
            .map(|b| (b.id, b.epoch))
            .collect();
        for (broker_id, broker_epoch) in expired {
            tracing::warn!(broker = %broker_id, timeout_ms = timeout, "broker session expired");
            self.fencing.insert(broker_id);
            self.enqueue(Pending {
                origin: Origin::Internal(Internal::Fence(broker_id)),
                command: Command::Request(ControllerRequest::FenceBroker {
                    broker_id,
                    broker_epoch,
                }),
                deadline_ms: now + self.config.request_timeout_ms,
            });
        }
    }

    fn maybe_rebalance(&mut self) {
        let Some(interval) = self.config.leader_rebalance_interval_ms else {
            return;
        };
        if self.rebalance_pending || self.now_ms < self.next_rebalance_ms {
            return;
        }
        self.next_rebalance_ms = self.now_ms + interval;
        self.rebalance_pending = true;
        self.enqueue(Pending {
            origin: Origin::Internal(Internal::Rebalance),
            command: Command::Request(ControllerRequest::ElectPreferredLeaders {
                partitions: None,
            }),
            deadline_ms: self.now_ms + self.config.request_timeout_ms,
        });
    }

    /// Takes a snapshot and compacts the log when enough entries were applied since the last.
    fn maybe_snapshot(&mut self) -> Result<(), QuorumError> {
        let since = self.applied.saturating_sub(self.snapshot_index());
        if since == 0 || (since < self.config.snapshot_interval_entries && !self.snapshot_wanted) {
            return Ok(());
        }
        self.snapshot_wanted = false;
        let term = self.raw.store().term(self.applied)?;
        let conf_state = self.raw.raft.prs().conf().to_conf_state();
        let snapshot = Snapshot {
            data: snapshot::encode(&self.image, &self.learners),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index: self.applied,
                term,
            }),
        };
        self.raw.mut_store().compact(snapshot)?;
        tracing::debug!(node = %self.config.node_id, index = self.applied, "metadata snapshot taken; log compacted");
        Ok(())
    }

    /// Draws this node's next election timeout from its own generator, so runs are repeatable.
    fn draw_election_timeout(&mut self) {
        let low = self.config.election_tick;
        let timeout = low + self.rng.below(low as u64) as usize;
        self.raw.raft.set_randomized_election_timeout(timeout);
    }

    /// Called after every raft call. raft-rs redraws the election timeout from the thread's
    /// random generator whenever it resets (every role or term change); that draw is replaced
    /// with one from the node's seeded generator. It also reacts to role changes.
    fn observe_raft(&mut self) {
        let raft = &self.raw.raft;
        let state = (raft.term, raft.state, raft.leader_id, raft.vote);
        let elapsed = raft.election_elapsed;
        let changed = state != self.last_raft_state;
        if changed || elapsed < self.last_election_elapsed {
            self.draw_election_timeout();
        }
        self.last_election_elapsed = self.raw.raft.election_elapsed;
        if !changed {
            return;
        }
        let (_, was_role, was_leader, _) = self.last_raft_state;
        self.last_raft_state = state;
        if state.1 == StateRole::Leader && was_role != StateRole::Leader {
            tracing::info!(node = %self.config.node_id, term = state.0, "became the metadata quorum leader");
            self.leader_since_ms = self.now_ms;
            self.sessions.clear();
            self.fencing.clear();
            self.rebalance_pending = false;
            self.peers_seen.clear();
            self.next_rebalance_ms =
                self.now_ms + self.config.leader_rebalance_interval_ms.unwrap_or_default();
        } else if was_role == StateRole::Leader && state.1 != StateRole::Leader {
            tracing::info!(node = %self.config.node_id, term = state.0, "no longer the metadata quorum leader");
        }
        if state.2 != was_leader && state.2 != raft::INVALID_ID {
            self.leader_hint = None;
            tracing::debug!(node = %self.config.node_id, leader = %node_id(state.2), term = state.0, "following a metadata quorum leader");
        }
    }
}
