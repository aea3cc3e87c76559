//! The group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
//! SyncGroup (14), DescribeGroups (15), ListGroups (16), DeleteGroups (42),
//! ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).
//!
//! Wire types stop here: each handler turns the request into calls on the
//! [`crate::group::GroupCoordinator`] and [`map_group_error`] turns its errors into Kafka codes.
//! JoinGroup and SyncGroup answer through deferred replies, so a connection keeps serving
//! other requests while a rebalance is under way.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    self as cgd, ConsumerGroupDescribeResponse,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    self as cgh, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{
    DescribedGroup as WireGroup, DescribedGroupMember,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup as WireListedGroup;
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_controller::controller::{ControllerError, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_protocol::error::ErrorCode;
use uuid::Uuid;

use crate::Broker;
use crate::dispatch::{DispatchError, Reply, RequestContext, ResponseTo};
use crate::group::classic::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::group::consumer::{ConsumerHeartbeat, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
use crate::group::{AppendFailure, GroupError, OFFSETS_TOPIC};

/// FindCoordinator key type of consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Authorized-operations value meaning "not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// JoinGroup version from which a new dynamic member must first obtain an id (KIP-394).
const JOIN_GROUP_REQUIRE_KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// JoinGroup version that carries `skip_assignment` (KIP-814).
const JOIN_GROUP_SKIP_ASSIGNMENT_VERSION: i16 = 9;
/// ConsumerGroupHeartbeat version from which the client chooses its member id (KIP-1082).
const CONSUMER_HEARTBEAT_CLIENT_MEMBER_ID_VERSION: i16 = 1;
/// ConsumerGroupDescribe `member_type` of a member using the classic protocol.
const MEMBER_TYPE_CLASSIC: i8 = 0;
/// ConsumerGroupDescribe `member_type` of a KIP-848 member.
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// The one place group errors become Kafka error codes. Append failures follow Kafka's
/// `appendGroupMetadataErrorToResponseError`: a lost leadership or a storage error sends the
/// client to find the coordinator again; an oversized record is UNKNOWN_SERVER_ERROR.
pub fn map_group_error(error: &GroupError) -> ErrorCode {
    match error {
        GroupError::NotCoordinator => ErrorCode::NotCoordinator,
        GroupError::LoadInProgress => ErrorCode::CoordinatorLoadInProgress,
        GroupError::CoordinatorNotAvailable => ErrorCode::CoordinatorNotAvailable,
        GroupError::InvalidGroupId => ErrorCode::InvalidGroupId,
        GroupError::UnknownMemberId(_) => ErrorCode::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
        GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol(_) => ErrorCode::InconsistentGroupProtocol,
        GroupError::FencedInstanceId { .. } => ErrorCode::FencedInstanceId,
        GroupError::MemberIdRequired => ErrorCode::MemberIdRequired,
        GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached(_) => ErrorCode::GroupMaxSizeReached,
        GroupError::GroupIdNotFound(_) => ErrorCode::GroupIdNotFound,
        GroupError::NonEmptyGroup => ErrorCode::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ErrorCode::GroupSubscribedToTopic,
        GroupError::FencedMemberEpoch { .. } => ErrorCode::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => ErrorCode::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId(_) => ErrorCode::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor(_) => ErrorCode::UnsupportedAssignor,
        GroupError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        GroupError::InvalidRegularExpression(_) => ErrorCode::InvalidRegularExpression,
        GroupError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
        GroupError::Append(AppendFailure::NotLeader | AppendFailure::Storage(_)) => {
            ErrorCode::NotCoordinator
        }
        // Kafka's GroupMetadataManager: a commit the offsets topic's replicas did not take is
        // retriable against the same coordinator.
        GroupError::Append(AppendFailure::NotReplicated(_)) => ErrorCode::CoordinatorNotAvailable,
        GroupError::Append(AppendFailure::TooLarge { .. }) => ErrorCode::UnknownServerError,
    }
}

fn code(error: &GroupError) -> i16 {
    map_group_error(error).code()
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's client host form, `/ip`.
fn client_host(context: &RequestContext) -> String {
    format!("/{}", context.peer.ip())
}

// ---- FindCoordinator ----

/// Where a coordinator key lives, or why not.
type Located = Result<(i32, String, i32), (ErrorCode, String)>;

/// Creates `__consumer_offsets` as Kafka does on first use: `offsets.topic.num.partitions`
/// partitions, compacted, producer compression, `offsets.topic.segment.bytes` segments.
pub(crate) async fn create_offsets_topic(broker: &Arc<Broker>) -> Result<(), String> {
    let settings = broker.groups.settings();
    let image = broker.metadata.image();
    let live = image.live_brokers().count().max(1);
    let mut replication_factor = settings.offsets_replication_factor;
    if replication_factor as usize > live {
        // The node config lowers this default to the voter count; an embedder that did not
        // still gets a working coordinator rather than none.
        tracing::warn!(
            replication_factor,
            live,
            "offsets.topic.replication.factor exceeds the live brokers; using {live}"
        );
        replication_factor = live as i16;
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: Some(settings.offsets_partitions),
        replication_factor: Some(replication_factor),
        assignments: BTreeMap::new(),
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("compression.type".into(), "producer".into()),
            (
                "segment.bytes".into(),
                settings.offsets_segment_bytes.to_string(),
            ),
        ],
    };
    match broker
        .metadata
        .submit(ControllerRequest::CreateTopics {
            topics: vec![topic],
            validate_only: false,
        })
        .await
    {
        Ok(ControllerReply::TopicsCreated(results)) => match results.into_iter().next() {
            Some(Ok(_)) | Some(Err(ControllerError::TopicAlreadyExists(_))) => Ok(()),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("no result".into()),
        },
        Ok(other) => Err(format!("unexpected controller reply {other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

async fn locate_group_coordinator(broker: &Arc<Broker>, key: &str) -> Located {
    let unavailable = |why: String| Err((ErrorCode::CoordinatorNotAvailable, why));
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_none()
        && let Err(why) = create_offsets_topic(broker).await
    {
        tracing::warn!(%why, "cannot create {OFFSETS_TOPIC}");
        return unavailable(format!("cannot create {OFFSETS_TOPIC}: {why}"));
    }
    let image = broker.metadata.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        return unavailable(format!("{OFFSETS_TOPIC} does not exist yet"));
    };
    let index = broker.groups.partition_for_group(&image, key);
    let Some(leader) = topic.partitions.get(&index).and_then(|p| p.leader) else {
        return unavailable(format!("{OFFSETS_TOPIC}-{index} has no leader"));
    };
    let Some(endpoint) = image
        .broker(leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoints.first())
    else {
        return unavailable(format!(
            "the leader of {OFFSETS_TOPIC}-{index} is not alive"
        ));
    };
    Ok((leader.0, endpoint.host.clone(), endpoint.port as i32))
}

async fn locate(broker: &Arc<Broker>, key_type: i8, key: &str) -> Located {
    match key_type {
        KEY_TYPE_GROUP => locate_group_coordinator(broker, key).await,
        // Transactions are not implemented: clients see a coordinator that is not available,
        // which they treat as retriable, rather than a wrong one.
        KEY_TYPE_TRANSACTION => Err((
            ErrorCode::CoordinatorNotAvailable,
            "transactions are not supported".into(),
        )),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("unsupported coordinator key type {other}"),
        )),
    }
}

/// Serves FindCoordinator: one key before v4, a batch from v4.
pub async fn find_coordinator(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in &request.coordinator_keys {
            let coordinator = Coordinator::default().with_key(key.clone());
            coordinators.push(match locate(broker, key_type, key.as_str()).await {
                Ok((node, host, port)) => coordinator
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((error, message)) => coordinator
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_host(StrBytes::default())
                    .with_port(-1),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(broker, key_type, request.key.as_str()).await {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(host))
            .with_port(port),
        Err((error, message)) => {
            let mut response = FindCoordinatorResponse::default()
                .with_error_code(error.code())
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1);
            if version >= 1 {
                response.error_message = Some(str_bytes(message));
            }
            response
        }
    }
}

// ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ----

fn join_response(result: JoinResult, version: i16) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.as_ref().map_or(0, code))
        .with_generation_id(result.generation_id)
        .with_protocol_name(result.protocol_name.map(str_bytes))
        .with_leader(str_bytes(result.leader))
        .with_member_id(str_bytes(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(str_bytes))
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(str_bytes);
    }
    if version >= JOIN_GROUP_SKIP_ASSIGNMENT_VERSION {
        response.skip_assignment = result.skip_assignment;
    }
    response
}

/// Serves JoinGroup: the answer is deferred until the join phase of the rebalance completes.
pub async fn join_group(
    broker: &Arc<Broker>,
    context: &RequestContext,
    to: ResponseTo,
    request: JoinGroupRequest,
) -> Result<Reply, DispatchError> {
    let version = to.version;
    let group_id = request.group_id.0.as_str().to_string();
    let join = JoinRequest {
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string()),
        client_id: context.client_id.clone(),
        client_host: client_host(context),
        session_timeout_ms: request.session_timeout_ms,
        // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= JOIN_GROUP_REQUIRE_KNOWN_MEMBER_ID_VERSION,
        supports_skip_assignment: version >= JOIN_GROUP_SKIP_ASSIGNMENT_VERSION,
    };
    let member_id = join.member_id.clone();
    let image = broker.metadata.image();
    match broker.groups.join_group(&image, &group_id, join).await {
        Ok(receiver) => Ok(to.deferred(async move {
            let result = receiver
                .await
                .unwrap_or_else(|_| JoinResult::failed(&member_id, GroupError::NotCoordinator));
            join_response(result, version)
        })),
        Err(error) => to.ready(&join_response(
            JoinResult::failed(&member_id, error),
            version,
        )),
    }
}

fn sync_response(result: SyncResult, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default()
        .with_error_code(result.error.as_ref().map_or(0, code))
        .with_assignment(result.assignment);
    if version >= 5 {
        response.protocol_type = result.protocol_type.map(str_bytes);
        response.protocol_name = result.protocol_name.map(str_bytes);
    }
    response
}

/// Serves SyncGroup: followers wait (deferred) for the leader's assignment.
pub async fn sync_group(
    broker: &Arc<Broker>,
    to: ResponseTo,
    request: SyncGroupRequest,
) -> Result<Reply, DispatchError> {
    let version = to.version;
    let group_id = request.group_id.0.as_str().to_string();
    let sync = SyncRequest {
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: request
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str().to_string()),
        generation_id: request.generation_id,
        protocol_type: request
            .protocol_type
            .as_ref()
            .map(|s| s.as_str().to_string()),
        protocol_name: request
            .protocol_name
            .as_ref()
            .map(|s| s.as_str().to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
            .collect(),
    };
    let image = broker.metadata.image();
    match broker.groups.sync_group(&image, &group_id, sync).await {
        Ok(receiver) => Ok(to.deferred(async move {
            let result = receiver
                .await
                .unwrap_or_else(|_| SyncResult::failed(GroupError::NotCoordinator));
            sync_response(result, version)
        })),
        Err(error) => to.ready(&sync_response(SyncResult::failed(error), version)),
    }
}

/// Serves Heartbeat.
pub async fn heartbeat(broker: &Arc<Broker>, request: HeartbeatRequest) -> HeartbeatResponse {
    let image = broker.metadata.image();
    let result = broker
        .groups
        .heartbeat(
            &image,
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|i| i.as_str()),
            request.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(result.err().as_ref().map_or(0, code))
}

/// Serves LeaveGroup: one member before v3, a batch from v3.
pub async fn leave_group(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_string(),
                    m.group_instance_id.as_ref().map(|i| i.as_str().to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.as_str().to_string(), None)]
    };
    let image = broker.metadata.image();
    let outcome = broker
        .groups
        .leave_group(&image, request.group_id.0.as_str(), &leaving)
        .await;
    match outcome {
        Err(error) => LeaveGroupResponse::default().with_error_code(code(&error)),
        Ok(results) if version >= 3 => {
            let members = leaving
                .into_iter()
                .zip(results)
                .map(|((member_id, instance), result)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(result.err().as_ref().map_or(0, code))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .first()
                .and_then(|r| r.as_ref().err())
                .map_or(0, code),
        ),
    }
}

// ---- DescribeGroups / ListGroups / DeleteGroups ----

/// Serves DescribeGroups.
pub async fn describe_groups(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let image = broker.metadata.image();
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in &request.groups {
        let id = group_id.0.as_str();
        let mut described = WireGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        match broker.groups.describe_group(&image, id).await {
            Ok(group) => {
                described = described
                    .with_group_state(str_bytes(group.state))
                    .with_protocol_type(str_bytes(group.protocol_type))
                    .with_protocol_data(str_bytes(group.protocol))
                    .with_members(
                        group
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.instance_id.map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    );
            }
            Err(GroupError::GroupIdNotFound(_)) => {
                // Kafka answers an unknown group as Dead, with GROUP_ID_NOT_FOUND from v6.
                described = described.with_group_state(StrBytes::from_static_str("Dead"));
                if version >= 6 {
                    described.error_code = ErrorCode::GroupIdNotFound.code();
                    described.error_message = Some(str_bytes(format!("Group {id} not found.")));
                }
            }
            Err(error) => {
                described.error_code = code(&error);
                if version >= 6 {
                    described.error_message = Some(str_bytes(error.to_string()));
                }
            }
        }
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

/// Serves ListGroups, with the state filter (v4+) and the type filter (v5).
pub async fn list_groups(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.as_str().to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.as_str().to_lowercase())
        .collect();
    let groups = broker
        .groups
        .list_groups()
        .await
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.contains(&g.group_type.to_lowercase()))
        .map(|g| {
            let mut listed = WireListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            if version >= 4 {
                listed.group_state = str_bytes(g.state);
            }
            if version >= 5 {
                listed.group_type = str_bytes(g.group_type);
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Serves DeleteGroups.
pub async fn delete_groups(
    broker: &Arc<Broker>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let image = broker.metadata.image();
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let outcome = broker
            .groups
            .delete_group(&image, group_id.0.as_str())
            .await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(outcome.err().as_ref().map_or(0, code)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

// ---- KIP-848 ----

fn heartbeat_error(error: &GroupError, member_id: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code(error))
        .with_error_message(Some(str_bytes(error.to_string())))
        .with_member_id(Some(str_bytes(member_id)))
        .with_member_epoch(-1)
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate_consumer_heartbeat(
    request: &ConsumerGroupHeartbeatRequest,
    version: i16,
    assignors: &[crate::group::assignor::Assignor],
) -> Result<(), GroupError> {
    let invalid = |why: &str| Err(GroupError::InvalidRequest(why.to_string()));
    if request.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if request.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("InstanceId can't be empty.");
    }
    if request.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
        return invalid("RackId can't be empty.");
    }
    if version >= CONSUMER_HEARTBEAT_CLIENT_MEMBER_ID_VERSION && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    let epoch = request.member_epoch;
    if epoch > 0 || epoch == -1 {
        if request.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
    } else if epoch == 0 {
        if request.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if request
            .topic_partitions
            .as_ref()
            .is_none_or(|tp| !tp.is_empty())
        {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        // An empty list of names or an empty regex is allowed: the member is in the group
        // but subscribes to nothing (yet), as a client matching a pattern itself does at first.
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if request.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if request.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = &request.server_assignor
        && !assignors.iter().any(|a| a.name() == name.as_str())
    {
        return Err(GroupError::UnsupportedAssignor(name.as_str().to_string()));
    }
    if let Some(pattern) = &request.subscribed_topic_regex
        && !pattern.is_empty()
    {
        crate::group::consumer::compile_subscription_regex(pattern.as_str())?;
    }
    Ok(())
}

/// Serves ConsumerGroupHeartbeat (KIP-848).
pub async fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let settings = broker.groups.settings();
    let member_id = request.member_id.as_str().to_string();
    if !settings.consumer_protocol_enabled {
        return heartbeat_error(
            &GroupError::UnsupportedVersion(
                "the consumer group protocol is disabled (group.coordinator.rebalance.protocols)"
                    .into(),
            ),
            &member_id,
        );
    }
    if let Err(error) = validate_consumer_heartbeat(&request, version, &settings.consumer.assignors)
    {
        return heartbeat_error(&error, &member_id);
    }
    let heartbeat = ConsumerHeartbeat {
        member_id: member_id.clone(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.as_str().to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.as_str().to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.as_str().to_string()).collect()),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.as_str().to_string()),
        server_assignor: request
            .server_assignor
            .as_ref()
            .map(|s| s.as_str().to_string()),
        owned: request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.clone()))
                .collect()
        }),
        client_id: context.client_id.clone(),
        client_host: client_host(context),
    };
    let image = broker.metadata.image();
    match broker
        .groups
        .consumer_heartbeat(&image, request.group_id.0.as_str(), heartbeat)
        .await
    {
        Ok(result) => {
            let mut response = ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(result.member_id)))
                .with_member_epoch(result.member_epoch)
                .with_heartbeat_interval_ms(result.heartbeat_interval_ms);
            if let Some(assignment) = result.assignment {
                response.assignment = Some(
                    cgh::Assignment::default().with_topic_partitions(
                        assignment
                            .into_iter()
                            .map(|(topic, partitions)| {
                                cgh::TopicPartitions::default()
                                    .with_topic_id(topic)
                                    .with_partitions(partitions.into_iter().collect())
                            })
                            .collect(),
                    ),
                );
            }
            response
        }
        Err(error) => heartbeat_error(&error, &member_id),
    }
}

fn describe_assignment(
    assignment: &crate::group::assignor::Assignment,
    names: &dyn Fn(&Uuid) -> String,
) -> cgd::Assignment {
    cgd::Assignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                cgd::TopicPartitions::default()
                    .with_topic_id(*topic)
                    .with_topic_name(TopicName(str_bytes(names(topic))))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

/// Serves ConsumerGroupDescribe (KIP-848).
pub async fn consumer_group_describe(
    broker: &Arc<Broker>,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let image = broker.metadata.image();
    let settings = broker.groups.settings();
    let default_assignor = settings
        .consumer
        .assignors
        .first()
        .map_or("uniform", |a| a.name());
    let names = |id: &Uuid| {
        image
            .topic_by_id(id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in &request.group_ids {
        let described = broker
            .groups
            .describe_consumer_group(&image, group_id.0.as_str(), |group| {
                let assignor = group
                    .members
                    .values()
                    .find_map(|m| m.server_assignor.clone())
                    .unwrap_or_else(|| default_assignor.to_string());
                let members = group
                    .members
                    .values()
                    .map(|m| {
                        let mut member = cgd::Member::default()
                            .with_member_id(str_bytes(m.member_id.clone()))
                            .with_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|n| TopicName(str_bytes(n.clone())))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.subscribed_topic_regex.clone().map(str_bytes),
                            )
                            .with_assignment(describe_assignment(&m.assigned, &names))
                            .with_target_assignment(describe_assignment(
                                &group.target.get(&m.member_id).cloned().unwrap_or_default(),
                                &names,
                            ));
                        if version >= 1 {
                            member.member_type = if m.uses_classic_protocol() {
                                MEMBER_TYPE_CLASSIC
                            } else {
                                MEMBER_TYPE_CONSUMER
                            };
                        }
                        member
                    })
                    .collect();
                cgd::DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(str_bytes(group.state().name()))
                    .with_group_epoch(group.group_epoch)
                    .with_assignment_epoch(group.assignment_epoch)
                    .with_assignor_name(str_bytes(assignor))
                    .with_members(members)
                    .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
            })
            .await;
        groups.push(match described {
            Ok(group) => group,
            Err(error) => cgd::DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_error_code(code(&error))
                .with_error_message(Some(str_bytes(match &error {
                    GroupError::GroupIdNotFound(_) => {
                        format!("Group {} not found.", group_id.0.as_str())
                    }
                    other => other.to_string(),
                })))
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
