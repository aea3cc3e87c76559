//! The KIP-848 consumer group protocol: ConsumerGroupHeartbeat with server-side assignment.
//!
//! The coordinator keeps three epochs: the *group epoch* (bumped whenever membership,
//! subscriptions or the subscribed topics change), the *assignment epoch* (the group epoch the
//! target assignment was computed for), and each *member epoch* (how far the member has been
//! reconciled). A member moves towards its target in steps the client acknowledges: first it
//! revokes what it must give up, staying at its epoch; then it advances to the target epoch and
//! gets the partitions that are free, and later the ones other members still have to release.
//! That is Kafka's `CurrentAssignmentBuilder`, rewritten here as [`ConsumerGroup::reconcile`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::group::assignor::{self, Assignment, Assignor, MemberSubscription};
use crate::group::classic::{ClassicGroup, ConvertedMember, JoinRequest};
use crate::group::consumer_protocol;
use crate::group::error::GroupError;
use crate::group::records::{
    ClassicMemberMetadata, ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataValue, ConsumerGroupMetadataValue,
    ConsumerGroupTargetAssignmentMemberValue, ConsumerGroupTargetAssignmentMetadataValue,
    CoordinatorRecord, RecordKey, TopicIdPartitions,
};

/// Member epoch of a ConsumerGroupHeartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily (it keeps its assignment for its
/// session timeout).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's `MemberState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Reconciled to its epoch.
    Stable,
    /// Waiting for the member to revoke partitions.
    UnrevokedPartitions,
    /// Waiting for other members to release partitions the target gives this member.
    UnreleasedPartitions,
}

impl MemberState {
    fn value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    fn from_value(value: i8) -> MemberState {
        match value {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            // Unknown future states reconcile from scratch, as Kafka's UNKNOWN does.
            _ => MemberState::Stable,
        }
    }
}

/// A consumer group's state, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The target assignment is behind the group epoch.
    Assigning,
    /// Some member is not reconciled to the target yet.
    Reconciling,
    /// Every member is reconciled.
    Stable,
}

impl ConsumerGroupState {
    /// The name DescribeGroups, ListGroups and ConsumerGroupDescribe report.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Settings the consumer protocol reads.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<Assignor>,
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regular expression (stored, not evaluated).
    pub subscribed_topic_regex: Option<String>,
    /// Rebalance timeout: how long the member may take to revoke.
    pub rebalance_timeout_ms: i32,
    /// The server assignor the member asked for.
    pub server_assignor: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump.
    pub previous_member_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions the member owns (or is being given).
    pub assigned: Assignment,
    /// Partitions the member must revoke.
    pub pending_revocation: Assignment,
    /// Set while the member uses the classic protocol (it joined through JoinGroup, or came
    /// with a classic group that converted): its session timeout and JoinGroup protocols.
    pub classic: Option<ClassicMemberMetadata>,
    session_deadline: Option<Instant>,
    rebalance_deadline: Option<(Instant, i32)>,
    /// A classic member told to rejoin must send JoinGroup by then (its rebalance timeout).
    join_deadline: Option<Instant>,
    /// A classic member that joined must send SyncGroup by then (its rebalance timeout).
    sync_deadline: Option<Instant>,
}

impl ConsumerMember {
    fn new(member_id: &str) -> ConsumerMember {
        ConsumerMember {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            classic: None,
            session_deadline: None,
            rebalance_deadline: None,
            join_deadline: None,
            sync_deadline: None,
        }
    }

    /// Whether the member speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat).
    pub fn uses_classic_protocol(&self) -> bool {
        self.classic.is_some()
    }

    /// The session timeout that applies to the member: its own JoinGroup one for a classic
    /// member, `group.consumer.session.timeout.ms` otherwise.
    fn session_timeout(&self, settings: &ConsumerSettings) -> Duration {
        let ms = match &self.classic {
            Some(classic) => classic.session_timeout_ms,
            None => settings.session_timeout_ms,
        };
        Duration::from_millis(ms.max(0) as u64)
    }

    /// The protocol name a classic member was answered with: its first JoinGroup protocol.
    pub fn classic_protocol_name(&self) -> Option<&str> {
        self.classic
            .as_ref()
            .and_then(|c| c.supported_protocols.first())
            .map(|(name, _)| name.as_str())
    }

    fn subscription_value(&self) -> ConsumerGroupMemberMetadataValue {
        ConsumerGroupMemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.clone(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
            classic_member_metadata: self.classic.clone(),
        }
    }

    fn assignment_value(&self) -> ConsumerGroupCurrentMemberAssignmentValue {
        ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.value(),
            assigned_partitions: to_list(&self.assigned),
            partitions_pending_revocation: to_list(&self.pending_revocation),
        }
    }

    fn same_subscription(&self, other: &ConsumerMember) -> bool {
        self.subscription_value() == other.subscription_value()
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == epoch
    }
}

/// A ConsumerGroupHeartbeat in domain terms (after the request-level checks).
#[derive(Debug, Clone)]
pub struct ConsumerHeartbeat {
    /// Member id (v1 clients choose it; v0 clients send empty on join).
    pub member_id: String,
    /// Member epoch: 0 joins, -1 leaves, -2 leaves temporarily (static).
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Rebalance timeout, -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topics, `None` when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed regex, `None` when unchanged.
    pub subscribed_topic_regex: Option<String>,
    /// Server assignor, `None` when unchanged.
    pub server_assignor: Option<String>,
    /// Owned partitions, `None` when unchanged.
    pub owned: Option<TopicIdPartitions>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResult {
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Heartbeat interval.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when the client needs it.
    pub assignment: Option<Assignment>,
}

/// A member after [`ConsumerGroup::store_member`].
struct StoredMember {
    /// The member as stored, reconciled one step.
    member: ConsumerMember,
    /// Its assigned partitions differ from before the request.
    assigned_changed: bool,
}

/// How a classic member's JoinGroup to a consumer group ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassicJoinOutcome {
    /// The member is in the group at this generation (its member epoch) and must sync.
    Joined {
        /// Member id.
        member_id: String,
        /// Generation: the member epoch.
        generation_id: i32,
        /// The protocol the member is answered with: its first one.
        protocol_name: String,
    },
    /// A new dynamic member gets an id and must join again with it (MEMBER_ID_REQUIRED).
    MemberIdRequired(String),
}

/// What a classic member's SyncGroup gets from a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicSyncAnswer {
    /// The partitions the member owns now.
    pub assignment: Assignment,
    /// The ConsumerProtocol version to write them in: its subscription's.
    pub version: i16,
}

/// A subscribed topic as the metadata image describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic id.
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// What the coordinator knows of the cluster's topics, from the metadata image.
pub trait TopicResolver {
    /// The topic called `name`.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
    /// Every topic a regular expression may match (internal topics excluded, as in Kafka).
    fn names(&self) -> Vec<String>;
}

/// Compiles a KIP-848 subscription regex with Java's `Matcher.matches` semantics (the whole
/// topic name must match).
pub fn compile_subscription_regex(pattern: &str) -> Result<regex::Regex, GroupError> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| GroupError::InvalidRegularExpression(e.to_string()))
}

/// A consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    /// Group id.
    pub group_id: String,
    /// Group epoch.
    pub group_epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment by member id.
    pub target: HashMap<String, Assignment>,
    static_members: HashMap<String, String>,
    /// The subscribed topics the last target assignment was computed against.
    subscribed_metadata: BTreeMap<String, TopicInfo>,
    /// Topics each subscription regex matched at the last resolution.
    regex_topics: BTreeMap<String, BTreeSet<String>>,
    /// When the group entered its state, ms since the epoch.
    pub state_timestamp_ms: i64,
}

fn to_list(assignment: &Assignment) -> TopicIdPartitions {
    assignment
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn from_list(list: &TopicIdPartitions) -> Assignment {
    let mut assignment = Assignment::new();
    for (topic, partitions) in list {
        if !partitions.is_empty() {
            assignment
                .entry(*topic)
                .or_default()
                .extend(partitions.iter().copied());
        }
    }
    assignment
}

/// Partitions named by topic, as the classic protocol names them, by topic id; topics the
/// cluster does not have are left out.
fn by_topic_id(partitions: &[(String, i32)], topics: &dyn TopicResolver) -> TopicIdPartitions {
    let mut by_id: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (name, partition) in partitions {
        if let Some(info) = topics.topic(name) {
            by_id.entry(info.id).or_default().push(*partition);
        }
    }
    by_id.into_iter().collect()
}

impl ConsumerGroup {
    /// A new, empty group.
    pub fn new(group_id: &str, now_ms: i64) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: HashMap::new(),
            static_members: HashMap::new(),
            subscribed_metadata: BTreeMap::new(),
            regex_topics: BTreeMap::new(),
            state_timestamp_ms: now_ms,
        }
    }

    /// The group's state.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    /// Topics some member subscribes to, by name or (as last resolved) by regex.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topics(m))
            .collect()
    }

    /// The topics one member subscribes to, by name or (as last resolved) by regex.
    fn member_topics(&self, member: &ConsumerMember) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = member.subscribed_topic_names.iter().cloned().collect();
        if let Some(pattern) = &member.subscribed_topic_regex
            && let Some(matched) = self.regex_topics.get(pattern)
        {
            topics.extend(matched.iter().cloned());
        }
        topics
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| {
                m.session_deadline
                    .into_iter()
                    .chain(m.rebalance_deadline.map(|(d, _)| d))
                    .chain(m.join_deadline)
                    .chain(m.sync_deadline)
            })
            .min()
    }

    fn key_member(&self, member_id: &str) -> (String, String) {
        (self.group_id.clone(), member_id.to_string())
    }

    fn current_partition_epoch(&self, topic: &Uuid, partition: i32, except: &str) -> Option<i32> {
        self.members
            .values()
            .filter(|m| m.member_id != except)
            .find(|m| {
                m.assigned
                    .get(topic)
                    .is_some_and(|ps| ps.contains(&partition))
                    || m.pending_revocation
                        .get(topic)
                        .is_some_and(|ps| ps.contains(&partition))
            })
            .map(|m| m.member_epoch)
    }

    /// Serves a ConsumerGroupHeartbeat that is not a leave. `topics` resolves a topic name in
    /// the current metadata image. Records to store are appended to `records`.
    pub fn heartbeat(
        &mut self,
        request: ConsumerHeartbeat,
        topics: &dyn TopicResolver,
        settings: &ConsumerSettings,
        now: Instant,
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<ConsumerHeartbeatResult, GroupError> {
        let joining = request.member_epoch == 0;
        let member_id = if request.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        let known = self.members.contains_key(&member_id)
            || request
                .instance_id
                .as_ref()
                .is_some_and(|i| self.static_members.contains_key(i));
        if !known && self.members.len() >= settings.max_size {
            return Err(GroupError::GroupMaxSizeReached(settings.max_size as i32));
        }
        let previous_state = self.state();

        // Find or create the member.
        let member: ConsumerMember = match &request.instance_id {
            Some(instance) => {
                let existing = self
                    .static_members
                    .get(instance)
                    .and_then(|id| self.members.get(id))
                    .cloned();
                match (joining, existing) {
                    (true, None) => self
                        .members
                        .get(&member_id)
                        .cloned()
                        .map(reset_for_rejoin)
                        .unwrap_or_else(|| ConsumerMember::new(&member_id)),
                    (true, Some(existing)) => {
                        // A classic incarnation is replaced without waiting for its leave,
                        // as Kafka does when the instance comes back with the new protocol.
                        if existing.member_id != member_id
                            && existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH
                            && !existing.uses_classic_protocol()
                        {
                            return Err(GroupError::UnreleasedInstanceId(instance.clone()));
                        }
                        self.replace_static_member(&existing, &member_id, records)
                    }
                    (false, None) => return Err(GroupError::UnknownMemberId(member_id)),
                    (false, Some(existing)) => {
                        if existing.member_id != member_id {
                            return Err(GroupError::FencedInstanceId {
                                instance_id: instance.clone(),
                                member_id,
                            });
                        }
                        check_member_epoch(
                            &existing,
                            request.member_epoch,
                            request.owned.as_ref(),
                        )?;
                        existing
                    }
                }
            }
            None => match self.members.get(&member_id) {
                Some(existing) if joining => reset_for_rejoin(existing.clone()),
                Some(existing) => {
                    check_member_epoch(existing, request.member_epoch, request.owned.as_ref())?;
                    existing.clone()
                }
                None if joining => ConsumerMember::new(&member_id),
                None => return Err(GroupError::UnknownMemberId(member_id)),
            },
        };
        // 1. Update the member's subscription from the request.
        let mut updated = member.clone();
        if let Some(instance) = &request.instance_id {
            updated.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &request.rack_id {
            updated.rack_id = Some(rack.clone());
        }
        if request.rebalance_timeout_ms >= 0 {
            updated.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if let Some(assignor) = &request.server_assignor {
            updated.server_assignor = Some(assignor.clone());
        }
        if let Some(names) = &request.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            updated.subscribed_topic_names = names;
        }
        if let Some(regex) = &request.subscribed_topic_regex {
            updated.subscribed_topic_regex = Some(regex.clone()).filter(|r| !r.is_empty());
        }
        updated.client_id = request.client_id.clone();
        updated.client_host = request.client_host.clone();
        // A member heartbeating with the consumer protocol no longer uses the classic one.
        updated.classic = None;
        updated.join_deadline = None;
        updated.sync_deadline = None;

        let stored = self.store_member(
            &member,
            updated,
            request.owned.as_ref(),
            topics,
            settings,
            now,
            now_ms,
            previous_state,
            records,
        );
        let full_request = joining
            || (request.rebalance_timeout_ms != -1
                && request.subscribed_topic_names.is_some()
                && request.owned.is_some());
        Ok(ConsumerHeartbeatResult {
            member_id,
            member_epoch: stored.member.member_epoch,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: (full_request || stored.assigned_changed)
                .then(|| stored.member.assigned.clone()),
        })
    }

    /// Stores `updated` (the member as found, with the request's changes applied): bumps the
    /// group epoch when its subscription or the subscribed topics changed, recomputes the
    /// target assignment when it is behind, moves the member one step towards its target given
    /// what it says it owns, and arms its timers. Shared by ConsumerGroupHeartbeat and a
    /// classic member's JoinGroup (Kafka's steps 1-3 of both).
    #[allow(clippy::too_many_arguments)]
    fn store_member(
        &mut self,
        member: &ConsumerMember,
        updated: ConsumerMember,
        owned: Option<&TopicIdPartitions>,
        topics: &dyn TopicResolver,
        settings: &ConsumerSettings,
        now: Instant,
        now_ms: i64,
        previous_state: ConsumerGroupState,
        records: &mut Vec<CoordinatorRecord>,
    ) -> StoredMember {
        let member_id = updated.member_id.clone();
        let old_member = self.members.get(&member_id).cloned();
        let mut bump = false;
        let subscription_changed = old_member
            .as_ref()
            .is_none_or(|old| !old.same_subscription(&updated));
        if subscription_changed {
            records.push(CoordinatorRecord::new(
                RecordKey::ConsumerGroupMemberMetadata {
                    group: self.group_id.clone(),
                    member: member_id.clone(),
                },
                updated.subscription_value().encode(),
            ));
            bump = old_member.as_ref().is_none_or(|old| {
                old.subscribed_topic_names != updated.subscribed_topic_names
                    || old.subscribed_topic_regex != updated.subscribed_topic_regex
            });
        }
        if let Some(instance) = &updated.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), updated.clone());

        let metadata = self.resolve_subscriptions(topics);
        if metadata != self.subscribed_metadata {
            bump = true;
        }
        if bump {
            self.subscribed_metadata = metadata;
            self.group_epoch += 1;
            records.push(self.epoch_record());
        }

        // 2. Recompute the target assignment when it is behind the group epoch.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target_assignment(settings, records);
        }

        // 3. Reconcile the member towards its target.
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let reconciled = self.reconcile(&updated, &target, owned);
        if reconciled.assignment_value() != updated.assignment_value() || old_member.is_none() {
            records.push(CoordinatorRecord::new(
                RecordKey::ConsumerGroupCurrentMemberAssignment {
                    group: self.group_id.clone(),
                    member: member_id.clone(),
                },
                reconciled.assignment_value().encode(),
            ));
        }
        let mut reconciled = reconciled;
        // Classic members have no rebalance timeout of their own: their join and sync
        // timers bound how long they take (Kafka schedules the same).
        reconciled.rebalance_deadline = if reconciled.state == MemberState::UnrevokedPartitions
            && !reconciled.uses_classic_protocol()
        {
            match member.rebalance_deadline {
                Some((d, epoch)) if epoch == reconciled.member_epoch => Some((d, epoch)),
                _ => Some((
                    now + Duration::from_millis(reconciled.rebalance_timeout_ms.max(0) as u64),
                    reconciled.member_epoch,
                )),
            }
        } else {
            None
        };
        reconciled.session_deadline = Some(now + reconciled.session_timeout(settings));
        let assigned_changed = old_member
            .as_ref()
            .is_none_or(|old| old.assigned != reconciled.assigned);
        self.members.insert(member_id, reconciled.clone());
        if self.state() != previous_state {
            self.state_timestamp_ms = now_ms;
        }
        StoredMember {
            member: reconciled,
            assigned_changed,
        }
    }

    /// A static member's instance comes back (or restarts under a new id): the new
    /// incarnation takes over the old member's target assignment and starts reconciling at
    /// epoch 0; the old member's records are replaced.
    fn replace_static_member(
        &mut self,
        existing: &ConsumerMember,
        member_id: &str,
        records: &mut Vec<CoordinatorRecord>,
    ) -> ConsumerMember {
        let mut replaced = existing.clone();
        replaced.member_id = member_id.to_string();
        replaced.member_epoch = 0;
        replaced.previous_member_epoch = 0;
        replaced.state = MemberState::Stable;
        replaced.assigned.clear();
        replaced.pending_revocation.clear();
        replaced.join_deadline = None;
        replaced.sync_deadline = None;
        if existing.member_id != member_id {
            let target = self.target.remove(&existing.member_id);
            self.remove_member_records(&existing.member_id, records);
            self.members.remove(&existing.member_id);
            if let Some(target) = target {
                records.push(self.target_record(member_id, &target));
                self.target.insert(member_id.to_string(), target);
            }
        }
        replaced
    }

    // ---- Classic members (KIP-848 online migration) ----

    /// Kafka's `supportsClassicProtocols`: a classic member may join if it speaks the
    /// `consumer` protocol type and one of its protocols is supported by every classic member
    /// already in the group.
    fn supports_classic_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if protocol_type != consumer_protocol::PROTOCOL_TYPE {
            return false;
        }
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        let classic: Vec<&ClassicMemberMetadata> = self
            .members
            .values()
            .filter_map(|m| m.classic.as_ref())
            .collect();
        protocols.iter().any(|(name, _)| {
            classic
                .iter()
                .all(|c| c.supported_protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Serves a JoinGroup from a classic member (Kafka's `classicGroupJoinToConsumerGroup`):
    /// the member's embedded subscription becomes its consumer group subscription, the server
    /// computes the assignment, and the member is answered at once, as a follower, with its
    /// member epoch as the generation. It must then send SyncGroup to learn its partitions.
    #[allow(clippy::too_many_arguments)]
    pub fn classic_join(
        &mut self,
        request: JoinRequest,
        topics: &dyn TopicResolver,
        settings: &ConsumerSettings,
        now: Instant,
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<ClassicJoinOutcome, GroupError> {
        let unknown = request.member_id.is_empty();
        let member_id = if unknown {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        if !self.members.contains_key(&member_id) && self.members.len() >= settings.max_size {
            return Err(GroupError::GroupMaxSizeReached(settings.max_size as i32));
        }
        if !self.supports_classic_protocols(&request.protocol_type, &request.protocols) {
            return Err(GroupError::InconsistentGroupProtocol(format!(
                "member {member_id}'s protocols are not supported by the group's classic members"
            )));
        }
        if unknown && request.require_known_member_id && request.group_instance_id.is_none() {
            return Ok(ClassicJoinOutcome::MemberIdRequired(member_id));
        }
        let Some((protocol_name, subscription)) =
            request.protocols.first().and_then(|(name, metadata)| {
                consumer_protocol::subscription(metadata).map(|s| (name.clone(), s))
            })
        else {
            return Err(GroupError::InconsistentGroupProtocol(
                "the member's embedded consumer protocol subscription is malformed".into(),
            ));
        };
        let previous_state = self.state();
        let member = match &request.group_instance_id {
            None => self
                .members
                .get(&member_id)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(&member_id)),
            Some(instance) => {
                let existing = self
                    .static_members
                    .get(instance)
                    .and_then(|id| self.members.get(id))
                    .cloned();
                match (unknown, existing) {
                    (true, None) => self
                        .members
                        .get(&member_id)
                        .cloned()
                        .unwrap_or_else(|| ConsumerMember::new(&member_id)),
                    (true, Some(existing)) => {
                        self.replace_static_member(&existing, &member_id, records)
                    }
                    (false, None) => return Err(GroupError::UnknownMemberId(member_id)),
                    (false, Some(existing)) => {
                        if existing.member_id != member_id {
                            return Err(GroupError::FencedInstanceId {
                                instance_id: instance.clone(),
                                member_id,
                            });
                        }
                        existing
                    }
                }
            }
        };

        let mut updated = member.clone();
        if let Some(instance) = &request.group_instance_id {
            updated.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &subscription.rack_id {
            updated.rack_id = Some(rack.clone());
        }
        if request.rebalance_timeout_ms >= 0 {
            updated.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        let mut names = subscription.topics.clone();
        names.sort();
        names.dedup();
        updated.subscribed_topic_names = names;
        updated.client_id = request.client_id.clone();
        updated.client_host = request.client_host.clone();
        updated.classic = Some(ClassicMemberMetadata {
            session_timeout_ms: request.session_timeout_ms,
            supported_protocols: request.protocols.clone(),
        });
        let owned = by_topic_id(&subscription.owned, topics);
        let stored = self.store_member(
            &member,
            updated,
            Some(&owned),
            topics,
            settings,
            now,
            now_ms,
            previous_state,
            records,
        );
        if let Some(joined) = self.members.get_mut(&member_id) {
            joined.join_deadline = None;
            joined.sync_deadline =
                Some(now + Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64));
        }
        Ok(ClassicJoinOutcome::Joined {
            member_id,
            generation_id: stored.member.member_epoch,
            protocol_name,
        })
    }

    /// Kafka's `validateConsumerGroupMember` for classic requests, plus the check that the
    /// member uses the classic protocol: the static instance decides first, then the id.
    fn classic_member_id(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<String, GroupError> {
        let id = match instance_id {
            None => member_id.to_string(),
            Some(instance) => {
                let Some(existing) = self.static_members.get(instance) else {
                    return Err(GroupError::UnknownMemberId(member_id.to_string()));
                };
                if existing != member_id {
                    return Err(GroupError::FencedInstanceId {
                        instance_id: instance.to_string(),
                        member_id: member_id.to_string(),
                    });
                }
                existing.clone()
            }
        };
        match self.members.get(&id) {
            Some(member) if member.uses_classic_protocol() => Ok(id),
            _ => Err(GroupError::UnknownMemberId(member_id.to_string())),
        }
    }

    /// Whether a partition the member's target gives it is still owned by another member.
    fn waiting_on_unreleased_partition(&self, member: &ConsumerMember) -> bool {
        if member.state != MemberState::UnreleasedPartitions {
            return false;
        }
        let Some(target) = self.target.get(&member.member_id) else {
            return false;
        };
        target.iter().any(|(topic, partitions)| {
            partitions.iter().any(|p| {
                !member.assigned.get(topic).is_some_and(|a| a.contains(p))
                    && self
                        .current_partition_epoch(topic, *p, &member.member_id)
                        .is_some()
            })
        })
    }

    /// Serves a Heartbeat from a classic member (Kafka's
    /// `classicGroupHeartbeatToConsumerGroup`): it keeps the session alive, and answers
    /// REBALANCE_IN_PROGRESS when the member must rejoin to move towards a new assignment —
    /// the group epoch moved past it, it has partitions to revoke, or partitions it waits
    /// for were released. The member must then rejoin within its rebalance timeout.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        settings: &ConsumerSettings,
        now: Instant,
    ) -> Result<(), GroupError> {
        let id = self.classic_member_id(member_id, instance_id)?;
        let group_epoch = self.group_epoch;
        let rejoin = {
            let Some(member) = self.members.get(&id) else {
                return Err(GroupError::UnknownMemberId(member_id.to_string()));
            };
            if member.member_epoch != generation_id {
                return Err(GroupError::IllegalGeneration {
                    received: generation_id,
                    current: member.member_epoch,
                });
            }
            member.member_epoch < group_epoch
                || member.state == MemberState::UnrevokedPartitions
                || (member.state == MemberState::UnreleasedPartitions
                    && !self.waiting_on_unreleased_partition(member))
        };
        let Some(member) = self.members.get_mut(&id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_string()));
        };
        member.session_deadline = Some(now + member.session_timeout(settings));
        if rejoin {
            member.join_deadline.get_or_insert_with(|| {
                now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64)
            });
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Serves a SyncGroup from a classic member (Kafka's `classicGroupSyncToConsumerGroup`):
    /// the member gets the partitions it owns at its epoch, which the server assigned.
    #[allow(clippy::too_many_arguments)]
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        settings: &ConsumerSettings,
        now: Instant,
    ) -> Result<ClassicSyncAnswer, GroupError> {
        let id = self.classic_member_id(member_id, instance_id)?;
        let group_epoch = self.group_epoch;
        let Some(member) = self.members.get_mut(&id) else {
            return Err(GroupError::UnknownMemberId(member_id.to_string()));
        };
        if member.member_epoch != generation_id {
            return Err(GroupError::IllegalGeneration {
                received: generation_id,
                current: member.member_epoch,
            });
        }
        if protocol_type.is_some_and(|t| t != consumer_protocol::PROTOCOL_TYPE) {
            return Err(GroupError::InconsistentGroupProtocol(format!(
                "protocol type {} is not {}",
                protocol_type.unwrap_or_default(),
                consumer_protocol::PROTOCOL_TYPE
            )));
        }
        let answered = member
            .classic_protocol_name()
            .unwrap_or_default()
            .to_string();
        if protocol_name.is_some_and(|n| n != answered) {
            return Err(GroupError::InconsistentGroupProtocol(format!(
                "protocol name {} is not {answered}, the one the JoinGroup answer named",
                protocol_name.unwrap_or_default()
            )));
        }
        // A new rebalance started: rejoin first, unless the member still has to finish
        // revoking (its next join catches up anyway).
        if group_epoch > member.member_epoch && member.state != MemberState::UnrevokedPartitions {
            member.join_deadline.get_or_insert_with(|| {
                now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64)
            });
            return Err(GroupError::RebalanceInProgress);
        }
        member.sync_deadline = None;
        member.session_deadline = Some(now + member.session_timeout(settings));
        let version = member
            .classic
            .as_ref()
            .and_then(|c| c.supported_protocols.first())
            .and_then(|(_, metadata)| consumer_protocol::version(metadata))
            .unwrap_or(0);
        Ok(ClassicSyncAnswer {
            assignment: member.assigned.clone(),
            version,
        })
    }

    /// Serves a LeaveGroup from classic members (Kafka's `classicGroupLeaveToConsumerGroup`):
    /// one result per `(member id, instance id)`; a static member may be named by its
    /// instance alone. Members that leave are removed and the group epoch moves on.
    pub fn classic_leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let id = match instance_id {
                None => Ok(member_id.clone()),
                Some(instance) => match self.static_members.get(instance) {
                    None => Err(GroupError::UnknownMemberId(member_id.clone())),
                    Some(existing) if !member_id.is_empty() && existing != member_id => {
                        Err(GroupError::FencedInstanceId {
                            instance_id: instance.clone(),
                            member_id: member_id.clone(),
                        })
                    }
                    Some(existing) => Ok(existing.clone()),
                },
            };
            let result = id.and_then(|id| match self.members.get(&id) {
                Some(member) if member.uses_classic_protocol() => {
                    self.fence_member(&id, now_ms, records);
                    Ok(())
                }
                _ => Err(GroupError::UnknownMemberId(member_id.clone())),
            });
            results.push(result);
        }
        results
    }

    /// Kafka's `allMembersUseClassicProtocolExcept` with more than that one member: whether
    /// `member_id` is the group's last member on the consumer protocol, with classic members
    /// left behind it (the condition for converting back to a classic group).
    pub fn is_last_consumer_protocol_member(&self, member_id: &str) -> bool {
        self.members.len() > 1
            && self
                .members
                .get(member_id)
                .is_some_and(|m| !m.uses_classic_protocol())
            && self
                .members
                .values()
                .filter(|m| m.member_id != member_id)
                .all(ConsumerMember::uses_classic_protocol)
    }

    /// The members a classic group takes over when this group converts back without
    /// `leaving` (Kafka's `ClassicGroup.fromConsumerGroup`): each keeps its id, instance,
    /// timeouts and JoinGroup protocols, and its target assignment by topic name.
    pub fn classic_members_without(&self, leaving: &str) -> Vec<ConvertedMember> {
        let names: HashMap<Uuid, &String> = self
            .subscribed_metadata
            .iter()
            .map(|(name, info)| (info.id, name))
            .collect();
        self.members
            .values()
            .filter(|m| m.member_id != leaving)
            .filter_map(|m| {
                let classic = m.classic.as_ref()?;
                let assignment = self
                    .target
                    .get(&m.member_id)
                    .map(|target| {
                        target
                            .iter()
                            .filter_map(|(id, ps)| {
                                names
                                    .get(id)
                                    .map(|name| ((*name).clone(), ps.iter().copied().collect()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(ConvertedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: classic.session_timeout_ms,
                    protocols: classic.supported_protocols.clone(),
                    assignment,
                })
            })
            .collect()
    }

    /// A consumer group made from a classic group whose members all use the `consumer`
    /// protocol type (Kafka's `ConsumerGroup.fromClassicGroup`): the group and target
    /// assignment epochs are the generation; each member keeps using the classic protocol,
    /// Stable at that epoch, subscribed to what its JoinGroup metadata says and owning (and
    /// targeted at) what its SyncGroup assignment says. The records creating the group are
    /// appended to `records`. A member whose embedded protocol cannot be read makes the
    /// conversion fail with GROUP_ID_NOT_FOUND, as in Kafka.
    pub fn from_classic(
        classic: &ClassicGroup,
        topics: &dyn TopicResolver,
        settings: &ConsumerSettings,
        now: Instant,
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<ConsumerGroup, GroupError> {
        let malformed = |member: &str| {
            GroupError::GroupIdNotFound(format!(
                "cannot upgrade the classic group {}: member {member}'s embedded consumer protocol is malformed",
                classic.group_id
            ))
        };
        let generation = classic.generation_id;
        let mut group = ConsumerGroup::new(&classic.group_id, now_ms);
        group.group_epoch = generation;
        group.assignment_epoch = generation;
        for m in classic.members.values() {
            let metadata = classic
                .protocol_name
                .as_deref()
                .and_then(|p| m.metadata(p))
                .or_else(|| m.protocols.first().map(|(_, metadata)| metadata));
            let subscription = metadata
                .and_then(consumer_protocol::subscription)
                .ok_or_else(|| malformed(&m.member_id))?;
            let owned = consumer_protocol::assignment_partitions(&m.assignment)
                .ok_or_else(|| malformed(&m.member_id))?;
            let assigned = from_list(&by_topic_id(&owned, topics));
            let mut names = subscription.topics.clone();
            names.sort();
            names.dedup();
            let mut member = ConsumerMember::new(&m.member_id);
            member.instance_id = m.group_instance_id.clone();
            member.rack_id = subscription.rack_id.clone();
            member.client_id = m.client_id.clone();
            member.client_host = m.client_host.clone();
            member.subscribed_topic_names = names;
            member.rebalance_timeout_ms = m.rebalance_timeout_ms;
            member.member_epoch = generation;
            member.previous_member_epoch = generation;
            member.assigned = assigned.clone();
            member.classic = Some(ClassicMemberMetadata {
                session_timeout_ms: m.session_timeout_ms,
                supported_protocols: m.protocols.clone(),
            });
            member.session_deadline = Some(now + member.session_timeout(settings));
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.target.insert(member.member_id.clone(), assigned);
            group.members.insert(member.member_id.clone(), member);
        }
        group.subscribed_metadata = group.resolve_subscriptions(topics);
        for member in group.members.values() {
            records.push(CoordinatorRecord::new(
                RecordKey::ConsumerGroupMemberMetadata {
                    group: group.group_id.clone(),
                    member: member.member_id.clone(),
                },
                member.subscription_value().encode(),
            ));
        }
        records.push(group.epoch_record());
        for (member_id, target) in &group.target {
            records.push(group.target_record(member_id, target));
        }
        records.push(group.target_epoch_record());
        for member in group.members.values() {
            records.push(CoordinatorRecord::new(
                RecordKey::ConsumerGroupCurrentMemberAssignment {
                    group: group.group_id.clone(),
                    member: member.member_id.clone(),
                },
                member.assignment_value().encode(),
            ));
        }
        Ok(group)
    }

    /// Serves a leave (epoch -1, or -2 for a static member leaving temporarily).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        member_epoch: i32,
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) -> Result<ConsumerHeartbeatResult, GroupError> {
        let id = self.leaving_member_id(member_id, instance_id)?;
        if member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && instance_id.is_some() {
            if let Some(member) = self.members.get_mut(&id) {
                member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                member.pending_revocation.clear();
                member.rebalance_deadline = None;
            }
            if let Some(member) = self.members.get(&id) {
                records.push(CoordinatorRecord::new(
                    RecordKey::ConsumerGroupCurrentMemberAssignment {
                        group: self.group_id.clone(),
                        member: id.clone(),
                    },
                    member.assignment_value().encode(),
                ));
            }
        } else {
            self.fence_member(&id, now_ms, records);
        }
        Ok(ConsumerHeartbeatResult {
            member_id: id,
            member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// The member a ConsumerGroupHeartbeat leave names: by instance for a static member (whose
    /// member id must match), else by id.
    pub fn leaving_member_id(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<String, GroupError> {
        match instance_id {
            Some(instance) => {
                let Some(existing) = self.static_members.get(instance).cloned() else {
                    return Err(GroupError::UnknownMemberId(member_id.to_string()));
                };
                if existing != member_id {
                    return Err(GroupError::FencedInstanceId {
                        instance_id: instance.to_string(),
                        member_id: member_id.to_string(),
                    });
                }
                Ok(existing)
            }
            None => {
                if !self.members.contains_key(member_id) {
                    return Err(GroupError::UnknownMemberId(member_id.to_string()));
                }
                Ok(member_id.to_string())
            }
        }
    }

    /// Removes a member and bumps the group epoch so the others are reassigned.
    pub fn fence_member(
        &mut self,
        member_id: &str,
        now_ms: i64,
        records: &mut Vec<CoordinatorRecord>,
    ) {
        if !self.members.contains_key(member_id) {
            return;
        }
        self.remove_member_records(member_id, records);
        if let Some(member) = self.members.remove(member_id)
            && let Some(instance) = member.instance_id
            && self.static_members.get(&instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(&instance);
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
        records.push(self.epoch_record());
        self.state_timestamp_ms = now_ms;
    }

    fn remove_member_records(&self, member_id: &str, records: &mut Vec<CoordinatorRecord>) {
        let (group, member) = self.key_member(member_id);
        records.push(CoordinatorRecord::tombstone(
            RecordKey::ConsumerGroupCurrentMemberAssignment {
                group: group.clone(),
                member: member.clone(),
            },
        ));
        records.push(CoordinatorRecord::tombstone(
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group: group.clone(),
                member: member.clone(),
            },
        ));
        records.push(CoordinatorRecord::tombstone(
            RecordKey::ConsumerGroupMemberMetadata { group, member },
        ));
    }

    fn epoch_record(&self) -> CoordinatorRecord {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupMetadata {
                group: self.group_id.clone(),
            },
            ConsumerGroupMetadataValue {
                epoch: self.group_epoch,
            }
            .encode(),
        )
    }

    fn target_record(&self, member_id: &str, target: &Assignment) -> CoordinatorRecord {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group: self.group_id.clone(),
                member: member_id.to_string(),
            },
            ConsumerGroupTargetAssignmentMemberValue {
                topic_partitions: to_list(target),
            }
            .encode(),
        )
    }

    /// Records deleting the whole group (DeleteGroups, offsets expiry of an empty group).
    pub fn tombstones(&self, records: &mut Vec<CoordinatorRecord>) {
        for id in self.members.keys() {
            self.remove_member_records(id, records);
        }
        records.push(CoordinatorRecord::tombstone(
            RecordKey::ConsumerGroupTargetAssignmentMetadata {
                group: self.group_id.clone(),
            },
        ));
        records.push(CoordinatorRecord::tombstone(
            RecordKey::ConsumerGroupMetadata {
                group: self.group_id.clone(),
            },
        ));
    }

    /// Re-evaluates every subscription regex against the cluster's topics, then resolves every
    /// subscribed topic's id and partition count.
    fn resolve_subscriptions(&mut self, topics: &dyn TopicResolver) -> BTreeMap<String, TopicInfo> {
        let patterns: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        let names = if patterns.is_empty() {
            Vec::new()
        } else {
            topics.names()
        };
        self.regex_topics = patterns
            .into_iter()
            .map(|pattern| {
                // Patterns are validated when a member sends them; one that no longer compiles
                // matches nothing rather than failing the group.
                let matched = match compile_subscription_regex(&pattern) {
                    Ok(regex) => names
                        .iter()
                        .filter(|n| regex.is_match(n))
                        .cloned()
                        .collect(),
                    Err(_) => BTreeSet::new(),
                };
                (pattern, matched)
            })
            .collect();
        self.subscribed_topics()
            .into_iter()
            .filter_map(|name| topics.topic(&name).map(|info| (name, info)))
            .collect()
    }

    fn compute_target_assignment(
        &mut self,
        settings: &ConsumerSettings,
        records: &mut Vec<CoordinatorRecord>,
    ) {
        // The assignor most members ask for, else the broker's default (the first configured).
        let default = settings
            .assignors
            .first()
            .copied()
            .unwrap_or(Assignor::Uniform);
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref() {
                *votes.entry(name).or_default() += 1;
            }
        }
        let chosen = votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(name, _)| Assignor::from_name(name))
            .unwrap_or(default);
        let subscriptions: Vec<MemberSubscription> = self
            .members
            .values()
            .filter(|m| {
                m.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH || m.instance_id.is_some()
            })
            .map(|m| MemberSubscription {
                member_id: m.member_id.clone(),
                topics: self
                    .member_topics(m)
                    .iter()
                    .filter_map(|n| self.subscribed_metadata.get(n).map(|i| i.id))
                    .collect(),
            })
            .collect();
        let topic_counts: BTreeMap<Uuid, i32> = self
            .subscribed_metadata
            .values()
            .map(|i| (i.id, i.partitions))
            .collect();
        let new_target = assignor::assign(chosen, &subscriptions, &topic_counts, &self.target);
        for (member_id, assignment) in &new_target {
            if self.target.get(member_id) != Some(assignment) {
                records.push(self.target_record(member_id, assignment));
            }
        }
        self.target = new_target;
        self.assignment_epoch = self.group_epoch;
        records.push(self.target_epoch_record());
    }

    fn target_epoch_record(&self) -> CoordinatorRecord {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMetadata {
                group: self.group_id.clone(),
            },
            ConsumerGroupTargetAssignmentMetadataValue {
                assignment_epoch: self.assignment_epoch,
            }
            .encode(),
        )
    }

    /// Moves `member` one step towards `target` (Kafka's `CurrentAssignmentBuilder`).
    fn reconcile(
        &self,
        member: &ConsumerMember,
        target: &Assignment,
        owned: Option<&TopicIdPartitions>,
    ) -> ConsumerMember {
        let target_epoch = self.assignment_epoch;
        match member.state {
            MemberState::Stable if member.member_epoch == target_epoch => member.clone(),
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(member, member.member_epoch, target_epoch, target, owned)
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &member.pending_revocation) {
                    member.clone()
                } else {
                    self.next_assignment(
                        member,
                        member.member_epoch + 1,
                        target_epoch,
                        target,
                        owned,
                    )
                }
            }
        }
    }

    fn next_assignment(
        &self,
        member: &ConsumerMember,
        member_epoch: i32,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&TopicIdPartitions>,
    ) -> ConsumerMember {
        let mut has_unreleased = false;
        let mut assigned = Assignment::new();
        let mut revoke = Assignment::new();
        let mut pending_assign = Assignment::new();
        let topics: BTreeSet<Uuid> = target
            .keys()
            .chain(member.assigned.keys())
            .copied()
            .collect();
        for topic in topics {
            let want = target.get(&topic).cloned().unwrap_or_default();
            let have = member.assigned.get(&topic).cloned().unwrap_or_default();
            let keep: BTreeSet<i32> = have.intersection(&want).copied().collect();
            let give_up: BTreeSet<i32> = have.difference(&keep).copied().collect();
            let mut gain: BTreeSet<i32> = want.difference(&keep).copied().collect();
            let before = gain.len();
            gain.retain(|p| {
                self.current_partition_epoch(&topic, *p, &member.member_id)
                    .is_none()
            });
            has_unreleased |= gain.len() != before;
            if !keep.is_empty() {
                assigned.insert(topic, keep);
            }
            if !give_up.is_empty() {
                revoke.insert(topic, give_up);
            }
            if !gain.is_empty() {
                pending_assign.insert(topic, gain);
            }
        }
        let mut next = member.clone();
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            next.state = MemberState::UnrevokedPartitions;
            update_epoch(&mut next, member_epoch);
            next.assigned = assigned;
            next.pending_revocation = revoke;
            return next;
        }
        for (topic, partitions) in pending_assign {
            assigned.entry(topic).or_default().extend(partitions);
        }
        next.state = if has_unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        update_epoch(&mut next, target_epoch);
        next.assigned = assigned;
        next.pending_revocation.clear();
        next
    }

    /// Members whose session, rebalance, join or sync timer has expired.
    pub fn expired_members(&self, now: Instant) -> Vec<String> {
        self.members
            .values()
            .filter(|m| {
                m.session_deadline.is_some_and(|d| d <= now)
                    || m.rebalance_deadline
                        .is_some_and(|(d, epoch)| d <= now && epoch == m.member_epoch)
                    || m.join_deadline.is_some_and(|d| d <= now)
                    || m.sync_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect()
    }

    /// Runs expired timers, fencing those members.
    pub fn on_timer(&mut self, now: Instant, now_ms: i64, records: &mut Vec<CoordinatorRecord>) {
        for id in self.expired_members(now) {
            tracing::info!(group = %self.group_id, member = %id, "consumer group member fenced: session or rebalance timeout");
            self.fence_member(&id, now_ms, records);
        }
    }

    /// Kafka's `validateOffsetCommit` for a consumer group; `api_version` is OffsetCommit's.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), GroupError> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| GroupError::UnknownMemberId(member_id.to_string()))?;
        if member.uses_classic_protocol() {
            // A classic member commits with its generation, which is its member epoch.
            if member_epoch != member.member_epoch {
                return Err(GroupError::IllegalGeneration {
                    received: member_epoch,
                    current: member.member_epoch,
                });
            }
            return Ok(());
        }
        if api_version < OFFSET_COMMIT_CONSUMER_PROTOCOL_MIN_VERSION {
            return Err(GroupError::UnsupportedVersion(
                "OffsetCommit version 9 or above must be used by members using the modern group protocol"
                    .into(),
            ));
        }
        if member_epoch != member.member_epoch {
            return Err(GroupError::StaleMemberEpoch {
                received: member_epoch,
                current: member.member_epoch,
            });
        }
        Ok(())
    }

    /// Kafka's `validateOffsetFetch` for a consumer group (OffsetFetch v9 member fields).
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        if member_epoch < 0 && member_id.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| GroupError::UnknownMemberId(member_id.to_string()))?;
        if member_epoch != member.member_epoch && member.uses_classic_protocol() {
            return Err(GroupError::IllegalGeneration {
                received: member_epoch,
                current: member.member_epoch,
            });
        }
        if member_epoch != member.member_epoch {
            return Err(GroupError::StaleMemberEpoch {
                received: member_epoch,
                current: member.member_epoch,
            });
        }
        Ok(())
    }

    /// Applies one stored record while loading the offsets partition.
    pub fn replay(
        &mut self,
        key: &RecordKey,
        value: Option<&[u8]>,
    ) -> Result<(), crate::group::records::RecordCodecError> {
        match key {
            RecordKey::ConsumerGroupMetadata { .. } => {
                if let Some(v) = value {
                    self.group_epoch = ConsumerGroupMetadataValue::decode(v)?.epoch;
                }
            }
            RecordKey::ConsumerGroupTargetAssignmentMetadata { .. } => {
                if let Some(v) = value {
                    self.assignment_epoch =
                        ConsumerGroupTargetAssignmentMetadataValue::decode(v)?.assignment_epoch;
                }
            }
            RecordKey::ConsumerGroupMemberMetadata { member, .. } => match value {
                Some(v) => {
                    let value = ConsumerGroupMemberMetadataValue::decode(v)?;
                    let entry = self
                        .members
                        .entry(member.clone())
                        .or_insert_with(|| ConsumerMember::new(member));
                    entry.instance_id = value.instance_id;
                    entry.rack_id = value.rack_id;
                    entry.client_id = value.client_id;
                    entry.client_host = value.client_host;
                    entry.subscribed_topic_names = value.subscribed_topic_names;
                    entry.subscribed_topic_regex = value.subscribed_topic_regex;
                    entry.rebalance_timeout_ms = value.rebalance_timeout_ms;
                    entry.server_assignor = value.server_assignor;
                    entry.classic = value.classic_member_metadata;
                    if let Some(instance) = &entry.instance_id {
                        self.static_members.insert(instance.clone(), member.clone());
                    }
                }
                None => {
                    if let Some(removed) = self.members.remove(member)
                        && let Some(instance) = removed.instance_id
                        && self.static_members.get(&instance) == Some(member)
                    {
                        self.static_members.remove(&instance);
                    }
                }
            },
            RecordKey::ConsumerGroupTargetAssignmentMember { member, .. } => match value {
                Some(v) => {
                    let value = ConsumerGroupTargetAssignmentMemberValue::decode(v)?;
                    self.target
                        .insert(member.clone(), from_list(&value.topic_partitions));
                }
                None => {
                    self.target.remove(member);
                }
            },
            RecordKey::ConsumerGroupCurrentMemberAssignment { member, .. } => {
                if let Some(v) = value {
                    let value = ConsumerGroupCurrentMemberAssignmentValue::decode(v)?;
                    let entry = self
                        .members
                        .entry(member.clone())
                        .or_insert_with(|| ConsumerMember::new(member));
                    entry.member_epoch = value.member_epoch;
                    entry.previous_member_epoch = value.previous_member_epoch;
                    entry.state = MemberState::from_value(value.state);
                    entry.assigned = from_list(&value.assigned_partitions);
                    entry.pending_revocation = from_list(&value.partitions_pending_revocation);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// After loading: every member must heartbeat within its session timeout from now, and
    /// the subscribed topics are re-resolved on the next heartbeat.
    pub fn after_load(&mut self, settings: &ConsumerSettings, now: Instant) {
        for member in self.members.values_mut() {
            member.session_deadline = Some(now + member.session_timeout(settings));
            if member.state == MemberState::UnrevokedPartitions && !member.uses_classic_protocol() {
                member.rebalance_deadline = Some((
                    now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64),
                    member.member_epoch,
                ));
            }
        }
    }

    /// The topic ids and partition counts the last assignment used, by name.
    pub fn resolved_topics(&self) -> &BTreeMap<String, TopicInfo> {
        &self.subscribed_metadata
    }
}

/// OffsetCommit version KIP-848 members must use.
pub const OFFSET_COMMIT_CONSUMER_PROTOCOL_MIN_VERSION: i16 = 9;

fn update_epoch(member: &mut ConsumerMember, epoch: i32) {
    if member.member_epoch != epoch {
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = epoch;
    }
}

fn reset_for_rejoin(mut member: ConsumerMember) -> ConsumerMember {
    member.member_epoch = 0;
    member.previous_member_epoch = 0;
    member.state = MemberState::Stable;
    member.assigned.clear();
    member.pending_revocation.clear();
    member.rebalance_deadline = None;
    member
}

fn owns_any(owned: Option<&TopicIdPartitions>, partitions: &Assignment) -> bool {
    // Without a report of what the member owns, assume it still owns everything.
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic, ps)| {
        partitions
            .get(topic)
            .is_some_and(|revoking| ps.iter().any(|p| revoking.contains(p)))
    })
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a newer epoch than known is fenced; an
/// older one is accepted only if it is the previous epoch and the member owns a subset of its
/// assignment (its answer with the bump was lost).
fn check_member_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&TopicIdPartitions>,
) -> Result<(), GroupError> {
    let fenced = || GroupError::FencedMemberEpoch {
        received,
        current: member.member_epoch,
    };
    if received > member.member_epoch {
        return Err(fenced());
    }
    if received < member.member_epoch {
        let subset = owned.is_some_and(|owned| {
            owned.iter().all(|(topic, ps)| {
                member
                    .assigned
                    .get(topic)
                    .is_some_and(|assigned| ps.iter().all(|p| assigned.contains(p)))
            })
        });
        if received != member.previous_member_epoch || !subset {
            return Err(fenced());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: Uuid = Uuid::from_u128(7);

    fn settings() -> ConsumerSettings {
        ConsumerSettings {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 100,
            assignors: vec![Assignor::Uniform, Assignor::Range],
        }
    }

    struct OneTopic;

    impl TopicResolver for OneTopic {
        fn topic(&self, name: &str) -> Option<TopicInfo> {
            (name == "t").then_some(TopicInfo {
                id: TOPIC,
                partitions: 4,
            })
        }

        fn names(&self) -> Vec<String> {
            vec!["t".into(), "other".into()]
        }
    }

    fn join(member_id: &str) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            member_id: member_id.into(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(Vec::new()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn beat(member_id: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            member_id: member_id.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: -1,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(to_list(owned)),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// KIP-848: a second member joining makes the first revoke half its partitions before the
    /// second gets them; no partition is ever owned twice.
    #[test]
    fn second_member_gets_partitions_only_after_the_first_revokes() {
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g", 0);
        let mut records = Vec::new();
        let a = group
            .heartbeat(join("a"), &OneTopic, &settings(), now, 0, &mut records)
            .expect("a joins");
        assert_eq!(a.member_epoch, 1);
        let a_owned = a.assignment.expect("full assignment");
        assert_eq!(count(&a_owned), 4);
        assert_eq!(group.state(), ConsumerGroupState::Stable);

        let b = group
            .heartbeat(join("b"), &OneTopic, &settings(), now, 0, &mut records)
            .expect("b joins");
        assert_eq!(b.member_epoch, 2);
        assert_eq!(
            count(&b.assignment.clone().unwrap_or_default()),
            0,
            "a still owns them"
        );
        assert_eq!(group.state(), ConsumerGroupState::Reconciling);

        // a learns it must revoke two partitions; it stays at epoch 1.
        let a2 = group
            .heartbeat(
                beat("a", 1, &a_owned),
                &OneTopic,
                &settings(),
                now,
                0,
                &mut records,
            )
            .expect("a heartbeats");
        assert_eq!(a2.member_epoch, 1);
        let a_kept = a2.assignment.expect("changed");
        assert_eq!(count(&a_kept), 2);
        // a acknowledges by reporting only what it kept: it moves to epoch 2.
        let a3 = group
            .heartbeat(
                beat("a", 1, &a_kept),
                &OneTopic,
                &settings(),
                now,
                0,
                &mut records,
            )
            .expect("a acks");
        assert_eq!(a3.member_epoch, 2);
        // Now b gets the released partitions.
        let b2 = group
            .heartbeat(
                beat("b", 2, &Assignment::new()),
                &OneTopic,
                &settings(),
                now,
                0,
                &mut records,
            )
            .expect("b heartbeats");
        let b_owned = b2.assignment.expect("assigned");
        assert_eq!(count(&b_owned), 2);
        assert!(b_owned[&TOPIC].is_disjoint(&a_kept[&TOPIC]));
        assert_eq!(group.state(), ConsumerGroupState::Stable);
        assert!(!records.is_empty());
    }

    /// FENCED_MEMBER_EPOCH for a future epoch, UNKNOWN_MEMBER_ID for an unknown id.
    #[test]
    fn bad_epochs_and_ids_are_refused() {
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g", 0);
        let mut records = Vec::new();
        group
            .heartbeat(join("a"), &OneTopic, &settings(), now, 0, &mut records)
            .expect("a joins");
        assert!(matches!(
            group.heartbeat(
                beat("a", 9, &Assignment::new()),
                &OneTopic,
                &settings(),
                now,
                0,
                &mut records
            ),
            Err(GroupError::FencedMemberEpoch { .. })
        ));
        assert!(matches!(
            group.heartbeat(
                beat("x", 1, &Assignment::new()),
                &OneTopic,
                &settings(),
                now,
                0,
                &mut records
            ),
            Err(GroupError::UnknownMemberId(_))
        ));
    }

    /// Session expiry fences the member and bumps the group epoch; records replay to the same
    /// group.
    #[test]
    fn session_expiry_fences_and_records_replay() {
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g", 0);
        let mut records = Vec::new();
        group
            .heartbeat(join("a"), &OneTopic, &settings(), now, 0, &mut records)
            .expect("a joins");
        group
            .heartbeat(join("b"), &OneTopic, &settings(), now, 0, &mut records)
            .expect("b joins");
        let mut replayed = ConsumerGroup::new("g", 0);
        for r in &records {
            replayed
                .replay(&r.key, r.value.as_deref())
                .expect("replays");
        }
        assert_eq!(replayed.group_epoch, group.group_epoch);
        assert_eq!(replayed.members.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(replayed.target, group.target);

        let later = now + Duration::from_millis(45_001);
        group.on_timer(later, 0, &mut records);
        assert!(group.members.is_empty());
        assert_eq!(group.state(), ConsumerGroupState::Empty);
    }

    /// KIP-848 regex subscriptions (ConsumerGroupHeartbeat v1 `SubscribedTopicRegex`): the whole
    /// topic name must match, and the matched topics are assigned.
    #[test]
    fn regex_subscriptions_match_whole_topic_names() {
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g", 0);
        let mut records = Vec::new();
        let mut request = join("a");
        request.subscribed_topic_names = None;
        request.subscribed_topic_regex = Some("t|oth".into());
        let joined = group
            .heartbeat(request, &OneTopic, &settings(), now, 0, &mut records)
            .expect("joins");
        assert_eq!(
            count(&joined.assignment.unwrap_or_default()),
            4,
            "t matches, other does not"
        );
        assert_eq!(group.subscribed_topics(), BTreeSet::from(["t".to_string()]));
        assert!(matches!(
            compile_subscription_regex("("),
            Err(GroupError::InvalidRegularExpression(_))
        ));
    }
}
