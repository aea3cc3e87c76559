//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, with Kafka's
//! states (Empty → PreparingRebalance → CompletingRebalance → Stable), member ids handed out by
//! the coordinator (KIP-394), static membership (KIP-345) and the rebalance, session, initial
//! delay and pending-sync timers.
//!
//! The group is a plain state machine: every operation takes the current instant and mutates the
//! group; timers are deadlines the group owns, which the coordinator's per-group task sleeps
//! towards and then hands back to [`ClassicGroup::on_timer`]. Responses that must wait (JoinGroup
//! until the rebalance completes, SyncGroup until the leader's assignment is stored) are oneshot
//! channels held by the member they belong to. The broker only relays protocol metadata and
//! assignments; which assignor the clients run (range, roundrobin, sticky, cooperative-sticky,
//! or anything else) is theirs to decide.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::group::consumer_protocol;
use crate::group::error::GroupError;
use crate::group::records::{GroupMetadataValue, MemberMetadata};

/// How long a new member's parked JoinGroup may wait before the member is dropped (Kafka's
/// `group.new.member.join.timeout`, not configurable there either). A new member has no id to
/// heartbeat with, so without this a client that gave up would linger until the rebalance ends.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;

/// A classic group's state, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or migrated away.
    Dead,
}

impl ClassicState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// Settings the classic protocol reads.
#[derive(Debug, Clone, Copy)]
pub struct ClassicSettings {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.max.size`.
    pub max_size: usize,
}

/// One member in a JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The outcome of a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// The error, if the join failed.
    pub error: Option<GroupError>,
    /// The member's id (a new one, or echoed).
    pub member_id: String,
    /// The generation.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// KIP-814: the static leader rejoined and must not compute a new assignment.
    pub skip_assignment: bool,
    /// Every member's metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// A failed join.
    pub fn failed(member_id: &str, error: GroupError) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.to_string(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// The outcome of a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// The error, if the sync failed.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn failed(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A JoinGroup request in domain terms.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Member id; empty for a new member.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (the session timeout for v0).
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Supported protocols in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (v4+): a new dynamic member first gets an id and must rejoin with it.
    pub require_known_member_id: bool,
    /// KIP-814 (v9+): the client understands `skip_assignment`.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request in domain terms.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignment by member id.
    pub assignments: Vec<(String, Bytes)>,
}

/// What a SyncGroup asks of the coordinator.
pub enum SyncAction {
    /// The answer comes through the receiver; nothing to store.
    Wait(oneshot::Receiver<SyncResult>),
    /// The leader's assignment: store the group with it, then call
    /// [`ClassicGroup::finish_leader_sync`]; the answer comes through the receiver.
    Store {
        /// Where the leader's answer arrives.
        receiver: oneshot::Receiver<SyncResult>,
        /// The generation being completed.
        generation_id: i32,
        /// Every member's assignment (empty for members the leader left out).
        assignments: BTreeMap<String, Bytes>,
    },
}

/// Work a classic group operation leaves for the coordinator besides storing the group (see
/// [`ClassicGroup::take_store_request`]).
#[derive(Default)]
pub struct ClassicEffects {
    /// A JoinGroup answer to send only once that record is stored (a static member replaced in
    /// a Stable group).
    pub join_after_store: Option<(oneshot::Sender<JoinResult>, JoinResult)>,
}

/// A member a classic group takes over from a consumer group converting back (KIP-848
/// online downgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// JoinGroup protocols in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// The consumer group's target assignment for it, by topic name.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A classic group member.
#[derive(Debug)]
pub struct ClassicMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Supported protocols in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation.
    pub assignment: Bytes,
    awaiting_join: Option<oneshot::Sender<JoinResult>>,
    awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    is_new: bool,
    heartbeat_deadline: Option<Instant>,
}

impl ClassicMember {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    /// Kafka's `hasSatisfiedHeartbeat` for an expired deadline: members parked in a rebalance
    /// are alive unless they are new (which are timed out by the join timeout instead).
    fn survives_expiry(&self) -> bool {
        !self.is_new && (self.is_awaiting_join() || self.is_awaiting_sync())
    }

    fn schedule_heartbeat(&mut self, now: Instant, timeout_ms: u64) {
        self.heartbeat_deadline = Some(now + Duration::from_millis(timeout_ms));
    }
}

#[derive(Debug, Clone, Copy)]
enum JoinTimerKind {
    /// `group.initial.rebalance.delay.ms` for a group leaving Empty; extended while members
    /// keep arriving, up to the rebalance timeout.
    Initial { delay_ms: u64, remaining_ms: u64 },
    /// The rebalance timeout: members that have not rejoined by then are dropped.
    Rebalance,
}

/// A classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    /// Group id.
    pub group_id: String,
    state: ClassicState,
    previous_state: ClassicState,
    /// When the group entered its state, ms since the epoch.
    pub state_timestamp_ms: i64,
    /// Generation id.
    pub generation_id: i32,
    /// Protocol type, once a member has joined.
    pub protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader_id: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, ClassicMember>,
    /// Static members: instance id → member id.
    static_members: HashMap<String, String>,
    /// Members given an id (KIP-394) that have not rejoined with it yet, with their deadline.
    pending_members: HashMap<String, Instant>,
    /// Members that got their JoinGroup answer but have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    new_member_added: bool,
    join_timer: Option<(Instant, JoinTimerKind)>,
    sync_timer: Option<(Instant, i32)>,
    /// The group changed in a way Kafka persists (a new empty generation, a replaced static
    /// member): the coordinator stores a GroupMetadata record.
    store_requested: bool,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: &str, now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            store_requested: false,
        }
    }

    /// Whether the group must be stored now; clears the request.
    pub fn take_store_request(&mut self) -> bool {
        std::mem::take(&mut self.store_requested)
    }

    /// Rebuilds a group from its stored metadata. A group with members comes back Stable, and
    /// each member must heartbeat within its session timeout from now.
    pub fn from_record(group_id: &str, value: &GroupMetadataValue, now: Instant) -> ClassicGroup {
        let mut group = ClassicGroup::new(group_id, value.current_state_timestamp_ms);
        group.generation_id = value.generation;
        group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        group.protocol_name = value.protocol.clone();
        group.leader_id = value.leader.clone();
        for m in &value.members {
            let protocols = match &value.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            let mut member = ClassicMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols,
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: None,
            };
            member.schedule_heartbeat(now, m.session_timeout_ms.max(0) as u64);
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            group.members.insert(m.member_id.clone(), member);
        }
        if !group.members.is_empty() {
            group.state = ClassicState::Stable;
        }
        group
    }

    /// The stored form of the group, with `assignments` overriding the members' current ones.
    pub fn to_record(&self, assignments: Option<&BTreeMap<String, Bytes>>) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        let members = self
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .and_then(|p| m.metadata(p))
                    .cloned()
                    .unwrap_or_default(),
                assignment: assignments
                    .and_then(|a| a.get(&m.member_id))
                    .cloned()
                    .unwrap_or_else(|| m.assignment.clone()),
            })
            .collect();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol,
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members,
        }
    }

    /// A classic group made from a consumer group whose remaining members all use the
    /// classic protocol (Kafka's `ClassicGroup.fromConsumerGroup`): Stable at `generation`
    /// (the consumer group's epoch), protocol type `consumer`, the protocol the members vote
    /// for, and each member's assignment written in the ConsumerProtocol version of its
    /// metadata for that protocol. The caller stores it, then calls
    /// [`ClassicGroup::rebalance_after_conversion`] so the members rejoin.
    pub fn from_converted(
        group_id: &str,
        generation: i32,
        members: Vec<ConvertedMember>,
        now: Instant,
        now_ms: i64,
    ) -> ClassicGroup {
        let mut group = ClassicGroup::new(group_id, now_ms);
        group.generation_id = generation;
        group.protocol_type = Some(consumer_protocol::PROTOCOL_TYPE.to_string());
        let mut assignments = Vec::with_capacity(members.len());
        for converted in members {
            if group.leader_id.is_none() {
                group.leader_id = Some(converted.member_id.clone());
            }
            if let Some(instance) = &converted.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), converted.member_id.clone());
            }
            let mut member = ClassicMember {
                member_id: converted.member_id.clone(),
                group_instance_id: converted.instance_id,
                client_id: converted.client_id,
                client_host: converted.client_host,
                rebalance_timeout_ms: converted.rebalance_timeout_ms,
                session_timeout_ms: converted.session_timeout_ms,
                protocols: converted.protocols,
                assignment: Bytes::new(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: None,
            };
            member.schedule_heartbeat(now, converted.session_timeout_ms.max(0) as u64);
            assignments.push((converted.member_id.clone(), converted.assignment));
            group.members.insert(converted.member_id, member);
        }
        group.protocol_name = group.select_protocol();
        let protocol = group.protocol_name.clone().unwrap_or_default();
        for (member_id, partitions) in assignments {
            if let Some(member) = group.members.get_mut(&member_id) {
                let version = member
                    .metadata(&protocol)
                    .and_then(consumer_protocol::version)
                    .unwrap_or(0);
                member.assignment = consumer_protocol::encode_assignment(version, &partitions);
            }
        }
        if !group.members.is_empty() {
            group.state = ClassicState::Stable;
        }
        group
    }

    /// Starts the rebalance that follows a conversion from a consumer group, so the members
    /// rejoin through the classic protocol (they learn it from REBALANCE_IN_PROGRESS).
    pub fn rebalance_after_conversion(
        &mut self,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        if self.state == ClassicState::Stable {
            self.prepare_rebalance(now, now_ms, settings);
        }
    }

    /// The current state.
    pub fn state(&self) -> ClassicState {
        self.state
    }

    /// Whether the group has no members (offsets may remain).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// Marks the group deleted: parked requests get COORDINATOR_NOT_AVAILABLE and retry.
    pub fn mark_dead(&mut self, now_ms: i64) {
        self.fail_all_parked(GroupError::CoordinatorNotAvailable);
        self.transition(ClassicState::Dead, now_ms);
        self.join_timer = None;
        self.sync_timer = None;
    }

    /// Answers every parked request with `error` (the partition is unloaded or the group dies).
    pub fn fail_all_parked(&mut self, error: GroupError) {
        for member in self.members.values_mut() {
            if let Some(tx) = member.awaiting_join.take() {
                let _ = tx.send(JoinResult::failed(&member.member_id, error.clone()));
            }
            if let Some(tx) = member.awaiting_sync.take() {
                let _ = tx.send(SyncResult::failed(error.clone()));
            }
        }
    }

    fn transition(&mut self, to: ClassicState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// The earliest timer deadline, for the coordinator's timer task.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        let timers = self
            .join_timer
            .map(|(d, _)| d)
            .into_iter()
            .chain(self.sync_timer.map(|(d, _)| d));
        members.chain(pending).chain(timers).min()
    }

    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    /// Whether `protocol_type` and `protocols` fit the group (Kafka's `supportsProtocols`).
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == ClassicState::Empty || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let n = self.members.len();
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.protocols.iter().any(|(p, _)| p == name))
                .count()
                == n
        })
    }

    /// Picks the protocol for the next generation: among those every member supports, the one
    /// most members list first (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| {
                self.members
                    .values()
                    .filter(|m| m.protocols.iter().any(|(q, _)| q == *p))
                    .count()
                    == n
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            if let Some((vote, _)) = member
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p))
                && let Some(entry) = votes.iter_mut().find(|(c, _)| *c == vote)
            {
                entry.1 += 1;
            }
        }
        // Highest count wins; ties go to the earliest candidate.
        let mut best: Option<(&String, usize)> = None;
        for (c, n) in votes {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c.clone())
    }

    /// Kafka's `validateMember`: the static instance id decides first, then the member id.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(GroupError::UnknownMemberId(member_id.to_string())),
                Some(existing) if existing != member_id => Err(GroupError::FencedInstanceId {
                    instance_id: instance.to_string(),
                    member_id: member_id.to_string(),
                }),
                Some(_) => Ok(()),
            },
            None if !self.members.contains_key(member_id) => {
                Err(GroupError::UnknownMemberId(member_id.to_string()))
            }
            None => Ok(()),
        }
    }

    fn accept_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(ClassicMember::is_awaiting_join)
                    || self.num_awaiting_join() < max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn leader_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn current_join_result(&self, member_id: &str, with_members: bool, skip: bool) -> JoinResult {
        JoinResult {
            error: None,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: skip,
            members: if with_members {
                self.leader_members()
            } else {
                Vec::new()
            },
        }
    }

    /// Serves a JoinGroup. The answer arrives through the returned receiver, now or when the
    /// rebalance completes.
    pub fn join(
        &mut self,
        request: JoinRequest,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
        effects: &mut ClassicEffects,
    ) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let known = !request.member_id.is_empty();
        if !self.accept_joining_member(&request.member_id, settings.max_size) {
            let _ = tx.send(JoinResult::failed(
                "",
                GroupError::GroupMaxSizeReached(settings.max_size as i32),
            ));
            return rx;
        }
        if self.state == ClassicState::Dead {
            let _ = tx.send(JoinResult::failed(
                &request.member_id,
                GroupError::CoordinatorNotAvailable,
            ));
            return rx;
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let echoed = if known {
                request.member_id.as_str()
            } else {
                ""
            };
            let _ = tx.send(JoinResult::failed(
                echoed,
                GroupError::InconsistentGroupProtocol(
                    "the member's protocol type or protocols do not match the group's".into(),
                ),
            ));
            return rx;
        }
        if known {
            self.join_existing(request, tx, now, now_ms, settings);
        } else {
            self.join_new(request, tx, now, now_ms, settings, effects);
        }
        rx
    }

    fn join_new(
        &mut self,
        request: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
        effects: &mut ClassicEffects,
    ) {
        let new_member_id = generate_member_id(&request);
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(existing) = self.static_members.get(&instance).cloned() {
                self.replace_static_member(
                    request,
                    existing,
                    new_member_id,
                    tx,
                    now,
                    now_ms,
                    settings,
                    effects,
                );
            } else {
                self.add_member_and_rebalance(request, new_member_id, tx, now, now_ms, settings);
            }
        } else if request.require_known_member_id {
            let deadline = now + Duration::from_millis(request.session_timeout_ms.max(0) as u64);
            self.pending_members.insert(new_member_id.clone(), deadline);
            let _ = tx.send(JoinResult::failed(
                &new_member_id,
                GroupError::MemberIdRequired,
            ));
        } else {
            self.add_member_and_rebalance(request, new_member_id, tx, now, now_ms, settings);
        }
    }

    fn join_existing(
        &mut self,
        request: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        let member_id = request.member_id.clone();
        if self.pending_members.contains_key(&member_id) {
            self.add_member_and_rebalance(request, member_id, tx, now, now_ms, settings);
            return;
        }
        if let Err(error) = self.validate_member(&member_id, request.group_instance_id.as_deref()) {
            let _ = tx.send(JoinResult::failed(&member_id, error));
            return;
        }
        let Some(member) = self.members.get(&member_id) else {
            let _ = tx.send(JoinResult::failed(
                &member_id,
                GroupError::UnknownMemberId(member_id.clone()),
            ));
            return;
        };
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        let same_metadata = member.matches(&request.protocols);
        match self.state {
            ClassicState::PreparingRebalance => {
                self.update_member_and_rebalance(request, tx, now, now_ms, settings);
            }
            ClassicState::CompletingRebalance if same_metadata => {
                // The member lost its JoinGroup answer: give it the same one again.
                let _ = tx.send(self.current_join_result(&member_id, is_leader, false));
            }
            ClassicState::Stable if !is_leader && same_metadata => {
                let _ = tx.send(self.current_join_result(&member_id, false, false));
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                // The leader rejoining forces a rebalance (it may have seen a metadata change
                // that the others did not); so does anyone's changed metadata.
                self.update_member_and_rebalance(request, tx, now, now_ms, settings);
            }
            ClassicState::Empty | ClassicState::Dead => {
                let _ = tx.send(JoinResult::failed(
                    &member_id,
                    GroupError::UnknownMemberId(member_id.clone()),
                ));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        request: JoinRequest,
        old_member_id: String,
        new_member_id: String,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
        effects: &mut ClassicEffects,
    ) {
        let Some(mut member) = self.members.remove(&old_member_id) else {
            self.add_member_and_rebalance(request, new_member_id, tx, now, now_ms, settings);
            return;
        };
        // The old incarnation's parked requests learn that they were fenced.
        if let Some(old) = member.awaiting_join.take() {
            let _ = old.send(JoinResult::failed(
                &old_member_id,
                GroupError::FencedInstanceId {
                    instance_id: request.group_instance_id.clone().unwrap_or_default(),
                    member_id: old_member_id.clone(),
                },
            ));
        }
        if let Some(old) = member.awaiting_sync.take() {
            let _ = old.send(SyncResult::failed(GroupError::FencedInstanceId {
                instance_id: request.group_instance_id.clone().unwrap_or_default(),
                member_id: old_member_id.clone(),
            }));
        }
        member.member_id = new_member_id.clone();
        member.protocols = request.protocols.clone();
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.schedule_heartbeat(now, request.session_timeout_ms.max(0) as u64);
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.clone());
        }
        let was_leader = self.leader_id.as_deref() == Some(old_member_id.as_str());
        if was_leader {
            self.leader_id = Some(new_member_id.clone());
        }
        if self.pending_sync.remove(&old_member_id) {
            self.pending_sync.insert(new_member_id.clone());
        }
        self.members.insert(new_member_id.clone(), member);

        match self.state {
            ClassicState::Stable => {
                let unchanged = self.select_protocol() == self.protocol_name;
                if unchanged {
                    // KIP-345: a static member coming back with the same protocols causes no
                    // rebalance; it gets the current generation (and keeps its assignment).
                    let result = if request.supports_skip_assignment {
                        self.current_join_result(&new_member_id, was_leader, was_leader)
                    } else {
                        self.current_join_result(&new_member_id, false, false)
                    };
                    self.store_requested = true;
                    effects.join_after_store = Some((tx, result));
                } else {
                    if let Some(m) = self.members.get_mut(&new_member_id) {
                        m.awaiting_join = Some(tx);
                    }
                    self.prepare_rebalance(now, now_ms, settings);
                }
            }
            ClassicState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&new_member_id) {
                    m.awaiting_join = Some(tx);
                }
                self.prepare_rebalance(now, now_ms, settings);
            }
            _ => {
                if let Some(m) = self.members.get_mut(&new_member_id) {
                    m.awaiting_join = Some(tx);
                }
                self.maybe_complete_join_phase(now, now_ms, settings);
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        member_id: String,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        self.pending_members.remove(&member_id);
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state == ClassicState::Empty
        {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() || self.members.is_empty() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let mut member = ClassicMember {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: None,
        };
        member.schedule_heartbeat(now, NEW_MEMBER_JOIN_TIMEOUT_MS);
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance_or_complete_join(now, now_ms, settings);
    }

    fn update_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        tx: oneshot::Sender<JoinResult>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            member.protocols = request.protocols;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            member.session_timeout_ms = request.session_timeout_ms;
            if let Some(old) = member.awaiting_join.replace(tx) {
                // A duplicate JoinGroup supersedes the parked one.
                let _ = old.send(JoinResult::failed(
                    &request.member_id,
                    GroupError::RebalanceInProgress,
                ));
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(now, now_ms, settings);
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, now_ms, settings);
        } else {
            self.maybe_complete_join_phase(now, now_ms, settings);
        }
    }

    fn maybe_complete_join_phase(&mut self, now: Instant, now_ms: i64, settings: &ClassicSettings) {
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state != ClassicState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now, now_ms, settings);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, settings: &ClassicSettings) {
        if self.state == ClassicState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(GroupError::RebalanceInProgress, now);
        }
        self.pending_sync.clear();
        self.sync_timer = None;
        let initial = self.state == ClassicState::Empty;
        self.transition(ClassicState::PreparingRebalance, now_ms);
        if initial {
            let delay_ms = settings.initial_rebalance_delay_ms;
            let remaining_ms = self.rebalance_timeout_ms().saturating_sub(delay_ms);
            self.join_timer = Some((
                now + Duration::from_millis(delay_ms),
                JoinTimerKind::Initial {
                    delay_ms,
                    remaining_ms,
                },
            ));
        } else if self.has_all_members_joined() {
            self.complete_join(now, now_ms, settings);
        } else {
            self.join_timer = Some((
                now + Duration::from_millis(self.rebalance_timeout_ms()),
                JoinTimerKind::Rebalance,
            ));
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64, _settings: &ClassicSettings) {
        self.join_timer = None;
        // Dynamic members that did not rejoin are gone; static ones keep their place (KIP-345).
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member_entry(&id);
        }
        if self.state == ClassicState::Dead {
            return;
        }
        // Elect a new leader among the joined members if the old one did not rejoin.
        let leader_joined = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(ClassicMember::is_awaiting_join);
        if !leader_joined {
            self.leader_id = self
                .members
                .values()
                .find(|m| m.is_awaiting_join())
                .map(|m| m.member_id.clone());
            if self.leader_id.is_none() && !self.members.is_empty() {
                // Only static members that did not rejoin remain: wait another rebalance
                // timeout for them (or for their sessions to expire).
                self.join_timer = Some((
                    now + Duration::from_millis(self.rebalance_timeout_ms()),
                    JoinTimerKind::Rebalance,
                ));
                return;
            }
        }
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.transition(ClassicState::Empty, now_ms);
            self.new_member_added = false;
            self.store_requested = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(ClassicState::CompletingRebalance, now_ms);
        let leader = self.leader_id.clone().unwrap_or_default();
        let leader_members = self.leader_members();
        let generation_id = self.generation_id;
        let protocol_type = self.protocol_type.clone();
        let protocol_name = self.protocol_name.clone();
        for member in self.members.values_mut() {
            let is_leader = member.member_id == leader;
            let result = JoinResult {
                error: None,
                member_id: member.member_id.clone(),
                generation_id,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader: leader.clone(),
                skip_assignment: false,
                members: if is_leader {
                    leader_members.clone()
                } else {
                    Vec::new()
                },
            };
            if let Some(tx) = member.awaiting_join.take() {
                let _ = tx.send(result);
            }
            member.is_new = false;
            member.schedule_heartbeat(now, member.session_timeout_ms.max(0) as u64);
            self.pending_sync.insert(member.member_id.clone());
        }
        self.sync_timer = Some((
            now + Duration::from_millis(self.rebalance_timeout_ms()),
            generation_id,
        ));
        self.new_member_added = false;
    }

    fn reset_and_propagate_assignment_error(&mut self, error: GroupError, now: Instant) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(tx) = member.awaiting_sync.take() {
                let _ = tx.send(SyncResult::failed(error.clone()));
                member.schedule_heartbeat(now, member.session_timeout_ms.max(0) as u64);
            }
        }
    }

    fn remove_member_entry(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id)
            && let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    /// Removes a member (leave, session expiry) and rebalances what is left.
    fn remove_member_and_update(
        &mut self,
        member_id: &str,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        if let Some(member) = self.members.get_mut(member_id)
            && let Some(tx) = member.awaiting_join.take()
        {
            let _ = tx.send(JoinResult::failed(
                "",
                GroupError::UnknownMemberId(member_id.to_string()),
            ));
        }
        self.remove_member_entry(member_id);
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, settings);
            }
            ClassicState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now, now_ms, settings);
            }
            _ => {}
        }
    }

    /// Serves a SyncGroup (after the coordinator-level checks).
    pub fn sync(&mut self, request: SyncRequest, now: Instant) -> SyncAction {
        let (tx, rx) = oneshot::channel();
        if self.state == ClassicState::Dead {
            let _ = tx.send(SyncResult::failed(GroupError::CoordinatorNotAvailable));
            return SyncAction::Wait(rx);
        }
        if self.members.is_empty() {
            let _ = tx.send(SyncResult::failed(GroupError::UnknownMemberId(
                request.member_id.clone(),
            )));
            return SyncAction::Wait(rx);
        }
        let checks = self
            .validate_member(&request.member_id, request.group_instance_id.as_deref())
            .and_then(|()| {
                if request.generation_id != self.generation_id {
                    return Err(GroupError::IllegalGeneration {
                        received: request.generation_id,
                        current: self.generation_id,
                    });
                }
                if let Some(t) = &request.protocol_type
                    && self.protocol_type.as_ref() != Some(t)
                {
                    return Err(GroupError::InconsistentGroupProtocol(format!(
                        "protocol type {t:?} is not the group's"
                    )));
                }
                if let Some(p) = &request.protocol_name
                    && self.protocol_name.as_ref() != Some(p)
                {
                    return Err(GroupError::InconsistentGroupProtocol(format!(
                        "protocol {p:?} is not the group's"
                    )));
                }
                Ok(())
            });
        if let Err(error) = checks {
            let _ = tx.send(SyncResult::failed(error));
            return SyncAction::Wait(rx);
        }
        match self.state {
            ClassicState::PreparingRebalance => {
                let _ = tx.send(SyncResult::failed(GroupError::RebalanceInProgress));
                SyncAction::Wait(rx)
            }
            ClassicState::CompletingRebalance => {
                self.pending_sync.remove(&request.member_id);
                let is_leader = self.leader_id.as_deref() == Some(request.member_id.as_str());
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    if let Some(old) = member.awaiting_sync.replace(tx) {
                        let _ = old.send(SyncResult::failed(GroupError::RebalanceInProgress));
                    }
                    member.heartbeat_deadline = None;
                }
                if !is_leader {
                    return SyncAction::Wait(rx);
                }
                let mut assignments: BTreeMap<String, Bytes> = request
                    .assignments
                    .into_iter()
                    .filter(|(id, _)| self.members.contains_key(id))
                    .collect();
                for id in self.members.keys() {
                    assignments.entry(id.clone()).or_default();
                }
                let _ = now;
                SyncAction::Store {
                    receiver: rx,
                    generation_id: self.generation_id,
                    assignments,
                }
            }
            ClassicState::Stable => {
                self.pending_sync.remove(&request.member_id);
                let assignment = self
                    .members
                    .get(&request.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = tx.send(SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                });
                SyncAction::Wait(rx)
            }
            ClassicState::Empty | ClassicState::Dead => {
                let _ = tx.send(SyncResult::failed(GroupError::UnknownMemberId(
                    request.member_id,
                )));
                SyncAction::Wait(rx)
            }
        }
    }

    /// Completes the leader's SyncGroup once the coordinator tried to store the assignment.
    pub fn finish_leader_sync(
        &mut self,
        generation_id: i32,
        assignments: BTreeMap<String, Bytes>,
        stored: Result<(), GroupError>,
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) {
        // Another member may have joined while the record was written; then this generation is
        // already over and its parked syncs were answered.
        if self.state != ClassicState::CompletingRebalance || self.generation_id != generation_id {
            return;
        }
        match stored {
            Ok(()) => {
                for member in self.members.values_mut() {
                    member.assignment = assignments
                        .get(&member.member_id)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(tx) = member.awaiting_sync.take() {
                        let _ = tx.send(SyncResult {
                            error: None,
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol_name.clone(),
                            assignment: member.assignment.clone(),
                        });
                        member.schedule_heartbeat(now, member.session_timeout_ms.max(0) as u64);
                    }
                }
                self.transition(ClassicState::Stable, now_ms);
            }
            Err(error) => {
                self.reset_and_propagate_assignment_error(error, now);
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, settings);
            }
        }
    }

    /// Serves a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration {
                received: generation_id,
                current: self.generation_id,
            });
        }
        match self.state {
            ClassicState::Empty => Err(GroupError::UnknownMemberId(member_id.to_string())),
            ClassicState::PreparingRebalance => {
                self.touch(member_id, now);
                Err(GroupError::RebalanceInProgress)
            }
            _ => {
                self.touch(member_id, now);
                Ok(())
            }
        }
    }

    fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            let timeout = member.session_timeout_ms.max(0) as u64;
            member.schedule_heartbeat(now, timeout);
        }
    }

    /// Serves a LeaveGroup for each `(member id, instance id)`; one result per member.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
        now_ms: i64,
        settings: &ClassicSettings,
    ) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = Vec::new();
        for (member_id, instance_id) in leaving {
            let result = match instance_id {
                Some(instance) => match self.static_members.get(instance) {
                    None => Err(GroupError::UnknownMemberId(member_id.clone())),
                    Some(existing) if !member_id.is_empty() && existing != member_id => {
                        Err(GroupError::FencedInstanceId {
                            instance_id: instance.clone(),
                            member_id: member_id.clone(),
                        })
                    }
                    Some(existing) => {
                        removed.push(existing.clone());
                        Ok(())
                    }
                },
                None => {
                    if self.pending_members.remove(member_id).is_some() {
                        Ok(())
                    } else if self.members.contains_key(member_id) {
                        removed.push(member_id.clone());
                        Ok(())
                    } else {
                        Err(GroupError::UnknownMemberId(member_id.clone()))
                    }
                }
            };
            results.push(result);
        }
        for id in removed {
            if self.members.contains_key(&id) {
                self.remove_member_and_update(&id, now, now_ms, settings);
            }
        }
        if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
            self.maybe_complete_join_phase(now, now_ms, settings);
        }
        results
    }

    /// Runs every timer whose deadline has passed.
    pub fn on_timer(&mut self, now: Instant, now_ms: i64, settings: &ClassicSettings) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired_pending {
            self.pending_members.remove(&id);
            if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(now, now_ms, settings);
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            let Some(member) = self.members.get_mut(&id) else {
                continue;
            };
            if member.survives_expiry() {
                member.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(group = %self.group_id, member = %id, "member session expired; removing it");
            self.remove_member_and_update(&id, now, now_ms, settings);
        }
        if let Some((deadline, generation)) = self.sync_timer
            && deadline <= now
        {
            self.sync_timer = None;
            if generation == self.generation_id
                && matches!(
                    self.state,
                    ClassicState::CompletingRebalance | ClassicState::Stable
                )
                && !self.pending_sync.is_empty()
            {
                let missing: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                tracing::info!(group = %self.group_id, ?missing, "members did not sync in time; removing them");
                for id in missing {
                    self.remove_member_entry(&id);
                }
                self.prepare_rebalance(now, now_ms, settings);
            }
        }
        // A zero initial delay re-arms at `now`, so run the join timer until it lies ahead.
        while let Some((deadline, kind)) = self.join_timer
            && deadline <= now
        {
            self.join_timer = None;
            match kind {
                JoinTimerKind::Initial {
                    delay_ms,
                    remaining_ms,
                } if self.new_member_added && remaining_ms != 0 => {
                    self.new_member_added = false;
                    let next_delay = settings.initial_rebalance_delay_ms.min(remaining_ms);
                    let next_remaining = remaining_ms.saturating_sub(delay_ms);
                    self.join_timer = Some((
                        now + Duration::from_millis(next_delay),
                        JoinTimerKind::Initial {
                            delay_ms: next_delay,
                            remaining_ms: next_remaining,
                        },
                    ));
                }
                _ => {
                    if self.state == ClassicState::PreparingRebalance {
                        self.complete_join(now, now_ms, settings);
                    }
                }
            }
        }
    }

    /// Kafka's `validateOffsetCommit` for a classic group. `Ok(())` accepts the commit.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == ClassicState::Empty {
            // A commit from the admin client or an `assign()` consumer.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration {
                    received: generation_id,
                    current: self.generation_id,
                });
            }
        } else if self.state != ClassicState::Empty {
            return Err(GroupError::UnknownMemberId(member_id.to_string()));
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Topics the members subscribe to, read from their `consumer` protocol metadata; `None`
    /// when the group is not a consumer group or a subscription cannot be read.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(protocol)?;
            topics.extend(crate::group::consumer_protocol::subscription_topics(
                metadata,
            )?);
        }
        Some(topics)
    }
}

/// A new member id: the client id, a dash and a UUID (the instance id instead of the client id
/// for static members), as Kafka forms them.
fn generate_member_id(request: &JoinRequest) -> String {
    let prefix = request
        .group_instance_id
        .as_deref()
        .unwrap_or(&request.client_id);
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: ClassicSettings = ClassicSettings {
        initial_rebalance_delay_ms: 0,
        max_size: 10,
    };

    fn request(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn join(
        group: &mut ClassicGroup,
        req: JoinRequest,
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let mut effects = ClassicEffects::default();
        group.join(req, now, 0, &SETTINGS, &mut effects)
    }

    /// KIP-394: JoinGroup v4+ with an empty member id gets MEMBER_ID_REQUIRED and an id; the
    /// rejoin with it completes the (initial, zero-delay) rebalance once the timer runs.
    #[test]
    fn new_member_gets_an_id_then_joins() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g", 0);
        let mut rx = join(&mut group, request("", None), now);
        let first = rx.try_recv().expect("answered at once");
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        assert!(first.member_id.starts_with("client-"));
        let mut rx = join(&mut group, request(&first.member_id, None), now);
        assert!(rx.try_recv().is_err(), "parked until the join phase ends");
        assert_eq!(group.state(), ClassicState::PreparingRebalance);
        group.on_timer(now, 0, &SETTINGS);
        let joined = rx.try_recv().expect("answered after the delay");
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, first.member_id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(group.state(), ClassicState::CompletingRebalance);
    }

    fn stable_group_with(now: Instant, instances: &[Option<&str>]) -> (ClassicGroup, Vec<String>) {
        let mut group = ClassicGroup::new("g", 0);
        let mut receivers = Vec::new();
        for instance in instances {
            let mut req = request("", *instance);
            req.require_known_member_id = false;
            receivers.push(join(&mut group, req, now));
        }
        group.on_timer(now, 0, &SETTINGS);
        let results: Vec<JoinResult> = receivers
            .iter_mut()
            .map(|rx| rx.try_recv().expect("joined"))
            .collect();
        let ids: Vec<String> = results.iter().map(|r| r.member_id.clone()).collect();
        let leader = results[0].leader.clone();
        for id in &ids {
            let action = group.sync(
                SyncRequest {
                    member_id: id.clone(),
                    group_instance_id: group.members[id].group_instance_id.clone(),
                    generation_id: 1,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: if *id == leader {
                        ids.iter()
                            .map(|m| (m.clone(), Bytes::from(m.clone())))
                            .collect()
                    } else {
                        Vec::new()
                    },
                },
                now,
            );
            if let SyncAction::Store {
                generation_id,
                assignments,
                ..
            } = action
            {
                group.finish_leader_sync(generation_id, assignments, Ok(()), now, 0, &SETTINGS);
            }
        }
        assert_eq!(group.state(), ClassicState::Stable);
        (group, ids)
    }

    /// Heartbeat (12): a stale generation is ILLEGAL_GENERATION, an unknown id UNKNOWN_MEMBER_ID.
    #[test]
    fn heartbeat_checks_member_and_generation() {
        let now = Instant::now();
        let (mut group, ids) = stable_group_with(now, &[None]);
        assert_eq!(group.heartbeat(&ids[0], None, 1, now), Ok(()));
        assert!(matches!(
            group.heartbeat(&ids[0], None, 0, now),
            Err(GroupError::IllegalGeneration { .. })
        ));
        assert!(matches!(
            group.heartbeat("nobody", None, 1, now),
            Err(GroupError::UnknownMemberId(_))
        ));
    }

    /// KIP-345: a static member that restarts (new JoinGroup with an empty member id and the
    /// same instance id) replaces its old id without a rebalance; the old id is fenced.
    #[test]
    fn static_member_restart_causes_no_rebalance_and_fences_the_old_id() {
        let now = Instant::now();
        let (mut group, ids) = stable_group_with(now, &[Some("i-1"), Some("i-2")]);
        let mut effects = ClassicEffects::default();
        let _rx = group.join(request("", Some("i-2")), now, 0, &SETTINGS, &mut effects);
        assert!(group.take_store_request(), "the new member id is persisted");
        let (_, result) = effects.join_after_store.expect("answered after the store");
        assert_eq!(result.generation_id, 1, "same generation: no rebalance");
        assert_eq!(group.state(), ClassicState::Stable);
        let old = &ids[1];
        assert!(matches!(
            group.heartbeat(old, Some("i-2"), 1, now),
            Err(GroupError::FencedInstanceId { .. })
        ));
        assert_eq!(
            group.heartbeat(&result.member_id, Some("i-2"), 1, now),
            Ok(())
        );
    }

    /// A member whose session expires is removed and the rest rebalance.
    #[test]
    fn session_expiry_removes_the_member_and_rebalances() {
        let now = Instant::now();
        let (mut group, ids) = stable_group_with(now, &[None, None]);
        let later = now + Duration::from_millis(5_000);
        assert_eq!(group.heartbeat(&ids[0], None, 1, later), Ok(()));
        let expired = now + Duration::from_millis(10_001);
        group.on_timer(expired, 0, &SETTINGS);
        assert!(!group.members.contains_key(&ids[1]));
        assert_eq!(group.state(), ClassicState::PreparingRebalance);
    }

    /// OffsetCommit from an `assign()` consumer (generation -1) is accepted only while Empty.
    #[test]
    fn simple_commits_need_an_empty_group() {
        let group = ClassicGroup::new("g", 0);
        assert_eq!(group.validate_offset_commit("", None, -1), Ok(()));
        let now = Instant::now();
        let (group, ids) = stable_group_with(now, &[None]);
        assert!(matches!(
            group.validate_offset_commit("", None, -1),
            Err(GroupError::UnknownMemberId(_))
        ));
        assert_eq!(group.validate_offset_commit(&ids[0], None, 1), Ok(()));
    }

    #[test]
    fn leave_of_the_last_member_empties_the_group_with_a_new_generation() {
        let now = Instant::now();
        let (mut group, ids) = stable_group_with(now, &[None]);
        let results = group.leave(&[(ids[0].clone(), None)], now, 0, &SETTINGS);
        assert_eq!(results, vec![Ok(())]);
        assert_eq!(group.state(), ClassicState::Empty);
        assert_eq!(group.generation_id, 2);
        let results = group.leave(&[("ghost".into(), None)], now, 0, &SETTINGS);
        assert!(matches!(results[0], Err(GroupError::UnknownMemberId(_))));
    }
}
